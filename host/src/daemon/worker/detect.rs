//! The detect step of one detector of a tenant: gather a batch from its cursor
//! ([`crate::pipeline::gather`]), call it ([`crate::pipeline::detect`]), and commit its
//! state writes, findings and advanced cursor together, within the tenant's state
//! quotas; or count the fault (see [`super::faults`]), setting aside as a dead letter
//! the event that faults it every time. A dead letter asked to be replayed runs alone
//! first.

use std::sync::Arc;

use aer_wire::BatchWriter;

use super::Worker;
use super::instances::Unavailable;
use crate::daemon::plugins::PluginRecord;
use crate::daemon::{DaemonError, now_ms};
use crate::ledger::inbox::{InboxError, InboxEvents};
use crate::ledger::{Commit, DeadLetter};
use crate::pipeline::detect::detect;
use crate::pipeline::faults::AfterFault;
use crate::pipeline::gather::{Gather, Gathered};
use crate::store::{Scope, Staged, StateStore as _, WriteSet};

/// Inbox events read at a time.
pub(super) const READ: usize = crate::pipeline::gather::BATCH;

/// A plugin's writes would pass a state quota: the plugin that grows past a limit
/// faults, not its siblings.
#[derive(Debug, thiserror::Error)]
#[error("state quota: {who} would keep {bytes} bytes of state, its limit is {limit}")]
pub struct QuotaExceeded {
    /// `the plugin` or `the tenant's plugins`.
    pub who: &'static str,
    /// What it would keep.
    pub bytes: u64,
    /// The limit.
    pub limit: u64,
}

/// Gather one call of a detector by `rule` (see [`crate::pipeline::gather`]) from
/// `first` (read at its cursor) and the inbox after it (`read` from a seq).
pub(super) fn gather_inbox(
    first: InboxEvents,
    mut read: impl FnMut(u64) -> Result<InboxEvents, InboxError>,
    rule: Gather,
    wants: impl Fn(&[u8]) -> bool,
) -> Result<Gathered, DaemonError> {
    let mut g = rule.start();
    let mut events = first;
    loop {
        let mut last = None;
        for (seq, bytes) in events.iter() {
            if !g.offer(seq, bytes, &wants) {
                return Ok(g.finish());
            }
            last = Some(seq);
        }
        // A short read is the end of what is stored.
        let Some(last) = last.filter(|_| events.len() >= READ) else {
            return Ok(g.finish());
        };
        events = read(last + 1)?;
    }
}

impl Worker {
    /// Stage a call's state writes into `commit`, updating the tenant's state size
    /// `size` and the plugin's own; [`DaemonError::Quota`], staging nothing, when they
    /// would pass either quota. Once the commit is applied, hand the token to
    /// [`crate::store::SledStore::applied`].
    pub(super) fn stage_state(
        &self,
        tenant: &str,
        plugin: &str,
        writes: &WriteSet,
        commit: &mut Commit,
        size: &mut u64,
    ) -> Result<Staged, DaemonError> {
        let store = self.daemon.state_store();
        let scope = Scope::new(tenant, plugin);
        let mut delta: i64 = 0;
        for (k, v) in writes.iter() {
            if let Some(old) = store.get(&scope, k)? {
                delta -= (k.len() + old.len()) as i64;
            }
            if let Some(v) = v {
                delta += (k.len() + v.len()) as i64;
            }
        }
        // Its own bytes against the per-plugin limit first, then the tenant's total.
        let plugin_size = self.daemon.ledger.plugin_state_bytes(tenant, plugin)?;
        let plugin_new = (plugin_size as i64).saturating_add(delta).max(0) as u64;
        let new = (*size as i64).saturating_add(delta).max(0) as u64;
        let quota = self.daemon.config.quota(tenant);
        if delta > 0 && plugin_new > quota.max_plugin_state_bytes {
            return Err(QuotaExceeded {
                who: "the plugin",
                bytes: plugin_new,
                limit: quota.max_plugin_state_bytes,
            }
            .into());
        }
        if delta > 0 && new > quota.max_state_bytes {
            return Err(QuotaExceeded {
                who: "the tenant's plugins",
                bytes: new,
                limit: quota.max_state_bytes,
            }
            .into());
        }
        let staged = store.stage(&scope, writes, commit.state_batch());
        commit.set_plugin_state_bytes(tenant, plugin, plugin_new);
        *size = new;
        Ok(staged)
    }

    /// One batch of one detector: `None` when it made no progress, else the number of
    /// findings it committed.
    pub(super) fn step_detector(
        &mut self,
        tenant: &str,
        p: &PluginRecord,
    ) -> Result<Option<usize>, DaemonError> {
        let daemon = self.daemon.clone();
        let cursor = daemon.ledger.detector_cursor(tenant, &p.name)?;
        if let Some(letter) = daemon.next_replay(tenant, &p.name)? {
            return self.replay(tenant, p, letter);
        }
        let events = daemon.inbox.read(tenant, cursor, READ)?;
        if events.is_empty() {
            return Ok(None);
        }
        if let Some((first, _)) = events.iter().next()
            && first > cursor
        {
            tracing::warn!(%tenant, plugin = %p.name, skipped = first - cursor,
                "the detector's next events were removed by inbox retention (it was disabled or new)");
        }
        let instance = match self.instance(tenant, p) {
            Ok(i) => i,
            Err(Unavailable::Busy) => return Ok(None),
            Err(Unavailable::Fault(message)) => {
                self.record_fault(tenant, &p.name, message)?;
                return Ok(None);
            }
        };
        let rule = daemon
            .fault_memory()
            .get(&(tenant.to_owned(), p.name.clone()))
            .map_or(Gather::default(), |m| m.count.gather(Gather::default()));
        let g = gather_inbox(
            events,
            |from| daemon.inbox.read(tenant, from, READ),
            rule,
            |a| instance.wants(a),
        )?;
        let next_cursor = g.next_cursor(cursor);
        let mut commit = Commit::default();
        let mut found = 0;
        let mut lock = None;
        let mut staged = None;
        if !g.is_empty() {
            let out = match detect(instance, &g) {
                Ok(out) => out,
                Err(fault) => {
                    // The store is rebuilt on the next call, which retries this batch
                    // (or part of it, isolating the event that faults).
                    daemon
                        .metrics
                        .fault(tenant, &p.name, &fault.kind.to_string());
                    return self.batch_fault(tenant, &p.name, fault.to_string(), &g);
                }
            };
            let id = instance.id().clone();
            daemon.plugin_logs.keep(tenant, &id.plugin, &out.logs);
            let lag = daemon
                .inbox
                .next_seq(tenant)
                .unwrap_or(0)
                .saturating_sub(next_cursor);
            daemon.metrics.detector_call(
                tenant,
                &id.plugin,
                g.delivered.len(),
                out.findings.len(),
                out.plugin_time.as_secs_f64(),
                lag,
            );
            lock = Some(daemon.commit_lock());
            let mut size = daemon.state_bytes(tenant)?;
            let token =
                match self.stage_state(tenant, &id.plugin, &out.writes, &mut commit, &mut size) {
                    Ok(token) => token,
                    Err(DaemonError::Quota(quota)) => {
                        daemon.metrics.fault(tenant, &p.name, "quota");
                        self.record_fault(tenant, &p.name, quota.to_string())?;
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
            commit.set_state_bytes(tenant, size);
            found = commit.append_findings(&daemon.ledger, tenant, out.findings, now_ms())?;
            staged = Some((token, Scope::new(tenant, &id.plugin), out.writes));
        }
        commit.set_detector_cursor(tenant, &p.name, next_cursor);
        daemon.ledger.commit(commit)?;
        if let Some((token, scope, writes)) = &staged {
            daemon.state_store().applied(*token, scope, writes);
        }
        drop(lock);
        daemon.fold_state_if_due();
        self.succeeded(tenant, &p.name);
        Ok(Some(found))
    }

    /// A detector call over the events of `g` faulted: it is retried after the backoff,
    /// its events isolated, and the event that faults every time set aside as a dead
    /// letter, by the pipeline's rule
    /// ([`crate::pipeline::faults::FaultCount::batch_fault`]). Always `None`: a fault is
    /// not progress, even when the cursor moved past a dead letter (a tenant whose
    /// plugin only faults must not count as busy for the time quota, or a busy
    /// neighbour past its quota would give way to it).
    fn batch_fault(
        &mut self,
        tenant: &str,
        name: &str,
        message: String,
        g: &Gathered,
    ) -> Result<Option<usize>, DaemonError> {
        // Every fault counts towards the backoff: a plugin that faults on event after
        // event waits ever longer between them, as a quarantined one re-enabled again
        // and again does.
        let after = self.note_fault(tenant, name, |m| m.count.batch_fault(g.delivered.len()));
        let quarantine = match after {
            AfterFault::Retry | AfterFault::Isolate => false,
            AfterFault::Quarantine => true,
            AfterFault::DeadLetter { quarantine } => {
                self.dead_letter(tenant, name, &message, g)?;
                quarantine
            }
        };
        self.fault_in_record(tenant, name, message, quarantine)?;
        Ok(None)
    }

    /// Set the one event of `g` aside as a dead letter of detector `name`, moving its
    /// cursor past the events `g` looked at.
    fn dead_letter(
        &self,
        tenant: &str,
        name: &str,
        message: &str,
        g: &Gathered,
    ) -> Result<(), DaemonError> {
        let Some(&event_seq) = g.delivered.first() else {
            return Ok(());
        };
        let events = self.daemon.inbox.read(tenant, event_seq, 1)?;
        let encoded = events
            .iter()
            .find(|(seq, _)| *seq == event_seq)
            .map(|(_, bytes)| bytes.to_vec())
            .unwrap_or_default();
        let mut letter = DeadLetter {
            seq: 0,
            plugin: name.to_owned(),
            event_seq,
            event_id: aer_wire::encoded_id(&encoded).unwrap_or("").to_owned(),
            fault: message.to_owned(),
            status: "dead".into(),
            time_ms: now_ms(),
            event: hex::encode(&encoded),
        };
        let mut commit = Commit::default();
        commit.append_dead_letter(&self.daemon.ledger, tenant, &mut letter)?;
        commit.set_detector_cursor(tenant, name, g.next_cursor(event_seq));
        self.daemon.ledger.commit(commit)?;
        self.daemon.metrics.dead_letter(tenant, name);
        tracing::warn!(%tenant, plugin = %name, event = %crate::text::escape_control(&letter.event_id),
            event_seq, dead_letter = letter.seq, "the event faults the detector every time: moved to the dead letters");
        Ok(())
    }

    /// Run dead letter `letter` of detector `p` alone (a replay asked for after a fix):
    /// its findings and state are committed with the letter marked `replayed`, or the
    /// letter stays dead with the new fault. The cursor does not move.
    fn replay(
        &mut self,
        tenant: &str,
        p: &PluginRecord,
        mut letter: DeadLetter,
    ) -> Result<Option<usize>, DaemonError> {
        let daemon: Arc<_> = self.daemon.clone();
        let instance = match self.instance(tenant, p) {
            Ok(i) => i,
            Err(Unavailable::Busy) => return Ok(None),
            Err(Unavailable::Fault(message)) => {
                self.record_fault(tenant, &p.name, message)?;
                return Ok(None);
            }
        };
        let mut w = BatchWriter::new();
        w.push_encoded(&letter.encoded().unwrap_or_default());
        letter.time_ms = now_ms();
        let g = Gathered {
            batch: w.finish(),
            delivered: vec![letter.event_seq],
            last_seq: Some(letter.event_seq),
            full: true,
        };
        let out = match detect(instance, &g) {
            Ok(out) => out,
            Err(fault) => {
                letter.status = "dead".into();
                letter.fault = fault.to_string();
                daemon.ledger.put_dead_letter(tenant, &letter)?;
                return Ok(Some(0));
            }
        };
        let id = instance.id().clone();
        daemon.plugin_logs.keep(tenant, &id.plugin, &out.logs);
        let lock = daemon.commit_lock();
        let mut commit = Commit::default();
        let mut size = daemon.state_bytes(tenant)?;
        let token = match self.stage_state(tenant, &id.plugin, &out.writes, &mut commit, &mut size)
        {
            Ok(token) => token,
            Err(DaemonError::Quota(quota)) => {
                drop(lock);
                letter.status = "dead".into();
                letter.fault = quota.to_string();
                daemon.ledger.put_dead_letter(tenant, &letter)?;
                return Ok(Some(0));
            }
            Err(e) => return Err(e),
        };
        commit.set_state_bytes(tenant, size);
        let found = commit.append_findings(&daemon.ledger, tenant, out.findings, now_ms())?;
        letter.status = "replayed".into();
        commit.put_dead_letter(tenant, &letter)?;
        daemon.ledger.commit(commit)?;
        daemon
            .state_store()
            .applied(token, &Scope::new(tenant, &id.plugin), &out.writes);
        drop(lock);
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::events_of;
    use super::*;
    use crate::ledger::inbox::Inbox;
    use crate::pipeline::gather::{BATCH, LOOK_AHEAD};

    const READ_AHEAD: usize = BATCH * LOOK_AHEAD;

    /// An inbox holding [`events_of`]`(n, action)`.
    fn inbox_of(n: u32, action: impl Fn(u32) -> &'static str) -> (tempfile::TempDir, Inbox) {
        let dir = tempfile::tempdir().unwrap();
        let inbox = crate::ledger::Ledger::open(dir.path())
            .unwrap()
            .inbox(10)
            .unwrap();
        let events = events_of(n, action);
        for chunk in events.chunks(300) {
            inbox.store("acme", chunk, 0, u64::MAX).unwrap();
        }
        (dir, inbox)
    }

    /// [`gather_inbox`] from `cursor` for a detector of `wanted`: events delivered, last seq.
    fn gathered(inbox: &Inbox, cursor: u64, wanted: &str) -> (usize, u64) {
        let first = inbox.read("acme", cursor, READ).unwrap();
        let read = |from| inbox.read("acme", from, READ);
        let g = gather_inbox(first, read, Gather::default(), |a| a == wanted.as_bytes()).unwrap();
        (g.delivered.len(), g.last_seq.unwrap())
    }

    #[test]
    fn a_call_gathers_across_inbox_reads_by_the_pipelines_rule() {
        // One wanted event among 1,000: found in one step, every event looked at.
        let (_dir, inbox) = inbox_of(1_000, |i| if i == 700 { "rare" } else { "common" });
        assert_eq!(gathered(&inbox, 0, "rare"), (1, 999));
        // Every event wanted: a batch, as without reading ahead.
        assert_eq!(gathered(&inbox, 0, "common"), (BATCH, BATCH as u64 - 1));
        // From 600, past the one it does not want (700).
        assert_eq!(gathered(&inbox, 600, "common"), (BATCH, 600 + BATCH as u64));
        // Every other one: a full batch from twice as many events.
        let (_dir, inbox) = inbox_of(1_000, |i| if i % 2 == 0 { "even" } else { "odd" });
        assert_eq!(gathered(&inbox, 0, "odd"), (BATCH, 2 * BATCH as u64 - 1));
        // None wanted: no more than READ_AHEAD looked at in one step.
        let (_dir, inbox) = inbox_of(5_000, |_| "common");
        assert_eq!(gathered(&inbox, 0, "rare"), (0, READ_AHEAD as u64 - 1));
        assert_eq!(gathered(&inbox, READ_AHEAD as u64, "rare"), (0, 4_999));
    }
}
