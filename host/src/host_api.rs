//! The interfaces the host provides to plugins, one file per WIT interface, and the
//! per-store data ([`HostState`]) they work on.

pub mod actions;
pub mod baseline;
pub mod geo;
pub mod limiter;
pub mod log;
pub mod state;
pub mod wasi;

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::Limits;
use crate::store::{Scope, StateStore, WriteSet};
use limiter::MemoryLimiter;

pub use actions::{ActionSink, DecisionBinding, DryRunActions};
pub use log::LogRecord;

/// Who a store belongs to, for logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginId {
    /// Tenant name.
    pub tenant: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
}

impl std::fmt::Display for PluginId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.tenant, self.plugin, self.version)
    }
}

/// A call's number, unique in the process: each new one is the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallNumber(u64);

impl Default for CallNumber {
    fn default() -> Self {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        CallNumber(CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// What one call is allowed and what it did so far; reset before every call.
#[derive(Debug, Default)]
pub struct CallState {
    /// State writes of this call, committed only if the call succeeds.
    pub writes: WriteSet,
    /// State operations so far.
    pub state_ops: u32,
    /// State bytes written so far.
    pub state_bytes: u64,
    /// State bytes read (copied towards the guest) so far.
    pub read_bytes: u64,
    /// Log messages kept.
    pub logs: Vec<LogRecord>,
    /// Log messages dropped over the cap.
    pub logs_dropped: u32,
    /// This call's number (which baselines it has checked).
    pub number: CallNumber,
    /// Keys of the baselines first used in this call.
    pub baselines: Vec<String>,
    /// Time spent in host calls that wait on something other than the plugin (effects
    /// over the network, the state store): the plugin's deadline does not count it.
    pub waited: std::cell::Cell<std::time::Duration>,
    /// Waited time already added to the call's deadline.
    pub credited: std::time::Duration,
}

impl CallState {
    /// Count the time since `started` as waited (see [`CallState::waited`]).
    pub fn waited_since(&self, started: std::time::Instant) {
        self.waited.set(self.waited.get() + started.elapsed());
    }
}

/// A call read more state than [`Limits::read_bytes_per_call`] allows; the call traps
/// with it.
#[derive(Debug, thiserror::Error)]
#[error("the call read more than {limit} bytes of state")]
pub struct ReadLimitExceeded {
    /// The limit, in bytes.
    pub limit: u64,
}

/// The data of one plugin's wasmtime store.
pub struct HostState {
    pub(crate) id: PluginId,
    pub(crate) scope: Scope,
    pub(crate) limits: Arc<Limits>,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) actions: Arc<dyn ActionSink>,
    /// The operator's geolocation databases.
    pub(crate) geo: Arc<crate::geo::Geo>,
    pub(crate) call: CallState,
    /// Baselines decoded by this instance, kept between calls (checked against the
    /// store once a call).
    pub(crate) baselines: baseline::Baselines,
    /// The decision a responder's call is handling (none for detectors).
    pub(crate) decision: Option<actions::DecisionBinding>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    /// Bytes of (stdout, stderr) already forwarded to tracing.
    stdio_forwarded: (usize, usize),
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    /// Fresh store data for one plugin instance.
    pub fn new(
        id: PluginId,
        limits: Arc<Limits>,
        store: Arc<dyn StateStore>,
        actions: Arc<dyn ActionSink>,
        geo: Arc<crate::geo::Geo>,
        random_seed: [u8; 32],
    ) -> Self {
        let stdout = MemoryOutputPipe::new(limits.stdio_bytes);
        let stderr = MemoryOutputPipe::new(limits.stdio_bytes);
        let wasi = wasi::deny_all_ctx(stdout.clone(), stderr.clone(), random_seed);
        HostState {
            scope: Scope::new(&id.tenant, &id.plugin),
            id,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            limits,
            store,
            actions,
            geo,
            call: CallState::default(),
            baselines: baseline::Baselines::default(),
            decision: None,
            stdout,
            stderr,
            stdio_forwarded: (0, 0),
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// Guest stderr so far (where a Rust panic message goes), lossily decoded.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// Guest stdout so far, lossily decoded.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    /// Send guest stdout/stderr written since the last call to tracing, line by line.
    /// What a guest writes past the per-instance cap is not kept.
    pub(crate) fn forward_stdio(&mut self) {
        let plugin = self.id.to_string();
        for (stream, pipe, seen) in [
            ("stdout", &self.stdout, &mut self.stdio_forwarded.0),
            ("stderr", &self.stderr, &mut self.stdio_forwarded.1),
        ] {
            let bytes = pipe.contents();
            if bytes.len() <= *seen {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes[*seen..]).lines() {
                let line = crate::text::escape_control(line);
                tracing::info!(%plugin, stream, "{line}");
            }
            *seen = bytes.len();
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::host::aer::plugin::types::Host for HostState {}
