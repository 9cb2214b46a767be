//! `POST /v1/events`: ingest Slack Audit Logs entries (envelope or NDJSON) or generic
//! NDJSON events, optionally gzip-compressed. Accepted events are durable before the
//! answer; malformed lines are reported by number and the rest still go in.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::cluster::Node;
use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::ingest::Encoded;
use crate::ledger::inbox::{InboxError, Ingested};

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "application/ndjson",
];

/// Every member of a gzip body (concatenated streams, as `cat a.gz b.gz` or a parallel
/// compressor writes them), at most `limit` bytes; anything after the last member that
/// is not another member is an error, never silently ignored.
fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body is larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body(content = String, description = "A Slack Audit Logs envelope, a JSON array or NDJSON of entries, or generic NDJSON events; optionally gzip (`Content-Encoding: gzip`)", content_type = "application/x-ndjson"),
    responses((status = 200, description = "`{accepted, duplicates, first_seq, last_seq, errors}`: on disk before the answer; malformed lines named in `errors`"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 413, description = "Over the body or request bound", body = super::ApiErrorBody), (status = 415, description = "Not JSON or NDJSON", body = super::ApiErrorBody), (status = 429, description = "Over the tenant's rate or inbox bound; nothing stored", body = super::ApiErrorBody), (status = 403, description = "The tenant is suspended, or over a quota", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn ingest(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    node: Option<Extension<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = t.clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !CONTENT_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {content_type:?} is not one of {}",
                CONTENT_TYPES.join(", ")
            ),
        ));
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    // Decoding, parsing and storing block: they run on a blocking thread, so a large
    // request never holds up the runtime's threads (and other tenants' requests).
    let store = daemon.clone();
    if let Some(Extension(node)) = node {
        // A cluster node: the events go to the stream, and the answer waits for it.
        let (events, errors) = tokio::task::spawn_blocking(move || parse(&store, &t, gzip, &body))
            .await
            .map_err(ApiError::internal)??;
        let published =
            node.cluster.publish(&tenant, &events).await.map_err(|e| {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; retry"))
            })?;
        return Ok(Json(json!({
            "accepted": published.accepted,
            "duplicates": published.duplicates,
            "first_seq": null,
            "last_seq": null,
            "stream": {"first_seq": published.first_stream_seq, "last_seq": published.last_stream_seq},
            "rejected": errors.as_array().map_or(0, Vec::len),
            "errors": errors,
        })));
    }
    let (ingested, errors) = tokio::task::spawn_blocking(move || {
        let (events, errors) = parse(&store, &t, gzip, &body)?;
        Ok::<_, ApiError>((store_events(&store, &t, &events)?, errors))
    })
    .await
    .map_err(ApiError::internal)??;
    if ingested.accepted > 0 {
        daemon.inbox.durable().await.map_err(ApiError::internal)?;
    }
    daemon.wake.notify();
    Ok(Json(json!({
        "accepted": ingested.accepted,
        "duplicates": ingested.duplicates,
        "first_seq": ingested.first_seq,
        "last_seq": ingested.last_seq,
        "rejected": errors.as_array().map_or(0, Vec::len),
        "errors": errors,
    })))
}

/// Decode and parse a request body within the request and rate bounds: its events in
/// event-time order, and the rejected lines.
fn parse(
    daemon: &Daemon,
    t: &str,
    gzip: bool,
    body: &Bytes,
) -> Result<(Vec<Encoded>, Value), ApiError> {
    let limit = daemon.config.http.max_body_bytes;
    let inflated;
    let bytes: &[u8] = if gzip {
        inflated = decompress(body, limit)?;
        &inflated
    } else {
        body
    };
    let mut parsed = crate::ingest::parse_encoded(bytes);
    // Slack returns entries newest first; the inbox keeps each request in event-time order.
    parsed.events.sort_by_key(|e| e.time_ms);
    let errors = json!(parsed.errors);
    if parsed.events.is_empty() && !parsed.errors.is_empty() {
        return Err(ApiError::bad_request("no valid event in the body").with_errors(errors));
    }
    let max = daemon.config.ingest.max_events_per_request;
    if parsed.events.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} events in one request, the limit is {max}",
                parsed.events.len()
            ),
        ));
    }
    let per_second = daemon.config.quota(t).max_events_per_second;
    if let Err(wait) = daemon.rates.take(t, parsed.events.len(), per_second) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limit of {per_second} events per second; retry in {wait:.1} s"),
        ));
    }
    Ok((parsed.events, errors))
}

/// Store a request's events in the inbox (not yet durable).
fn store_events(daemon: &Daemon, t: &str, events: &[Encoded]) -> Result<Ingested, ApiError> {
    let bound = daemon.config.ingest.max_inbox_events;
    let processed = daemon.processed_seq(t).map_err(ApiError::internal)?;
    match daemon.inbox.store(t, events, processed, bound) {
        Ok(r) => {
            daemon.accepted(t, r.accepted);
            Ok(r)
        }
        Err(e @ InboxError::Full { .. }) => Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e)),
        Err(e) => Err(ApiError::internal(e)),
    }
}
