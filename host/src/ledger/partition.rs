//! A cluster partition's pipeline records, for its checkpoint: every pipeline record of
//! the partition's tenants (their inbox, plugin state pages, cursors, findings, decision
//! queue and memory, decisions, pending responses, action log, dead letters, reviews...)
//! and, beside them, the stream sequence they cover. Read with the state journal folded and the
//! tenants' pipeline held still (the daemon's part), replaced in one atomic batch.

use super::keys::{self, kind};
use super::{Ledger, LedgerError, SharedRecord};

/// Kinds of pipeline record under `kind`+tenant that a checkpoint carries.
fn partition_kinds() -> impl Iterator<Item = u8> {
    keys::TENANT_PIPELINE_KINDS
        .into_iter()
        .chain([kind::STATE_PAGE])
}

impl Ledger {
    /// The pipeline records of `tenants` (a partition's). The state journal must be
    /// folded first.
    pub fn partition_records(&self, tenants: &[String]) -> Result<Vec<SharedRecord>, LedgerError> {
        let mut out = Vec::new();
        for t in tenants {
            for k in partition_kinds() {
                for r in self.pipeline.scan_prefix(keys::key(k, &[t.as_bytes()])) {
                    let (key, value) = r?;
                    out.push((key.to_vec(), value.to_vec()));
                }
            }
        }
        Ok(out)
    }

    /// Replace the pipeline records of `tenants` with `records` (a checkpoint's) and set
    /// `partition`'s stream cursor to `stream_seq` (the checkpoint's), in one atomic
    /// batch, durable on return. A record that belongs to none of the tenants is
    /// refused, and nothing is written. The state journal must be folded first.
    pub fn replace_partition_records(
        &self,
        tenants: &[String],
        (partition, stream_seq): (u32, u64),
        records: &[SharedRecord],
    ) -> Result<(), LedgerError> {
        for (key, _) in records {
            let ours = key
                .first()
                .is_some_and(|k| partition_kinds().any(|p| p == *k))
                && keys::tenant_of(key).is_some_and(|t| tenants.contains(&t));
            if !ours {
                return Err(LedgerError::MalformedKey { what: "checkpoint" });
            }
        }
        let mut batch = sled::Batch::default();
        for (key, _) in self.partition_records(tenants)? {
            batch.remove(key);
        }
        batch.insert(keys::stream_cursor(partition), &stream_seq.to_be_bytes());
        for (key, value) in records {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.pipeline.apply_batch(batch)?;
        self.flush()
    }
}
