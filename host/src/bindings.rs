//! Host-side bindings of the WIT package `aer:plugin@0.1.2` (see `wit/`; earlier
//! contracts are kept, frozen, in `wit/frozen/`).
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
            "aer:plugin/geo": crate::bindings::host::aer::plugin::geo,
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
            "aer:plugin/geo": crate::bindings::host::aer::plugin::geo,
            "aer:plugin/actions": crate::bindings::host::aer::plugin::actions,
        },
    });
}

pub use host::aer::plugin::types::{
    ActionOutcome, Attribute, Decision, Finding, PluginInfo, Severity,
};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.2";
/// The interface a detector component exports.
pub const DETECTOR_INTERFACE: &str = "aer:plugin/detection";
/// The interface a responder component exports.
pub const RESPONDER_INTERFACE: &str = "aer:plugin/response";

/// The interface and WIT version an export names, e.g. `aer:plugin/detection@0.1.0`
/// gives (`aer:plugin/detection`, `0.1.0`).
pub fn split_export(name: &str) -> Option<(&str, &str)> {
    name.split_once('@')
}

/// Whether this host runs a component built against `aer:plugin@{version}`.
///
/// The compatibility rule (docs/plugins.md): within `0.1`, a version adds functions
/// (marked `@since`) and changes nothing that exists, so a host implementing
/// `0.1.Q` runs every component built against `0.1.P` with `P <= Q`, unchanged; a
/// component built against a newer patch than the host's is refused by name rather
/// than failing on an import the host lacks. Another minor or major version is
/// another contract.
pub fn runs(version: &str) -> bool {
    let host = patch_of(WIT_VERSION).expect("the host's own version is 0.1.x");
    patch_of(version).is_some_and(|p| p <= host)
}

fn patch_of(version: &str) -> Option<u32> {
    version.strip_prefix("0.1.")?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn components_built_against_this_or_an_earlier_0_1_run_and_no_other() {
        assert!(super::runs("0.1.0"));
        assert!(super::runs(super::WIT_VERSION));
        assert!(super::runs("0.1.1"));
        assert!(!super::runs("0.1.3"), "newer than the host");
        assert!(!super::runs("0.2.0"));
        assert!(!super::runs("1.1.0"));
        assert!(!super::runs("0.1.x"));
    }
}
