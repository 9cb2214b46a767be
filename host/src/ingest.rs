//! Input formats into [`Event`]s: Slack Audit Logs entries exactly as Slack emits them
//! (the `{"entries": [...]}` envelope, a bare JSON array, or NDJSON of entries) and
//! AER's generic NDJSON event schema ([`generic`]). Formats are told apart per line, so
//! one file may mix them.
//!
//! A malformed line or entry is reported with its line (or entry) number and reason;
//! every other one is still parsed. Nothing is dropped silently.

pub mod generic;
#[cfg(test)]
mod properties;
pub mod slack;
mod value;

use serde_json::Value;

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

/// The events that parsed and the items that did not.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Accepted events, in input order.
    pub events: Vec<Event>,
    /// Rejected items, in input order.
    pub errors: Vec<InputError>,
}

/// Parse an input of any supported shape.
pub fn parse(text: &str) -> Parsed {
    let trimmed = text.trim_start();
    // A whole-document parse succeeds only for an envelope, an array, or a one-line
    // input; NDJSON fails at its second line and is parsed line by line below.
    let whole = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        serde_json::from_str::<Value>(text).ok()
    } else {
        None
    };
    match whole {
        Some(Value::Object(mut obj)) if obj.contains_key("entries") => {
            match obj.remove("entries") {
                Some(Value::Array(entries)) => parse_entries(entries),
                _ => Parsed {
                    events: Vec::new(),
                    errors: vec![InputError {
                        position: Position::Line(1),
                        reason: "`entries` is not an array".into(),
                    }],
                },
            }
        }
        Some(Value::Array(entries)) => parse_entries(entries),
        _ => parse_ndjson(text),
    }
}

fn parse_entries(entries: Vec<Value>) -> Parsed {
    let mut out = Parsed::default();
    for (i, entry) in entries.into_iter().enumerate() {
        match parse_value(entry) {
            Ok(e) => out.events.push(e),
            Err(reason) => out.errors.push(InputError {
                position: Position::Entry(i + 1),
                reason,
            }),
        }
    }
    out
}

/// Parse NDJSON: one Slack entry or generic event per line; blank lines are skipped.
pub fn parse_ndjson(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Value>(line)
            .map_err(|e| format!("invalid JSON: {e}"))
            .and_then(parse_value);
        match result {
            Ok(e) => out.events.push(e),
            Err(reason) => out.errors.push(InputError {
                position: Position::Line(i + 1),
                reason,
            }),
        }
    }
    out
}

/// Most bytes of text one event may carry ([`Event::text_bytes`]); a larger one is
/// refused with its line or entry number. Slack's audit entries are a few KiB.
pub const MAX_EVENT_BYTES: usize = 64 << 10;

/// Parse one JSON value as a Slack entry (it has `date_create`) or a generic event, of
/// at most [`MAX_EVENT_BYTES`].
pub fn parse_value(v: Value) -> Result<Event, String> {
    let Value::Object(obj) = v else {
        return Err(format!("expected a JSON object, found {}", value::kind(&v)));
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
