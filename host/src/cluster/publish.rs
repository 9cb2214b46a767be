//! Ingest on a cluster node: a request's events go to the events stream, under their
//! tenant's partition, in messages of at most [`MESSAGE_BYTES`], each with a message id
//! made from its tenant and event ids (so a retried request is deduplicated by
//! JetStream), and the answer waits for every message's acknowledgement.

use std::collections::HashSet;

use async_nats::jetstream::message::PublishMessage;
use sha2::{Digest as _, Sha256};

use super::{Cluster, ClusterError, boxed, names};
use crate::ingest::{Encoded, Storable};

/// Largest message the node publishes (events past it go in the next message; one
/// event larger than this goes alone). NATS servers take 1 MiB by default.
pub const MESSAGE_BYTES: usize = 512 << 10;

/// What publishing a request's events did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// Events in messages the stream stored.
    pub accepted: usize,
    /// Events repeated in the request, or in messages the stream already had (a retry).
    pub duplicates: usize,
    /// Stream sequence of the first message stored, if any.
    pub first_stream_seq: Option<u64>,
    /// Stream sequence of the last message stored, if any.
    pub last_stream_seq: Option<u64>,
}

/// One event as the stream carries it: its wire encoding.
pub(super) struct Wire<'a>(pub &'a [u8]);

impl Storable for Wire<'_> {
    fn id(&self) -> &str {
        aer_wire::encoded_id(self.0).unwrap_or_default()
    }

    fn encoded<'s>(&'s self, _: &'s mut Vec<u8>) -> &'s [u8] {
        self.0
    }
}

/// A message's events as the inbox stores a chunk: a count, then each event's length
/// and encoding (little-endian `u32`s).
fn encode(events: &[&Encoded]) -> Vec<u8> {
    let len = 4 + events.iter().map(|e| 4 + e.bytes.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        out.extend_from_slice(&(e.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.bytes);
    }
    out
}

/// The events of a message, or `None` if it is not one this host wrote (its framing
/// or an event's id does not parse).
pub(super) fn decode(payload: &[u8]) -> Option<Vec<Wire<'_>>> {
    let ranges = crate::ledger::inbox::chunk_entries(payload)?;
    let events: Vec<Wire<'_>> = ranges.into_iter().map(|r| Wire(&payload[r])).collect();
    events
        .iter()
        .all(|e| aer_wire::encoded_id(e.0).is_some())
        .then_some(events)
}

/// The message id of `events` of `tenant`: the same for the same events, whichever node
/// publishes them.
fn message_id(tenant: &str, events: &[&Encoded]) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    for e in events {
        h.update([0]);
        h.update(e.id().as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

impl Cluster {
    /// Publish `tenant`'s accepted events and wait for the stream's acknowledgement of
    /// every message. An error means some may be stored and some not: the client
    /// retries the request, and what was stored is recognised by message and event id.
    pub async fn publish(
        &self,
        tenant: &str,
        events: &[Encoded],
    ) -> Result<Published, ClusterError> {
        let mut out = Published::default();
        let mut seen = HashSet::new();
        let mut messages: Vec<Vec<&Encoded>> = Vec::new();
        let mut size = 0;
        for e in events {
            if !seen.insert(e.id()) {
                out.duplicates += 1;
                continue;
            }
            let bytes = 4 + e.bytes.len();
            match messages.last_mut() {
                Some(m) if size + bytes <= MESSAGE_BYTES => {
                    m.push(e);
                    size += bytes;
                }
                _ => {
                    messages.push(vec![e]);
                    size = 4 + bytes;
                }
            }
        }
        let subject = names::event_subject(self.partition(tenant), tenant);
        let mut acks = Vec::with_capacity(messages.len());
        for m in &messages {
            let publish = PublishMessage::build()
                .message_id(message_id(tenant, m))
                .payload(encode(m).into());
            let ack = self
                .js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| ClusterError::js("cannot publish events")(boxed(e)))?;
            acks.push((m.len(), ack));
        }
        for (n, ack) in acks {
            let ack = ack
                .await
                .map_err(|e| ClusterError::js("the stream did not acknowledge events")(boxed(e)))?;
            if ack.duplicate {
                out.duplicates += n;
            } else {
                out.accepted += n;
                out.first_stream_seq.get_or_insert(ack.sequence);
                out.last_stream_seq = Some(ack.sequence);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, pad: usize) -> Encoded {
        let e = crate::Event {
            id: id.into(),
            time_ms: 1,
            action: "file_downloaded".into(),
            actor: aer_wire::Entity {
                kind: "user".into(),
                id: "W1".into(),
                ..Default::default()
            },
            details: vec![("pad".into(), "x".repeat(pad))],
            ..Default::default()
        };
        let mut bytes = Vec::new();
        aer_wire::encode_event(&e, &mut bytes);
        Encoded { time_ms: 1, bytes }
    }

    #[test]
    fn a_message_decodes_to_its_events_and_a_foreign_one_to_nothing() {
        let (a, b) = (event("a", 10), event("b", 10));
        let payload = encode(&[&a, &b]);
        let back = decode(&payload).unwrap();
        assert_eq!(back.iter().map(|w| w.id()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(decode(&payload[..payload.len() - 1]).is_none(), "cut short");
        assert!(decode(b"{\"not\": \"ours\"}").is_none());
        assert_eq!(message_id("acme", &[&a, &b]), message_id("acme", &[&a, &b]));
        assert_ne!(
            message_id("acme", &[&a, &b]),
            message_id("other", &[&a, &b])
        );
    }
}
