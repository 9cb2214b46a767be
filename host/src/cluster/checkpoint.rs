//! Partition checkpoints in the object store `aer-checkpoints`, one object per
//! partition (`p<n>`, replaced by each new checkpoint): every pipeline record of the
//! partition's tenants and the stream sequence of the last message they include. The
//! owner writes one every `cluster.checkpoint_ms` between two messages (so the records
//! and the sequence agree) and when it hands the partition over; a node taking the
//! partition over restores the latest and lets the stream in from the message after it.
//! Detectors and decisions depend only on the events in order, so replaying from the
//! checkpoint comes to the state the last owner had.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use tokio::io::AsyncReadExt as _;

use super::{Cluster, ClusterError, boxed, names};
use crate::daemon::partitions::PartitionRecords;

/// The format's first bytes.
const MAGIC: &[u8; 8] = b"AERCKP1\n";

/// The object name of `partition`'s checkpoint.
fn object(partition: u32) -> String {
    format!("p{partition}")
}

/// A checkpoint's bytes: the magic, the stream sequence, the record count, then each
/// key and value with its length (big-endian), gzip-compressed.
fn encode(seq: u64, records: &PartitionRecords) -> Vec<u8> {
    let mut out = GzEncoder::new(Vec::new(), Compression::fast());
    let mut put = |b: &[u8]| out.write_all(b);
    let mut written = put(MAGIC)
        .and_then(|()| put(&seq.to_be_bytes()))
        .and_then(|()| put(&(records.len() as u64).to_be_bytes()));
    for (k, v) in records {
        written = written
            .and_then(|()| put(&(k.len() as u32).to_be_bytes()))
            .and_then(|()| put(k))
            .and_then(|()| put(&(v.len() as u32).to_be_bytes()))
            .and_then(|()| put(v));
    }
    // Writing to a Vec cannot fail.
    debug_assert!(written.is_ok());
    out.finish().unwrap_or_default()
}

/// A checkpoint's stream sequence and records, or why it cannot be read.
fn decode(bytes: &[u8]) -> Result<(u64, PartitionRecords), String> {
    let mut plain = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .map_err(|e| format!("not gzip: {e}"))?;
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let end = at.checked_add(n).filter(|&e| e <= plain.len());
        let end = end.ok_or("cut short")?;
        let s = &plain[at..end];
        at = end;
        Ok(s)
    };
    if take(MAGIC.len())? != MAGIC {
        return Err("not a checkpoint".into());
    }
    let u64_of = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    let u32_of = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap_or_default()) as usize;
    let seq = u64_of(take(8)?);
    let n = u64_of(take(8)?);
    let mut records = Vec::new();
    for _ in 0..n {
        let k = take(4).map(u32_of)?;
        let key = take(k)?.to_vec();
        let v = take(4).map(u32_of)?;
        let value = take(v)?.to_vec();
        records.push((key, value));
    }
    if at != plain.len() {
        return Err("bytes after the last record".into());
    }
    Ok((seq, records))
}

/// When and up to where a partition was last checkpointed (for the status).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Checkpointed {
    /// The stream sequence it covers.
    pub seq: u64,
    /// When it was written (ms since the epoch).
    pub at_ms: i64,
}

impl Cluster {
    /// Checkpoint `partition` (owned by this node, its messages held back by the
    /// caller) unless nothing was let in or processed since the last one.
    pub(super) async fn checkpoint(&self, partition: u32) -> Result<(), ClusterError> {
        let daemon = self.daemon.clone();
        let count = self.partitions;
        let lock = self.letting_in.clone();
        let (seq, records) = tokio::task::spawn_blocking(move || {
            let _still = lock.lock().unwrap_or_else(|e| e.into_inner());
            daemon.partition_checkpoint(partition, count)
        })
        .await??;
        let bytes = encode(seq, &records);
        let digest = digest(&bytes);
        if self.last_digest(partition) == Some(digest) {
            return Ok(());
        }
        // Only while the lease is this node's, here and in the bucket: a node that lost
        // it (stalled past its lease) must not overwrite the new owner's checkpoints.
        if !self.holds(partition) || !self.lease_is_mine(partition).await? {
            return Ok(());
        }
        self.checkpoints
            .put(object(partition).as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| ClusterError::js("cannot write a checkpoint")(boxed(e)))?;
        self.checkpointed(partition, seq, digest);
        // The stream keeps what a replay from this checkpoint needs, and no more; not
        // if the lease passed while the checkpoint was written (the new owner may be
        // replaying from the one before).
        if !self.lease_is_mine(partition).await? {
            return Ok(());
        }
        if let Err(e) = self
            .events
            .purge()
            .filter(names::partition_subjects(partition))
            .sequence(seq + 1)
            .await
        {
            tracing::warn!(node = %self.node, partition, "cannot trim the stream behind the checkpoint: {e}");
        }
        tracing::debug!(node = %self.node, partition, seq, records = records.len(), bytes = bytes.len(), "checkpoint written");
        Ok(())
    }

    /// Replace this node's records of `partition` with its latest checkpoint (or with
    /// nothing, if it has none yet).
    pub(super) async fn restore(&self, partition: u32) -> Result<u64, ClusterError> {
        let bytes = match self.checkpoints.get(object(partition).as_str()).await {
            Ok(mut object) => {
                let mut bytes = Vec::new();
                object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| ClusterError::js("cannot read a checkpoint")(boxed(e)))?;
                Some(bytes)
            }
            Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(ClusterError::js("cannot read a checkpoint")(boxed(e))),
        };
        let (seq, records) = match &bytes {
            Some(b) => decode(b).map_err(|e| {
                ClusterError::js(format!("the checkpoint of partition {partition}"))(e.into())
            })?,
            None => (0, Vec::new()),
        };
        let daemon = self.daemon.clone();
        let count = self.partitions;
        tokio::task::spawn_blocking(move || {
            daemon.restore_partition((partition, count), seq, &records)
        })
        .await??;
        if let Some(b) = &bytes {
            self.checkpointed(partition, seq, digest(b));
        }
        tracing::info!(node = %self.node, partition, seq, "partition restored from its checkpoint");
        Ok(seq)
    }
}

/// SHA-256 of a checkpoint's bytes (an unchanged partition is not written again).
fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_a_damaged_one_is_refused() {
        let records = vec![(b"k1".to_vec(), b"v1".to_vec()), (b"k2".to_vec(), vec![])];
        let bytes = encode(42, &records);
        assert_eq!(decode(&bytes).unwrap(), (42, records.clone()));
        let mut plain = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        let rezip = |p: &[u8]| {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(p).unwrap();
            e.finish().unwrap()
        };
        assert!(
            decode(&rezip(&plain[..plain.len() - 1])).is_err(),
            "cut short"
        );
        assert!(
            decode(&rezip(&[plain.as_slice(), b"x"].concat())).is_err(),
            "trailing bytes"
        );
        assert!(decode(b"not gzip").is_err());
    }
}
