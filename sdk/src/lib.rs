//! # aer-sdk: write AER detector and responder plugins in Rust
//!
//! A **detector** looks at batches of audit events and reports [`Finding`]s; a
//! **responder** carries out a host [`Decision`] through the host's actions. Implement
//! [`Detector`] or [`Responder`] (every method has a default), register the type with
//! [`export_detector!`] or [`export_responder!`], and build with
//! `cargo build --target wasm32-wasip2 --release`.
//!
//! ```
//! use aer_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct LoginCounter;
//!
//! impl Detector for LoginCounter {
//!     fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
//!         if event.action == "user_login_failed" {
//!             let n = ctx.state().add(event.actor.id, 1)?;
//!             if n == 10 {
//!                 ctx.emit(Finding::new("many-failed-logins", event.actor.id).evidence(event.id));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//! aer_sdk::export_detector!(LoginCounter);
//! ```
//!
//! The same code runs natively under `cargo test` against an in-memory host: see
//! [`testing`]. Plugin code never sees the WIT bindings or the batch encoding.
#![deny(missing_docs)]

mod context;
mod detector;
mod error;
mod finding;
pub mod geo;
mod host;
mod info;
mod responder;
pub mod signals;
mod state;
pub mod testing;

pub use aer_wire::baseline::BaselineStats;
pub use aer_wire::slack::is_id as is_slack_id;
pub use aer_wire::{ContextRef, EntityRef, EventRef as Event, LocationRef};
pub use context::Context;
pub use detector::Detector;
pub use error::{Error, Result, parse_config};
pub use finding::{Finding, Severity};
pub use geo::Place;
pub use host::Level;
pub use info::PluginInfo;
pub use responder::{
    AWAITING_APPROVAL, ActionError, ActionOutcome, Decision, Effect, Responder, ResponseContext,
};
/// Derive configuration schemas with `#[derive(JsonSchema)]` (see
/// [`PluginInfo::config_schema_of`]).
pub use schemars::{self, JsonSchema};
pub use state::{Baseline, Cooldown, Distinct, Evidence, Learning, State, Window};

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Baseline, BaselineStats, Context, Cooldown, Decision, Detector, Distinct, Error, Event,
        Evidence, Finding, Learning, Level, Place, PluginInfo, Responder, ResponseContext, Result,
        Severity, State, Window, parse_config,
    };
}

/// Glue used by the export macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::detector::runtime as detector;
    pub use crate::host::Backend;
    pub use crate::responder::runtime as responder;
    pub use aer_wire::baseline::BaselineSpec;
    pub use wit_bindgen;
}

include!(concat!(env!("OUT_DIR"), "/bindings_macros.rs"));

/// Glue shared by both export macros: the `Backend` over the generated imports.
#[doc(hidden)]
#[macro_export]
macro_rules! __aer_state_log_backend {
    ($backend:ident) => {
        fn state_get(&self, key: &str) -> ::core::option::Option<::std::vec::Vec<u8>> {
            __aer_bindings::aer::plugin::state::get(key)
        }
        fn state_apply(
            &self,
            writes: ::std::vec::Vec<(
                ::std::string::String,
                ::core::option::Option<::std::vec::Vec<u8>>,
            )>,
        ) -> ::core::result::Result<(), ::std::string::String> {
            use __aer_bindings::aer::plugin::state::Write;
            let writes: ::std::vec::Vec<Write> = writes
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => Write::Set((k, v)),
                    None => Write::Delete(k),
                })
                .collect();
            __aer_bindings::aer::plugin::state::apply(&writes).map_err(__aer_state_error)
        }
        fn state_scan(
            &self,
            prefix: &str,
            limit: u32,
        ) -> ::std::vec::Vec<(::std::string::String, ::std::vec::Vec<u8>)> {
            __aer_bindings::aer::plugin::state::scan(prefix, limit)
        }
        fn baseline_observe(
            &self,
            key: &str,
            spec: $crate::__private::BaselineSpec,
            time_ms: i64,
            value: f64,
        ) -> ::core::result::Result<$crate::BaselineStats, ::std::string::String> {
            use __aer_bindings::aer::plugin::baseline::{BaselineSpec, observe};
            let spec = BaselineSpec {
                bucket_ms: spec.bucket_ms,
                history: spec.history,
            };
            observe(key, spec, time_ms, value)
                .map(__aer_stats)
                .map_err(__aer_state_error)
        }
        fn baseline_query(
            &self,
            key: &str,
            spec: $crate::__private::BaselineSpec,
            time_ms: i64,
        ) -> ::core::result::Result<$crate::BaselineStats, ::std::string::String> {
            use __aer_bindings::aer::plugin::baseline::{BaselineSpec, query};
            let spec = BaselineSpec {
                bucket_ms: spec.bucket_ms,
                history: spec.history,
            };
            query(key, spec, time_ms)
                .map(__aer_stats)
                .map_err(__aer_state_error)
        }
        fn geo_lookup(&self, address: &str) -> $crate::Place {
            let p = __aer_bindings::aer::plugin::geo::lookup(address);
            $crate::Place {
                country: p.country,
                coordinates: p.coordinates.map(|c| $crate::geo::Coordinates {
                    latitude: c.latitude,
                    longitude: c.longitude,
                    accuracy_km: c.accuracy_km,
                }),
                network: p.network.map(|n| $crate::geo::Network {
                    asn: n.asn,
                    organisation: n.organisation,
                    hosting: n.hosting,
                    anonymous: n.anonymous,
                }),
            }
        }
        fn log(&self, level: $crate::Level, message: &str) {
            use __aer_bindings::aer::plugin::log::{Level, write};
            let level = match level {
                $crate::Level::Debug => Level::Debug,
                $crate::Level::Info => Level::Info,
                $crate::Level::Warn => Level::Warn,
                $crate::Level::Error => Level::Error,
            };
            write(level, message)
        }
    };
}

/// Glue shared by both export macros: SDK types to generated types.
#[doc(hidden)]
#[macro_export]
macro_rules! __aer_convert_types {
    () => {
        fn __aer_info(info: $crate::PluginInfo) -> __aer_bindings::aer::plugin::types::PluginInfo {
            __aer_bindings::aer::plugin::types::PluginInfo {
                name: info.name,
                version: info.version,
                description: info.description,
                actions: info.actions,
                config_schema: info.config_schema,
            }
        }
        #[allow(dead_code)]
        fn __aer_finding(f: $crate::Finding) -> __aer_bindings::aer::plugin::types::Finding {
            use __aer_bindings::aer::plugin::types::{Attribute, Finding, Severity};
            Finding {
                subject: f.subject,
                rule: f.rule,
                score: f.score,
                severity: match f.severity {
                    $crate::Severity::Info => Severity::Info,
                    $crate::Severity::Low => Severity::Low,
                    $crate::Severity::Medium => Severity::Medium,
                    $crate::Severity::High => Severity::High,
                    $crate::Severity::Critical => Severity::Critical,
                },
                summary: f.summary,
                evidence: f.evidence,
                attributes: f
                    .attributes
                    .into_iter()
                    .map(|(key, value)| Attribute { key, value })
                    .collect(),
                time_ms: f.time_ms,
            }
        }
        #[allow(dead_code)]
        fn __aer_finding_from(f: __aer_bindings::aer::plugin::types::Finding) -> $crate::Finding {
            use __aer_bindings::aer::plugin::types::Severity;
            $crate::Finding {
                subject: f.subject,
                rule: f.rule,
                score: f.score,
                severity: match f.severity {
                    Severity::Info => $crate::Severity::Info,
                    Severity::Low => $crate::Severity::Low,
                    Severity::Medium => $crate::Severity::Medium,
                    Severity::High => $crate::Severity::High,
                    Severity::Critical => $crate::Severity::Critical,
                },
                summary: f.summary,
                evidence: f.evidence,
                attributes: f.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
                time_ms: f.time_ms,
            }
        }
        fn __aer_state_error(
            e: __aer_bindings::aer::plugin::state::StateError,
        ) -> ::std::string::String {
            use __aer_bindings::aer::plugin::state::StateError;
            match e {
                StateError::KeyTooLarge(n) => ::std::format!("state key larger than {n} bytes"),
                StateError::ValueTooLarge(n) => ::std::format!("state value larger than {n} bytes"),
                StateError::BudgetExhausted => "state budget of this call is used up".into(),
                StateError::NotACounter => "state value is not a counter".into(),
            }
        }
        fn __aer_stats(
            s: __aer_bindings::aer::plugin::baseline::BaselineStats,
        ) -> $crate::BaselineStats {
            $crate::BaselineStats {
                buckets: s.buckets,
                mean: s.mean,
                stddev: s.stddev,
                p50: s.p50,
                p90: s.p90,
                p99: s.p99,
                max: s.max,
                current: s.current,
            }
        }
        fn __aer_base_info() -> $crate::PluginInfo {
            $crate::PluginInfo::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                .description(env!("CARGO_PKG_DESCRIPTION"))
        }
    };
}

/// Register a [`Detector`] type as the plugin's export.
///
/// On `wasm32` this expands the `detector` world's bindings and wires them to the type;
/// on other targets it expands to nothing, so the crate still builds for native tests.
#[macro_export]
macro_rules! export_detector {
    ($ty:ty) => {
        // Natively there is nothing to export; this checks the type and marks it used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $ty = || {
            fn is_detector<T: $crate::Detector>() {}
            is_detector::<$ty>();
            <$ty as ::core::default::Default>::default()
        };

        #[cfg(target_arch = "wasm32")]
        mod __aer_detector_export {
            use super::*;
            mod __aer_bindings {
                $crate::__aer_bindings_detector!();
            }
            $crate::__aer_convert_types!();

            struct WasmHost;
            impl $crate::__private::Backend for WasmHost {
                $crate::__aer_state_log_backend!(WasmHost);
            }

            struct Export;
            impl __aer_bindings::exports::aer::plugin::detection::Guest for Export {
                fn info() -> __aer_bindings::aer::plugin::types::PluginInfo {
                    __aer_info($crate::__private::detector::info::<$ty>(__aer_base_info()))
                }
                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::detector::configure::<$ty>(&config)
                }
                fn on_events(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<__aer_bindings::aer::plugin::types::Finding>,
                    ::std::string::String,
                > {
                    $crate::__private::detector::on_events::<$ty>(&WasmHost, &batch)
                        .map(|fs| fs.into_iter().map(__aer_finding).collect())
                }
                fn on_tick(
                    now_ms: i64,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<__aer_bindings::aer::plugin::types::Finding>,
                    ::std::string::String,
                > {
                    $crate::__private::detector::on_tick::<$ty>(&WasmHost, now_ms)
                        .map(|fs| fs.into_iter().map(__aer_finding).collect())
                }
            }
            __aer_bindings::export!(Export with_types_in __aer_bindings);
        }
    };
}

/// Register a [`Responder`] type as the plugin's export.
///
/// On `wasm32` this expands the `responder` world's bindings and wires them to the type;
/// on other targets it expands to nothing, so the crate still builds for native tests.
#[macro_export]
macro_rules! export_responder {
    ($ty:ty) => {
        // Natively there is nothing to export; this checks the type and marks it used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $ty = || {
            fn is_responder<T: $crate::Responder>() {}
            is_responder::<$ty>();
            <$ty as ::core::default::Default>::default()
        };

        #[cfg(target_arch = "wasm32")]
        mod __aer_responder_export {
            use super::*;
            mod __aer_bindings {
                $crate::__aer_bindings_responder!();
            }
            $crate::__aer_convert_types!();

            struct WasmHost;
            impl $crate::__private::Backend for WasmHost {
                $crate::__aer_state_log_backend!(WasmHost);
                fn terminate_sessions(
                    &self,
                    decision_id: &str,
                    user_id: &str,
                ) -> ::core::result::Result<::std::string::String, $crate::ActionError> {
                    __aer_bindings::aer::plugin::actions::terminate_sessions(decision_id, user_id)
                        .map_err(|e| $crate::ActionError { code: e.code, message: e.message })
                }
                fn notify(
                    &self,
                    decision_id: &str,
                    channel: &str,
                    text: &str,
                ) -> ::core::result::Result<::std::string::String, $crate::ActionError> {
                    __aer_bindings::aer::plugin::actions::notify(decision_id, channel, text)
                        .map_err(|e| $crate::ActionError { code: e.code, message: e.message })
                }
                fn effect(
                    &self,
                    decision_id: &str,
                    effect: &$crate::Effect<'_>,
                ) -> ::core::result::Result<::std::string::String, $crate::ActionError> {
                    use __aer_bindings::aer::plugin::actions as a;
                    match *effect {
                        $crate::Effect::EndSession { user_id, session_id } => {
                            a::end_session(decision_id, user_id, session_id)
                        }
                        $crate::Effect::RestrictApp { app_id } => a::restrict_app(decision_id, app_id),
                        $crate::Effect::UninstallApp { app_id } => a::uninstall_app(decision_id, app_id),
                        $crate::Effect::DemoteAdmin { user_id } => a::demote_admin(decision_id, user_id),
                        $crate::Effect::DeactivateUser { user_id } => {
                            a::deactivate_user(decision_id, user_id)
                        }
                    }
                    .map_err(|e| $crate::ActionError { code: e.code, message: e.message })
                }
            }

            struct Export;
            impl __aer_bindings::exports::aer::plugin::response::Guest for Export {
                fn info() -> __aer_bindings::aer::plugin::types::PluginInfo {
                    __aer_info($crate::__private::responder::info::<$ty>(__aer_base_info()))
                }
                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::responder::configure::<$ty>(&config)
                }
                fn respond(
                    d: __aer_bindings::aer::plugin::types::Decision,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<__aer_bindings::aer::plugin::types::ActionOutcome>,
                    ::std::string::String,
                > {
                    let decision = $crate::Decision {
                        id: d.id,
                        subject: d.subject,
                        enforce: d.enforce,
                        reason: d.reason,
                        findings: d.findings.into_iter().map(__aer_finding_from).collect(),
                        time_ms: d.time_ms,
                    };
                    $crate::__private::responder::respond::<$ty>(&WasmHost, &decision).map(|outcomes| {
                        outcomes
                            .into_iter()
                            .map(|o| __aer_bindings::aer::plugin::types::ActionOutcome {
                                action: o.action,
                                subject: o.subject,
                                ok: o.ok,
                                detail: o.detail,
                            })
                            .collect()
                    })
                }
            }
            __aer_bindings::export!(Export with_types_in __aer_bindings);
        }
    };
}
