//! `/v1/reviews` and `/v1/suppressions`: what a person must look at (escalations, and
//! effects the policy holds for approval), approving or dismissing it, and the
//! suppressions false-positive dismissals leave behind.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::daemon::reviews::{Dismiss, MAX_SIGNER, ReviewError};
use crate::ledger::{Dismissal, Review, ReviewKind, ReviewState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    /// Only reviews in this state.
    state: Option<ReviewState>,
    /// Only reviews of this kind.
    kind: Option<ReviewKind>,
    /// Only about this subject.
    subject: Option<String>,
    /// The `next` of the previous page.
    after: Option<u64>,
    /// Most items (default 100, at most 1000).
    limit: Option<usize>,
}

impl Filter {
    fn keeps(&self, r: &Review) -> bool {
        self.state.is_none_or(|s| s == r.state)
            && self.kind.is_none_or(|k| k == r.kind)
            && self.subject.as_ref().is_none_or(|s| *s == r.subject)
    }
}

/// A review with the effects it holds (or held) for approval.
fn with_effects(daemon: &Daemon, tenant: &str, r: &Review) -> Result<Value, ApiError> {
    let effects: Vec<Value> = daemon
        .ledger
        .decision_actions(tenant, &r.decision_id)
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|(_, e)| !crate::pipeline::respond::is_refusal(&e.action))
        .map(|(_, e)| {
            json!({"action": e.action, "target": e.target, "status": e.status,
                   "detail": e.detail, "approved_by": e.approved_by})
        })
        .collect();
    let mut v = serde_json::to_value(r).map_err(ApiError::internal)?;
    v["effects"] = Value::Array(effects);
    Ok(v)
}

#[utoipa::path(
    get,
    path = "/v1/reviews",
    tag = "reviews",
    params(("state" = Option<String>, Query, description = "`open`, `approved` or `dismissed`"), ("kind" = Option<String>, Query, description = "`escalation` or `approval`"), ("subject" = Option<String>, Query, description = "Only about this subject"), ("after" = Option<u64>, Query, description = "The `next` of the previous page"), ("limit" = Option<u32>, Query, description = "Most items (default 100, at most 1000)")),
    responses((status = 200, description = "`{items, next}`: reviews, oldest first, each with the effects it holds for approval"), (status = 400, description = "A bad request: the error says why", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn list(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let page = daemon
            .ledger
            .reviews(&t, filter.after, limit, |r| filter.keeps(r))
            .map_err(ApiError::internal)?;
        let items = page
            .items
            .iter()
            .map(|r| with_effects(&daemon, &t, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json(json!({"items": items, "next": page.next})))
    })
    .await
    .map_err(ApiError::internal)?
}

#[utoipa::path(
    get,
    path = "/v1/reviews/{id}",
    tag = "reviews",
    params(("id" = u64, Path, description = "The review (its decision's seq)")),
    responses((status = 200, description = "The review with its effects"), (status = 404, description = "No such review", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn show(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let review = daemon
            .ledger
            .review(&t, id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no review {id}")))?;
        with_effects(&daemon, &t, &review).map(Json)
    })
    .await
    .map_err(ApiError::internal)?
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approve {
    /// Who approves (recorded with the review and each effect).
    by: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DismissBody {
    /// Who dismisses.
    by: String,
    /// `false_positive`, `benign` or `duplicate`.
    reason: Dismissal,
    #[serde(default)]
    note: String,
    /// For a false positive: suppress later findings of the rule about the subject
    /// (`{}` for good, or `{"expires_ms": T}` until event time T).
    #[serde(default)]
    suppress: Option<SuppressBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressBody {
    #[serde(default)]
    expires_ms: Option<i64>,
}

/// Parse a JSON body, naming what is wrong.
pub(super) fn body<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// The name a person signs with (see [`crate::daemon::reviews::signer`]).
pub(super) fn signer(by: &str) -> Result<String, ApiError> {
    crate::daemon::reviews::signer(by)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`by` must name who decides: 1 to {MAX_SIGNER} printable bytes"
            ))
            .with_errors(
                json!([{"field": "by", "message": format!("required, 1 to {MAX_SIGNER} printable bytes")}]),
            )
        })
}

fn review_error(e: ReviewError) -> ApiError {
    match e {
        ReviewError::NotFound(_) => ApiError::not_found(e),
        ReviewError::NotOpen { .. } => ApiError::new(StatusCode::CONFLICT, e),
        ReviewError::Invalid(_) => ApiError::bad_request(e),
        ReviewError::Daemon(e) => ApiError::internal(e),
    }
}

#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/approve",
    tag = "reviews",
    params(("id" = u64, Path, description = "The review")),
    request_body(content = Object, description = "`{by}`: who approves", content_type = "application/json"),
    responses((status = 200, description = "The review, approved: its held effects are queued (an escalation's responders run)"), (status = 400, description = "A bad request: the error says why", body = super::ApiErrorBody), (status = 404, description = "No such review", body = super::ApiErrorBody), (status = 409, description = "Approved or dismissed already", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn approve(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<u64>,
    text: String,
) -> Result<Json<Value>, ApiError> {
    let asked: Approve = body(&text)?;
    let by = signer(&asked.by)?;
    tokio::task::spawn_blocking(move || {
        let review = daemon.approve_review(&t, id, &by).map_err(review_error)?;
        with_effects(&daemon, &t, &review).map(Json)
    })
    .await
    .map_err(ApiError::internal)?
}

#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/dismiss",
    tag = "reviews",
    params(("id" = u64, Path, description = "The review")),
    request_body(content = Object, description = "`{by, reason, note, suppress}`: `reason` is `false_positive`, `benign` or `duplicate`; a false positive may add `suppress: {expires_ms}` (omit `expires_ms` for good)", content_type = "application/json"),
    responses((status = 200, description = "`{review, suppression}`: the review, dismissed (its held effects are never performed), and the suppression it added"), (status = 400, description = "A bad request: the error says why", body = super::ApiErrorBody), (status = 404, description = "No such review", body = super::ApiErrorBody), (status = 409, description = "Approved or dismissed already", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn dismiss(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<u64>,
    text: String,
) -> Result<Json<Value>, ApiError> {
    let asked: DismissBody = body(&text)?;
    let by = signer(&asked.by)?;
    let dismiss = Dismiss {
        reason: asked.reason,
        note: asked.note,
        suppress: asked.suppress.map(|s| s.expires_ms),
    };
    tokio::task::spawn_blocking(move || {
        let (review, suppression) = daemon
            .dismiss_review(&t, id, &by, dismiss)
            .map_err(review_error)?;
        let review = with_effects(&daemon, &t, &review)?;
        Ok(Json(json!({"review": review, "suppression": suppression})))
    })
    .await
    .map_err(ApiError::internal)?
}

#[utoipa::path(
    get,
    path = "/v1/suppressions",
    tag = "reviews",
    responses((status = 200, description = "`{items}`: the tenant's suppressions (subject, rule, expiry, the review that made each)"), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn suppressions(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Value>, ApiError> {
    let list = tokio::task::spawn_blocking(move || daemon.suppressions(&t))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "items": list })))
}

#[utoipa::path(
    delete,
    path = "/v1/suppressions/{id}",
    tag = "reviews",
    params(("id" = u64, Path, description = "The suppression")),
    responses((status = 204, description = "Removed: later findings are decided as before"), (status = 404, description = "No such suppression", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn remove_suppression(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let removed = tokio::task::spawn_blocking(move || daemon.remove_suppression(&t, id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no suppression {id}")))
    }
}
