//! `/v1/sources/slack-audit`: the tenant's Slack Audit Logs source, which the daemon
//! polls itself. The token is stored, never returned.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, Tenant};
use crate::daemon::{Daemon, DaemonError};

#[utoipa::path(
    get,
    path = "/v1/sources/slack-audit",
    tag = "sources",
    responses((status = 200, description = "`{source, config, watermark, watermark_time, lag_seconds, next_call_in_ms, status}`: the settings (the token as `********`), how far the audit log has been read, and how the last calls went"), (status = 404, description = "No such source", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn get_slack_audit(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Value>, ApiError> {
    daemon
        .source(&t)
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no Slack Audit Logs source"))
}

#[utoipa::path(
    put,
    path = "/v1/sources/slack-audit",
    tag = "sources",
    request_body(content = Object, description = "`{url, token, start, page_size, interval_seconds, overlap_seconds, calls_per_minute, enabled}`: `token` (scope `auditlogs:read`) is required the first time; any field left out keeps its stored value or default. `start` (seconds since the epoch or RFC 3339; default: now) is where the first walk begins.", content_type = "application/json"),
    responses((status = 200, description = "The source as `GET` shows it; polling starts at once"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn put_slack_audit(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let set = tokio::task::spawn_blocking(move || daemon.set_source(&t, &body))
        .await
        .map_err(ApiError::internal)?;
    match set {
        Ok(v) => Ok(Json(v)),
        Err(DaemonError::Policy(errors)) => {
            Err(ApiError::bad_request("invalid source").with_errors(json!(errors)))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/sources/slack-audit",
    tag = "sources",
    responses((status = 204, description = "Removed with how far it was read (events already in the inbox stay)"), (status = 404, description = "No such source", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn delete_slack_audit(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> Result<StatusCode, ApiError> {
    let removed = tokio::task::spawn_blocking(move || daemon.remove_source(&t))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no Slack Audit Logs source"))
    }
}
