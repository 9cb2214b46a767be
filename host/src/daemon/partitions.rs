//! Which tenants this daemon serves. A single node serves every tenant; a cluster node
//! (`crate::cluster`) only the tenants of the partitions it owns right now, so that its
//! pipeline workers and pull sources leave every other tenant to that tenant's owner.

use std::collections::BTreeSet;
use std::sync::RwLock;

use sha2::{Digest as _, Sha256};

/// The partition `tenant` belongs to, of `count`: the same on every node and in every
/// version (the first four bytes of the name's SHA-256, big-endian, modulo `count`).
pub fn partition_of(tenant: &str, count: u32) -> u32 {
    let digest = Sha256::digest(tenant.as_bytes());
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    head % count.max(1)
}

/// The partitions this node owns, when it is one of a cluster.
#[derive(Debug, Default)]
pub struct Served {
    /// `None`: a single node, serving every tenant.
    cluster: RwLock<Option<Owned>>,
}

#[derive(Debug)]
struct Owned {
    count: u32,
    partitions: BTreeSet<u32>,
}

impl Served {
    /// Serve only the partitions later [`Served::set`] names, of `count`.
    pub fn clustered(&self, count: u32) {
        *self.cluster.write().unwrap_or_else(|e| e.into_inner()) = Some(Owned {
            count,
            partitions: BTreeSet::new(),
        });
    }

    /// The partitions owned from now on.
    pub fn set(&self, partitions: impl IntoIterator<Item = u32>) {
        if let Some(owned) = self
            .cluster
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            owned.partitions = partitions.into_iter().collect();
        }
    }

    /// Whether this node runs `tenant`'s pipeline and sources now.
    pub fn serves(&self, tenant: &str) -> bool {
        match &*self.cluster.read().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(owned) => owned
                .partitions
                .contains(&partition_of(tenant, owned.count)),
        }
    }
}

/// A checkpoint of a partition as the daemon reads and restores it: its tenants'
/// pipeline records and stream cursor.
pub type PartitionRecords = Vec<crate::ledger::SharedRecord>;

impl super::Daemon {
    /// The tenants (known to this node) of `partition` of `count`.
    pub fn partition_tenants(
        &self,
        partition: u32,
        count: u32,
    ) -> Result<Vec<String>, super::DaemonError> {
        Ok(self
            .tenants()?
            .into_iter()
            .map(|t| t.name)
            .filter(|t| partition_of(t, count) == partition)
            .collect())
    }

    /// Hold every part of `tenants`' pipelines (each detector, and the decision and
    /// response stage), waiting for batches running now, so their records stand still.
    fn hold_still(
        &self,
        tenants: &[String],
    ) -> Result<Vec<super::claims::Claim<'_>>, super::DaemonError> {
        let mut holds = Vec::new();
        for t in tenants {
            holds.push(
                self.claims
                    .hold(t, "", crate::plugin::PluginKind::Responder),
            );
            for p in self.plugins(t).map_err(super::DaemonError::from)? {
                if p.kind == crate::plugin::PluginKind::Detector {
                    holds.push(self.claims.hold(t, &p.name, p.kind));
                }
            }
        }
        Ok(holds)
    }

    /// The records of `partition` of `count` for a checkpoint, and the stream sequence
    /// of the last message they include, read with its tenants' pipelines held still
    /// and the state journal folded. The caller keeps new messages of the partition
    /// out meanwhile (it is the one letting them in).
    pub fn partition_checkpoint(
        &self,
        partition: u32,
        count: u32,
    ) -> Result<(u64, PartitionRecords), super::DaemonError> {
        let tenants = self.partition_tenants(partition, count)?;
        let _still = self.hold_still(&tenants)?;
        let _reviews = self.reviews.lock().unwrap_or_else(|e| e.into_inner());
        self.state.fold()?;
        let seq = self.inbox.stream_cursor(partition)?;
        Ok((seq, self.ledger.partition_records(&tenants)?))
    }

    /// Replace what this node holds of `partition` of `count` with a checkpoint's
    /// records, to go on from stream sequence `stream_seq` (none and 0: the partition
    /// starts empty, from the stream's first message), and have the workers look
    /// again.
    pub fn restore_partition(
        &self,
        (partition, count): (u32, u32),
        stream_seq: u64,
        records: &PartitionRecords,
    ) -> Result<(), super::DaemonError> {
        let tenants = self.partition_tenants(partition, count)?;
        {
            let _still = self.hold_still(&tenants)?;
            let _reviews = self.reviews.lock().unwrap_or_else(|e| e.into_inner());
            self.state.fold()?;
            self.ledger
                .replace_partition_records(&tenants, (partition, stream_seq), records)?;
            self.state.forget_cached();
            for t in &tenants {
                self.inbox.forget(t);
            }
            self.fault_memory().retain(|(t, _), _| !tenants.contains(t));
        }
        self.reopened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify();
        Ok(())
    }

    /// Queue the effects `partition` of `count` has left undone (its checkpoint's, once
    /// this node serves the partition: the executor passes over the effects of tenants
    /// it does not serve).
    pub fn queue_partition_effects(
        &self,
        partition: u32,
        count: u32,
    ) -> Result<(), super::DaemonError> {
        for key in self.ledger.unfinished_actions()? {
            if partition_of(key.tenant(), count) == partition {
                let tenant = key.tenant().to_owned();
                self.effects.push(&tenant, key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_has_one_partition_and_a_node_serves_only_those_it_owns() {
        // Fixed values: a node running another version must agree on them.
        assert_eq!(partition_of("acme", 16), 13);
        assert_eq!(partition_of("acme", 1000), 357);
        assert_eq!(partition_of("globex", 1000), 205);
        let spread: BTreeSet<u32> = (0..200)
            .map(|i| partition_of(&format!("tenant-{i}"), 8))
            .collect();
        assert_eq!(
            spread.len(),
            8,
            "200 tenants fall into every one of 8 partitions"
        );
        let served = Served::default();
        assert!(served.serves("acme"), "a single node serves every tenant");
        served.clustered(16);
        assert!(
            !served.serves("acme"),
            "a cluster node owning nothing serves nobody"
        );
        served.set([partition_of("acme", 16)]);
        assert!(served.serves("acme"));
        let other = (0..100)
            .map(|i| format!("t{i}"))
            .find(|t| partition_of(t, 16) != partition_of("acme", 16))
            .unwrap();
        assert!(!served.serves(&other));
    }
}
