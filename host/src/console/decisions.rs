//! Decisions, newest first, filtered ([`RecordFilter`]) a page at a time; and the bulk
//! triage form the findings and decisions pages share.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::filter::{OUTCOMES, RecordFilter, SEVERITIES, SIZES, triage_name};
use super::guard::{Analyst, Posted};
use super::view::{Chrome, severity_class, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::triage::TriageError;
use crate::ledger::{CloseReason, StoredDecision, TriageStatus, Triaged};

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
    filter: RecordFilter,
    outcomes: [&'static str; 5],
    severities: [&'static str; 5],
    size: usize,
    sizes: [usize; 4],
    rows: Vec<Row>,
    next: Option<String>,
    this: String,
    notice: String,
}

/// `GET /console/decisions`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<RecordFilter>,
) -> Result<Response, PageError> {
    let checked = filter.check()?;
    blocking(move || {
        let triage_of = |d: &StoredDecision| {
            daemon
                .ledger
                .triage(&tenant, Triaged::Decision, d.seq)
                .map(|t| t.status)
        };
        let keep = |d: &StoredDecision| {
            let x = &d.decision;
            filter.matches(
                &checked,
                &x.subject,
                &x.finding,
                x.time_ms,
                Some(x.outcome.as_str()),
            ) && checked
                .triage
                .is_none_or(|want| triage_of(d).is_ok_and(|s| s == want))
        };
        let page = daemon
            .ledger
            .decisions_back(&tenant, filter.before, checked.size, keep)
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
        let this = filter.query(&checked);
        let next = page.next.map(|n| format!("{this}&before={n}"));
        Ok(render(&DecisionsPage {
            chrome: Chrome::new(&tenant, &session, "/console/decisions"),
            notice: filter.notice(),
            filter,
            outcomes: OUTCOMES,
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
