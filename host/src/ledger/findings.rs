//! Findings, and the decision queue: each finding waits there, keyed in
//! [`crate::pipeline::decide::DecisionOrder`], until the decision stage takes it.

use super::keys::{self, kind};
use super::{Commit, Ledger, LedgerError, Page, StoredFinding, json};
use crate::pipeline::detect::Positioned;
use crate::records::FindingRecord;

/// A finding waiting in the decision queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    key: Vec<u8>,
    /// Its position (the inbox seq of the event it is dated from).
    pub position: u64,
    /// Its finding seq.
    pub finding_seq: u64,
}

impl Ledger {
    /// `tenant`'s finding `seq`.
    pub fn finding(&self, tenant: &str, seq: u64) -> Result<Option<StoredFinding>, LedgerError> {
        self.get_json(keys::seq_key(kind::FINDING, tenant, seq), "finding")
    }

    /// A page of `tenant`'s findings after seq `after` that `keep` selects.
    pub fn findings(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&FindingRecord) -> bool,
    ) -> Result<Page<StoredFinding>, LedgerError> {
        self.page(
            kind::FINDING,
            "finding",
            tenant,
            after,
            limit,
            |f: &StoredFinding| keep(&f.finding),
        )
    }

    /// A page of `tenant`'s findings, newest first, before seq `before`, that `keep`
    /// selects, each read as `T`: [`StoredFinding`], or a type with only the fields a
    /// caller needs (it parses faster).
    pub fn findings_back<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, LedgerError> {
        self.page_back(kind::FINDING, "finding", tenant, before, limit, keep)
    }

    /// The first findings in `tenant`'s decision queue, at most `max`, that stand
    /// before position `below`.
    pub fn decidable(
        &self,
        tenant: &str,
        below: u64,
        max: usize,
    ) -> Result<Vec<Queued>, LedgerError> {
        let mut out = Vec::new();
        for r in self
            .pipeline
            .scan_prefix(keys::key(kind::DECISION_QUEUE, &[tenant.as_bytes()]))
            .take(max)
        {
            let (key, _) = r?;
            let (position, finding_seq) =
                keys::queued(&key, tenant).ok_or(LedgerError::MalformedKey {
                    what: "decision queue",
                })?;
            if position >= below {
                break;
            }
            out.push(Queued {
                key: key.to_vec(),
                position,
                finding_seq,
            });
        }
        Ok(out)
    }

    /// The position of the first finding in `tenant`'s decision queue, if any waits.
    pub fn first_queued(&self, tenant: &str) -> Result<Option<u64>, LedgerError> {
        match self
            .pipeline
            .scan_prefix(keys::key(kind::DECISION_QUEUE, &[tenant.as_bytes()]))
            .next()
        {
            Some(r) => {
                let (key, _) = r?;
                let (position, _) =
                    keys::queued(&key, tenant).ok_or(LedgerError::MalformedKey {
                        what: "decision queue",
                    })?;
                Ok(Some(position))
            }
            None => Ok(None),
        }
    }

    /// Move the findings a data directory of an earlier version had not decided (those
    /// from its decision cursor on) into the decision queue, and drop the cursor.
    pub(super) fn migrate_decision_cursors(&self) -> Result<(), LedgerError> {
        let cursors: Vec<(sled::IVec, sled::IVec)> = self
            .pipeline
            .scan_prefix([kind::OLD_DECISION_CURSOR])
            .collect::<Result<_, _>>()?;
        for (key, from) in cursors {
            let tenant = keys::tenant_of(&key).ok_or(LedgerError::MalformedKey {
                what: "decision cursor",
            })?;
            let from = <[u8; 8]>::try_from(from.as_ref()).map_or(0, u64::from_be_bytes);
            let mut batch = sled::Batch::default();
            for r in self.pipeline.range(
                keys::seq_key(kind::FINDING, &tenant, from)
                    ..keys::seq_key(kind::FINDING, &tenant, u64::MAX),
            ) {
                let (_, v) = r?;
                let f: StoredFinding = serde_json::from_slice(&v).map_err(json("finding"))?;
                batch.insert(
                    keys::decision_queue(&tenant, f.event_seq, &f.finding.plugin, f.seq),
                    &[],
                );
            }
            batch.remove(key);
            self.pipeline.apply_batch(batch)?;
            tracing::info!(%tenant, "the undecided findings moved into the decision queue");
        }
        Ok(())
    }
}

impl Commit {
    /// Append `findings` of `tenant`, committed at wall time `committed_ms`, under the
    /// tenant's next finding seqs (read from `ledger`: hold the commit lock), each with
    /// its place in the decision queue; how many.
    pub fn append_findings(
        &mut self,
        ledger: &Ledger,
        tenant: &str,
        findings: Vec<Positioned>,
        committed_ms: i64,
    ) -> Result<usize, LedgerError> {
        let first = ledger.next_seq(&keys::key(kind::FINDING, &[tenant.as_bytes()]))?;
        let n = findings.len();
        for (seq, Positioned { finding, position }) in (first..).zip(findings) {
            self.batch.insert(
                keys::decision_queue(tenant, position, &finding.plugin, seq),
                &[],
            );
            let stored = StoredFinding {
                seq,
                event_seq: position,
                committed_ms,
                finding,
            };
            self.batch.insert(
                keys::seq_key(kind::FINDING, tenant, seq),
                serde_json::to_vec(&stored).map_err(json("finding"))?,
            );
        }
        Ok(n)
    }

    /// Take `q` out of the decision queue (it is being decided).
    pub fn dequeue(&mut self, q: &Queued) {
        self.batch.remove(q.key.as_slice());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_page_newest_first_and_go_on_before_the_last_seq() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        for seq in 0..25u64 {
            let f = StoredFinding {
                seq,
                event_seq: seq,
                committed_ms: 0,
                finding: FindingRecord {
                    subject: if seq % 2 == 0 { "even" } else { "odd" }.into(),
                    ..Default::default()
                },
            };
            let v = serde_json::to_vec(&f).unwrap();
            ledger
                .pipeline
                .insert(keys::seq_key(kind::FINDING, "acme", seq), v)
                .unwrap();
        }
        // Another tenant's records never show.
        ledger
            .pipeline
            .insert(
                keys::seq_key(kind::FINDING, "acmf", 0),
                b"not json".to_vec(),
            )
            .unwrap();
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = ledger
                .findings_back("acme", before, 5, |f: &StoredFinding| {
                    f.finding.subject == "even"
                })
                .unwrap();
            pages.push(page.items.iter().map(|f| f.seq).collect::<Vec<_>>());
            match page.next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
        assert_eq!(
            pages,
            [
                vec![24, 22, 20, 18, 16],
                vec![14, 12, 10, 8, 6],
                vec![4, 2, 0]
            ]
        );
    }

    #[test]
    fn findings_an_earlier_version_left_undecided_move_into_the_decision_queue() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        for seq in 0..5u64 {
            let f = StoredFinding {
                seq,
                event_seq: 100 - seq,
                committed_ms: 0,
                finding: FindingRecord {
                    plugin: "d".into(),
                    ..Default::default()
                },
            };
            let v = serde_json::to_vec(&f).unwrap();
            ledger
                .pipeline
                .insert(keys::seq_key(kind::FINDING, "acme", seq), v)
                .unwrap();
        }
        // Decided up to finding 3.
        let cursor = keys::key(kind::OLD_DECISION_CURSOR, &[b"acme"]);
        ledger
            .pipeline
            .insert(&cursor, &3u64.to_be_bytes())
            .unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path()).unwrap();
        let queued: Vec<(u64, u64)> = ledger
            .decidable("acme", u64::MAX, 100)
            .unwrap()
            .iter()
            .map(|q| (q.position, q.finding_seq))
            .collect();
        // In decision order: by position.
        assert_eq!(queued, [(96, 4), (97, 3)]);
        assert!(ledger.pipeline.get(&cursor).unwrap().is_none());
        assert_eq!(ledger.decidable("acme", 97, 100).unwrap().len(), 1);
    }
}
