//! The cursors and counters the stages keep: each detector's cursor over the inbox,
//! the decision engine's (and its memory), and the bytes of state and action log
//! entries a tenant keeps, for its quotas.

use super::keys::{self, kind};
use super::{Commit, Ledger, LedgerError, json};
use crate::pipeline::decide::EngineState;

impl Ledger {
    /// The next inbox seq detector `plugin` of `tenant` has not processed.
    pub fn detector_cursor(&self, tenant: &str, plugin: &str) -> Result<u64, LedgerError> {
        self.get_u64(&keys::cursor(tenant, plugin))
    }

    /// The next inbox seq `tenant`'s decision engine has not observed.
    pub fn observed(&self, tenant: &str) -> Result<u64, LedgerError> {
        self.get_u64(&keys::observed(tenant))
    }

    /// `tenant`'s decision engine memory as last committed.
    pub fn engine_state(&self, tenant: &str) -> Result<EngineState, LedgerError> {
        match self
            .pipeline
            .get(keys::key(kind::ENGINE_STATE, &[tenant.as_bytes()]))?
        {
            Some(v) => serde_json::from_slice(&v).map_err(json("decision engine")),
            None => Ok(EngineState::default()),
        }
    }

    /// Bytes of plugin state (keys and values) `tenant`'s plugins keep.
    pub fn state_bytes(&self, tenant: &str) -> Result<u64, LedgerError> {
        self.get_u64(&keys::state_bytes(tenant))
    }

    /// Bytes of plugin state plugin `plugin` of `tenant` keeps.
    pub fn plugin_state_bytes(&self, tenant: &str, plugin: &str) -> Result<u64, LedgerError> {
        self.get_u64(&keys::plugin_state_bytes(tenant, plugin))
    }

    /// Entries in `tenant`'s action log.
    pub fn action_count(&self, tenant: &str) -> Result<u64, LedgerError> {
        self.get_u64(&keys::action_count(tenant))
    }

    /// Set the count of entries in `tenant`'s action log.
    pub fn set_action_count(&self, tenant: &str, n: u64) -> Result<(), LedgerError> {
        self.pipeline
            .insert(keys::action_count(tenant), &n.to_be_bytes())?;
        Ok(())
    }
}

impl Commit {
    /// Move detector `plugin`'s cursor to `next`.
    pub fn set_detector_cursor(&mut self, tenant: &str, plugin: &str, next: u64) {
        self.batch
            .insert(keys::cursor(tenant, plugin), &next.to_be_bytes());
    }

    /// Forget detector `plugin`'s cursor (its deletion: one uploaded later under the
    /// name starts afresh).
    pub fn remove_detector_cursor(&mut self, tenant: &str, plugin: &str) {
        self.batch.remove(keys::cursor(tenant, plugin));
    }

    /// Move the decision engine's cursor over the inbox to `next`.
    pub fn set_observed(&mut self, tenant: &str, next: u64) {
        self.batch
            .insert(keys::observed(tenant), &next.to_be_bytes());
    }

    /// Keep the decision engine's memory.
    pub fn set_engine_state(
        &mut self,
        tenant: &str,
        state: &EngineState,
    ) -> Result<(), LedgerError> {
        self.batch.insert(
            keys::key(kind::ENGINE_STATE, &[tenant.as_bytes()]),
            serde_json::to_vec(state).map_err(json("decision engine"))?,
        );
        Ok(())
    }

    /// Set the bytes of plugin state `tenant` keeps.
    pub fn set_state_bytes(&mut self, tenant: &str, bytes: u64) {
        self.batch
            .insert(keys::state_bytes(tenant), &bytes.to_be_bytes());
    }

    /// Set the bytes of plugin state plugin `plugin` of `tenant` keeps.
    pub fn set_plugin_state_bytes(&mut self, tenant: &str, plugin: &str, bytes: u64) {
        self.batch.insert(
            keys::plugin_state_bytes(tenant, plugin),
            &bytes.to_be_bytes(),
        );
    }

    /// Forget plugin `plugin`'s state size (its deletion).
    pub fn remove_plugin_state_bytes(&mut self, tenant: &str, plugin: &str) {
        self.batch.remove(keys::plugin_state_bytes(tenant, plugin));
    }
}
