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

use serde::{Deserialize, Serialize};

use super::keys::{self, kind};
use super::{Daemon, DaemonError};

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Per-tenant dead letter sequence number.
    pub seq: u64,
    /// The detector that faulted on it.
    pub plugin: String,
    /// The event's inbox seq.
    pub event_seq: u64,
    /// The event's id.
    pub event_id: String,
    /// The last fault it caused.
    pub fault: String,
    /// `dead`, `replay` (asked for, not run yet) or `replayed`.
    pub status: String,
    /// Wall time of the last change (ms).
    pub time_ms: i64,
    /// The event, in the inbox's encoding (hex), so a replay needs no inbox entry.
    pub event: String,
}

impl DeadLetter {
    /// The event's encoded bytes.
    pub fn encoded(&self) -> Option<Vec<u8>> {
        hex::decode(&self.event).ok()
    }
}

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

fn json_err(e: serde_json::Error) -> DaemonError {
    DaemonError::record("dead letter", e)
}

impl Daemon {
    /// Stage a new dead letter of `tenant` into `batch` (committed with the cursor that
    /// moves past its event).
    pub(super) fn stage_dead_letter(
        &self,
        tenant: &str,
        letter: &mut DeadLetter,
        batch: &mut sled::Batch,
    ) -> Result<(), DaemonError> {
        let prefix = keys::key(kind::DEAD_LETTER, &[tenant.as_bytes()]);
        letter.seq = super::worker::next_seq(&self.pipeline, &prefix)?;
        batch.insert(
            keys::seq_key(kind::DEAD_LETTER, tenant, letter.seq),
            serde_json::to_vec(letter).map_err(json_err)?,
        );
        Ok(())
    }

    /// A tenant's dead letter.
    pub fn dead_letter(&self, tenant: &str, seq: u64) -> Result<Option<DeadLetter>, DaemonError> {
        self.pipeline
            .get(keys::seq_key(kind::DEAD_LETTER, tenant, seq))?
            .map(|v| serde_json::from_slice(&v).map_err(json_err))
            .transpose()
    }

    /// Store a changed dead letter.
    pub(super) fn put_dead_letter(
        &self,
        tenant: &str,
        letter: &DeadLetter,
    ) -> Result<(), DaemonError> {
        self.pipeline.insert(
            keys::seq_key(kind::DEAD_LETTER, tenant, letter.seq),
            serde_json::to_vec(letter).map_err(json_err)?,
        )?;
        Ok(())
    }

    /// Ask for dead letter `seq` of `tenant` to be replayed by its detector; `None` if
    /// there is no such dead letter.
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
        self.put_dead_letter(tenant, &letter)?;
        self.replays.add(tenant, &letter.plugin);
        self.wake.notify();
        Ok(Some(letter))
    }

    /// The next dead letter of `plugin` waiting to be replayed, if any (clearing the
    /// flag when there is none).
    pub(super) fn next_replay(
        &self,
        tenant: &str,
        plugin: &str,
    ) -> Result<Option<DeadLetter>, DaemonError> {
        if !self.replays.waiting(tenant, plugin) {
            return Ok(None);
        }
        for r in self
            .pipeline
            .scan_prefix(keys::key(kind::DEAD_LETTER, &[tenant.as_bytes()]))
        {
            let (_, v) = r?;
            let letter: DeadLetter = serde_json::from_slice(&v).map_err(json_err)?;
            if letter.plugin == plugin && letter.status == "replay" {
                return Ok(Some(letter));
            }
        }
        self.replays.clear(tenant, plugin);
        Ok(None)
    }

    /// Flag every replay left waiting (at start).
    pub(super) fn recover_replays(&self) -> Result<(), DaemonError> {
        for r in self.pipeline.scan_prefix([kind::DEAD_LETTER]) {
            let (k, v) = r?;
            let letter: DeadLetter = serde_json::from_slice(&v).map_err(json_err)?;
            if letter.status == "replay"
                && let Some(tenant) = keys::tenant_of(&k)
            {
                self.replays.add(&tenant, &letter.plugin);
            }
        }
        Ok(())
    }
}
