//! Dead letters: events a detector faulted on every time, set aside with the fault.

use super::keys::{self, kind};
use super::{Commit, DeadLetter, Ledger, LedgerError, Page, json};

impl Ledger {
    /// `tenant`'s dead letter `seq`.
    pub fn dead_letter(&self, tenant: &str, seq: u64) -> Result<Option<DeadLetter>, LedgerError> {
        self.get_json(keys::seq_key(kind::DEAD_LETTER, tenant, seq), "dead letter")
    }

    /// Store `letter` of `tenant` as it is now.
    pub fn put_dead_letter(&self, tenant: &str, letter: &DeadLetter) -> Result<(), LedgerError> {
        self.pipeline.insert(
            keys::seq_key(kind::DEAD_LETTER, tenant, letter.seq),
            serde_json::to_vec(letter).map_err(json("dead letter"))?,
        )?;
        Ok(())
    }

    /// A page of `tenant`'s dead letters after seq `after` that `keep` selects.
    pub fn dead_letters(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&DeadLetter) -> bool,
    ) -> Result<Page<DeadLetter>, LedgerError> {
        self.page(kind::DEAD_LETTER, "dead letter", tenant, after, limit, keep)
    }

    /// `tenant`'s first dead letter that `matches` selects.
    pub fn find_dead_letter(
        &self,
        tenant: &str,
        matches: impl Fn(&DeadLetter) -> bool,
    ) -> Result<Option<DeadLetter>, LedgerError> {
        for r in self
            .pipeline
            .scan_prefix(keys::key(kind::DEAD_LETTER, &[tenant.as_bytes()]))
        {
            let (_, v) = r?;
            let letter: DeadLetter = serde_json::from_slice(&v).map_err(json("dead letter"))?;
            if matches(&letter) {
                return Ok(Some(letter));
            }
        }
        Ok(None)
    }

    /// Every tenant's dead letters that `keep` selects, with their tenants.
    pub fn all_dead_letters(
        &self,
        keep: impl Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<(String, DeadLetter)>, LedgerError> {
        let mut out = Vec::new();
        for r in self.pipeline.scan_prefix([kind::DEAD_LETTER]) {
            let (k, v) = r?;
            let letter: DeadLetter = serde_json::from_slice(&v).map_err(json("dead letter"))?;
            if keep(&letter) {
                let tenant = keys::tenant_of(&k).ok_or(LedgerError::MalformedKey {
                    what: "dead letter",
                })?;
                out.push((tenant, letter));
            }
        }
        Ok(out)
    }
}

impl Commit {
    /// Append `letter` to `tenant`'s dead letters under its next seq (read from
    /// `ledger`), setting `letter.seq`.
    pub fn append_dead_letter(
        &mut self,
        ledger: &Ledger,
        tenant: &str,
        letter: &mut DeadLetter,
    ) -> Result<(), LedgerError> {
        letter.seq = ledger.next_seq(&keys::key(kind::DEAD_LETTER, &[tenant.as_bytes()]))?;
        self.put_dead_letter(tenant, letter)
    }

    /// Store `letter` of `tenant` as it is now.
    pub fn put_dead_letter(
        &mut self,
        tenant: &str,
        letter: &DeadLetter,
    ) -> Result<(), LedgerError> {
        self.batch.insert(
            keys::seq_key(kind::DEAD_LETTER, tenant, letter.seq),
            serde_json::to_vec(letter).map_err(json("dead letter"))?,
        );
        Ok(())
    }
}
