//! The tenants' pull sources, polled by threads of their own (`sources.threads`): a
//! thread takes the tenant whose source is due soonest, reads one page
//! ([`crate::sources::walk`]), and gives it back with its next turn, so a slow or
//! hanging source holds one thread for one request at most, and a tenant's rate limit,
//! `Retry-After` or failures delay only its own source. A walked slice goes into the
//! inbox with the source's mark in one atomic write, durable before the next page.
//!
//! Each tenant has at most one source for now, Slack's Audit Logs API
//! ([`crate::sources::slack_audit`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Daemon, DaemonError, now_ms};
use crate::ledger::inbox::InboxError;
use crate::pipeline::policy::FieldError;
use crate::sources::slack_audit::{NAME, SlackAuditClient, SlackAuditConfig, SlackAuditInput};
use crate::sources::walk::{Slice, Step, WalkSettings, Walker};
use crate::sources::{Mark, PullError};

/// Longest wait after failures in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Wait after a refusal only the tenant can fix (a bad token), at least.
const REFUSED_WAIT: Duration = Duration::from_secs(300);
/// Wait when the inbox or the tenant's event rate cannot take a slice yet.
const FULL_WAIT: Duration = Duration::from_secs(5);
/// How often a suspended tenant's source looks again whether it was resumed.
const SUSPENDED_CHECK: Duration = Duration::from_secs(5);

/// A tenant's source as stored (the token with it, never shown).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSource {
    tenant: String,
    config: SlackAuditConfig,
}

/// What a source is doing and how its last calls went (since the daemon started).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// `walking` (a slice under way), `caught_up`, `waiting` (rate limited, or the
    /// inbox is full), `failing` (the last call failed), `suspended` (the tenant is), or
    /// `disabled`.
    pub state: &'static str,
    /// When the last call was made (ms since the epoch).
    pub last_call_ms: Option<i64>,
    /// When a call last succeeded.
    pub last_success_ms: Option<i64>,
    /// The last failure's code (`invalid_auth`, `http_503`, `rate_limited`, ...).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_ms: Option<i64>,
    /// Calls made.
    pub calls: u64,
    /// Entries let into the inbox.
    pub entries: u64,
    /// Entries read again and not let in (the overlap, a page read twice).
    pub duplicates: u64,
    /// Entries that did not parse as events (counted and logged, not let in).
    pub rejected: u64,
}

/// One tenant's source as the pollers keep it.
struct Polled {
    config: SlackAuditConfig,
    /// Taken by the thread polling it (`None` while it is).
    walker: Option<Walker>,
    /// Whether a thread is polling it (also across a change of its settings, so a
    /// poll begun before never runs beside one begun after).
    busy: bool,
    due: Instant,
    failures: u32,
    status: SourceStatus,
    /// Changed with the settings: a poll begun before commits nothing.
    generation: u64,
}

/// The pollers' shared schedule.
#[derive(Default)]
pub struct Sources {
    polled: Mutex<HashMap<String, Polled>>,
    changed: Condvar,
    generations: std::sync::atomic::AtomicU64,
}

impl Sources {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Polled>> {
        self.polled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Poll `config` for `tenant` from now on (a walk under way starts again).
    fn put(&self, tenant: &str, config: SlackAuditConfig, settings: WalkSettings) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut polled = self.lock();
        let (status, busy) = polled
            .remove(tenant)
            .map(|p| (p.status, p.busy))
            .unwrap_or_default();
        polled.insert(
            tenant.to_owned(),
            Polled {
                config,
                walker: Some(Walker::new(settings)),
                busy,
                due: Instant::now(),
                failures: 0,
                status,
                generation,
            },
        );
        self.changed.notify_all();
    }

    /// Stop polling `tenant`'s source, waiting for a poll under way to finish (so
    /// nothing of it is written after this returns).
    fn forget(&self, tenant: &str) {
        let mut polled = self.lock();
        while polled.get(tenant).is_some_and(|p| p.busy) {
            polled = self
                .changed
                .wait_timeout(polled, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        polled.remove(tenant);
    }

    /// The status of `tenant`'s source.
    fn status(&self, tenant: &str) -> Option<(SourceStatus, Option<Duration>)> {
        let polled = self.lock();
        let p = polled.get(tenant)?;
        let mut status = p.status.clone();
        if !p.config.enabled {
            status.state = "disabled";
        }
        Some((status, p.due.checked_duration_since(Instant::now())))
    }

    /// The next due source no thread is polling, taken (its walker out); waits up to
    /// `patience` for one.
    fn take(&self, patience: Duration) -> Option<(String, SlackAuditConfig, Walker, u64)> {
        let mut polled = self.lock();
        let now = Instant::now();
        let soonest = polled
            .iter()
            .filter(|(_, p)| !p.busy && p.walker.is_some() && p.config.enabled)
            .min_by_key(|(_, p)| p.due)
            .map(|(t, p)| (t.clone(), p.due));
        match soonest {
            Some((tenant, due)) if due <= now => {
                let p = polled.get_mut(&tenant)?;
                let walker = p.walker.take()?;
                p.busy = true;
                Some((tenant, p.config.clone(), walker, p.generation))
            }
            other => {
                let wait = other.map_or(patience, |(_, due)| (due - now).min(patience));
                drop(
                    self.changed
                        .wait_timeout(polled, wait)
                        .unwrap_or_else(|e| e.into_inner()),
                );
                None
            }
        }
    }

    /// Give a polled source back, recording how the poll went in its status and
    /// when it is polled next (unless its settings changed meanwhile).
    fn give_back(&self, tenant: &str, walker: Walker, generation: u64, outcome: Outcome) {
        let mut polled = self.lock();
        if let Some(p) = polled.get_mut(tenant) {
            p.busy = false;
            if p.generation == generation {
                p.walker = Some(walker);
                let after = outcome.note(p);
                p.due = Instant::now() + after;
            }
        }
        self.changed.notify_all();
    }
}

impl Daemon {
    /// The walk settings of a tenant's source under the operator's bounds.
    fn walk_settings(&self, config: &SlackAuditConfig) -> WalkSettings {
        WalkSettings {
            start: config.start,
            overlap: i64::from(config.overlap_seconds),
            max_entries: self.config.sources.max_slice_entries,
            max_seen: self.config.sources.max_seen_ids,
        }
    }

    /// Set `tenant`'s Slack Audit Logs source from a JSON body (fields not named are
    /// kept); field errors if it is invalid. What the API shows of it.
    pub fn set_source(&self, tenant: &str, body: &str) -> Result<Value, DaemonError> {
        let stored: Option<StoredSource> = self.ledger.source_record(tenant, NAME)?;
        let input = SlackAuditInput::from_json(body).map_err(DaemonError::Policy)?;
        let config = input
            .apply(
                stored.as_ref().map(|s| &s.config),
                now_ms().div_euclid(1_000),
                self.config.sources.max_calls_per_minute,
            )
            .map_err(DaemonError::Policy)?;
        if let Err(message) = self.outbound.check_slack_audit_url(&config.url) {
            return Err(DaemonError::Policy(vec![FieldError {
                field: "url".into(),
                message,
            }]));
        }
        let record = StoredSource {
            tenant: tenant.to_owned(),
            config: config.clone(),
        };
        self.ledger.put_source_record(tenant, NAME, &record)?;
        let settings = self.walk_settings(&config);
        self.sources.put(tenant, config, settings);
        Ok(self.source(tenant)?.unwrap_or(Value::Null))
    }

    /// `tenant`'s Slack Audit Logs source as the API shows it: its settings (the token
    /// hidden), how far it has been read, and its status; `None` if it has none.
    pub fn source(&self, tenant: &str) -> Result<Option<Value>, DaemonError> {
        let Some(stored) = self.ledger.source_record::<StoredSource>(tenant, NAME)? else {
            return Ok(None);
        };
        let mark = self.ledger.source_mark(tenant, NAME)?;
        let (status, next) = self.sources.status(tenant).unwrap_or_default();
        let now = now_ms().div_euclid(1_000);
        Ok(Some(json!({
            "source": NAME,
            "config": stored.config.redacted(),
            "watermark": mark.as_ref().map(|m| m.watermark),
            "watermark_time": mark.as_ref().and_then(|m| rfc3339(m.watermark)),
            "lag_seconds": mark.as_ref().map(|m| (now - m.watermark).max(0)),
            "next_call_in_ms": next.map(|d| d.as_millis() as u64),
            "status": status,
        })))
    }

    /// Remove `tenant`'s Slack Audit Logs source and how far it was read; whether it
    /// had one.
    pub fn remove_source(&self, tenant: &str) -> Result<bool, DaemonError> {
        let had = self
            .ledger
            .source_record::<StoredSource>(tenant, NAME)?
            .is_some();
        self.sources.forget(tenant);
        self.ledger.remove_source(tenant, NAME)?;
        Ok(had)
    }

    /// Poll `tenant`'s source as its stored settings now say (another cluster node
    /// changed them), or stop polling it if it has none.
    pub(crate) fn reload_source(&self, tenant: &str) -> Result<(), DaemonError> {
        match self.ledger.source_record::<StoredSource>(tenant, NAME)? {
            Some(stored) => {
                let settings = self.walk_settings(&stored.config);
                self.sources.put(tenant, stored.config, settings);
            }
            None => self.sources.forget(tenant),
        }
        Ok(())
    }

    /// Stop polling `tenant`'s sources and remove their settings (its deletion).
    pub(crate) fn forget_sources(&self, tenant: &str) -> Result<(), DaemonError> {
        self.sources.forget(tenant);
        self.ledger.remove_tenant_sources(tenant)?;
        Ok(())
    }

    /// Let a walked slice in: its entries as events, with the source's mark, in one
    /// atomic write, durable on return. `Err(wait)` when the inbox or the tenant's
    /// event rate cannot take it yet (the slice is walked again later).
    fn let_in(
        &self,
        tenant: &str,
        slice: &Slice,
        status: &mut SourceStatus,
    ) -> Result<Result<(), &'static str>, DaemonError> {
        let mut events = Vec::with_capacity(slice.entries.len());
        let mut rejected = 0;
        for e in &slice.entries {
            match crate::ingest::parse_value(e.raw.clone()) {
                Ok(event) => events.push(event),
                Err(why) => {
                    rejected += 1;
                    tracing::warn!(%tenant, source = NAME, id = %crate::text::escape_control(&e.id),
                        "an audit log entry is not an event: {}", crate::text::escape_control(&why));
                }
            }
        }
        let per_second = self.config.quota(tenant).max_events_per_second;
        if !events.is_empty() && self.rates.take(tenant, events.len(), per_second).is_err() {
            return Ok(Err("event_rate"));
        }
        let bounds = (
            self.processed_seq(tenant)?,
            self.config.ingest.max_inbox_events,
        );
        match self
            .inbox
            .store_marked(tenant, &events, bounds, NAME, &slice.mark)
        {
            Ok(stored) => {
                self.inbox.durable_blocking()?;
                self.accepted(tenant, stored.accepted);
                status.entries += stored.accepted as u64;
                // Counted once let in with the mark (a slice that waits is read again).
                status.rejected += rejected;
                status.duplicates += (slice.duplicates + stored.duplicates) as u64;
                if stored.accepted > 0 {
                    self.wake.notify();
                }
                Ok(Ok(()))
            }
            Err(InboxError::Full { .. }) => Ok(Err("inbox_full")),
            Err(e) => Err(e.into()),
        }
    }
}

/// `second` as an RFC 3339 time.
fn rfc3339(second: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(second, 0).map(|t| t.to_rfc3339())
}

/// Load every tenant's source and start the polling threads.
pub(super) fn start(
    daemon: &Arc<Daemon>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    match daemon.ledger.source_records::<StoredSource>() {
        Ok(stored) => {
            for s in stored {
                let settings = daemon.walk_settings(&s.config);
                daemon.sources.put(&s.tenant, s.config, settings);
            }
        }
        Err(e) => tracing::error!("cannot read the tenants' sources: {e}"),
    }
    let n = daemon.config.sources.threads;
    super::supervise::spawn_threads(daemon, stop, "aer-sources", n, run)
}

/// Run one polling thread until `stop`.
fn run(daemon: &Daemon, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Some((tenant, config, mut walker, generation)) =
            daemon.sources.take(Duration::from_millis(200))
        else {
            continue;
        };
        let polled = super::supervise::catch(|| poll(daemon, &tenant, &config, &mut walker));
        let outcome = match polled {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                tracing::error!(%tenant, source = NAME, "cannot let the source's entries in: {e}");
                walker.abandon();
                Outcome::state("failing", FULL_WAIT)
            }
            Err(panic) => {
                tracing::error!(%tenant, source = NAME, "the source's poll panicked: {panic}");
                walker.abandon();
                Outcome::state("failing", MAX_BACKOFF)
            }
        };
        daemon
            .sources
            .give_back(&tenant, walker, generation, outcome);
    }
}

/// How a poll went.
#[derive(Default)]
struct Outcome {
    /// The source's state after it.
    state: &'static str,
    /// Wait before the next turn; none: the backoff of a transient failure, growing
    /// with the failures in a row.
    after: Option<Duration>,
    /// When it called the source, if it did.
    called_ms: Option<i64>,
    /// The failure's code, if it failed.
    failed: Option<String>,
    /// Entries let in, duplicates and rejected entries.
    counts: SourceStatus,
}

impl Outcome {
    /// An outcome that only sets the state, with the next turn `after` from now.
    fn state(state: &'static str, after: Duration) -> Self {
        Outcome {
            state,
            after: Some(after),
            ..Outcome::default()
        }
    }

    /// Note it in `p`'s status and failures in a row; how long until the next turn.
    fn note(self, p: &mut Polled) -> Duration {
        let s = &mut p.status;
        s.state = self.state;
        s.entries += self.counts.entries;
        s.duplicates += self.counts.duplicates;
        s.rejected += self.counts.rejected;
        if let Some(at) = self.called_ms {
            s.calls += 1;
            s.last_call_ms = Some(at);
        }
        match self.failed {
            Some(code) => {
                s.last_error = Some(code);
                s.last_error_ms = self.called_ms;
                p.failures = p.failures.saturating_add(1);
            }
            // A call that succeeded ends the failures in a row.
            None if self.called_ms.is_some() => {
                s.last_success_ms = self.called_ms;
                p.failures = 0;
            }
            None => {}
        }
        // 2 s, 4 s, ... up to the longest backoff, the walk kept where it was.
        self.after
            .unwrap_or_else(|| Duration::from_secs(1 << p.failures.min(9)).min(MAX_BACKOFF))
    }
}

/// One page of `tenant`'s source, and a slice let in if it completes one.
fn poll(
    daemon: &Daemon,
    tenant: &str,
    config: &SlackAuditConfig,
    walker: &mut Walker,
) -> Result<Outcome, DaemonError> {
    let gap = Duration::from_secs(60) / config.calls_per_minute.max(1);
    let interval = Duration::from_secs(u64::from(config.interval_seconds));
    // In a cluster, only the node owning the tenant's partition reads its source (the
    // source's mark moves with the partition).
    if !daemon.serves(tenant) {
        return Ok(Outcome::state("elsewhere", interval.min(SUSPENDED_CHECK)));
    }
    // A suspended tenant's source makes no call with its token until it is resumed.
    if daemon.tenant(tenant)?.is_none_or(|t| t.suspended) {
        return Ok(Outcome::state("suspended", interval.min(SUSPENDED_CHECK)));
    }
    let mark: Option<Mark> = daemon.ledger.source_mark(tenant, NAME)?;
    let now = now_ms();
    let client = SlackAuditClient {
        agent: daemon.outbound.agent(),
        config,
        max_page_bytes: daemon.config.sources.max_page_bytes,
    };
    let step = walker.step(&client, mark.as_ref(), now.div_euclid(1_000));
    let called = !matches!(step, Ok(Step::Idle));
    let result = match &step {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code(),
    };
    if called {
        daemon.metrics.source_call(tenant, NAME, &result);
    }
    let mut counts = SourceStatus::default();
    let (after, state, failed) = match step {
        Ok(Step::Idle) => (Some(interval), "caught_up", None),
        Ok(Step::Paged | Step::Split) => (Some(gap), "walking", None),
        Ok(Step::Slice(slice)) => match daemon.let_in(tenant, &slice, &mut counts)? {
            Ok(()) => {
                daemon.metrics.source_lag(
                    tenant,
                    NAME,
                    (now.div_euclid(1_000) - slice.mark.watermark).max(0),
                );
                if slice.caught_up {
                    (Some(interval.max(gap)), "caught_up", None)
                } else {
                    (Some(gap), "walking", None)
                }
            }
            Err(why) => (Some(FULL_WAIT.max(gap)), "waiting", Some(why.to_owned())),
        },
        Err(PullError::RateLimited(wait)) => (Some(wait.max(gap)), "waiting", Some(result)),
        Err(PullError::Transient(_)) => (None, "failing", Some(result)),
        Err(PullError::Refused(_)) => (Some(REFUSED_WAIT.max(interval)), "failing", Some(result)),
    };
    if let Some(code) = &failed {
        tracing::warn!(%tenant, source = NAME, "the source's call failed: {code}");
    }
    Ok(Outcome {
        state,
        after,
        called_ms: called.then_some(now),
        failed,
        counts,
    })
}
