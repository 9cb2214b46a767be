//! `GET` and `PUT /v1/policy`: the tenant's decision policy.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::pipeline::policy::Policy;

pub(super) async fn get_policy(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Policy>, ApiError> {
    daemon
        .policy(&t)
        .map(|p| Json(p.redacted()))
        .map_err(ApiError::internal)
}

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
