//! Triage: where findings and decisions stand with the people triaging them (open,
//! acknowledged, closed with a reason), set in bulk, with the rules every front end
//! shares.

use super::{Daemon, DaemonError, now_ms};
use crate::ledger::{CloseReason, Triage, TriageStatus, Triaged};

/// Most findings and decisions one request triages.
pub const MAX_ITEMS: usize = 1_000;
/// Longest triage note (bytes).
pub const MAX_NOTE: usize = 2_000;

/// Why a triage was refused (nothing was set).
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// Some findings or decisions are not the tenant's.
    #[error("unknown findings or decisions: {}", .0.join(", "))]
    Unknown(Vec<String>),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

impl From<crate::ledger::LedgerError> for TriageError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        TriageError::Daemon(e.into())
    }
}

impl Daemon {
    /// Set the triage of `tenant`'s `items` (all or none) as `by`: closing needs a
    /// reason and only closing takes one; the note is bounded and its control
    /// characters escaped.
    pub fn triage(
        &self,
        tenant: &str,
        items: &[(Triaged, u64)],
        status: TriageStatus,
        reason: Option<CloseReason>,
        note: &str,
        by: &str,
    ) -> Result<Triage, TriageError> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(TriageError::Invalid(format!(
                "name 1 to {MAX_ITEMS} findings and decisions"
            )));
        }
        match (status, reason) {
            (TriageStatus::Closed, None) => {
                return Err(TriageError::Invalid("closing needs a reason".into()));
            }
            (TriageStatus::Open | TriageStatus::Acknowledged, Some(_)) => {
                return Err(TriageError::Invalid("only closing takes a reason".into()));
            }
            _ => {}
        }
        if note.len() > MAX_NOTE {
            return Err(TriageError::Invalid(format!(
                "the note is longer than {MAX_NOTE} bytes"
            )));
        }
        let by = super::reviews::signer(by).ok_or_else(|| {
            TriageError::Invalid(format!(
                "who triages must be named: 1 to {} printable bytes",
                super::reviews::MAX_SIGNER
            ))
        })?;
        let mut unknown = Vec::new();
        for (what, seq) in items {
            if !self.ledger.has(tenant, *what, *seq)? {
                let what = match what {
                    Triaged::Finding => "finding",
                    Triaged::Decision => "decision",
                };
                unknown.push(format!("no {what} {seq}"));
            }
        }
        if !unknown.is_empty() {
            return Err(TriageError::Unknown(unknown));
        }
        let triage = Triage {
            status,
            reason,
            note: crate::text::escape_control(note).into_owned(),
            by: by.to_owned(),
            time_ms: now_ms(),
        };
        self.ledger.put_triage(tenant, items, &triage)?;
        Ok(triage)
    }
}
