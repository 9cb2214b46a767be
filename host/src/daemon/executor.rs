//! The effects executor: performs the effects responders queued (see [`super::effects`])
//! on threads of its own (`outbound.threads`), never on a pipeline worker. Each tenant
//! has a queue, served in order (a session reset before the notification about it) by
//! one thread at a time; the threads take turns over the tenants with work due, so a
//! tenant whose Slack is slow holds at most one thread and one whose Slack answers 429
//! holds none while it waits: the effect is due again after `Retry-After`, and fails
//! (`rate_limited`) once `outbound.max_retry_ms` have passed since it was queued or
//! the policy's `max_attempts` are spent.
//!
//! The queues live in memory; the action log is what is durable. On start the executor
//! queues every entry left `queued` or `pending` (interrupted mid-request), in log
//! order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Daemon;
use super::effects::{Failure, Out, put_entry};
use crate::ledger::ActionKey;

/// Where a cluster's nodes claim an effect before performing it, so that a decision
/// replayed on another node (after a failover) never repeats a finished effect. A
/// single node has none.
pub trait EffectClaims: Send + Sync {
    /// Claim the effect with idempotency key `key` for this node.
    fn begin(&self, key: &str) -> Result<Begin, String>;
    /// Record the effect's outcome (`done` or `failed`, and its detail).
    fn finish(&self, key: &str, status: &str, detail: &str) -> Result<(), String>;
}

/// What [`EffectClaims::begin`] says of an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Perform it: no node has, or this node's earlier attempt left it to try again,
    /// or the node that began it has been silent for longer than any attempt lasts.
    Perform,
    /// A node finished it: record this outcome without performing it.
    Finished {
        /// `done` or `failed`.
        status: String,
        /// Its detail.
        detail: String,
    },
    /// Another node is performing it now: look again after this long.
    Later(Duration),
}

/// One queued effect: its action log key, and when it is due.
#[derive(Debug)]
struct Job {
    key: ActionKey,
    due: Instant,
}

#[derive(Debug, Default)]
struct Queues {
    /// Tenants with jobs, in turn order.
    order: VecDeque<String>,
    jobs: HashMap<String, VecDeque<Job>>,
    /// Tenants a thread is performing an effect of.
    busy: HashSet<String>,
}

/// The executor's queues, shared by the daemon (which pushes) and its threads.
#[derive(Debug, Default)]
pub struct EffectQueue {
    queues: Mutex<Queues>,
    wake: Condvar,
}

impl EffectQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue the effect of action log entry `key` for `tenant`, due now.
    pub fn push(&self, tenant: &str, key: ActionKey) {
        self.push_at(tenant, key, Instant::now(), false);
    }

    fn push_at(&self, tenant: &str, key: ActionKey, due: Instant, front: bool) {
        let mut q = self.lock();
        if !q.jobs.contains_key(tenant) {
            q.order.push_back(tenant.to_owned());
        }
        let jobs = q.jobs.entry(tenant.to_owned()).or_default();
        let job = Job { key, due };
        if front {
            jobs.push_front(job);
        } else {
            jobs.push_back(job);
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Effects waiting, all tenants together.
    pub fn len(&self) -> usize {
        self.lock().jobs.values().map(VecDeque::len).sum()
    }

    /// Whether no effect waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next due job of a tenant no thread is serving, taking turns; waits up to
    /// `patience` for one.
    fn take(&self, patience: Duration) -> Option<(String, Job)> {
        let mut q = self.lock();
        let now = Instant::now();
        let mut soonest = now + patience;
        for _ in 0..q.order.len() {
            let Some(tenant) = q.order.pop_front() else {
                break;
            };
            q.order.push_back(tenant.clone());
            if q.busy.contains(&tenant) {
                continue;
            }
            let Some(due) = q.jobs.get(&tenant).and_then(|j| j.front()).map(|j| j.due) else {
                continue;
            };
            if due > now {
                soonest = soonest.min(due);
                continue;
            }
            let jobs = q.jobs.get_mut(&tenant).expect("looked up above");
            let job = jobs.pop_front().expect("has a front");
            if jobs.is_empty() {
                q.jobs.remove(&tenant);
                q.order.retain(|t| *t != tenant);
            }
            q.busy.insert(tenant.clone());
            return Some((tenant, job));
        }
        let wait = soonest.saturating_duration_since(now);
        let _ = self
            .wake
            .wait_timeout(q, wait)
            .unwrap_or_else(|e| e.into_inner());
        None
    }

    fn done(&self, tenant: &str) {
        self.lock().busy.remove(tenant);
        self.wake.notify_all();
    }
}

/// Queue every effect the action log holds as `queued` or `pending` (at start).
pub(super) fn recover(daemon: &Daemon) -> Result<usize, super::DaemonError> {
    let keys = daemon.ledger.unfinished_actions()?;
    let n = keys.len();
    for key in keys {
        let tenant = key.tenant().to_owned();
        daemon.effects.push(&tenant, key);
    }
    Ok(n)
}

/// Run one executor thread until `stop`.
pub(super) fn run(daemon: &Daemon, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Some((tenant, job)) = daemon.effects.take(Duration::from_millis(100)) else {
            continue;
        };
        let again = super::supervise::catch(|| perform(daemon, &tenant, &job.key));
        daemon.effects.done(&tenant);
        match again {
            Ok(Some(after)) => {
                daemon
                    .effects
                    .push_at(&tenant, job.key, Instant::now() + after, true)
            }
            Ok(None) => {}
            Err(panic) => {
                tracing::error!(%tenant, "the effects executor panicked on an effect: {panic}");
            }
        }
    }
}

/// Perform the effect of entry `key` once; `Some(wait)` when it is to be tried again
/// after `wait`.
fn perform(daemon: &Daemon, tenant: &str, key: &ActionKey) -> Option<Duration> {
    // A cluster node performs only the effects of tenants it serves: the new owner of
    // a partition has the rest from the partition's checkpoint.
    if !daemon.serves(tenant) {
        return None;
    }
    let mut entry = daemon.ledger.action(key).ok().flatten()?;
    if !matches!(entry.status.as_str(), "queued" | "pending") {
        return None;
    }
    let idempotency = key.idempotency();
    let claims = daemon.effect_claims.get();
    if let Some(claims) = claims {
        match claims.begin(&idempotency) {
            Ok(Begin::Perform) => {}
            Ok(Begin::Later(wait)) => return Some(wait),
            Ok(Begin::Finished { status, detail }) => {
                entry.status = status;
                entry.detail = detail;
                entry.time_ms = super::now_ms();
                entry.text.clear();
                entry.body.clear();
                if let Err((_, e)) = put_entry(daemon, key, &entry, true) {
                    tracing::error!(%tenant, "cannot record an effect finished elsewhere: {e}");
                    return Some(Duration::from_secs(1));
                }
                daemon.metrics.action(tenant, &entry.action, &entry.status);
                return None;
            }
            Err(e) => {
                tracing::warn!(%tenant, "cannot claim an effect in the cluster: {e}");
                return Some(Duration::from_secs(1));
            }
        }
    }
    let settings = match daemon.policy(tenant) {
        Ok(p) => p.responses,
        Err(e) => {
            tracing::error!(%tenant, "cannot read the policy for an effect: {e}");
            return Some(Duration::from_secs(1));
        }
    };
    if entry.queued_ms == 0 {
        entry.queued_ms = super::now_ms();
    }
    entry.status = "pending".into();
    entry.attempts = entry.attempts.saturating_add(1);
    entry.time_ms = super::now_ms();
    if let Err((_, e)) = put_entry(daemon, key, &entry, true) {
        tracing::error!(%tenant, "cannot mark an effect pending: {e}");
        return Some(Duration::from_secs(1));
    }
    let out = Out {
        settings: &settings,
        outbound: &daemon.outbound,
        idempotency: &idempotency,
    };
    let result = out.attempt(&entry);
    let max_retry = daemon.config.outbound.max_retry_ms;
    let (status, detail, again) = match result {
        Ok(detail) => ("done", detail, None),
        Err(Failure::RetryAfter(wait)) => {
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            let budget_ends = entry
                .queued_ms
                .saturating_add(i64::try_from(max_retry).unwrap_or(i64::MAX));
            if super::now_ms().saturating_add(wait_ms) > budget_ends
                || entry.attempts >= settings.max_attempts
            {
                ("failed", "rate_limited".to_owned(), None)
            } else {
                ("queued", String::new(), Some(wait))
            }
        }
        Err(Failure::Failed(code, message)) => {
            tracing::warn!(%tenant, action = %entry.action, code, "effect failed: {message}");
            ("failed", code, None)
        }
    };
    entry.status = status.into();
    entry.detail = detail;
    entry.time_ms = super::now_ms();
    if status != "queued" {
        entry.text.clear();
        entry.body.clear();
    }
    if let Err((_, e)) = put_entry(daemon, key, &entry, true) {
        tracing::error!(%tenant, "cannot record an effect's outcome: {e}");
    }
    if status != "queued" {
        daemon.metrics.action(tenant, &entry.action, status);
        if let Some(claims) = claims
            && let Err(e) = claims.finish(&idempotency, status, &entry.detail)
        {
            tracing::warn!(%tenant, "cannot record an effect's outcome in the cluster: {e}");
        }
    }
    again
}

/// Start `outbound.threads` executor threads, after queueing what the action log left
/// undone; they stop with `stop`.
pub(super) fn start(
    daemon: &Arc<Daemon>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    match recover(daemon) {
        Ok(0) => {}
        Ok(n) => tracing::info!(effects = n, "effects left undone are queued again"),
        Err(e) => tracing::error!("cannot read the action log for undone effects: {e}"),
    }
    let n = daemon.config.outbound.threads;
    super::supervise::spawn_threads(daemon, stop, "aer-effects", n, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, decision: &str) -> ActionKey {
        ActionKey::new(tenant, decision, "r", "notify", "x")
    }

    #[test]
    fn tenants_take_turns_one_thread_each_and_a_waiting_effect_holds_none() {
        let q = EffectQueue::default();
        let later = Instant::now() + Duration::from_secs(60);
        q.push_at("slow", key("slow", "s1"), later, false);
        q.push("a", key("a", "a1"));
        q.push("a", key("a", "a2"));
        q.push("b", key("b", "b1"));
        let patience = Duration::from_millis(1);
        // The rate-limited tenant's effect is not due: the others go first, in turns.
        let (t, job) = q.take(patience).unwrap();
        assert_eq!((t.as_str(), job.key), ("a", key("a", "a1")));
        // "a" is busy until done: its next effect waits, "b" goes.
        let (t, _) = q.take(patience).unwrap();
        assert_eq!(t, "b");
        assert!(
            q.take(patience).is_none(),
            "a is busy, b empty, slow not due"
        );
        q.done("a");
        let (t, job) = q.take(patience).unwrap();
        assert_eq!((t.as_str(), job.key), ("a", key("a", "a2")));
        assert_eq!(q.len(), 1);
    }
}
