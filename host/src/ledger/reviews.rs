//! Reviews: decisions a person must look at. Every escalation opens one when it is
//! recorded (in the same commit); an effect the policy holds for approval opens one
//! for its decision. A review is keyed by its decision's seq, which is also its id.
//! Beside them, the tenant's suppressions (from dismissed reviews), as one record.

use serde::{Deserialize, Serialize};

use super::keys::{self, kind};
use super::{ActionEntry, ActionKey, Commit, Ledger, LedgerError, Page, StoredDecision, json};
use crate::pipeline::suppress::Suppression;

/// Why a review was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// The decision engine escalated (termination-loop guard, response cap) instead of
    /// responding: approving runs the responders.
    Escalation,
    /// A responder asked for effects the policy holds for approval: approving performs
    /// them.
    Approval,
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// Waiting for a person.
    Open,
    /// Approved: its effects run.
    Approved,
    /// Dismissed: nothing is done.
    Dismissed,
}

/// Why a review was dismissed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dismissal {
    /// The finding was wrong.
    FalsePositive,
    /// Right, but nothing to act on.
    Benign,
    /// Another review covers it.
    Duplicate,
}

impl ReviewKind {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Escalation => "escalation",
            ReviewKind::Approval => "approval",
        }
    }
}

impl ReviewState {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Open => "open",
            ReviewState::Approved => "approved",
            ReviewState::Dismissed => "dismissed",
        }
    }
}

impl Dismissal {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Dismissal::FalsePositive => "false_positive",
            Dismissal::Benign => "benign",
            Dismissal::Duplicate => "duplicate",
        }
    }
}

/// One review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Its id: the seq of its decision.
    pub id: u64,
    /// The decision's id.
    pub decision_id: String,
    /// Why it was opened.
    pub kind: ReviewKind,
    /// Where it stands.
    pub state: ReviewState,
    /// The decision's subject.
    pub subject: String,
    /// The rule of the decision's finding.
    pub rule: String,
    /// The finding's severity.
    pub severity: String,
    /// The decision's reason.
    pub reason: String,
    /// The decision's event time (ms).
    pub time_ms: i64,
    /// Wall time it was opened (ms).
    pub opened_ms: i64,
    /// Wall time it was approved or dismissed (ms; 0 while open).
    #[serde(default)]
    pub resolved_ms: i64,
    /// Who approved or dismissed it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resolved_by: String,
    /// Why it was dismissed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissal: Option<Dismissal>,
    /// The person's note.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// For an approved escalation: whether its responders' effects are performed (the
    /// tenant enforced when it was approved) or recorded.
    #[serde(default)]
    pub enforce: bool,
}

impl Review {
    /// An open review of decision `d`.
    pub fn open(d: &StoredDecision, kind: ReviewKind, now_ms: i64) -> Review {
        Review {
            id: d.seq,
            decision_id: d.decision.id.clone(),
            kind,
            state: ReviewState::Open,
            subject: d.decision.subject.clone(),
            rule: d.decision.finding.rule.clone(),
            severity: d.decision.finding.severity.clone(),
            reason: d.decision.reason.clone(),
            time_ms: d.decision.time_ms,
            opened_ms: now_ms,
            resolved_ms: 0,
            resolved_by: String::new(),
            dismissal: None,
            note: String::new(),
            enforce: false,
        }
    }
}

fn suppressions_key(tenant: &str) -> Vec<u8> {
    keys::key(kind::SUPPRESSIONS, &[tenant.as_bytes()])
}

impl Ledger {
    /// `tenant`'s review `id`.
    pub fn review(&self, tenant: &str, id: u64) -> Result<Option<Review>, LedgerError> {
        self.get_json(keys::seq_key(kind::REVIEW, tenant, id), "review")
    }

    /// Store `tenant`'s review (durable on return).
    pub fn put_review(&self, tenant: &str, review: &Review) -> Result<(), LedgerError> {
        self.pipeline.insert(
            keys::seq_key(kind::REVIEW, tenant, review.id),
            serde_json::to_vec(review).map_err(json("review"))?,
        )?;
        self.flush()
    }

    /// A page of `tenant`'s reviews after id `after` that `keep` selects.
    pub fn reviews(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&Review) -> bool,
    ) -> Result<Page<Review>, LedgerError> {
        self.page(kind::REVIEW, "review", tenant, after, limit, keep)
    }

    /// The effects of `tenant`'s decision `decision` held for approval.
    pub fn awaiting_approval(
        &self,
        tenant: &str,
        decision: &str,
    ) -> Result<Vec<(ActionKey, ActionEntry)>, LedgerError> {
        Ok(self
            .decision_actions(tenant, decision)?
            .into_iter()
            .filter(|(_, e)| e.status == "awaiting_approval")
            .collect())
    }

    /// `tenant`'s suppressions.
    pub fn suppressions(&self, tenant: &str) -> Result<Vec<Suppression>, LedgerError> {
        Ok(self
            .get_json(suppressions_key(tenant), "suppressions")?
            .unwrap_or_default())
    }

    /// Replace `tenant`'s suppressions (durable on return).
    pub fn put_suppressions(&self, tenant: &str, list: &[Suppression]) -> Result<(), LedgerError> {
        self.pipeline.insert(
            suppressions_key(tenant),
            serde_json::to_vec(list).map_err(json("suppressions"))?,
        )?;
        self.flush()
    }
}

impl Commit {
    /// Store `tenant`'s review.
    pub fn put_review(&mut self, tenant: &str, review: &Review) -> Result<(), LedgerError> {
        self.batch.insert(
            keys::seq_key(kind::REVIEW, tenant, review.id),
            serde_json::to_vec(review).map_err(json("review"))?,
        );
        Ok(())
    }

    /// Open a review of decision `d` of `tenant` (with the decision, in one commit).
    pub fn open_review(
        &mut self,
        tenant: &str,
        d: &StoredDecision,
        kind: ReviewKind,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        self.batch.insert(
            keys::seq_key(kind::REVIEW, tenant, d.seq),
            serde_json::to_vec(&Review::open(d, kind, now_ms)).map_err(json("review"))?,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_json_names() {
        for k in [ReviewKind::Escalation, ReviewKind::Approval] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in [
            ReviewState::Open,
            ReviewState::Approved,
            ReviewState::Dismissed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for d in [
            Dismissal::FalsePositive,
            Dismissal::Benign,
            Dismissal::Duplicate,
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }
}
