//! The process-wide wasmtime engine: configuration, epoch ticker, one linker per
//! plugin world, and bounded compilation with its cache on disk ([`code_cache`]).
//! Plugins are validated, loaded and cached above it ([`crate::plugin::Loader`]).

pub mod code_cache;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::geo::Geo;
use crate::host_api::{HostState, wasi};
use crate::limits::Limits;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Limits applied to every plugin call.
    pub limits: Limits,
    /// Epoch tick length; deadlines are measured in ticks.
    pub tick: Duration,
    /// Most plugin instances alive at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// Epoch interruption, which enforces the per-call deadline. Only `aer bench` turns
    /// it off, to measure what it costs: without it a looping plugin is never stopped.
    pub interruptible: bool,
    /// The host's secret behind each plugin's WASI random seed (see
    /// [`AerEngine::random_seed`]). The daemon keeps one per data directory; the local
    /// tools use the default (zeros), so a replay of a plugin stays deterministic.
    pub random_secret: [u8; 32],
    /// The operator's geolocation databases (none: every address unknown).
    pub geo: Arc<Geo>,
    /// The directory of the compiled-code cache (none: compile every time).
    pub code_cache: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            tick: Duration::from_millis(1),
            max_instances: 256,
            interruptible: true,
            random_secret: [0; 32],
            geo: Arc::new(Geo::none()),
            code_cache: None,
        }
    }
}

/// Bytes of each pooled memory and table kept resident when an instance ends and
/// reset with a `memset` on reuse, rather than handed back to the kernel: instantiating
/// again then needs no page faults for them (`aer bench`'s instantiation figure).
const KEEP_RESIDENT: usize = 64 * 1024;

/// Why a component did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The compiler refused it.
    #[error("{0}")]
    Invalid(String),
    /// Compiling took longer than allowed.
    #[error("compilation took longer than {limit_ms} ms")]
    Timeout {
        /// The bound.
        limit_ms: u64,
    },
    /// The compiler slots are all taken (by slow or timed-out compilations).
    #[error("{running} compilations are already running; try again later")]
    Busy {
        /// Compilations in progress.
        running: u32,
    },
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the wasm engine: {0}")]
pub struct EngineError(String);

/// Increments the engine's epoch every tick until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("aer-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One per process: the wasmtime engine plugins run in. Cheap to share (`Arc`).
pub struct AerEngine {
    engine: Engine,
    pub(crate) detector_linker: Linker<HostState>,
    pub(crate) responder_linker: Linker<HostState>,
    limits: Arc<Limits>,
    tick: Duration,
    compiling: Arc<AtomicU32>,
    compilations: AtomicU64,
    random_secret: [u8; 32],
    geo: Arc<Geo>,
    code_cache: Option<code_cache::CodeCache>,
    _ticker: EpochTicker,
}

/// One of the engine's compiler slots, given back when dropped (when its compilation
/// ends, even one whose caller stopped waiting).
struct CompileSlot(Arc<AtomicU32>);

impl CompileSlot {
    fn take(count: &Arc<AtomicU32>, max: u32) -> Result<CompileSlot, u32> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max.max(1)).then_some(n + 1)
            })
            .map(|_| CompileSlot(count.clone()))
    }
}

impl Drop for CompileSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AerEngine {
    /// Build the engine, its linkers and the epoch ticker.
    pub fn new(config: EngineConfig) -> Result<Arc<Self>, EngineError> {
        let limits = config.limits;
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(2))
            .total_stacks(n)
            .max_memory_size(limits.memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(config.interruptible)
            .max_wasm_stack(limits.stack_bytes)
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `AER_PERF_MAP=1`: write /tmp/perf-PID.map so `perf` names plugin functions.
        if std::env::var_os("AER_PERF_MAP").is_some_and(|v| v == "1") {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg).map_err(|e| EngineError(format!("{e:#}")))?;

        let mut detector_linker = Linker::new(&engine);
        let mut responder_linker = Linker::new(&engine);
        let link = |d: &mut Linker<HostState>, r: &mut Linker<HostState>| -> wasmtime::Result<()> {
            wasi::add_to_linker(d)?;
            wasi::add_to_linker(r)?;
            bindings::detector::Detector::add_to_linker::<
                HostState,
                wasmtime::component::HasSelf<HostState>,
            >(d, |s| s)?;
            bindings::responder::Responder::add_to_linker::<
                HostState,
                wasmtime::component::HasSelf<HostState>,
            >(r, |s| s)?;
            Ok(())
        };
        link(&mut detector_linker, &mut responder_linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;

        let code_cache = config.code_cache.as_deref().and_then(|dir| {
            code_cache::CodeCache::open(dir, &engine)
                .inspect_err(|e| tracing::warn!("compiling without a cache: {e}"))
                .ok()
        });
        let ticker = EpochTicker::start(engine.clone(), config.tick)
            .map_err(|e| EngineError(format!("epoch ticker thread: {e}")))?;
        Ok(Arc::new(AerEngine {
            engine,
            detector_linker,
            responder_linker,
            limits: Arc::new(limits),
            tick: config.tick,
            compiling: Arc::new(AtomicU32::new(0)),
            compilations: AtomicU64::new(0),
            random_secret: config.random_secret,
            geo: config.geo,
            code_cache,
            _ticker: ticker,
        }))
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The WASI random seed of `tenant`'s plugin `plugin`: SHA-256 of the host's secret,
    /// the tenant and the plugin name. The same plugin gets the same randomness on every
    /// start (its findings replay), and no tenant can predict another's.
    pub fn random_seed(&self, tenant: &str, plugin: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(self.random_secret);
        for part in [tenant, plugin] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// The operator's geolocation databases.
    pub fn geo(&self) -> &Arc<Geo> {
        &self.geo
    }

    /// The limits applied to every call.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Milliseconds per epoch tick (at least 1).
    pub fn tick_ms(&self) -> u64 {
        self.tick.as_millis().max(1) as u64
    }

    /// The per-call deadline in epoch ticks (at least 1).
    pub fn deadline_ticks(&self) -> u64 {
        self.limits.deadline_ms.div_ceil(self.tick_ms()).max(1)
    }

    /// Compile `bytes` on a compiler thread of its own, waiting at most
    /// `compile_timeout_ms`; at most `compile_concurrency` compilations run at once (a
    /// timed-out one keeps its slot until it finishes, so a stream of compile bombs
    /// cannot pile up). Only ever compiles tenant bytes: what reaches
    /// `Component::deserialize` is this host's own output from the code cache, when
    /// it holds the same bytes compiled under the same configuration. `digest` is the
    /// bytes' SHA-256 (the loader has it already).
    pub fn compile(&self, bytes: &[u8], digest: &[u8; 32]) -> Result<Component, CompileError> {
        if let Some(c) = (self.code_cache.as_ref()).and_then(|c| c.get(&self.engine, digest)) {
            return Ok(c);
        }
        let component = self.compile_fresh(bytes)?;
        if let Some(cache) = &self.code_cache {
            cache.put(digest, &component);
        }
        Ok(component)
    }

    /// The compiled-code cache, if the engine has one.
    pub fn code_cache(&self) -> Option<&code_cache::CodeCache> {
        self.code_cache.as_ref()
    }

    fn compile_fresh(&self, bytes: &[u8]) -> Result<Component, CompileError> {
        let slot = CompileSlot::take(&self.compiling, self.limits.compile_concurrency)
            .map_err(|running| CompileError::Busy { running })?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let engine = self.engine.clone();
        let bytes = bytes.to_vec();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("aer-compile".into())
            .spawn(move || {
                let _slot = slot;
                let _ = tx.send(Component::new(&engine, &bytes));
            })
            .map_err(|e| CompileError::Invalid(format!("cannot start a compiler thread: {e}")))?;
        let limit_ms = self.limits.compile_timeout_ms;
        match rx.recv_timeout(Duration::from_millis(limit_ms)) {
            Ok(result) => result.map_err(|e| CompileError::Invalid(format!("{e:#}"))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(CompileError::Timeout { limit_ms })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(CompileError::Invalid("the compiler thread failed".into()))
            }
        }
    }

    /// Compilations started so far.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }
}
