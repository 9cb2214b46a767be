//! The durable inbox: accepted events get a per-tenant sequence number and are on disk
//! before ingest answers. Re-sent event ids are recognised and skipped (idempotent
//! retries). Flushes are shared: every request waiting when a flush starts is
//! acknowledged by it (group commit), so many requests cost one fsync.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::keys::{self, kind};
use crate::Event;

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

    async fn wait(&self) -> Result<(), InboxError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(|| InboxError::Flush("group commit stopped".into()))?
            .send(tx)
            .map_err(|_| InboxError::Flush("group commit stopped".into()))?;
        rx.await
            .map_err(|_| InboxError::Flush("group commit stopped".into()))?
            .map_err(InboxError::Flush)
    }
}

/// Per-tenant append position, behind a lock so sequence numbers are dense and ordered.
#[derive(Debug)]
struct TenantLog {
    next_seq: u64,
}

/// The inbox of every tenant.
pub struct Inbox {
    tree: sled::Tree,
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantLog>>>>,
    commit: GroupCommit,
}

impl Inbox {
    pub(crate) fn new(db: sled::Db, tree: sled::Tree) -> Self {
        Inbox {
            tree,
            tenants: Mutex::new(HashMap::new()),
            commit: GroupCommit::start(db),
        }
    }

    fn log(&self, tenant: &str) -> Result<Arc<Mutex<TenantLog>>, InboxError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = tenants.get(tenant) {
            return Ok(l.clone());
        }
        // Resume after the last stored event.
        let prefix = keys::key(kind::INBOX, &[tenant.as_bytes()]);
        let next_seq = match self.tree.scan_prefix(&prefix).next_back() {
            Some(r) => keys::seq_of(&r?.0).map_or(0, |s| s + 1),
            None => 0,
        };
        let l = Arc::new(Mutex::new(TenantLog { next_seq }));
        tenants.insert(tenant.to_owned(), l.clone());
        Ok(l)
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
        events: &[Event],
        processed: u64,
        bound: u64,
    ) -> Result<Ingested, InboxError> {
        let mut out = Ingested::default();
        {
            let log = self.log(tenant)?;
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let pending = log.next_seq.saturating_sub(processed);
            if pending + events.len() as u64 > bound {
                return Err(InboxError::Full { pending, bound });
            }
            let mut batch = sled::Batch::default();
            let mut seen = HashSet::new();
            let mut buf = Vec::new();
            for e in events {
                let id_key = keys::key(kind::EVENT_ID, &[tenant.as_bytes(), e.id.as_bytes()]);
                if !seen.insert(e.id.as_str()) || self.tree.contains_key(&id_key)? {
                    out.duplicates += 1;
                    continue;
                }
                let seq = log.next_seq + out.accepted as u64;
                buf.clear();
                aer_wire::encode_event(e, &mut buf);
                batch.insert(keys::seq_key(kind::INBOX, tenant, seq), buf.as_slice());
                batch.insert(id_key, &seq.to_be_bytes());
                out.first_seq.get_or_insert(seq);
                out.last_seq = Some(seq);
                out.accepted += 1;
            }
            self.tree.apply_batch(batch)?;
            log.next_seq += out.accepted as u64;
        }
        if out.accepted > 0 {
            self.commit.wait().await?;
        }
        Ok(out)
    }

    /// Up to `limit` stored events of `tenant` from sequence `from`, with their numbers.
    pub fn read(
        &self,
        tenant: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, InboxError> {
        let start = keys::seq_key(kind::INBOX, tenant, from);
        let end = keys::seq_key(kind::INBOX, tenant, u64::MAX);
        self.tree
            .range(start..end)
            .take(limit)
            .map(|r| {
                let (k, v) = r?;
                Ok((keys::seq_of(&k).unwrap_or(0), v.to_vec()))
            })
            .collect()
    }
}
