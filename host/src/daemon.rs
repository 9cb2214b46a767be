//! The daemon's durable core, shared by the HTTP API and the pipeline workers: one sled
//! database under the data directory and the plugin artifacts beside it, reached only
//! through a cap-std directory handle so no name from a tenant can leave it.
//!
//! What it records is in the [`crate::ledger`].

pub mod activity;
pub mod claims;
pub mod dead_letters;
pub mod effects;
pub mod executor;
mod folder;
pub mod metrics;
mod notify;
pub mod outbound;
pub mod partitions;
pub mod plugin_logs;
pub mod plugins;
pub mod rate;
mod retention;
pub mod reviews;
pub mod sessions;
mod sources;
pub mod supervise;
pub mod tenants;
pub mod triage;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::ServeConfig;
use crate::engine::{AerEngine, EngineConfig};
use crate::ledger::inbox::{self, InboxError};
use crate::ledger::{Ledger, LedgerError};

/// Why the daemon could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The ledger (the database) failed, or holds what it should not.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The data directory failed.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Which path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A plugin's stored component could not be read or written.
    #[error("artifact {file}: {source}")]
    Artifact {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The wasm engine could not be built.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A configured geolocation database could not be used.
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
    /// The inbox failed.
    #[error("inbox: {0}")]
    Inbox(#[from] InboxError),
    /// Plugin state could not be read or written.
    #[error("plugin state: {0}")]
    State(#[from] crate::store::StoreError),
    /// A plugin record could not be read or written.
    #[error("plugins: {0}")]
    Plugins(#[source] Box<plugins::PluginError>),
    /// A stored policy is no longer valid.
    #[error("the stored policy: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Policy(Vec<crate::pipeline::policy::FieldError>),
    /// No randomness for a token.
    #[error("randomness: {0}")]
    Random(#[from] getrandom::Error),
    /// A plugin's writes would pass a state quota.
    #[error(transparent)]
    Quota(#[from] worker::QuotaExceeded),
}

impl From<plugins::PluginError> for DaemonError {
    fn from(e: plugins::PluginError) -> Self {
        match e {
            plugins::PluginError::Daemon(d) => d,
            other => DaemonError::Plugins(Box::new(other)),
        }
    }
}

/// The daemon's shared state.
pub struct Daemon {
    /// Settings.
    pub config: ServeConfig,
    pub(crate) admin_token: String,
    /// Everything the daemon records.
    pub(crate) ledger: Ledger,
    pub(crate) artifacts: cap_std::fs::Dir,
    /// The wasm engine.
    pub engine: Arc<AerEngine>,
    /// Loads (and caches) the tenants' plugins on the engine.
    pub loader: crate::plugin::Loader,
    /// The durable inbox.
    pub inbox: inbox::Inbox,
    /// Per-tenant ingest rate limits (events per second).
    pub rates: rate::RateLimits,
    /// Per-tenant pipeline time (milliseconds per second).
    pub cpu: rate::RateLimits,
    /// Wakes the pipeline worker.
    pub wake: Arc<claims::Wake>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Tenants a pipeline worker is serving right now.
    pub(crate) claims: claims::Claims,
    /// Fault history by (tenant, plugin): quarantine and retry backoff.
    faults: Mutex<HashMap<(String, String), worker::FaultMemory>>,
    /// When each tenant last committed pipeline work (for the time quota).
    busy: Mutex<HashMap<String, std::time::Instant>>,
    /// The tenants' plugin records as last read (see [`plugins::RecordCache`]).
    plugin_records: plugins::RecordCache,
    /// Held while a pipeline commit reads and advances a tenant's counters (finding
    /// sequence, state bytes), which workers serving one tenant's detectors at once
    /// share.
    commit: Mutex<()>,
    /// Plugin state (in the pipeline tree, with its journal and read cache), shared by
    /// every worker.
    state: crate::store::SledStore,
    /// Folds the state journal off the workers' path.
    folder: folder::StateFolder,
    /// Set to `true` when the daemon starts shutting down (ends live streams).
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Whether every pipeline thread is running (for `/readyz`).
    pub health: supervise::Health,
    /// Failed authentications by client address.
    pub auth_failures: rate::FailureWindow,
    /// Where effects may go, and the client that takes them there.
    pub outbound: outbound::Outbound,
    /// Effects waiting for the executor.
    pub effects: executor::EffectQueue,
    /// Where effects are claimed across a cluster's nodes (set when the node joins).
    pub effect_claims: std::sync::OnceLock<Arc<dyn executor::EffectClaims>>,
    /// The plugins' recent log lines.
    pub plugin_logs: plugin_logs::PluginLogs,
    /// Events accepted per tenant and minute, for the console.
    pub activity: activity::Activity,
    /// Detectors with a dead letter to replay.
    pub(crate) replays: dead_letters::Replays,
    /// Which tenants this node serves (all, unless it is a cluster node).
    pub served: partitions::Served,
    /// The tenants' pull sources and when each is polled next.
    sources: sources::Sources,
    /// Held while a review is opened, approved or dismissed, or suppressions change.
    reviews: Mutex<()>,
    /// Counts responses put back in the pending queue (an approved escalation), so a
    /// worker looks again at decisions it had passed over.
    pub(crate) reopened: std::sync::atomic::AtomicU64,
}

impl Daemon {
    /// Fault history by (tenant, plugin).
    pub(crate) fn fault_memory(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), worker::FaultMemory>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When each tenant last committed pipeline work.
    pub(crate) fn busy(&self) -> std::sync::MutexGuard<'_, HashMap<String, std::time::Instant>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serialise a commit that reads and advances a tenant's counters.
    pub(crate) fn commit_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.commit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open (or create) the data directory and the database.
    pub fn open(config: ServeConfig, admin_token: String) -> Result<Arc<Self>, DaemonError> {
        Self::open_with(config, admin_token, None)
    }

    /// [`Daemon::open`], with the host secret behind the plugins' random seeds
    /// replaced by `random_secret` if given (a cluster node's: the cluster's).
    pub fn open_with(
        config: ServeConfig,
        admin_token: String,
        random_secret: Option<[u8; 32]>,
    ) -> Result<Arc<Self>, DaemonError> {
        let data = &config.data_dir;
        let io = |source| DaemonError::DataDir {
            path: data.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data).map_err(io)?;
        let dir =
            cap_std::fs::Dir::open_ambient_dir(data, cap_std::ambient_authority()).map_err(io)?;
        dir.create_dir_all("artifacts").map_err(io)?;
        let artifacts = dir.open_dir("artifacts").map_err(io)?;
        let ledger = Ledger::open(data)?;
        if let Some(secret) = &random_secret {
            ledger.set_random_secret(secret)?;
        }
        let geo = crate::geo::Geo::open(
            &config.geo.databases,
            config.geo.hosting_asns.iter().copied(),
        )?;
        for db in geo.describe() {
            tracing::info!("geolocation database {db}");
        }
        let engine = AerEngine::new(EngineConfig {
            limits: config.limits.clone(),
            max_instances: config.max_instances,
            random_secret: ledger.random_secret()?,
            geo: Arc::new(geo),
            code_cache: Some(data.join("code-cache")),
            ..Default::default()
        })?;
        let inbox = ledger.inbox(config.ingest.dedupe_window_events)?;
        let rates = rate::RateLimits::new();
        let state = ledger.state_store(config.state_cache_bytes)?;
        let metrics = Arc::new(metrics::Metrics::default());
        let folder = folder::StateFolder::start(state.clone(), metrics.clone()).map_err(io)?;
        let outbound = outbound::Outbound::new(config.outbound.clone());
        Ok(Arc::new(Daemon {
            config,
            admin_token,
            ledger,
            artifacts,
            loader: crate::plugin::Loader::new(engine.clone()),
            engine,
            inbox,
            rates,
            cpu: rate::RateLimits::new(),
            claims: claims::Claims::default(),
            faults: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            plugin_records: plugins::RecordCache::default(),
            commit: Mutex::new(()),
            state,
            folder,
            wake: Arc::new(claims::Wake::default()),
            metrics,
            closing: tokio::sync::watch::channel(false).0,
            health: supervise::Health::default(),
            auth_failures: rate::FailureWindow::default(),
            outbound,
            effects: executor::EffectQueue::default(),
            effect_claims: std::sync::OnceLock::new(),
            plugin_logs: plugin_logs::PluginLogs::default(),
            activity: activity::Activity::default(),
            replays: dead_letters::Replays::default(),
            served: partitions::Served::default(),
            sources: sources::Sources::default(),
            reviews: Mutex::new(()),
            reopened: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// The next inbox seq a detector of `tenant` will process.
    pub fn detector_cursor(&self, tenant: &str, plugin: &str) -> Result<u64, DaemonError> {
        Ok(self.ledger.detector_cursor(tenant, plugin)?)
    }

    /// The next inbox seq `tenant`'s decision engine has not observed.
    pub fn decision_observed(&self, tenant: &str) -> Result<u64, DaemonError> {
        Ok(self.ledger.observed(tenant)?)
    }

    /// Bytes of plugin state (keys and values) `tenant`'s plugins keep, as its state
    /// quota counts them.
    pub fn state_bytes(&self, tenant: &str) -> Result<u64, DaemonError> {
        Ok(self.ledger.state_bytes(tenant)?)
    }

    /// The lowest inbox sequence number an enabled detector of `tenant` still needs
    /// (with none, nothing is waiting).
    pub fn processed_seq(&self, tenant: &str) -> Result<u64, DaemonError> {
        let next = self.inbox.next_seq(tenant).unwrap_or(0);
        let plugins = self.plugins(tenant)?;
        let mut lowest = next;
        for p in plugins.iter().filter(|p| {
            p.kind == crate::plugin::PluginKind::Detector
                && p.status != plugins::PluginStatus::Disabled
        }) {
            lowest = lowest.min(self.detector_cursor(tenant, &p.name)?);
        }
        Ok(lowest)
    }

    /// Plugin state, in the pipeline tree so it commits atomically with cursors and
    /// findings.
    pub fn state_store(&self) -> crate::store::SledStore {
        self.state.clone()
    }

    /// Have the state journal folded (in the background) if enough has gathered.
    pub(crate) fn fold_state_if_due(&self) {
        self.folder.poke();
    }

    /// Whether this node runs `tenant`'s pipeline and pull sources (a cluster node:
    /// only while it owns the tenant's partition).
    pub fn serves(&self, tenant: &str) -> bool {
        self.served.serves(tenant)
    }

    /// Count `n` events accepted for `tenant` (its metrics, and the console's activity).
    pub fn accepted(&self, tenant: &str, n: usize) {
        self.metrics.ingested(tenant, n);
        self.activity.record(tenant, n, now_ms());
    }

    /// Fold the state journal and flush everything to disk (shutdown).
    pub fn flush(&self) -> Result<(), DaemonError> {
        self.state.fold()?;
        self.ledger.flush()?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, wall clock (for records, never for detection).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
