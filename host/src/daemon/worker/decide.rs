//! The decide step of a tenant: its waiting findings in decision order, below the
//! position every detector keeping pace has passed
//! ([`crate::pipeline::decide::decidable_below`]), the engine observing the inbox up to
//! each one's position first; decisions, the engine's memory and its cursor committed
//! together. With no finding waiting, the engine observes ahead what every detector
//! has processed, so the first finding after a quiet spell does not wait for it.

use super::Worker;
use super::detect::READ;
use crate::daemon::notify::Notifier;
use crate::daemon::{DaemonError, now_ms};
use crate::ledger::{Commit, ReviewKind, ReviewState, StoredDecision};
use crate::pipeline::decide::{DecisionEngine, Outcome, decidable_below};
use crate::pipeline::policy::Policy;

/// Findings per decision step.
const DECISION_BATCH: usize = 256;
/// Processed events that gather, with no finding waiting, before the decision engine
/// observes them ahead of the next finding (see [`Worker::observe_ahead`]).
const OBSERVE_AHEAD: u64 = 1024;
/// Most events the decision engine observes ahead in one step.
const OBSERVE_STEP: u64 = 4_096;

impl Worker {
    /// Decide the tenant's decidable findings (`detectors` are its enabled detectors
    /// not waiting out a fault backoff); whether anything progressed.
    pub(super) fn step_decisions(
        &mut self,
        tenant: &str,
        detectors: &[&str],
    ) -> Result<bool, DaemonError> {
        let ledger = &self.daemon.ledger;
        let below = self.decidable_below(tenant, detectors)?;
        let mut observed = ledger.observed(tenant)?;
        let queued = ledger.decidable(tenant, below, DECISION_BATCH)?;
        if queued.is_empty() {
            return self.observe_ahead(tenant);
        }
        let policy = self.daemon.policy(tenant)?;
        let mut notifier = Notifier::new(&self.daemon, tenant, &policy);
        let mut engine = self.decision_engine(tenant, &policy)?;
        let first = ledger.next_decision_seq(tenant)?;
        let mut commit = Commit::default();
        for (seq, q) in (first..).zip(queued) {
            commit.dequeue(&q);
            let Some(f) = self.daemon.ledger.finding(tenant, q.finding_seq)? else {
                continue;
            };
            self.observe(tenant, &mut engine, &mut observed, q.position)?;
            let decision = engine.decide(&f.finding);
            let metrics = &self.daemon.metrics;
            metrics.decision(tenant, decision.outcome.as_str());
            if f.committed_ms > 0 {
                let waited = (now_ms() - f.committed_ms).max(0);
                metrics.decision_wait(tenant, waited as f64 / 1000.0);
            }
            let stored = StoredDecision {
                seq,
                finding_committed_ms: f.committed_ms,
                decision,
            };
            commit.put_decision(tenant, &stored)?;
            // Every escalation asks a person: its review is recorded with it, and the
            // security route hears of it.
            if stored.decision.outcome == Outcome::Escalate {
                commit.open_review(tenant, &stored, ReviewKind::Escalation, now_ms())?;
                metrics.review(tenant, ReviewKind::Escalation, ReviewState::Open);
                notifier.review(&mut commit, ReviewKind::Escalation, seq, &stored.decision)?;
            }
            notifier.decision(&mut commit, seq, &stored.decision)?;
        }
        commit.set_engine_state(tenant, engine.state())?;
        commit.set_observed(tenant, observed);
        self.daemon.ledger.commit(commit)?;
        notifier.queue();
        Ok(true)
    }

    /// The position below which the tenant's findings may be decided now, `detectors`
    /// being the ones keeping pace (see [`decidable_below`]).
    pub(super) fn decidable_below(
        &self,
        tenant: &str,
        detectors: &[&str],
    ) -> Result<u64, DaemonError> {
        let ledger = &self.daemon.ledger;
        // Cursors first: a finding below one is committed with it, so in the queue.
        let cursors = detectors
            .iter()
            .map(|d| ledger.detector_cursor(tenant, d))
            .collect::<Result<Vec<_>, _>>()?;
        let observed = ledger.observed(tenant)?;
        let stored = self.daemon.inbox.next_seq(tenant).unwrap_or(0);
        Ok(decidable_below(cursors, observed, stored))
    }

    /// The tenant's decision engine: its policy, and its memory as last committed.
    fn decision_engine(
        &self,
        tenant: &str,
        policy: &Policy,
    ) -> Result<DecisionEngine, DaemonError> {
        let policy = policy.clone();
        let state = self.daemon.ledger.engine_state(tenant)?;
        let suppressions = self.daemon.ledger.suppressions(tenant)?;
        Ok(DecisionEngine::with_state(policy, state)
            .map_err(DaemonError::Policy)?
            .with_suppressions(suppressions))
    }

    /// Have `engine` observe the inbox from `observed` through seq `until`, moving
    /// `observed` past what it read.
    fn observe(
        &self,
        tenant: &str,
        engine: &mut DecisionEngine,
        observed: &mut u64,
        until: u64,
    ) -> Result<(), DaemonError> {
        while *observed <= until {
            let events = self.daemon.inbox.read(tenant, *observed, READ)?;
            if events.is_empty() {
                break;
            }
            // The events up to `until`, decoded in place.
            let mut any = false;
            for (seq, bytes) in events.iter().take_while(|(s, _)| *s <= until) {
                if let Ok(e) = aer_wire::decode_event(bytes) {
                    engine.observe_ref(&e);
                }
                *observed = seq + 1;
                any = true;
            }
            if !any {
                // The events through `until` were removed by the inbox's retention.
                *observed = until + 1;
                break;
            }
        }
        Ok(())
    }

    /// With no finding waiting, have the decision engine observe what every enabled
    /// and quarantined detector has processed (a finding made later stands after it),
    /// [`OBSERVE_STEP`] events at most, once [`OBSERVE_AHEAD`] have gathered. Whether
    /// it observed anything.
    fn observe_ahead(&mut self, tenant: &str) -> Result<bool, DaemonError> {
        let mut observed = self.daemon.ledger.observed(tenant)?;
        // What is stored bounds what is processed, and is known without reading cursors.
        let stored = self.daemon.inbox.next_seq(tenant).unwrap_or(0);
        if stored.saturating_sub(observed) < OBSERVE_AHEAD {
            return Ok(false);
        }
        let processed = self.daemon.processed_seq(tenant)?;
        if processed.saturating_sub(observed) < OBSERVE_AHEAD {
            return Ok(false);
        }
        let policy = self.daemon.policy(tenant)?;
        let mut engine = self.decision_engine(tenant, &policy)?;
        let until = processed.min(observed + OBSERVE_STEP) - 1;
        self.observe(tenant, &mut engine, &mut observed, until)?;
        let mut commit = Commit::default();
        commit.set_engine_state(tenant, engine.state())?;
        commit.set_observed(tenant, observed);
        self.daemon.ledger.commit(commit)?;
        Ok(true)
    }
}
