//! `POST /v1/tenants` (admin): create a tenant and return its token, once.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError};
use crate::daemon::Daemon;
use crate::daemon::tenants::TenantError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateTenant {
    name: String,
}

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
