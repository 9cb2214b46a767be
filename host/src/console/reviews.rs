//! The review queue: escalations and effects held for approval, approved or dismissed
//! (with a reason, and for a false positive an optional suppression) in bulk, signed
//! with the name the analyst signed in with.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{Analyst, Posted};
use super::view::{Chrome, severity_class, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::reviews::{Dismiss, ReviewError};
use crate::ledger::{Dismissal, Review, ReviewState};

/// Reviews on a page.
const PAGE: usize = 50;
/// Most reviews one form approves or dismisses.
const MAX_BULK: usize = 1_000;
/// Longest suppression a dismissal adds, in days (longer: for good).
const MAX_SUPPRESS_DAYS: u32 = 3_650;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    /// `open` (default), `approved`, `dismissed` or `all`.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    after: Option<u64>,
    /// What the last bulk action did (numbers only: nothing from the link is shown as
    /// text).
    #[serde(default)]
    approved: Option<u32>,
    #[serde(default)]
    dismissed: Option<u32>,
    #[serde(default)]
    skipped: Option<u32>,
}

/// One row of the queue.
struct Row {
    id: u64,
    open: bool,
    kind: &'static str,
    subject: String,
    rule: String,
    severity: String,
    severity_class: &'static str,
    reason: String,
    opened: String,
    /// `action target (status)` per held effect.
    effects: Vec<String>,
    /// Who resolved it, and how.
    resolution: String,
}

#[derive(Template)]
#[template(path = "console/reviews.html")]
struct ReviewsPage {
    chrome: Chrome,
    state: String,
    subject: String,
    rows: Vec<Row>,
    next: Option<u64>,
    notice: String,
}

fn row(daemon: &Daemon, tenant: &str, r: &Review) -> Result<Row, PageError> {
    let effects = daemon
        .ledger
        .decision_actions(tenant, &r.decision_id)
        .map_err(PageError::internal)?
        .into_iter()
        .filter(|(_, e)| !crate::pipeline::respond::is_refusal(&e.action))
        .map(|(_, e)| format!("{} {} ({})", e.action, e.target, e.status))
        .collect();
    let resolution = match r.state {
        ReviewState::Open => String::new(),
        ReviewState::Approved => {
            format!("approved by {} at {}", r.resolved_by, when(r.resolved_ms))
        }
        ReviewState::Dismissed => format!(
            "dismissed ({}) by {} at {}",
            r.dismissal.map_or("", Dismissal::as_str),
            r.resolved_by,
            when(r.resolved_ms)
        ),
    };
    Ok(Row {
        id: r.id,
        open: r.state == ReviewState::Open,
        kind: r.kind.as_str(),
        subject: r.subject.clone(),
        rule: r.rule.clone(),
        severity: r.severity.clone(),
        severity_class: severity_class(&r.severity),
        reason: r.reason.clone(),
        opened: when(r.opened_ms),
        effects,
        resolution,
    })
}

/// How many of `tenant`'s reviews are open (among the first
/// [`crate::ledger::MAX_SCANNED`]).
pub(super) fn open_reviews(daemon: &Daemon, tenant: &str) -> Result<usize, PageError> {
    Ok(daemon
        .ledger
        .reviews(tenant, None, crate::ledger::MAX_SCANNED, |r| {
            r.state == ReviewState::Open
        })
        .map_err(PageError::internal)?
        .items
        .len())
}

/// What the last bulk action did, in words.
fn notice(f: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(n) = f.approved {
        parts.push(format!("{n} approved"));
    }
    if let Some(n) = f.dismissed {
        parts.push(format!("{n} dismissed"));
    }
    if let Some(n) = f.skipped.filter(|n| *n > 0) {
        parts.push(format!(
            "{n} skipped (resolved already, or no longer there)"
        ));
    }
    parts.join("; ")
}

/// `GET /console/reviews`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    blocking(move || {
        let state = match filter.state.as_deref().unwrap_or("open") {
            "open" => Some(ReviewState::Open),
            "approved" => Some(ReviewState::Approved),
            "dismissed" => Some(ReviewState::Dismissed),
            "all" => None,
            other => return Err(PageError::bad_request(format!("no review state {other:?}"))),
        };
        let subject = filter.subject.clone().filter(|s| !s.is_empty());
        let page = daemon
            .ledger
            .reviews(&tenant, filter.after, PAGE, |r| {
                state.is_none_or(|s| s == r.state)
                    && subject.as_ref().is_none_or(|s| *s == r.subject)
            })
            .map_err(PageError::internal)?;
        let rows = page
            .items
            .iter()
            .map(|r| row(&daemon, &tenant, r))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if page.items.len() == PAGE {
            page.next
        } else {
            None
        };
        Ok(render(&ReviewsPage {
            chrome: Chrome::new(&tenant, &session, "/console/reviews"),
            state: state.map_or("all", ReviewState::as_str).to_owned(),
            subject: subject.unwrap_or_default(),
            rows,
            next,
            notice: notice(&filter),
        }))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct Bulk {
    /// The reviews ticked.
    #[serde(default)]
    review: Vec<u64>,
    /// A row's own button: this review alone.
    #[serde(default)]
    only: Option<u64>,
    /// Dismissal: `false_positive`, `benign` or `duplicate`.
    #[serde(default)]
    reason: Option<Dismissal>,
    #[serde(default)]
    note: String,
    /// Dismissal as a false positive: suppress the rule for the subject.
    #[serde(default)]
    suppress: Option<String>,
    /// For how many days (empty: for good).
    #[serde(default)]
    suppress_days: Option<String>,
}

impl Bulk {
    /// The reviews to act on: a row's own button, else those ticked.
    fn ids(&self) -> Result<Vec<u64>, PageError> {
        let ids = match self.only {
            Some(id) => vec![id],
            None => self.review.clone(),
        };
        if ids.is_empty() {
            return Err(PageError::bad_request(
                "tick the reviews to act on (none was ticked)",
            ));
        }
        if ids.len() > MAX_BULK {
            return Err(PageError::bad_request(format!(
                "at most {MAX_BULK} reviews at once"
            )));
        }
        Ok(ids)
    }
}

/// Tally one review's outcome: done, or skipped because another person resolved it
/// first or it is gone; any other failure stops the form.
fn tally(
    result: Result<(), ReviewError>,
    done: &mut u32,
    skipped: &mut u32,
) -> Result<(), PageError> {
    match result {
        Ok(()) => *done += 1,
        Err(ReviewError::NotOpen { .. } | ReviewError::NotFound(_)) => *skipped += 1,
        Err(ReviewError::Invalid(why)) => return Err(PageError::bad_request(why)),
        Err(ReviewError::Daemon(e)) => return Err(PageError::internal(e)),
    }
    Ok(())
}

/// `POST /console/reviews/approve`.
pub(super) async fn approve(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<Bulk>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let ids = posted.form.ids()?;
    let (done, skipped) = blocking(move || {
        let (mut done, mut skipped) = (0, 0);
        for id in ids {
            let result = daemon.approve_review(&tenant, id, &session.name).map(drop);
            tally(result, &mut done, &mut skipped)?;
        }
        Ok((done, skipped))
    })
    .await?;
    Ok(Redirect::to(&format!(
        "/console/reviews?approved={done}&skipped={skipped}"
    ))
    .into_response())
}

/// `POST /console/reviews/dismiss`.
pub(super) async fn dismiss(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<Bulk>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let form = posted.form;
    let ids = form.ids()?;
    let reason = form
        .reason
        .ok_or_else(|| PageError::bad_request("choose why the reviews are dismissed"))?;
    let suppress = match (
        form.suppress.is_some(),
        form.suppress_days.as_deref().map(str::trim),
    ) {
        (false, _) => None,
        (true, None | Some("")) => Some(None),
        (true, Some(days)) => {
            let days: u32 = days
                .parse()
                .ok()
                .filter(|d| (1..=MAX_SUPPRESS_DAYS).contains(d))
                .ok_or_else(|| {
                    PageError::bad_request(format!(
                        "suppress for 1 to {MAX_SUPPRESS_DAYS} days, or leave the days empty for good"
                    ))
                })?;
            Some(Some(
                crate::daemon::now_ms().saturating_add(i64::from(days) * 86_400_000),
            ))
        }
    };
    let note = form.note;
    let (done, skipped) = blocking(move || {
        let (mut done, mut skipped) = (0, 0);
        for id in ids {
            let dismiss = Dismiss {
                reason,
                note: note.clone(),
                suppress,
            };
            let result = daemon
                .dismiss_review(&tenant, id, &session.name, dismiss)
                .map(drop);
            tally(result, &mut done, &mut skipped)?;
        }
        Ok((done, skipped))
    })
    .await?;
    Ok(Redirect::to(&format!(
        "/console/reviews?dismissed={done}&skipped={skipped}"
    ))
    .into_response())
}
