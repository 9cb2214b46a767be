//! Per-plugin state: the [`StateStore`] trait, its sled and in-memory implementations,
//! and the [`WriteSet`] a call builds up before it is committed.
//!
//! Keys are scoped by the host to a [`Scope`] (tenant, plugin); a plugin names only the
//! part after the scope, so it cannot reach another plugin's keys.

mod cache;
mod journal;
mod pages;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use cache::StateCache;
use journal::Journal;
pub use journal::Staged;
use pages::Pages;

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
    /// A stored record is not in the layout this version writes.
    #[error("state store: malformed {0}")]
    Corrupt(String),
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
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_bounded(scope, prefix, limit, usize::MAX)
    }
    /// [`StateStore::scan`], stopping once the entries taken (keys and values) pass
    /// `max_bytes`: the entry that passes it is the last one read, so a caller can tell
    /// a budget was passed without more than one entry beyond it in memory.
    fn scan_bounded(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Apply a write set atomically.
    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError>;
    /// Make committed writes durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// Where [`SledStore::open`] keeps the journal: no scope key starts with four 0xFF
/// bytes (that would be a tenant name 4 GiB long).
const OWN_DB_JOURNAL: &[u8] = b"\xff\xff\xff\xffjournal/";
/// Prefix of the state pages in a database of the store's own (see above).
const OWN_DB_PAGES: &[u8] = b"\xff\xff\xff\xfepages/";

/// Where a [`SledStore`] keeps its records in a tree: prefixes none of which is a prefix
/// of another's keys, the pages' and journals' sorting after every state key under
/// `keys` if they lie within it.
#[derive(Debug, Clone, Copy)]
pub struct StateLayout<'a> {
    /// Prefix of logical state keys (before the scope); state written by versions
    /// before pages was kept under it, one entry per key, and is moved into pages on
    /// open.
    pub keys: &'a [u8],
    /// Prefix of the state pages.
    pub pages: &'a [u8],
    /// Prefix of the journal records.
    pub journal: &'a [u8],
    /// Prefix of journal records an earlier version kept elsewhere, folded on open.
    pub old_journal: Option<&'a [u8]>,
}

/// State in a sled tree, one database on disk, sharing the tree with other records so
/// it can be committed atomically with them (see [`SledStore::stage`]).
///
/// A commit is written as one journal record; the journal keeps the latest values in
/// memory and folds them into pages of many keys each from time to time (see
/// `journal.rs` and `pages.rs`). Reads go through a [`StateCache`], then the journal,
/// then the pages. Clones are views of the same state, sharing its cache and journal.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    prefix: Arc<[u8]>,
    cache: StateCache,
    journal: Arc<Journal>,
    pages: Arc<Pages>,
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
        let layout = StateLayout {
            keys: b"",
            pages: OWN_DB_PAGES,
            journal: OWN_DB_JOURNAL,
            old_journal: None,
        };
        Self::in_tree(db, tree, layout, DEFAULT_CACHE_BYTES)
    }

    /// Keep state in `tree` as `layout` says, with a read cache of about
    /// `cache_bytes`. Reads back the journal a previous process left, after moving
    /// what earlier versions left (state kept one entry per key, then journal records
    /// under the old prefix, in that order: oldest first) into pages.
    pub fn in_tree(
        db: sled::Db,
        tree: sled::Tree,
        layout: StateLayout<'_>,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let pages = Pages::new(layout.keys, layout.pages);
        migrate_per_key_entries(&tree, &pages, layout)?;
        if let Some(old) = layout.old_journal {
            let old = Journal::recover(&tree, old)?;
            let (_folding, plan) = old.plan();
            plan.write(&tree, &pages, &old)?;
        }
        let journal = Journal::recover(&tree, layout.journal)?;
        Ok(SledStore {
            db,
            tree,
            prefix: layout.keys.into(),
            cache: StateCache::new(cache_bytes),
            journal: Arc::new(journal),
            pages: Arc::new(pages),
        })
    }

    fn full_key(&self, scope: &Scope, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + scope.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(&scope.prefix);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// Add a write set to `batch` (to be applied to this store's tree together with
    /// other records, atomically); once it is applied, pass the result to
    /// [`SledStore::applied`].
    pub fn stage(&self, scope: &Scope, writes: &WriteSet, batch: &mut sled::Batch) -> Staged {
        let common = [&self.prefix[..], &scope.prefix].concat();
        let writes = writes
            .writes
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()));
        self.journal.stage(&common, writes, batch)
    }

    /// The batch holding `staged` (`writes`, staged with [`SledStore::stage`]) was
    /// applied. Call it before anyone else may read the scope.
    pub fn applied(&self, staged: Staged, scope: &Scope, writes: &WriteSet) {
        let full: Vec<(Vec<u8>, Option<sled::IVec>)> = writes
            .writes
            .iter()
            .map(|(k, v)| (self.full_key(scope, k), v.as_deref().map(sled::IVec::from)))
            .collect();
        self.journal.applied(staged, full.iter().cloned());
        self.cache.write(full);
    }

    /// Whether enough has gathered in the journal to fold it (callers of
    /// [`SledStore::stage`] check after their commit and fold, or have it folded).
    pub fn fold_due(&self) -> bool {
        self.journal.fold_due()
    }

    /// [`SledStore::fold`] if [`SledStore::fold_due`].
    pub fn fold_if_due(&self) -> Result<(), StoreError> {
        if self.fold_due() {
            self.fold()?;
        }
        Ok(())
    }

    /// Write every journaled value to its key, then remove the journal records.
    /// Commits may go on meanwhile.
    pub fn fold(&self) -> Result<Folded, StoreError> {
        let (_folding, plan) = self.journal.plan();
        let folded = Folded {
            records: plan.records(),
            keys: plan.keys(),
        };
        if plan.is_empty() {
            return Ok(folded);
        }
        plan.write(&self.tree, &self.pages, &self.journal)?;
        self.journal.folded(plan);
        Ok(folded)
    }

    /// The tree the state lives in.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Journal records not folded yet.
    pub fn journal_records(&self) -> usize {
        self.journal.records()
    }

    /// Keys held in the pages (what the folds wrote; a pass over every page).
    pub fn paged_keys(&self) -> Result<usize, StoreError> {
        self.pages.count(&self.tree)
    }
}

/// Move state kept one sled entry per key under `layout.keys` (as versions before
/// pages kept it) into pages, then remove those entries. A crash part-way leaves
/// entries whose values are already in pages; the next open writes them again.
fn migrate_per_key_entries(
    tree: &sled::Tree,
    pages: &Pages,
    layout: StateLayout<'_>,
) -> Result<(), StoreError> {
    const CHUNK: usize = 10_000;
    loop {
        let entries: Vec<(Vec<u8>, Option<sled::IVec>)> = tree
            .scan_prefix(layout.keys)
            // Pages and journal records sort after every state key (a scope starts with
            // a name's length, never 0xFFFFFFFE) or lie outside the prefix: the scan
            // ends at the first of them instead of reading every page on each open.
            .take_while(|e| {
                e.as_ref().map_or(true, |(k, _)| {
                    !k.starts_with(layout.pages)
                        && !k.starts_with(layout.journal)
                        && !layout.old_journal.is_some_and(|j| k.starts_with(j))
                })
            })
            .take(CHUNK)
            .map(|e| e.map(|(k, v)| (k.to_vec(), Some(v))))
            .collect::<Result<_, _>>()?;
        if entries.is_empty() {
            return Ok(());
        }
        pages.write(tree, &entries)?;
        for (key, _) in &entries {
            tree.remove(key.as_slice())?;
        }
    }
}

impl StateStore for SledStore {
    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let full = self.full_key(scope, key);
        if let Some(cached) = self.cache.get(&full) {
            return Ok(cached.map(|v| v.to_vec()));
        }
        // The token comes before the journal is looked at: a write that lands after
        // that look is newer than the token, so the fill below is refused.
        let token = self.cache.before_read();
        if let Some(journaled) = self.journal.get(&full) {
            return Ok(journaled.map(|v| v.to_vec()));
        }
        let value = self.pages.get(&self.tree, &scope.prefix, key.as_bytes())?;
        let out = value.as_ref().map(|v| v.to_vec());
        self.cache.fill(full, value, token);
        Ok(out)
    }

    fn scan_bounded(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let skip = self.prefix.len();
        let mut bytes = 0usize;
        let start = self.full_key(scope, prefix);
        // The journal's values win over the pages' (a fold meanwhile writes the same).
        let mut journaled = self.journal.range_prefix(&start).into_iter().peekable();
        let mut paged = self
            .pages
            .scan(&self.tree, &scope.prefix, prefix.as_bytes())?;
        let mut next_paged = paged.next().transpose()?;
        let mut out = Vec::new();
        while out.len() < limit && bytes <= max_bytes {
            let from_pages = match (journaled.peek(), &next_paged) {
                (None, None) => break,
                (Some((jk, _)), Some((pk, _))) => pk < jk,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            let (key, value) = if from_pages {
                let (k, v) = next_paged.take().expect("peeked");
                (k, Some(v))
            } else {
                journaled.next().expect("peeked")
            };
            // Move past the paged entry just taken, or the one the journal's value
            // replaces (or deletes).
            if from_pages || next_paged.as_ref().is_some_and(|(pk, _)| *pk == key) {
                next_paged = paged.next().transpose()?;
            }
            if let Some(v) = value {
                bytes = bytes.saturating_add(key.len() - skip + v.len());
                out.push((scope.strip(&key[skip..])?, v.to_vec()));
            }
        }
        Ok(out)
    }

    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let staged = self.stage(scope, writes, &mut batch);
        self.tree.apply_batch(batch)?;
        self.applied(staged, scope, writes);
        self.fold_if_due()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.fold()?;
        self.db.flush()?;
        Ok(())
    }
}

/// What a [`SledStore::fold`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Journal records it removed.
    pub records: usize,
    /// Keys it wrote (each key's latest value once).
    pub keys: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Open the store in `dir`, waiting while a database dropped just before still
    /// holds its lock (sled's threads release it a moment after the drop).
    fn try_open(dir: &Path) -> Result<SledStore, StoreError> {
        let start = std::time::Instant::now();
        loop {
            match SledStore::open(dir) {
                Err(e)
                    if start.elapsed() < std::time::Duration::from_secs(10)
                        && e.to_string().contains("could not acquire lock") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open(dir: &Path) -> SledStore {
        try_open(dir).expect("opens")
    }

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
    fn sled_store_in_a_shared_tree_stays_under_its_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shared").unwrap();
        tree.insert(b"other", b"x".as_slice()).unwrap();
        let s = SledStore::in_tree(db, tree.clone(), LAYOUT, 1 << 20).unwrap();
        exercise(&s);
        let keys = || -> Vec<Vec<u8>> { tree.iter().keys().map(|k| k.unwrap().to_vec()).collect() };
        assert!(keys().iter().any(|k| k.starts_with(b"e")), "{:?}", keys());
        assert!(
            keys()
                .iter()
                .all(|k| k == b"other" || k.starts_with(b"g") || k.starts_with(b"e")),
            "{:?}",
            keys()
        );
        s.fold().unwrap();
        assert!(
            keys().iter().all(|k| k == b"other" || k.starts_with(b"g")),
            "{:?}",
            keys()
        );
        exercise(&s);
    }

    #[test]
    fn journal_records_under_the_old_prefix_are_folded_on_open_over_per_key_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shared").unwrap();
        let scope = Scope::new("t", "p");
        let old_layout = StateLayout {
            journal: b"j",
            old_journal: None,
            ..LAYOUT
        };
        {
            // An earlier version: a key kept on its own, then journal records under `j`.
            let per_key = [b"s".as_slice(), &scope.key("a")].concat();
            tree.insert(per_key, b"0".as_slice()).unwrap();
            let s = SledStore::in_tree(db.clone(), tree.clone(), old_layout, 1 << 20).unwrap();
            assert_eq!(tree.scan_prefix(b"s").count(), 0, "moved into pages");
            s.commit(&scope, &write(&[("a", Some(b"1")), ("b", Some(b"1"))]))
                .unwrap();
            s.commit(&scope, &write(&[("b", None), ("c", Some(b"2"))]))
                .unwrap();
            assert_eq!(tree.scan_prefix(b"j").count(), 2);
        }
        let s = SledStore::in_tree(db, tree.clone(), LAYOUT, 1 << 20).unwrap();
        assert_eq!(tree.scan_prefix(b"j").count(), 0, "folded");
        assert_eq!(s.journal_records(), 0);
        assert_eq!(in_tree(&s, &scope, "a"), Some(b"1".to_vec()));
        assert_eq!(in_tree(&s, &scope, "b"), None);
        assert_eq!(
            s.scan(&scope, "", 10).unwrap(),
            vec![("a".into(), b"1".to_vec()), ("c".into(), b"2".to_vec())]
        );
    }

    #[test]
    fn a_database_of_its_own_moves_per_key_state_into_pages_and_then_only_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let scope = Scope::new("t", "p");
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("state").unwrap();
            // Both kinds of record an earlier version left: keys and journal records.
            tree.insert(scope.key("a"), b"0".as_slice()).unwrap();
            tree.insert(scope.key("b"), b"0".as_slice()).unwrap();
            let s = SledStore::from_db(db.clone()).unwrap();
            s.commit(&scope, &write(&[("b", Some(b"1"))])).unwrap();
            db.flush().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.tree.scan_prefix(scope.key("")).count(), 0, "moved");
        assert_eq!(s.get(&scope, "a").unwrap(), Some(b"0".to_vec()));
        assert_eq!(
            s.get(&scope, "b").unwrap(),
            Some(b"1".to_vec()),
            "journal wins"
        );
        s.commit(&scope, &write(&[("c", Some(b"2"))])).unwrap();
        s.flush().unwrap();
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.paged_keys().unwrap(), 3);
        assert_eq!(s.get(&scope, "c").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn state_kept_one_entry_per_key_moves_into_pages_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shared").unwrap();
        let (a, b) = (Scope::new("t", "a"), Scope::new("t", "b"));
        // As versions before pages wrote it: `s`, the scope, the key.
        for i in 0..2_500u32 {
            let scope = if i % 2 == 0 { &a } else { &b };
            let key = [b"s".as_slice(), &scope.key(&format!("k{i:05}"))].concat();
            tree.insert(key, i.to_be_bytes().as_slice()).unwrap();
        }
        tree.insert(b"other", b"x".as_slice()).unwrap();
        let s = SledStore::in_tree(db, tree.clone(), LAYOUT, 1 << 20).unwrap();
        assert_eq!(tree.scan_prefix(b"s").count(), 0, "moved");
        assert_eq!(s.paged_keys().unwrap(), 2_500);
        assert!(tree.scan_prefix(b"g").count() < 2_500 / 16);
        assert_eq!(
            in_tree(&s, &a, "k00042"),
            Some(42u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            s.get(&b, "k02499").unwrap(),
            Some(2499u32.to_be_bytes().to_vec())
        );
        assert_eq!(s.get(&b, "k00042").unwrap(), None);
        let scanned = s.scan(&a, "k000", 100).unwrap();
        let expect: Vec<(String, Vec<u8>)> = (0..100u32)
            .step_by(2)
            .map(|i| (format!("k{i:05}"), i.to_be_bytes().to_vec()))
            .collect();
        assert_eq!(scanned, expect);
        assert_eq!(
            tree.get(b"other").unwrap().as_deref(),
            Some(b"x".as_slice())
        );
    }

    #[test]
    fn sled_store_scopes_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            exercise(&s);
            s.flush().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(
            s.get(&Scope::new("t1", "p"), "2x").unwrap(),
            Some(b"a".to_vec())
        );
    }

    const LAYOUT: StateLayout<'static> = StateLayout {
        keys: b"s",
        pages: b"g",
        journal: b"e",
        old_journal: Some(b"j"),
    };

    fn write(pairs: &[(&str, Option<&[u8]>)]) -> WriteSet {
        let mut w = WriteSet::default();
        for (k, v) in pairs {
            w.put(k.to_string(), v.map(<[u8]>::to_vec));
        }
        w
    }

    /// What the pages hold for `key` (not the journal or the cache).
    fn in_tree(s: &SledStore, scope: &Scope, key: &str) -> Option<Vec<u8>> {
        s.pages
            .get(&s.tree, &scope.prefix, key.as_bytes())
            .unwrap()
            .map(|v| v.to_vec())
    }

    #[test]
    fn views_see_applied_writes_and_never_staged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shared").unwrap();
        let a = SledStore::in_tree(db, tree.clone(), LAYOUT, 1 << 20).unwrap();
        let b = a.clone();
        let scope = Scope::new("t", "p");
        assert_eq!(b.get(&scope, "k").unwrap(), None); // cached as absent
        a.commit(&scope, &write(&[("k", Some(b"1"))])).unwrap();
        assert_eq!(b.get(&scope, "k").unwrap(), Some(b"1".to_vec()));
        // Staged in a batch that is never applied: invisible, in sled and the cache.
        let mut batch = sled::Batch::default();
        let w2 = write(&[("k", Some(b"2"))]);
        let staged = a.stage(&scope, &w2, &mut batch);
        assert_eq!(b.get(&scope, "k").unwrap(), Some(b"1".to_vec()));
        // Applied by the caller, then announced.
        tree.apply_batch(batch).unwrap();
        a.applied(staged, &scope, &w2);
        assert_eq!(b.get(&scope, "k").unwrap(), Some(b"2".to_vec()));
        assert!(!a.cache.is_empty());
    }

    #[test]
    fn journaled_writes_survive_a_crash_before_any_fold() {
        let dir = tempfile::tempdir().unwrap();
        let scope = Scope::new("t", "p");
        {
            let s = open(dir.path());
            s.commit(&scope, &write(&[("a", Some(b"1")), ("b", Some(b"1"))]))
                .unwrap();
            s.fold().unwrap();
            s.commit(&scope, &write(&[("a", Some(b"2")), ("c", Some(b"2"))]))
                .unwrap();
            s.commit(&scope, &write(&[("b", None), ("a", Some(b"3"))]))
                .unwrap();
            assert_eq!(s.journal_records(), 2);
            // Durable as sled makes it, but never folded: the process dies here.
            s.db.flush().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.journal_records(), 2, "read back, not folded");
        assert_eq!(in_tree(&s, &scope, "a"), Some(b"1".to_vec()));
        assert_eq!(in_tree(&s, &scope, "b"), Some(b"1".to_vec()));
        let expect = |s: &SledStore| {
            assert_eq!(s.get(&scope, "a").unwrap(), Some(b"3".to_vec()));
            assert_eq!(s.get(&scope, "b").unwrap(), None);
            assert_eq!(s.get(&scope, "c").unwrap(), Some(b"2".to_vec()));
            assert_eq!(
                s.scan(&scope, "", 10).unwrap(),
                vec![("a".into(), b"3".to_vec()), ("c".into(), b"2".to_vec())]
            );
        };
        expect(&s);
        s.fold().unwrap();
        assert_eq!(s.journal_records(), 0);
        assert_eq!(in_tree(&s, &scope, "a"), Some(b"3".to_vec()));
        assert_eq!(in_tree(&s, &scope, "b"), None);
        expect(&s);
        drop(s);
        expect(&open(dir.path()));
    }

    #[test]
    fn a_fold_keeps_what_was_committed_while_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let scope = Scope::new("t", "p");
        {
            let s = open(dir.path());
            s.commit(&scope, &write(&[("k", Some(b"1")), ("j", Some(b"1"))]))
                .unwrap();
            let (folding, plan) = s.journal.plan();
            s.commit(&scope, &write(&[("k", Some(b"2"))])).unwrap();
            plan.write(&s.tree, &s.pages, &s.journal).unwrap();
            s.journal.folded(plan);
            drop(folding);
            assert_eq!(in_tree(&s, &scope, "k"), Some(b"1".to_vec()));
            assert_eq!(in_tree(&s, &scope, "j"), Some(b"1".to_vec()));
            assert_eq!(s.journal_records(), 1, "the later commit's record stays");
            assert_eq!(s.get(&scope, "k").unwrap(), Some(b"2".to_vec()));
            s.db.flush().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.get(&scope, "k").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.get(&scope, "j").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn a_crash_among_a_folds_removals_leaves_the_latest_values() {
        let dir = tempfile::tempdir().unwrap();
        let scope = Scope::new("t", "p");
        let journal_keys = |s: &SledStore| -> Vec<(sled::IVec, sled::IVec)> {
            s.tree
                .scan_prefix(OWN_DB_JOURNAL)
                .map(|r| r.unwrap())
                .collect()
        };
        {
            let s = open(dir.path());
            s.commit(&scope, &write(&[("k", Some(b"1")), ("j", Some(b"1"))]))
                .unwrap();
            s.commit(&scope, &write(&[("k", Some(b"2")), ("j", Some(b"2"))]))
                .unwrap();
            s.commit(&scope, &write(&[("k", Some(b"3"))])).unwrap();
            let records = journal_keys(&s);
            assert_eq!(records.len(), 3);
            s.fold().unwrap();
            assert!(journal_keys(&s).is_empty());
            // Removals go oldest first, and sled recovers a prefix of its log: what a
            // crash among them can leave is the newest records.
            for (k, v) in &records[1..] {
                s.tree.insert(k, v.clone()).unwrap();
            }
            s.db.flush().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.journal_records(), 2);
        assert_eq!(s.get(&scope, "k").unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get(&scope, "j").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn scans_merge_the_journal_over_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let scope = Scope::new("t", "p");
        let v = |x: &'static [u8]| Some(x);
        s.commit(
            &scope,
            &write(&[("a", v(b"1")), ("b", v(b"1")), ("c", v(b"1"))]),
        )
        .unwrap();
        s.fold().unwrap();
        s.commit(
            &scope,
            &write(&[("b", None), ("c", v(b"2")), ("d", v(b"2"))]),
        )
        .unwrap();
        let all: Vec<(String, Vec<u8>)> = [("a", b"1"), ("c", b"2"), ("d", b"2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(s.scan(&scope, "", 10).unwrap(), all);
        assert_eq!(s.scan(&scope, "", 2).unwrap(), all[..2].to_vec());
        assert_eq!(s.scan(&scope, "c", 10).unwrap(), all[1..2].to_vec());
        assert!(s.scan(&Scope::new("t", "q"), "", 10).unwrap().is_empty());
    }

    #[test]
    fn commits_fold_once_enough_has_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let scope = Scope::new("t", "p");
        for i in 0..journal::FOLD_RECORDS + 10 {
            let n = (i as u32).to_be_bytes();
            s.commit(&scope, &write(&[("k", Some(n.as_slice()))]))
                .unwrap();
        }
        assert_eq!(s.journal_records(), 10);
        let folded = (journal::FOLD_RECORDS as u32 - 1).to_be_bytes();
        assert_eq!(in_tree(&s, &scope, "k"), Some(folded.to_vec()));
        let last = (journal::FOLD_RECORDS as u32 + 9).to_be_bytes();
        assert_eq!(s.get(&scope, "k").unwrap(), Some(last.to_vec()));
    }

    #[test]
    fn a_malformed_journal_record_is_an_error_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("state").unwrap();
            let mut key = OWN_DB_JOURNAL.to_vec();
            key.extend_from_slice(&7u64.to_be_bytes());
            tree.insert(key, b"\x00\x00\x00\x09short".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let err = try_open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("journal record 7"), "{err}");
    }

    #[test]
    fn a_read_that_raced_a_write_does_not_fill_the_cache() {
        let cache = StateCache::new(1 << 20);
        let token = cache.before_read();
        // A write lands while the read is in sled, which returned the old value.
        cache.write([(b"k".to_vec(), Some(sled::IVec::from(b"new".as_slice())))]);
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
