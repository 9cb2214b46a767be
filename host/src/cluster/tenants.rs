//! Tenants' records across the cluster: after a node changes a tenant (creates it,
//! rotates its token, uploads a plugin, sets its policy...), it writes the tenant's
//! shared records to `aer-tenants` under the tenant's name, and the components they
//! name to `aer-artifacts`, before it answers ([`Cluster::share`]). Every node follows
//! the bucket and replaces its copy of the tenant's records with each new entry, so any
//! node can authenticate the tenant's requests and a node taking over its partition
//! finds its plugins.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::kv::{Entry, Operation};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncReadExt as _;

use super::{Cluster, ClusterError, boxed};
use crate::ledger::SharedRecord;

/// A tenant's entry in `aer-tenants` (no records: the tenant was deleted).
#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    /// The node that wrote it. A node following the bucket passes over its own
    /// entries: what it wrote it already has, and an entry coming back late must not
    /// undo a change made since.
    node: String,
    /// Its records: key and value, base64.
    records: Vec<(String, String)>,
    /// The components they name, by SHA-256.
    artifacts: Vec<String>,
}

impl Cluster {
    /// Write `tenant`'s records (as this node has them now) for every node, the
    /// components they name first. Called after a change, before its answer.
    pub async fn share(&self, tenant: &str) -> Result<(), ClusterError> {
        let daemon = self.daemon.clone();
        let name = tenant.to_owned();
        let (records, artifacts) =
            tokio::task::spawn_blocking(move || daemon.shared_records(&name)).await??;
        for sha in &artifacts {
            if self.artifacts.info(sha).await.is_ok() {
                continue;
            }
            let daemon = self.daemon.clone();
            let hash = sha.clone();
            let bytes = tokio::task::spawn_blocking(move || daemon.artifact_bytes(&hash)).await??;
            self.artifacts
                .put(sha.as_str(), &mut bytes.as_slice())
                .await
                .map_err(|e| ClusterError::js(format!("cannot share component {sha}"))(boxed(e)))?;
        }
        let shared = Shared {
            node: self.node.clone(),
            records: records
                .iter()
                .map(|(k, v)| (B64.encode(k), B64.encode(v)))
                .collect(),
            artifacts,
        };
        let value = serde_json::to_vec(&shared).unwrap_or_default();
        self.tenants
            .put(tenant, value.into())
            .await
            .map_err(|e| ClusterError::js("cannot share a tenant's records")(boxed(e)))?;
        Ok(())
    }
}

impl Cluster {
    /// Wait, a second at most, until this node has applied every tenant change written
    /// so far, so a tenant created or given a new token on another node a moment ago is
    /// known here too.
    pub async fn tenants_caught_up(&self) {
        let mut stream = self.tenants.stream.clone();
        let Ok(info) = stream.info().await else {
            return;
        };
        let last = info.state.last_sequence;
        let start = std::time::Instant::now();
        while self.tenants_seen.load(Ordering::Acquire) < last
            && start.elapsed() < std::time::Duration::from_secs(1)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// Apply every tenant's latest entry, this node's own too (its data directory may be
/// new), before the node takes any partition.
pub(super) async fn catch_up(cluster: &Arc<Cluster>) -> Result<(), ClusterError> {
    let keys: Vec<String> = cluster
        .tenants
        .keys()
        .await
        .map_err(|e| ClusterError::js("cannot list the tenants")(boxed(e)))?
        .try_collect()
        .await
        .map_err(|e| ClusterError::js("cannot list the tenants")(boxed(e)))?;
    for key in keys {
        if let Some(entry) = cluster
            .tenants
            .entry(key.as_str())
            .await
            .map_err(|e| ClusterError::js("cannot read a tenant")(boxed(e)))?
        {
            apply(cluster, &entry, true).await?;
        }
    }
    Ok(())
}

/// Apply each new entry until the process ends (following again after a failure).
pub(super) async fn follow(cluster: Arc<Cluster>) {
    loop {
        match cluster.tenants.watch_all().await {
            Ok(mut watch) => {
                while let Some(entry) = watch.next().await {
                    let applied = match entry {
                        Ok(entry) => apply(&cluster, &entry, false).await,
                        Err(e) => Err(ClusterError::js("following the tenants")(boxed(e))),
                    };
                    if let Err(e) = applied {
                        tracing::error!(node = %cluster.node, "cannot take a tenant's records: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!(node = %cluster.node, "cannot follow the tenants: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Replace this node's copy of a tenant's records with `entry` (newer than the one
/// applied last), fetching the components it names that this node lacks.
async fn apply(cluster: &Arc<Cluster>, entry: &Entry, own_too: bool) -> Result<(), ClusterError> {
    let applied = apply_entry(cluster, entry, own_too).await;
    cluster
        .tenants_seen
        .fetch_max(entry.revision, Ordering::AcqRel);
    applied
}

async fn apply_entry(
    cluster: &Arc<Cluster>,
    entry: &Entry,
    own_too: bool,
) -> Result<(), ClusterError> {
    let tenant = entry.key.clone();
    if !crate::daemon::tenants::valid_name(&tenant) {
        return Ok(());
    }
    let last = cluster
        .applied
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&tenant)
        .copied();
    if last.is_some_and(|r| r >= entry.revision) {
        return Ok(());
    }
    let records: Vec<SharedRecord> = match entry.operation {
        Operation::Delete | Operation::Purge => Vec::new(),
        Operation::Put => {
            let shared: Shared = serde_json::from_slice(&entry.value).map_err(|e| {
                ClusterError::js(format!("tenant {tenant:?}'s shared records"))(boxed(e))
            })?;
            if shared.node == cluster.node && !own_too {
                return Ok(());
            }
            for sha in &shared.artifacts {
                fetch_artifact(cluster, sha).await?;
            }
            shared
                .records
                .iter()
                .map(|(k, v)| Some((B64.decode(k).ok()?, B64.decode(v).ok()?)))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ClusterError::js(format!("tenant {tenant:?}'s shared records"))(
                        "a record that is not base64".into(),
                    )
                })?
        }
    };
    let daemon = cluster.daemon.clone();
    let name = tenant.clone();
    tokio::task::spawn_blocking(move || daemon.replace_shared_records(&name, &records)).await??;
    cluster
        .applied
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tenant, entry.revision);
    Ok(())
}

/// Store component `sha` from the object store unless this node has it.
async fn fetch_artifact(cluster: &Cluster, sha: &str) -> Result<(), ClusterError> {
    if sha.len() != 64
        || !sha.bytes().all(|b| b.is_ascii_hexdigit())
        || cluster.daemon.has_artifact(sha)
    {
        return Ok(());
    }
    let limit = cluster.daemon.config.limits.component_bytes as u64;
    let mut object = cluster
        .artifacts
        .get(sha)
        .await
        .map_err(|e| ClusterError::js(format!("cannot fetch component {sha}"))(boxed(e)))?;
    let mut bytes = Vec::new();
    (&mut object)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| ClusterError::js(format!("cannot fetch component {sha}"))(boxed(e)))?;
    let daemon = cluster.daemon.clone();
    let hash = sha.to_owned();
    tokio::task::spawn_blocking(move || daemon.store_artifact(&hash, &bytes)).await??;
    Ok(())
}
