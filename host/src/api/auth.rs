//! Bearer-token extractors: [`Tenant`] for tenant routes, [`Admin`] for the operator's,
//! [`MetricsReader`] for `/metrics`. Failed authentications are logged and counted per
//! client address; an address past `http.auth_failures_per_minute` is answered 429
//! until its minute is over, whatever token it sends.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use subtle::ConstantTimeEq as _;

use super::ApiError;
use crate::daemon::Daemon;
use crate::daemon::tenants::Authenticated;

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

/// A request carrying the operator's admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// A request carrying the metrics token (`http.metrics_token`, else the admin token).
#[derive(Debug, Clone, Copy)]
pub struct MetricsReader;

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

/// Refuse a client address that failed too often this minute.
fn not_blocked(parts: &Parts, daemon: &Daemon) -> Result<(), ApiError> {
    match crate::web::auth_blocked(daemon, &parts.extensions) {
        Some(wait) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed authentications from this address; retry in {} s",
                wait.as_secs() + 1
            ),
        )),
        None => Ok(()),
    }
}

/// Count and log a failed authentication; the answer to give.
fn failed(parts: &Parts, daemon: &Daemon, why: &str) -> ApiError {
    crate::web::auth_failed(daemon, &parts.extensions, parts.uri.path(), why);
    unauthorized()
}

impl FromRequestParts<Arc<Daemon>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, ApiError> {
        not_blocked(parts, daemon)?;
        let Some(token) = bearer(parts) else {
            return Err(failed(parts, daemon, "no bearer token"));
        };
        match daemon.authenticate(token) {
            Ok(Authenticated::Tenant(t)) => Ok(Tenant(t)),
            Ok(Authenticated::Suspended(t)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("tenant {t} is suspended by the operator"),
            )),
            Ok(Authenticated::Unknown) => Err(failed(parts, daemon, "unknown tenant token")),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

impl FromRequestParts<Arc<Daemon>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, ApiError> {
        not_blocked(parts, daemon)?;
        match bearer(parts) {
            Some(token) if daemon.is_admin(token) => Ok(Admin),
            _ => Err(failed(parts, daemon, "not the admin token")),
        }
    }
}

impl FromRequestParts<Arc<Daemon>> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, ApiError> {
        not_blocked(parts, daemon)?;
        let Some(token) = bearer(parts) else {
            return Err(failed(parts, daemon, "no bearer token for metrics"));
        };
        let reader = match &daemon.config.http.metrics_token {
            Some(m) => bool::from(token.as_bytes().ct_eq(m.as_bytes())),
            None => false,
        };
        if reader || daemon.is_admin(token) {
            Ok(MetricsReader)
        } else {
            Err(failed(parts, daemon, "not the metrics token"))
        }
    }
}
