//! Triage: where a person has a finding or a decision (open, acknowledged, closed with
//! a reason), by its seq. Absent means open.

use serde::{Deserialize, Serialize};

use super::keys::{self, kind};
use super::{Ledger, LedgerError, json};

/// What is triaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Triaged {
    /// A finding, by its seq.
    Finding,
    /// A decision, by its seq.
    Decision,
}

/// Where a finding or decision stands with the people triaging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageStatus {
    /// Nobody has looked at it yet.
    #[default]
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Done with, for a reason.
    Closed,
}

/// Why a finding or decision was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Dealt with.
    Resolved,
    /// It was wrong.
    FalsePositive,
    /// Right, but nothing to act on.
    Benign,
    /// Another covers it.
    Duplicate,
}

/// A triage record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Triage {
    /// Where it stands.
    pub status: TriageStatus,
    /// Why it was closed (closed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CloseReason>,
    /// A note.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Who set it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// Wall time it was set (ms; 0 while never set).
    #[serde(default)]
    pub time_ms: i64,
}

fn triage_key(tenant: &str, what: Triaged, seq: u64) -> Vec<u8> {
    let what: &[u8] = match what {
        Triaged::Finding => b"f",
        Triaged::Decision => b"d",
    };
    keys::key(kind::TRIAGE, &[tenant.as_bytes(), what, &seq.to_be_bytes()])
}

impl Ledger {
    /// The triage of `tenant`'s finding or decision `seq` (open if never set).
    pub fn triage(&self, tenant: &str, what: Triaged, seq: u64) -> Result<Triage, LedgerError> {
        Ok(self
            .get_json(triage_key(tenant, what, seq), "triage")?
            .unwrap_or_default())
    }

    /// Set the triage of `tenant`'s findings or decisions `seqs` at once (durable on
    /// return).
    pub fn put_triage(
        &self,
        tenant: &str,
        items: &[(Triaged, u64)],
        triage: &Triage,
    ) -> Result<(), LedgerError> {
        let value = serde_json::to_vec(triage).map_err(json("triage"))?;
        let mut batch = sled::Batch::default();
        for (what, seq) in items {
            batch.insert(triage_key(tenant, *what, *seq), value.clone());
        }
        self.pipeline.apply_batch(batch)?;
        self.flush()
    }

    /// Whether `tenant` has finding or decision `seq`.
    pub fn has(&self, tenant: &str, what: Triaged, seq: u64) -> Result<bool, LedgerError> {
        let k = match what {
            Triaged::Finding => kind::FINDING,
            Triaged::Decision => kind::DECISION,
        };
        Ok(self.pipeline.contains_key(keys::seq_key(k, tenant, seq))?)
    }
}
