//! `GET /v1/findings` and `GET /v1/decisions`: filtered by time, subject and plugin,
//! paginated by cursor (`after` = the `next` of the previous page; a page looks at
//! 10,000 records at most, so a filter that matches little may answer a short or
//! empty page with a `next` to go on from). Findings come in a
//! Falco-compatible alert shape so existing Falco tooling can consume them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::daemon::keys::{self, kind};
use crate::daemon::worker::{StoredDecision, StoredFinding};
use crate::finding::FindingRecord;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    /// Only records after this seq.
    after: Option<u64>,
    /// Most records (default 100, at most 1000).
    limit: Option<usize>,
    subject: Option<String>,
    plugin: Option<String>,
    /// Event time from (ms, inclusive).
    since_ms: Option<i64>,
    /// Event time until (ms, exclusive).
    until_ms: Option<i64>,
}

impl Filter {
    fn keeps(&self, f: &FindingRecord) -> bool {
        self.subject.as_ref().is_none_or(|s| *s == f.subject)
            && self.plugin.as_ref().is_none_or(|p| *p == f.plugin)
            && self.since_ms.is_none_or(|t| f.time_ms >= t)
            && self.until_ms.is_none_or(|t| f.time_ms < t)
    }
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

/// Most records one request looks at, matching or not: a filter that matches little
/// answers a partial page (with `next`) instead of reading a tenant's whole history.
const MAX_SCANNED: usize = 10_000;

/// Up to the filter's limit of records `keep` selects, after its `after`; and the
/// `next` cursor: the last seq looked at (`null` once there is nothing after `after`).
/// A page may hold fewer items than the limit, even none, and still have a `next`.
fn scan<T: serde::de::DeserializeOwned>(
    daemon: &Daemon,
    kind_byte: u8,
    tenant: &str,
    filter: &Filter,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<u64>), ApiError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let from = filter.after.map_or(0, |a| a.saturating_add(1));
    let range = keys::seq_key(kind_byte, tenant, from)..keys::seq_key(kind_byte, tenant, u64::MAX);
    let mut out = Vec::new();
    let mut last = None;
    for (scanned, r) in daemon.pipeline.range(range).enumerate() {
        if scanned == MAX_SCANNED {
            return Ok((out, last));
        }
        let (k, v) = r.map_err(ApiError::internal)?;
        last = keys::seq_of(&k);
        let item: T = serde_json::from_slice(&v).map_err(ApiError::internal)?;
        if keep(&item) {
            out.push(item);
            if out.len() == limit {
                return Ok((out, last));
            }
        }
    }
    Ok((out, last))
}

pub(super) async fn findings(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let (items, next): (Vec<StoredFinding>, _) =
        scan(&daemon, kind::FINDING, &t, &filter, |f: &StoredFinding| {
            filter.keeps(&f.finding)
        })?;
    let alerts: Vec<Value> = items
        .iter()
        .map(|f| falco_alert(&t, f.seq, &f.finding))
        .collect();
    Ok(Json(json!({"items": alerts, "next": next})))
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

pub(super) async fn decisions(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let (items, next): (Vec<StoredDecision>, _) = scan(
        &daemon,
        kind::DECISION,
        &t,
        &filter,
        |d: &StoredDecision| filter.keeps(&d.decision.finding),
    )?;
    let items: Vec<Value> = items.iter().map(|d| decision_alert(&t, d)).collect();
    Ok(Json(json!({"items": items, "next": next})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionFilter {
    /// Only actions about this user or channel.
    target: Option<String>,
    /// Only actions of this decision.
    decision: Option<String>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// Most entries (default 100, at most 1000).
    limit: Option<usize>,
}

/// `GET /v1/actions`: the action log (every effect responders asked for and its
/// state), a page at a time in the log's own order (by decision), each page by time;
/// `next` continues it.
pub(super) async fn actions(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<ActionFilter>,
) -> Result<Json<Value>, ApiError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let prefix = keys::key(kind::ACTION, &[t.as_bytes()]);
    let mut from = prefix.clone();
    if let Some(after) = &filter.after {
        let after =
            hex::decode(after).map_err(|_| ApiError::bad_request("`after` is not a cursor"))?;
        from.extend_from_slice(&after);
        from.push(0);
    }
    let mut items = Vec::new();
    let mut last = None;
    let mut stopped = false;
    for (scanned, r) in daemon.pipeline.range(from..).enumerate() {
        let (k, v) = r.map_err(ApiError::internal)?;
        let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
            break;
        };
        if scanned == MAX_SCANNED || items.len() == limit {
            stopped = true;
            break;
        }
        last = Some(hex::encode(rest));
        let a: crate::daemon::effects::ActionEntry =
            serde_json::from_slice(&v).map_err(ApiError::internal)?;
        if filter.target.as_ref().is_none_or(|x| *x == a.target)
            && filter.decision.as_ref().is_none_or(|x| *x == a.decision_id)
        {
            items.push(a);
        }
    }
    let next = if stopped { last } else { None };
    items.sort_by_key(|a| a.time_ms);
    Ok(Json(json!({ "items": items, "next": next })))
}

/// `GET /v1/stream`: server-sent events as they are committed: `finding` (Falco alert
/// shape), `decision`, and `action` (each change of an action log entry).
pub(super) async fn stream(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let watch = |k: u8| daemon.pipeline.watch_prefix(keys::key(k, &[t.as_bytes()]));
    let subs = (
        watch(kind::FINDING),
        watch(kind::DECISION),
        watch(kind::ACTION),
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
