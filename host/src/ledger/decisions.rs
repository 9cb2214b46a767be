//! Decisions, and the responses pending on them: a decision that responds stays
//! pending until every responder it waits for has handled it; the pending record names
//! the responders done with it.

use super::keys::{self, kind};
use super::{Commit, Ledger, LedgerError, Page, StoredDecision, json};
use crate::records::FindingRecord;

impl Ledger {
    /// The seq `tenant`'s next decision gets.
    pub fn next_decision_seq(&self, tenant: &str) -> Result<u64, LedgerError> {
        self.next_seq(&keys::key(kind::DECISION, &[tenant.as_bytes()]))
    }

    /// `tenant`'s decision `seq`.
    pub fn decision(&self, tenant: &str, seq: u64) -> Result<Option<StoredDecision>, LedgerError> {
        self.get_json(keys::seq_key(kind::DECISION, tenant, seq), "decision")
    }

    /// A page of `tenant`'s decisions after seq `after` whose finding `keep` selects.
    pub fn decisions(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&FindingRecord) -> bool,
    ) -> Result<Page<StoredDecision>, LedgerError> {
        self.page(
            kind::DECISION,
            "decision",
            tenant,
            after,
            limit,
            |d: &StoredDecision| keep(&d.decision.finding),
        )
    }

    /// A page of `tenant`'s decisions, newest first, before seq `before`, that `keep`
    /// selects, each read as `T` (see [`Ledger::findings_back`]).
    pub fn decisions_back<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, LedgerError> {
        self.page_back(kind::DECISION, "decision", tenant, before, limit, keep)
    }

    /// `tenant`'s pending responses from decision seq `from` on, in order: each
    /// decision's seq and the responders done with it.
    pub fn pending(
        &self,
        tenant: &str,
        from: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<String>), LedgerError>> + use<> {
        self.pipeline
            .range(
                keys::seq_key(kind::PENDING_RESPONSE, tenant, from)
                    ..keys::seq_key(kind::PENDING_RESPONSE, tenant, u64::MAX),
            )
            .map(|r| {
                let (key, done) = r?;
                let seq = keys::seq_of(&key).ok_or(LedgerError::MalformedKey {
                    what: "pending response",
                })?;
                // A record written before records named the responders is empty: none.
                let done = if done.is_empty() {
                    Vec::new()
                } else {
                    serde_json::from_slice(&done).map_err(json("pending response"))?
                };
                Ok((seq, done))
            })
    }

    /// Whether `tenant`'s decision `seq` still waits for a responder.
    pub fn is_pending(&self, tenant: &str, seq: u64) -> Result<bool, LedgerError> {
        Ok(self
            .pipeline
            .contains_key(keys::seq_key(kind::PENDING_RESPONSE, tenant, seq))?)
    }

    /// Drop `tenant`'s pending response to decision `seq` (nothing left to wait for).
    pub fn remove_pending(&self, tenant: &str, seq: u64) -> Result<(), LedgerError> {
        self.pipeline
            .remove(keys::seq_key(kind::PENDING_RESPONSE, tenant, seq))?;
        Ok(())
    }
}

impl Commit {
    /// Record decision `d` of `tenant` (under its own seq), pending for responders when
    /// it responds.
    pub fn put_decision(&mut self, tenant: &str, d: &StoredDecision) -> Result<(), LedgerError> {
        if d.decision.outcome.responds() {
            self.batch
                .insert(keys::seq_key(kind::PENDING_RESPONSE, tenant, d.seq), &[]);
        }
        self.batch.insert(
            keys::seq_key(kind::DECISION, tenant, d.seq),
            serde_json::to_vec(d).map_err(json("decision"))?,
        );
        Ok(())
    }

    /// Note the responders `done` with decision `seq` of `tenant`.
    pub fn set_pending(
        &mut self,
        tenant: &str,
        seq: u64,
        done: &[String],
    ) -> Result<(), LedgerError> {
        self.batch.insert(
            keys::seq_key(kind::PENDING_RESPONSE, tenant, seq),
            serde_json::to_vec(done).map_err(json("pending response"))?,
        );
        Ok(())
    }

    /// Drop the pending response to decision `seq` of `tenant` (every responder it
    /// waited for is done).
    pub fn remove_pending(&mut self, tenant: &str, seq: u64) {
        self.batch
            .remove(keys::seq_key(kind::PENDING_RESPONSE, tenant, seq));
    }
}
