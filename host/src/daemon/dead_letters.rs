//! Dead letters: events a detector faults on, every time. When a batch faults twice,
//! the worker delivers its events one at a time until the one that faults (which
//! faults twice alone); that event is recorded here (with the plugin, the fault and the event itself) and the
//! detector's cursor moves past it, so one poison event never stalls a detector. A
//! plugin that faults on event after event (three dead letters with no success
//! between) is quarantined instead: the fault is the plugin's, not the events'.
//!
//! A dead letter is listed (`GET /v1/dead-letters`), counted
//! (`aer_dead_letters_total`) and logged; after a fix it can be replayed
//! (`POST /v1/dead-letters/{seq}/replay`): the detector runs it alone before its next
//! batch, and it is marked `replayed` (or `dead` again, with the new fault).

use std::collections::HashSet;
use std::sync::Mutex;

use super::{Daemon, DaemonError};
pub use crate::ledger::DeadLetter;

/// Which (tenant, plugin) pairs have a replay waiting, so workers look for one only
/// then.
#[derive(Debug, Default)]
pub struct Replays(Mutex<HashSet<(String, String)>>);

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `plugin` of `tenant` may have a replay waiting.
    pub(super) fn waiting(&self, tenant: &str, plugin: &str) -> bool {
        let set = self.lock();
        !set.is_empty() && set.contains(&(tenant.to_owned(), plugin.to_owned()))
    }

    fn add(&self, tenant: &str, plugin: &str) {
        self.lock().insert((tenant.to_owned(), plugin.to_owned()));
    }

    fn clear(&self, tenant: &str, plugin: &str) {
        self.lock().remove(&(tenant.to_owned(), plugin.to_owned()));
    }
}

impl Daemon {
    /// `tenant`'s dead letter `seq`.
    pub fn dead_letter(&self, tenant: &str, seq: u64) -> Result<Option<DeadLetter>, DaemonError> {
        Ok(self.ledger.dead_letter(tenant, seq)?)
    }

    /// Ask for dead letter `seq` of `tenant` to be run again (after its detector was
    /// fixed): marked `replay`, it runs on the detector's next turn. `None` if there
    /// is no such letter.
    pub fn replay_dead_letter(
        &self,
        tenant: &str,
        seq: u64,
    ) -> Result<Option<DeadLetter>, DaemonError> {
        let Some(mut letter) = self.dead_letter(tenant, seq)? else {
            return Ok(None);
        };
        letter.status = "replay".into();
        letter.time_ms = super::now_ms();
        self.ledger.put_dead_letter(tenant, &letter)?;
        self.replays.add(tenant, &letter.plugin);
        self.wake.notify();
        Ok(Some(letter))
    }

    /// The next dead letter of `plugin` waiting for a replay, if any.
    pub(super) fn next_replay(
        &self,
        tenant: &str,
        plugin: &str,
    ) -> Result<Option<DeadLetter>, DaemonError> {
        if !self.replays.waiting(tenant, plugin) {
            return Ok(None);
        }
        let letter = self
            .ledger
            .find_dead_letter(tenant, |l| l.plugin == plugin && l.status == "replay")?;
        if letter.is_none() {
            self.replays.clear(tenant, plugin);
        }
        Ok(letter)
    }

    /// Note the replays a previous run left waiting (at start).
    pub(super) fn recover_replays(&self) -> Result<(), DaemonError> {
        for (tenant, letter) in self.ledger.all_dead_letters(|l| l.status == "replay")? {
            self.replays.add(&tenant, &letter.plugin);
        }
        Ok(())
    }
}
