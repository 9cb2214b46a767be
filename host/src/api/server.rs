//! The daemon's HTTP server: its own accept loop over hyper, because every bound on a
//! client must hold before any handler runs. Headers must arrive within
//! `http.header_timeout_ms` (which also closes idle keep-alive connections), a body
//! within `http.body_timeout_ms` (408), at most `http.max_connections` are open (a
//! connection past it is answered 503 and closed at once), and on shutdown the daemon
//! waits at most `http.shutdown_deadline_ms` for open requests and for the pipeline's
//! current batches.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;

use super::ApiError;
use crate::daemon::Daemon;

/// What a connection past the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 42\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
{\"error\": \"too many connections; retry\"}\n";

/// Read the whole request body within `http.body_timeout_ms` (and at most
/// `http.max_body_bytes`) before any handler sees it: a trickled or endless body is
/// answered 408 (413 past the size) instead of holding its connection open.
pub(super) async fn body_deadline(
    State(daemon): State<Arc<Daemon>>,
    request: Request,
    next: Next,
) -> Response {
    let http = &daemon.config.http;
    let (parts, body) = request.into_parts();
    let limit = http.max_body_bytes;
    let deadline = Duration::from_millis(http.body_timeout_ms);
    let collect = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit));
    let bytes = match tokio::time::timeout(deadline, collect).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {limit} bytes"),
            )
            .into_response();
        }
        Ok(Err(e)) => {
            return ApiError::bad_request(format!("cannot read the request body: {e}"))
                .into_response();
        }
        Err(_) => {
            let mut r = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    http.body_timeout_ms
                ),
            )
            .into_response();
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return r;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Serve `app` on `listener` until `shutdown` completes, then drain open requests for
/// up to the shutdown deadline; returns when the shutdown began.
pub(super) async fn run(
    daemon: &Arc<Daemon>,
    app: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::time::Instant {
    let http = daemon.config.http.clone();
    let open = Arc::new(Semaphore::new(http.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_timeout_ms))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            daemon.metrics.connection_refused();
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(BUSY).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let service = tower::ServiceExt::map_request(app.clone(), move |mut r: Request<_>| {
            r.extensions_mut().insert(ConnectInfo(addr));
            r
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    let began = std::time::Instant::now();
    drop(listener);
    let deadline = Duration::from_millis(http.shutdown_deadline_ms);
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still open {} ms after shutdown began; closing them",
            http.shutdown_deadline_ms
        );
    }
    began
}
