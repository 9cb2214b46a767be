//! Responders' effects in the daemon: the Slack Web API (`admin.users.session.reset`
//! and `.invalidate`, `admin.apps.restrict` and `.uninstall`, `admin.users.setRegular`,
//! `chat.postMessage`), Slack's SCIM API (deactivation) and notification webhooks, with the tenant's credentials from
//! its policy (plugins never see them), through an action log keyed by idempotency key
//! (decision, responder, action, target).
//!
//! A responder's request is checked, written to the log as `queued` (flushed) and
//! answered `queued` at once (or, for a kind the policy marks `approval`, written
//! `awaiting_approval` with a review opened, and queued when a person approves it):
//! the effect itself runs on the effects executor
//! ([`super::executor`]), off the pipeline workers, so no tenant's slow or rate-limited
//! Slack holds up another tenant's pipeline. The executor marks an entry `pending`
//! while it performs it and `done` or `failed` after, so a responder run again after a
//! crash gets the recorded answer instead of a second effect; an effect interrupted
//! between its request and its `done` mark is performed again with the same
//! [`IDEMPOTENCY_HEADER`]. In dry-run the entry is `recorded` and nothing is sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Daemon, now_ms};
use crate::host_api::ActionSink;
use crate::host_api::actions::ActionRequest;
pub use crate::ledger::ActionEntry;
use crate::ledger::ActionKey;
use crate::ledger::ReviewKind;
use crate::pipeline::policy::ResponseSettings;
use crate::pipeline::respond::{AWAITING_APPROVAL, Admission, admit};

/// The action sink of one (tenant, responder).
pub struct DaemonActions {
    daemon: Weak<Daemon>,
    tenant: String,
    responder: String,
    enforce: AtomicBool,
    /// The seq of the decision being handled.
    decision_seq: AtomicU64,
}

impl DaemonActions {
    /// A sink for `responder` of `tenant`.
    pub fn new(daemon: &Arc<Daemon>, tenant: &str, responder: &str) -> Self {
        DaemonActions {
            daemon: Arc::downgrade(daemon),
            tenant: tenant.to_owned(),
            responder: responder.to_owned(),
            enforce: AtomicBool::new(false),
            decision_seq: AtomicU64::new(0),
        }
    }

    /// The responder is about to handle decision `seq`, whose effects are performed
    /// with `enforce` (else recorded).
    pub fn begin(&self, seq: u64, enforce: bool) {
        self.decision_seq.store(seq, Ordering::Relaxed);
        self.enforce.store(enforce, Ordering::Relaxed);
    }
}

pub(super) fn err(code: &str, message: impl Into<String>) -> (String, String) {
    (code.to_owned(), message.into())
}

impl ActionSink for DaemonActions {
    fn refused(&self, request: &ActionRequest, decision_id: &str, reason: &str) {
        let Some(daemon) = self.daemon.upgrade() else {
            return;
        };
        tracing::warn!(
            tenant = %self.tenant,
            responder = %self.responder,
            decision = decision_id,
            action = request.action(),
            target = %crate::text::escape_control(request.target()),
            "effect refused: {}",
            crate::text::escape_control(reason)
        );
        daemon
            .metrics
            .action(&self.tenant, request.action(), "refused");
        // Audited in the action log under the decision being responded to, whatever
        // decision the request named, and apart from the effects performed (an entry
        // of the same action and target stays the idempotency record of that effect).
        let key = ActionKey::refused(
            &self.tenant,
            decision_id,
            &self.responder,
            request.action(),
            &request.key_target(),
        );
        let entry = ActionEntry {
            decision_id: decision_id.to_owned(),
            responder: self.responder.clone(),
            action: request.action().to_owned(),
            target: request.target().to_owned(),
            session_id: request.session_id().to_owned(),
            status: "refused".into(),
            detail: reason.to_owned(),
            time_ms: now_ms(),
            ..ActionEntry::default()
        };
        if let Err(e) = daemon.ledger.put_action(&key, &entry, false) {
            tracing::error!(tenant = %self.tenant, "cannot audit a refused effect: {e}");
        }
    }

    fn perform(&self, request: ActionRequest) -> Result<String, (String, String)> {
        let daemon = self
            .daemon
            .upgrade()
            .ok_or_else(|| err("shutting_down", "the daemon is stopping"))?;
        let action = request.action();
        let decision_id = request.decision_id();
        let text = match &request {
            ActionRequest::Notify { text, .. } => text.as_str(),
            ActionRequest::Subject { .. } => "",
        };
        let key = ActionKey::new(
            &self.tenant,
            decision_id,
            &self.responder,
            action,
            &request.key_target(),
        );
        // Each new entry counts against the tenant's action log quota. A tenant's
        // responders run one at a time (its decision stage's part), so the count is not
        // raced.
        let count = daemon
            .ledger
            .action_count(&self.tenant)
            .map_err(|e| err("internal", e.to_string()))?;
        let store = |status: &str, detail: &str, text: &str, flush: bool| {
            let now = now_ms();
            let entry = ActionEntry {
                decision_id: decision_id.to_owned(),
                responder: self.responder.clone(),
                action: action.to_owned(),
                target: request.target().to_owned(),
                session_id: request.session_id().to_owned(),
                status: status.to_owned(),
                detail: detail.to_owned(),
                time_ms: now,
                text: text.to_owned(),
                queued_ms: now,
                ..ActionEntry::default()
            };
            daemon
                .ledger
                .set_action_count(&self.tenant, count + 1)
                .map_err(|e| err("internal", e.to_string()))?;
            put_entry(&daemon, &key, &entry, flush)
        };
        let previous = daemon.ledger.action(&key).ok().flatten();
        if let Some(done) = previous {
            match done.status.as_str() {
                "done" | "recorded" => return Ok(done.detail),
                "failed" => return Err(err(&done.detail, "failed before; not repeated")),
                "awaiting_approval" => return Ok(AWAITING_APPROVAL.into()),
                "dismissed" => return Err(err("dismissed", "its review was dismissed")),
                // In the executor's hands already (after a crash too: it finds queued
                // and interrupted entries when it starts).
                _ => return Ok("queued".into()),
            }
        }
        let max = daemon.config.quota(&self.tenant).max_action_log_entries;
        if count >= max {
            tracing::warn!(tenant = %self.tenant, max, "the action log is full: an effect is refused");
            daemon
                .metrics
                .action(&self.tenant, action, "action_log_full");
            return Err(err(
                "action_log_full",
                format!("the tenant's action log holds {count} entries, its limit is {max}"),
            ));
        }
        let settings = daemon
            .policy(&self.tenant)
            .map_err(|e| err("internal", e.to_string()))?
            .responses;
        let mut admission = admit(&settings, &request, self.enforce.load(Ordering::Relaxed));
        let seq = self.decision_seq.load(Ordering::Relaxed);
        let internal = |e: super::DaemonError| err("internal", e.to_string());
        if admission == Admission::Hold
            && daemon
                .review_approved(&self.tenant, seq)
                .map_err(internal)?
        {
            // A person approved this decision's response already (an escalation).
            admission = Admission::Perform;
        }
        match admission {
            Admission::Fail(code, message) => {
                store("failed", &code, "", false)?;
                daemon.metrics.action(&self.tenant, action, "failed");
                Err(err(&code, message))
            }
            Admission::Record => {
                store("recorded", "dry-run", "", false)?;
                daemon.metrics.action(&self.tenant, action, "recorded");
                Ok("dry-run".into())
            }
            Admission::Hold => {
                // Durable, with its review, before the responder's call commits.
                store("awaiting_approval", "", text, false)?;
                daemon
                    .open_review(&self.tenant, seq, ReviewKind::Approval)
                    .map_err(internal)?;
                daemon
                    .metrics
                    .action(&self.tenant, action, "awaiting_approval");
                Ok(AWAITING_APPROVAL.into())
            }
            Admission::Perform => {
                // Durable before the responder's call commits: a crash after it leaves
                // the effect queued for the executor, never lost.
                store("queued", "", text, true)?;
                daemon.metrics.action(&self.tenant, action, "queued");
                daemon.effects.push(&self.tenant, key);
                Ok("queued".into())
            }
        }
    }
}

/// Write an action log entry (flushed with `flush`: a `done` lost in a crash would
/// repeat the effect).
pub(super) fn put_entry(
    daemon: &Daemon,
    key: &ActionKey,
    entry: &ActionEntry,
    flush: bool,
) -> Result<(), (String, String)> {
    daemon
        .ledger
        .put_action(key, entry, flush)
        .map_err(|e| err("internal", e.to_string()))
}

/// Sent with every effect so receivers that support it can recognise a repeat (the one
/// left after a crash between an effect and its `done` mark). Slack ignores it.
pub const IDEMPOTENCY_HEADER: &str = "X-AER-Idempotency-Key";

/// Why one attempt at an effect did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// Slack answered 429: try again after this long (its `Retry-After`, at most 30 s).
    RetryAfter(Duration),
    /// It failed: the error code (what the tenant sees) and a message.
    Failed(String, String),
}

impl From<(String, String)> for Failure {
    fn from((code, message): (String, String)) -> Self {
        Failure::Failed(code, message)
    }
}

/// One attempt at an effect's outbound request, with the tenant's settings and the
/// operator's rules.
pub(super) struct Out<'a> {
    pub(super) settings: &'a ResponseSettings,
    pub(super) outbound: &'a super::outbound::Outbound,
    pub(super) idempotency: &'a str,
}

impl Out<'_> {
    /// Perform the effect of action log entry `e` once.
    pub(super) fn attempt(&self, e: &ActionEntry) -> Result<String, Failure> {
        match e.action.as_str() {
            "terminate-sessions" => self.reset_sessions(&e.target),
            "end-session" => self.end_session(&e.target, &e.session_id),
            "restrict-app" => self.app_call("admin.apps.restrict", &e.target, "restricted"),
            "uninstall-app" => self.app_call("admin.apps.uninstall", &e.target, "uninstalled"),
            "demote-admin" => self.demote(&e.target),
            "deactivate-user" => self.deactivate(&e.target),
            "notify" => self.notify(&e.target, &e.decision_id, &e.text, &e.body),
            other => Err(Failure::Failed(
                "unknown_action".into(),
                format!("no such action {other:?}"),
            )),
        }
    }

    /// `admin.users.session.reset` for `user_id`.
    fn reset_sessions(&self, user_id: &str) -> Result<String, Failure> {
        self.slack_call(
            "admin.users.session.reset",
            &serde_json::json!({ "user_id": user_id }),
        )
        .map(|_| "reset".into())
    }

    /// `admin.users.session.invalidate` for one session of `user_id`.
    fn end_session(&self, user_id: &str, session_id: &str) -> Result<String, Failure> {
        let session: u64 = session_id
            .parse()
            .map_err(|_| err("invalid_session_id", "not a Slack session id"))?;
        self.slack_call(
            "admin.users.session.invalidate",
            &serde_json::json!({ "user_id": user_id, "session_id": session }),
        )
        .map(|_| "invalidated".into())
    }

    /// The organisation app and admin effects apply in.
    fn org(&self) -> Result<&str, Failure> {
        self.settings.slack_org_id.as_deref().ok_or_else(|| {
            Failure::Failed(
                "no_org_id".into(),
                "the policy names no Slack organisation (responses.slack_org_id)".into(),
            )
        })
    }

    /// `admin.apps.restrict` or `admin.apps.uninstall` for `app_id` in the policy's
    /// organisation: exactly one of `enterprise_id` (an organisation, `E...`) or the
    /// workspace (`team_id` to restrict, `team_ids` to uninstall).
    fn app_call(&self, method: &str, app_id: &str, done: &str) -> Result<String, Failure> {
        let org = self.org()?;
        let mut body = serde_json::json!({ "app_id": app_id });
        let field = match (org.starts_with('E'), method) {
            (true, _) => "enterprise_id",
            (false, "admin.apps.uninstall") => "team_ids",
            (false, _) => "team_id",
        };
        body[field] = org.into();
        self.slack_call(method, &body).map(|_| done.into())
    }

    /// `admin.users.setRegular` for `user_id` in the policy's organisation.
    fn demote(&self, user_id: &str) -> Result<String, Failure> {
        let org = self.org()?;
        self.slack_call(
            "admin.users.setRegular",
            &serde_json::json!({ "team_id": org, "user_id": user_id }),
        )
        .map(|_| "demoted".into())
    }

    /// Deactivate `user_id` through Slack's SCIM API (`DELETE /Users/{id}`), with the
    /// tenant's token. SCIM answers with HTTP status codes, not `ok`.
    fn deactivate(&self, user_id: &str) -> Result<String, Failure> {
        let token = self.token()?;
        // The id goes into the URL's path: nothing but a Slack user id may.
        if !aer_wire::slack::is_id(user_id, &['U', 'W']) {
            return Err(err("invalid_user_id", "not a Slack user id").into());
        }
        let base = self.base("scim_api_url", &self.settings.scim_api_url)?;
        let url = format!("{base}/Users/{user_id}");
        let resp = self
            .outbound
            .agent()
            .delete(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header(IDEMPOTENCY_HEADER, self.idempotency)
            .call()
            .map_err(|e| request_failed("SCIM", &e))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok("deactivated".into()),
            429 => Err(rate_limited("SCIM", resp.headers())),
            _ => {
                let code = match status {
                    401 => "invalid_auth".to_owned(),
                    403 => "permission_denied".to_owned(),
                    404 => "user_not_found".to_owned(),
                    _ => format!("http_{status}"),
                };
                Err(Failure::Failed(
                    code.clone(),
                    format!("Slack's SCIM API answered HTTP {status} ({code})"),
                ))
            }
        }
    }

    /// The tenant's Slack token (which plugins never see).
    fn token(&self) -> Result<&str, Failure> {
        self.settings
            .slack_token
            .as_deref()
            .ok_or_else(|| err("no_token", "the tenant's policy has no Slack token").into())
    }

    /// The policy's base URL `field`, `base`, if the operator's rules allow it (see
    /// [`super::outbound`]), without a trailing `/`.
    fn base<'b>(&self, field: &str, base: &'b str) -> Result<&'b str, Failure> {
        self.outbound
            .check_slack_url(base)
            .map_err(|why| err(super::outbound::NOT_ALLOWED, format!("{field} {why}")))?;
        Ok(base.trim_end_matches('/'))
    }

    /// Call a Slack Web API method with the tenant's token, once: 429 asks for a retry
    /// after `Retry-After` (at most 30 s); `{"ok": false, "error": E}` becomes the error
    /// code E. The base URL must be among the operator's (see [`super::outbound`]).
    fn slack_call(
        &self,
        method: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let token = self.token()?;
        let base = self.base("slack_api_url", &self.settings.slack_api_url)?;
        let url = format!("{base}/{method}");
        let mut resp = self
            .outbound
            .agent()
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header(IDEMPOTENCY_HEADER, self.idempotency)
            .send_json(body)
            .map_err(|e| request_failed(method, &e))?;
        let status = resp.status().as_u16();
        if status == 429 {
            return Err(rate_limited(method, resp.headers()));
        }
        let answer: serde_json::Value = resp
            .body_mut()
            .with_config()
            .limit(self.outbound.max_response_bytes())
            .read_json()
            .map_err(|_| {
                err(
                    &format!("http_{status}"),
                    format!("Slack answered HTTP {status} without a readable JSON body"),
                )
            })?;
        match answer["ok"].as_bool() {
            Some(true) => Ok(answer),
            _ => {
                // Reduced to Slack's error code: the answer itself stays out of what the
                // tenant and its plugins see.
                let code = answer["error"]
                    .as_str()
                    .and_then(crate::text::error_code)
                    .unwrap_or("unknown_error");
                Err(Failure::Failed(
                    code.to_owned(),
                    format!("Slack answered HTTP {status} with error {code}"),
                ))
            }
        }
    }

    /// Send a notification: to a Slack channel with `chat.postMessage` when the policy
    /// maps the channel name to a Slack channel id (`slack_channels`), else as a JSON
    /// POST to the channel's webhook (https, at an address the operator allows): the
    /// prepared `body` if there is one (an OCSF finding), else the message.
    fn notify(
        &self,
        channel: &str,
        decision_id: &str,
        text: &str,
        body: &str,
    ) -> Result<String, Failure> {
        let s = self.settings;
        if let Some(id) = s.slack_channels.get(channel) {
            let answer = self.slack_call("chat.postMessage", &message(id, decision_id, text))?;
            return Ok(format!("posted {}", answer["ts"].as_str().unwrap_or(""))
                .trim_end()
                .to_owned());
        }
        let url = s.webhooks.get(channel).ok_or_else(|| {
            err(
                crate::pipeline::respond::UNKNOWN_CHANNEL,
                format!("no Slack channel or webhook for channel {channel:?} in the policy"),
            )
        })?;
        self.outbound
            .check_webhook(url)
            .map_err(|why| err(super::outbound::NOT_ALLOWED, format!("webhook {why}")))?;
        let resp = self
            .outbound
            .agent()
            .post(url)
            .header(IDEMPOTENCY_HEADER, self.idempotency)
            .header("Content-Type", "application/json")
            .send(if body.is_empty() {
                message(channel, decision_id, text).to_string()
            } else {
                body.to_owned()
            })
            .map_err(|e| request_failed("webhook", &e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok("sent".into())
        } else {
            Err(Failure::Failed(
                format!("http_{status}"),
                format!("the webhook answered HTTP {status}"),
            ))
        }
    }
}

/// Slack answered 429 to `what`: try again after its `Retry-After` (1 s if it names
/// none), at most 30 s.
fn rate_limited(what: &str, headers: &ureq::http::HeaderMap) -> Failure {
    let wait = crate::sources::slack_audit::retry_after(headers)
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(30));
    tracing::warn!(what, wait = wait.as_secs(), "Slack rate limited the call");
    Failure::RetryAfter(wait)
}

/// A request that got no answer: its code for the tenant, the details for the log.
fn request_failed(what: &str, e: &ureq::Error) -> Failure {
    let code = super::outbound::error_code(e);
    tracing::warn!(what, code, "outbound request failed: {e}");
    Failure::Failed(code.into(), format!("the {what} request failed: {code}"))
}

/// The message body both routes send: Slack's `chat.postMessage` shape (`text` as the
/// fallback, one `mrkdwn` section) plus the decision id. The text comes from a plugin,
/// so its Slack markup is escaped: it cannot ping a channel or disguise a link.
fn message(channel: &str, decision_id: &str, text: &str) -> serde_json::Value {
    let text = crate::text::escape_slack(text);
    serde_json::json!({
        "channel": channel,
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "unfurl_links": false,
        "metadata": {"event_type": "aer_decision", "event_payload": {"decision_id": decision_id}},
        "decision_id": decision_id,
    })
}
