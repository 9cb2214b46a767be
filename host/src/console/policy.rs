//! The tenant's decision policy: an editor whose refusals name each field, the
//! allowlist and notification routes at a glance, the suppressions (each removable),
//! and the dry-run / enforce switch behind a confirmation that says what will change.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{Analyst, Posted};
use super::view::{Chrome, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::sessions::Session;
use crate::pipeline::policy::{FieldError, Mode, Policy};

struct SuppressionRow {
    id: u64,
    subject: String,
    rule: String,
    expires: String,
    by: String,
    review: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    chrome: Chrome,
    mode: &'static str,
    /// The editor's text: the stored policy (secret redacted), or what was sent.
    text: String,
    errors: Vec<FieldError>,
    allowlist: Vec<String>,
    routes: Vec<String>,
    suppressions: Vec<SuppressionRow>,
    notice: &'static str,
}

#[derive(Template)]
#[template(path = "console/mode.html")]
struct ConfirmMode {
    chrome: Chrome,
    to: &'static str,
    /// What changes, in sentences.
    changes: Vec<String>,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::DryRun => "dry-run",
    }
}

fn policy_page(
    daemon: &Daemon,
    tenant: &str,
    session: &Session,
    edited: Option<(String, Vec<FieldError>)>,
    notice: &'static str,
) -> Result<PolicyPage, PageError> {
    let policy = daemon.policy(tenant).map_err(PageError::internal)?;
    let a = &policy.allowlist;
    let mut allowlist: Vec<String> = Vec::new();
    allowlist.extend(a.users.iter().map(|u| format!("user {u}")));
    allowlist.extend(a.cidrs.iter().map(|c| format!("network {c}")));
    allowlist.extend(a.groups.iter().map(|g| format!("group {g}")));
    let routes = policy
        .notifications
        .routes
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    let suppressions = daemon
        .suppressions(tenant)
        .map_err(PageError::internal)?
        .into_iter()
        .map(|s| SuppressionRow {
            id: s.id,
            subject: s.subject,
            rule: s.rule,
            expires: s.expires_ms.map_or_else(|| "never".to_owned(), when),
            by: s.by,
            review: s.review.map(|r| r.to_string()).unwrap_or_default(),
        })
        .collect();
    let (text, errors) = edited.unwrap_or_else(|| {
        (
            serde_json::to_string_pretty(&policy.redacted()).unwrap_or_default(),
            Vec::new(),
        )
    });
    Ok(PolicyPage {
        chrome: Chrome::new(tenant, session, "/console/policy"),
        mode: mode_name(policy.mode),
        text,
        errors,
        allowlist,
        routes,
        suppressions,
        notice,
    })
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Notice {
    #[serde(default)]
    done: String,
}

fn done_words(done: &str) -> &'static str {
    match done {
        "saved" => "policy saved",
        "enforce" => "the policy enforces now: responders' effects are performed",
        "dry-run" => "the policy is in dry-run now: effects are recorded, not performed",
        "unsuppressed" => "suppression removed: later findings are decided as before",
        _ => "",
    }
}

/// `GET /console/policy`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(n): Query<Notice>,
) -> Result<Response, PageError> {
    blocking(move || {
        let page = policy_page(&daemon, &tenant, &session, None, done_words(&n.done))?;
        Ok(render(&page))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct PolicyForm {
    #[serde(default)]
    policy: String,
}

/// `POST /console/policy`: replace the policy; refused, the editor comes back with
/// what was sent and every field's error.
pub(super) async fn save(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<PolicyForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let text = posted.form.policy;
    blocking(move || {
        match daemon
            .set_policy(&tenant, &text)
            .map_err(PageError::internal)?
        {
            Ok(_) => {
                tracing::info!(tenant, by = session.name, "policy set from the console");
                Ok(Redirect::to("/console/policy?done=saved").into_response())
            }
            Err(errors) => {
                let page = policy_page(&daemon, &tenant, &session, Some((text, errors)), "")?;
                Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
            }
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ModeForm {
    /// `enforce` or `dry-run`.
    mode: String,
    /// `yes` once the person has read what changes.
    #[serde(default)]
    confirm: String,
}

/// What switching `tenant` to `to` changes, in sentences.
fn changes(
    daemon: &Daemon,
    tenant: &str,
    policy: &Policy,
    to: Mode,
) -> Result<Vec<String>, PageError> {
    let open = super::reviews::open_reviews(daemon, tenant)?;
    Ok(match to {
        Mode::Enforce => {
            let mut c = vec![
                "From now on, decisions that respond run their responders' effects for real: sessions are ended, apps restricted, users changed at Slack.".to_owned(),
                "Effects the policy holds for approval still wait for a person.".to_owned(),
            ];
            if policy.responses.slack_token.is_none() {
                c.push("The policy has no Slack token: effects at Slack will fail until one is set.".to_owned());
            }
            c.push(format!("{open} review(s) are open; approving one after the switch performs its effects."));
            c
        }
        Mode::DryRun => vec![
            "From now on, decisions are recorded and responders run, but no effect is performed: each is recorded as what would have been done.".to_owned(),
            "Effects already queued or approved still run.".to_owned(),
        ],
    })
}

/// `POST /console/policy/mode`: without `confirm=yes`, the confirmation page saying
/// what will change; with it, the switch.
pub(super) async fn mode(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<ModeForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let form = posted.form;
    let to = match form.mode.as_str() {
        "enforce" => Mode::Enforce,
        "dry-run" => Mode::DryRun,
        other => return Err(PageError::bad_request(format!("no mode {other:?}"))),
    };
    blocking(move || {
        let mut policy = daemon.policy(&tenant).map_err(PageError::internal)?;
        if form.confirm != "yes" {
            return Ok(render(&ConfirmMode {
                changes: changes(&daemon, &tenant, &policy, to)?,
                chrome: Chrome::new(&tenant, &session, "/console/policy"),
                to: mode_name(to),
            }));
        }
        policy.mode = to;
        let json = serde_json::to_string(&policy).map_err(PageError::internal)?;
        match daemon
            .set_policy(&tenant, &json)
            .map_err(PageError::internal)?
        {
            Ok(_) => {
                tracing::info!(
                    tenant,
                    by = session.name,
                    mode = mode_name(to),
                    "policy mode set from the console"
                );
                Ok(
                    Redirect::to(&format!("/console/policy?done={}", mode_name(to)))
                        .into_response(),
                )
            }
            Err(errors) => {
                let page = policy_page(&daemon, &tenant, &session, Some((json, errors)), "")?;
                Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
            }
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct UnsuppressForm {
    suppression: u64,
}

/// `POST /console/policy/unsuppress`: remove a suppression.
pub(super) async fn unsuppress(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<UnsuppressForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, .. } = Analyst::of(posted.session)?;
    let id = posted.form.suppression;
    blocking(move || {
        if daemon
            .remove_suppression(&tenant, id)
            .map_err(PageError::internal)?
        {
            Ok(Redirect::to("/console/policy?done=unsuppressed").into_response())
        } else {
            Err(PageError::not_found(format!("no suppression {id}")))
        }
    })
    .await
}
