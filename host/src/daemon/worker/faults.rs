//! Faults in the daemon: each plugin's count by the pipeline's rule
//! ([`crate::pipeline::faults`]) and a growing wait before its next call, so a plugin
//! that keeps faulting (even when enabled again and again) is retried ever more rarely;
//! its record counts the faults and names the last, and is quarantined when the rule
//! says so.

use std::time::{Duration, Instant};

use super::Worker;
use crate::daemon::DaemonError;
use crate::daemon::plugins::PluginStatus;
use crate::pipeline::faults::{AfterFault, FaultCount};
use crate::pipeline::gather::Gather;

pub use crate::pipeline::faults::QUARANTINE_AFTER;
/// Wait before retrying a plugin after its first fault in [`FAULT_WINDOW`]; each
/// further fault in the window doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before retrying a faulting plugin.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a fault counts towards the backoff (re-enabling does not forget it).
const FAULT_WINDOW: Duration = Duration::from_secs(300);

/// A plugin's recent faults: what they lead to (counted by the pipeline's rule,
/// [`FaultCount`]) and their times (for the retry backoff, so a plugin that keeps
/// looping, even when re-enabled again and again, is retried ever more rarely).
#[derive(Debug, Default)]
pub struct FaultMemory {
    pub(super) count: FaultCount,
    pub(super) recent: std::collections::VecDeque<Instant>,
    retry_at: Option<Instant>,
}

impl FaultMemory {
    /// Record a fault's time now: the plugin waits before its next call.
    pub(super) fn backoff(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > FAULT_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let doublings = (self.recent.len() as u32 - 1).min(20);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF);
        self.retry_at = Some(now + wait);
    }

    /// Whether the plugin is waiting out its backoff at `now`.
    fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }
}

impl Worker {
    /// Whether `tenant`'s plugin `name` has a fault memory of which `holds` holds.
    fn fault_memory_shows(
        &self,
        tenant: &str,
        name: &str,
        holds: impl Fn(&FaultMemory) -> bool,
    ) -> bool {
        self.daemon
            .fault_memory()
            .get(&(tenant.to_owned(), name.to_owned()))
            .is_some_and(holds)
    }
    /// Whether `tenant`'s plugin `name` is waiting out a fault backoff.
    pub(super) fn backing_off(&self, tenant: &str, name: &str) -> bool {
        self.fault_memory_shows(tenant, name, |m| m.backing_off(Instant::now()))
    }
    /// Whether `tenant`'s plugin `name` is recovering from a fault: waiting out its
    /// backoff, or isolating the event that faulted in small batches.
    pub(super) fn recovering(&self, tenant: &str, name: &str) -> bool {
        self.fault_memory_shows(tenant, name, |m| {
            m.backing_off(Instant::now()) || m.count.isolating()
        })
    }
    /// Note a fault of `tenant`'s plugin (or stage) `name` now: it waits out its
    /// backoff; `count` then counts it by the pipeline's rule and says what it leads to.
    pub(super) fn note_fault<R>(
        &self,
        tenant: &str,
        name: &str,
        count: impl FnOnce(&mut FaultMemory) -> R,
    ) -> R {
        let mut memory = self.daemon.fault_memory();
        let m = memory
            .entry((tenant.to_owned(), name.to_owned()))
            .or_default();
        m.backoff(Instant::now());
        count(m)
    }

    /// A fault not tied to a batch's events (see [`FaultCount::fault`]): the plugin
    /// waits out its backoff and is quarantined after [`QUARANTINE_AFTER`] in a row.
    pub(super) fn record_fault(
        &mut self,
        tenant: &str,
        name: &str,
        message: String,
    ) -> Result<(), DaemonError> {
        let after = self.note_fault(tenant, name, |m| m.count.fault());
        self.fault_in_record(tenant, name, message, after == AfterFault::Quarantine)
    }
    /// A successful call of `tenant`'s plugin `name`: its faults in a row start again.
    pub(super) fn succeeded(&self, tenant: &str, name: &str) {
        if let Some(m) = self
            .daemon
            .fault_memory()
            .get_mut(&(tenant.to_owned(), name.to_owned()))
        {
            m.count.success(Gather::default());
        }
    }
    /// Count a fault in the plugin's record (its count and last fault), quarantining it
    /// with `quarantine`.
    pub(super) fn fault_in_record(
        &self,
        tenant: &str,
        name: &str,
        message: String,
        quarantine: bool,
    ) -> Result<(), DaemonError> {
        tracing::warn!(%tenant, plugin = %name, quarantine, "plugin fault: {}", crate::text::escape_control(&message));
        if let Ok(mut rec) = self.daemon.plugin(tenant, name) {
            rec.faults += 1;
            rec.last_fault = Some(message);
            if quarantine {
                rec.status = PluginStatus::Quarantined;
            }
            self.daemon.put_plugin_record(tenant, &rec)?;
        }
        Ok(())
    }
}
