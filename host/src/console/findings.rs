//! Findings, newest first, filtered by subject, rule, severity, triage status and event
//! time, a page at a time; the page refreshes itself as findings are committed.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::guard::Analyst;
use super::view::{Chrome, severity_class, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::ledger::{StoredFinding, TriageStatus, Triaged};

/// Page sizes offered; the first is the default.
const SIZES: [usize; 4] = [100, 500, 1_000, 50];

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    severity: String,
    /// `open`, `acknowledged` or `closed`.
    #[serde(default)]
    triage: String,
    /// Event time from (`YYYY-MM-DDTHH:MM`, UTC, inclusive).
    #[serde(default)]
    since: String,
    /// Event time until (exclusive).
    #[serde(default)]
    until: String,
    /// Findings before this seq (the next page).
    #[serde(default)]
    before: Option<u64>,
    #[serde(default)]
    size: Option<usize>,
    /// How many the last triage set (a number only).
    #[serde(default)]
    triaged: Option<u32>,
}

/// A `datetime-local` value (UTC) as ms since the epoch; empty is `None`.
pub(super) fn time_field(name: &str, value: &str) -> Result<Option<i64>, PageError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            PageError::bad_request(format!(
                "`{name}` must be a date and time like 2026-01-05T14:04 (UTC)"
            ))
        })
}

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
    filter: Filter,
    size: usize,
    sizes: [usize; 4],
    rows: Vec<Row>,
    /// The query string of the next page.
    next: Option<String>,
    /// The query string of this page without its position (for the live refresh).
    this: String,
    notice: String,
}

pub(super) fn triage_name(s: TriageStatus) -> &'static str {
    match s {
        TriageStatus::Open => "open",
        TriageStatus::Acknowledged => "acknowledged",
        TriageStatus::Closed => "closed",
    }
}

/// The filter as a query string (without its position).
fn query(f: &Filter, size: usize) -> String {
    serde_html_form::to_string([
        ("subject", f.subject.as_str()),
        ("rule", f.rule.as_str()),
        ("severity", f.severity.as_str()),
        ("triage", f.triage.as_str()),
        ("since", f.since.as_str()),
        ("until", f.until.as_str()),
        ("size", &size.to_string()),
    ])
    .unwrap_or_default()
}

/// `GET /console/findings`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    let since = time_field("since", &filter.since)?;
    let until = time_field("until", &filter.until)?;
    let size = filter
        .size
        .filter(|s| SIZES.contains(s))
        .unwrap_or(SIZES[0]);
    let triage = super::decisions::triage_filter(&filter.triage)?;
    blocking(move || {
        let triage_of = |f: &StoredFinding| {
            daemon
                .ledger
                .triage(&tenant, Triaged::Finding, f.seq)
                .map(|t| t.status)
        };
        let keep = |f: &StoredFinding| {
            let r = &f.finding;
            (filter.subject.is_empty() || r.subject == filter.subject)
                && (filter.rule.is_empty() || r.rule == filter.rule || r.plugin == filter.rule)
                && (filter.severity.is_empty() || r.severity == filter.severity)
                && since.is_none_or(|t| r.time_ms >= t)
                && until.is_none_or(|t| r.time_ms < t)
                && triage.is_none_or(|want| triage_of(f).is_ok_and(|s| s == want))
        };
        let page = daemon
            .ledger
            .findings_back(&tenant, filter.before, size, keep)
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
        let this = query(&filter, size);
        let next = page.next.map(|n| format!("{this}&before={n}"));
        let notice = filter
            .triaged
            .map(|n| format!("{n} triaged"))
            .unwrap_or_default();
        Ok(render(&FindingsPage {
            chrome: Chrome::new(&tenant, &session, "/console/findings"),
            filter,
            size,
            sizes: SIZES,
            rows,
            next,
            this,
            notice,
        }))
    })
    .await
}
