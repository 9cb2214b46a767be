//! [`MemoryStore`]: plugin state in memory, for the local tools and tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Scope, StateStore, StoreError, WriteSet};

/// State in memory, for `aer test` and tests.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A poisoned lock only means another thread panicked mid-call; the map itself
        // is never left half-written (every mutation is one insert or remove).
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateStore for MemoryStore {
    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(&scope.key(key)).cloned())
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
        for (k, v) in self
            .map()
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .take(limit)
        {
            if bytes > max_bytes {
                break;
            }
            let key = scope.strip(k)?;
            bytes = bytes.saturating_add(key.len() + v.len());
            out.push((key, v.clone()));
        }
        Ok(out)
    }

    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError> {
        let mut map = self.map();
        for (k, v) in writes.iter() {
            match v {
                Some(v) => map.insert(scope.key(k), v.clone()),
                None => map.remove(&scope.key(k)),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
