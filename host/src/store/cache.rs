//! [`StateCache`]: committed plugin state kept in memory in front of sled.

use std::sync::{Arc, Mutex};

use quick_cache::Weighter;
use sled::IVec;

/// Recently read or written state values (absent keys included) by full store key,
/// shared by every [`super::SledStore`] view of one database, bounded in bytes.
///
/// Write-through: a batch's writes enter the cache only after the batch is applied to
/// sled ([`super::SledStore::applied`]), so the cache never holds what sled does not. A
/// read that misses fills the cache only if no write entered it while the read was in
/// sled, so a slow read cannot put back a value a write just replaced.
#[derive(Clone)]
pub struct StateCache {
    inner: Arc<Inner>,
}

struct Inner {
    values: quick_cache::sync::Cache<Vec<u8>, Option<IVec>, EntryWeight>,
    /// Writes so far; held while inserting, so a fill and a write never interleave.
    writes: Mutex<u64>,
}

/// An entry's weight: its key and value bytes plus a fixed overhead.
#[derive(Clone)]
struct EntryWeight;

/// Bytes of bookkeeping counted per entry besides its key and value.
const ENTRY_OVERHEAD: usize = 64;

impl Weighter<Vec<u8>, Option<IVec>> for EntryWeight {
    fn weight(&self, key: &Vec<u8>, value: &Option<IVec>) -> u64 {
        (key.len() + value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD) as u64
    }
}

impl StateCache {
    /// A cache of about `bytes` (keys, values and bookkeeping).
    pub fn new(bytes: u64) -> Self {
        let items = (bytes / 160).max(16) as usize;
        StateCache {
            inner: Arc::new(Inner {
                values: quick_cache::sync::Cache::with_weighter(items, bytes.max(1), EntryWeight),
                writes: Mutex::new(0),
            }),
        }
    }

    /// The cached value of `key`: `Some(None)` means known absent.
    pub(super) fn get(&self, key: &[u8]) -> Option<Option<IVec>> {
        self.inner.values.get(key)
    }

    /// A token to pass to [`StateCache::fill`] after reading sled.
    pub(super) fn before_read(&self) -> u64 {
        *self.writes()
    }

    /// Remember what sled returned for `key`, unless a write came in since `token`.
    pub(super) fn fill(&self, key: Vec<u8>, value: Option<IVec>, token: u64) {
        let writes = self.writes();
        if *writes == token {
            self.inner.values.insert(key, value);
        }
    }

    /// Record writes applied to sled.
    pub(super) fn write(&self, writes: impl IntoIterator<Item = (Vec<u8>, Option<IVec>)>) {
        let mut count = self.writes();
        *count += 1;
        for (key, value) in writes {
            self.inner.values.insert(key, value);
        }
    }

    /// Forget every entry (records were replaced under the cache, a cluster node
    /// restoring a checkpoint); a read begun before is not kept either.
    pub(super) fn clear(&self) {
        let mut count = self.writes();
        *count += 1;
        self.inner.values.clear();
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.inner.values.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held now, as weighed against the bound.
    pub fn weight(&self) -> u64 {
        self.inner.values.weight()
    }

    fn writes(&self) -> std::sync::MutexGuard<'_, u64> {
        // The counter is a plain number: a panic elsewhere cannot leave it half-written.
        self.inner.writes.lock().unwrap_or_else(|e| e.into_inner())
    }
}
