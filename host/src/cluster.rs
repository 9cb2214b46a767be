//! Cluster mode (docs/cluster.md): several `aer serve` nodes share their tenants through
//! NATS JetStream. A tenant belongs to one of `cluster.partitions` partitions
//! ([`crate::daemon::partitions::partition_of`]); events accepted on any node are
//! published to the stream `AER_EVENTS` under the subject of their tenant's partition,
//! deduplicated by message id, and the client is answered after JetStream's
//! acknowledgement ([`publish`]). Each partition has one owner at a time, which holds its
//! lease in the key-value bucket `aer-leases` ([`membership`]) and lets the partition's
//! messages into its own durable inbox, once each by stream sequence ([`consume`]);
//! from there the pipeline runs as on a single node. Tenants' records (tokens,
//! plugins, policies) are shared through the bucket `aer-tenants` and plugin
//! components through the object store `aer-artifacts` ([`tenants`]).

mod checkpoint;
mod consume;
mod effects;
mod membership;
mod names;
pub mod publish;
pub mod tenants;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};

use crate::daemon::Daemon;
use crate::daemon::partitions::partition_of;

/// Why cluster mode could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The NATS server could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The configured URL.
        url: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A JetStream operation failed.
    #[error("{what}: {source}")]
    JetStream {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
    /// This node's settings disagree with the cluster's.
    #[error(
        "this node has `cluster.partitions` = {ours}, the cluster was created with {cluster}: every node must name the same number"
    )]
    Partitions {
        /// This node's setting.
        ours: u32,
        /// The cluster's.
        cluster: u32,
    },
    /// The local database failed.
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    /// A blocking task could not finish.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl ClusterError {
    /// A JetStream error with what was being done.
    pub(crate) fn js(what: impl Into<String>) -> impl FnOnce(async_nats::Error) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::JetStream { what, source }
    }
}

/// Box any NATS error (their kinds differ per operation).
pub(crate) fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> async_nats::Error {
    Box::new(e)
}

/// Who owns a partition, as its lease says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// The owning node.
    pub node: String,
    /// Where it answers HTTP.
    pub url: String,
}

/// A node's view of the cluster (`GET /v1/admin/cluster`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// Always `true` (a single node answers `{enabled: false}`).
    pub enabled: bool,
    /// This node.
    pub node: String,
    /// Where it answers HTTP.
    pub url: String,
    /// The cluster's partition count.
    pub partitions: u32,
    /// The partitions this node owns.
    pub owned: Vec<u32>,
    /// Every owned partition's owner, as last read.
    pub owners: Vec<PartitionOwner>,
    /// Messages of each partition this node owns that are in the stream and not let
    /// in yet (as of the last one let in).
    pub lag: BTreeMap<u32, u64>,
    /// The last checkpoint of each partition this node wrote or restored.
    pub checkpoints: BTreeMap<u32, checkpoint::Checkpointed>,
}

/// A partition and its owner.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionOwner {
    /// The partition.
    pub partition: u32,
    /// The owning node.
    pub node: String,
    /// Where it answers HTTP.
    pub url: String,
}

/// A JetStream context on the configured NATS server (the client reconnects by itself
/// after this first connection).
async fn connect(
    config: &crate::config::ClusterConfig,
) -> Result<jetstream::Context, ClusterError> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("aer {}", config.node_id))
        .connection_timeout(Duration::from_secs(5))
        .connect(config.nats_url.as_str())
        .await
        .map_err(|source| ClusterError::Connect {
            url: config.nats_url.clone(),
            source,
        })?;
    Ok(jetstream::new(client))
}

/// The cluster's host secret behind the plugins' random seeds (made by the first
/// node), for [`Daemon::open_with`]: every node seeds a plugin's randomness alike, so a
/// partition replayed on another node comes out the same.
pub async fn random_secret(
    config: &crate::config::ClusterConfig,
) -> Result<[u8; 32], ClusterError> {
    let js = connect(config).await?;
    let settings = names::bucket(&js, names::CLUSTER, Duration::ZERO).await?;
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| ClusterError::js("randomness")(boxed(e)))?;
    // Only the first node's is kept.
    let _ = settings
        .create("random-secret", bytes::Bytes::copy_from_slice(&fresh))
        .await;
    let stored = settings
        .get("random-secret")
        .await
        .map_err(|e| ClusterError::js("cannot read the cluster's secret")(boxed(e)))?;
    stored
        .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok())
        .ok_or_else(|| ClusterError::js("the cluster's secret")("missing or not 32 bytes".into()))
}

/// This node's part in a cluster.
pub struct Cluster {
    daemon: Arc<Daemon>,
    node: String,
    url: String,
    partitions: u32,
    lease: Duration,
    js: jetstream::Context,
    events: stream::Stream,
    nodes: kv::Store,
    leases: kv::Store,
    tenants: kv::Store,
    artifacts: object_store::ObjectStore,
    checkpoints: object_store::ObjectStore,
    /// Messages each owned partition has in the stream that are not let in yet, as of
    /// the last one let in.
    lag: Mutex<BTreeMap<u32, u64>>,
    /// Each partition's last checkpoint this node wrote or restored, and its digest.
    last_checkpoint: Mutex<BTreeMap<u32, (checkpoint::Checkpointed, [u8; 32])>>,
    /// Partitions this node owns: the revision of its lease and the task letting its
    /// messages in.
    owned: Mutex<BTreeMap<u32, membership::Held>>,
    /// Every partition's owner, as last read.
    owners: RwLock<BTreeMap<u32, Owner>>,
    /// Tenants' records as last applied from `aer-tenants` (revision by tenant).
    applied: Mutex<BTreeMap<String, u64>>,
    /// The highest revision of `aer-tenants` this node has applied or passed over.
    tenants_seen: AtomicU64,
    /// Held while a message is let into the inbox and while a checkpoint is read, so
    /// a checkpoint's records and stream cursor always agree.
    letting_in: Arc<Mutex<()>>,
    /// The membership task (stopped when the node leaves).
    membership: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Join the cluster `daemon.config.cluster` names: connect, create the stream and
    /// buckets if this is the first node, check this node's settings against the
    /// cluster's, then keep this node's membership, leases and partitions in the
    /// background. `listen` is the address HTTP is served on (for the default
    /// advertised URL).
    pub async fn start(
        daemon: Arc<Daemon>,
        listen: std::net::SocketAddr,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let c = daemon.config.cluster.clone();
        let js = connect(&c).await?;
        let lease = Duration::from_millis(c.lease_ms);
        let events = names::events_stream(&js).await?;
        names::check_partitions(&js, c.partitions).await?;
        let nodes = names::bucket(&js, names::NODES, lease).await?;
        let leases = names::bucket(&js, names::LEASES, lease).await?;
        let tenants = names::bucket(&js, names::TENANTS, Duration::ZERO).await?;
        let effect_claims = names::bucket(&js, names::EFFECTS, effects::KEEP).await?;
        let artifacts =
            names::object_store(&js, names::ARTIFACTS, "plugin components by SHA-256").await?;
        let checkpoints =
            names::object_store(&js, names::CHECKPOINTS, "partition checkpoints").await?;
        let url = if c.advertise_url.is_empty() {
            format!("http://{listen}")
        } else {
            c.advertise_url.trim_end_matches('/').to_owned()
        };
        daemon.served.clustered(c.partitions);
        let silent = Duration::from_millis(daemon.config.outbound.timeout_ms) + lease;
        let _ = daemon.effect_claims.set(Arc::new(effects::Claims {
            bucket: effect_claims,
            node: c.node_id.clone(),
            runtime: tokio::runtime::Handle::current(),
            silent,
        }));
        let cluster = Arc::new(Cluster {
            daemon,
            node: c.node_id.clone(),
            url,
            partitions: c.partitions,
            lease,
            js,
            events,
            nodes,
            leases,
            tenants,
            artifacts,
            checkpoints,
            last_checkpoint: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(BTreeMap::new()),
            owned: Mutex::new(BTreeMap::new()),
            owners: RwLock::new(BTreeMap::new()),
            applied: Mutex::new(BTreeMap::new()),
            tenants_seen: AtomicU64::new(0),
            letting_in: Arc::new(Mutex::new(())),
            membership: Mutex::new(None),
        });
        // Every tenant's records before the first lease, so a partition taken over
        // finds its tenants' plugins.
        tenants::catch_up(&cluster).await?;
        tokio::spawn(tenants::follow(cluster.clone()));
        let task = tokio::spawn(membership::run(cluster.clone()));
        *cluster.membership.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        tracing::info!(node = %cluster.node, url = %cluster.url, partitions = cluster.partitions, "joined the cluster");
        Ok(cluster)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The partition `tenant` belongs to.
    pub fn partition(&self, tenant: &str) -> u32 {
        partition_of(tenant, self.partitions)
    }

    /// The owner of `tenant`'s partition, as last read (`None`: none right now).
    pub fn owner_of(&self, tenant: &str) -> Option<Owner> {
        let p = self.partition(tenant);
        self.owners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p)
            .cloned()
    }

    /// Whether this node owns `tenant`'s partition now.
    pub fn owns(&self, tenant: &str) -> bool {
        self.daemon.serves(tenant)
    }

    /// Note `partition`'s lag (messages not let in yet).
    pub(crate) fn lag(&self, partition: u32, pending: u64) {
        self.lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(partition, pending);
    }

    /// Whether this node holds `partition`'s lease now.
    pub(crate) fn holds(&self, partition: u32) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&partition)
    }

    fn last_digest(&self, partition: u32) -> Option<[u8; 32]> {
        self.last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .map(|(_, d)| *d)
    }

    fn checkpointed(&self, partition: u32, seq: u64, digest: [u8; 32]) {
        let at = checkpoint::Checkpointed {
            seq,
            at_ms: crate::daemon::now_ms(),
        };
        self.daemon
            .metrics
            .partition_checkpoint(partition, seq, at.at_ms);
        self.last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(partition, (at, digest));
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> Status {
        let owners = self.owners.read().unwrap_or_else(|e| e.into_inner());
        Status {
            enabled: true,
            node: self.node.clone(),
            url: self.url.clone(),
            partitions: self.partitions,
            owned: self.owned(),
            lag: {
                let owned = self.owned();
                self.lag
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter(|(p, _)| owned.contains(p))
                    .map(|(p, n)| (*p, *n))
                    .collect()
            },
            checkpoints: self
                .last_checkpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(p, (c, _))| (*p, *c))
                .collect(),
            owners: owners
                .iter()
                .map(|(p, o)| PartitionOwner {
                    partition: *p,
                    node: o.node.clone(),
                    url: o.url.clone(),
                })
                .collect(),
        }
    }

    /// The partitions this node owns now.
    pub fn owned(&self) -> Vec<u32> {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
}
