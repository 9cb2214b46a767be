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
use crate::daemon::keys::{self, kind};

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
    let from = page.after.map_or(0, |a| a.saturating_add(1));
    let range =
        keys::seq_key(kind::DEAD_LETTER, &t, from)..keys::seq_key(kind::DEAD_LETTER, &t, u64::MAX);
    let mut items = Vec::new();
    let mut next = None;
    for (scanned, r) in daemon.pipeline.range(range).enumerate() {
        if scanned == 10_000 || items.len() == limit {
            break;
        }
        let (k, v) = r.map_err(ApiError::internal)?;
        next = keys::seq_of(&k);
        let letter: DeadLetter = serde_json::from_slice(&v).map_err(ApiError::internal)?;
        if page.plugin.as_ref().is_none_or(|p| *p == letter.plugin) {
            items.push(letter);
        }
    }
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
