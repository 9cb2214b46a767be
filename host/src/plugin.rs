//! Plugins: validation ([`validate`], with the static bounds on their code in
//! [`code`]), loading with a cache by content hash ([`loader`]), live instances with
//! their limits ([`instance`]) and what they may fail with ([`fault`]), the checks on
//! their output ([`output`]), and the conversions between the WIT types plugins speak
//! and the pipeline's records ([`convert`]).

pub mod code;
pub mod convert;
pub mod fault;
pub mod instance;
pub mod loader;
pub mod output;
pub mod validate;

pub use fault::{Fault, FaultKind};
pub use instance::{CallOutput, Detection, DetectorInstance, ResponderInstance};
pub use loader::Loader;
pub use validate::{LoadedPlugin, PluginKind, PluginMeta, Rejection};
