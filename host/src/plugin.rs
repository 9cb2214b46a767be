//! Plugins: validation ([`validate`], with the static bounds on their code in
//! [`code`]), loading with a cache by content hash ([`loader`]), live instances with
//! their limits ([`instance`]), and the conversions between the WIT types plugins
//! speak and the pipeline's records ([`convert`]).

pub mod code;
pub mod convert;
pub mod instance;
pub mod loader;
pub mod validate;

pub use instance::{CallOutput, Detection, DetectorInstance, Fault, FaultKind, ResponderInstance};
pub use loader::Loader;
pub use validate::{LoadedPlugin, PluginKind, PluginMeta, Rejection};
