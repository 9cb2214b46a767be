//! [`MemoryStore`]: plugin state in memory, for the local tools and tests.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::{Scope, StateStore, StoreError, WriteSet};

/// State in memory, for `aer test` and tests.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
}

/// Values by full key for lookups, and the same keys in order for scans (a lookup in a
/// hash map is several times cheaper than one in an ordered map whose keys share a long
/// scope prefix, and plugins look up far more often than they scan).
#[derive(Default)]
struct Entries {
    values: HashMap<Vec<u8>, Vec<u8>>,
    order: BTreeSet<Vec<u8>>,
}

impl MemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A poisoned lock only means another thread panicked mid-call; the entries are
        // never left half-written (each write updates both maps before the next).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateStore for MemoryStore {
    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries().values.get(&scope.key(key)).cloned())
    }

    fn scan_bounded(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = scope.key(prefix);
        let mut bytes = 0usize;
        let mut out = Vec::new();
        let entries = self.entries();
        for k in entries
            .order
            .range(start.clone()..)
            .take_while(|k| k.starts_with(&start))
            .take(limit)
        {
            if bytes > max_bytes {
                break;
            }
            let Some(v) = entries.values.get(k) else {
                continue;
            };
            let key = scope.strip(k)?;
            bytes = bytes.saturating_add(key.len() + v.len());
            out.push((key, v.clone()));
        }
        Ok(out)
    }

    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError> {
        let mut entries = self.entries();
        let Entries { values, order } = &mut *entries;
        for (k, v) in writes.iter() {
            let full = scope.key(k);
            match v {
                Some(v) => match values.get_mut(&full) {
                    Some(slot) => slot.clone_from(v),
                    None => {
                        order.insert(full.clone());
                        values.insert(full, v.clone());
                    }
                },
                None => {
                    if values.remove(&full).is_some() {
                        order.remove(&full);
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
