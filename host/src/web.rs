//! What the API and the console both serve over HTTP: the client's address, findings
//! and decisions in their alert shape, and a tenant's live stream.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::ledger::{StoredDecision, StoredFinding, Watched};
use crate::records::FindingRecord;

/// How long a request's client address must wait before it may authenticate again
/// (it failed `http.auth_failures_per_minute` times this minute), if it must.
pub fn auth_blocked(
    daemon: &Daemon,
    extensions: &axum::http::Extensions,
) -> Option<std::time::Duration> {
    let addr = client_addr(extensions)?;
    daemon
        .auth_failures
        .blocked(addr.ip(), daemon.config.http.auth_failures_per_minute)
}

/// Count a failed authentication against the request's client address and log it
/// (every failure up to the limit, then one line per hundred).
pub fn auth_failed(daemon: &Daemon, extensions: &axum::http::Extensions, path: &str, why: &str) {
    let addr = client_addr(extensions);
    let failures = addr.map_or(0, |a| daemon.auth_failures.failed(a.ip()));
    let max = daemon.config.http.auth_failures_per_minute;
    if failures <= max || failures.is_multiple_of(100) {
        tracing::warn!(
            client = %addr.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string()),
            failures,
            path = %crate::text::escape_control(path),
            "failed authentication: {why}"
        );
    }
    daemon.metrics.auth_failure();
}

/// The client address of a request (the daemon's accept loop sets it on each
/// connection).
pub fn client_addr(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a)
}

/// Falco's priority for an AER severity.
fn priority(severity: &str) -> &'static str {
    match severity {
        "critical" => "Critical",
        "high" => "Error",
        "medium" => "Warning",
        "low" => "Notice",
        _ => "Informational",
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A finding as a Falco alert, plus AER's fields.
pub fn falco_alert(tenant: &str, seq: u64, f: &FindingRecord) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("subject".into(), json!(f.subject));
    fields.insert("score".into(), json!(f.score));
    for (k, v) in &f.attributes {
        fields.insert(format!("aer.{k}"), json!(v));
    }
    json!({
        "seq": seq,
        "time": rfc3339(f.time_ms),
        "rule": f.rule,
        "priority": priority(&f.severity),
        "output": f.summary,
        "output_fields": fields,
        "source": "aer",
        "tags": [f.rule, f.severity],
        "tenant": tenant,
        "plugin": f.plugin,
        "plugin_version": f.plugin_version,
        "event_ids": f.evidence,
    })
}

/// A decision as a Falco alert (priority from its finding's severity, output its
/// reason), with the decision's own fields beside.
pub fn decision_alert(tenant: &str, d: &StoredDecision) -> Value {
    let f = &d.decision.finding;
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    let mut fields = serde_json::Map::new();
    fields.insert("subject".into(), json!(d.decision.subject));
    fields.insert("outcome".into(), json!(d.decision.outcome.as_str()));
    fields.insert("decision_id".into(), json!(d.decision.id));
    fields.insert("score".into(), json!(f.score));
    let alert = json!({
        "time": rfc3339(d.decision.time_ms),
        "rule": f.rule,
        "priority": priority(&f.severity),
        "output": d.decision.reason,
        "output_fields": fields,
        "source": "aer",
        "tags": [f.rule, d.decision.outcome.as_str()],
        "tenant": tenant,
        "plugin": f.plugin,
        "plugin_version": f.plugin_version,
        "event_ids": f.evidence,
    });
    if let (Value::Object(v), Value::Object(a)) = (&mut v, alert) {
        v.extend(a);
    }
    v
}

/// `tenant`'s findings, decisions and action log changes as server-sent events, as
/// they are committed, until the daemon shuts down (the API's and the console's live
/// stream).
pub fn live(
    daemon: &Daemon,
    t: String,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
    + use<>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let watch = |what| daemon.ledger.watch(&t, what);
    let subs = (
        watch(Watched::Findings),
        watch(Watched::Decisions),
        watch(Watched::Actions),
        t,
        daemon.closing.subscribe(),
    );
    let events = futures_util::stream::unfold(subs, |mut s| async move {
        loop {
            if *s.4.borrow() {
                return None;
            }
            let (name, event): (&str, Option<sled::Event>) = tokio::select! {
                _ = s.4.changed() => return None,
                e = &mut s.0 => ("finding", e),
                e = &mut s.1 => ("decision", e),
                e = &mut s.2 => ("action", e),
            };
            // `None`: the tree is gone; removals are not news.
            let sled::Event::Insert { value, .. } = event? else {
                continue;
            };
            let data = match name {
                "finding" => match serde_json::from_slice::<StoredFinding>(&value) {
                    Ok(f) => falco_alert(&s.3, f.seq, &f.finding),
                    Err(_) => continue,
                },
                "decision" => match serde_json::from_slice::<StoredDecision>(&value) {
                    Ok(d) => decision_alert(&s.3, &d),
                    Err(_) => continue,
                },
                _ => match serde_json::from_slice::<Value>(&value) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            return Some((Ok(Event::default().event(name).data(data.to_string())), s));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
