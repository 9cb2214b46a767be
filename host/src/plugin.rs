//! Plugins: validation and loading ([`validate`]), live instances with their limits
//! ([`instance`]), and the memory limiter ([`limiter`]).

pub mod code;
pub mod instance;
pub mod limiter;
pub mod validate;

pub use instance::{CallOutput, DetectorInstance, Fault, FaultKind, ResponderInstance};
pub use validate::{LoadedPlugin, PluginKind, PluginMeta, Rejection};
