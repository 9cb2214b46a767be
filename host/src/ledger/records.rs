//! The records the ledger keeps for the pipeline's stages, as they are stored (JSON).

use serde::{Deserialize, Serialize};

use crate::pipeline::decide::DecisionRecord;
use crate::records::FindingRecord;

/// A finding as stored, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Per-tenant finding sequence number.
    pub seq: u64,
    /// Its position: the inbox seq of the event it is dated from (see
    /// [`crate::pipeline::decide::DecisionOrder`]).
    pub event_seq: u64,
    /// Wall time when it was committed (ms), for detection-to-response latency.
    #[serde(default)]
    pub committed_ms: i64,
    /// The finding.
    #[serde(flatten)]
    pub finding: FindingRecord,
}

/// A decision as stored, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    /// Per-tenant decision sequence number.
    pub seq: u64,
    /// Wall time when its finding was committed (ms).
    #[serde(default)]
    pub finding_committed_ms: i64,
    /// The decision.
    #[serde(flatten)]
    pub decision: DecisionRecord,
}

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

/// One action log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEntry {
    /// Decision it belongs to.
    pub decision_id: String,
    /// Responder that asked.
    pub responder: String,
    /// The effect's kind (`terminate-sessions`, `restrict-app`, `notify`, ...).
    pub action: String,
    /// User id, app id or channel.
    pub target: String,
    /// The session an `end-session` ends.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_id: String,
    /// `awaiting_approval` (held in a review), `queued` (waiting for the executor),
    /// `pending` (being performed), `done`, `failed`, `dismissed` (its review was
    /// dismissed), `recorded` (dry-run) or `refused` (not bound to the decision being
    /// responded to; nothing was performed).
    pub status: String,
    /// Answer detail or error code.
    pub detail: String,
    /// Wall time of the last change (ms).
    pub time_ms: i64,
    /// A notification's text, kept until it is sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// A webhook notification's prepared JSON body (an OCSF finding), kept until it
    /// is sent; empty: the text message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Wall time the effect was queued (ms): its retries end a bounded time after.
    #[serde(default)]
    pub queued_ms: i64,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Who approved it, for an effect that waited for approval.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub approved_by: String,
}
