//! Requests on a cluster node (docs/cluster.md): a tenant's requests are answered by the
//! node that owns its partition, which holds its findings, decisions and plugin state,
//! so a node forwards them there (events excepted: any node publishes those to the
//! stream). A change a node makes to a tenant (its token, plugins, policy, sources) is
//! shared with every node before the answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::ApiError;
use crate::cluster::Cluster;
use crate::daemon::Daemon;
use crate::daemon::tenants::Authenticated;

/// Marks a request a node forwarded: the receiving node answers it itself, so a
/// request never travels on (two nodes that disagree for a moment about an owner
/// cannot bounce it between them).
pub const FORWARDED: &str = "x-aer-forwarded-by";

/// The cluster, and the HTTP client that forwards to other nodes.
#[derive(Clone)]
pub struct Node {
    /// This node's part in the cluster.
    pub cluster: Arc<Cluster>,
    client: Client<HttpConnector, Body>,
}

impl Node {
    /// A node of `cluster`.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Node {
            cluster,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

/// The tenant a request is about, if any: the holder of its tenant token, or the
/// tenant an operator's request names in its path.
fn tenant_of(daemon: &Daemon, request: &Request) -> Option<String> {
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix("/v1/admin/tenants/") {
        let name = rest.split('/').next().unwrap_or("");
        return crate::daemon::tenants::valid_name(name).then(|| name.to_owned());
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    match daemon.authenticate(token).ok()? {
        Authenticated::Tenant(t) | Authenticated::Suspended(t) => Some(t),
        Authenticated::Unknown => None,
    }
}

/// Whether a request carries a bearer token other than the operator's.
fn has_tenant_token(daemon: &Daemon, request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !daemon.is_admin(t.trim()))
}

/// The name in an operator's tenant creation body (`{"name": ...}`).
fn created_name(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Create {
        name: String,
    }
    serde_json::from_slice::<Create>(body).ok().map(|c| c.name)
}

/// Forward a tenant's request to its owner, or answer it here and share what it
/// changed.
pub(super) async fn route(
    State(daemon): State<Arc<Daemon>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(node) = request.extensions().get::<Node>().cloned() else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    // Events are published by whichever node takes them: nothing to forward or share
    // (and no second token lookup on the ingest path).
    if path == "/v1/events" {
        return next.run(request).await;
    }
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    let creates = changes && (path == "/v1/tenants" || path == "/v1/admin/tenants");
    let (request, tenant) = if creates {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, daemon.config.http.max_body_bytes)
            .await
            .unwrap_or_default();
        let name = created_name(&bytes);
        (Request::from_parts(parts, Body::from(bytes)), name)
    } else {
        let mut tenant = tenant_of(&daemon, &request);
        // (Not for an address already refused for failing too often: a guessed token
        // costs this node no request to NATS.)
        if tenant.is_none()
            && has_tenant_token(&daemon, &request)
            && crate::web::auth_blocked(&daemon, request.extensions()).is_none()
        {
            // A token this node does not know yet may be one another node has just
            // made: once this node has caught up, it knows.
            node.cluster.tenants_caught_up().await;
            tenant = tenant_of(&daemon, &request);
        }
        (request, tenant)
    };
    let Some(tenant) = tenant else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED);
    if !forwarded
        && !node.cluster.owns(&tenant)
        && let Some(owner) = node.cluster.owner_of(&tenant)
    {
        let patience = Duration::from_millis(daemon.config.http.body_timeout_ms);
        return forward(&node, &owner.url, request, patience).await;
    }
    let response = next.run(request).await;
    if changes
        && response.status().is_success()
        && let Err(e) = node.cluster.share(&tenant).await
    {
        tracing::error!(%tenant, "a change could not be shared with the cluster: {e}");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the change was made on this node but not shared with the cluster ({e}); retry"
            ),
        )
        .into_response();
    }
    response
}

/// Send `request` to the node at `url` and stream its answer back; 503 if the answer
/// does not begin within `patience`.
async fn forward(node: &Node, url: &str, request: Request, patience: Duration) -> Response {
    let (mut parts, body) = request.into_parts();
    let target = format!(
        "{url}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    match target.parse() {
        Ok(uri) => parts.uri = uri,
        Err(e) => return ApiError::internal(format!("owner address {url}: {e}")).into_response(),
    }
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::CONNECTION);
    if let Ok(v) = HeaderValue::from_str(node.cluster.node()) {
        parts.headers.insert(FORWARDED, v);
    }
    let answer = tokio::time::timeout(
        patience,
        node.client.request(Request::from_parts(parts, body)),
    );
    match answer.await {
        Ok(Ok(answer)) => answer.map(Body::new).into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node owning this tenant did not answer in time; retry",
        )
        .into_response(),
        Ok(Err(e)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the node owning this tenant did not answer ({e}); retry"),
        )
        .into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/admin/cluster",
    tag = "tenants",
    responses((status = 200, description = "This node's view of the cluster: `{enabled, node, url, partitions, owned, owners: [{partition, node, url}]}` (`{enabled: false}` on a single node)"), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("admin_token" = []))
)]
/// `GET /v1/admin/cluster`: which node owns which partition, as this node sees it.
pub(super) async fn status(
    _: super::Admin,
    node: Option<axum::Extension<Node>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(match node {
        Some(axum::Extension(node)) => {
            serde_json::to_value(node.cluster.status()).unwrap_or_default()
        }
        None => serde_json::json!({"enabled": false}),
    })
}
