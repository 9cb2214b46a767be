//! Event files for `aer test` and `aer replay`, read a chunk at a time and handed on in
//! event-time order, so a run's memory grows with its state, not with its history.
//!
//! NDJSON streams: events are put in time order within a window of `window` events
//! ([`REORDER_WINDOW`] unless `--reorder-window` says otherwise: enough for sources
//! written side by side); an event earlier than one already handed on stops the run
//! with an error naming its line. A JSON document (a Slack envelope, which lists the newest first,
//! or an array) is read whole and sorted.

use std::collections::BinaryHeap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, bail};

use super::{Io, utc};
use crate::ingest::{Encoded, InputError, Position};

/// Events held back to put a stream in time order.
pub const REORDER_WINDOW: usize = 65_536;
/// Events handed on at a time.
const CHUNK: usize = 4_096;

/// What a file held.
#[derive(Debug, Default)]
pub struct Streamed {
    /// Events handed on.
    pub events: u64,
    /// Lines or entries rejected (each reported on `io.err`).
    pub rejected: usize,
    /// Time of the first and last event handed on.
    pub first_ms: Option<i64>,
    /// See `first_ms`.
    pub last_ms: Option<i64>,
}

impl Streamed {
    /// Days from the first event to the last (at least one).
    pub fn days(&self) -> f64 {
        match (self.first_ms, self.last_ms) {
            (Some(a), Some(b)) => ((b - a) as f64 / 86_400_000.0).max(1.0),
            _ => 1.0,
        }
    }
}

/// Read the events of `path` and hand them to `each` in chunks, in event-time order
/// (events of equal time in file order), reporting each rejected line on `io.err`;
/// NDJSON is reordered within `window` events. `progress` is told the bytes read so far.
pub fn stream(
    path: &Path,
    io: &mut Io<'_>,
    window: usize,
    mut each: impl FnMut(&[Encoded]) -> anyhow::Result<()>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Streamed> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = Streamed::default();
    let mut handed = Vec::with_capacity(CHUNK);
    let mut hand = |e: Encoded, out: &mut Streamed| -> anyhow::Result<()> {
        out.first_ms.get_or_insert(e.time_ms);
        out.last_ms = Some(e.time_ms);
        out.events += 1;
        handed.push(e);
        if handed.len() >= CHUNK {
            each(&handed)?;
            handed.clear();
        }
        Ok(())
    };
    let report = |io: &mut Io<'_>, e: InputError| writeln!(io.err, "{}: {e}", path.display());

    if is_document(&mut reader)? {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        progress(bytes.len() as u64);
        let mut parsed = crate::ingest::parse_encoded(&bytes);
        drop(bytes);
        out.rejected = parsed.errors.len();
        for e in parsed.errors {
            report(io, e)?;
        }
        parsed.events.sort_by_key(|e| e.time_ms);
        for e in parsed.events {
            hand(e, &mut out)?;
        }
    } else {
        let mut held = BinaryHeap::new();
        let mut line = Vec::new();
        let (mut number, mut read, mut seq) = (0usize, 0u64, 0u64);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            number += 1;
            read += n as u64;
            if number % 65_536 == 0 {
                progress(read);
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if crate::ingest::is_blank(text) {
                continue;
            }
            let e = match crate::ingest::parse_one::<Encoded>(text) {
                Ok(e) => e,
                Err(reason) => {
                    out.rejected += 1;
                    report(
                        io,
                        InputError {
                            position: Position::Line(number),
                            reason,
                        },
                    )?;
                    continue;
                }
            };
            if out.last_ms.is_some_and(|last| e.time_ms < last) {
                bail!(
                    "{}: line {number}: this event (at {}) is earlier than events already run \
                     (at {}): the file is out of time order by more than {window} events; \
                     sort it by time first (or raise --reorder-window)",
                    path.display(),
                    utc(e.time_ms),
                    utc(out.last_ms.unwrap_or_default()),
                );
            }
            held.push(Held { seq, event: e });
            seq += 1;
            if held.len() > window
                && let Some(Held { event, .. }) = held.pop()
            {
                hand(event, &mut out)?;
            }
        }
        progress(read);
        while let Some(Held { event, .. }) = held.pop() {
            hand(event, &mut out)?;
        }
    }
    if !handed.is_empty() {
        each(&handed)?;
    }
    Ok(out)
}

/// Whether the input is one JSON document (an array, an envelope, or anything spread
/// over lines) rather than NDJSON: it starts with `[`, or its first line is not one
/// whole JSON value, or that value has `entries`.
fn is_document(reader: &mut impl BufRead) -> anyhow::Result<bool> {
    let buf = reader.fill_buf()?;
    let start = buf.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| buf[i]) {
        Some(b'[') => Ok(true),
        Some(b'{') => {
            let Some(end) = memchr::memchr(b'\n', buf) else {
                // One line (read whole either way), or a first line past the buffer.
                return Ok(true);
            };
            Ok(match serde_json::from_slice::<Probe>(&buf[..end]) {
                Ok(p) => p.entries.is_some(),
                Err(_) => true,
            })
        }
        _ => Ok(false),
    }
}

/// Just enough of a JSON object to tell an envelope.
#[derive(serde::Deserialize)]
struct Probe {
    entries: Option<serde::de::IgnoredAny>,
}

/// An event held back for time order: earliest first, then in file order.
struct Held {
    seq: u64,
    event: Encoded,
}

impl Held {
    fn key(&self) -> (i64, u64) {
        (self.event.time_ms, self.seq)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    /// Reversed: `BinaryHeap` pops the greatest, and the earliest must come first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key().cmp(&self.key())
    }
}
