//! Tenants' pull sources: their settings (in `meta`, the token with them, which only
//! the daemon reads) and how far each has been read (in `pipeline`, written with the
//! events it let in by [`super::inbox::Inbox::store_marked`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{self, kind};
use super::{Ledger, LedgerError};
use crate::sources::Mark;

fn source_key(tenant: &str, source: &str) -> Vec<u8> {
    keys::key(kind::SOURCE, &[tenant.as_bytes(), source.as_bytes()])
}

fn mark_key(tenant: &str, source: &str) -> Vec<u8> {
    keys::key(kind::SOURCE_MARK, &[tenant.as_bytes(), source.as_bytes()])
}

impl Ledger {
    /// `tenant`'s settings of pull source `source`, if it has one.
    pub fn source_record<T: DeserializeOwned>(
        &self,
        tenant: &str,
        source: &str,
    ) -> Result<Option<T>, LedgerError> {
        self.get_meta(&source_key(tenant, source), "source")
    }

    /// Store `tenant`'s settings of pull source `source` (durable on return).
    pub fn put_source_record<T: Serialize>(
        &self,
        tenant: &str,
        source: &str,
        record: &T,
    ) -> Result<(), LedgerError> {
        self.put_meta(source_key(tenant, source), record, "source")?;
        self.flush()
    }

    /// Every tenant's pull source settings.
    pub fn source_records<T: DeserializeOwned>(&self) -> Result<Vec<T>, LedgerError> {
        self.list_meta(vec![kind::SOURCE], "source")
    }

    /// How far `tenant`'s pull source `source` has been read (none: not yet).
    pub fn source_mark(&self, tenant: &str, source: &str) -> Result<Option<Mark>, LedgerError> {
        self.get_json(mark_key(tenant, source), "source mark")
    }

    /// Remove `tenant`'s pull source `source`: its settings and how far it was read
    /// (durable on return).
    pub fn remove_source(&self, tenant: &str, source: &str) -> Result<(), LedgerError> {
        self.meta.remove(source_key(tenant, source))?;
        self.pipeline.remove(mark_key(tenant, source))?;
        self.flush()
    }

    /// Remove every pull source of `tenant` (its deletion).
    pub fn remove_tenant_sources(&self, tenant: &str) -> Result<(), LedgerError> {
        for k in self
            .meta
            .scan_prefix(keys::key(kind::SOURCE, &[tenant.as_bytes()]))
            .keys()
        {
            self.meta.remove(k?)?;
        }
        Ok(())
    }
}
