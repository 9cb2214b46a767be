//! The daemon's HTTP API (axum). Every route but health and tenant creation is scoped
//! to the caller's tenant by its bearer token; another tenant's resources answer 404,
//! a missing or bad token 401. Errors are JSON: `{"error": "..."}`, plus `errors` with
//! per-field or per-line details where there are several.

mod auth;
mod dead_letters;
mod events;
mod plugins;
mod policy;
mod query;
mod server;
mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::json;

use crate::daemon::Daemon;

pub use auth::{Admin, MetricsReader, Tenant};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    /// An answer with `status` and a message.
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            body: json!({ "error": message.to_string() }),
        }
    }

    /// Add a list of details (`errors`).
    pub fn with_errors(mut self, errors: serde_json::Value) -> Self {
        self.body["errors"] = errors;
        self
    }

    /// 400.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500; the details go to the log, not to the client.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

async fn metrics(
    _: MetricsReader,
    axum::extract::State(daemon): axum::extract::State<Arc<Daemon>>,
) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        daemon.metrics.render(),
    )
}

/// 200 `{"ready": true}` while every pipeline thread runs; 503 with the number down
/// while one is being restarted after a panic.
async fn readyz(
    axum::extract::State(daemon): axum::extract::State<Arc<Daemon>>,
) -> impl IntoResponse {
    let dead = daemon.health.dead_threads();
    let status = if dead == 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": dead == 0, "pipeline_threads_down": dead})),
    )
}

/// The router of the whole API.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let max_body = daemon.config.http.max_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/tenants", post(tenants::create))
        .route(
            "/v1/admin/tenants",
            get(tenants::list).post(tenants::create),
        )
        .route("/v1/admin/tenants/{name}", delete(tenants::delete))
        .route("/v1/admin/tenants/{name}/token", post(tenants::rotate))
        .route("/v1/admin/tenants/{name}/suspend", post(tenants::suspend))
        .route("/v1/admin/tenants/{name}/resume", post(tenants::resume))
        .route("/v1/plugins", get(plugins::list).post(plugins::upload))
        .route(
            "/v1/plugins/{name}",
            get(plugins::show).delete(plugins::delete),
        )
        .route("/v1/plugins/{name}/config", put(plugins::configure))
        .route("/v1/plugins/{name}/enable", post(plugins::enable))
        .route("/v1/plugins/{name}/disable", post(plugins::disable))
        .route("/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route(
            "/v1/policy",
            get(policy::get_policy).put(policy::put_policy),
        )
        .route("/v1/events", post(events::ingest))
        .route("/v1/findings", get(query::findings))
        .route("/v1/decisions", get(query::decisions))
        .route("/v1/actions", get(query::actions))
        .route("/v1/dead-letters", get(dead_letters::list))
        .route("/v1/dead-letters/{seq}/replay", post(dead_letters::replay))
        .route("/v1/stream", get(query::stream))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            daemon.clone(),
            server::body_deadline,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(daemon)
}

/// Run the pipeline and serve the API on `listener` until `shutdown` completes; then
/// drain requests, let the pipeline finish its batch, and flush the database.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pipeline = crate::daemon::worker::Pipeline::start(daemon.clone());
    let closing = daemon.clone();
    // Live streams never end by themselves: tell them to, so the drain can finish.
    let shutdown = async move {
        shutdown.await;
        let _ = closing.closing.send(true);
    };
    let app = router(daemon.clone());
    let began = server::run(&daemon, app, listener, shutdown).await;
    // Let the pipeline finish its current batches before the final flush, within what
    // is left of the shutdown deadline; past it the daemon flushes and exits anyway
    // (what a worker had not committed runs again after the restart, and effects not
    // done stay pending in the action log).
    let deadline = std::time::Duration::from_millis(daemon.config.http.shutdown_deadline_ms);
    let left = deadline
        .saturating_sub(began.elapsed())
        .max(std::time::Duration::from_millis(100));
    let stopped = tokio::task::spawn_blocking(move || drop(pipeline));
    if tokio::time::timeout(left, stopped).await.is_err() {
        tracing::warn!(
            "the pipeline did not stop within the shutdown deadline; exiting with its work left durable for the restart"
        );
    }
    daemon.flush().map_err(std::io::Error::other)?;
    Ok(())
}
