//! `POST /v1/triage`: set where findings and decisions stand with the people triaging
//! them (open, acknowledged, closed with a reason), in bulk. Listings show it as
//! `triage`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::reviews::{body, signer};
use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::daemon::triage::TriageError;
use crate::ledger::{CloseReason, TriageStatus, Triaged};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// Finding seqs.
    #[serde(default)]
    findings: Vec<u64>,
    /// Decision seqs.
    #[serde(default)]
    decisions: Vec<u64>,
    status: TriageStatus,
    /// Required to close, refused otherwise.
    #[serde(default)]
    reason: Option<CloseReason>,
    #[serde(default)]
    note: String,
    by: String,
}

#[utoipa::path(
    post,
    path = "/v1/triage",
    tag = "findings",
    request_body(content = Object, description = "`{findings: [seq], decisions: [seq], status, reason, note, by}`: `status` is `open`, `acknowledged` or `closed`; closing needs `reason` (`resolved`, `false_positive`, `benign`, `duplicate`); at most 1,000 items", content_type = "application/json"),
    responses((status = 200, description = "`{updated, triage}`: every item set, or none (an unknown seq refuses the whole request)"), (status = 400, description = "A bad request: the error says why (with `errors` naming unknown items)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn set(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    text: String,
) -> Result<Json<Value>, ApiError> {
    let asked: Request = body(&text)?;
    let by = signer(&asked.by)?;
    let items: Vec<(Triaged, u64)> = asked
        .findings
        .iter()
        .map(|s| (Triaged::Finding, *s))
        .chain(asked.decisions.iter().map(|s| (Triaged::Decision, *s)))
        .collect();
    tokio::task::spawn_blocking(move || {
        match daemon.triage(&t, &items, asked.status, asked.reason, &asked.note, &by) {
            Ok(triage) => Ok(Json(json!({"updated": items.len(), "triage": triage}))),
            Err(TriageError::Unknown(unknown)) => {
                Err(ApiError::bad_request("unknown findings or decisions")
                    .with_errors(json!(unknown)))
            }
            Err(TriageError::Invalid(why)) => Err(ApiError::bad_request(why)),
            Err(TriageError::Daemon(e)) => Err(ApiError::internal(e)),
        }
    })
    .await
    .map_err(ApiError::internal)?
}
