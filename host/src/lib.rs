//! # aer-host: the AER plugin host
//!
//! Loads sandboxed WebAssembly detector and responder components, feeds them audit
//! events in packed batches, and keeps their per-plugin state. The `aer` binary
//! (`src/main.rs`) is a thin layer over this library.
//!
//! - [`engine`]: the process-wide wasmtime engine, epoch ticker, linkers, compile cache.
//! - [`plugin`]: validation, loading and per-plugin instances with their limits.
//! - [`host_api`]: the WIT interfaces the host provides to plugins.
//! - [`store`]: per-plugin state behind the [`store::StateStore`] trait (sled, memory).
//! - [`ingest`]: Slack Audit Logs entries and generic NDJSON events into [`Event`]s.
//! - [`limits`]: every bound put on a guest, with defaults.
//! - [`text`]: escaping plugin- and event-provided text wherever it is shown.
//! - [`synth`] and [`labels`]: labelled synthetic traffic and scoring findings against it.

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bindings;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod host_api;
pub mod ingest;
pub mod labels;
pub mod ledger;
pub mod limits;
pub mod loopback;
pub mod panic;
pub mod pipeline;
pub mod plugin;
pub mod records;
pub mod replay;
pub mod runner;
pub mod store;
pub mod synth;
pub mod text;

pub use aer_wire::Event;
