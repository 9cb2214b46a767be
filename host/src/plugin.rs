//! Plugins: validation and loading ([`validate`]), live instances with their limits
//! ([`instance`]), the memory limiter ([`limiter`]), compiled code ([`code`]), and the
//! conversions between WIT types and the pipeline's records ([`records`]).

pub mod code;
pub mod instance;
pub mod limiter;
pub mod records;
pub mod validate;

pub use instance::{CallOutput, Detection, DetectorInstance, Fault, FaultKind, ResponderInstance};
pub use validate::{LoadedPlugin, PluginKind, PluginMeta, Rejection};
