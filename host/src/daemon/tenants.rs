//! Tenants and their tokens. A token is 256 random bits, shown once at creation; only
//! its SHA-256 is stored, and tokens are compared in constant time.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{self, kind};
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

impl Daemon {
    /// Create a tenant; returns its record and its token (shown only now).
    pub fn create_tenant(&self, name: &str) -> Result<(TenantRecord, String), TenantError> {
        if !valid_name(name) {
            return Err(TenantError::InvalidName(name.to_owned()));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| DaemonError::record("random", e))?;
        let token = format!(
            "aer_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let hash = token_hash(&token);
        let record = TenantRecord {
            name: name.to_owned(),
            created_ms: now_ms(),
            token_sha256: hex::encode(hash),
        };
        let value = serde_json::to_vec(&record).map_err(|e| DaemonError::record("tenant", e))?;
        let key = keys::key(kind::TENANT, &[name.as_bytes()]);
        // Insert only if absent, so two concurrent creations cannot both win.
        let won = self
            .meta
            .compare_and_swap(&key, None::<&[u8]>, Some(value))
            .map_err(DaemonError::from)?;
        if won.is_err() {
            return Err(TenantError::Exists(name.to_owned()));
        }
        self.meta
            .insert(keys::key(kind::TOKEN, &[&hash]), name.as_bytes())
            .map_err(DaemonError::from)?;
        self.db.flush().map_err(DaemonError::from)?;
        Ok((record, token))
    }

    /// The tenant a bearer token belongs to, if any.
    pub fn authenticate(&self, token: &str) -> Result<Option<String>, DaemonError> {
        let hash = token_hash(token);
        let Some(name) = self.meta.get(keys::key(kind::TOKEN, &[&hash]))? else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        // Check the tenant's stored hash too, in constant time.
        let Some(rec) = self.meta.get(keys::key(kind::TENANT, &[name.as_bytes()]))? else {
            return Ok(None);
        };
        let rec: TenantRecord = match serde_json::from_slice(&rec) {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        let stored = hex::decode(&rec.token_sha256).unwrap_or_default();
        Ok(bool::from(stored.ct_eq(&hash)).then_some(name))
    }

    /// Whether `token` is the operator's admin token (constant time).
    pub fn is_admin(&self, token: &str) -> bool {
        bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes()))
    }

    /// Every tenant.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, DaemonError> {
        let mut out = Vec::new();
        for r in self.meta.scan_prefix([kind::TENANT]) {
            let (_, v) = r?;
            if let Ok(t) = serde_json::from_slice(&v) {
                out.push(t);
            }
        }
        Ok(out)
    }
}
