//! # aer-host: the AER plugin host
//!
//! Runs sandboxed WebAssembly detector and responder components over audit events, a
//! decision engine between them, for many tenants at once. The `aer` binary
//! (`src/main.rs`) is a thin layer over this library. `docs/architecture.md` says how
//! the parts fit and what may import what.
//!
//! The pipeline's stages, in order (one hop each):
//! - [`pipeline::gather`]: which events one detector call gets.
//! - [`pipeline::detect`]: one detector call; its findings dated and placed by the host.
//! - [`pipeline::decide`]: the decision engine under the tenant's [`pipeline::policy`],
//!   in one order.
//! - [`pipeline::respond`]: the decision a responder gets, and what becomes of its
//!   effects.
//!
//! Their drivers: the daemon's workers ([`daemon::worker`], over the durable
//! [`ledger`]), `aer replay` ([`replay`]) and `aer test` ([`runner`]).
//!
//! Beneath them:
//! - [`records`]: findings and decisions as the host keeps and prints them.
//! - [`plugin`]: validation, loading, live instances with their limits, output checks,
//!   WIT conversions; on the wasmtime [`engine`].
//! - [`host_api`]: the WIT interfaces the host provides to plugins.
//! - [`geo`]: the operator's geolocation databases behind the `geo` interface.
//! - [`store`]: per-plugin state behind the [`store::StateStore`] trait (sled, memory).
//! - [`ingest`]: Slack Audit Logs entries and generic NDJSON events into [`Event`]s;
//!   [`sources`]: pulling them from Slack's Audit Logs API (no gap, no duplicate).
//! - [`limits`] and [`config`]: every bound put on a guest; the daemon's settings.
//! - [`text`] and [`panic`](mod@panic): escaping shown text; panics turned into errors.
//!
//! Around them: the daemon ([`daemon`]), its HTTP API ([`api`]), the CLI ([`cli`]), the
//! daemon and a mock Slack API in one process ([`loopback`], for `aer demo`), labelled
//! synthetic traffic ([`synth`], [`labels`]), and, with the `bench` feature, `aer bench`.

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bindings;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod daemon;
pub mod engine;
pub mod geo;
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
pub mod sources;
pub mod store;
pub mod synth;
pub mod text;
pub mod web;

pub use aer_wire::Event;
