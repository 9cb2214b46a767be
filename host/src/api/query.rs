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
use crate::ledger::{LedgerError, StoredDecision, Triaged};
use crate::records::FindingRecord;
use crate::web::{decision_alert, falco_alert};

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

/// The page size a filter asks for (default 100, at most 1000).
fn limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(100).clamp(1, 1000)
}

#[utoipa::path(
    get,
    path = "/v1/findings",
    tag = "findings",
    params(("after" = Option<u64>, Query, description = "The `next` of the previous page"), ("limit" = Option<u32>, Query, description = "Most items (default 100, at most 1000)"), ("subject" = Option<String>, Query, description = "Only about this user or entity"), ("plugin" = Option<String>, Query, description = "Only of this plugin"), ("since_ms" = Option<i64>, Query, description = "Event time from (ms, inclusive)"), ("until_ms" = Option<i64>, Query, description = "Event time until (ms, exclusive)")),
    responses((status = 200, description = "`{items, next}`: findings as Falco-compatible alerts"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn findings(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let page = daemon
        .ledger
        .findings(&t, filter.after, limit(filter.limit), |f| filter.keeps(f))
        .map_err(ApiError::internal)?;
    let (items, next) = (page.items, page.next);
    let mut alerts = Vec::with_capacity(items.len());
    for f in &items {
        let mut v = falco_alert(&t, f.seq, &f.finding);
        v["triage"] = triage(&daemon, &t, Triaged::Finding, f.seq)?;
        alerts.push(v);
    }
    Ok(Json(json!({"items": alerts, "next": next})))
}

#[utoipa::path(
    get,
    path = "/v1/decisions",
    tag = "findings",
    params(("after" = Option<u64>, Query, description = "The `next` of the previous page"), ("limit" = Option<u32>, Query, description = "Most items (default 100, at most 1000)"), ("subject" = Option<String>, Query, description = "Only about this user or entity"), ("plugin" = Option<String>, Query, description = "Only of this plugin"), ("since_ms" = Option<i64>, Query, description = "Event time from (ms, inclusive)"), ("until_ms" = Option<i64>, Query, description = "Event time until (ms, exclusive)")),
    responses((status = 200, description = "`{items, next}`: decisions as Falco-compatible alerts, with `id`, `outcome` and `reason`; one that responds (or would, in dry-run) has `response`: `{state, effects}`, `state` being `waiting` (a responder has yet to run), `awaiting-approval` (effects held for a person), `acted`, or `nothing` (every responder declined); each has `triage`"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn decisions(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let page = daemon
        .ledger
        .decisions(&t, filter.after, limit(filter.limit), |f| filter.keeps(f))
        .map_err(ApiError::internal)?;
    let mut items = Vec::with_capacity(page.items.len());
    for d in &page.items {
        let mut v = decision_alert(&t, d);
        v["triage"] = triage(&daemon, &t, Triaged::Decision, d.seq)?;
        if let Some(r) = response(&daemon, &t, d).map_err(ApiError::internal)? {
            v["response"] = r;
        }
        items.push(v);
    }
    Ok(Json(json!({"items": items, "next": page.next})))
}

/// The triage of a finding or decision, as listings show it.
fn triage(daemon: &Daemon, tenant: &str, what: Triaged, seq: u64) -> Result<Value, ApiError> {
    let t = daemon
        .ledger
        .triage(tenant, what, seq)
        .map_err(ApiError::internal)?;
    serde_json::to_value(t).map_err(ApiError::internal)
}

/// What came of a decision that responds (see
/// [`crate::pipeline::respond::response_state`]), with its effects; `None` for the
/// other outcomes.
fn response(
    daemon: &Daemon,
    tenant: &str,
    d: &StoredDecision,
) -> Result<Option<Value>, LedgerError> {
    use crate::pipeline::respond::{response_state, tally};
    if response_state(d.decision.outcome, 0, 0, false).is_none() {
        return Ok(None);
    }
    let entries = daemon.ledger.decision_actions(tenant, &d.decision.id)?;
    let (effects, held) = tally(
        entries
            .iter()
            .filter(|(_, e)| !crate::pipeline::notify::is_host_notice(&e.responder))
            .map(|(_, e)| (e.action.as_str(), e.status.as_str())),
    );
    let waiting = daemon.ledger.is_pending(tenant, d.seq)?;
    Ok(response_state(d.decision.outcome, effects, held, waiting)
        .map(|state| json!({"state": state, "effects": effects})))
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

#[utoipa::path(
    get,
    path = "/v1/actions",
    tag = "findings",
    params(("target" = Option<String>, Query, description = "Only about this user or channel"), ("decision" = Option<String>, Query, description = "Only of this decision"), ("after" = Option<String>, Query, description = "The `next` of the previous page"), ("limit" = Option<u32>, Query, description = "Most entries (default 100, at most 1000)")),
    responses((status = 200, description = "`{items, next}`: the action log, every effect responders asked for and what became of it"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
/// `GET /v1/actions`: the action log (every effect responders asked for and its
/// state), a page at a time in the log's own order (by decision), each page by time;
/// `next` continues it.
pub(super) async fn actions(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<ActionFilter>,
) -> Result<Json<Value>, ApiError> {
    let page = daemon
        .ledger
        .actions(&t, filter.after.as_deref(), limit(filter.limit), |a| {
            filter.target.as_ref().is_none_or(|x| *x == a.target)
                && filter.decision.as_ref().is_none_or(|x| *x == a.decision_id)
        })
        .map_err(|e| match e {
            LedgerError::BadCursor => ApiError::bad_request(e),
            e => ApiError::internal(e),
        })?;
    let mut items = page.items;
    items.sort_by_key(|a| a.time_ms);
    Ok(Json(json!({ "items": items, "next": page.next })))
}

#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "findings",
    responses((status = 200, description = "Server-sent events `finding`, `decision` and `action` as they are committed", content_type = "text/event-stream"), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
/// `GET /v1/stream`: server-sent events as they are committed: `finding` (Falco alert
/// shape), `decision`, and `action` (each change of an action log entry).
pub(super) async fn stream(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    crate::web::live(&daemon, t)
}
