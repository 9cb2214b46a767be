//! `GET /v1/dead-letters` (paged by `after`/`limit`, optionally by `plugin`) and
//! `POST /v1/dead-letters/{seq}/replay`: the events a detector faulted on every time,
//! and running one again after a fix (see `daemon/dead_letters.rs`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Tenant};
use crate::daemon::Daemon;
use crate::daemon::dead_letters::DeadLetter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    after: Option<u64>,
    limit: Option<usize>,
    plugin: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead letters",
    params(("plugin" = Option<String>, Query, description = "Only of this detector"), ("after" = Option<u64>, Query, description = "The `next` of the previous page"), ("limit" = Option<u32>, Query, description = "Most items (default 100, at most 1000)")),
    responses((status = 200, description = "`{items, next}`: events a detector faulted on every time"), (status = 400, description = "A bad request: the error says why (with `errors` naming fields)", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn list(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let found = daemon
        .ledger
        .dead_letters(&t, page.after, limit, |l| {
            page.plugin.as_ref().is_none_or(|p| *p == l.plugin)
        })
        .map_err(ApiError::internal)?;
    let (items, next) = (found.items, found.next);
    Ok(Json(json!({"items": items, "next": next})))
}

#[utoipa::path(
    post,
    path = "/v1/dead-letters/{seq}/replay",
    tag = "dead letters",
    params(("seq" = u64, Path, description = "The dead letter's seq")),
    responses((status = 200, description = "The dead letter, marked `replay`: its detector runs it alone before its next batch"), (status = 404, description = "The tenant has no such thing", body = super::ApiErrorBody), (status = 401, description = "No valid token", body = super::ApiErrorBody)),
    security(("tenant_token" = []))
)]
pub(super) async fn replay(
    Tenant(t): Tenant,
    State(daemon): State<Arc<Daemon>>,
    Path(seq): Path<u64>,
) -> Result<Json<DeadLetter>, ApiError> {
    match daemon
        .replay_dead_letter(&t, seq)
        .map_err(ApiError::internal)?
    {
        Some(letter) => Ok(Json(letter)),
        None => Err(ApiError::not_found(format!("no dead letter {seq}"))),
    }
}
