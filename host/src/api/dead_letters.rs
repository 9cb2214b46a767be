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
