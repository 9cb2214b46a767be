//! `aer:plugin/state`: per-plugin key/value state with a per-call write set.
//!
//! Reads see the call's own writes first, then the committed store. Writes stay in the
//! write set until the call succeeds and its caller commits them (exactly-once state);
//! a trapped call's writes are dropped with it. Every operation counts against the
//! call's budget, and oversized keys or values are refused with an error the plugin sees.

use crate::bindings::host::aer::plugin::state::{Host, StateError, Write};
use crate::host_api::HostState;

const SCAN_LIMIT: u32 = 10_000;

impl HostState {
    /// Count `ops` state operations against the call's budget.
    pub(crate) fn charge(&mut self, ops: u32) -> Result<(), StateError> {
        self.call.state_ops = self.call.state_ops.saturating_add(ops);
        if self.call.state_ops > self.limits.state_ops_per_call {
            return Err(StateError::BudgetExhausted);
        }
        Ok(())
    }

    /// Check a key's length against the limit.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), StateError> {
        let max = self.limits.state_key_bytes;
        if key.len() > max as usize {
            return Err(StateError::KeyTooLarge(max));
        }
        Ok(())
    }

    fn check_value(&mut self, value: &[u8]) -> Result<(), StateError> {
        let max = self.limits.state_value_bytes;
        if value.len() > max as usize {
            return Err(StateError::ValueTooLarge(max));
        }
        self.call.state_bytes = self.call.state_bytes.saturating_add(value.len() as u64);
        if self.call.state_bytes > self.limits.state_write_bytes_per_call {
            return Err(StateError::BudgetExhausted);
        }
        Ok(())
    }

    /// Count `bytes` read towards the guest; past the call's read budget the call
    /// traps (a read cannot answer "budget exhausted", and answering "absent" would lie).
    pub(crate) fn charge_read(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.call.read_bytes = self.call.read_bytes.saturating_add(bytes as u64);
        let limit = self.limits.read_bytes_per_call;
        if self.call.read_bytes > limit {
            return Err(crate::host_api::ReadLimitExceeded { limit }.into());
        }
        Ok(())
    }

    /// Read a key: this call's writes first, then the committed store. Charged to the
    /// call's read budget before the value is copied anywhere else.
    pub(crate) fn read(&mut self, key: &str) -> wasmtime::Result<Option<Vec<u8>>> {
        if let Some(v) = self.call.writes.get(key) {
            let len = v.map_or(0, <[u8]>::len);
            self.charge_read(key.len() + len)?;
            return Ok(self.call.writes.get(key).flatten().map(<[u8]>::to_vec));
        }
        let started = std::time::Instant::now();
        let value = self.store.get(&self.scope, key);
        self.call.waited_since(started);
        let value = value?;
        self.charge_read(key.len() + value.as_ref().map_or(0, Vec::len))?;
        Ok(value)
    }

    fn write(&mut self, write: Write) -> Result<(), StateError> {
        match write {
            Write::Set((key, value)) => {
                self.check_key(&key)?;
                self.check_value(&value)?;
                self.call.writes.put(key, Some(value));
            }
            Write::Delete(key) => {
                self.check_key(&key)?;
                self.call.writes.put(key, None);
            }
        }
        Ok(())
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if self.charge(1).is_err() || self.check_key(&key).is_err() {
            return Ok(None);
        }
        self.read(&key)
    }

    fn get_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Vec<Option<Vec<u8>>>> {
        let n = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        if self.charge(n).is_err() {
            return Ok(vec![None; keys.len()]);
        }
        let mut values = Vec::with_capacity(keys.len());
        for k in &keys {
            values.push(if self.check_key(k).is_ok() {
                self.read(k)?
            } else {
                None
            });
        }
        Ok(values)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self
            .charge(1)
            .and_then(|()| self.write(Write::Set((key, value)))))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self.charge(1).and_then(|()| self.write(Write::Delete(key))))
    }

    fn apply(&mut self, writes: Vec<Write>) -> wasmtime::Result<Result<(), StateError>> {
        let n = u32::try_from(writes.len()).unwrap_or(u32::MAX);
        if let Err(e) = self.charge(n) {
            return Ok(Err(e));
        }
        for w in writes {
            if let Err(e) = self.write(w) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    fn add(&mut self, key: String, delta: i64) -> wasmtime::Result<Result<i64, StateError>> {
        if let Err(e) = self.charge(1).and_then(|()| self.check_key(&key)) {
            return Ok(Err(e));
        }
        let current = match self.read(&key)? {
            None => 0,
            Some(v) => match <[u8; 8]>::try_from(v.as_slice()) {
                Ok(b) => i64::from_le_bytes(b),
                Err(_) => return Ok(Err(StateError::NotACounter)),
            },
        };
        let next = current.saturating_add(delta);
        Ok(self
            .write(Write::Set((key, next.to_le_bytes().to_vec())))
            .map(|()| next))
    }

    fn scan(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        let limit = limit.min(SCAN_LIMIT);
        if self.charge(limit.max(1)).is_err() || self.check_key(&prefix).is_err() {
            return Ok(Vec::new());
        }
        // Committed entries, overlaid with this call's writes. Deletions in the write
        // set can hide committed entries, so read enough to still fill `limit`.
        let pending = self.call.writes.range_prefix(&prefix).count();
        let started = std::time::Instant::now();
        // Read no further than the call's read budget allows (plus the entry that
        // passes it, which then traps the call below).
        let budget = self
            .limits
            .read_bytes_per_call
            .saturating_sub(self.call.read_bytes);
        let committed = self.store.scan_bounded(
            &self.scope,
            &prefix,
            limit as usize + pending,
            usize::try_from(budget).unwrap_or(usize::MAX),
        );
        self.call.waited_since(started);
        let committed = committed?;
        let read: usize = committed.iter().map(|(k, v)| k.len() + v.len()).sum();
        if read as u64 > budget {
            // The store stopped at the budget, so the answer would be cut short.
            self.charge_read(read)?;
        }
        let mut merged: std::collections::BTreeMap<String, Vec<u8>> =
            committed.into_iter().collect();
        for (k, v) in self.call.writes.range_prefix(&prefix) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        let entries: Vec<(String, Vec<u8>)> = merged.into_iter().take(limit as usize).collect();
        self.charge_read(entries.iter().map(|(k, v)| k.len() + v.len()).sum())?;
        Ok(entries)
    }
}
