//! Host-side bindings of the WIT package `aer:plugin@0.1.0` (see `wit/`).
//!
//! The `host` world is generated once with every interface the host provides; the
//! `detector` and `responder` worlds reuse those interfaces.

/// Every host-provided interface.
pub mod host {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "host",
        imports: { default: trappable },
    });
}

/// The `detector` world: what a detector component exports.
pub mod detector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "detector",
        imports: { default: trappable },
        with: {
            "aer:plugin/types": crate::bindings::host::aer::plugin::types,
            "aer:plugin/state": crate::bindings::host::aer::plugin::state,
            "aer:plugin/baseline": crate::bindings::host::aer::plugin::baseline,
            "aer:plugin/log": crate::bindings::host::aer::plugin::log,
        },
    });
}

/// The `responder` world: what a responder component exports.
pub mod responder {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "responder",
        imports: { default: trappable },
        with: {
            "aer:plugin/types": crate::bindings::host::aer::plugin::types,
            "aer:plugin/state": crate::bindings::host::aer::plugin::state,
            "aer:plugin/baseline": crate::bindings::host::aer::plugin::baseline,
            "aer:plugin/log": crate::bindings::host::aer::plugin::log,
            "aer:plugin/actions": crate::bindings::host::aer::plugin::actions,
        },
    });
}

pub use host::aer::plugin::types::{
    ActionOutcome, Attribute, Decision, Finding, PluginInfo, Severity,
};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
/// The export a detector component must have.
pub const DETECTOR_EXPORT: &str = "aer:plugin/detection@0.1.0";
/// The export a responder component must have.
pub const RESPONDER_EXPORT: &str = "aer:plugin/response@0.1.0";
