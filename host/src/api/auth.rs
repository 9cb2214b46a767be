//! Bearer-token extractors: [`Tenant`] for tenant routes, [`Admin`] for the operator's.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::ApiError;
use crate::daemon::Daemon;

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

/// A request carrying the operator's admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
}

impl FromRequestParts<Arc<Daemon>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(unauthorized)?;
        match daemon.authenticate(token) {
            Ok(Some(t)) => Ok(Tenant(t)),
            Ok(None) => Err(unauthorized()),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

impl FromRequestParts<Arc<Daemon>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(unauthorized)?;
        if daemon.is_admin(token) {
            Ok(Admin)
        } else {
            Err(unauthorized())
        }
    }
}
