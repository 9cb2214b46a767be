//! Per-plugin state: the [`StateStore`] trait, its sled and in-memory implementations,
//! and the [`WriteSet`] a call builds up before it is committed.
//!
//! Keys are scoped by the host to a [`Scope`] (tenant, plugin); a plugin names only the
//! part after the scope, so it cannot reach another plugin's keys.

mod cache;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

pub use cache::StateCache;

/// Size of the cache in front of a database opened with [`SledStore::open`].
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored key is not valid UTF-8 (written by something other than AER).
    #[error("state store: key under {0} is not UTF-8")]
    BadKey(String),
}

/// The (tenant, plugin) a state key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    prefix: Vec<u8>,
    label: String,
}

impl Scope {
    /// The scope of `plugin` in `tenant`. Names are length-prefixed in the key, so no
    /// choice of names can make two scopes overlap.
    pub fn new(tenant: &str, plugin: &str) -> Self {
        let mut prefix = Vec::with_capacity(tenant.len() + plugin.len() + 8);
        for part in [tenant, plugin] {
            prefix.extend_from_slice(&(part.len() as u32).to_be_bytes());
            prefix.extend_from_slice(part.as_bytes());
        }
        Scope {
            prefix,
            label: format!("{tenant}/{plugin}"),
        }
    }

    /// The full store key of a plugin key.
    pub fn key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn strip(&self, full: &[u8]) -> Result<String, StoreError> {
        String::from_utf8(full[self.prefix.len()..].to_vec())
            .map_err(|_| StoreError::BadKey(self.label.clone()))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// Writes made during one call, applied atomically by [`StateStore::commit`].
/// `None` deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl WriteSet {
    /// Record a write (the last write to a key wins).
    pub fn put(&mut self, key: String, value: Option<Vec<u8>>) {
        self.writes.insert(key, value);
    }

    /// What this set holds for `key`: `Some(None)` means deleted here.
    pub fn get(&self, key: &str) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|v| v.as_deref())
    }

    /// Entries under `prefix`, in key order.
    pub fn range_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Option<Vec<u8>>)> + 'a {
        self.writes
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Number of keys written.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// All writes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Option<Vec<u8>>)> {
        self.writes.iter()
    }
}

/// Where plugin state lives. Implementations must make `commit` atomic.
pub trait StateStore: Send + Sync {
    /// Committed value of `key`.
    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` committed entries whose key starts with `prefix`, in key order.
    fn scan(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Apply a write set atomically.
    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError>;
    /// Make committed writes durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// State in a sled tree, one database on disk. Keys are `prefix`, then the scope, then
/// the plugin's key, so the state can share a tree with other records and be committed
/// atomically with them (see [`SledStore::stage`]). Reads go through a [`StateCache`].
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    prefix: Vec<u8>,
    cache: StateCache,
}

impl SledStore {
    /// Open (or create) the database in directory `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        Self::from_db(db)
    }

    /// Use the `state` tree of an open database.
    pub fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree("state")?;
        Ok(SledStore {
            db,
            tree,
            prefix: Vec::new(),
            cache: StateCache::new(DEFAULT_CACHE_BYTES),
        })
    }

    /// Keep state in `tree` under keys starting with `prefix`, read through `cache`
    /// (share one cache among all views of the same keys).
    pub fn in_tree(db: sled::Db, tree: sled::Tree, prefix: &[u8], cache: StateCache) -> Self {
        SledStore {
            db,
            tree,
            prefix: prefix.to_vec(),
            cache,
        }
    }

    /// Tell the cache that `writes`, staged with [`SledStore::stage`], were applied.
    /// Call it after the batch is applied and before anyone else may read the scope.
    pub fn applied(&self, scope: &Scope, writes: &WriteSet) {
        for (k, v) in writes.iter() {
            self.cache
                .write(self.full_key(scope, k), v.as_deref().map(sled::IVec::from));
        }
    }

    fn full_key(&self, scope: &Scope, key: &str) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(&scope.key(key));
        k
    }

    /// Add a write set to `batch` (to be applied to this store's tree together with
    /// other records, atomically).
    pub fn stage(&self, scope: &Scope, writes: &WriteSet, batch: &mut sled::Batch) {
        for (k, v) in writes.iter() {
            match v {
                Some(v) => batch.insert(self.full_key(scope, k), v.as_slice()),
                None => batch.remove(self.full_key(scope, k)),
            }
        }
    }
}

impl StateStore for SledStore {
    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.full_key(scope, key);
        if let Some(cached) = self.cache.get(&key) {
            return Ok(cached.map(|v| v.to_vec()));
        }
        let token = self.cache.before_read();
        let value = self.tree.get(&key)?;
        let out = value.as_ref().map(|v| v.to_vec());
        self.cache.fill(key, value, token);
        Ok(out)
    }

    fn scan(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let skip = self.prefix.len();
        self.tree
            .scan_prefix(self.full_key(scope, prefix))
            .take(limit)
            .map(|r| {
                let (k, v) = r?;
                Ok((scope.strip(&k[skip..])?, v.to_vec()))
            })
            .collect()
    }

    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        self.stage(scope, writes, &mut batch);
        self.tree.apply_batch(batch)?;
        self.applied(scope, writes);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

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

    fn scan(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = scope.key(prefix);
        self.map()
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .take(limit)
            .map(|(k, v)| Ok((scope.strip(k)?, v.clone())))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn StateStore) {
        let a = Scope::new("t1", "p");
        let b = Scope::new("t1", "p2");
        // Length prefixes keep ("t1","p" + "2x") apart from ("t1","p2" + "x").
        let mut w = WriteSet::default();
        w.put("2x".into(), Some(b"a".to_vec()));
        w.put("k1".into(), Some(b"1".to_vec()));
        store.commit(&a, &w).unwrap();
        assert_eq!(store.get(&b, "x").unwrap(), None);
        assert_eq!(store.get(&a, "2x").unwrap(), Some(b"a".to_vec()));
        let scanned = store.scan(&a, "k", 10).unwrap();
        assert_eq!(scanned, vec![("k1".to_string(), b"1".to_vec())]);
        let mut d = WriteSet::default();
        d.put("k1".into(), None);
        store.commit(&a, &d).unwrap();
        assert_eq!(store.get(&a, "k1").unwrap(), None);
        assert!(store.scan(&b, "", 10).unwrap().is_empty());
    }

    #[test]
    fn memory_store_scopes_and_deletes() {
        exercise(&MemoryStore::default());
    }

    #[test]
    fn sled_store_in_a_shared_tree_stays_under_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shared").unwrap();
        tree.insert(b"other", b"x".as_slice()).unwrap();
        let s = SledStore::in_tree(db, tree.clone(), b"s", StateCache::new(1 << 20));
        exercise(&s);
        let keys: Vec<Vec<u8>> = tree.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        assert!(
            keys.iter().all(|k| k == b"other" || k.starts_with(b"s")),
            "{keys:?}"
        );
    }

    #[test]
    fn sled_store_scopes_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            exercise(&s);
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            s.get(&Scope::new("t1", "p"), "2x").unwrap(),
            Some(b"a".to_vec())
        );
    }

    #[test]
    fn views_sharing_a_cache_see_applied_writes_and_never_staged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shared").unwrap();
        let cache = StateCache::new(1 << 20);
        let a = SledStore::in_tree(db.clone(), tree.clone(), b"s", cache.clone());
        let b = SledStore::in_tree(db, tree.clone(), b"s", cache.clone());
        let scope = Scope::new("t", "p");
        let write = |v: &[u8]| {
            let mut w = WriteSet::default();
            w.put("k".into(), Some(v.to_vec()));
            w
        };
        assert_eq!(b.get(&scope, "k").unwrap(), None); // cached as absent
        a.commit(&scope, &write(b"1")).unwrap();
        assert_eq!(b.get(&scope, "k").unwrap(), Some(b"1".to_vec()));
        // Staged in a batch that is never applied: invisible, in sled and the cache.
        let mut batch = sled::Batch::default();
        a.stage(&scope, &write(b"2"), &mut batch);
        assert_eq!(b.get(&scope, "k").unwrap(), Some(b"1".to_vec()));
        // Applied by the caller, then announced.
        tree.apply_batch(batch).unwrap();
        a.applied(&scope, &write(b"2"));
        assert_eq!(b.get(&scope, "k").unwrap(), Some(b"2".to_vec()));
        assert!(!cache.is_empty());
    }

    #[test]
    fn a_read_that_raced_a_write_does_not_fill_the_cache() {
        let cache = StateCache::new(1 << 20);
        let token = cache.before_read();
        // A write lands while the read is in sled, which returned the old value.
        cache.write(b"k".to_vec(), Some(sled::IVec::from(b"new".as_slice())));
        cache.fill(
            b"k".to_vec(),
            Some(sled::IVec::from(b"old".as_slice())),
            token,
        );
        assert_eq!(
            cache.get(b"k"),
            Some(Some(sled::IVec::from(b"new".as_slice())))
        );
        // A read with no write since fills it.
        let token = cache.before_read();
        cache.fill(b"j".to_vec(), None, token);
        assert_eq!(cache.get(b"j"), Some(None));
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let cache = StateCache::new(64 << 10);
        for i in 0..10_000u32 {
            let token = cache.before_read();
            cache.fill(i.to_be_bytes().to_vec(), Some(vec![0u8; 100].into()), token);
        }
        assert!(cache.weight() <= 64 << 10, "{} bytes", cache.weight());
        assert!(
            cache.len() > 100 && cache.len() < 10_000,
            "{} entries",
            cache.len()
        );
    }
}
