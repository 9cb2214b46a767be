//! The operator's tenant routes (admin token): create a tenant (`POST /v1/tenants` or
//! `/v1/admin/tenants`; its token is shown once), list them, rotate a token (the old one
//! stops at once), suspend and resume, and delete a tenant with all its data.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError};
use crate::daemon::Daemon;
use crate::daemon::tenants::TenantError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateTenant {
    name: String,
}

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    request_body(content = CreateTenant, content_type = "application/json"),
    responses((status = 201, description = "The tenant: `{name, token, created_ms}`; the token is shown only now"), (status = 409, description = "The tenant exists", body = super::ApiErrorBody), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `POST /v1/tenants`: create a tenant (the same as `POST /v1/admin/tenants`).
pub(super) async fn create_v1(
    admin: Admin,
    state: State<Arc<Daemon>>,
    body: Result<Json<CreateTenant>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(admin, state, body).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "tenants",
    request_body(content = CreateTenant, content_type = "application/json"),
    responses((status = 201, description = "The tenant: `{name, token, created_ms}`; the token is shown only now"), (status = 409, description = "The tenant exists", body = super::ApiErrorBody), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `POST /v1/admin/tenants`: create a tenant; its token is shown once.
pub(super) async fn create(
    _: Admin,
    State(daemon): State<Arc<Daemon>>,
    body: Result<Json<CreateTenant>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match daemon.create_tenant(&req.name) {
        Ok((rec, token)) => Ok((
            StatusCode::CREATED,
            Json(json!({"name": rec.name, "token": token, "created_ms": rec.created_ms})),
        )),
        Err(TenantError::Exists(n)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("tenant {n:?} already exists"),
        )),
        Err(e @ TenantError::InvalidName(_)) => Err(ApiError::bad_request(e)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn tenant_error(e: TenantError) -> ApiError {
    match e {
        TenantError::NotFound(_) => ApiError::not_found(e),
        e => ApiError::internal(e),
    }
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "tenants",
    responses((status = 200, description = "Every tenant with its plugins, events, state bytes and whether it is suspended"), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `GET /v1/admin/tenants`: every tenant with its plugins, inbox position and state size.
pub(super) async fn list(
    _: Admin,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Value>, ApiError> {
    let tenants = daemon.tenants().map_err(ApiError::internal)?;
    let mut items = Vec::with_capacity(tenants.len());
    for t in tenants {
        let plugins = daemon.plugins(&t.name).map_err(ApiError::internal)?.len();
        items.push(json!({
            "name": t.name,
            "created_ms": t.created_ms,
            "suspended": t.suspended,
            "plugins": plugins,
            "events": daemon.inbox.next_seq(&t.name).map_err(ApiError::internal)?,
            "state_bytes": daemon.state_bytes(&t.name).map_err(ApiError::internal)?,
        }));
    }
    Ok(Json(json!({"items": items})))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{name}/token",
    tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, description = "`{name, token}`: the new token, shown only now; the old one stops at once"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `POST /v1/admin/tenants/{name}/token`: a new token, shown once; the old one stops.
pub(super) async fn rotate(
    _: Admin,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let token = daemon.rotate_token(&name).map_err(tenant_error)?;
    Ok(Json(json!({"name": name, "token": token})))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{name}/suspend",
    tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, description = "The tenant record, suspended: its token answers 403 and its pipeline stops"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `POST /v1/admin/tenants/{name}/suspend`.
pub(super) async fn suspend(
    _: Admin,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = daemon.set_suspended(&name, true).map_err(tenant_error)?;
    Ok(Json(json!({"name": rec.name, "suspended": rec.suspended})))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{name}/resume",
    tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, description = "The tenant record, resumed"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `POST /v1/admin/tenants/{name}/resume`.
pub(super) async fn resume(
    _: Admin,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = daemon.set_suspended(&name, false).map_err(tenant_error)?;
    Ok(Json(json!({"name": rec.name, "suspended": rec.suspended})))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{name}",
    tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 204, description = "Deleted with all its data"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `DELETE /v1/admin/tenants/{name}`: the tenant and all its data. Blocking work (it
/// waits for the tenant's batches in progress), so on a blocking thread.
pub(super) async fn delete(
    _: Admin,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || daemon.delete_tenant(&name))
        .await
        .map_err(ApiError::internal)?
        .map_err(tenant_error)?;
    Ok(StatusCode::NO_CONTENT)
}
