//! The daemon's HTTP API (axum). Every route but health and tenant creation is scoped
//! to the caller's tenant by its bearer token; another tenant's resources answer 404,
//! a missing or bad token 401. Errors are JSON: `{"error": "..."}`, plus `errors` with
//! per-field or per-line details where there are several.

mod auth;
pub mod cluster;
mod dead_letters;
mod events;
mod plugins;
mod policy;
mod query;
mod reviews;
mod server;
mod sources;
mod tenants;
mod triage;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::daemon::Daemon;

pub use auth::{Admin, MetricsReader, Tenant};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

/// The body of an error answer, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct ApiErrorBody {
    /// What went wrong.
    error: String,
    /// Field by field (a policy, a configuration) or line by line (events), when given.
    errors: Option<Vec<String>>,
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

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process runs", body = String))
)]
/// 200 `ok` while the process runs.
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "This document (OpenAPI 3.1)"))
)]
/// The API's OpenAPI document, generated from the handlers (see [`router`]).
async fn openapi(axum::Extension(doc): axum::Extension<Arc<String>>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", body = String), (status = 401, description = "No valid token", body = ApiErrorBody)),
    security(("metrics_token" = []), ("admin_token" = []))
)]
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

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "Every pipeline thread runs: `{ready, pipeline_threads_down}`"), (status = 503, description = "A pipeline thread is being restarted after a panic"))
)]
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

/// Bearer token schemes of the OpenAPI document.
struct Tokens;

impl utoipa::Modify for Tokens {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                "tenant_token",
                "A tenant's token: every route is scoped to its tenant",
            ),
            ("admin_token", "The operator's admin token"),
            (
                "metrics_token",
                "The operator's metrics token (`http.metrics_token`)",
            ),
        ] {
            components.add_security_scheme(name, bearer(what));
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "AER",
        description = "Anomaly Event Response: tenants' plugins, policy, events, findings, decisions and actions (docs/api.md)"
    ),
    modifiers(&Tokens),
    components(schemas(ApiErrorBody))
)]
struct ApiDoc;

/// The router of the whole API, and its OpenAPI document: every route is registered
/// through `routes!` from its handler's `#[utoipa::path]`, so none is served that the
/// document does not describe (`tests/all/openapi.rs`).
pub fn router(daemon: Arc<Daemon>) -> Router {
    router_for(daemon, None)
}

/// [`router`] for a node of a cluster (`node`: its part in it), which forwards a
/// tenant's requests to the node owning the tenant and publishes events to the stream.
pub fn router_for(daemon: Arc<Daemon>, node: Option<cluster::Node>) -> Router {
    use utoipa::OpenApi as _;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let max_body = daemon.config.http.max_body_bytes;
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(tenants::create_v1))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::delete))
        .routes(routes!(tenants::rotate))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::resume))
        .routes(routes!(cluster::status))
        .routes(routes!(plugins::list, plugins::upload))
        .routes(routes!(plugins::show, plugins::delete))
        .routes(routes!(plugins::configure))
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(plugins::rollback))
        .routes(routes!(policy::get_policy, policy::put_policy))
        .routes(routes!(events::ingest))
        .routes(routes!(
            sources::get_slack_audit,
            sources::put_slack_audit,
            sources::delete_slack_audit
        ))
        .routes(routes!(reviews::list))
        .routes(routes!(reviews::show))
        .routes(routes!(reviews::approve))
        .routes(routes!(reviews::dismiss))
        .routes(routes!(reviews::suppressions))
        .routes(routes!(reviews::remove_suppression))
        .routes(routes!(triage::set))
        .routes(routes!(query::findings))
        .routes(routes!(query::decisions))
        .routes(routes!(query::actions))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
        .routes(routes!(query::stream))
        .split_for_parts();
    let doc = Arc::new(doc.to_json().unwrap_or_else(|e| {
        tracing::error!("cannot write the OpenAPI document: {e}");
        "{}".to_owned()
    }));
    let router = crate::console::mount(router, &daemon)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::Extension(doc));
    let router = match node {
        Some(node) => router
            .layer(axum::middleware::from_fn_with_state(
                daemon.clone(),
                cluster::route,
            ))
            .layer(axum::Extension(node)),
        None => router,
    };
    router
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
    // A cluster node joins before it serves: its tenants' records first.
    let node = if daemon.config.cluster.enabled {
        let addr = listener.local_addr()?;
        let cluster = crate::cluster::Cluster::start(daemon.clone(), addr)
            .await
            .map_err(std::io::Error::other)?;
        Some(cluster::Node::new(cluster))
    } else {
        None
    };
    let pipeline = crate::daemon::worker::Pipeline::start(daemon.clone());
    let closing = daemon.clone();
    // Live streams never end by themselves: tell them to, so the drain can finish.
    let shutdown = async move {
        shutdown.await;
        let _ = closing.closing.send(true);
    };
    let cluster = node.as_ref().map(|n| n.cluster.clone());
    let app = router_for(daemon.clone(), node);
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
    // A cluster node hands its partitions over: checkpointed, then released.
    if let Some(cluster) = cluster {
        cluster.leave().await;
    }
    daemon.flush().map_err(std::io::Error::other)?;
    Ok(())
}
