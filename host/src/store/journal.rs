//! [`Journal`]: committed state writes kept as one sled record per commit until a fold
//! writes them into the state pages (`pages.rs`).
//!
//! sled updates its tree once per key written (a few microseconds a key), and a
//! detector rewrites mostly the same keys batch after batch (a user's window, a
//! baseline). So a commit writes all its writes as one journal record, in the same atomic
//! sled batch as whatever it commits with (a detector's cursor), and the journal keeps
//! the latest value of each key in memory. A fold, when enough has gathered, writes each
//! key's latest value once, then removes the records it covers. On open, the records a
//! crash left are read back; nothing committed is lost.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use sled::IVec;

use super::StoreError;
use super::pages::Pages;

/// Fold when this many records are waiting.
pub(super) const FOLD_RECORDS: usize = 1024;
/// Fold when the latest values waiting weigh this many bytes (keys and values).
const FOLD_VALUE_BYTES: usize = 4 << 20;
/// Fold when the records waiting weigh this many bytes.
const FOLD_RECORD_BYTES: usize = 16 << 20;

/// The journal of one state area (one store prefix in one tree).
pub(super) struct Journal {
    /// Record keys are this prefix, then the record's sequence number (big-endian).
    prefix: Vec<u8>,
    waiting: Mutex<Waiting>,
    /// Held by the one fold running.
    folding: Mutex<()>,
}

/// What was applied to sled as journal records and is not folded yet.
#[derive(Default)]
struct Waiting {
    next_seq: u64,
    /// Latest value of each key (logical key: store prefix, scope, key), with the record it came from.
    values: BTreeMap<Vec<u8>, (u64, Option<IVec>)>,
    /// Records applied and not folded, with their sizes.
    records: BTreeMap<u64, usize>,
    value_bytes: usize,
    record_bytes: usize,
}

/// A journal record staged in a sled batch, to pass to [`super::SledStore::applied`]
/// once the batch is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "tell the store when the batch is applied"]
pub struct Staged {
    seq: Option<u64>,
    bytes: usize,
}

/// What a fold writes: the latest values and the records they cover.
pub(super) struct FoldPlan {
    /// Each key's latest value, in key order.
    values: Vec<(Vec<u8>, Option<IVec>)>,
    /// The record each value came from, in the same order.
    seqs: Vec<u64>,
    records: Vec<u64>,
}

impl FoldPlan {
    /// Write the values into their pages, then remove the records, oldest first, each
    /// alone.
    ///
    /// Not one sled batch: a batch holds off every other write to the database while it
    /// applies (one removing 1,024 records took 4-11 ms, stalling ingest and commits).
    /// One by one is as safe, because sled recovers a prefix of its log (in log order,
    /// up to the last complete message: `pagecache/iterator.rs`) and this thread writes
    /// in this order: a crash before the removals leaves every record, and reading them
    /// back gives the values written here again; a crash among them leaves the newest
    /// records, whose values are the latest, never an older record without the newer
    /// ones that overwrote it.
    pub(super) fn write(
        &self,
        tree: &sled::Tree,
        pages: &Pages,
        journal: &Journal,
    ) -> Result<(), StoreError> {
        pages.write(tree, &self.values)?;
        for seq in &self.records {
            tree.remove(journal.record_key(*seq))?;
        }
        Ok(())
    }

    /// Whether there is nothing to fold.
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records the fold covers.
    pub(super) fn records(&self) -> usize {
        self.records.len()
    }

    /// Keys the fold writes.
    pub(super) fn keys(&self) -> usize {
        self.values.len()
    }
}

impl Journal {
    /// Read back the records under `prefix` in `tree` (left by the last process).
    pub(super) fn recover(tree: &sled::Tree, prefix: &[u8]) -> Result<Journal, StoreError> {
        let mut waiting = Waiting::default();
        for entry in tree.scan_prefix(prefix) {
            let (key, record) = entry?;
            let seq = key
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt(format!("journal key {key:?}")))?;
            let (common, writes) = decode(&record)
                .ok_or_else(|| StoreError::Corrupt(format!("journal record {seq}")))?;
            for (suffix, value) in writes {
                waiting.put([common, suffix].concat(), seq, value.map(IVec::from));
            }
            waiting.records.insert(seq, record.len());
            waiting.record_bytes += record.len();
            waiting.next_seq = seq + 1;
        }
        Ok(Journal {
            prefix: prefix.to_vec(),
            waiting: Mutex::new(waiting),
            folding: Mutex::new(()),
        })
    }

    fn record_key(&self, seq: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + 8);
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        // Every mutation below completes before it can panic (allocation aside), so a
        // poisoned lock still guards consistent data.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a record of `writes` to `batch`; their tree keys are `common` followed by
    /// each write's key. Records are read back in the order of their sequence numbers,
    /// taken here: callers commit any one key from one thread at a time (the daemon
    /// stages and applies under its commit lock), so that is also the order they apply.
    pub(super) fn stage<'a>(
        &self,
        common: &[u8],
        writes: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        batch: &mut sled::Batch,
    ) -> Staged {
        if writes.len() == 0 {
            return Staged {
                seq: None,
                bytes: 0,
            };
        }
        let record = encode(common, writes);
        let seq = {
            let mut w = self.waiting();
            w.next_seq += 1;
            w.next_seq - 1
        };
        let bytes = record.len();
        batch.insert(self.record_key(seq), record);
        Staged {
            seq: Some(seq),
            bytes,
        }
    }

    /// The batch holding `staged` was applied: its writes (by tree key) are now the
    /// latest values.
    pub(super) fn applied(
        &self,
        staged: Staged,
        writes: impl Iterator<Item = (Vec<u8>, Option<IVec>)>,
    ) {
        let Some(seq) = staged.seq else { return };
        let mut w = self.waiting();
        for (key, value) in writes {
            w.put(key, seq, value);
        }
        w.records.insert(seq, staged.bytes);
        w.record_bytes += staged.bytes;
    }

    /// The journal's value for `key`: `Some(None)` means deleted.
    pub(super) fn get(&self, key: &[u8]) -> Option<Option<IVec>> {
        self.waiting().values.get(key).map(|(_, v)| v.clone())
    }

    /// The journal's values under `prefix`, in key order.
    pub(super) fn range_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Option<IVec>)> {
        self.waiting()
            .values
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether enough is waiting to fold.
    pub(super) fn fold_due(&self) -> bool {
        let w = self.waiting();
        w.records.len() >= FOLD_RECORDS
            || w.value_bytes >= FOLD_VALUE_BYTES
            || w.record_bytes >= FOLD_RECORD_BYTES
    }

    /// Start a fold: hold the returned guard until [`Journal::folded`] (or until the
    /// fold failed). Commits may go on meanwhile; what they add waits for the next fold.
    pub(super) fn plan(&self) -> (MutexGuard<'_, ()>, FoldPlan) {
        let guard = self.folding.lock().unwrap_or_else(|e| e.into_inner());
        let w = self.waiting();
        let plan = FoldPlan {
            values: w
                .values
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.clone()))
                .collect(),
            seqs: w.values.values().map(|(seq, _)| *seq).collect(),
            records: w.records.keys().copied().collect(),
        };
        drop(w);
        (guard, plan)
    }

    /// `plan` was written: forget what it covered (values committed since stay).
    pub(super) fn folded(&self, plan: FoldPlan) {
        let mut w = self.waiting();
        for ((key, _), seq) in plan.values.into_iter().zip(plan.seqs) {
            if w.values.get(&key).is_some_and(|(s, _)| *s == seq)
                && let Some((_, v)) = w.values.remove(&key)
            {
                w.value_bytes -= weight(&key, &v);
            }
        }
        for seq in &plan.records {
            if let Some(bytes) = w.records.remove(seq) {
                w.record_bytes -= bytes;
            }
        }
    }

    /// Records waiting to be folded.
    pub(super) fn records(&self) -> usize {
        self.waiting().records.len()
    }
}

impl Waiting {
    fn put(&mut self, key: Vec<u8>, seq: u64, value: Option<IVec>) {
        let added = weight(&key, &value);
        if let Some((_, old)) = self.values.insert(key.clone(), (seq, value)) {
            self.value_bytes -= weight(&key, &old);
        }
        self.value_bytes += added;
    }
}

fn weight(key: &[u8], value: &Option<IVec>) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len())
}

/// A record: the length (u32, big-endian) and bytes of the prefix its keys share, the
/// number of writes (u32), then for each write the rest of its key (length and bytes),
/// then 0 for a delete or 1 and the value (length and bytes).
fn encode<'a>(
    common: &[u8],
    writes: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(common.len() as u32).to_be_bytes());
    out.extend_from_slice(common);
    out.extend_from_slice(&(writes.len() as u32).to_be_bytes());
    for (key, value) in writes {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

type Writes<'a> = Vec<(&'a [u8], Option<&'a [u8]>)>;

/// The shared key prefix and the writes of a record, or `None` if it is malformed.
fn decode(mut record: &[u8]) -> Option<(&[u8], Writes<'_>)> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = buf.split_at_checked(n)?;
        *buf = tail;
        Some(head)
    }
    fn len(buf: &mut &[u8]) -> Option<usize> {
        Some(u32::from_be_bytes(take(buf, 4)?.try_into().ok()?) as usize)
    }
    let n = len(&mut record)?;
    let common = take(&mut record, n)?;
    let count = len(&mut record)?;
    let mut out = Vec::with_capacity(count.min(record.len()));
    for _ in 0..count {
        let n = len(&mut record)?;
        let key = take(&mut record, n)?;
        let value = match take(&mut record, 1)?[0] {
            0 => None,
            1 => {
                let n = len(&mut record)?;
                Some(take(&mut record, n)?)
            }
            _ => return None,
        };
        out.push((key, value));
    }
    record.is_empty().then_some((common, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_malformed_ones_are_refused() {
        let writes: Writes<'_> = vec![(b"k1", Some(b"v")), (b"", Some(b"")), (b"gone", None)];
        let record = encode(b"scope/", writes.clone().into_iter());
        assert_eq!(decode(&record), Some((b"scope/".as_slice(), writes)));
        for cut in 1..record.len() {
            assert_eq!(decode(&record[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            decode(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 7]),
            None,
            "bad tag"
        );
        let mut longer = record.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None, "trailing bytes");
    }
}
