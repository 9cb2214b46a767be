//! The operator's page: every tenant, its state, plugins and events received.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::guard::OperatorSession;
use super::view::{Chrome, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;

struct Row {
    name: String,
    created: String,
    state: &'static str,
    plugins: usize,
    inbox: u64,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

/// `GET /console/tenants`.
pub(super) async fn page(
    OperatorSession(session): OperatorSession,
    State(daemon): State<Arc<Daemon>>,
) -> Result<Response, PageError> {
    blocking(move || {
        let mut rows = Vec::new();
        for t in daemon.tenants().map_err(PageError::internal)? {
            rows.push(Row {
                plugins: daemon.plugins(&t.name).map_err(PageError::internal)?.len(),
                inbox: daemon
                    .inbox
                    .next_seq(&t.name)
                    .map_err(PageError::internal)?,
                created: when(t.created_ms),
                state: if t.suspended { "suspended" } else { "active" },
                name: t.name,
            });
        }
        Ok(render(&TenantsPage {
            chrome: Chrome::operator(&session, "/console/tenants"),
            rows,
        }))
    })
    .await
}
