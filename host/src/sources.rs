//! Pull sources: where the daemon fetches a tenant's events itself, rather than waiting
//! for them to be pushed to `POST /v1/events`. The first is Slack's Audit Logs API
//! ([`slack_audit`]); another source implements [`PullSource`] (one page of entries in
//! a time window) and gets the rest from the [`walk::Walker`]: time slices walked page
//! by page, a durable watermark with an overlap window re-read on every walk, entries
//! deduplicated by id, each slice handed over in time order with the [`Mark`] to commit
//! with it, so a restart (or `kill -9`) leaves no gap and no duplicate.

pub mod slack_audit;
pub mod walk;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A time window, in whole seconds since the epoch, both ends included (as Slack's
/// `oldest` and `latest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The earliest second included.
    pub oldest: i64,
    /// The latest second included.
    pub latest: i64,
}

impl Window {
    /// Whether `second` falls in the window.
    pub fn contains(&self, second: i64) -> bool {
        (self.oldest..=self.latest).contains(&second)
    }
}

/// One entry as a source gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The source's unique id of the entry (for deduplication).
    pub id: String,
    /// When it happened, in seconds since the epoch.
    pub second: i64,
    /// The entry, as the source sent it (parsed by [`crate::ingest`] on the way in).
    pub raw: serde_json::Value,
}

/// One page of a window's entries, and where the next one starts (none: the last).
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Entries, in any order.
    pub entries: Vec<Entry>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The source asked to wait (HTTP 429 `Retry-After`).
    #[error("rate limited: retry in {0:?}")]
    RateLimited(Duration),
    /// A failure that may pass by itself (5xx, a timeout, a cut connection): retried
    /// after a growing backoff, the walk kept where it was.
    #[error("{0}")]
    Transient(String),
    /// The source refused the request for a reason only the tenant can fix (a bad or
    /// revoked token, a missing scope): retried rarely until the configuration changes.
    #[error("{0}")]
    Refused(String),
}

impl PullError {
    /// The short code shown in the source's status and metrics.
    pub fn code(&self) -> String {
        match self {
            PullError::RateLimited(_) => "rate_limited".into(),
            PullError::Transient(code) | PullError::Refused(code) => code.clone(),
        }
    }
}

/// Something the daemon pulls events from.
pub trait PullSource {
    /// The page of entries in `window` after `cursor` (none: the first page).
    fn page(&self, window: Window, cursor: Option<&str>) -> Result<Page, PullError>;
}

/// How far a source has been read, committed atomically with the events it let in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Every entry up to this second has been walked (later arrivals within the overlap
    /// window are read again on the next walk).
    pub watermark: i64,
    /// Ids of the entries let in whose second is within the overlap window below the
    /// watermark, with their seconds: what the next walk must not let in again.
    pub seen: Vec<(i64, String)>,
}
