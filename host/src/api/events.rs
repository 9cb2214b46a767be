//! `POST /v1/events`: ingest Slack Audit Logs entries (envelope or NDJSON) or generic
//! NDJSON events, optionally gzip-compressed. Accepted events are durable before the
//! answer; malformed lines are reported by number and the rest still go in.

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::ledger::inbox::InboxError;

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
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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
    let (ingested, errors) =
        tokio::task::spawn_blocking(move || parse_and_store(&store, &t, gzip, &body))
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

/// Decode and parse a request body and store its events (not yet durable): what was
/// stored and the rejected lines.
fn parse_and_store(
    daemon: &Daemon,
    t: &str,
    gzip: bool,
    body: &Bytes,
) -> Result<(crate::ledger::inbox::Ingested, Value), ApiError> {
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
    let bound = daemon.config.ingest.max_inbox_events;
    let processed = daemon.processed_seq(t).map_err(ApiError::internal)?;
    match daemon.inbox.store(t, &parsed.events, processed, bound) {
        Ok(r) => {
            daemon.accepted(t, r.accepted);
            Ok((r, errors))
        }
        Err(e @ InboxError::Full { .. }) => Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e)),
        Err(e) => Err(ApiError::internal(e)),
    }
}
