//! A plugin call's failure: what kind, and what the host says about it.

use crate::host_api::PluginId;

/// What went wrong in a plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Ran past the epoch deadline.
    Timeout,
    /// Asked for more memory than its limit.
    MemoryLimit,
    /// Exhausted the wasm stack.
    StackOverflow,
    /// The guest panicked.
    Panic,
    /// Any other trap.
    Trap,
    /// Returned more than the host accepts.
    OutputLimit,
    /// Returned a value the host refuses (a score outside 0..1, say).
    InvalidOutput,
    /// Read more state in one call than the host copies into a guest.
    ReadLimit,
    /// Asked for an effect its decision does not allow.
    EffectRefused,
    /// Returned an error of its own.
    PluginError,
    /// Refused its configuration.
    Config,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::Timeout => "timeout",
            FaultKind::MemoryLimit => "memory limit",
            FaultKind::StackOverflow => "stack overflow",
            FaultKind::Panic => "panic",
            FaultKind::Trap => "trap",
            FaultKind::OutputLimit => "output limit",
            FaultKind::InvalidOutput => "invalid output",
            FaultKind::ReadLimit => "read limit",
            FaultKind::EffectRefused => "effect refused",
            FaultKind::PluginError => "plugin error",
            FaultKind::Config => "invalid configuration",
        })
    }
}

/// A failed plugin call, naming tenant, plugin and version.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin}: {kind}: {message}")]
pub struct Fault {
    /// Which plugin.
    pub plugin: PluginId,
    /// What kind of failure.
    pub kind: FaultKind,
    /// Details.
    pub message: String,
}
