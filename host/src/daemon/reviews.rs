//! Human review in the daemon: opening a review (an escalation, or effects held for
//! approval), approving it (the held effects are queued for the executor, recording
//! who approved; an escalation's responders run), dismissing it with a reason (held
//! effects are marked dismissed; a false positive may add a suppression that the
//! decision engine honours from then on), and the tenant's suppressions.

use std::sync::atomic::Ordering;

use super::notify::Notifier;
use super::{Daemon, DaemonError, now_ms};
use crate::ledger::{Commit, Dismissal, Review, ReviewKind, ReviewState};
use crate::pipeline::policy::Mode;
use crate::pipeline::suppress::{MAX_SUPPRESSIONS, Suppression};

/// Why a review could not be approved or dismissed.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such review in the tenant.
    #[error("no review {0}")]
    NotFound(u64),
    /// Approved or dismissed already.
    #[error("review {id} is {} already", .state.as_str())]
    NotOpen {
        /// The review.
        id: u64,
        /// Where it stands.
        state: ReviewState,
    },
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

impl From<crate::ledger::LedgerError> for ReviewError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        ReviewError::Daemon(e.into())
    }
}

/// Longest name a person signs an approval, a dismissal or a triage with (bytes).
pub const MAX_SIGNER: usize = 200;

/// Longest dismissal note (bytes).
pub const MAX_NOTE: usize = 2_000;

/// The name a person signs with, trimmed: present, at most [`MAX_SIGNER`] bytes, no
/// control characters; `None` otherwise.
pub fn signer(by: &str) -> Option<&str> {
    let by = by.trim();
    (!by.is_empty() && by.len() <= MAX_SIGNER && !by.chars().any(char::is_control)).then_some(by)
}

/// What a dismissal asks for.
#[derive(Debug, Clone)]
pub struct Dismiss {
    /// Why.
    pub reason: Dismissal,
    /// A note (at most [`MAX_NOTE`] bytes; its control characters are escaped).
    pub note: String,
    /// Add a suppression of the subject and rule, expiring at this event time (ms) if
    /// given (false positives only).
    pub suppress: Option<Option<i64>>,
}

impl Daemon {
    fn reviews_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reviews.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open a review of `tenant`'s decision `seq` unless it has one.
    pub(crate) fn open_review(
        &self,
        tenant: &str,
        seq: u64,
        kind: ReviewKind,
    ) -> Result<(), DaemonError> {
        let _lock = self.reviews_lock();
        if self.ledger.review(tenant, seq)?.is_some() {
            return Ok(());
        }
        let Some(d) = self.ledger.decision(tenant, seq)? else {
            return Err(crate::ledger::LedgerError::Missing {
                what: "the decision a review is opened for",
            }
            .into());
        };
        // The review and its announcement to the security route in one commit.
        let policy = self.policy(tenant)?;
        let mut notifier = Notifier::new(self, tenant, &policy);
        let mut commit = Commit::default();
        commit.put_review(tenant, &Review::open(&d, kind, now_ms()))?;
        notifier.review(&mut commit, kind, seq, &d.decision)?;
        self.ledger.commit(commit)?;
        self.ledger.flush()?;
        notifier.queue();
        self.metrics.review(tenant, kind, ReviewState::Open);
        Ok(())
    }

    /// Whether `tenant`'s decision `seq` has a review a person approved.
    pub(crate) fn review_approved(&self, tenant: &str, seq: u64) -> Result<bool, DaemonError> {
        Ok(self
            .ledger
            .review(tenant, seq)?
            .is_some_and(|r| r.state == ReviewState::Approved))
    }

    /// `tenant`'s review `id`, open or not.
    fn open_one(&self, tenant: &str, id: u64) -> Result<Review, ReviewError> {
        let review = self
            .ledger
            .review(tenant, id)?
            .ok_or(ReviewError::NotFound(id))?;
        if review.state != ReviewState::Open {
            return Err(ReviewError::NotOpen {
                id,
                state: review.state,
            });
        }
        Ok(review)
    }

    /// Approve `tenant`'s review `id` as `by`: its held effects are queued for the
    /// executor (each recording who approved), or, for an escalation, its decision's
    /// responders run (their effects performed if the tenant enforces now).
    pub fn approve_review(&self, tenant: &str, id: u64, by: &str) -> Result<Review, ReviewError> {
        let _lock = self.reviews_lock();
        let mut review = self.open_one(tenant, id)?;
        review.state = ReviewState::Approved;
        review.resolved_by = by.to_owned();
        review.resolved_ms = now_ms();
        match review.kind {
            ReviewKind::Approval => {
                // The effects first: a crash after them leaves an open review with
                // nothing held, which approves cleanly again.
                for (key, mut entry) in
                    self.ledger.awaiting_approval(tenant, &review.decision_id)?
                {
                    entry.status = "queued".into();
                    entry.approved_by = by.to_owned();
                    entry.queued_ms = now_ms();
                    entry.time_ms = entry.queued_ms;
                    self.ledger.put_action(&key, &entry, true)?;
                    self.metrics.action(tenant, &entry.action, "queued");
                    self.effects.push(tenant, key);
                }
                self.ledger.put_review(tenant, &review)?;
            }
            ReviewKind::Escalation => {
                review.enforce = self.policy(tenant)?.mode == Mode::Enforce;
                // The review and the pending response in one commit: the worker runs
                // an escalation's responders only once its review is approved.
                let mut commit = Commit::default();
                commit.put_review(tenant, &review)?;
                commit.set_pending(tenant, id, &[])?;
                self.ledger.commit(commit)?;
                self.ledger.flush()?;
                self.reopened.fetch_add(1, Ordering::Relaxed);
                self.wake.notify();
            }
        }
        self.metrics.review(tenant, review.kind, review.state);
        Ok(review)
    }

    /// Dismiss `tenant`'s review `id` as `by`: held effects are marked dismissed and
    /// never performed; a false positive may add a suppression.
    pub fn dismiss_review(
        &self,
        tenant: &str,
        id: u64,
        by: &str,
        dismiss: Dismiss,
    ) -> Result<(Review, Option<Suppression>), ReviewError> {
        if dismiss.note.len() > MAX_NOTE {
            return Err(ReviewError::Invalid(format!(
                "the note is longer than {MAX_NOTE} bytes"
            )));
        }
        let _lock = self.reviews_lock();
        let mut review = self.open_one(tenant, id)?;
        if dismiss.suppress.is_some() && dismiss.reason != Dismissal::FalsePositive {
            return Err(ReviewError::Invalid(
                "only a false_positive dismissal adds a suppression".into(),
            ));
        }
        let mut suppressions = self.ledger.suppressions(tenant)?;
        let suppression = match dismiss.suppress {
            Some(expires_ms) => {
                if suppressions.len() >= MAX_SUPPRESSIONS {
                    return Err(ReviewError::Invalid(format!(
                        "the tenant has {MAX_SUPPRESSIONS} suppressions, the most it may keep"
                    )));
                }
                let s = Suppression {
                    id: suppressions.iter().map(|s| s.id + 1).max().unwrap_or(1),
                    subject: review.subject.clone(),
                    rule: review.rule.clone(),
                    expires_ms,
                    review: Some(id),
                    by: by.to_owned(),
                    created_ms: now_ms(),
                };
                suppressions.push(s.clone());
                Some(s)
            }
            None => None,
        };
        for (key, mut entry) in self.ledger.awaiting_approval(tenant, &review.decision_id)? {
            entry.status = "dismissed".into();
            entry.detail = dismiss.reason.as_str().to_owned();
            entry.time_ms = now_ms();
            self.ledger.put_action(&key, &entry, false)?;
            self.metrics.action(tenant, &entry.action, "dismissed");
        }
        if suppression.is_some() {
            self.ledger.put_suppressions(tenant, &suppressions)?;
        }
        review.state = ReviewState::Dismissed;
        review.resolved_by = by.to_owned();
        review.resolved_ms = now_ms();
        review.dismissal = Some(dismiss.reason);
        review.note = crate::text::escape_control(&dismiss.note).into_owned();
        self.ledger.put_review(tenant, &review)?;
        self.metrics.review(tenant, review.kind, review.state);
        Ok((review, suppression))
    }

    /// `tenant`'s suppressions.
    pub fn suppressions(&self, tenant: &str) -> Result<Vec<Suppression>, DaemonError> {
        Ok(self.ledger.suppressions(tenant)?)
    }

    /// Remove `tenant`'s suppression `id`; whether it had one.
    pub fn remove_suppression(&self, tenant: &str, id: u64) -> Result<bool, DaemonError> {
        let _lock = self.reviews_lock();
        let mut list = self.ledger.suppressions(tenant)?;
        let before = list.len();
        list.retain(|s| s.id != id);
        if list.len() == before {
            return Ok(false);
        }
        self.ledger.put_suppressions(tenant, &list)?;
        Ok(true)
    }
}
