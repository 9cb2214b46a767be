//! The action log: every effect responders asked for and what became of it, filtered
//! by target, decision, kind and status, a page at a time in the log's own order.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::guard::Analyst;
use super::view::{Chrome, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::ledger::LedgerError;

/// Entries on a page.
const PAGE: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    #[serde(default)]
    target: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    status: String,
    /// The `next` of the previous page.
    #[serde(default)]
    after: Option<String>,
}

struct Row {
    time: String,
    action: String,
    target: String,
    responder: String,
    status: String,
    detail: String,
    approved_by: String,
    decision: String,
}

#[derive(Template)]
#[template(path = "console/actions.html")]
struct ActionsPage {
    chrome: Chrome,
    filter: Filter,
    rows: Vec<Row>,
    next: Option<String>,
}

/// `GET /console/actions`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    blocking(move || {
        let page = daemon
            .ledger
            .actions(&tenant, filter.after.as_deref(), PAGE, |a| {
                (filter.target.is_empty() || a.target == filter.target)
                    && (filter.decision.is_empty() || a.decision_id == filter.decision)
                    && (filter.action.is_empty() || a.action == filter.action)
                    && (filter.status.is_empty() || a.status == filter.status)
            })
            .map_err(|e| match e {
                LedgerError::BadCursor => PageError::bad_request(e),
                e => PageError::internal(e),
            })?;
        let mut items = page.items;
        items.sort_by_key(|a| std::cmp::Reverse(a.time_ms));
        let rows = items
            .into_iter()
            .map(|a| Row {
                time: when(a.time_ms),
                action: a.action,
                target: a.target,
                responder: a.responder,
                status: a.status,
                detail: a.detail,
                approved_by: a.approved_by,
                decision: a.decision_id,
            })
            .collect();
        let next = page.next.map(|n| {
            serde_html_form::to_string([
                ("target", filter.target.as_str()),
                ("decision", filter.decision.as_str()),
                ("action", filter.action.as_str()),
                ("status", filter.status.as_str()),
                ("after", n.as_str()),
            ])
            .unwrap_or_default()
        });
        Ok(render(&ActionsPage {
            chrome: Chrome::new(&tenant, &session, "/console/actions"),
            filter,
            rows,
            next,
        }))
    })
    .await
}
