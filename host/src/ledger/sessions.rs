//! Console sign-in sessions in the `meta` tree, under `C`, who signed in (a tenant's
//! name or the operator), and the SHA-256 of the session's secret: one prefix per
//! person-kind, so their sessions are counted and ended together. The record's type
//! belongs to [`crate::daemon::sessions`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{self, kind};
use super::{Ledger, LedgerError, json};

fn session_key(who: &str, secret_hash: &[u8]) -> Vec<u8> {
    keys::key(kind::CONSOLE_SESSION, &[who.as_bytes(), secret_hash])
}

/// A session's secret hash, and its record (`None` if it does not parse).
pub type SessionEntry<T> = (Vec<u8>, Option<T>);

fn prefix(who: &str) -> Vec<u8> {
    keys::key(kind::CONSOLE_SESSION, &[who.as_bytes()])
}

impl Ledger {
    /// The session of `who` whose secret hashes to `secret_hash`.
    pub fn console_session<T: DeserializeOwned>(
        &self,
        who: &str,
        secret_hash: &[u8],
    ) -> Result<Option<T>, LedgerError> {
        self.get_meta(&session_key(who, secret_hash), "console session")
    }

    /// Store a session of `who`.
    pub fn put_console_session<T: Serialize>(
        &self,
        who: &str,
        secret_hash: &[u8],
        record: &T,
    ) -> Result<(), LedgerError> {
        self.put_meta(session_key(who, secret_hash), record, "console session")
    }

    /// End one session of `who`.
    pub fn remove_console_session(&self, who: &str, secret_hash: &[u8]) -> Result<(), LedgerError> {
        self.meta.remove(session_key(who, secret_hash))?;
        Ok(())
    }

    /// Every session of `who`, with its secret's hash (a record that does not parse is
    /// returned as `None`, so it can be ended).
    pub fn console_sessions<T: DeserializeOwned>(
        &self,
        who: &str,
    ) -> Result<Vec<SessionEntry<T>>, LedgerError> {
        let prefix = prefix(who);
        self.meta
            .scan_prefix(&prefix)
            .map(|r| {
                let (k, v) = r?;
                let hash = k[prefix.len()..]
                    .get(4..)
                    .ok_or(LedgerError::MalformedKey {
                        what: "console session",
                    })?
                    .to_vec();
                let record = serde_json::from_slice(&v)
                    .map_err(json("console session"))
                    .ok();
                Ok((hash, record))
            })
            .collect()
    }

    /// End every session of `who`.
    pub fn remove_console_sessions(&self, who: &str) -> Result<(), LedgerError> {
        for r in self.meta.scan_prefix(prefix(who)) {
            let (k, _) = r?;
            self.meta.remove(k)?;
        }
        Ok(())
    }
}
