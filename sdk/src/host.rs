//! The SDK's view of the host: one trait with a wasm implementation (generated in the
//! plugin crate by the export macros) and an in-memory one ([`crate::testing`]).
//!
//! Calling a wit-bindgen import on a native target aborts the process, so plugin logic
//! only ever reaches the host through this trait.

use aer_wire::baseline::{BaselineSpec, BaselineStats};

use crate::responder::{ActionError, Effect};

/// Log level of a plugin message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Verbose diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected the plugin could handle.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

/// Host services as the SDK uses them.
#[doc(hidden)]
pub trait Backend {
    /// Value of one state key.
    fn state_get(&self, key: &str) -> Option<Vec<u8>>;
    /// Apply writes (`None` deletes) in order.
    fn state_apply(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<(), String>;
    /// Up to `limit` entries under `prefix`, in key order.
    fn state_scan(&self, prefix: &str, limit: u32) -> Vec<(String, Vec<u8>)>;
    /// Add to a baseline and return its statistics.
    fn baseline_observe(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
        value: f64,
    ) -> Result<BaselineStats, String>;
    /// Statistics of a baseline.
    fn baseline_query(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
    ) -> Result<BaselineStats, String>;
    /// Write a log message.
    fn log(&self, level: Level, message: &str);
    /// What the operator's geolocation databases say of an address.
    fn geo_lookup(&self, _address: &str) -> crate::Place {
        crate::Place::default()
    }
    /// End a user's sessions (responders only).
    fn terminate_sessions(
        &self,
        _decision_id: &str,
        _user_id: &str,
    ) -> Result<String, ActionError> {
        Err(ActionError::unavailable())
    }
    /// Ask for an effect of the response ladder (responders only).
    fn effect(&self, _decision_id: &str, _effect: &Effect<'_>) -> Result<String, ActionError> {
        Err(ActionError::unavailable())
    }
    /// Send a notification (responders only).
    fn notify(
        &self,
        _decision_id: &str,
        _channel: &str,
        _text: &str,
    ) -> Result<String, ActionError> {
        Err(ActionError::unavailable())
    }
}
