//! Console sign-in sessions. A person signs in with a token (a tenant's, or the
//! operator's admin token) and their name; the session's secret (256 random bits) goes
//! to their browser, and only its SHA-256 is stored, with a CSRF secret, an expiry, and
//! the hash of the token it was opened with. A session ends when it expires, on sign-out,
//! when its tenant's token is rotated, or when the tenant is suspended or deleted; past
//! `console.max_sessions` sessions of one tenant (or of the operator) a sign-in ends the
//! oldest.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::tenants::Authenticated;
use super::{Daemon, DaemonError, now_ms};

/// Who a console session acts as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    /// A tenant's analyst: the tenant's pages only.
    Tenant(String),
    /// The operator: the tenants' overview.
    Operator,
}

impl Principal {
    /// The ledger's name for whose sessions these are (tenant names never start with
    /// `@`).
    fn who(&self) -> &str {
        match self {
            Principal::Tenant(t) => t,
            Principal::Operator => "@operator",
        }
    }
}

/// A stored session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRecord {
    principal: Principal,
    /// The name the person signed in with (recorded with what they approve).
    name: String,
    /// SHA-256 (hex) of the token the session was opened with.
    token_sha256: String,
    /// The secret every state-changing form carries.
    csrf: String,
    created_ms: i64,
    expires_ms: i64,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who it acts as.
    pub principal: Principal,
    /// The person's name.
    pub name: String,
    /// The CSRF secret its forms carry.
    pub csrf: String,
    /// When it ends (ms since the epoch).
    pub expires_ms: i64,
    /// The cookie value naming it (to end it).
    cookie: String,
}

impl Session {
    /// The value of the session's cookie.
    pub fn cookie_value(&self) -> &str {
        &self.cookie
    }

    /// Whether `token` is this session's CSRF secret (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The token is nobody's.
    #[error("that token is not valid")]
    BadToken,
    /// The tenant is suspended.
    #[error("tenant {0} is suspended by the operator")]
    Suspended(String),
    /// The name is empty, too long or not printable.
    #[error("enter your name: 1 to {} printable bytes", super::reviews::MAX_SIGNER)]
    BadName,
    /// Storage failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn random_secret() -> Result<String, DaemonError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
}

/// A cookie value: `secret.who`; `None` if it is not one.
fn parse_cookie(value: &str) -> Option<(&str, &str)> {
    let (secret, who) = value.split_once('.')?;
    (secret.len() == 43 && !who.is_empty()).then_some((secret, who))
}

impl Daemon {
    /// Open a session for whoever `token` is, signed with `name`; the cookie value and
    /// the session.
    pub fn sign_in(&self, token: &str, name: &str) -> Result<Session, SignInError> {
        let name = super::reviews::signer(name).ok_or(SignInError::BadName)?;
        let principal = if self.is_admin(token) {
            Principal::Operator
        } else {
            match self.authenticate(token)? {
                Authenticated::Tenant(t) => Principal::Tenant(t),
                Authenticated::Suspended(t) => return Err(SignInError::Suspended(t)),
                Authenticated::Unknown => return Err(SignInError::BadToken),
            }
        };
        let secret = random_secret()?;
        let now = now_ms();
        let minutes = i64::try_from(self.config.console.session_minutes).unwrap_or(i64::MAX);
        let record = SessionRecord {
            principal: principal.clone(),
            name: name.to_owned(),
            token_sha256: hex::encode(sha256(token.as_bytes())),
            csrf: random_secret()?,
            created_ms: now,
            expires_ms: now.saturating_add(minutes.saturating_mul(60_000)),
        };
        let who = principal.who().to_owned();
        let who = who.as_str();
        self.make_room(who, now)?;
        self.ledger
            .put_console_session(who, &sha256(secret.as_bytes()), &record)
            .map_err(DaemonError::from)?;
        self.ledger.flush().map_err(DaemonError::from)?;
        Ok(Session {
            principal,
            name: record.name,
            csrf: record.csrf,
            expires_ms: record.expires_ms,
            cookie: format!("{secret}.{who}"),
        })
    }

    /// End `who`'s expired (and unreadable) sessions, then its oldest until one more
    /// fits under `console.max_sessions`.
    fn make_room(&self, who: &str, now: i64) -> Result<(), DaemonError> {
        let mut live = Vec::new();
        for (hash, record) in self.ledger.console_sessions::<SessionRecord>(who)? {
            match record {
                Some(r) if r.expires_ms > now => live.push((r.created_ms, hash)),
                _ => self.ledger.remove_console_session(who, &hash)?,
            }
        }
        let max = usize::try_from(self.config.console.max_sessions).unwrap_or(usize::MAX);
        live.sort();
        let excess = (live.len() + 1).saturating_sub(max);
        for (_, hash) in live.into_iter().take(excess) {
            self.ledger.remove_console_session(who, &hash)?;
        }
        Ok(())
    }

    /// The live session a cookie value names, if any: unexpired, and its token still
    /// the tenant's (or the operator's) and the tenant not suspended.
    pub fn session(&self, cookie: &str) -> Result<Option<Session>, DaemonError> {
        let Some((secret, who)) = parse_cookie(cookie) else {
            return Ok(None);
        };
        let hash = sha256(secret.as_bytes());
        let Some(record) = self.ledger.console_session::<SessionRecord>(who, &hash)? else {
            return Ok(None);
        };
        let token_hash = hex::decode(&record.token_sha256).unwrap_or_default();
        // (The record is kept under its principal's name, so the cookie's `who` is
        // the record's.)
        let valid = record.expires_ms > now_ms()
            && match &record.principal {
                Principal::Operator => {
                    bool::from(token_hash.ct_eq(&sha256(self.admin_token.as_bytes())))
                }
                Principal::Tenant(t) => self.tenant(t)?.is_some_and(|rec| {
                    !rec.suspended
                        && bool::from(
                            hex::decode(&rec.token_sha256)
                                .unwrap_or_default()
                                .ct_eq(&token_hash),
                        )
                }),
            };
        if !valid {
            self.ledger.remove_console_session(who, &hash)?;
            return Ok(None);
        }
        Ok(Some(Session {
            principal: record.principal,
            name: record.name,
            csrf: record.csrf,
            expires_ms: record.expires_ms,
            cookie: cookie.to_owned(),
        }))
    }

    /// End a session (sign-out).
    pub fn sign_out(&self, session: &Session) -> Result<(), DaemonError> {
        if let Some((secret, who)) = parse_cookie(&session.cookie) {
            self.ledger
                .remove_console_session(who, &sha256(secret.as_bytes()))?;
            self.ledger.flush()?;
        }
        Ok(())
    }

    /// End every console session of tenant `name` (its deletion).
    pub(crate) fn end_sessions(&self, name: &str) -> Result<(), DaemonError> {
        Ok(self.ledger.remove_console_sessions(name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeConfig;

    const ADMIN: &str = "admin-token-0123456789abcdefghijklmn";

    fn daemon(dir: &std::path::Path) -> std::sync::Arc<Daemon> {
        let config = ServeConfig {
            data_dir: dir.to_owned(),
            ..ServeConfig::default()
        };
        Daemon::open(config, ADMIN.into()).unwrap()
    }

    #[test]
    fn a_session_ends_at_its_expiry_and_an_unreadable_one_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let d = daemon(dir.path());
        let (_, token) = d.create_tenant("acme").unwrap();
        let session = d.sign_in(&token, "Ann").unwrap();
        assert_eq!(
            session.expires_ms - session_created(&d, &session),
            8 * 60 * 60_000
        );
        assert!(d.session(session.cookie_value()).unwrap().is_some());

        // The same record, expired a millisecond ago: no session, and the record goes.
        let (secret, who) = parse_cookie(session.cookie_value()).unwrap();
        let hash = sha256(secret.as_bytes());
        let mut record: SessionRecord = d.ledger.console_session(who, &hash).unwrap().unwrap();
        record.expires_ms = now_ms() - 1;
        d.ledger.put_console_session(who, &hash, &record).unwrap();
        assert!(d.session(session.cookie_value()).unwrap().is_none());
        assert!(
            d.ledger
                .console_session::<SessionRecord>(who, &hash)
                .unwrap()
                .is_none()
        );

        // A cookie naming another tenant than its record: refused.
        let other = d.sign_in(&token, "Ann").unwrap();
        let (secret, _) = parse_cookie(other.cookie_value()).unwrap();
        assert!(d.session(&format!("{secret}.globex")).unwrap().is_none());
        assert!(d.session(&format!("{secret}.@operator")).unwrap().is_none());
        // Malformed cookies name nothing.
        for bad in ["", ".", "x.acme", "acme", &format!("{secret}.")] {
            assert!(d.session(bad).unwrap().is_none(), "{bad:?}");
        }
        // The operator's session stands while the admin token is the same.
        let op = d.sign_in(ADMIN, "Olga").unwrap();
        assert_eq!(
            d.session(op.cookie_value()).unwrap().unwrap().principal,
            Principal::Operator
        );
    }

    fn session_created(d: &Daemon, s: &Session) -> i64 {
        let (secret, who) = parse_cookie(s.cookie_value()).unwrap();
        let r: SessionRecord = d
            .ledger
            .console_session(who, &sha256(secret.as_bytes()))
            .unwrap()
            .unwrap();
        r.created_ms
    }
}
