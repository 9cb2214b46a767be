//! Generated events as input lines: audit events as Slack Audit Logs entries, message
//! events as AER generic events.

use serde_json::{Map, Value, json};

use crate::Event;

/// A detail's text as the JSON value Slack would have sent (ingest keeps every value's
/// text, so numbers, booleans and lists come back unchanged).
fn detail_value(v: &str) -> Value {
    if v == "true" || v == "false" {
        return Value::Bool(v == "true");
    }
    if let Ok(n) = v.parse::<i64>()
        && n.to_string() == v
    {
        return json!(n);
    }
    if (v.starts_with('[') || v.starts_with('{'))
        && let Ok(value @ (Value::Array(_) | Value::Object(_))) = serde_json::from_str::<Value>(v)
        && serde_json::to_string(&value).ok().as_deref() == Some(v)
    {
        return value;
    }
    Value::String(v.to_owned())
}

/// One event as one JSON line (no trailing newline).
pub fn to_json(e: &Event) -> String {
    if e.action == "message" {
        generic(e).to_string()
    } else {
        slack_entry(e).to_string()
    }
}

fn generic(e: &Event) -> Value {
    let mut obj = json!({
        "id": e.id,
        "time_ms": e.time_ms,
        "action": e.action,
        "actor": {"id": e.actor.id, "name": e.actor.name, "email": e.actor.email, "kind": e.actor.kind},
    });
    if let Some(t) = &e.target {
        obj["target"] = json!({"kind": t.kind, "id": t.id, "name": t.name, "email": t.email});
    }
    if !e.details.is_empty() {
        obj["details"] = Value::Object(
            e.details
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
    }
    obj
}

fn slack_entry(e: &Event) -> Value {
    let mut actor_user = Map::new();
    actor_user.insert("id".into(), json!(e.actor.id));
    actor_user.insert("name".into(), json!(e.actor.name));
    actor_user.insert("email".into(), json!(e.actor.email));
    let mut actor = Map::new();
    let mut details = Map::new();
    let mut entity_extra = Map::new();
    let mut context_extra = Map::new();
    for (k, v) in &e.details {
        match k.split_once('.') {
            Some(("actor", "account_type")) => {
                actor.insert("account_type".into(), json!(v));
            }
            Some(("actor", field)) => {
                actor_user.insert(field.into(), json!(v));
            }
            Some(("entity", field)) if e.target.is_some() => {
                entity_extra.insert(field.into(), detail_value(v));
            }
            Some(("context", field)) => {
                context_extra.insert(field.into(), detail_value(v));
            }
            _ => {
                details.insert(k.clone(), detail_value(v));
            }
        }
    }
    actor.insert("type".into(), json!(e.actor.kind));
    actor.insert(e.actor.kind.clone(), Value::Object(actor_user));
    let session = match e.context.session_id.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) if e.context.session_id.is_empty() => Value::Null,
        Err(_) => json!(e.context.session_id),
    };
    let l = &e.context.location;
    let mut entry = json!({
        "id": e.id,
        "date_create": e.time_ms / 1000,
        "action": e.action,
        "actor": actor,
        "context": {
            "location": {"type": l.kind, "id": l.id, "name": l.name, "domain": l.domain},
            "ua": e.context.user_agent,
            "ip_address": e.context.ip,
            "session_id": session,
        },
    });
    if let Some(t) = &e.target {
        let mut inner = Map::new();
        inner.insert("id".into(), json!(t.id));
        inner.insert("name".into(), json!(t.name));
        if !t.email.is_empty() {
            inner.insert("email".into(), json!(t.email));
        }
        inner.extend(entity_extra);
        entry["entity"] = json!({"type": t.kind, t.kind.clone(): inner});
    }
    if let Some(context) = entry["context"].as_object_mut() {
        context.extend(context_extra);
    }
    if !details.is_empty() {
        entry["details"] = Value::Object(details);
    }
    entry
}
