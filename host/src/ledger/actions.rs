//! The action log: every effect responders asked for and what became of it, keyed by
//! its idempotency key (tenant, decision, responder, action, target), so an effect asked
//! for again gets its first answer.

use sha2::Digest as _;

use super::keys::{self, kind};
use super::{ActionEntry, Ledger, LedgerError, MAX_SCANNED, Page, json};

/// Where an effect is kept in the action log: its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionKey {
    tenant: String,
    pub(super) key: Vec<u8>,
}

impl ActionKey {
    /// The key of `action` on `target` that `responder` asked for in `tenant`'s
    /// decision `decision`.
    pub fn new(tenant: &str, decision: &str, responder: &str, action: &str, target: &str) -> Self {
        ActionKey {
            tenant: tenant.to_owned(),
            key: keys::key(
                kind::ACTION,
                &[
                    tenant.as_bytes(),
                    decision.as_bytes(),
                    responder.as_bytes(),
                    action.as_bytes(),
                    target.as_bytes(),
                ],
            ),
        }
    }

    /// The key auditing a refused request (apart from the effect of the same action
    /// and target, whose idempotency record it must not take).
    pub fn refused(
        tenant: &str,
        decision: &str,
        responder: &str,
        action: &str,
        target: &str,
    ) -> Self {
        Self::new(
            tenant,
            decision,
            responder,
            &format!("refused/{action}"),
            target,
        )
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The key receivers may use to recognise a repeated effect (a hash: the key
    /// names tenants and users).
    pub fn idempotency(&self) -> String {
        hex::encode(&sha2::Sha256::digest(&self.key)[..16])
    }
}

impl Ledger {
    /// The action log entry at `key`.
    pub fn action(&self, key: &ActionKey) -> Result<Option<ActionEntry>, LedgerError> {
        self.get_json(&key.key, "action log")
    }

    /// Store the action log entry at `key`, flushed to disk with `flush` (an effect
    /// queued, or marked done, must not be lost in a crash).
    pub fn put_action(
        &self,
        key: &ActionKey,
        entry: &ActionEntry,
        flush: bool,
    ) -> Result<(), LedgerError> {
        let v = serde_json::to_vec(entry).map_err(json("action log"))?;
        self.pipeline.insert(&key.key, v)?;
        if flush {
            self.db.flush()?;
        }
        Ok(())
    }

    /// The action log entries of `tenant`'s decision `decision`, refusals included.
    pub fn decision_actions(
        &self,
        tenant: &str,
        decision: &str,
    ) -> Result<Vec<(ActionKey, ActionEntry)>, LedgerError> {
        let prefix = keys::key(kind::ACTION, &[tenant.as_bytes(), decision.as_bytes()]);
        let mut out = Vec::new();
        for r in self.pipeline.scan_prefix(prefix) {
            let (k, v) = r?;
            let e: ActionEntry = serde_json::from_slice(&v).map_err(json("action log"))?;
            let key = ActionKey {
                tenant: tenant.to_owned(),
                key: k.to_vec(),
            };
            out.push((key, e));
        }
        Ok(out)
    }

    /// Every tenant's action log entries left `queued` or `pending` (an effect not
    /// performed yet, or interrupted), in log order.
    pub fn unfinished_actions(&self) -> Result<Vec<ActionKey>, LedgerError> {
        let mut out = Vec::new();
        for r in self.pipeline.scan_prefix([kind::ACTION]) {
            let (k, v) = r?;
            let Ok(e) = serde_json::from_slice::<ActionEntry>(&v) else {
                continue;
            };
            if matches!(e.status.as_str(), "queued" | "pending") {
                let tenant =
                    keys::tenant_of(&k).ok_or(LedgerError::MalformedKey { what: "action log" })?;
                out.push(ActionKey {
                    tenant,
                    key: k.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// A page of `tenant`'s action log in the log's own order (by decision), after
    /// the cursor `after` (a page's `next`), up to `limit` entries `keep` selects.
    pub fn actions(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&ActionEntry) -> bool,
    ) -> Result<Page<ActionEntry, String>, LedgerError> {
        let prefix = keys::key(kind::ACTION, &[tenant.as_bytes()]);
        let mut from = prefix.clone();
        if let Some(after) = after {
            from.extend_from_slice(&hex::decode(after).map_err(|_| LedgerError::BadCursor)?);
            from.push(0);
        }
        let mut items = Vec::new();
        let mut last = None;
        for (scanned, r) in self.pipeline.range(from..).enumerate() {
            let (k, v) = r?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if scanned == MAX_SCANNED || items.len() == limit {
                return Ok(Page { items, next: last });
            }
            last = Some(hex::encode(rest));
            let a: ActionEntry = serde_json::from_slice(&v).map_err(json("action log"))?;
            if keep(&a) {
                items.push(a);
            }
        }
        Ok(Page { items, next: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_key_knows_its_tenant_and_hides_its_parts_in_the_idempotency_key() {
        let key = ActionKey::new("acme", "d1", "r", "notify", "x");
        assert_eq!(key.tenant(), "acme");
        assert_eq!(keys::tenant_of(&key.key).as_deref(), Some("acme"));
        assert_eq!(keys::tenant_of(&[kind::ACTION, 0, 0]), None);
        let idempotency = key.idempotency();
        assert_eq!(idempotency.len(), 32);
        assert!(!idempotency.contains("acme"));
        assert_ne!(
            ActionKey::refused("acme", "d1", "r", "notify", "x").idempotency(),
            idempotency
        );
    }
}
