//! The Slack connection: the tenant's Slack Audit Logs source, its status and how far
//! it has read; setting it (the token is written, never shown back), the backfill's
//! start for a new connection, and disconnecting.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::filter::time_field;
use super::guard::{Analyst, Posted};
use super::view::Chrome;
use super::{PageError, blocking, render};
use crate::daemon::sessions::Session;
use crate::daemon::{Daemon, DaemonError};
use crate::pipeline::policy::FieldError;

#[derive(Template)]
#[template(path = "console/slack.html")]
struct SlackPage {
    chrome: Chrome,
    connected: bool,
    /// (label, value) facts about the source.
    facts: Vec<(&'static str, String)>,
    /// The form's values: url, start, page size, interval, calls a minute, enabled.
    url: String,
    page_size: String,
    interval_seconds: String,
    calls_per_minute: String,
    enabled: bool,
    errors: Vec<FieldError>,
    notice: &'static str,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn slack_page(
    daemon: &Daemon,
    tenant: &str,
    session: &Session,
    errors: Vec<FieldError>,
    notice: &'static str,
) -> Result<SlackPage, PageError> {
    let source = daemon.source(tenant).map_err(PageError::internal)?;
    let chrome = Chrome::new(tenant, session, "/console/slack");
    let Some(s) = source else {
        return Ok(SlackPage {
            chrome,
            connected: false,
            facts: Vec::new(),
            url: "https://api.slack.com/audit/v1".into(),
            page_size: String::new(),
            interval_seconds: String::new(),
            calls_per_minute: String::new(),
            enabled: true,
            errors,
            notice,
        });
    };
    let c = &s["config"];
    let status = &s["status"];
    let mut facts = vec![
        ("State", text(&status["state"])),
        ("Read up to", text(&s["watermark_time"])),
        (
            "Behind",
            s["lag_seconds"]
                .as_i64()
                .map_or_else(String::new, |l| format!("{l} s")),
        ),
        (
            "Next call in",
            s["next_call_in_ms"]
                .as_u64()
                .map_or_else(String::new, |ms| format!("{ms} ms")),
        ),
        ("Entries let in", text(&status["entries"])),
        ("Calls made", text(&status["calls"])),
        ("Last error", text(&status["last_error"])),
        ("Token", "set (never shown)".to_owned()),
    ];
    facts.retain(|(_, v)| !v.is_empty());
    Ok(SlackPage {
        chrome,
        connected: true,
        facts,
        url: text(&c["url"]),
        page_size: text(&c["page_size"]),
        interval_seconds: text(&c["interval_seconds"]),
        calls_per_minute: text(&c["calls_per_minute"]),
        enabled: c["enabled"].as_bool().unwrap_or(true),
        errors,
        notice,
    })
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Notice {
    #[serde(default)]
    done: String,
}

/// `GET /console/slack`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(n): Query<Notice>,
) -> Result<Response, PageError> {
    let notice = match n.done.as_str() {
        "saved" => "saved: the source is polled from now on",
        "disconnected" => "disconnected: the audit log is no longer read (what was read stays)",
        _ => "",
    };
    blocking(move || {
        Ok(render(&slack_page(
            &daemon,
            &tenant,
            &session,
            Vec::new(),
            notice,
        )?))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct SourceForm {
    #[serde(default)]
    url: String,
    /// Empty: keep the stored token.
    #[serde(default)]
    token: String,
    /// For a new connection: read from here (UTC), empty: from now.
    #[serde(default)]
    start: String,
    #[serde(default)]
    page_size: String,
    #[serde(default)]
    interval_seconds: String,
    #[serde(default)]
    calls_per_minute: String,
    #[serde(default)]
    enabled: Option<String>,
    /// `disconnect` to remove the source.
    #[serde(default)]
    action: String,
}

/// The API's body for a form: only the fields filled in (the rest are kept).
fn body(form: &SourceForm) -> Result<Value, Vec<FieldError>> {
    let mut body = Map::new();
    let mut errors = Vec::new();
    for (field, value) in [("url", &form.url), ("token", &form.token)] {
        if !value.trim().is_empty() {
            body.insert(field.into(), json!(value.trim()));
        }
    }
    for (field, value) in [
        ("page_size", &form.page_size),
        ("interval_seconds", &form.interval_seconds),
        ("calls_per_minute", &form.calls_per_minute),
    ] {
        match value.trim() {
            "" => {}
            v => match v.parse::<u32>() {
                Ok(n) => {
                    body.insert(field.into(), json!(n));
                }
                Err(_) => errors.push(FieldError {
                    field: field.into(),
                    message: "must be a whole number".into(),
                }),
            },
        }
    }
    match time_field("start", &form.start) {
        Ok(Some(ms)) => {
            body.insert("start".into(), json!(ms.div_euclid(1_000)));
        }
        Ok(None) => {}
        Err(_) => errors.push(FieldError {
            field: "start".into(),
            message: "must be a date and time like 2026-01-05T14:04 (UTC)".into(),
        }),
    }
    body.insert("enabled".into(), json!(form.enabled.is_some()));
    if errors.is_empty() {
        Ok(Value::Object(body))
    } else {
        Err(errors)
    }
}

/// `POST /console/slack`: set (or disconnect) the source.
pub(super) async fn save(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<SourceForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let form = posted.form;
    blocking(move || {
        if form.action == "disconnect" {
            daemon.remove_source(&tenant).map_err(PageError::internal)?;
            return Ok(Redirect::to("/console/slack?done=disconnected").into_response());
        }
        let refused = match body(&form) {
            Err(errors) => errors,
            Ok(body) => match daemon.set_source(&tenant, &body.to_string()) {
                Ok(_) => return Ok(Redirect::to("/console/slack?done=saved").into_response()),
                Err(DaemonError::Policy(errors)) => errors,
                Err(e) => return Err(PageError::internal(e)),
            },
        };
        let page = slack_page(&daemon, &tenant, &session, refused, "")?;
        Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
    })
    .await
}
