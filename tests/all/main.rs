//! AER's integration tests, one binary: real components built from `plugins/`,
//! `examples/` and `tests/fixtures/` running in the real host.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod client;
mod cluster;
mod code_cache;
mod console;
mod console_browser;
mod crash;
mod daemon;
mod detection_pack;
mod excessive_downloads;
mod geo;
mod hardening;
mod hostile_tenant;
mod instances;
mod layering;
mod notifications;
mod openapi;
mod operator;
mod parity;
mod pipeline;
mod quotas;
mod readme;
mod replay;
mod responses;
mod reviews;
mod sandbox;
mod scaffold;
mod sources;
mod streaming;
mod test_command;
mod validate;
