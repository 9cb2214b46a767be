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

use std::borrow::Cow;

use super::draft::{Draft, DraftEntity, Name};
use super::loose::{Fields, Loose, time_ms};

/// Parse one generic event object.
pub fn parse_event(mut obj: Fields<'_>) -> Result<Draft<'_>, String> {
    let id = obj.required_str("id")?;
    let action = obj.required_str("action")?;
    let time_ms = match (obj.get("time_ms"), obj.get("time")) {
        (Some(v), _) => time_ms(v, 1, "time_ms")?,
        (None, Some(v @ (Loose::Str(_) | Loose::Number(_)))) => time_ms(v, 1, "time")?,
        (None, Some(other)) => {
            return Err(format!(
                "`time` must be a date string or milliseconds, found {}",
                other.kind()
            ));
        }
        (None, None) => return Err("missing `time`".into()),
    };
    let actor = match obj.remove("actor") {
        Some(Loose::Str(id)) => DraftEntity {
            kind: Cow::Borrowed("user"),
            id,
            ..Default::default()
        },
        Some(Loose::Object(a)) => entity(&a, "user"),
        Some(other) => {
            return Err(format!(
                "`actor` must be an object or a user id, found {}",
                other.kind()
            ));
        }
        None => return Err("missing `actor`".into()),
    };
    let target = match obj.remove("target") {
        Some(Loose::Object(t)) => Some(entity(&t, "")),
        Some(Loose::Null) | None => None,
        Some(other) => {
            return Err(format!(
                "`target` must be an object, found {}",
                other.kind()
            ));
        }
    };
    let context = match obj.remove("context") {
        Some(Loose::Object(c)) => {
            let [ip, ua, session] = ["ip", "user_agent", "session_id"].map(|k| c.text(k));
            let [kind, id, name, domain] = match c.get("location") {
                Some(Loose::Object(l)) => ["kind", "id", "name", "domain"].map(|k| l.text(k)),
                _ => Default::default(),
            };
            [ip, ua, session, kind, id, name, domain]
        }
        _ => Default::default(),
    };
    let mut details = Vec::new();
    match obj.remove("details") {
        Some(Loose::Object(d)) => {
            details.extend(d.into_iter().map(|(k, v)| (Name::plain(k), v.into_text())));
        }
        Some(Loose::Null) | None => {}
        Some(other) => {
            return Err(format!(
                "`details` must be an object, found {}",
                other.kind()
            ));
        }
    }
    for (k, v) in obj {
        if !matches!(k.as_ref(), "id" | "action" | "time" | "time_ms") {
            details.push((Name::under("entry", k), v.into_text()));
        }
    }
    Ok(Draft {
        id,
        time_ms,
        action,
        actor,
        target,
        context,
        details,
    })
}

fn entity<'a>(obj: &Fields<'a>, default_kind: &'static str) -> DraftEntity<'a> {
    let kind = obj.text("kind");
    DraftEntity {
        kind: if kind.is_empty() {
            Cow::Borrowed(default_kind)
        } else {
            kind
        },
        id: obj.text("id"),
        name: obj.text("name"),
        email: obj.text("email"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> Result<crate::Event, String> {
        let text = v.to_string();
        let arena = bumpalo::Bump::new();
        match super::super::loose::from_str(&arena, &text).unwrap() {
            Loose::Object(o) => parse_event(o).map(crate::Event::from),
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
