//! The durable inbox: accepted events get a per-tenant sequence number and are on disk
//! before ingest answers. Re-sent event ids are recognised and skipped (idempotent
//! retries) within a window of each tenant's latest events, kept in memory as 128-bit
//! hashes and rebuilt from the stored events on start. Flushes are shared: every request waiting when a flush starts is
//! acknowledged by it (group commit), so many requests cost one fsync.
//!
//! A request's accepted events are stored in chunks of up to 64 KiB (one sled value
//! keyed by the sequence number of its first event: a count, then each encoded event
//! with its length), written in one atomic batch, so ingest writes a value per hundred
//! events or so rather than one per event, and a reader takes a few chunks for a batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::keys::{self, kind};
use crate::ingest::Storable;

/// What one ingest call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ingested {
    /// New events stored.
    pub accepted: usize,
    /// Events whose id was already stored (or repeated in the request): skipped.
    pub duplicates: usize,
    /// Sequence number of the first accepted event, if any.
    pub first_seq: Option<u64>,
    /// Sequence number of the last accepted event, if any.
    pub last_seq: Option<u64>,
}

/// Why events were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The tenant's inbox holds too many unprocessed events.
    #[error("inbox full: {pending} events waiting, the bound is {bound}; retry later")]
    Full {
        /// Events waiting.
        pending: u64,
        /// The bound.
        bound: u64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    /// The flush failed: nothing from this request is acknowledged.
    #[error("flush failed: {0}")]
    Flush(String),
    /// A stored chunk does not parse.
    #[error("corrupt inbox chunk at seq {0}")]
    Corrupt(u64),
    /// A source's mark does not serialise.
    #[error("source mark: {0}")]
    Mark(#[from] serde_json::Error),
}

/// Byte ranges of the events in a chunk, or `None` if it does not parse.
pub fn chunk_entries(chunk: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let n = u32::from_le_bytes(chunk.get(..4)?.try_into().ok()?) as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(chunk.len() / 4));
    for _ in 0..n {
        let len = u32::from_le_bytes(chunk.get(at..at + 4)?.try_into().ok()?) as usize;
        let range = at + 4..at.checked_add(4 + len)?;
        chunk.get(range.clone())?;
        at = range.end;
        out.push(range);
    }
    (at == chunk.len()).then_some(out)
}

/// Events read from the inbox: (seq, encoded event), in order, borrowed from the
/// chunks that hold them.
#[derive(Default)]
pub struct InboxEvents {
    chunks: Vec<sled::IVec>,
    entries: Vec<(u64, usize, std::ops::Range<usize>)>,
}

impl InboxEvents {
    /// Each event's seq and encoding ([`aer_wire::encode_event`]), in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.entries
            .iter()
            .map(|(seq, c, r)| (*seq, &self.chunks[*c][r.clone()]))
    }

    /// The seq of the last event, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|(seq, _, _)| *seq)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Shares one `flush` among every waiter queued when it starts.
struct GroupCommit {
    tx: Option<mpsc::UnboundedSender<Waiter>>,
    flushes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GroupCommit {
    /// Stop the thread and wait, so the database is closed when the daemon is.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupCommit {
    fn start(db: sled::Db) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        let flushes = Arc::new(AtomicU64::new(0));
        let count = flushes.clone();
        let thread = std::thread::Builder::new()
            .name("aer-group-commit".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut waiters = vec![first];
                    while let Ok(w) = rx.try_recv() {
                        waiters.push(w);
                    }
                    let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                    count.fetch_add(1, Ordering::Relaxed);
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            })
            .expect("can spawn the group-commit thread");
        GroupCommit {
            tx: Some(tx),
            flushes,
            thread: Some(thread),
        }
    }

    fn ask(&self) -> Result<oneshot::Receiver<Result<(), String>>, InboxError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(|| InboxError::Flush("group commit stopped".into()))?
            .send(tx)
            .map_err(|_| InboxError::Flush("group commit stopped".into()))?;
        Ok(rx)
    }

    async fn wait(&self) -> Result<(), InboxError> {
        self.ask()?
            .await
            .map_err(|_| InboxError::Flush("group commit stopped".into()))?
            .map_err(InboxError::Flush)
    }

    fn wait_blocking(&self) -> Result<(), InboxError> {
        self.ask()?
            .blocking_recv()
            .map_err(|_| InboxError::Flush("group commit stopped".into()))?
            .map_err(InboxError::Flush)
    }
}

/// Per-tenant append position, behind a lock so sequence numbers are dense and ordered.
#[derive(Debug)]
struct TenantLog {
    next_seq: u64,
    recent: RecentIds,
}

/// Hashes of a tenant's latest event ids, oldest first, at most `window` of them.
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<u128>,
    order: VecDeque<u128>,
}

impl RecentIds {
    fn contains(&self, h: u128) -> bool {
        self.set.contains(&h)
    }

    fn push(&mut self, h: u128, window: usize) {
        if window == 0 || !self.set.insert(h) {
            return;
        }
        self.order.push_back(h);
        while self.order.len() > window {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// Two independently keyed hashers: an id's 128-bit hash. Random per process, which
/// is fine since the hashes are never stored.
#[derive(Debug, Default)]
struct IdHasher(RandomState, RandomState);

impl IdHasher {
    fn hash(&self, id: &str) -> u128 {
        (u128::from(self.0.hash_one(id)) << 64) | u128::from(self.1.hash_one(id))
    }
}

/// The inbox of every tenant.
pub struct Inbox {
    tree: sled::Tree,
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantLog>>>>,
    commit: GroupCommit,
    ids: IdHasher,
    window: usize,
}

/// Largest inbox chunk, in bytes (a request's events take as many chunks as they
/// need): well below the size past which sled writes a value to a file of its own.
const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// The inbox layout this version writes: 2, chunks of events (1 was one value per
/// event).
const LAYOUT: u8 = 2;

/// Rewrite a first-layout inbox (one value per event, keyed by its seq) as one-event
/// chunks, in one atomic batch, and record the layout.
fn migrate(tree: &sled::Tree) -> Result<(), sled::Error> {
    let layout_key = [kind::LAYOUT];
    if tree
        .get(layout_key)?
        .is_some_and(|v| v.as_ref() == [LAYOUT])
    {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    let mut moved = 0usize;
    for r in tree.scan_prefix([kind::INBOX]) {
        let (k, event) = r?;
        let mut chunk = Vec::with_capacity(event.len() + 8);
        chunk.extend_from_slice(&1u32.to_le_bytes());
        chunk.extend_from_slice(&(event.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&event);
        batch.insert(k, chunk);
        moved += 1;
    }
    // The first layout's id index: resent events are now recognised in memory.
    for r in tree.scan_prefix([kind::EVENT_ID]) {
        batch.remove(r?.0);
    }
    batch.insert(&layout_key, &[LAYOUT]);
    tree.apply_batch(batch)?;
    if moved > 0 {
        tracing::info!(events = moved, "inbox rewritten in the chunked layout");
    }
    Ok(())
}

impl Inbox {
    /// The inbox in `tree`, flushing `db` for durability; resent events are recognised
    /// among each tenant's latest `window` events.
    pub fn new(db: sled::Db, tree: sled::Tree, window: usize) -> Result<Self, sled::Error> {
        migrate(&tree)?;
        Ok(Inbox {
            tree,
            tenants: Mutex::new(HashMap::new()),
            commit: GroupCommit::start(db),
            ids: IdHasher::default(),
            window,
        })
    }

    fn log(&self, tenant: &str) -> Result<Arc<Mutex<TenantLog>>, InboxError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = tenants.get(tenant) {
            return Ok(l.clone());
        }
        // Resume after the last stored event, knowing the ids of the latest `window`.
        let prefix = keys::key(kind::INBOX, &[tenant.as_bytes()]);
        let mut next_seq = None;
        let mut latest: Vec<u128> = Vec::new();
        for r in self.tree.scan_prefix(&prefix).rev() {
            // The newest chunk is read whatever the window: it gives the next seq.
            if next_seq.is_some() && latest.len() >= self.window {
                break;
            }
            let (k, chunk) = r?;
            let first = keys::seq_of(&k).unwrap_or(0);
            let entries = chunk_entries(&chunk).ok_or(InboxError::Corrupt(first))?;
            next_seq.get_or_insert(first + entries.len() as u64);
            for range in entries.into_iter().rev() {
                let id = aer_wire::encoded_id(&chunk[range]).ok_or(InboxError::Corrupt(first))?;
                latest.push(self.ids.hash(id));
            }
        }
        let mut recent = RecentIds::default();
        for h in latest.into_iter().rev() {
            recent.push(h, self.window);
        }
        let l = Arc::new(Mutex::new(TenantLog {
            next_seq: next_seq.unwrap_or(0),
            recent,
        }));
        tenants.insert(tenant.to_owned(), l.clone());
        Ok(l)
    }

    /// Forget what is kept in memory of `tenant`'s inbox (after its records were
    /// deleted): a tenant created again under the name starts afresh.
    pub fn forget(&self, tenant: &str) {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }

    /// Sequence number the next accepted event of `tenant` will get.
    pub fn next_seq(&self, tenant: &str) -> Result<u64, InboxError> {
        let log = self.log(tenant)?;
        let next = log.lock().unwrap_or_else(|e| e.into_inner()).next_seq;
        Ok(next)
    }

    /// Number of flushes so far (each acknowledges every request waiting on it).
    pub fn flushes(&self) -> u64 {
        self.commit.flushes.load(Ordering::Relaxed)
    }

    /// Store events durably; answers once they are on disk. `processed` is the lowest
    /// sequence number any consumer still needs (for the bound).
    pub async fn append(
        &self,
        tenant: &str,
        events: &[impl Storable],
        processed: u64,
        bound: u64,
    ) -> Result<Ingested, InboxError> {
        let out = self.store(tenant, events, processed, bound)?;
        if out.accepted > 0 {
            self.durable().await?;
        }
        Ok(out)
    }

    /// Wait until everything stored so far is on disk (a flush shared with every
    /// request waiting when it starts).
    pub async fn durable(&self) -> Result<(), InboxError> {
        self.commit.wait().await
    }

    /// [`Inbox::durable`] for a thread outside the async runtime.
    pub fn durable_blocking(&self) -> Result<(), InboxError> {
        self.commit.wait_blocking()
    }

    /// Store events, not yet durable (see [`Inbox::durable`]); blocking, so async
    /// callers run it on a blocking thread. Arguments as for [`Inbox::append`].
    pub fn store(
        &self,
        tenant: &str,
        events: &[impl Storable],
        processed: u64,
        bound: u64,
    ) -> Result<Ingested, InboxError> {
        self.store_with(tenant, events, processed, bound, None)
    }

    /// [`Inbox::store`], writing how far pull source `source` has been read with the
    /// events, in the same atomic batch: a crash leaves both or neither.
    pub fn store_marked(
        &self,
        tenant: &str,
        events: &[impl Storable],
        (processed, bound): (u64, u64),
        source: &str,
        mark: &crate::sources::Mark,
    ) -> Result<Ingested, InboxError> {
        let value = serde_json::to_vec(mark)?;
        let key = keys::key(kind::SOURCE_MARK, &[tenant.as_bytes(), source.as_bytes()]);
        self.store_with(tenant, events, processed, bound, Some((key, value)))
    }

    /// [`Inbox::store`] for a cluster node letting in one message of partition
    /// `partition`'s event stream: the message's stream sequence is written with the
    /// events, in the same atomic batch, so a message is let in once however often it
    /// is delivered ([`Inbox::stream_cursor`]).
    pub fn store_from_stream(
        &self,
        tenant: &str,
        events: &[impl Storable],
        (processed, bound): (u64, u64),
        (partition, stream_seq): (u32, u64),
    ) -> Result<Ingested, InboxError> {
        let value = stream_seq.to_be_bytes().to_vec();
        let key = keys::stream_cursor(partition);
        self.store_with(tenant, events, processed, bound, Some((key, value)))
    }

    /// Pass over message `stream_seq` of `partition` (one this host cannot read): only
    /// the stream cursor moves, so it is not delivered again.
    pub fn pass_over_stream(&self, partition: u32, stream_seq: u64) -> Result<(), InboxError> {
        self.tree
            .insert(keys::stream_cursor(partition), &stream_seq.to_be_bytes())?;
        Ok(())
    }

    /// The stream sequence of the last message of `partition` let into the inbox (0:
    /// none yet).
    pub fn stream_cursor(&self, partition: u32) -> Result<u64, InboxError> {
        Ok(self
            .tree
            .get(keys::stream_cursor(partition))?
            .and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?)))
            .unwrap_or(0))
    }

    fn store_with(
        &self,
        tenant: &str,
        events: &[impl Storable],
        processed: u64,
        bound: u64,
        also: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Ingested, InboxError> {
        let mut out = Ingested::default();
        {
            let log = self.log(tenant)?;
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let pending = log.next_seq.saturating_sub(processed);
            if pending + events.len() as u64 > bound {
                return Err(InboxError::Full { pending, bound });
            }
            let mut seen = HashSet::new();
            let mut fresh = Vec::with_capacity(events.len());
            let mut chunk = vec![0u8; 4];
            let mut chunk_first = None;
            let mut chunk_len = 0u32;
            let mut batch = sled::Batch::default();
            let mut buf = Vec::new();
            for e in events {
                let h = self.ids.hash(e.id());
                if log.recent.contains(h) || !seen.insert(h) {
                    out.duplicates += 1;
                    continue;
                }
                fresh.push(h);
                let seq = log.next_seq + out.accepted as u64;
                let bytes = e.encoded(&mut buf);
                if chunk.len() + bytes.len() > MAX_CHUNK_BYTES && chunk_len > 0 {
                    let first = chunk_first.take().unwrap_or(seq);
                    chunk[..4].copy_from_slice(&chunk_len.to_le_bytes());
                    batch.insert(
                        keys::seq_key(kind::INBOX, tenant, first),
                        std::mem::replace(&mut chunk, vec![0u8; 4]),
                    );
                    chunk_len = 0;
                }
                chunk_first.get_or_insert(seq);
                chunk_len += 1;
                chunk.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                chunk.extend_from_slice(bytes);
                out.first_seq.get_or_insert(seq);
                out.last_seq = Some(seq);
                out.accepted += 1;
            }
            if let Some(first) = chunk_first {
                chunk[..4].copy_from_slice(&chunk_len.to_le_bytes());
                batch.insert(keys::seq_key(kind::INBOX, tenant, first), chunk);
            }
            let marked = also.is_some();
            if let Some((k, v)) = also {
                batch.insert(k, v);
            }
            if out.accepted > 0 || marked {
                self.tree.apply_batch(batch)?;
                // Only ids that are stored count as seen.
                for h in fresh {
                    log.recent.push(h, self.window);
                }
            }
            log.next_seq += out.accepted as u64;
        }
        Ok(out)
    }

    /// Sequence number of the oldest event `tenant` has stored (its next one when it has
    /// none).
    pub fn first_seq(&self, tenant: &str) -> Result<u64, InboxError> {
        let prefix = keys::key(kind::INBOX, &[tenant.as_bytes()]);
        match self.tree.scan_prefix(prefix).keys().next() {
            Some(k) => Ok(keys::seq_of(&k?).unwrap_or(0)),
            None => self.next_seq(tenant),
        }
    }

    /// Remove `tenant`'s stored events before sequence `before`, a whole chunk at a
    /// time (a chunk holding `before` stays), never the newest chunk: the next sequence
    /// number is found from it on start. The number of events removed.
    pub fn trim(&self, tenant: &str, before: u64) -> Result<u64, InboxError> {
        /// Chunks removed per sled batch, so a trim never holds off other writers long.
        const CHUNKS_PER_BATCH: usize = 64;
        let lowest = keys::seq_key(kind::INBOX, tenant, 0);
        let newest = match self
            .tree
            .scan_prefix(keys::key(kind::INBOX, &[tenant.as_bytes()]))
            .keys()
            .next_back()
        {
            Some(k) => k?,
            None => return Ok(0),
        };
        // Chunk starts from the oldest to the first at or past `before` (or the newest):
        // each chunk ends where the next one starts.
        let mut bounds: Vec<sled::IVec> = Vec::new();
        for k in self.tree.range(sled::IVec::from(lowest)..=newest).keys() {
            let k = k?;
            let past = keys::seq_of(&k).is_none_or(|s| s >= before);
            bounds.push(k);
            if past {
                break;
            }
        }
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for pair in bounds.windows(2) {
            let (start, end) = (
                keys::seq_of(&pair[0]).unwrap_or(0),
                keys::seq_of(&pair[1]).unwrap_or(0),
            );
            if end > before {
                break;
            }
            batch.remove(pair[0].clone());
            removed += end - start;
            in_batch += 1;
            if in_batch == CHUNKS_PER_BATCH {
                self.tree.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            self.tree.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// Up to `limit` stored events of `tenant` from sequence `from`, with their numbers.
    pub fn read(&self, tenant: &str, from: u64, limit: usize) -> Result<InboxEvents, InboxError> {
        let lowest = keys::seq_key(kind::INBOX, tenant, 0);
        let end = keys::seq_key(kind::INBOX, tenant, u64::MAX);
        // The chunk holding `from` starts at or before it.
        let start = match self
            .tree
            .range(lowest..=keys::seq_key(kind::INBOX, tenant, from))
            .next_back()
        {
            Some(r) => r?.0,
            None => keys::seq_key(kind::INBOX, tenant, from).into(),
        };
        let mut out = InboxEvents::default();
        for r in self.tree.range(start..sled::IVec::from(end)) {
            if out.entries.len() >= limit {
                break;
            }
            let (k, chunk) = r?;
            let first = keys::seq_of(&k).unwrap_or(0);
            let entries = chunk_entries(&chunk).ok_or(InboxError::Corrupt(first))?;
            let c = out.chunks.len();
            for (seq, range) in (first..).zip(entries) {
                if seq >= from && out.entries.len() < limit {
                    out.entries.push((seq, c, range));
                }
            }
            out.chunks.push(chunk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(ids: std::ops::Range<u32>) -> Vec<crate::Event> {
        let text: String = ids
            .map(|i| {
                format!(
                    "{{\"id\":\"e{i}\",\"time_ms\":{i},\"action\":\"a{i}\",\"actor\":\"U1\"}}\n"
                )
            })
            .collect();
        crate::ingest::parse(&text).events
    }

    fn actions(got: &InboxEvents) -> Vec<(u64, String)> {
        got.iter()
            .map(|(seq, bytes)| {
                (
                    seq,
                    aer_wire::encoded_action(bytes).unwrap_or("?").to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn reads_any_range_across_chunks_and_skips_resent_ids() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let inbox = Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 100).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let a = rt
            .block_on(inbox.append("acme", &events(0..3), 0, 100))
            .unwrap();
        assert_eq!((a.accepted, a.first_seq, a.last_seq), (3, Some(0), Some(2)));
        // Two resent, three new: one chunk of three from seq 3.
        let b = rt
            .block_on(inbox.append("acme", &events(1..6), 0, 100))
            .unwrap();
        assert_eq!((b.accepted, b.duplicates, b.first_seq), (3, 2, Some(3)));
        let want = |r: std::ops::Range<u64>| -> Vec<(u64, String)> {
            r.map(|s| (s, format!("a{s}"))).collect()
        };
        assert_eq!(actions(&inbox.read("acme", 0, 100).unwrap()), want(0..6));
        assert_eq!(actions(&inbox.read("acme", 2, 2).unwrap()), want(2..4));
        assert_eq!(actions(&inbox.read("acme", 4, 100).unwrap()), want(4..6));
        assert!(inbox.read("acme", 6, 100).unwrap().is_empty());
        assert!(inbox.read("other", 0, 100).unwrap().is_empty());
        // A restarted inbox carries on after the last chunk.
        drop(inbox);
        let inbox = Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 100).unwrap();
        assert_eq!(inbox.next_seq("acme").unwrap(), 6);
    }

    // Regression: with deduplication off (`ingest.dedupe_window_events = 0`) a
    // restarted inbox began again at seq 0, writing over the stored events.
    #[test]
    fn with_no_dedupe_window_a_restarted_inbox_still_carries_on_after_the_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let inbox = Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 0).unwrap();
        inbox.store("acme", &events(0..4), 0, 100).unwrap();
        drop(inbox);
        let inbox = Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 0).unwrap();
        assert_eq!(inbox.next_seq("acme").unwrap(), 4);
        let again = inbox.store("acme", &events(0..2), 0, 100).unwrap();
        assert_eq!(again.first_seq, Some(4), "nothing written over");
        assert_eq!(inbox.read("acme", 0, 100).unwrap().iter().count(), 6);
    }

    #[test]
    fn resent_ids_are_recognised_within_the_window_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let open = || Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 3).unwrap();
        let inbox = open();
        let append = |inbox: &Inbox, ids| {
            rt.block_on(inbox.append("acme", &events(ids), 0, 100))
                .unwrap()
        };
        assert_eq!(append(&inbox, 0..5).accepted, 5);
        // e2..e4 are the latest three: recognised; e1 has left the window.
        let again = append(&inbox, 1..5);
        assert_eq!((again.accepted, again.duplicates), (1, 3));
        drop(inbox);
        let inbox = open();
        // The window after the restart: e3, e4, then the re-sent e1.
        let again = append(&inbox, 1..5);
        assert_eq!((again.accepted, again.duplicates), (1, 3), "{again:?}");
        assert_eq!(inbox.next_seq("acme").unwrap(), 7);
    }

    #[test]
    fn trimming_removes_whole_chunks_before_a_seq_and_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let open = || Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 100).unwrap();
        let inbox = open();
        // Three requests, a chunk each: seqs 0-9, 10-19, 20-29.
        for ids in [0..10, 10..20, 20..30] {
            inbox.store("acme", &events(ids), 0, 100).unwrap();
        }
        inbox.store("other", &events(0..5), 0, 100).unwrap();
        // 15 falls in the second chunk, which stays.
        assert_eq!(inbox.trim("acme", 15).unwrap(), 10);
        assert_eq!(inbox.first_seq("acme").unwrap(), 10);
        assert_eq!(inbox.trim("acme", 15).unwrap(), 0);
        let read = inbox.read("acme", 0, 100).unwrap();
        assert_eq!(read.iter().next().map(|(seq, _)| seq), Some(10));
        assert_eq!(read.len(), 20);
        // Everything before 30 is asked for: the newest chunk stays, so the numbering
        // carries on after a restart.
        assert_eq!(inbox.trim("acme", 30).unwrap(), 10);
        assert_eq!(inbox.first_seq("acme").unwrap(), 20);
        drop(inbox);
        let inbox = open();
        assert_eq!(inbox.next_seq("acme").unwrap(), 30);
        let more = inbox.store("acme", &events(30..31), 0, 100).unwrap();
        assert_eq!(more.first_seq, Some(30));
        // Other tenants' events are untouched.
        assert_eq!(inbox.first_seq("other").unwrap(), 0);
        assert_eq!(inbox.read("other", 0, 100).unwrap().len(), 5);
    }

    #[test]
    fn a_first_layout_inbox_is_rewritten_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("pipeline").unwrap();
        for (seq, e) in (0u64..).zip(events(0..3)) {
            let mut buf = Vec::new();
            aer_wire::encode_event(&e, &mut buf);
            tree.insert(keys::seq_key(kind::INBOX, "acme", seq), buf)
                .unwrap();
        }
        let inbox = Inbox::new(db.clone(), tree, 100).unwrap();
        assert_eq!(inbox.next_seq("acme").unwrap(), 3);
        assert_eq!(
            actions(&inbox.read("acme", 1, 100).unwrap()),
            vec![(1, "a1".to_owned()), (2, "a2".to_owned())]
        );
    }

    #[test]
    fn a_corrupt_chunk_is_an_error() {
        assert!(chunk_entries(&[1, 0, 0, 0, 9, 0, 0, 0, 1]).is_none());
        assert!(chunk_entries(&[0, 0, 0, 0, 7]).is_none());
        assert_eq!(
            chunk_entries(&[1, 0, 0, 0, 1, 0, 0, 0, 7]),
            Some(std::iter::once(8..9).collect())
        );
    }
}
