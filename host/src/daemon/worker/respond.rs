//! The respond step of a tenant: its enabled responders, in name order, on each
//! decision that responds, in decision order, each given the decision by the one
//! builder ([`crate::plugin::convert::wit_decision`]); their state writes and the
//! pending record committed together. A decision stays pending until every enabled
//! responder handled it, and also while a quarantined responder has not: enabled
//! again, it resumes with the decisions made meanwhile, as a quarantined detector
//! resumes at its cursor (a disabled responder is passed over). Effects already in the
//! action log are not repeated when a decision runs again. An escalation is responded
//! to only after a person approves its review (which puts it in the pending queue).

use std::sync::atomic::Ordering;

use super::Worker;
use super::instances::Unavailable;
use crate::daemon::plugins::{PluginRecord, PluginStatus};
use crate::daemon::{DaemonError, now_ms};
use crate::ledger::{Commit, ReviewState};
use crate::pipeline::decide::Outcome;
use crate::plugin::PluginKind;
use crate::plugin::convert::wit_decision;
use crate::store::Scope;

/// Pending responses run per step.
const PENDING_BATCH: usize = 16;
/// Pending records read per step at most (those waiting only for a quarantined
/// responder are passed over, and the next step goes on after them).
const PENDING_SCAN: usize = 4096;

/// The decision seq below which every pending response of a tenant waits only for its
/// quarantined responders, as found with these enabled and quarantined responders (a
/// change of either finds it again from the start).
pub(super) struct HeldUntil {
    responders: (Vec<String>, Vec<String>),
    /// [`crate::daemon::Daemon::reopened`] when it was found.
    reopened: u64,
    seq: u64,
}

/// The responders that decisions go to, in name order: enabled ones run, quarantined
/// ones are waited for.
pub(super) fn responders(plugins: &[PluginRecord]) -> Vec<PluginRecord> {
    let mut list: Vec<PluginRecord> = plugins
        .iter()
        .filter(|p| {
            p.kind == PluginKind::Responder
                && matches!(p.status, PluginStatus::Enabled | PluginStatus::Quarantined)
        })
        .cloned()
        .collect();
    // In name order, as every driver runs them.
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

impl Worker {
    /// Run `responders` (see [`responders`]) on the tenant's pending responses;
    /// whether anything progressed.
    pub(super) fn step_responses(
        &mut self,
        tenant: &str,
        responders: &[PluginRecord],
    ) -> Result<bool, DaemonError> {
        let (enabled, quarantined): (Vec<_>, Vec<_>) = responders
            .iter()
            .partition(|p| p.status == PluginStatus::Enabled);
        // A responder that faulted waits out its backoff, as detectors do, and the
        // tenant's responses wait with it (they run in decision order).
        if enabled.iter().any(|p| self.backing_off(tenant, &p.name)) {
            return Ok(false);
        }
        let daemon = self.daemon.clone();
        let names = |list: &[&PluginRecord]| -> Vec<String> {
            list.iter().map(|p| p.name.clone()).collect()
        };
        let now = (names(&enabled), names(&quarantined));
        // Records that wait only for a quarantined responder are passed over once, not
        // read again on every step.
        let reopened = daemon.reopened.load(Ordering::Relaxed);
        let from = match self.held.get(tenant) {
            Some(h) if h.responders == now && h.reopened == reopened => h.seq,
            _ => 0,
        };
        let mut progressed = false;
        let mut due: Vec<(u64, Vec<String>)> = Vec::new();
        let mut held_until = from;
        for r in daemon.ledger.pending(tenant, from).take(PENDING_SCAN) {
            let (seq, done) = r?;
            if enabled.iter().any(|p| !done.contains(&p.name)) {
                due.push((seq, done));
                if due.len() == PENDING_BATCH {
                    break;
                }
                continue;
            }
            if quarantined.iter().all(|p| done.contains(&p.name)) {
                // Nothing left to wait for (a responder it waited for was disabled or
                // removed).
                daemon.ledger.remove_pending(tenant, seq)?;
                progressed = true;
            }
            if due.is_empty() {
                held_until = seq + 1;
            }
        }
        self.held.insert(
            tenant.to_owned(),
            HeldUntil {
                responders: now,
                reopened,
                seq: held_until,
            },
        );
        for (seq, done) in due {
            let Some(stored) = daemon.ledger.decision(tenant, seq)? else {
                daemon.ledger.remove_pending(tenant, seq)?;
                progressed = true;
                continue;
            };
            let mut wit = wit_decision(&stored.decision);
            if stored.decision.outcome == Outcome::Escalate {
                // Responders run on an escalation only once a person approved it.
                match daemon.ledger.review(tenant, seq)? {
                    Some(r) if r.state == ReviewState::Approved => {
                        wit.enforce = r.enforce;
                        wit.reason = format!(
                            "approved by {} after escalation: {}",
                            r.resolved_by, wit.reason
                        );
                    }
                    _ => {
                        daemon.ledger.remove_pending(tenant, seq)?;
                        progressed = true;
                        continue;
                    }
                }
            }
            // (responder name, plugin id, its state writes)
            let mut writes = Vec::with_capacity(enabled.len());
            for p in enabled.iter().filter(|p| !done.contains(&p.name)) {
                let r = match self.responder(tenant, p) {
                    Ok(r) => r,
                    Err(Unavailable::Busy) => return Ok(false),
                    Err(Unavailable::Fault(message)) => {
                        self.record_fault(tenant, &p.name, message)?;
                        return Ok(true);
                    }
                };
                r.1.begin(seq, wit.enforce);
                match r.0.respond(&wit) {
                    Ok(out) => {
                        let plugin = r.0.id().plugin.clone();
                        daemon.plugin_logs.keep(tenant, &plugin, &out.logs);
                        writes.push((&p.name, plugin, out.writes));
                    }
                    Err(fault) => {
                        self.record_fault(tenant, &p.name, fault.to_string())?;
                        return Ok(true);
                    }
                }
            }
            let lock = daemon.commit_lock();
            let mut commit = Commit::default();
            let mut size = daemon.state_bytes(tenant)?;
            let mut tokens = Vec::with_capacity(writes.len());
            for (name, plugin, w) in &writes {
                match self.stage_state(tenant, plugin, w, &mut commit, &mut size) {
                    Ok(token) => tokens.push(token),
                    Err(DaemonError::Quota(quota)) => {
                        drop(lock);
                        self.record_fault(tenant, name, quota.to_string())?;
                        return Ok(true);
                    }
                    Err(e) => return Err(e),
                }
            }
            commit.set_state_bytes(tenant, size);
            let mut now_done = done.clone();
            now_done.extend(writes.iter().map(|(name, _, _)| (*name).clone()));
            if quarantined.iter().all(|p| now_done.contains(&p.name)) {
                commit.remove_pending(tenant, seq);
            } else {
                commit.set_pending(tenant, seq, &now_done)?;
            }
            daemon.ledger.commit(commit)?;
            progressed = true;
            let store = daemon.state_store();
            for ((name, plugin, w), token) in writes.iter().zip(tokens) {
                store.applied(token, &Scope::new(tenant, plugin), w);
                self.succeeded(tenant, name);
            }
            drop(lock);
            daemon.fold_state_if_due();
            // Measured when the decision is first responded to.
            if done.is_empty() && stored.finding_committed_ms > 0 {
                let ms = (now_ms() - stored.finding_committed_ms).max(0);
                daemon
                    .metrics
                    .detection_to_response(tenant, ms as f64 / 1000.0);
            }
        }
        Ok(progressed)
    }
}
