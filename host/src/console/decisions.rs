//! Decisions, newest first, filtered by subject, rule, outcome, severity, triage status
//! and event time; and the bulk triage form the findings and decisions pages share.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::findings::{time_field, triage_name};
use super::guard::{Analyst, Posted};
use super::view::{Chrome, severity_class, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::triage::TriageError;
use crate::ledger::{CloseReason, StoredDecision, TriageStatus, Triaged};

/// Page sizes offered; the first is the default.
const SIZES: [usize; 4] = [100, 500, 1_000, 50];

/// The outcomes a filter may name.
pub(super) const OUTCOMES: [&str; 5] = ["respond", "dry-run", "escalate", "pending", "suppressed"];

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    triage: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<u64>,
    #[serde(default)]
    size: Option<usize>,
    /// How many the last triage set (a number only).
    #[serde(default)]
    triaged: Option<u32>,
}

struct Row {
    seq: u64,
    time: String,
    subject: String,
    outcome: &'static str,
    reason: String,
    rule: String,
    severity: String,
    severity_class: &'static str,
    triage: &'static str,
}

#[derive(Template)]
#[template(path = "console/decisions.html")]
struct DecisionsPage {
    chrome: Chrome,
    filter: Filter,
    outcomes: [&'static str; 5],
    size: usize,
    sizes: [usize; 4],
    rows: Vec<Row>,
    next: Option<String>,
    this: String,
    notice: String,
}

fn query(f: &Filter, size: usize) -> String {
    serde_html_form::to_string([
        ("subject", f.subject.as_str()),
        ("rule", f.rule.as_str()),
        ("outcome", f.outcome.as_str()),
        ("severity", f.severity.as_str()),
        ("triage", f.triage.as_str()),
        ("since", f.since.as_str()),
        ("until", f.until.as_str()),
        ("size", &size.to_string()),
    ])
    .unwrap_or_default()
}

/// A triage status a filter names (empty: any).
pub(super) fn triage_filter(value: &str) -> Result<Option<TriageStatus>, PageError> {
    match value {
        "" => Ok(None),
        "open" => Ok(Some(TriageStatus::Open)),
        "acknowledged" => Ok(Some(TriageStatus::Acknowledged)),
        "closed" => Ok(Some(TriageStatus::Closed)),
        other => Err(PageError::bad_request(format!(
            "no triage status {other:?}"
        ))),
    }
}

/// `GET /console/decisions`.
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
    let triage = triage_filter(&filter.triage)?;
    if !filter.outcome.is_empty() && !OUTCOMES.contains(&filter.outcome.as_str()) {
        return Err(PageError::bad_request(format!(
            "no outcome {:?}",
            filter.outcome
        )));
    }
    blocking(move || {
        let triage_of = |d: &StoredDecision| {
            daemon
                .ledger
                .triage(&tenant, Triaged::Decision, d.seq)
                .map(|t| t.status)
        };
        let keep = |d: &StoredDecision| {
            let (x, f) = (&d.decision, &d.decision.finding);
            (filter.subject.is_empty() || x.subject == filter.subject)
                && (filter.rule.is_empty() || f.rule == filter.rule || f.plugin == filter.rule)
                && (filter.outcome.is_empty() || x.outcome.as_str() == filter.outcome)
                && (filter.severity.is_empty() || f.severity == filter.severity)
                && since.is_none_or(|t| x.time_ms >= t)
                && until.is_none_or(|t| x.time_ms < t)
                && triage.is_none_or(|want| triage_of(d).is_ok_and(|s| s == want))
        };
        let page = daemon
            .ledger
            .decisions_back(&tenant, filter.before, size, keep)
            .map_err(PageError::internal)?;
        let mut rows = Vec::with_capacity(page.items.len());
        for d in &page.items {
            let (x, f) = (&d.decision, &d.decision.finding);
            rows.push(Row {
                seq: d.seq,
                time: when(x.time_ms),
                subject: x.subject.clone(),
                outcome: x.outcome.as_str(),
                reason: x.reason.clone(),
                rule: f.rule.clone(),
                severity: f.severity.clone(),
                severity_class: severity_class(&f.severity),
                triage: triage_name(triage_of(d).map_err(PageError::internal)?),
            });
        }
        let this = query(&filter, size);
        let next = page.next.map(|n| format!("{this}&before={n}"));
        let notice = filter
            .triaged
            .map(|n| format!("{n} triaged"))
            .unwrap_or_default();
        Ok(render(&DecisionsPage {
            chrome: Chrome::new(&tenant, &session, "/console/decisions"),
            filter,
            outcomes: OUTCOMES,
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

#[derive(Debug, Deserialize)]
pub(super) struct TriageForm {
    #[serde(default)]
    finding: Vec<u64>,
    #[serde(default)]
    decision: Vec<u64>,
    status: TriageStatus,
    /// Required to close (empty otherwise).
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
    /// The page to go back to: `findings` or `decisions`.
    #[serde(default)]
    back: String,
}

/// `POST /console/triage`: set the triage of the ticked findings or decisions.
pub(super) async fn triage(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<TriageForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let form = posted.form;
    let back = match form.back.as_str() {
        "findings" => "/console/findings",
        _ => "/console/decisions",
    };
    let reason = match form.reason.as_str() {
        "" => None,
        other => Some(
            serde_json::from_value::<CloseReason>(serde_json::Value::String(other.to_owned()))
                .map_err(|_| PageError::bad_request(format!("no close reason {other:?}")))?,
        ),
    };
    let items: Vec<(Triaged, u64)> = form
        .finding
        .iter()
        .map(|s| (Triaged::Finding, *s))
        .chain(form.decision.iter().map(|s| (Triaged::Decision, *s)))
        .collect();
    if items.is_empty() {
        return Err(PageError::bad_request(
            "tick what to triage (nothing was ticked)",
        ));
    }
    let n = items.len();
    blocking(move || {
        daemon
            .triage(
                &tenant,
                &items,
                form.status,
                reason,
                &form.note,
                &session.name,
            )
            .map_err(|e| match e {
                TriageError::Invalid(why) => PageError::bad_request(why),
                TriageError::Unknown(_) => PageError::bad_request(e),
                TriageError::Daemon(e) => PageError::internal(e),
            })
    })
    .await?;
    Ok(Redirect::to(&format!("{back}?triaged={n}")).into_response())
}
