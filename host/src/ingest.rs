//! Input formats into [`Event`]s: Slack Audit Logs entries exactly as Slack emits them
//! (the `{"entries": [...]}` envelope, a bare JSON array, or NDJSON of entries) and
//! AER's generic NDJSON event schema ([`generic`]). Formats are told apart per line, so
//! one file may mix them.
//!
//! A malformed line or entry is reported with its line (or entry) number and reason;
//! every other one is still parsed. Nothing is dropped silently; UTF-8 is checked per
//! line, so a stray byte is its line's error, never a replacement character.
//!
//! Each line is read into a borrowed value in a reused arena (`ingest::loose`), then into a
//! [`Draft`] whose strings still borrow from the input, which becomes an owned
//! [`Event`] or goes straight into the wire encoding the inbox stores ([`Encoded`],
//! [`parse_encoded`]): the daemon's ingest copies each string once.

mod draft;
pub mod generic;
mod loose;
#[cfg(test)]
mod properties;
pub mod slack;

use bumpalo::Bump;
pub use draft::{Draft, Encoded, Storable};
use loose::Loose;

use crate::Event;

/// Where a rejected input item was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "number")]
pub enum Position {
    /// 1-based line of an NDJSON input.
    Line(usize),
    /// 1-based index of an entry in a JSON envelope or array.
    Entry(usize),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Entry(n) => write!(f, "entry {n}"),
        }
    }
}

/// One rejected input item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{position}: {reason}")]
pub struct InputError {
    /// Where it was.
    pub position: Position,
    /// Why it was rejected.
    pub reason: String,
}

/// The events that parsed (as [`Event`]s, or [`Encoded`] for the inbox) and the
/// items that did not.
#[derive(Debug)]
pub struct Parsed<E = Event> {
    /// Accepted events, in input order.
    pub events: Vec<E>,
    /// Rejected items, in input order.
    pub errors: Vec<InputError>,
}

impl<E> Default for Parsed<E> {
    fn default() -> Self {
        Parsed {
            events: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl<E> Parsed<E> {
    fn push(&mut self, position: Position, result: Result<E, String>) {
        match result {
            Ok(e) => self.events.push(e),
            Err(reason) => self.errors.push(InputError { position, reason }),
        }
    }
}

/// Parse an input of any supported shape.
pub fn parse(text: &str) -> Parsed {
    parse_bytes(text.as_bytes())
}

/// Parse an input of any supported shape from bytes: UTF-8 is checked per line (or per
/// document for an envelope or array), so one bad line is one error.
pub fn parse_bytes(input: &[u8]) -> Parsed {
    parse_as(input)
}

/// [`parse_bytes`] straight into the wire encoding the inbox stores.
pub fn parse_encoded(input: &[u8]) -> Parsed<Encoded> {
    parse_as(input)
}

fn parse_as<E: for<'a> From<Draft<'a>>>(input: &[u8]) -> Parsed<E> {
    // A whole-document parse succeeds only for an envelope, an array, or a one-line
    // input; NDJSON fails at its second line and is parsed line by line below.
    let mut arena = Bump::new();
    if matches!(first_byte(input), Some(b'[' | b'{')) {
        match loose::from_slice(&arena, input) {
            Ok(Loose::Object(mut obj)) if obj.contains_key("entries") => {
                return match obj.remove("entries") {
                    Some(Loose::Array(entries)) => parse_entries(entries),
                    _ => Parsed {
                        events: Vec::new(),
                        errors: vec![InputError {
                            position: Position::Line(1),
                            reason: "`entries` is not an array".into(),
                        }],
                    },
                };
            }
            Ok(Loose::Array(entries)) => return parse_entries(entries),
            _ => {}
        }
    }
    ndjson(input, &mut arena)
}

/// Parse `input` line by line, reading each line into `arena`.
fn ndjson<E: for<'a> From<Draft<'a>>>(input: &[u8], arena: &mut Bump) -> Parsed<E> {
    let mut out = Parsed::default();
    for (number, line) in lines(input) {
        arena.reset();
        out.push(Position::Line(number), parse_in(arena, line));
    }
    out
}

fn parse_entries<E: for<'a> From<Draft<'a>>>(
    entries: bumpalo::collections::Vec<'_, Loose<'_>>,
) -> Parsed<E> {
    let mut out = Parsed::default();
    for (i, entry) in entries.into_iter().enumerate() {
        out.push(Position::Entry(i + 1), parse_loose(entry).map(E::from));
    }
    out
}

/// Parse NDJSON: one Slack entry or generic event per line; blank lines are skipped.
pub fn parse_ndjson(text: &str) -> Parsed {
    ndjson(text.as_bytes(), &mut Bump::new())
}

/// The non-blank lines of an NDJSON input with their 1-based numbers (a line ends at
/// `\n`, and a `\r` before it is not part of it).
pub fn lines(input: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut rest = Some(input);
    std::iter::from_fn(move || {
        let r = rest?;
        Some(match memchr::memchr(b'\n', r) {
            Some(end) => {
                rest = Some(&r[end + 1..]);
                &r[..end]
            }
            None => {
                rest = None;
                r
            }
        })
    })
    .enumerate()
    .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
    .filter(|(_, line)| !is_blank(line))
}

/// The first byte of `input` that is not ASCII whitespace.
pub fn first_byte(input: &[u8]) -> Option<u8> {
    input.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Whether a line holds only whitespace (Unicode's, as `str::trim` reads it).
fn is_blank(line: &[u8]) -> bool {
    match first_byte(line) {
        None => true,
        Some(b'{' | b'[' | b'"') => false,
        Some(_) => std::str::from_utf8(line).is_ok_and(|l| l.trim().is_empty()),
    }
}

/// Parse one JSON text (a line, say) as one event.
pub fn parse_one<E: for<'a> From<Draft<'a>>>(json: &[u8]) -> Result<E, String> {
    parse_in(&Bump::new(), json)
}

/// Parses lines one at a time into a reused arena: [`parse_one`] for a stream.
#[derive(Default)]
pub struct LineParser {
    arena: Bump,
}

impl LineParser {
    /// Parse one JSON text as one event.
    pub fn parse<E: for<'a> From<Draft<'a>>>(&mut self, json: &[u8]) -> Result<E, String> {
        self.arena.reset();
        parse_in(&self.arena, json)
    }
}

/// [`parse_one`], reading into `arena`.
fn parse_in<E: for<'a> From<Draft<'a>>>(arena: &Bump, json: &[u8]) -> Result<E, String> {
    // One UTF-8 check of the whole text is cheaper than serde_json's of each string.
    let text = std::str::from_utf8(json)
        .map_err(|e| format!("not UTF-8: invalid byte at column {}", e.valid_up_to() + 1))?;
    match loose::from_str(arena, text) {
        Ok(v) => parse_loose(v).map(E::from),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Most bytes of text one event may carry ([`Event::text_bytes`]); a larger one is
/// refused with its line or entry number. Slack's audit entries are a few KiB.
pub const MAX_EVENT_BYTES: usize = 64 << 10;

/// Parse one JSON value as a Slack entry (it has `date_create`) or a generic event, of
/// at most [`MAX_EVENT_BYTES`].
pub fn parse_value(v: serde_json::Value) -> Result<Event, String> {
    parse_one(v.to_string().as_bytes())
}

fn parse_loose(v: Loose<'_>) -> Result<Draft<'_>, String> {
    let Loose::Object(obj) = v else {
        return Err(format!("expected a JSON object, found {}", v.kind()));
    };
    let event = if obj.contains_key("date_create") {
        slack::parse_entry(obj)
    } else if obj.contains_key("time") || obj.contains_key("time_ms") {
        generic::parse_event(obj)
    } else {
        Err("neither a Slack audit entry (no `date_create`) nor a generic event (no `time`)".into())
    }?;
    let bytes = event.text_bytes();
    if bytes > MAX_EVENT_BYTES {
        return Err(format!(
            "the event carries {bytes} bytes of text, more than the {MAX_EVENT_BYTES} allowed"
        ));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: 31 MiB events were accepted, and a detector faulted on them forever.
    #[test]
    fn an_oversized_event_is_refused_by_line_and_the_rest_go_in() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let input = format!(
            "{}\n{}\n",
            serde_json::json!({"id": "big", "time_ms": 1, "action": "a", "actor": "U1", "note": big}),
            serde_json::json!({"id": "ok", "time_ms": 2, "action": "a", "actor": "U1"}),
        );
        let p = parse(&input);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.errors[0].position, Position::Line(1));
        assert!(
            p.errors[0].reason.contains("more than the 65536 allowed"),
            "{:?}",
            p.errors
        );
    }

    // Regression: the CLI read a file through one lossy UTF-8 pass, so a stray byte
    // became U+FFFD inside an event instead of an error naming its line.
    #[test]
    fn a_line_that_is_not_utf8_is_one_error_and_the_rest_go_in() {
        let good = br#"{"id":"a","time_ms":1,"action":"a","actor":"U1"}"#;
        let mut input = Vec::new();
        input.extend_from_slice(good);
        input.extend_from_slice(
            b"\n{\"id\":\"b\",\"time_ms\":2,\"action\":\"a\xff\",\"actor\":\"U1\"}\r\n",
        );
        input.extend_from_slice(good);
        let p = parse_bytes(&input);
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert_eq!(p.errors[0].position, Position::Line(2));
        assert_eq!(p.errors[0].reason, "not UTF-8: invalid byte at column 34");
    }

    #[test]
    fn envelope_ndjson_and_array_give_the_same_events() {
        let entry = r#"{"id":"a","date_create":1,"action":"user_login","actor":{"type":"user","user":{"id":"U1"}}}"#;
        let envelope = format!(r#"{{"ok":true,"entries":[{entry},{entry}]}}"#);
        let array = format!("[{entry},{entry}]");
        let ndjson = format!("{entry}\n\n{entry}\n");
        for input in [envelope, array, ndjson] {
            let p = parse(&input);
            assert!(p.errors.is_empty(), "{:?}", p.errors);
            assert_eq!(p.events.len(), 2);
            assert_eq!(p.events[0].actor.id, "U1");
            assert_eq!(p.events[0].time_ms, 1_000);
        }
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_kept() {
        let input = "{\"id\":\"a\",\"date_create\":1,\"action\":\"x\",\"actor\":{}}\nnot json\n[1]\n{\"id\":\"b\"}\n{\"id\":\"c\",\"date_create\":2,\"action\":\"y\",\"actor\":{}}\n";
        let p = parse(input);
        assert_eq!(p.events.len(), 2);
        let lines: Vec<_> = p.errors.iter().map(|e| e.position).collect();
        assert_eq!(
            lines,
            vec![Position::Line(2), Position::Line(3), Position::Line(4)]
        );
        assert!(
            p.errors[0].reason.starts_with("invalid JSON"),
            "{}",
            p.errors[0].reason
        );
        assert!(
            p.errors[1].reason.contains("expected a JSON object"),
            "{}",
            p.errors[1].reason
        );
        assert!(
            p.errors[2].reason.contains("neither"),
            "{}",
            p.errors[2].reason
        );
    }

    #[test]
    fn bad_entry_in_envelope_names_its_index() {
        let input = r#"{"entries":[{"id":"a","date_create":1,"action":"x","actor":{}},{"id":"b","action":"x"}]}"#;
        let p = parse(input);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.errors[0].position, Position::Entry(2));
        assert!(
            p.errors[0].reason.contains("date_create"),
            "{}",
            p.errors[0].reason
        );
    }
}
