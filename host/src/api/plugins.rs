//! `/v1/plugins`: upload (a new version), list, show, configure, enable, disable, roll
//! back, delete. Validation and compilation run on a blocking thread, off the async
//! event path.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::daemon::plugins::{PluginError, PluginRecord, PluginStatus};

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::NotFound(_) => ApiError::not_found(e),
            PluginError::Rejected(_) | PluginError::Invalid(_) | PluginError::Config(_) => {
                ApiError::bad_request(e)
            }
            PluginError::VersionExists { .. }
            | PluginError::KindMismatch { .. }
            | PluginError::NoEarlierVersion(_) => ApiError::new(StatusCode::CONFLICT, e),
            PluginError::Quota(_) => ApiError::new(StatusCode::FORBIDDEN, e),
            PluginError::Daemon(e) => ApiError::internal(e),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadParams {
    name: Option<String>,
    version: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    params(("name" = Option<String>, Query, description = "The plugin's name (default: the component's own)"), ("version" = Option<String>, Query, description = "The version (default: the component's own)")),
    request_body(content = Vec<u8>, description = "The component's bytes", content_type = "application/wasm"),
    responses((status = 201, description = "The plugin record with the new version (a new plugin starts disabled)"), (status = 409, description = "The version exists with other bytes, or the name is of another kind", body = super::ApiErrorBody), (status = 400, description = "The component is rejected: the error says why", body = super::ApiErrorBody), (status = 403, description = "The tenant is suspended, or over a quota", body = super::ApiErrorBody), (status = 413, description = "Larger than allowed", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn upload(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(p): Query<UploadParams>,
    body: Bytes,
) -> Result<(StatusCode, Json<PluginRecord>), ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the component's bytes",
        ));
    }
    let rec =
        blocking(move || daemon.upload_plugin(&t, &body, p.name.as_deref(), p.version.as_deref()))
            .await?;
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    responses((status = 200, description = "Every plugin of the tenant: versions, hashes, status, faults, last fault"), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn list(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Vec<PluginRecord>>, ApiError> {
    Ok(Json(daemon.plugins(&t)?))
}

#[utoipa::path(
    get,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The plugin record, with a detector's `cursor` and `lag`"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
/// The record plus, for detectors, its `cursor` (next inbox seq) and `lag` (events
/// waiting for it).
pub(super) async fn show(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rec = daemon.plugin(&t, &name)?;
    let mut v = serde_json::to_value(&rec).map_err(ApiError::internal)?;
    if rec.kind == crate::plugin::PluginKind::Detector {
        let cursor = daemon
            .detector_cursor(&t, &name)
            .map_err(ApiError::internal)?;
        let next = daemon.inbox.next_seq(&t).map_err(ApiError::internal)?;
        v["cursor"] = cursor.into();
        v["lag"] = next.saturating_sub(cursor).into();
    }
    Ok(Json(v))
}

#[utoipa::path(
    put,
    path = "/v1/plugins/{name}/config",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body(content = Object, description = "The configuration (JSON)", content_type = "application/json"),
    responses((status = 200, description = "The plugin record with the configuration, which the plugin's own `configure` accepted"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn configure(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    body: String,
) -> Result<Json<PluginRecord>, ApiError> {
    if !body.trim().is_empty() && serde_json::from_str::<serde_json::Value>(&body).is_err() {
        return Err(ApiError::bad_request("configuration is not JSON"));
    }
    Ok(Json(
        blocking(move || daemon.configure_plugin(&t, &name, &body)).await?,
    ))
}

async fn set_status(
    t: String,
    daemon: Arc<Daemon>,
    name: String,
    status: PluginStatus,
) -> Result<Json<PluginRecord>, ApiError> {
    let rec = daemon.set_plugin_status(&t, &name, status)?;
    daemon.wake.notify();
    Ok(Json(rec))
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/enable",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The plugin record, enabled (a quarantined plugin resumes at its cursor)"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn enable(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<PluginRecord>, ApiError> {
    set_status(t, daemon, name, PluginStatus::Enabled).await
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/disable",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The plugin record, disabled (its cursor waits)"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn disable(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<PluginRecord>, ApiError> {
    set_status(t, daemon, name, PluginStatus::Disabled).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackParams {
    version: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/rollback",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name"), ("version" = Option<String>, Query, description = "The version to make active (default: the one before)")),
    responses((status = 200, description = "The plugin record with an earlier version active"), (status = 409, description = "No earlier version", body = super::ApiErrorBody), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn rollback(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(p): Query<RollbackParams>,
) -> Result<Json<PluginRecord>, ApiError> {
    Ok(Json(daemon.rollback_plugin(
        &t,
        &name,
        p.version.as_deref(),
    )?))
}

#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 204, description = "Removed with its state and cursor; its findings, decisions and actions stay"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn delete(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    daemon.delete_plugin(&t, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
