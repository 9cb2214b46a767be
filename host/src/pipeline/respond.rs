//! Respond: what the host does with the effects a responder asks for while it handles
//! a decision (the decision itself is built by [`crate::plugin::convert::wit_decision`],
//! the one builder every driver uses). The host first binds each request to the
//! decision (see [`crate::host_api::DecisionBinding`]), then [`admit`]s it under the
//! tenant's response settings: the daemon then performs or records it
//! (`daemon/effects.rs`), `aer replay` records it ([`RecordingActions`]). An effect is
//! keyed by (decision, responder, action, target): asked for again, as when a
//! responder runs again after a fault, it gets the first answer, never a second effect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::decide::{DecisionRecord, Outcome};
use super::policy::ResponseSettings;
use crate::host_api::ActionSink;
use crate::host_api::actions::{ActionRequest, EffectKind, REFUSED};

/// The error code of a notification to a channel the policy does not map.
pub const UNKNOWN_CHANNEL: &str = "unknown_channel";

/// What becomes of an effect the decision allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Perform it (the decision enforces).
    Perform,
    /// Hold it until a person approves it (the decision enforces, and the policy marks
    /// the kind `approval`).
    Hold,
    /// Record what it would have done (a dry-run decision).
    Record,
    /// It fails at once, in dry-run as in earnest: `(code, message)`.
    Fail(String, String),
}

/// The answer a responder gets for an effect held for approval.
pub const AWAITING_APPROVAL: &str = "awaiting-approval";

/// Admit `request` under the tenant's response `settings`, for a decision that
/// enforces or not. What the request names must be usable as asked (a mapped channel,
/// Slack ids of the right kind, the organisation the policy names for app and admin
/// effects), in dry-run as in earnest, so a dry run shows what would fail.
pub fn admit(settings: &ResponseSettings, request: &ActionRequest, enforce: bool) -> Admission {
    if let Err((code, message)) = usable(settings, request) {
        return Admission::Fail(code.into(), message);
    }
    if !enforce {
        Admission::Record
    } else if settings.needs_approval(request.kind()) {
        Admission::Hold
    } else {
        Admission::Perform
    }
}

/// Whether `request` can be performed as asked under `settings`: `(code, message)` if not.
fn usable(
    settings: &ResponseSettings,
    request: &ActionRequest,
) -> Result<(), (&'static str, String)> {
    let target = request.target();
    let user = || {
        if aer_wire::slack::is_id(target, &['U', 'W']) {
            Ok(())
        } else {
            Err((
                "invalid_user_id",
                format!("{target:?} is not a Slack user id"),
            ))
        }
    };
    let org = || {
        if settings.slack_org_id.is_some() {
            Ok(())
        } else {
            Err((
                "no_org_id",
                "the policy names no Slack organisation (responses.slack_org_id)".to_owned(),
            ))
        }
    };
    match request.kind() {
        EffectKind::Notify => {
            if settings.slack_channels.contains_key(target)
                || settings.webhooks.contains_key(target)
            {
                Ok(())
            } else {
                Err((
                    UNKNOWN_CHANNEL,
                    format!("no Slack channel or webhook for channel {target:?} in the policy"),
                ))
            }
        }
        EffectKind::TerminateSessions => Ok(()),
        EffectKind::EndSession => {
            user()?;
            let session = request.session_id();
            if session.parse::<u64>().is_ok() {
                Ok(())
            } else {
                Err((
                    "invalid_session_id",
                    format!("{session:?} is not a Slack session id"),
                ))
            }
        }
        EffectKind::RestrictApp | EffectKind::UninstallApp => {
            if !aer_wire::slack::is_id(target, &['A']) {
                return Err((
                    "invalid_app_id",
                    format!("{target:?} is not a Slack app id"),
                ));
            }
            org()
        }
        EffectKind::DemoteAdmin => {
            user()?;
            org()
        }
        EffectKind::DeactivateUser => user(),
    }
}

/// An effect a responder asked for, as a local run records it instead of performing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    /// Decision it belongs to.
    pub decision_id: String,
    /// Event time of the decision.
    pub time_ms: i64,
    /// Responder plugin.
    pub responder: String,
    /// The effect's kind (`terminate-sessions`, `restrict-app`, `notify`, ...).
    pub action: String,
    /// Who or where it was aimed at: the user or app, or the channel.
    pub target: String,
    /// Whether the host accepted it.
    pub ok: bool,
    /// The host's answer (`recorded`, `dry-run`) or error code.
    pub detail: String,
    /// The session an `end-session` ends.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session_id: String,
    /// A notification's text, as the responder wrote it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// What came of a decision that responds (or would, in dry-run): `effects` being the
/// effects its responders asked for (refused requests and dismissed ones not counted),
/// `held` how many of them wait for a person's approval, and `waiting` whether a
/// responder has yet to run: `waiting`, `awaiting-approval`, `acted`, or `nothing`
/// when every responder declined, so a decision log never reads as a response that did
/// not happen. `None` for the other outcomes.
pub fn response_state(
    outcome: crate::records::Outcome,
    effects: usize,
    held: usize,
    waiting: bool,
) -> Option<&'static str> {
    use crate::records::Outcome;
    if !matches!(outcome, Outcome::Respond | Outcome::DryRun) {
        return None;
    }
    Some(if waiting {
        "waiting"
    } else if held > 0 {
        AWAITING_APPROVAL
    } else if effects > 0 {
        "acted"
    } else {
        "nothing"
    })
}

/// Counts an action log's entries of one decision for [`response_state`]: its effects
/// (`action`, `status` of each entry) and how many are held for approval.
pub fn tally<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> (usize, usize) {
    let mut effects = 0;
    let mut held = 0;
    for (action, status) in entries {
        if is_refusal(action) || status == "dismissed" {
            continue;
        }
        effects += 1;
        if status == "awaiting_approval" || status == AWAITING_APPROVAL {
            held += 1;
        }
    }
    (effects, held)
}

/// Whether action `action` is an audited refusal rather than an effect.
pub fn is_refusal(action: &str) -> bool {
    action.starts_with("refused/")
}

/// The effects log of a local run, shared by its responders' sinks.
#[derive(Debug, Default)]
pub struct RecordedLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    records: Vec<ActionRecord>,
    /// (decision, responder, action, target) → index in `records`.
    index: HashMap<(String, String, String, String), usize>,
    /// The decision being responded to: its time, and whether it enforces.
    current: (i64, bool),
}

impl RecordedLog {
    /// Every effect asked for so far, in order.
    pub fn records(&self) -> Vec<ActionRecord> {
        self.lock().records.clone()
    }

    /// Responders are about to handle decision `d`.
    pub fn begin(&self, d: &DecisionRecord) {
        self.lock().current = (d.time_ms, d.outcome == Outcome::Respond);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The action sink of one responder in a local run: admits effects as the daemon does
/// and records them, performing nothing.
pub struct RecordingActions {
    log: Arc<RecordedLog>,
    settings: ResponseSettings,
    responder: String,
}

impl RecordingActions {
    /// A sink for `responder`, recording into `log` under the tenant's `settings`.
    pub fn new(log: Arc<RecordedLog>, settings: ResponseSettings, responder: &str) -> Self {
        RecordingActions {
            log,
            settings,
            responder: responder.to_owned(),
        }
    }

    /// Record the answer to `request` (or give the one recorded before).
    fn record(
        &self,
        request: &ActionRequest,
        decision_id: &str,
        action: &str,
        answer: Result<&str, &str>,
    ) -> Result<String, (String, String)> {
        let mut log = self.log.lock();
        let key = (
            decision_id.to_owned(),
            self.responder.clone(),
            action.to_owned(),
            request.key_target(),
        );
        if let Some(&i) = log.index.get(&key) {
            let r = &log.records[i];
            return if r.ok {
                Ok(r.detail.clone())
            } else {
                Err((r.detail.clone(), "failed before; not repeated".into()))
            };
        }
        let record = ActionRecord {
            decision_id: decision_id.to_owned(),
            time_ms: log.current.0,
            responder: self.responder.clone(),
            action: request.action().to_owned(),
            target: request.target().to_owned(),
            ok: answer.is_ok(),
            detail: match answer {
                Ok(d) | Err(d) => d.to_owned(),
            },
            session_id: request.session_id().to_owned(),
            text: match request {
                ActionRequest::Notify { text, .. } => text.clone(),
                ActionRequest::Subject { .. } => String::new(),
            },
        };
        let i = log.records.len();
        log.records.push(record);
        log.index.insert(key, i);
        answer
            .map(str::to_owned)
            .map_err(|code| (code.to_owned(), "not admitted".into()))
    }
}

impl ActionSink for RecordingActions {
    fn perform(&self, request: ActionRequest) -> Result<String, (String, String)> {
        let enforce = self.log.lock().current.1;
        let decision = request.decision_id().to_owned();
        match admit(&self.settings, &request, enforce) {
            Admission::Perform => {
                self.record(&request, &decision, request.action(), Ok("recorded"))
            }
            Admission::Hold => {
                self.record(&request, &decision, request.action(), Ok(AWAITING_APPROVAL))
            }
            Admission::Record => self.record(&request, &decision, request.action(), Ok("dry-run")),
            Admission::Fail(code, message) => self
                .record(&request, &decision, request.action(), Err(&code))
                .map_err(|(code, _)| (code, message)),
        }
    }

    fn refused(&self, request: &ActionRequest, decision_id: &str, _reason: &str) {
        let action = format!("refused/{}", request.action());
        let _ = self.record(request, decision_id, &action, Err(REFUSED));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(channel: &str) -> ActionRequest {
        ActionRequest::Notify {
            decision_id: "d1".into(),
            channel: channel.into(),
            text: "t".into(),
        }
    }

    #[test]
    fn a_notification_to_an_unmapped_channel_fails_in_dry_run_as_in_earnest() {
        let mut settings = ResponseSettings::default();
        settings
            .webhooks
            .insert("hooked".into(), "https://x".into());
        settings
            .slack_channels
            .insert("security".into(), "C1".into());
        for enforce in [true, false] {
            assert!(matches!(
                admit(&settings, &notify("elsewhere"), enforce),
                Admission::Fail(code, _) if code == UNKNOWN_CHANNEL
            ));
        }
        assert_eq!(
            admit(&settings, &notify("hooked"), true),
            Admission::Perform
        );
        assert_eq!(
            admit(&settings, &notify("security"), false),
            Admission::Record
        );
    }

    #[test]
    fn a_repeated_request_gets_the_first_answer_and_is_recorded_once() {
        let log = Arc::new(RecordedLog::default());
        let sink = RecordingActions::new(log.clone(), ResponseSettings::default(), "r");
        let reset = ActionRequest::on_subject(EffectKind::TerminateSessions, "d1", "U1");
        assert_eq!(sink.perform(reset.clone()), Ok("dry-run".into()));
        assert_eq!(sink.perform(reset), Ok("dry-run".into()));
        let failed = sink.perform(notify("nowhere")).unwrap_err();
        assert_eq!(failed.0, UNKNOWN_CHANNEL);
        assert_eq!(
            sink.perform(notify("nowhere")).unwrap_err().0,
            UNKNOWN_CHANNEL
        );
        let records = log.records();
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(
            (records[1].ok, records[1].detail.as_str()),
            (false, UNKNOWN_CHANNEL)
        );
    }
}
