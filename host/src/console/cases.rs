//! One case, walked from start to end: the event a finding is dated from (while the
//! inbox keeps it) and the evidence it names, the finding, the decision and its
//! reason, the review if a person was asked, and each effect with what became of it.
//! A finding and its decision are matched among the newest
//! [`crate::ledger::MAX_SCANNED`] records of the other kind.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::filter::triage_name;
use super::guard::Analyst;
use super::view::{Chrome, severity_class, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::ledger::{ReviewState, StoredDecision, StoredFinding, Triaged};

/// The event a finding is dated from.
struct EventView {
    seq: u64,
    id: String,
    time: String,
    action: String,
    actor: String,
    target: String,
    ip: String,
    user_agent: String,
    session: String,
    details: Vec<(String, String)>,
}

struct FindingView {
    seq: u64,
    time: String,
    rule: String,
    plugin: String,
    version: String,
    severity: String,
    severity_class: &'static str,
    score: String,
    summary: String,
    evidence: Vec<String>,
    attributes: Vec<(String, String)>,
    triage: &'static str,
}

struct DecisionView {
    seq: u64,
    time: String,
    subject: String,
    outcome: &'static str,
    reason: String,
    corroborating: Vec<String>,
    triage: &'static str,
}

struct EffectView {
    action: String,
    target: String,
    responder: String,
    status: String,
    detail: String,
    approved_by: String,
    time: String,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage {
    chrome: Chrome,
    event: Option<EventView>,
    finding: Option<FindingView>,
    decision: Option<DecisionView>,
    /// The review, in words, and its id.
    review: Option<(u64, String)>,
    effects: Vec<EffectView>,
}

fn entity(e: &aer_wire::EntityRef<'_>) -> String {
    [e.kind, e.id, e.name, e.email]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The event at `seq` in `tenant`'s inbox, while it is kept.
fn event(daemon: &Daemon, tenant: &str, seq: u64) -> Result<Option<EventView>, PageError> {
    let read = daemon
        .inbox
        .read(tenant, seq, 1)
        .map_err(PageError::internal)?;
    let Some((_, bytes)) = read.iter().find(|(s, _)| *s == seq) else {
        return Ok(None);
    };
    let Ok(e) = aer_wire::decode_event(bytes) else {
        return Ok(None);
    };
    Ok(Some(EventView {
        seq,
        id: e.id.to_owned(),
        time: when(e.time_ms),
        action: e.action.to_owned(),
        actor: entity(&e.actor),
        target: e.target.as_ref().map(entity).unwrap_or_default(),
        ip: e.context.ip.to_owned(),
        user_agent: e.context.user_agent.to_owned(),
        session: e.context.session_id.to_owned(),
        details: e
            .details()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }))
}

fn finding_view(
    daemon: &Daemon,
    tenant: &str,
    f: &StoredFinding,
) -> Result<FindingView, PageError> {
    let r = &f.finding;
    let triage = daemon
        .ledger
        .triage(tenant, Triaged::Finding, f.seq)
        .map_err(PageError::internal)?;
    Ok(FindingView {
        seq: f.seq,
        time: when(r.time_ms),
        rule: r.rule.clone(),
        plugin: r.plugin.clone(),
        version: r.plugin_version.clone(),
        severity: r.severity.clone(),
        severity_class: severity_class(&r.severity),
        score: format!("{:.2}", r.score),
        summary: r.summary.clone(),
        evidence: r.evidence.clone(),
        attributes: r
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        triage: triage_name(triage.status),
    })
}

/// Render the case of `decision` (if any) about `finding` (if found).
fn case(
    daemon: &Daemon,
    tenant: &str,
    chrome: Chrome,
    finding: Option<StoredFinding>,
    decision: Option<StoredDecision>,
) -> Result<Response, PageError> {
    let event = match &finding {
        Some(f) => event(daemon, tenant, f.event_seq)?,
        None => None,
    };
    let finding_view = finding
        .as_ref()
        .map(|f| finding_view(daemon, tenant, f))
        .transpose()?;
    let mut effects = Vec::new();
    let mut review = None;
    let decision_view = match &decision {
        None => None,
        Some(d) => {
            let x = &d.decision;
            for (_, e) in daemon
                .ledger
                .decision_actions(tenant, &x.id)
                .map_err(PageError::internal)?
            {
                effects.push(EffectView {
                    time: when(e.time_ms),
                    action: e.action,
                    target: e.target,
                    responder: e.responder,
                    status: e.status,
                    detail: e.detail,
                    approved_by: e.approved_by,
                });
            }
            if let Some(r) = daemon
                .ledger
                .review(tenant, d.seq)
                .map_err(PageError::internal)?
            {
                let words = match r.state {
                    ReviewState::Open => {
                        format!("{} review, waiting for a person", r.kind.as_str())
                    }
                    state => format!(
                        "{} review, {} by {} at {}{}",
                        r.kind.as_str(),
                        state.as_str(),
                        r.resolved_by,
                        when(r.resolved_ms),
                        r.dismissal
                            .map(|d| format!(" ({})", d.as_str()))
                            .unwrap_or_default()
                    ),
                };
                review = Some((r.id, words));
            }
            let triage = daemon
                .ledger
                .triage(tenant, Triaged::Decision, d.seq)
                .map_err(PageError::internal)?;
            Some(DecisionView {
                seq: d.seq,
                time: when(x.time_ms),
                subject: x.subject.clone(),
                outcome: x.outcome.as_str(),
                reason: x.reason.clone(),
                corroborating: x.corroborating_rules.clone(),
                triage: triage_name(triage.status),
            })
        }
    };
    Ok(render(&CasePage {
        chrome,
        event,
        finding: finding_view,
        decision: decision_view,
        review,
        effects,
    }))
}

/// `GET /console/decisions/{seq}`.
pub(super) async fn decision(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Path(seq): Path<u64>,
) -> Result<Response, PageError> {
    blocking(move || {
        let d = daemon
            .ledger
            .decision(&tenant, seq)
            .map_err(PageError::internal)?
            .ok_or_else(|| PageError::not_found(format!("no decision {seq}")))?;
        // Its finding: the one committed when the decision says, with the same record.
        let f = daemon
            .ledger
            .findings_back(&tenant, None, 1, |f: &StoredFinding| {
                f.committed_ms == d.finding_committed_ms && f.finding == d.decision.finding
            })
            .map_err(PageError::internal)?
            .items
            .pop();
        let chrome = Chrome::new(&tenant, &session, "/console/decisions");
        case(&daemon, &tenant, chrome, f, Some(d))
    })
    .await
}

/// `GET /console/findings/{seq}`.
pub(super) async fn finding(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Path(seq): Path<u64>,
) -> Result<Response, PageError> {
    blocking(move || {
        let f = daemon
            .ledger
            .finding(&tenant, seq)
            .map_err(PageError::internal)?
            .ok_or_else(|| PageError::not_found(format!("no finding {seq}")))?;
        let d = daemon
            .ledger
            .decisions_back(&tenant, None, 1, |d: &StoredDecision| {
                d.finding_committed_ms == f.committed_ms && d.decision.finding == f.finding
            })
            .map_err(PageError::internal)?
            .items
            .pop();
        let chrome = Chrome::new(&tenant, &session, "/console/findings");
        case(&daemon, &tenant, chrome, Some(f), d)
    })
    .await
}
