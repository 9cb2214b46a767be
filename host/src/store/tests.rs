//! The state stores' tests: both implementations behave alike; the sled one keeps its
//! commits across a reopen and folds its journal.

use std::path::Path;

use super::sled_store::OWN_DB_JOURNAL;
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

proptest::proptest! {
    /// The memory store answers lookups and scans as an ordered map of its writes does,
    /// whatever the order of sets, overwrites and deletes.
    #[test]
    fn memory_store_answers_as_an_ordered_map(
        batches in proptest::collection::vec(
            proptest::collection::vec((0u8..12, proptest::option::of(0u8..4)), 1..8),
            1..12,
        ),
    ) {
        let store = MemoryStore::default();
        let scope = Scope::new("t", "p");
        let mut model = std::collections::BTreeMap::new();
        for batch in batches {
            let mut w = WriteSet::default();
            for (k, v) in batch {
                let key = format!("k{k:02}");
                let value = v.map(|v| vec![v]);
                match &value {
                    Some(v) => model.insert(key.clone(), v.clone()),
                    None => model.remove(&key),
                };
                w.put(key, value);
            }
            store.commit(&scope, &w).unwrap();
            for k in 0u8..12 {
                let key = format!("k{k:02}");
                proptest::prop_assert_eq!(store.get(&scope, &key).unwrap(), model.get(&key).cloned());
            }
            let want: Vec<(String, Vec<u8>)> =
                model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            proptest::prop_assert_eq!(store.scan(&scope, "k", 100).unwrap(), want.clone());
            // A limit counts only live keys.
            proptest::prop_assert_eq!(
                store.scan(&scope, "k", 3).unwrap(),
                want.into_iter().take(3).collect::<Vec<_>>()
            );
        }
    }
}
