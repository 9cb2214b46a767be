//! The owner of a partition lets its messages into the local inbox: an ordered
//! consumer over the partition's subjects from the message after the inbox's stream
//! cursor, each message stored with its stream sequence in one atomic batch (so a
//! message delivered again, after a restart or a reconnection, is let in once). A
//! tenant whose inbox is full holds the partition's consumer until its pipeline has
//! caught up: the stream keeps the rest.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures_util::StreamExt as _;

use super::{Cluster, ClusterError, boxed, names, publish};
use crate::ledger::inbox::InboxError;

/// How long a full inbox is waited on before trying again.
const FULL_WAIT: Duration = Duration::from_millis(100);

/// Take over `partition` (its latest checkpoint restored), then let its messages in,
/// checkpointing it as they go, until the task is aborted (the lease is lost).
pub(super) async fn run(cluster: Arc<Cluster>, partition: u32) {
    while let Err(e) = cluster.restore(partition).await {
        tracing::error!(node = %cluster.node, partition, "cannot restore the partition: {e}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cluster.ready(partition);
    let daemon = cluster.daemon.clone();
    let count = cluster.partitions;
    match tokio::task::spawn_blocking(move || daemon.queue_partition_effects(partition, count))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(node = %cluster.node, partition, "cannot queue the partition's undone effects: {e}")
        }
        Err(e) => {
            tracing::error!(node = %cluster.node, partition, "cannot queue the partition's undone effects: {e}")
        }
    }
    loop {
        if let Err(e) = follow(&cluster, partition).await {
            tracing::warn!(node = %cluster.node, partition, "reading the partition's events: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(cluster: &Arc<Cluster>, partition: u32) -> Result<(), ClusterError> {
    let daemon = cluster.daemon.clone();
    let from = tokio::task::spawn_blocking(move || daemon.inbox.stream_cursor(partition))
        .await?
        .map_err(crate::daemon::DaemonError::from)?;
    let consumer = cluster
        .events
        .create_consumer(OrderedConfig {
            filter_subject: names::partition_subjects(partition),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::js("cannot read the partition's events")(boxed(e)))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ClusterError::js("cannot read the partition's events")(boxed(e)))?;
    let every = Duration::from_millis(cluster.daemon.config.cluster.checkpoint_ms);
    let mut checkpoints = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Between two messages: the checkpoint's records and stream cursor agree.
        let message = tokio::select! {
            message = messages.next() => message,
            _ = checkpoints.tick() => {
                if let Err(e) = cluster.checkpoint(partition).await {
                    tracing::warn!(node = %cluster.node, partition, "checkpoint: {e}");
                }
                continue;
            }
        };
        let Some(message) = message else {
            return Ok(());
        };
        let message = message
            .map_err(|e| ClusterError::js("cannot read the partition's events")(boxed(e)))?;
        let info = message
            .info()
            .map_err(|e| ClusterError::js("a message without its stream sequence")(e))?;
        // Messages of the partition in the stream after this one: its lag.
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq <= from {
            continue;
        }
        let subject = message.subject.to_string();
        let payload = message.payload.clone();
        let daemon = cluster.daemon.clone();
        let node = cluster.node.clone();
        let lock = cluster.letting_in.clone();
        tokio::task::spawn_blocking(move || {
            let _one = lock.lock().unwrap_or_else(|e| e.into_inner());
            let_in(&daemon, &node, (partition, seq), &subject, &payload)
        })
        .await??;
        cluster
            .daemon
            .metrics
            .partition_let_in(partition, seq, pending);
        cluster.lag(partition, pending);
        cluster.daemon.wake.notify();
    }
}

/// Store one message's events (or, for one this host cannot read, only its sequence,
/// so it is passed over once and said why), waiting while the tenant's inbox is full.
fn let_in(
    daemon: &crate::daemon::Daemon,
    node: &str,
    (partition, seq): (u32, u64),
    subject: &str,
    payload: &[u8],
) -> Result<(), ClusterError> {
    let tenant = names::tenant_of_subject(subject, partition);
    let events = publish::decode(payload);
    let (Some(tenant), Some(events)) = (tenant, events) else {
        tracing::error!(%node, partition, seq, %subject, "a message in the events stream this host did not write: passed over");
        daemon
            .inbox
            .pass_over_stream(partition, seq)
            .map_err(crate::daemon::DaemonError::from)?;
        return Ok(());
    };
    let bound = daemon.config.ingest.max_inbox_events;
    loop {
        let processed = daemon.processed_seq(tenant)?;
        match daemon
            .inbox
            .store_from_stream(tenant, &events, (processed, bound), (partition, seq))
        {
            Ok(stored) => {
                if stored.accepted > 0 {
                    daemon.accepted(tenant, stored.accepted);
                }
                return Ok(());
            }
            Err(InboxError::Full { .. }) => std::thread::sleep(FULL_WAIT),
            Err(e) => return Err(crate::daemon::DaemonError::from(e).into()),
        }
    }
}
