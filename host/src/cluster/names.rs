//! The JetStream stream, buckets and subjects a cluster uses, created by the first node
//! that needs them.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};

use super::{ClusterError, boxed};

/// The stream of accepted events.
pub const EVENTS: &str = "AER_EVENTS";
/// The cluster's settings (the partition count).
pub const CLUSTER: &str = "aer-cluster";
/// Live nodes, each renewing its entry (expires after a lease without renewal).
pub const NODES: &str = "aer-nodes";
/// Partition leases (`p<n>` → [`super::Owner`]; expire after a lease without renewal).
pub const LEASES: &str = "aer-leases";
/// Tenants' records, one entry per tenant.
pub const TENANTS: &str = "aer-tenants";
/// Effects claimed by idempotency key ([`super::effects`]).
pub const EFFECTS: &str = "aer-effects";
/// Plugin components by SHA-256.
pub const ARTIFACTS: &str = "aer-artifacts";
/// Partition checkpoints (`p<n>`).
pub const CHECKPOINTS: &str = "aer-checkpoints";

/// How long JetStream remembers a message id: a client retrying an ingest request
/// within it is not stored twice by the stream (the owner's inbox also skips event ids
/// it has stored).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The subject of `tenant`'s events in `partition`.
pub fn event_subject(partition: u32, tenant: &str) -> String {
    format!("aer.events.{partition}.{tenant}")
}

/// The subjects of every tenant's events in `partition`.
pub fn partition_subjects(partition: u32) -> String {
    format!("aer.events.{partition}.*")
}

/// The tenant of an event subject of `partition`, if it is one.
pub fn tenant_of_subject(subject: &str, partition: u32) -> Option<&str> {
    let rest = subject.strip_prefix("aer.events.")?;
    let (p, tenant) = rest.split_once('.')?;
    (p.parse::<u32>().ok()? == partition && crate::daemon::tenants::valid_name(tenant))
        .then_some(tenant)
}

/// The lease key of `partition`.
pub fn lease_key(partition: u32) -> String {
    format!("p{partition}")
}

/// The events stream, created if missing. Its discard policy is `new`: when full it
/// refuses publishes (ingest answers 503) rather than dropping events nobody has let
/// in yet.
pub async fn events_stream(js: &jetstream::Context) -> Result<stream::Stream, ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: EVENTS.to_owned(),
        description: Some("AER: accepted events, by tenant partition".to_owned()),
        subjects: vec!["aer.events.>".to_owned()],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::js(format!("cannot open the stream {EVENTS}"))(boxed(e)))
}

/// Bucket `name`, created if missing (entries expire after `max_age`; zero: never).
pub async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name.to_owned(),
        history: 1,
        max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::js(format!("cannot open the bucket {name}"))(boxed(e)))
}

/// Object store `name`, created if missing.
pub async fn object_store(
    js: &jetstream::Context,
    name: &str,
    what: &str,
) -> Result<object_store::ObjectStore, ClusterError> {
    if let Ok(store) = js.get_object_store(name).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: name.to_owned(),
        description: Some(format!("AER: {what}")),
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::js(format!("cannot open the object store {name}"))(boxed(e)))
}

/// Record the partition count if this is the first node, else check this node's
/// against it (a different count would send a tenant's events to another partition).
pub async fn check_partitions(js: &jetstream::Context, ours: u32) -> Result<(), ClusterError> {
    let settings = bucket(js, CLUSTER, Duration::ZERO).await?;
    if settings
        .create("partitions", ours.to_string().into())
        .await
        .is_ok()
    {
        return Ok(());
    }
    let stored = settings
        .get("partitions")
        .await
        .map_err(|e| ClusterError::js("cannot read the cluster's partition count")(boxed(e)))?;
    let cluster = stored
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
        .unwrap_or(0);
    if cluster == ours {
        Ok(())
    } else {
        Err(ClusterError::Partitions { ours, cluster })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_subject_names_its_partition_and_tenant() {
        let s = event_subject(7, "acme");
        assert_eq!(tenant_of_subject(&s, 7), Some("acme"));
        assert_eq!(
            tenant_of_subject(&s, 6),
            None,
            "another partition's subject"
        );
        assert_eq!(tenant_of_subject("aer.events.7.Bad*", 7), None);
        assert_eq!(tenant_of_subject("other.7.acme", 7), None);
    }
}
