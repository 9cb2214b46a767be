//! The ledger: everything the daemon records, in one sled database under the data
//! directory, behind typed reads and writes. It alone knows the key layout
//! ([`keys`](self)): nothing outside it builds a sled key.
//!
//! Two trees. `meta`: tenants, token hashes, plugin records, policies, the format
//! marker and the random secret ([`meta`](self)). `pipeline`: the inbox ([`inbox`]),
//! plugin state (kept by [`crate::store::SledStore`] under the ledger's layout),
//! findings and the decision queue, decisions and the responses pending on them, the
//! action log, dead letters, and the cursors and counters the stages keep; in one tree,
//! so what one step of a stage produces lands in one atomic [`Commit`] (a detector
//! batch's state writes, findings and advanced cursor: all or none).

mod actions;
mod counters;
mod dead_letters;
mod decisions;
mod findings;
pub mod format;
pub mod inbox;
mod keys;
mod meta;
mod notices;
mod partition;
mod records;
mod reviews;
mod sessions;
mod sources;
mod triage;

pub use meta::SharedRecord;

use std::path::Path;

pub use actions::ActionKey;
pub use findings::Queued;
pub use notices::DigestLine;
pub use records::{ActionEntry, DeadLetter, StoredDecision, StoredFinding};
pub use reviews::{Dismissal, Review, ReviewKind, ReviewState};
pub use triage::{CloseReason, Triage, TriageStatus, Triaged};

/// Why a ledger read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database failed.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not parse, or a record does not serialise.
    #[error("{what} record: {source}")]
    Record {
        /// Which kind of record.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored key does not have the layout's shape.
    #[error("a malformed {what} key")]
    MalformedKey {
        /// Which kind of key.
        what: &'static str,
    },
    /// A record another one refers to is not there.
    #[error("{what} is not recorded")]
    Missing {
        /// What is missing.
        what: &'static str,
    },
    /// A paging cursor that the ledger did not give out.
    #[error("`after` is not a cursor")]
    BadCursor,
    /// The data directory could not be read or written.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Which path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory holds a database that is missing, damaged or not AER's:
    /// the daemon refuses to start rather than start empty.
    #[error(
        "data directory {path}: {why}; restore it from a backup or move it aside to start afresh"
    )]
    Corrupt {
        /// The data directory.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// No randomness for the host secret.
    #[error("the random secret: {0}")]
    Random(#[from] getrandom::Error),
    /// The plugin state store could not be opened.
    #[error("plugin state: {0}")]
    State(#[from] crate::store::StoreError),
}

/// A record that does not parse or serialise, as a [`LedgerError`].
fn json(what: &'static str) -> impl Fn(serde_json::Error) -> LedgerError {
    move |source| LedgerError::Record { what, source }
}

/// Writes that land together or not at all: see [`Ledger::commit`].
#[derive(Default)]
pub struct Commit {
    batch: sled::Batch,
}

impl Commit {
    /// The batch plugin state writes are staged into (see
    /// [`crate::store::SledStore::stage`]).
    pub fn state_batch(&mut self) -> &mut sled::Batch {
        &mut self.batch
    }
}

/// One page of a listing: the items, and the cursor to go on from (`None` once there
/// is nothing after).
#[derive(Debug)]
pub struct Page<T, C = u64> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts.
    pub next: Option<C>,
}

/// Records a page looks at, at most: a filter that matches little answers a partial
/// page (with `next`) instead of reading a tenant's whole history.
pub const MAX_SCANNED: usize = 10_000;

/// The daemon's database.
#[derive(Clone)]
pub struct Ledger {
    db: sled::Db,
    meta: sled::Tree,
    pipeline: sled::Tree,
}

impl Ledger {
    /// Open (or create) the database under the data directory `data`, checking its
    /// format marker (see [`format`](mod@format)), and bring records of earlier versions up to
    /// date.
    pub fn open(data: &Path) -> Result<Ledger, LedgerError> {
        let (db, meta) = format::open(data)?;
        let pipeline = db.open_tree("pipeline")?;
        let ledger = Ledger { db, meta, pipeline };
        ledger.migrate_decision_cursors()?;
        Ok(ledger)
    }

    /// The durable inbox, in this database (see [`inbox::Inbox`]).
    pub fn inbox(&self, dedupe_window: usize) -> Result<inbox::Inbox, LedgerError> {
        Ok(inbox::Inbox::new(
            self.db.clone(),
            self.pipeline.clone(),
            dedupe_window,
        )?)
    }

    /// The plugin state store, in this database under the ledger's layout, with a read
    /// cache of `cache_bytes`.
    pub fn state_store(&self, cache_bytes: u64) -> Result<crate::store::SledStore, LedgerError> {
        Ok(crate::store::SledStore::in_tree(
            self.db.clone(),
            self.pipeline.clone(),
            keys::STATE_LAYOUT,
            cache_bytes,
        )?)
    }

    /// Apply `commit` atomically.
    pub fn commit(&self, commit: Commit) -> Result<(), LedgerError> {
        Ok(self.pipeline.apply_batch(commit.batch)?)
    }

    /// Flush everything written so far to disk.
    pub fn flush(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        Ok(())
    }

    /// The host secret behind the plugins' WASI random seeds, made on first use.
    pub fn random_secret(&self) -> Result<[u8; 32], LedgerError> {
        format::random_secret(&self.meta)
    }

    /// Replace the host secret (a cluster node takes the cluster's, so every node
    /// seeds a plugin's randomness alike and a partition replayed elsewhere comes out
    /// the same); durable on return.
    pub fn set_random_secret(&self, secret: &[u8; 32]) -> Result<(), LedgerError> {
        self.meta
            .insert(keys::key(keys::kind::RANDOM_SECRET, &[]), secret.as_slice())?;
        self.flush()
    }

    /// A JSON record of the pipeline tree (`what` names it in an error).
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        what: &'static str,
    ) -> Result<Option<T>, LedgerError> {
        self.pipeline
            .get(key)?
            .map(|v| serde_json::from_slice(&v).map_err(json(what)))
            .transpose()
    }

    /// A big-endian u64 record of the pipeline tree (absent: 0).
    fn get_u64(&self, key: &[u8]) -> Result<u64, LedgerError> {
        Ok(self
            .pipeline
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// The seq after the last key under `prefix` (0 when there is none).
    fn next_seq(&self, prefix: &[u8]) -> Result<u64, LedgerError> {
        Ok(match self.pipeline.scan_prefix(prefix).next_back() {
            Some(r) => keys::seq_of(&r?.0).map_or(0, |s| s + 1),
            None => 0,
        })
    }

    /// A page of `tenant`'s `kind` records (keyed by seq) after seq `after`: up to
    /// `limit` that `keep` selects, looking at no more than [`MAX_SCANNED`]; `next` is
    /// the last seq looked at.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        kind: u8,
        what: &'static str,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, LedgerError> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        let range = keys::seq_key(kind, tenant, from)..keys::seq_key(kind, tenant, u64::MAX);
        let (items, next, _) = self.scan(what, self.pipeline.range(range), limit, keep)?;
        Ok(Page { items, next })
    }

    /// [`Ledger::page`] newest first: `tenant`'s `kind` records before seq `before`
    /// (all, without it); `next` is the last seq looked at, to go on before, and none
    /// once the oldest was looked at.
    fn page_back<T: serde::de::DeserializeOwned>(
        &self,
        kind: u8,
        what: &'static str,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, LedgerError> {
        let until = before.unwrap_or(u64::MAX);
        let range = keys::seq_key(kind, tenant, 0)..keys::seq_key(kind, tenant, until);
        let (items, next, ended) =
            self.scan(what, self.pipeline.range(range).rev(), limit, keep)?;
        Ok(Page {
            items,
            next: if ended { None } else { next },
        })
    }

    /// Up to `limit` of `records` that `keep` selects, looking at no more than
    /// [`MAX_SCANNED`]: the items, the last seq looked at, and whether `records` ran
    /// out.
    fn scan<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        records: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<T>, Option<u64>, bool), LedgerError> {
        let mut items = Vec::new();
        let mut next = None;
        for (scanned, r) in records.enumerate() {
            if scanned == MAX_SCANNED {
                return Ok((items, next, false));
            }
            let (k, v) = r?;
            next = keys::seq_of(&k);
            let item: T = serde_json::from_slice(&v).map_err(json(what))?;
            if keep(&item) {
                items.push(item);
                if items.len() == limit {
                    return Ok((items, next, false));
                }
            }
        }
        Ok((items, next, true))
    }

    /// Remove every pipeline record of `tenant` (its deletion).
    pub fn remove_tenant_records(&self, tenant: &str) -> Result<(), LedgerError> {
        for kind in keys::TENANT_PIPELINE_KINDS {
            let mut batch = sled::Batch::default();
            for k in self
                .pipeline
                .scan_prefix(keys::key(kind, &[tenant.as_bytes()]))
                .keys()
            {
                batch.remove(k?);
            }
            self.pipeline.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Changes to `tenant`'s findings, decisions or action log as they are written.
    pub fn watch(&self, tenant: &str, what: Watched) -> sled::Subscriber {
        let kind = match what {
            Watched::Findings => keys::kind::FINDING,
            Watched::Decisions => keys::kind::DECISION,
            Watched::Actions => keys::kind::ACTION,
        };
        self.pipeline
            .watch_prefix(keys::key(kind, &[tenant.as_bytes()]))
    }
}

/// What [`Ledger::watch`] can watch.
#[derive(Debug, Clone, Copy)]
pub enum Watched {
    /// Findings.
    Findings,
    /// Decisions.
    Decisions,
    /// The action log.
    Actions,
}
