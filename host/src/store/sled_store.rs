//! [`SledStore`]: plugin state in a sled tree, committed atomically with the records
//! beside it, through a journal folded into pages.

use std::path::Path;
use std::sync::Arc;

use super::journal::{Journal, Staged};
use super::pages::Pages;
use super::{DEFAULT_CACHE_BYTES, Scope, StateCache, StateStore, StoreError, WriteSet};

/// Where [`SledStore::open`] keeps the journal: no scope key starts with four 0xFF
/// bytes (that would be a tenant name 4 GiB long).
pub(super) const OWN_DB_JOURNAL: &[u8] = b"\xff\xff\xff\xffjournal/";
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
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    prefix: Arc<[u8]>,
    pub(super) cache: StateCache,
    pub(super) journal: Arc<Journal>,
    pub(super) pages: Arc<Pages>,
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

    /// Forget what is cached of the stored state (pages and values), after records were
    /// replaced under it (a cluster node restoring a checkpoint, the journal folded).
    pub fn forget_cached(&self) {
        self.pages.forget_bounds();
        self.cache.clear();
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
