//! AER's generic NDJSON event schema, for sources other than Slack's audit log (for
//! example message events from Slack's Events API). One object per line:
//!
//! ```json
//! {"id": "m-1", "time": "2026-01-05T09:00:00Z", "action": "message",
//!  "actor": {"id": "U1", "name": "Ada", "email": "ada@example.com", "kind": "user"},
//!  "target": {"kind": "channel", "id": "C1", "name": "general"},
//!  "context": {"ip": "10.0.0.1", "user_agent": "...", "session_id": "s1",
//!              "location": {"kind": "workspace", "id": "T1", "name": "Acme", "domain": "acme"}},
//!  "details": {"chars": 120}}
//! ```
//!
//! Required: `id`, `action`, and `time` (RFC 3339, or milliseconds since the epoch)
//! or `time_ms`. `actor` may be an object or a bare user id string. Everything else is
//! optional; `details` values that are not strings are kept as JSON text, and unknown
//! top-level fields are kept as details named `entry.<field>`.

use serde_json::{Map, Value};

use super::value::{field, kind, required_str, text, time_ms};
use crate::Event;
use aer_wire::{Context, Entity, Location};

/// Parse one generic event object.
pub fn parse_event(mut obj: Map<String, Value>) -> Result<Event, String> {
    let id = required_str(&obj, "id")?;
    let action = required_str(&obj, "action")?;
    let time_ms = match (obj.get("time_ms"), obj.get("time")) {
        (Some(v), _) => time_ms(v, 1, "time_ms")?,
        (None, Some(v @ Value::String(_))) => time_ms(v, 1, "time")?,
        (None, Some(v @ Value::Number(_))) => time_ms(v, 1, "time")?,
        (None, Some(other)) => {
            return Err(format!(
                "`time` must be a date string or milliseconds, found {}",
                kind(other)
            ));
        }
        (None, None) => return Err("missing `time`".into()),
    };
    let actor = match obj.remove("actor") {
        Some(Value::String(id)) => Entity {
            kind: "user".into(),
            id,
            ..Default::default()
        },
        Some(Value::Object(a)) => entity(&a, "user"),
        Some(other) => {
            return Err(format!(
                "`actor` must be an object or a user id, found {}",
                kind(&other)
            ));
        }
        None => return Err("missing `actor`".into()),
    };
    let target = match obj.remove("target") {
        Some(Value::Object(t)) => Some(entity(&t, "")),
        Some(Value::Null) | None => None,
        Some(other) => {
            return Err(format!(
                "`target` must be an object, found {}",
                kind(&other)
            ));
        }
    };
    let context = match obj.remove("context") {
        Some(Value::Object(c)) => Context {
            ip: field(&c, "ip"),
            user_agent: field(&c, "user_agent"),
            session_id: field(&c, "session_id"),
            location: match c.get("location") {
                Some(Value::Object(l)) => Location {
                    kind: field(l, "kind"),
                    id: field(l, "id"),
                    name: field(l, "name"),
                    domain: field(l, "domain"),
                },
                _ => Location::default(),
            },
        },
        _ => Context::default(),
    };
    let mut details = Vec::new();
    match obj.remove("details") {
        Some(Value::Object(d)) => details.extend(d.into_iter().map(|(k, v)| (k, text(&v)))),
        Some(Value::Null) | None => {}
        Some(other) => {
            return Err(format!(
                "`details` must be an object, found {}",
                kind(&other)
            ));
        }
    }
    for (k, v) in obj {
        if !matches!(k.as_str(), "id" | "action" | "time" | "time_ms") {
            details.push((format!("entry.{k}"), text(&v)));
        }
    }
    Ok(Event {
        id,
        time_ms,
        action,
        actor,
        target,
        context,
        details,
    })
}

fn entity(obj: &Map<String, Value>, default_kind: &str) -> Entity {
    let kind = field(obj, "kind");
    Entity {
        kind: if kind.is_empty() {
            default_kind.to_owned()
        } else {
            kind
        },
        id: field(obj, "id"),
        name: field(obj, "name"),
        email: field(obj, "email"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Event, String> {
        match v {
            Value::Object(o) => parse_event(o),
            _ => unreachable!(),
        }
    }

    #[test]
    fn full_event() {
        let e = parse(json!({"id": "m-1", "time": "2026-01-05T09:00:00Z", "action": "message",
            "actor": {"id": "U1", "email": "a@x"}, "target": {"kind": "channel", "id": "C1"},
            "context": {"ip": "10.0.0.1", "session_id": 7}, "details": {"chars": 120}, "source": "events-api"}))
        .unwrap();
        assert_eq!(e.time_ms, 1_767_603_600_000);
        assert_eq!(e.actor.kind, "user");
        assert_eq!(e.target.as_ref().map(|t| t.kind.as_str()), Some("channel"));
        assert_eq!(e.context.session_id, "7");
        assert_eq!(e.detail("chars"), Some("120"));
        assert_eq!(e.detail("entry.source"), Some("events-api"));
    }

    #[test]
    fn minimal_event_with_ms_and_bare_actor() {
        let e =
            parse(json!({"id": "m", "time_ms": 5, "action": "message", "actor": "U9"})).unwrap();
        assert_eq!((e.time_ms, e.actor.id.as_str()), (5, "U9"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            parse(json!({"id": "m", "time": 5, "action": "a"})).unwrap_err(),
            "missing `actor`"
        );
        assert!(
            parse(json!({"id": "m", "time": true, "action": "a", "actor": "U"}))
                .unwrap_err()
                .contains("`time`")
        );
        assert!(
            parse(json!({"id": "m", "time": 1, "action": "a", "actor": "U", "details": [1]}))
                .unwrap_err()
                .contains("`details`")
        );
    }
}
