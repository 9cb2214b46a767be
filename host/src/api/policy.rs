//! `GET` and `PUT /v1/policy`: the tenant's decision policy.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::pipeline::policy::Policy;

#[utoipa::path(
    get,
    path = "/v1/policy",
    tag = "policy",
    responses((status = 200, description = "The decision policy (the default if none was set); the Slack token reads back as `********`"), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn get_policy(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Policy>, ApiError> {
    daemon
        .policy(&t)
        .map(|p| Json(p.redacted()))
        .map_err(ApiError::internal)
}

#[utoipa::path(
    put,
    path = "/v1/policy",
    tag = "policy",
    request_body(content = Object, description = "The decision policy (JSON); every field has a default", content_type = "application/json"),
    responses((status = 200, description = "The policy as stored (token redacted)"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn put_policy(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    body: String,
) -> Result<Json<Policy>, ApiError> {
    match daemon.set_policy(&t, &body).map_err(ApiError::internal)? {
        Ok(p) => Ok(Json(p.redacted())),
        Err(errors) => {
            Err(ApiError::bad_request("invalid policy").with_errors(serde_json::json!(errors)))
        }
    }
}
