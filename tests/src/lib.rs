//! Harness for AER's integration tests: paths of the components built from source by
//! `build.rs`, a shared engine, the CLI driven in-process, and event builders.

use std::sync::{Arc, OnceLock};

use aer_host::engine::{AerEngine, EngineConfig};
use aer_host::host_api::DryRunActions;
use aer_host::limits::Limits;
use aer_host::plugin::instance::InstanceSpec;
use aer_host::plugin::{DetectorInstance, Fault, LoadedPlugin};
use aer_host::store::StateStore;
use aer_wire::{Context, Entity, Event};

/// Paths of the built components, one constant per crate (e.g. [`plugins::HOSTILE`]).
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository root")
        .to_path_buf()
}

/// An engine with default limits, shared by tests that need nothing special.
pub fn engine() -> Arc<AerEngine> {
    static ENGINE: OnceLock<Arc<AerEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| AerEngine::new(EngineConfig::default()).expect("engine"))
        .clone()
}

/// An engine of its own with these limits.
pub fn engine_with(limits: Limits) -> Arc<AerEngine> {
    AerEngine::new(EngineConfig {
        limits,
        max_instances: 16,
        ..Default::default()
    })
    .expect("engine")
}

/// Load a built component.
pub fn load(engine: &Arc<AerEngine>, path: &str) -> Arc<LoadedPlugin> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    engine
        .load(&bytes)
        .unwrap_or_else(|e| panic!("load {path}: {e}"))
}

/// A detector instance for tenant `t1`.
pub fn detector(
    engine: &Arc<AerEngine>,
    path: &str,
    config: &str,
    state: Arc<dyn StateStore>,
) -> Result<DetectorInstance, Fault> {
    let plugin = load(engine, path);
    DetectorInstance::new(
        engine,
        &plugin,
        InstanceSpec {
            tenant: "t1".into(),
            config: config.into(),
            state,
            actions: Arc::new(DryRunActions::default()),
        },
    )
}

/// What one in-process `aer` run printed and returned.
#[derive(Debug)]
pub struct CliRun {
    /// Exit code.
    pub code: u8,
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
}

/// Run `aer ARGS...` in-process, stdout not a terminal.
pub fn aer(args: &[&str]) -> CliRun {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = {
        let mut io = aer_host::cli::Io {
            out: &mut out,
            err: &mut err,
            out_is_terminal: false,
        };
        aer_host::cli::run_args(std::iter::once("aer").chain(args.iter().copied()), &mut io)
    };
    CliRun {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// An event of `action` by `user` at `time_ms`.
pub fn event(id: impl Into<String>, action: &str, user: &str, time_ms: i64) -> Event {
    Event {
        id: id.into(),
        time_ms,
        action: action.into(),
        actor: Entity {
            kind: "user".into(),
            id: user.into(),
            name: user.to_lowercase(),
            email: format!("{}@acme.example", user.to_lowercase()),
        },
        target: None,
        context: Context {
            ip: "198.51.100.7".into(),
            user_agent: "Mozilla/5.0".into(),
            session_id: "1".into(),
            ..Default::default()
        },
        details: Vec::new(),
    }
}

/// Minutes in milliseconds.
pub const MIN: i64 = 60_000;
