//! Event files for `aer test` and `aer replay`, read a chunk at a time and handed on in
//! event-time order, so a run's memory grows with its state, not with its history.
//!
//! NDJSON streams: events are put in time order within a window of `window` events
//! ([`REORDER_WINDOW`] unless `--reorder-window` says otherwise: enough for sources
//! written side by side); an event earlier than one already handed on stops the run
//! with an error naming its line. A JSON document (a Slack envelope, which lists the newest first,
//! or an array) is read whole and sorted.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::SyncSender;

use anyhow::{Context as _, bail};

use super::{Io, utc};
use crate::ingest::{Encoded, InputError, Position};

/// Events held back to put a stream in time order.
pub const REORDER_WINDOW: usize = 65_536;
/// Events handed on at a time.
const CHUNK: usize = 4_096;
/// Bytes of NDJSON read and parsed (on every core) at a time.
const BLOCK_BYTES: usize = 4 << 20;

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
/// The file is read and parsed on a thread of its own while `each` runs the chunks
/// before (a few chunks ahead at most).
pub fn stream(
    path: &Path,
    io: &mut Io<'_>,
    window: usize,
    mut each: impl FnMut(&[Encoded]) -> anyhow::Result<()>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Streamed> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Sent>(4);
    std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("aer-read".into())
            .spawn_scoped(s, move || read(path, window, &tx))
            .context("cannot start the reading thread")?;
        let mut failed = None;
        for got in rx.iter() {
            match got {
                Sent::Events(chunk) => {
                    if let Err(e) = each(&chunk) {
                        failed = Some(e);
                        break;
                    }
                }
                Sent::Rejected(e) => writeln!(io.err, "{}: {e}", path.display())?,
                Sent::Progress(bytes) => progress(bytes),
            }
        }
        // Hung up: a reader still sending stops.
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the reading thread panicked"))?;
        match failed {
            Some(e) => Err(e),
            None => read,
        }
    })
}

/// What the reading thread sends.
enum Sent {
    /// The next events, in time order.
    Events(Vec<Encoded>),
    /// A line or entry that was rejected.
    Rejected(InputError),
    /// Bytes read so far.
    Progress(u64),
}

/// Read `path` and send its events, rejections and progress to `tx`.
fn read(path: &Path, window: usize, tx: &SyncSender<Sent>) -> anyhow::Result<Streamed> {
    let hung_up = |_| anyhow::anyhow!("stopped reading {}", path.display());
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
            let full = std::mem::replace(&mut handed, Vec::with_capacity(CHUNK));
            tx.send(Sent::Events(full)).map_err(hung_up)?;
        }
        Ok(())
    };
    let report = |e: InputError| tx.send(Sent::Rejected(e)).map_err(hung_up);
    let progress = |bytes: u64| tx.send(Sent::Progress(bytes)).map_err(hung_up);

    if is_document(&mut reader)? {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        progress(bytes.len() as u64)?;
        let mut parsed = crate::ingest::parse_encoded(&bytes);
        drop(bytes);
        out.rejected = parsed.errors.len();
        for e in parsed.errors {
            report(e)?;
        }
        parsed.events.sort_by_key(|e| e.time_ms);
        for e in parsed.events {
            hand(e, &mut out)?;
        }
    } else {
        let mut held = Reorder::new(window);
        let mut block = Vec::new();
        let (mut lines, mut read) = (0usize, 0u64);
        loop {
            // A block of whole lines, parsed on every core, then taken in order.
            block.clear();
            let before = lines;
            while block.len() < BLOCK_BYTES {
                let n = reader
                    .read_until(b'\n', &mut block)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if n == 0 {
                    break;
                }
                lines += 1;
            }
            if lines == before {
                break;
            }
            read += block.len() as u64;
            progress(read)?;
            for (line, parsed) in parse_block(&block, before) {
                let e = match parsed {
                    Ok(e) => e,
                    Err(reason) => {
                        out.rejected += 1;
                        report(InputError {
                            position: Position::Line(line),
                            reason,
                        })?;
                        continue;
                    }
                };
                if out.last_ms.is_some_and(|last| e.time_ms < last) {
                    bail!(
                        "{}: line {line}: this event (at {}) is earlier than events already run \
                         (at {}): the file is out of time order by more than {window} events; \
                         sort it by time first (or raise --reorder-window)",
                        path.display(),
                        utc(e.time_ms),
                        utc(out.last_ms.unwrap_or_default()),
                    );
                }
                if let Some(event) = held.push(e) {
                    hand(event, &mut out)?;
                }
            }
        }
        for event in held.drain() {
            hand(event, &mut out)?;
        }
    }
    if !handed.is_empty() {
        tx.send(Sent::Events(handed)).map_err(hung_up)?;
    }
    Ok(out)
}

/// Parse a block of whole lines, after the first `before` lines of the file, on every
/// core: each non-blank line's number and event, in order.
fn parse_block(block: &[u8], before: usize) -> Vec<(usize, Result<Encoded, String>)> {
    use rayon::prelude::*;
    let lines: Vec<(usize, &[u8])> = crate::ingest::lines(block)
        .map(|(n, line)| (before + n, line))
        .collect();
    let per_task = lines
        .len()
        .div_ceil(rayon::current_num_threads().max(1) * 4)
        .max(1);
    lines
        .par_chunks(per_task)
        .map(|chunk| {
            let mut parser = crate::ingest::LineParser::default();
            chunk
                .iter()
                .map(|&(n, line)| (n, parser.parse::<Encoded>(line)))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}

/// Whether the input is one JSON document (an array, an envelope, or anything spread
/// over lines) rather than NDJSON: it starts with `[`, or its first line is not one
/// whole JSON value, or that value has `entries`.
fn is_document(reader: &mut impl BufRead) -> anyhow::Result<bool> {
    let buf = reader.fill_buf()?;
    match crate::ingest::first_byte(buf) {
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

/// Events held back to put a stream in time order: earliest first, events of equal
/// time in the order they came. A stream already in order costs a push and a pop per
/// event; an event out of order is put in its place by a binary search.
struct Reorder {
    held: VecDeque<Encoded>,
    window: usize,
}

impl Reorder {
    fn new(window: usize) -> Self {
        Reorder {
            held: VecDeque::new(),
            window,
        }
    }

    /// Hold `e`; the earliest event, once more than the window are held.
    fn push(&mut self, e: Encoded) -> Option<Encoded> {
        if self
            .held
            .back()
            .is_none_or(|last| last.time_ms <= e.time_ms)
        {
            self.held.push_back(e);
        } else {
            let at = self.held.partition_point(|h| h.time_ms <= e.time_ms);
            self.held.insert(at, e);
        }
        if self.held.len() > self.window {
            self.held.pop_front()
        } else {
            None
        }
    }

    /// The rest, earliest first.
    fn drain(self) -> impl Iterator<Item = Encoded> {
        self.held.into_iter()
    }
}
