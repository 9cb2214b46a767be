//! AER's event model and the packed batch encoding that carries events across the
//! component boundary.
//!
//! The host parses audit entries into [`Event`] values and encodes them with
//! [`encode_event`] into one buffer per batch ([`BatchWriter`]); the SDK inside a plugin
//! decodes that buffer with [`decode_batch`] into borrowed [`EventRef`] views without
//! copying a string. The byte layout is documented in `wit/ENCODING.md`.
//! [`baseline`] holds the rolling statistics of the host's `baseline` service, and
//! [`varint`] the variable-length integers of the compact state encodings, [`slack`]
//! how a Slack id is recognised.
#![deny(missing_docs)]

pub mod baseline;
mod codec;
mod event;
pub mod geo;
pub mod slack;
pub mod time;
pub mod varint;

pub use codec::{
    BatchWriter, DecodeError, EventEncoder, MAGIC, decode_batch, decode_event, encode_event,
    encoded_action, encoded_action_bytes, encoded_id, encoded_time_ms,
};
pub use event::{Context, ContextRef, Entity, EntityRef, Event, EventRef, Location, LocationRef};
