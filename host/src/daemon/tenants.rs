//! Tenants and their tokens. A token is 256 random bits, shown once at creation; only
//! its SHA-256 is stored, and tokens are compared in constant time.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Daemon, DaemonError, now_ms};

/// A stored tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Tenant name.
    pub name: String,
    /// Creation time (ms since the epoch).
    pub created_ms: i64,
    /// SHA-256 of the token, hex.
    pub token_sha256: String,
    /// Suspended by the operator: its token is refused and its pipeline does not run
    /// (its events and state stay).
    #[serde(default)]
    pub suspended: bool,
}

/// Why a tenant could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// Bad name.
    #[error("invalid tenant name {0:?}: use 1 to 64 lowercase letters, digits and `-`")]
    InvalidName(String),
    /// Name taken.
    #[error("tenant {0:?} already exists")]
    Exists(String),
    /// No such tenant.
    #[error("no tenant {0:?}")]
    NotFound(String),
    /// Storage failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// Whether `name` is a valid tenant (or plugin) name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token and its hash.
fn new_token() -> Result<(String, [u8; 32]), DaemonError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let token = format!(
        "aer_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// Who a bearer token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// A tenant's valid token.
    Tenant(String),
    /// A suspended tenant's token.
    Suspended(String),
    /// Nobody's.
    Unknown,
}

impl Daemon {
    /// Create a tenant; returns its record and its token (shown only now).
    pub fn create_tenant(&self, name: &str) -> Result<(TenantRecord, String), TenantError> {
        if !valid_name(name) {
            return Err(TenantError::InvalidName(name.to_owned()));
        }
        let (token, hash) = new_token()?;
        let record = TenantRecord {
            name: name.to_owned(),
            created_ms: now_ms(),
            token_sha256: hex::encode(hash),
            suspended: false,
        };
        // Only if absent, so two concurrent creations cannot both win.
        if !self
            .ledger
            .create_tenant_record(name, &record)
            .map_err(DaemonError::from)?
        {
            return Err(TenantError::Exists(name.to_owned()));
        }
        self.ledger
            .put_token(&hash, name)
            .map_err(DaemonError::from)?;
        self.ledger.flush().map_err(DaemonError::from)?;
        Ok((record, token))
    }

    /// Who a bearer token belongs to. Only the tenant record's current token hash
    /// counts, so a rotated token stops at once.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, DaemonError> {
        let hash = token_hash(token);
        let Some(name) = self.ledger.token_tenant(&hash)? else {
            return Ok(Authenticated::Unknown);
        };
        // Check the tenant's stored hash too, in constant time.
        let Some(rec) = self.tenant(&name)? else {
            return Ok(Authenticated::Unknown);
        };
        let stored = hex::decode(&rec.token_sha256).unwrap_or_default();
        Ok(match (bool::from(stored.ct_eq(&hash)), rec.suspended) {
            (false, _) => Authenticated::Unknown,
            (true, false) => Authenticated::Tenant(name),
            (true, true) => Authenticated::Suspended(name),
        })
    }

    /// A tenant's record.
    pub fn tenant(&self, name: &str) -> Result<Option<TenantRecord>, DaemonError> {
        Ok(self.ledger.tenant_record(name)?)
    }

    fn put_tenant(&self, rec: &TenantRecord) -> Result<(), DaemonError> {
        Ok(self.ledger.put_tenant_record(&rec.name, rec)?)
    }

    /// Give `name` a new token (returned, shown only now); the old one stops at once.
    pub fn rotate_token(&self, name: &str) -> Result<String, TenantError> {
        let mut rec = self
            .tenant(name)?
            .ok_or_else(|| TenantError::NotFound(name.to_owned()))?;
        let old = hex::decode(&rec.token_sha256).unwrap_or_default();
        let (token, hash) = new_token()?;
        rec.token_sha256 = hex::encode(hash);
        self.put_tenant(&rec)?;
        self.ledger
            .put_token(&hash, name)
            .map_err(DaemonError::from)?;
        self.ledger.remove_token(&old).map_err(DaemonError::from)?;
        self.ledger.flush().map_err(DaemonError::from)?;
        tracing::info!(tenant = name, "tenant token rotated");
        Ok(token)
    }

    /// Suspend `name` (its token is refused, its pipeline stops; nothing is deleted)
    /// or resume it.
    pub fn set_suspended(&self, name: &str, suspended: bool) -> Result<TenantRecord, TenantError> {
        let mut rec = self
            .tenant(name)?
            .ok_or_else(|| TenantError::NotFound(name.to_owned()))?;
        rec.suspended = suspended;
        self.put_tenant(&rec)?;
        self.ledger.flush().map_err(DaemonError::from)?;
        self.wake.notify();
        tracing::info!(tenant = name, suspended, "tenant suspension changed");
        Ok(rec)
    }

    /// Delete `name` with all its data: plugins (their state, cursors and artifacts no
    /// other tenant uses), policy, inbox, findings, decisions, action log and token.
    /// The tenant is suspended first, so no batch of it runs meanwhile.
    pub fn delete_tenant(&self, name: &str) -> Result<(), TenantError> {
        self.set_suspended(name, true)?;
        // No decision or response step of the tenant runs while its records go.
        let _stage = self
            .claims
            .hold(name, "", crate::plugin::PluginKind::Responder);
        self.forget_sources(name)?;
        let plugins = self.plugins(name).map_err(DaemonError::from)?;
        for p in &plugins {
            self.delete_plugin(name, &p.name)
                .map_err(DaemonError::from)?;
        }
        self.ledger
            .remove_tenant_records(name)
            .map_err(DaemonError::from)?;
        if let Some(rec) = self.tenant(name)? {
            let hash = hex::decode(&rec.token_sha256).unwrap_or_default();
            self.ledger.remove_token(&hash).map_err(DaemonError::from)?;
        }
        self.ledger
            .remove_policy_record(name)
            .map_err(DaemonError::from)?;
        self.ledger
            .remove_tenant_record(name)
            .map_err(DaemonError::from)?;
        self.end_sessions(name)?;
        self.inbox.forget(name);
        self.activity.forget(name);
        self.fault_memory().retain(|(t, _), _| t != name);

        self.ledger.flush().map_err(DaemonError::from)?;
        tracing::info!(tenant = name, "tenant deleted with its data");
        Ok(())
    }

    /// `tenant`'s records a cluster shares
    /// ([`crate::ledger::Ledger::shared_tenant_records`]), and the SHA-256 of every
    /// plugin component they name.
    pub fn shared_records(
        &self,
        tenant: &str,
    ) -> Result<(Vec<crate::ledger::SharedRecord>, Vec<String>), DaemonError> {
        let records = self.ledger.shared_tenant_records(tenant)?;
        let plugins = self.plugins(tenant).map_err(DaemonError::from)?;
        let mut hashes: Vec<String> = plugins
            .iter()
            .flat_map(|p| p.versions.iter().map(|v| v.sha256.clone()))
            .collect();
        hashes.sort();
        hashes.dedup();
        Ok((records, hashes))
    }

    /// Take `tenant`'s shared records as the node that changed them read them (the
    /// components they name stored first, [`Daemon::store_artifact`]). Empty records:
    /// the tenant was deleted, and whatever this node still kept of it goes too.
    pub fn replace_shared_records(
        &self,
        tenant: &str,
        records: &[crate::ledger::SharedRecord],
    ) -> Result<(), DaemonError> {
        if records.is_empty() && self.tenant(tenant)?.is_some() {
            self.ledger.remove_tenant_records(tenant)?;
            self.inbox.forget(tenant);
            self.activity.forget(tenant);
            self.fault_memory().retain(|(t, _), _| t != tenant);
        }
        self.ledger.replace_shared_tenant_records(tenant, records)?;
        self.plugin_records_changed();
        self.reload_source(tenant)?;
        Ok(())
    }

    /// Whether this node has component `sha256` stored.
    pub fn has_artifact(&self, sha256: &str) -> bool {
        self.artifacts.exists(format!("{sha256}.wasm"))
    }

    /// A stored component's bytes.
    pub fn artifact_bytes(&self, sha256: &str) -> Result<Vec<u8>, DaemonError> {
        let file = format!("{sha256}.wasm");
        self.artifacts
            .read(&file)
            .map_err(|source| DaemonError::Artifact { file, source })
    }

    /// Store a component another node has, after checking that its bytes hash to
    /// `sha256` (the name it is stored and looked up by).
    pub fn store_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<(), DaemonError> {
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != sha256 {
            return Err(DaemonError::Artifact {
                file: format!("{sha256}.wasm"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the bytes hash to {actual}"),
                ),
            });
        }
        self.write_artifact(sha256, bytes)
    }

    /// Whether `token` is the operator's admin token (constant time).
    pub fn is_admin(&self, token: &str) -> bool {
        bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes()))
    }

    /// Every tenant.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, DaemonError> {
        Ok(self.ledger.tenant_records()?)
    }
}
