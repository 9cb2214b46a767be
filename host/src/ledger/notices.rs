//! What the daemon's own notifications keep: when each route last sent about a subject
//! and rule (for its dedup window), and the lines waiting for a route's next digest
//! (each its own record, appended by the decide step and removed by the digest pass,
//! so the two never overwrite each other).

use serde::{Deserialize, Serialize};

use super::keys::{self, kind};
use super::{ActionEntry, ActionKey, Commit, Ledger, LedgerError, json};

/// A line waiting for a route's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestLine {
    /// The route.
    pub route: String,
    /// Wall time it was staged (ms).
    pub time_ms: i64,
    /// The line.
    pub line: String,
}

fn notified_key(tenant: &str, route: &str, subject: &str, rule: &str) -> Vec<u8> {
    keys::key(
        kind::NOTIFIED,
        &[
            tenant.as_bytes(),
            route.as_bytes(),
            subject.as_bytes(),
            rule.as_bytes(),
        ],
    )
}

impl Ledger {
    /// The event time `tenant`'s route last sent about `subject` and `rule`.
    pub fn notified(
        &self,
        tenant: &str,
        route: &str,
        subject: &str,
        rule: &str,
    ) -> Result<Option<i64>, LedgerError> {
        Ok(self
            .pipeline
            .get(notified_key(tenant, route, subject, rule))?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes)))
    }

    /// Digest lines of every tenant, in key order (tenant, route, decision seq), up to
    /// `limit`: each with its key, to remove once sent.
    pub fn digest_lines(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>, DigestLine)>, LedgerError> {
        let mut out = Vec::new();
        for r in self.pipeline.scan_prefix([kind::DIGEST]).take(limit) {
            let (k, v) = r?;
            let tenant = keys::tenant_of(&k).ok_or(LedgerError::MalformedKey { what: "digest" })?;
            let line: DigestLine = serde_json::from_slice(&v).map_err(json("digest"))?;
            out.push((tenant, k.to_vec(), line));
        }
        Ok(out)
    }
}

impl Commit {
    /// Note that `tenant`'s route sent about `subject` and `rule` at event time `t`.
    pub fn set_notified(&mut self, tenant: &str, route: &str, subject: &str, rule: &str, t: i64) {
        self.batch
            .insert(notified_key(tenant, route, subject, rule), &t.to_be_bytes());
    }

    /// Add a line to `tenant`'s route's next digest, for decision `seq`.
    pub fn add_digest_line(
        &mut self,
        tenant: &str,
        seq: u64,
        line: &DigestLine,
    ) -> Result<(), LedgerError> {
        self.batch.insert(
            keys::key(
                kind::DIGEST,
                &[tenant.as_bytes(), line.route.as_bytes(), &seq.to_be_bytes()],
            ),
            serde_json::to_vec(line).map_err(json("digest"))?,
        );
        Ok(())
    }

    /// Remove a digest line that was sent.
    pub fn remove_digest_line(&mut self, key: &[u8]) {
        self.batch.remove(key);
    }

    /// Store an action log entry.
    pub fn put_action(&mut self, key: &ActionKey, entry: &ActionEntry) -> Result<(), LedgerError> {
        self.batch.insert(
            key.key.as_slice(),
            serde_json::to_vec(entry).map_err(json("action log"))?,
        );
        Ok(())
    }

    /// Set the count of entries in `tenant`'s action log.
    pub fn set_action_count(&mut self, tenant: &str, n: u64) {
        self.batch
            .insert(keys::action_count(tenant), &n.to_be_bytes());
    }
}
