//! The tenant's plugins: each one's status, versions, faults, lag, dead letters and
//! recent log lines;
//! uploading a new version, editing the configuration (checked by the plugin's own
//! `configure`, its schema beside the editor), enabling, disabling, rolling back and
//! deleting.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{Analyst, Posted, Signed, csrf_checked, same_origin};
use super::view::{Chrome, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::plugins::{PluginError, PluginRecord, PluginStatus};
use crate::plugin::PluginKind;

/// Dead letters shown on a plugin's page.
const DEAD_LETTERS: usize = 50;

fn plugin_error(e: PluginError) -> PageError {
    match e {
        PluginError::NotFound(_) => PageError::not_found(e),
        PluginError::Daemon(e) => PageError::internal(e),
        other => PageError::bad_request(other),
    }
}

fn kind(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Detector => "detector",
        PluginKind::Responder => "responder",
    }
}

fn status(s: PluginStatus) -> &'static str {
    match s {
        PluginStatus::Enabled => "enabled",
        PluginStatus::Disabled => "disabled",
        PluginStatus::Quarantined => "quarantined",
    }
}

/// A detector's lag (events waiting for it), or empty for a responder.
fn lag(daemon: &Daemon, tenant: &str, p: &PluginRecord) -> Result<String, PageError> {
    if p.kind != PluginKind::Detector {
        return Ok(String::new());
    }
    let next = daemon.inbox.next_seq(tenant).map_err(PageError::internal)?;
    let cursor = daemon
        .detector_cursor(tenant, &p.name)
        .map_err(PageError::internal)?;
    Ok(next.saturating_sub(cursor).to_string())
}

struct Row {
    name: String,
    kind: &'static str,
    version: String,
    versions: usize,
    status: &'static str,
    faults: u64,
    last_fault: String,
    lag: String,
}

#[derive(Template)]
#[template(path = "console/plugins.html")]
struct PluginsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: String,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Notice {
    /// What was just done (a fixed word from the console's own redirects).
    #[serde(default)]
    done: String,
}

/// The words for what was just done; anything else in the link shows nothing.
fn done_words(done: &str) -> &'static str {
    match done {
        "uploaded" => "uploaded: the new version is active (a new plugin starts disabled)",
        "configured" => "configuration saved: the plugin accepted it",
        "enabled" => "enabled",
        "disabled" => "disabled",
        "rolled-back" => "rolled back",
        "deleted" => "deleted with its state and cursor",
        "replay" => "the dead letter runs again on the detector's next turn",
        _ => "",
    }
}

/// `GET /console/plugins`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    axum::extract::Query(n): axum::extract::Query<Notice>,
) -> Result<Response, PageError> {
    blocking(move || {
        let mut page = plugins_page(&daemon, &tenant, &session)?;
        page.notice = done_words(&n.done).to_owned();
        Ok(render(&page))
    })
    .await
}

/// The plugins page, without a notice or an error.
fn plugins_page(
    daemon: &Daemon,
    tenant: &str,
    session: &crate::daemon::sessions::Session,
) -> Result<PluginsPage, PageError> {
    {
        let rows = daemon
            .plugins(tenant)
            .map_err(plugin_error)?
            .iter()
            .map(|p| {
                Ok(Row {
                    name: p.name.clone(),
                    kind: kind(p.kind),
                    version: p.active.clone(),
                    versions: p.versions.len(),
                    status: status(p.status),
                    faults: p.faults,
                    last_fault: p.last_fault.clone().unwrap_or_default(),
                    lag: lag(daemon, tenant, p)?,
                })
            })
            .collect::<Result<Vec<_>, PageError>>()?;
        Ok(PluginsPage {
            chrome: Chrome::new(tenant, session, "/console/plugins"),
            rows,
            notice: String::new(),
            error: String::new(),
        })
    }
}

struct VersionRow {
    version: String,
    sha256: String,
    size: usize,
    uploaded: String,
    active: bool,
}

struct LetterRow {
    seq: u64,
    event_id: String,
    fault: String,
    status: String,
    time: String,
}

#[derive(Template)]
#[template(path = "console/plugin.html")]
struct PluginPage {
    chrome: Chrome,
    name: String,
    kind: &'static str,
    status: &'static str,
    active: String,
    faults: u64,
    last_fault: String,
    lag: String,
    versions: Vec<VersionRow>,
    /// The configuration in the editor (what was sent, when it was refused).
    config: String,
    /// The plugin's configuration schema, pretty-printed (empty if it gives none).
    schema: String,
    /// Why the configuration was refused, in the plugin's own words.
    config_error: String,
    letters: Vec<LetterRow>,
    /// The plugin's recent log lines, newest first: (time, level, message).
    logs: Vec<(String, &'static str, String)>,
    notice: String,
}

/// Build a plugin's page; `edited` is a refused configuration to show back with its
/// error.
fn plugin_page(
    daemon: &Daemon,
    tenant: &str,
    chrome: Chrome,
    name: &str,
    edited: Option<(String, String)>,
    notice: &str,
) -> Result<PluginPage, PageError> {
    let p = daemon.plugin(tenant, name).map_err(plugin_error)?;
    let schema = match p.active_version() {
        Some(v) => {
            let loaded = daemon.load_artifact(&v.sha256).map_err(plugin_error)?;
            let raw = &loaded.info().config_schema;
            serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| raw.clone())
        }
        None => String::new(),
    };
    let letters = daemon
        .ledger
        .dead_letters(tenant, None, DEAD_LETTERS, |l| l.plugin == p.name)
        .map_err(PageError::internal)?
        .items
        .into_iter()
        .map(|l| LetterRow {
            seq: l.seq,
            event_id: l.event_id,
            fault: l.fault,
            status: l.status,
            time: when(l.time_ms),
        })
        .collect();
    let (config, config_error) = edited.unwrap_or_else(|| {
        let pretty = serde_json::from_str::<serde_json::Value>(&p.config)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| p.config.clone());
        (pretty, String::new())
    });
    Ok(PluginPage {
        chrome,
        kind: kind(p.kind),
        status: status(p.status),
        active: p.active.clone(),
        faults: p.faults,
        last_fault: p.last_fault.clone().unwrap_or_default(),
        lag: lag(daemon, tenant, &p)?,
        versions: p
            .versions
            .iter()
            .rev()
            .map(|v| VersionRow {
                version: v.version.clone(),
                sha256: v.sha256.clone(),
                size: v.size,
                uploaded: when(v.uploaded_ms),
                active: v.version == p.active,
            })
            .collect(),
        config,
        schema,
        config_error,
        letters,
        logs: daemon
            .plugin_logs
            .recent(tenant, &p.name)
            .into_iter()
            .rev()
            .map(|l| (when(l.time_ms), l.level, l.message))
            .collect(),
        notice: notice.to_owned(),
        name: p.name,
    })
}

/// `GET /console/plugins/{name}`.
pub(super) async fn show(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    axum::extract::Query(n): axum::extract::Query<Notice>,
) -> Result<Response, PageError> {
    blocking(move || {
        let chrome = Chrome::new(&tenant, &session, "/console/plugins");
        let page = plugin_page(&daemon, &tenant, chrome, &name, None, done_words(&n.done))?;
        Ok(render(&page))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfigForm {
    #[serde(default)]
    config: String,
}

/// `POST /console/plugins/{name}/config`: the plugin judges the configuration; refused,
/// the editor comes back with what was sent and the plugin's own words.
pub(super) async fn configure(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    posted: Posted<ConfigForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, session } = Analyst::of(posted.session)?;
    let config = posted.form.config;
    blocking(move || {
        let refused = if !config.trim().is_empty()
            && serde_json::from_str::<serde_json::Value>(&config).is_err()
        {
            let e = serde_json::from_str::<serde_json::Value>(&config)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            Some(format!("the configuration is not JSON: {e}"))
        } else {
            match daemon.configure_plugin(&tenant, &name, &config) {
                Ok(_) => None,
                Err(PluginError::Config(why)) => Some(format!("the plugin refused it: {why}")),
                Err(e) => return Err(plugin_error(e)),
            }
        };
        match refused {
            None => Ok(
                Redirect::to(&format!("/console/plugins/{name}?done=configured")).into_response(),
            ),
            Some(why) => {
                let chrome = Chrome::new(&tenant, &session, "/console/plugins");
                let page = plugin_page(&daemon, &tenant, chrome, &name, Some((config, why)), "")?;
                Ok((axum::http::StatusCode::BAD_REQUEST, render(&page)).into_response())
            }
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    /// `enable`, `disable`, `rollback` or `delete`.
    action: String,
    /// For a rollback: the version (default: the one before).
    #[serde(default)]
    version: String,
    /// For a deletion: the plugin's name typed again.
    #[serde(default)]
    confirm: String,
}

/// `POST /console/plugins/{name}/action`.
pub(super) async fn act(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    posted: Posted<ActionForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, .. } = Analyst::of(posted.session)?;
    let form = posted.form;
    blocking(move || {
        let done = match form.action.as_str() {
            "enable" | "disable" => {
                let status = if form.action == "enable" {
                    PluginStatus::Enabled
                } else {
                    PluginStatus::Disabled
                };
                daemon
                    .set_plugin_status(&tenant, &name, status)
                    .map_err(plugin_error)?;
                daemon.wake.notify();
                if form.action == "enable" {
                    "enabled"
                } else {
                    "disabled"
                }
            }
            "rollback" => {
                let version = Some(form.version.trim()).filter(|v| !v.is_empty());
                daemon
                    .rollback_plugin(&tenant, &name, version)
                    .map_err(plugin_error)?;
                "rolled-back"
            }
            "delete" => {
                if form.confirm.trim() != name {
                    return Err(PageError::bad_request(format!(
                        "type the plugin's name ({name}) to delete it"
                    )));
                }
                daemon.delete_plugin(&tenant, &name).map_err(plugin_error)?;
                return Ok(Redirect::to("/console/plugins?done=deleted").into_response());
            }
            other => return Err(PageError::bad_request(format!("no action {other:?}"))),
        };
        Ok(Redirect::to(&format!("/console/plugins/{name}?done={done}")).into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplayForm {
    letter: u64,
}

/// `POST /console/plugins/{name}/replay`: run a dead letter again.
pub(super) async fn replay(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    posted: Posted<ReplayForm>,
) -> Result<Response, PageError> {
    let Analyst { tenant, .. } = Analyst::of(posted.session)?;
    let seq = posted.form.letter;
    blocking(move || {
        match daemon
            .dead_letter(&tenant, seq)
            .map_err(PageError::internal)?
        {
            Some(l) if l.plugin == name => {}
            _ => {
                return Err(PageError::not_found(format!(
                    "no dead letter {seq} of {name}"
                )));
            }
        }
        daemon
            .replay_dead_letter(&tenant, seq)
            .map_err(PageError::internal)?;
        Ok(Redirect::to(&format!("/console/plugins/{name}?done=replay")).into_response())
    })
    .await
}

/// `POST /console/upload`: a component from a file field (`multipart/form-data`
/// with `csrf` and `component`, optional `name` and `version`), validated and compiled
/// as the API's upload is.
pub(super) async fn upload(
    State(daemon): State<Arc<Daemon>>,
    request: Request,
) -> Result<Response, PageError> {
    let (mut parts, body) = request.into_parts();
    same_origin(&parts)?;
    let Signed(session) =
        <Signed as axum::extract::FromRequestParts<Arc<Daemon>>>::from_request_parts(
            &mut parts, &daemon,
        )
        .await?;
    let Analyst { tenant, session } = Analyst::of(session)?;
    let mut form = Multipart::from_request(Request::from_parts(parts, body), &daemon)
        .await
        .map_err(|e| PageError::bad_request(format!("invalid upload: {e}")))?;
    let (mut csrf, mut bytes, mut name, mut version) = (String::new(), Vec::new(), None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| PageError::bad_request(format!("invalid upload: {e}")))?
    {
        let field_name = field.name().unwrap_or_default().to_owned();
        let data = field
            .bytes()
            .await
            .map_err(|e| PageError::bad_request(format!("invalid upload: {e}")))?;
        let text = || String::from_utf8_lossy(&data).trim().to_owned();
        match field_name.as_str() {
            "csrf" => csrf = text(),
            "component" => bytes = data.to_vec(),
            "name" => name = Some(text()).filter(|s| !s.is_empty()),
            "version" => version = Some(text()).filter(|s| !s.is_empty()),
            _ => {}
        }
    }
    csrf_checked(&session, &csrf)?;
    if bytes.is_empty() {
        return Err(PageError::bad_request(
            "choose a component (.wasm) to upload",
        ));
    }
    blocking(move || {
        match daemon.upload_plugin(&tenant, &bytes, name.as_deref(), version.as_deref()) {
            Ok(rec) => Ok(
                Redirect::to(&format!("/console/plugins/{}?done=uploaded", rec.name))
                    .into_response(),
            ),
            Err(e @ PluginError::Daemon(_)) => Err(plugin_error(e)),
            Err(e) => {
                let mut page = plugins_page(&daemon, &tenant, &session)?;
                page.error = format!("the upload was refused: {e}");
                Ok((axum::http::StatusCode::BAD_REQUEST, render(&page)).into_response())
            }
        }
    })
    .await
}
