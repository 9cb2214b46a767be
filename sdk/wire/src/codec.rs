//! The packed batch encoding (layout in `wit/ENCODING.md`).
//!
//! Little-endian throughout. A batch is `MAGIC`, a `u32` event count, then the events;
//! each event starts with its own `u32` byte length so a reader can skip it. Strings are
//! a `u32` byte length and UTF-8 bytes.

use crate::event::{ContextRef, DetailsRef, EntityRef, Event, EventRef, LocationRef};

/// The first four bytes of every batch: format name and version.
pub const MAGIC: [u8; 4] = *b"AEB1";

const HAS_TARGET: u8 = 1;

/// Why a batch could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer does not start with [`MAGIC`].
    BadMagic,
    /// The buffer ended inside event `index`.
    Truncated {
        /// Index of the event being decoded.
        index: u32,
    },
    /// A string in event `index` is not UTF-8.
    NotUtf8 {
        /// Index of the event being decoded.
        index: u32,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadMagic => write!(f, "event batch does not start with AEB1"),
            DecodeError::Truncated { index } => write!(f, "event batch truncated in event {index}"),
            DecodeError::NotUtf8 { index } => {
                write!(f, "event {index} has a string that is not UTF-8")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Append one encoded event (length prefix included) to `out`.
///
/// The host may encode each event once, keep the bytes, and build batches by
/// concatenation with [`BatchWriter::push_encoded`].
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    let mut w = EventEncoder::begin(out, event.time_ms, event.target.is_some());
    w.str(&event.id);
    w.str(&event.action);
    for entity in std::iter::once(&event.actor).chain(event.target.as_ref()) {
        for s in [&entity.kind, &entity.id, &entity.name, &entity.email] {
            w.str(s);
        }
    }
    let c = &event.context;
    let l = &c.location;
    for s in [
        &c.ip,
        &c.user_agent,
        &c.session_id,
        &l.kind,
        &l.id,
        &l.name,
        &l.domain,
    ] {
        w.str(s);
    }
    w.details(event.details.len());
    for (k, v) in &event.details {
        w.detail(&[k], v);
    }
    w.finish();
}

/// Writes one event in [`encode_event`]'s encoding field by field, for a producer that
/// holds the event's text in another shape (the host's parser writes straight from
/// its input). The fields go in [`encode_event`]'s order: id, action, the actor's kind,
/// id, name and email, the target's four when there is one, then the context's ip,
/// user agent and session id, the location's kind, id, name and domain, then the
/// details.
pub struct EventEncoder<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
}

impl<'o> EventEncoder<'o> {
    /// Begin an event at the end of `out`.
    pub fn begin(out: &'o mut Vec<u8>, time_ms: i64, has_target: bool) -> Self {
        let start = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&time_ms.to_le_bytes());
        out.push(if has_target { HAS_TARGET } else { 0 });
        EventEncoder { out, start }
    }

    /// The next string field.
    pub fn str(&mut self, s: &str) {
        put_str(self.out, s);
    }

    /// How many details follow.
    pub fn details(&mut self, count: usize) {
        self.out.extend_from_slice(&len_u32(count).to_le_bytes());
    }

    /// One detail: its name (the concatenation of `name`'s parts) and its value.
    pub fn detail(&mut self, name: &[&str], value: &str) {
        let len: usize = name.iter().map(|p| p.len()).sum();
        self.out.extend_from_slice(&len_u32(len).to_le_bytes());
        for part in name {
            self.out.extend_from_slice(part.as_bytes());
        }
        put_str(self.out, value);
    }

    /// Write the event's length in front of it.
    pub fn finish(self) {
        let body = len_u32(self.out.len() - self.start - 4);
        self.out[self.start..self.start + 4].copy_from_slice(&body.to_le_bytes());
    }
}

fn len_u32(len: usize) -> u32 {
    // Events are bounded far below 4 GiB by ingest limits; saturate rather than wrap.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&len_u32(s.len()).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The action of one event encoded by [`encode_event`], read without decoding the rest
/// (to route events by subscription cheaply).
pub fn encoded_action(encoded: &[u8]) -> Option<&str> {
    std::str::from_utf8(encoded_action_bytes(encoded)?).ok()
}

/// [`encoded_action`] as bytes, not checked for UTF-8 (nor is the id before them):
/// enough to compare with action names, which are text, once per event per detector.
pub fn encoded_action_bytes(encoded: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(encoded, 4 + 8 + 1, 0);
    r.lone_bytes().ok()?; // id
    r.lone_bytes().ok()
}

/// The id of one event encoded by [`encode_event`], read without decoding the rest.
pub fn encoded_id(encoded: &[u8]) -> Option<&str> {
    let mut r = Reader::new(encoded, 4 + 8 + 1, 0);
    r.lone_str().ok()
}

/// The event time of one event encoded by [`encode_event`].
pub fn encoded_time_ms(encoded: &[u8]) -> Option<i64> {
    let b: [u8; 8] = encoded.get(4..12)?.try_into().ok()?;
    Some(i64::from_le_bytes(b))
}

/// Builds one batch buffer.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchWriter { buf, count: 0 }
    }

    /// Encode and append one event.
    pub fn push(&mut self, event: &Event) {
        encode_event(event, &mut self.buf);
        self.count += 1;
    }

    /// Append one event already encoded by [`encode_event`].
    pub fn push_encoded(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
        self.count += 1;
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Finish the batch and return its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Decode one event as [`encode_event`] wrote it (as the host stores each), checking
/// every length and string: a batch's entry read in place, without copying it into a
/// batch first.
pub fn decode_event(encoded: &[u8]) -> Result<EventRef<'_>, DecodeError> {
    let mut r = Reader::new(encoded, 0, 0);
    let len = r.u32()? as usize;
    let body = r.take(len)?;
    Reader::new(body, 0, 0).event()
}

/// Decode a whole batch into borrowed views, checking every length and string.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<EventRef<'_>>, DecodeError> {
    if bytes.len() < 8 || bytes[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let count = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    // Never trust the count for the allocation: each event takes at least 4 bytes.
    let mut events = Vec::with_capacity((count as usize).min(bytes.len() / 4));
    let mut r = Reader::new(bytes, 8, 0);
    for index in 0..count {
        r.index = index;
        let len = r.u32()? as usize;
        let body = r.take(len)?;
        let mut e = Reader::new(body, 0, index);
        events.push(e.event()?);
    }
    Ok(events)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    index: u32,
    /// Bytes known to be UTF-8: `bytes[text_at..text_at + text.len()]`.
    text: &'a str,
    text_at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(DecodeError::Truncated { index: self.index })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn new(bytes: &'a [u8], pos: usize, index: u32) -> Self {
        Reader {
            bytes,
            pos,
            index,
            text: "",
            text_at: 0,
        }
    }

    /// The next string, checked for UTF-8 together with the rest of the buffer.
    ///
    /// An event's strings are short, and checking each on its own is mostly per-call and
    /// per-byte overhead. So the first string not yet known to be UTF-8 is checked with
    /// everything after it at once: the strings that follow and their length prefixes,
    /// whose bytes are UTF-8 too (ASCII) unless one is 0x80 or more, e.g. a length of
    /// 128 to 255. That check ends at the first byte that is not UTF-8; the strings up to
    /// it come from the checked text, and the next string past it starts a new check.
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.u32()? as usize;
        let start = self.pos;
        self.take(n)?;
        if let Some(s) = self.checked(start) {
            return Ok(s);
        }
        let rest = &self.bytes[start..];
        self.text = match std::str::from_utf8(rest) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        };
        self.text_at = start;
        self.checked(start)
            .ok_or(DecodeError::NotUtf8 { index: self.index })
    }

    /// `bytes[start..pos]` from the checked text, if it lies within it.
    fn checked(&self, start: usize) -> Option<&'a str> {
        let from = start.checked_sub(self.text_at)?;
        self.text.get(from..self.pos - self.text_at)
    }

    /// The next string, checked on its own (to read one or two fields of an event).
    fn lone_str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.lone_bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError::NotUtf8 { index: self.index })
    }

    /// The next string's bytes, unchecked.
    fn lone_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn entity(&mut self) -> Result<EntityRef<'a>, DecodeError> {
        Ok(EntityRef {
            kind: self.str()?,
            id: self.str()?,
            name: self.str()?,
            email: self.str()?,
        })
    }

    fn event(&mut self) -> Result<EventRef<'a>, DecodeError> {
        let t = self.take(8)?;
        let time_ms = i64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
        let flags = self.take(1)?[0];
        let id = self.str()?;
        let action = self.str()?;
        let actor = self.entity()?;
        let target = if flags & HAS_TARGET != 0 {
            Some(self.entity()?)
        } else {
            None
        };
        let context = ContextRef {
            ip: self.str()?,
            user_agent: self.str()?,
            session_id: self.str()?,
            location: LocationRef {
                kind: self.str()?,
                id: self.str()?,
                name: self.str()?,
                domain: self.str()?,
            },
        };
        let count = self.u32()?;
        let start = self.pos;
        for _ in 0..count {
            self.str()?;
            self.str()?;
        }
        let details = DetailsRef {
            count,
            bytes: &self.bytes[start..self.pos],
        };
        Ok(EventRef {
            id,
            time_ms,
            action,
            actor,
            target,
            context,
            details,
        })
    }
}

/// Iterates the key/value pairs of [`DetailsRef`] (already validated by the decoder).
pub(crate) struct DetailsIter<'a> {
    reader: Reader<'a>,
    left: u32,
}

impl<'a> DetailsIter<'a> {
    pub(crate) fn new(details: DetailsRef<'a>) -> Self {
        DetailsIter {
            reader: Reader::new(details.bytes, 0, 0),
            left: details.count,
        }
    }
}

impl<'a> Iterator for DetailsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let k = self.reader.str().ok()?;
        let v = self.reader.str().ok()?;
        Some((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Context, Entity};

    fn sample(i: i64) -> Event {
        Event {
            id: format!("ev-{i}"),
            time_ms: 1_700_000_000_000 + i,
            action: "file_downloaded".into(),
            actor: Entity {
                kind: "user".into(),
                id: "U1".into(),
                name: "Ada".into(),
                email: "ada@example.com".into(),
            },
            target: (i % 2 == 0).then(|| Entity {
                kind: "file".into(),
                id: format!("F{i}"),
                name: "plan.pdf".into(),
                email: String::new(),
            }),
            context: Context {
                ip: "1.23.45.678".into(),
                user_agent: "ua".into(),
                session_id: "42".into(),
                ..Default::default()
            },
            details: vec![
                ("reason".into(), "[\"tor\"]".into()),
                ("k".into(), "é".into()),
            ],
        }
    }

    #[test]
    fn round_trip_preserves_every_field() {
        let events: Vec<Event> = (0..5).map(sample).collect();
        let mut w = BatchWriter::new();
        for e in &events {
            w.push(e);
        }
        let bytes = w.finish();
        let decoded = decode_batch(&bytes).expect("decodes");
        let owned: Vec<Event> = decoded.iter().map(EventRef::to_owned_event).collect();
        assert_eq!(owned, events);
        assert_eq!(decoded[0].detail("k"), Some("é"));
        assert_eq!(decoded[0].detail("missing"), None);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut w = BatchWriter::new();
        w.push(&sample(0));
        w.push(&sample(1));
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn one_encoded_event_decodes_in_place() {
        for i in 0..4 {
            let mut buf = Vec::new();
            encode_event(&sample(i), &mut buf);
            let decoded = decode_event(&buf).expect("decodes");
            assert_eq!(decoded.to_owned_event(), sample(i));
            for cut in 0..buf.len() {
                assert!(decode_event(&buf[..cut]).is_err(), "cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn action_and_time_of_an_encoded_event() {
        let mut buf = Vec::new();
        encode_event(&sample(3), &mut buf);
        assert_eq!(encoded_action(&buf), Some("file_downloaded"));
        assert_eq!(encoded_action_bytes(&buf), Some(&b"file_downloaded"[..]));
        assert_eq!(encoded_time_ms(&buf), Some(1_700_000_000_003));
        assert_eq!(encoded_action(&buf[..10]), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_round_trip(
            fields in proptest::collection::vec(
                proptest::collection::vec(proptest::char::any(), 0..300),
                18,
            )
        ) {
            let mut s = fields.into_iter().map(String::from_iter);
            let mut next = || s.next().unwrap_or_default();
            let mut e = sample(0);
            e.id = next();
            e.action = next();
            e.actor = Entity { kind: next(), id: next(), name: next(), email: next() };
            e.target = Some(Entity { kind: next(), id: next(), name: next(), email: next() });
            e.context.ip = next();
            e.context.user_agent = next();
            e.context.session_id = next();
            e.context.location.name = next();
            e.details = vec![(next(), next()), (next(), next())];
            let mut w = BatchWriter::new();
            w.push(&e);
            let bytes = w.finish();
            let decoded = decode_batch(&bytes).expect("decodes");
            proptest::prop_assert_eq!(decoded[0].to_owned_event(), e);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_batch(&bytes);
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = decode_batch(&with_magic);
            let _ = encoded_action(&bytes);
            let _ = encoded_action_bytes(&bytes);
        }
    }

    #[test]
    fn huge_count_does_not_allocate_or_panic() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::Truncated { index: 0 })
        );
    }

    /// A string of `n` characters, some of them more than one byte.
    fn text(n: usize, seed: usize) -> String {
        (0..n)
            .map(|i| ['a', 'é', 'Z', '€', '7', '𝄞', ' '][(i + seed) % 7])
            .collect()
    }

    #[test]
    fn long_and_non_ascii_strings_round_trip() {
        // Lengths whose prefixes have a byte of 0x80 or more (128-255, 384, 40_000) end a
        // check of the rest of the event; the strings after them start a new one.
        let mut events = Vec::new();
        for (i, n) in [0usize, 1, 40, 127, 128, 200, 255, 256, 384, 40_000]
            .into_iter()
            .enumerate()
        {
            let mut e = sample(i as i64);
            e.actor.name = text(n, i);
            e.context.user_agent = text(n / 2 + 100, i + 1);
            e.details.push((text(3, i), text(n, i + 2)));
            events.push(e);
        }
        let mut w = BatchWriter::new();
        for e in &events {
            w.push(e);
        }
        let bytes = w.finish();
        let decoded = decode_batch(&bytes).expect("decodes");
        let owned: Vec<Event> = decoded.iter().map(EventRef::to_owned_event).collect();
        assert_eq!(owned, events);
        let last = &decoded[events.len() - 1];
        assert_eq!(last.detail(&text(3, 9)), Some(text(40_000, 11).as_str()));
    }

    #[test]
    fn invalid_utf8_after_a_long_string_is_reported() {
        let mut e = sample(1);
        e.context.user_agent = text(200, 0);
        e.context.location.domain = "bad".into();
        let mut w = BatchWriter::new();
        w.push(&sample(0));
        w.push(&e);
        let mut bytes = w.finish();
        let at = bytes
            .windows(3)
            .rposition(|b| b == b"bad")
            .expect("domain is in the batch");
        bytes[at + 1] = 0xC3; // a lead byte followed by 'd': not UTF-8
        assert_eq!(decode_batch(&bytes), Err(DecodeError::NotUtf8 { index: 1 }));
        bytes[at + 1] = b'a';
        assert!(decode_batch(&bytes).is_ok());
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut w = BatchWriter::new();
        w.push(&sample(1));
        let mut bytes = w.finish();
        // The id string's first byte: magic(4) count(4) len(4) time(8) flags(1) idlen(4).
        bytes[25] = 0xff;
        assert_eq!(decode_batch(&bytes), Err(DecodeError::NotUtf8 { index: 0 }));
    }
}
