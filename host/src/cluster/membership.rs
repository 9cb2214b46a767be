//! Nodes and partition leases. Every third of a lease each node renews its entry in
//! `aer-nodes`, reads who is alive and who owns what, renews the leases it holds
//! (compare-and-set on the lease's revision: a lease another node took is lost, never
//! overwritten), and takes free partitions it is the preferred owner of (rendezvous
//! hashing over the live nodes, so each node prefers about an equal share and a node
//! joining or leaving moves only its own share). A partition left free for a whole lease
//! is taken by any node. A node that cannot renew a lease within two thirds of it stops
//! serving that partition before the lease can expire and pass to another node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::kv::Operation;
use futures_util::TryStreamExt as _;
use sha2::{Digest as _, Sha256};

use super::{Cluster, ClusterError, Owner, boxed, consume, names};

/// A partition this node owns.
pub(super) struct Held {
    /// The lease's revision (the next renewal's expected revision).
    revision: u64,
    /// When the lease was last renewed.
    renewed: Instant,
    /// The task letting the partition's messages into the inbox.
    task: tokio::task::JoinHandle<()>,
    /// Whether its checkpoint is restored (its tenants are served from then on).
    ready: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The preferred owner of `partition` among `nodes`: the node with the highest hash of
/// (node, partition).
pub(super) fn preferred(partition: u32, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|n| {
            let mut h = Sha256::new();
            h.update(n.as_bytes());
            h.update(partition.to_be_bytes());
            let d = h.finalize();
            u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
        })
        .map(String::as_str)
}

/// Serve the tenants of the partitions held and restored (and say so in the metrics).
fn serve_ready(cluster: &Cluster, owned: &BTreeMap<u32, Held>) {
    cluster
        .daemon
        .served
        .set(owned.iter().filter(|(_, h)| h.ready).map(|(p, _)| *p));
    for p in 0..cluster.partitions {
        let ready = owned.get(&p).is_some_and(|h| h.ready);
        cluster.daemon.metrics.partition_owned(p, ready);
    }
}

/// Keep this node's membership and leases until the process ends.
pub(super) async fn run(cluster: Arc<Cluster>) {
    let tick = cluster.lease / 3;
    let mut free_since: HashMap<u32, Instant> = HashMap::new();
    loop {
        if let Err(e) = turn(&cluster, &mut free_since).await {
            tracing::warn!(node = %cluster.node, "cluster membership: {e}");
        }
        cluster.drop_stale_leases();
        tokio::time::sleep(tick).await;
    }
}

/// One turn: announce this node, read the nodes and leases, renew and take.
async fn turn(
    cluster: &Arc<Cluster>,
    free_since: &mut HashMap<u32, Instant>,
) -> Result<(), ClusterError> {
    let me = Owner {
        node: cluster.node.clone(),
        url: cluster.url.clone(),
    };
    let value: bytes::Bytes = serde_json::to_vec(&me).unwrap_or_default().into();
    cluster
        .nodes
        .put(&cluster.node, value.clone())
        .await
        .map_err(|e| ClusterError::js("cannot announce this node")(boxed(e)))?;
    let mut live: Vec<String> = cluster
        .nodes
        .keys()
        .await
        .map_err(|e| ClusterError::js("cannot list the nodes")(boxed(e)))?
        .try_collect()
        .await
        .map_err(|e| ClusterError::js("cannot list the nodes")(boxed(e)))?;
    live.sort();
    let mut owners = BTreeMap::new();
    for p in 0..cluster.partitions {
        let key = names::lease_key(p);
        let entry = cluster
            .leases
            .entry(key.as_str())
            .await
            .map_err(|e| ClusterError::js("cannot read a lease")(boxed(e)))?;
        let entry = entry.filter(|e| e.operation == Operation::Put);
        let owner = entry
            .as_ref()
            .and_then(|e| serde_json::from_slice::<Owner>(&e.value).ok());
        let held = cluster.held_revision(p);
        if let Some(revision) = held {
            match cluster
                .leases
                .update(key.as_str(), value.clone(), revision)
                .await
            {
                Ok(next) => cluster.renewed(p, next),
                Err(e) => {
                    tracing::warn!(node = %cluster.node, partition = p, "lost the lease: {e}");
                    cluster.release_local(p);
                }
            }
        } else if let (Some(o), Some(e)) = (&owner, &entry)
            && o.node == cluster.node
        {
            // This node's lease, which it stopped serving when it could not renew it
            // in time (NATS unreachable for a moment): take it back at its revision,
            // from its checkpoint, rather than wait for it to expire.
            if let Ok(revision) = cluster
                .leases
                .update(key.as_str(), value.clone(), e.revision)
                .await
            {
                cluster.take(p, revision);
            }
        } else if owner.is_none() {
            let since = *free_since.entry(p).or_insert_with(Instant::now);
            let mine = preferred(p, &live) == Some(cluster.node.as_str());
            if (mine || since.elapsed() >= cluster.lease)
                && let Ok(revision) = cluster.leases.create(key.as_str(), value.clone()).await
            {
                cluster.take(p, revision);
            }
        }
        let held_now = cluster.held_revision(p).is_some();
        if owner.is_some() || held_now {
            free_since.remove(&p);
        }
        let now_owner = if held_now {
            Some(me.clone())
        } else {
            owner.filter(|o| o.node != cluster.node)
        };
        if let Some(o) = now_owner {
            owners.insert(p, o);
        }
    }
    *cluster.owners.write().unwrap_or_else(|e| e.into_inner()) = owners;
    // A node that joined prefers some of the partitions held here: hand one over per
    // turn (each is unserved from its checkpoint until the new owner has restored it).
    let moving = cluster
        .owned()
        .into_iter()
        .find(|&p| preferred(p, &live).is_some_and(|n| n != cluster.node) && cluster.is_ready(p));
    if let Some(p) = moving {
        cluster.hand_over(p).await;
    }
    Ok(())
}

impl Cluster {
    fn held_revision(&self, partition: u32) -> Option<u64> {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .map(|h| h.revision)
    }

    fn renewed(&self, partition: u32, revision: u64) {
        if let Some(h) = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&partition)
        {
            h.revision = revision;
            h.renewed = Instant::now();
        }
    }

    /// Own `partition` from now on (its lease just taken at `revision`).
    fn take(self: &Arc<Self>, partition: u32, revision: u64) {
        tracing::info!(node = %self.node, partition, "took the partition");
        let task = tokio::spawn(consume::run(self.clone(), partition));
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.insert(
            partition,
            Held {
                revision,
                renewed: Instant::now(),
                task,
                ready: false,
            },
        );
    }

    fn is_ready(&self, partition: u32) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .is_some_and(|h| h.ready)
    }

    /// Serve `partition`'s tenants from now on (its checkpoint is restored).
    pub(super) fn ready(&self, partition: u32) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = owned.get_mut(&partition) {
            h.ready = true;
        }
        serve_ready(self, &owned);
    }

    /// Stop serving `partition` here (its lease is lost or about to be).
    fn release_local(&self, partition: u32) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        if owned.remove(&partition).is_some() {
            tracing::warn!(node = %self.node, partition, "stopped serving the partition");
        }
        serve_ready(self, &owned);
    }

    /// Leave the cluster gracefully (the node is stopping, its pipeline stopped): stop
    /// renewing and letting messages in, checkpoint each partition held, release its
    /// lease so another node takes it at once, and withdraw this node.
    pub async fn leave(&self) {
        if let Some(task) = self
            .membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        for p in self.owned() {
            self.hand_over(p).await;
        }
        if let Err(e) = self.nodes.delete(&self.node).await {
            tracing::warn!(node = %self.node, "cannot withdraw from the nodes: {e}");
        }
    }

    /// Whether `partition`'s lease in the bucket names this node now.
    pub(super) async fn lease_is_mine(&self, partition: u32) -> Result<bool, ClusterError> {
        let entry = self
            .leases
            .entry(names::lease_key(partition).as_str())
            .await
            .map_err(|e| ClusterError::js("cannot read a lease")(boxed(e)))?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<Owner>(&e.value).ok())
            .is_some_and(|o| o.node == self.node))
    }

    /// Give `partition` up: stop letting its messages in, checkpoint it, release its
    /// lease (so the next owner need not wait for it to expire), stop serving it.
    async fn hand_over(&self, partition: u32) {
        let revision = {
            let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            let Some(h) = owned.get(&partition) else {
                return;
            };
            h.task.abort();
            h.revision
        };
        if let Err(e) = self.checkpoint(partition).await {
            tracing::error!(node = %self.node, partition, "no checkpoint at the hand-over (the next owner replays from the one before): {e}");
        }
        let key = names::lease_key(partition);
        if let Err(e) = self
            .leases
            .delete_expect_revision(key.as_str(), Some(revision))
            .await
        {
            tracing::warn!(node = %self.node, partition, "cannot release the lease (it expires instead): {e}");
        }
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&partition);
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        serve_ready(self, &owned);
        tracing::info!(node = %self.node, partition, "handed the partition over");
    }

    /// Stop serving every partition whose lease was not renewed within two thirds of a
    /// lease (NATS unreachable, say): another node may take it once it expires.
    fn drop_stale_leases(&self) {
        let limit = self.lease * 2 / 3;
        let stale: Vec<u32> = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() > limit)
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            self.release_local(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_prefers_a_share_and_a_leaving_node_moves_only_its_own() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for p in 0..64 {
            let with_three = preferred(p, &three).unwrap();
            *counts.entry(with_three).or_default() += 1;
            if with_three != "c" {
                assert_eq!(preferred(p, &two), Some(with_three), "partition {p} moved");
            }
        }
        assert!(counts.values().all(|&n| n >= 10), "{counts:?}");
        assert_eq!(preferred(0, &[]), None);
    }
}
