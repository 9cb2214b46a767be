//! The `meta` tree's records: tenants, the token index, plugin records and policies.
//! Their types belong to the daemon's modules that manage them; the ledger keeps them
//! as JSON under its own keys.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{self, kind};
use super::{Ledger, LedgerError, json};

fn tenant_key(name: &str) -> Vec<u8> {
    keys::key(kind::TENANT, &[name.as_bytes()])
}

fn token_key(hash: &[u8]) -> Vec<u8> {
    keys::key(kind::TOKEN, &[hash])
}

fn plugin_key(tenant: &str, name: &str) -> Vec<u8> {
    keys::key(kind::PLUGIN, &[tenant.as_bytes(), name.as_bytes()])
}

fn policy_key(tenant: &str) -> Vec<u8> {
    keys::key(kind::POLICY, &[tenant.as_bytes()])
}

impl Ledger {
    pub(super) fn get_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, LedgerError> {
        self.meta
            .get(key)?
            .map(|v| serde_json::from_slice(&v).map_err(json(what)))
            .transpose()
    }

    pub(super) fn put_meta<T: Serialize>(
        &self,
        key: Vec<u8>,
        value: &T,
        what: &'static str,
    ) -> Result<(), LedgerError> {
        self.meta
            .insert(key, serde_json::to_vec(value).map_err(json(what))?)?;
        Ok(())
    }

    pub(super) fn list_meta<T: DeserializeOwned>(
        &self,
        prefix: Vec<u8>,
        what: &'static str,
    ) -> Result<Vec<T>, LedgerError> {
        self.meta
            .scan_prefix(prefix)
            .map(|r| {
                let (_, v) = r?;
                serde_json::from_slice(&v).map_err(json(what))
            })
            .collect()
    }

    /// Tenant `name`'s record.
    pub fn tenant_record<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, LedgerError> {
        self.get_meta(&tenant_key(name), "tenant")
    }

    /// Store tenant `name`'s record unless one is there (two concurrent creations
    /// cannot both win); whether it was stored.
    pub fn create_tenant_record<T: Serialize>(
        &self,
        name: &str,
        record: &T,
    ) -> Result<bool, LedgerError> {
        let value = serde_json::to_vec(record).map_err(json("tenant"))?;
        Ok(self
            .meta
            .compare_and_swap(tenant_key(name), None::<&[u8]>, Some(value))?
            .is_ok())
    }

    /// Store tenant `name`'s record.
    pub fn put_tenant_record<T: Serialize>(
        &self,
        name: &str,
        record: &T,
    ) -> Result<(), LedgerError> {
        self.put_meta(tenant_key(name), record, "tenant")
    }

    /// Remove tenant `name`'s record.
    pub fn remove_tenant_record(&self, name: &str) -> Result<(), LedgerError> {
        self.meta.remove(tenant_key(name))?;
        Ok(())
    }

    /// Every tenant's record (one that does not parse is passed over).
    pub fn tenant_records<T: DeserializeOwned>(&self) -> Result<Vec<T>, LedgerError> {
        let mut out = Vec::new();
        for r in self.meta.scan_prefix([kind::TENANT]) {
            let (_, v) = r?;
            if let Ok(t) = serde_json::from_slice(&v) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The tenant whose token hashes to `hash`.
    pub fn token_tenant(&self, hash: &[u8]) -> Result<Option<String>, LedgerError> {
        Ok(self
            .meta
            .get(token_key(hash))?
            .map(|name| String::from_utf8_lossy(&name).into_owned()))
    }

    /// Index the token hashing to `hash` as `tenant`'s.
    pub fn put_token(&self, hash: &[u8], tenant: &str) -> Result<(), LedgerError> {
        self.meta.insert(token_key(hash), tenant.as_bytes())?;
        Ok(())
    }

    /// Drop the token hashing to `hash` from the index.
    pub fn remove_token(&self, hash: &[u8]) -> Result<(), LedgerError> {
        self.meta.remove(token_key(hash))?;
        Ok(())
    }

    /// `tenant`'s plugin record `name`.
    pub fn plugin_record<T: DeserializeOwned>(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<T>, LedgerError> {
        self.get_meta(&plugin_key(tenant, name), "plugin")
    }

    /// Store `tenant`'s plugin record `name`.
    pub fn put_plugin_record<T: Serialize>(
        &self,
        tenant: &str,
        name: &str,
        record: &T,
    ) -> Result<(), LedgerError> {
        self.put_meta(plugin_key(tenant, name), record, "plugin")
    }

    /// Remove `tenant`'s plugin record `name`.
    pub fn remove_plugin_record(&self, tenant: &str, name: &str) -> Result<(), LedgerError> {
        self.meta.remove(plugin_key(tenant, name))?;
        Ok(())
    }

    /// Every plugin record of `tenant`.
    pub fn plugin_records<T: DeserializeOwned>(&self, tenant: &str) -> Result<Vec<T>, LedgerError> {
        self.list_meta(keys::key(kind::PLUGIN, &[tenant.as_bytes()]), "plugin")
    }

    /// Every plugin record of every tenant.
    pub fn all_plugin_records<T: DeserializeOwned>(&self) -> Result<Vec<T>, LedgerError> {
        self.list_meta(vec![kind::PLUGIN], "plugin")
    }

    /// `tenant`'s policy, if one was set.
    pub fn policy_record<T: DeserializeOwned>(
        &self,
        tenant: &str,
    ) -> Result<Option<T>, LedgerError> {
        self.get_meta(&policy_key(tenant), "policy")
    }

    /// Store `tenant`'s policy.
    pub fn put_policy_record<T: Serialize>(
        &self,
        tenant: &str,
        policy: &T,
    ) -> Result<(), LedgerError> {
        self.put_meta(policy_key(tenant), policy, "policy")
    }

    /// Remove `tenant`'s policy.
    pub fn remove_policy_record(&self, tenant: &str) -> Result<(), LedgerError> {
        self.meta.remove(policy_key(tenant))?;
        Ok(())
    }
}

/// Kinds of `meta` record kept under `kind`+tenant that a cluster shares (the token
/// index, keyed by hash, is shared too: see [`Ledger::shared_tenant_records`]).
const SHARED_KINDS: [u8; 4] = [kind::TENANT, kind::PLUGIN, kind::POLICY, kind::SOURCE];

/// One `meta` record as a cluster shares it: key and value.
pub type SharedRecord = (Vec<u8>, Vec<u8>);

impl Ledger {
    /// Every `meta` record of `tenant` a cluster shares: its record, its token hashes,
    /// its plugin records, policy and pull sources (not its console sessions).
    pub fn shared_tenant_records(&self, tenant: &str) -> Result<Vec<SharedRecord>, LedgerError> {
        let mut out = Vec::new();
        for k in SHARED_KINDS {
            for r in self.meta.scan_prefix(keys::key(k, &[tenant.as_bytes()])) {
                let (key, value) = r?;
                out.push((key.to_vec(), value.to_vec()));
            }
        }
        for r in self.meta.scan_prefix([kind::TOKEN]) {
            let (key, value) = r?;
            if value.as_ref() == tenant.as_bytes() {
                out.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(out)
    }

    /// Replace `tenant`'s shared records with `records` (as another node read them
    /// with [`Ledger::shared_tenant_records`]) in one atomic batch, durable on return;
    /// empty `records` remove the tenant's. A record that is not `tenant`'s is refused,
    /// and nothing is written.
    pub fn replace_shared_tenant_records(
        &self,
        tenant: &str,
        records: &[SharedRecord],
    ) -> Result<(), LedgerError> {
        for (key, value) in records {
            let kind = key.first().copied();
            let belongs = match kind {
                Some(kind::TOKEN) => value.as_slice() == tenant.as_bytes(),
                Some(k) if SHARED_KINDS.contains(&k) => {
                    keys::tenant_of(key).as_deref() == Some(tenant)
                }
                _ => false,
            };
            if !belongs {
                return Err(LedgerError::MalformedKey {
                    what: "shared tenant",
                });
            }
        }
        let mut batch = sled::Batch::default();
        for (key, _) in self.shared_tenant_records(tenant)? {
            batch.remove(key);
        }
        for (key, value) in records {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.meta.apply_batch(batch)?;
        self.flush()
    }
}
