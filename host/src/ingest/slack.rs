//! Slack Audit Logs API entries, with every quirk Slack's real entries show:
//! `date_create` as a number or a string, `session_id` as a number, string or null,
//! empty user agents, malformed IP addresses kept raw, actor and entity objects keyed
//! by their `type`, list-valued details, and unknown fields and actions kept.

use std::borrow::Cow;

use super::draft::{Draft, DraftEntity, Name};
use super::loose::{Fields, Loose, time_ms};

/// Details read so far.
type Details<'a> = Vec<(Name<'a>, Cow<'a, str>)>;

/// Parse one entry object.
pub fn parse_entry(mut obj: Fields<'_>) -> Result<Draft<'_>, String> {
    let id = obj.required_str("id")?;
    let action = obj.required_str("action")?;
    let time_ms = time_ms(
        obj.get("date_create").ok_or("missing `date_create`")?,
        1000,
        "date_create",
    )?;
    let mut details = Vec::new();
    let actor = match obj.remove("actor") {
        Some(Loose::Object(a)) => entity(a, "actor", &mut details),
        Some(Loose::Null) | None => return Err("missing `actor`".into()),
        Some(other) => {
            return Err(format!("`actor` must be an object, found {}", other.kind()));
        }
    };
    let target = match obj.remove("entity") {
        Some(Loose::Object(e)) => Some(entity(e, "entity", &mut details)),
        _ => None,
    };
    let context = match obj.remove("context") {
        Some(Loose::Object(c)) => context(c, &mut details),
        _ => Default::default(),
    };
    if let Some(Loose::Object(d)) = obj.remove("details") {
        for (k, v) in d {
            details.push((Name::plain(k), v.into_text()));
        }
    }
    for (k, v) in obj {
        if !matches!(k.as_ref(), "id" | "action" | "date_create") {
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

/// An actor or entity: `{"type": T, T: {...}}`. Fields beyond id, name (or title) and
/// email go to details as `<prefix>.<field>`.
fn entity<'a>(
    mut obj: Fields<'a>,
    prefix: &'static str,
    details: &mut Details<'a>,
) -> DraftEntity<'a> {
    let kind = match obj.remove("type") {
        Some(Loose::Str(s)) => s,
        _ => Cow::Borrowed("user"),
    };
    let inner = obj.remove(&kind).or_else(|| obj.remove("user"));
    let mut e = DraftEntity {
        kind,
        ..Default::default()
    };
    if let Some(Loose::Object(mut inner)) = inner {
        e.id = inner.take_text("id");
        e.name = match inner.remove("name").map(Loose::into_text) {
            Some(name) if !name.is_empty() => name,
            _ => inner.text("title"),
        };
        e.email = inner.take_text("email");
        for (k, v) in inner {
            details.push((Name::under(prefix, k), v.into_text()));
        }
    }
    for (k, v) in obj {
        details.push((Name::under(prefix, k), v.into_text()));
    }
    e
}

/// The context's seven fields in [`Draft::context`]'s order.
fn context<'a>(mut obj: Fields<'a>, details: &mut Details<'a>) -> [Cow<'a, str>; 7] {
    let [kind, id, name, domain] = match obj.remove("location") {
        Some(Loose::Object(l)) => ["type", "id", "name", "domain"].map(|k| l.text(k)),
        _ => Default::default(),
    };
    let [ip, ua, session] = ["ip_address", "ua", "session_id"].map(|k| obj.take_text(k));
    for (k, v) in obj {
        details.push((Name::under("context", k), v.into_text()));
    }
    [ip, ua, session, kind, id, name, domain]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> Result<crate::Event, String> {
        let text = v.to_string();
        let arena = bumpalo::Bump::new();
        match super::super::loose::from_str(&arena, &text).unwrap() {
            Loose::Object(o) => parse_entry(o).map(crate::Event::from),
            _ => unreachable!(),
        }
    }

    #[test]
    fn documented_example_entry() {
        let e = parse(json!({
            "id": "0123a45b-6c7d-8900-e12f-3456789gh0i1",
            "date_create": 1521214343,
            "action": "user_login",
            "actor": {"type": "user", "user": {"id": "W123AB456", "name": "Charlie Parker",
                      "email": "bird@slack.com", "team": "T123"}},
            "entity": {"type": "user", "user": {"id": "W123AB456", "name": "Charlie Parker",
                       "email": "bird@slack.com", "team": "T123"}},
            "context": {"location": {"type": "enterprise", "id": "E1701NCCA", "name": "Birdland",
                        "domain": "birdland"}, "ua": "Mozilla/5.0", "ip_address": "1.23.45.678",
                        "session_id": 2_183_488_812_i64}
        }))
        .unwrap();
        assert_eq!(e.time_ms, 1_521_214_343_000);
        assert_eq!(e.actor.email, "bird@slack.com");
        assert_eq!(e.context.ip, "1.23.45.678", "malformed IPs are kept raw");
        assert_eq!(e.context.session_id, "2183488812");
        assert_eq!(e.context.location.domain, "birdland");
        assert_eq!(e.detail("actor.team"), Some("T123"));
        assert_eq!(e.target.as_ref().map(|t| t.kind.as_str()), Some("user"));
    }

    #[test]
    fn quirks_survive() {
        let e = parse(json!({
            "id": "x", "date_create": "1521214343", "action": "anomaly",
            "actor": {"type": "app", "app": {"id": "A1", "name": "Bot"}, "account_type": "bot"},
            "entity": {"type": "file", "file": {"id": "F1", "title": "plan.pdf", "filetype": "pdf"}},
            "context": {"ua": "", "ip_address": null, "session_id": null, "app": {"id": "A1"}},
            "details": {"reason": ["tor", "asn"], "action_timestamp": 1521214343123456_i64, "note": null},
            "brand_new_field": {"a": 1}
        }))
        .unwrap();
        assert_eq!(e.actor.kind, "app");
        assert_eq!(e.actor.id, "A1");
        assert_eq!(e.detail("actor.account_type"), Some("bot"));
        assert_eq!(e.target.as_ref().map(|t| t.name.as_str()), Some("plan.pdf"));
        assert_eq!(e.detail("entity.filetype"), Some("pdf"));
        assert_eq!(e.context.session_id, "");
        assert_eq!(e.context.user_agent, "");
        assert_eq!(e.detail("reason"), Some(r#"["tor","asn"]"#));
        assert_eq!(e.detail("action_timestamp"), Some("1521214343123456"));
        assert_eq!(e.detail("context.app"), Some(r#"{"id":"A1"}"#));
        assert_eq!(e.detail("entry.brand_new_field"), Some(r#"{"a":1}"#));
        assert_eq!(e.detail("note"), Some(""));
    }

    #[test]
    fn session_id_as_string() {
        let e = parse(
            json!({"id": "x", "date_create": 1, "action": "a", "actor": {},
                             "context": {"session_id": "abc"}}),
        )
        .unwrap();
        assert_eq!(e.context.session_id, "abc");
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            parse(json!({"date_create": 1, "action": "a", "actor": {}})).unwrap_err(),
            "missing `id`"
        );
        assert_eq!(
            parse(json!({"id": "x", "date_create": 1, "actor": {}})).unwrap_err(),
            "missing `action`"
        );
        assert_eq!(
            parse(json!({"id": "x", "date_create": 1, "action": "a"})).unwrap_err(),
            "missing `actor`"
        );
        assert!(
            parse(json!({"id": 5, "date_create": 1, "action": "a", "actor": {}}))
                .unwrap_err()
                .contains("must be a string")
        );
    }

    #[test]
    fn every_documented_action_is_accepted() {
        let doc: Value =
            serde_json::from_str(include_str!("../../tests/data/slack-audit-actions.json"))
                .unwrap();
        let names = doc["all_docs_action_names"].as_array().unwrap();
        assert!(names.len() > 400, "{}", names.len());
        for name in names {
            let e = parse(json!({"id": "x", "date_create": 1, "action": name, "actor": {"type": "user", "user": {"id": "U"}}})).unwrap();
            assert_eq!(e.action, name.as_str().unwrap());
        }
    }
}
