//! Findings, newest first, filtered ([`RecordFilter`]) a page at a time; the page
//! refreshes itself as findings are committed.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::filter::{RecordFilter, SEVERITIES, SIZES, triage_name};
use super::guard::Analyst;
use super::view::{Chrome, severity_class, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::ledger::{StoredFinding, Triaged};

/// One row.
struct Row {
    seq: u64,
    time: String,
    subject: String,
    rule: String,
    severity: String,
    severity_class: &'static str,
    score: String,
    summary: String,
    plugin: String,
    triage: &'static str,
}

#[derive(Template)]
#[template(path = "console/findings.html")]
struct FindingsPage {
    chrome: Chrome,
    filter: RecordFilter,
    severities: [&'static str; 5],
    size: usize,
    sizes: [usize; 4],
    rows: Vec<Row>,
    /// The query string of the next page.
    next: Option<String>,
    /// The query string of this page without its position (for the live refresh).
    this: String,
    notice: String,
}

/// `GET /console/findings`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<RecordFilter>,
) -> Result<Response, PageError> {
    let checked = filter.check()?;
    if !filter.outcome.is_empty() {
        return Err(PageError::bad_request(
            "findings have no outcome: filter decisions by it",
        ));
    }
    blocking(move || {
        let triage_of = |f: &StoredFinding| {
            daemon
                .ledger
                .triage(&tenant, Triaged::Finding, f.seq)
                .map(|t| t.status)
        };
        let keep = |f: &StoredFinding| {
            let r = &f.finding;
            filter.matches(&checked, &r.subject, r, r.time_ms, None)
                && checked
                    .triage
                    .is_none_or(|want| triage_of(f).is_ok_and(|s| s == want))
        };
        let page = daemon
            .ledger
            .findings_back(&tenant, filter.before, checked.size, keep)
            .map_err(PageError::internal)?;
        let mut rows = Vec::with_capacity(page.items.len());
        for f in &page.items {
            let r = &f.finding;
            rows.push(Row {
                seq: f.seq,
                time: when(r.time_ms),
                subject: r.subject.clone(),
                rule: r.rule.clone(),
                severity: r.severity.clone(),
                severity_class: severity_class(&r.severity),
                score: format!("{:.2}", r.score),
                summary: r.summary.clone(),
                plugin: r.plugin.clone(),
                triage: triage_name(triage_of(f).map_err(PageError::internal)?),
            });
        }
        let this = filter.query(&checked);
        let next = page.next.map(|n| format!("{this}&before={n}"));
        Ok(render(&FindingsPage {
            chrome: Chrome::new(&tenant, &session, "/console/findings"),
            notice: filter.notice(),
            filter,
            severities: SEVERITIES,
            size: checked.size,
            sizes: SIZES,
            rows,
            next,
            this,
        }))
    })
    .await
}
