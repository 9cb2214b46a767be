//! `aer:plugin/actions`: effects a responder asks for, performed by an [`ActionSink`]
//! with the tenant's credentials (which the plugin never sees).

use std::sync::Mutex;

use crate::bindings::host::aer::plugin::actions::{ActionError, Host};
use crate::host_api::HostState;

/// The kinds of effect a responder can ask for: the response ladder, and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EffectKind {
    /// End every session of a user.
    TerminateSessions,
    /// End one session of a user.
    EndSession,
    /// Stop an app being installed again.
    RestrictApp,
    /// Remove an app.
    UninstallApp,
    /// Make an admin a regular member.
    DemoteAdmin,
    /// Deactivate a user.
    DeactivateUser,
    /// Send a notification.
    Notify,
}

impl EffectKind {
    /// Every kind, in ladder order (notifications last).
    pub const ALL: [EffectKind; 7] = [
        EffectKind::EndSession,
        EffectKind::TerminateSessions,
        EffectKind::RestrictApp,
        EffectKind::UninstallApp,
        EffectKind::DemoteAdmin,
        EffectKind::DeactivateUser,
        EffectKind::Notify,
    ];

    /// The kind's name, as in the action log and the policy.
    pub fn name(self) -> &'static str {
        match self {
            EffectKind::TerminateSessions => "terminate-sessions",
            EffectKind::EndSession => "end-session",
            EffectKind::RestrictApp => "restrict-app",
            EffectKind::UninstallApp => "uninstall-app",
            EffectKind::DemoteAdmin => "demote-admin",
            EffectKind::DeactivateUser => "deactivate-user",
            EffectKind::Notify => "notify",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<EffectKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the effect acts on the decision's subject (all but notifications).
    pub fn acts_on_subject(self) -> bool {
        self != EffectKind::Notify
    }

    /// Whether a person must approve the kind unless the policy says otherwise: all
    /// but the session effects (reversible: the user signs in again) and notifications.
    pub fn needs_approval_by_default(self) -> bool {
        !matches!(
            self,
            EffectKind::TerminateSessions | EffectKind::EndSession | EffectKind::Notify
        )
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in ALL")
    }
}

/// One effect requested by a responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRequest {
    /// An effect on the decision's subject (a user or an app).
    Subject {
        /// Which effect (never [`EffectKind::Notify`]).
        kind: EffectKind,
        /// Decision the effect belongs to.
        decision_id: String,
        /// The user or app.
        target: String,
        /// The session to end ([`EffectKind::EndSession`] only; else empty).
        session_id: String,
    },
    /// Send a notification.
    Notify {
        /// Decision the effect belongs to.
        decision_id: String,
        /// Channel named in the tenant's policy.
        channel: String,
        /// Message text.
        text: String,
    },
}

impl ActionRequest {
    /// An effect of `kind` on `target` for decision `decision_id`.
    pub fn on_subject(kind: EffectKind, decision_id: &str, target: &str) -> Self {
        ActionRequest::Subject {
            kind,
            decision_id: decision_id.to_owned(),
            target: target.to_owned(),
            session_id: String::new(),
        }
    }

    /// The effect's kind.
    pub fn kind(&self) -> EffectKind {
        match self {
            ActionRequest::Subject { kind, .. } => *kind,
            ActionRequest::Notify { .. } => EffectKind::Notify,
        }
    }

    /// The action's name, as in the action log.
    pub fn action(&self) -> &'static str {
        self.kind().name()
    }

    /// The decision the responder says the effect belongs to.
    pub fn decision_id(&self) -> &str {
        match self {
            ActionRequest::Subject { decision_id, .. }
            | ActionRequest::Notify { decision_id, .. } => decision_id,
        }
    }

    /// Who or where the effect is aimed at: the user or app, or the channel.
    pub fn target(&self) -> &str {
        match self {
            ActionRequest::Subject { target, .. } => target,
            ActionRequest::Notify { channel, .. } => channel,
        }
    }

    /// The session an [`EffectKind::EndSession`] ends (empty for every other kind).
    pub fn session_id(&self) -> &str {
        match self {
            ActionRequest::Subject { session_id, .. } => session_id,
            ActionRequest::Notify { .. } => "",
        }
    }

    /// What tells this effect apart from others of its kind in one decision, for its
    /// idempotency key: the target, and the session for an ended session.
    pub fn key_target(&self) -> String {
        match self.session_id() {
            "" => self.target().to_owned(),
            session => format!("{}/{session}", self.target()),
        }
    }
}

/// Performs effects for responders. Errors are `(code, message)`.
pub trait ActionSink: Send + Sync {
    /// Perform (or record) one effect; `Ok` carries a detail such as a message id.
    fn perform(&self, request: ActionRequest) -> Result<String, (String, String)>;

    /// Audit a request the host refused while the responder handled `decision_id`
    /// (see [`DecisionBinding`]); nothing is performed.
    fn refused(&self, request: &ActionRequest, decision_id: &str, reason: &str) {
        tracing::warn!(
            decision = decision_id,
            action = request.action(),
            target = %crate::text::escape_control(request.target()),
            "effect refused: {reason}"
        );
    }
}

/// The code of an [`ActionError`] for an effect the host refused.
pub const REFUSED: &str = "effect_refused";

/// The decision a responder is handling: the only one its effects may serve. The host
/// accepts an effect only for this decision's id; an effect on a user or app only on
/// its subject; an ended session only one its findings name (`session_id`); at most
/// [`crate::limits::Limits::effects_per_decision`] of each kind. Every other request is
/// refused (the plugin sees [`REFUSED`]), audited, and faults the call. The decision
/// stage is thus the only gate to an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionBinding {
    /// The decision's id.
    pub id: String,
    /// The decision's subject.
    pub subject: String,
    /// The sessions its findings name.
    sessions: Vec<String>,
    /// Effects admitted so far, by [`EffectKind::ALL`] position.
    admitted: [u32; EffectKind::ALL.len()],
    /// Why requests were refused, in order.
    pub refused: Vec<String>,
}

/// The finding attribute that names a session.
pub const SESSION_ATTRIBUTE: &str = "session_id";

impl DecisionBinding {
    /// A binding to the decision `id` about `subject`, whose findings name `sessions`.
    pub fn new(id: &str, subject: &str, sessions: Vec<String>) -> Self {
        DecisionBinding {
            id: id.to_owned(),
            subject: subject.to_owned(),
            sessions,
            admitted: [0; EffectKind::ALL.len()],
            refused: Vec::new(),
        }
    }

    /// A binding to `decision`.
    pub fn to(decision: &crate::bindings::Decision) -> Self {
        let sessions = decision
            .findings
            .iter()
            .flat_map(|f| &f.attributes)
            .filter(|a| a.key == SESSION_ATTRIBUTE && !a.value.is_empty())
            .map(|a| a.value.clone())
            .collect();
        Self::new(&decision.id, &decision.subject, sessions)
    }

    /// Admit `request`, or say why not.
    fn admit(&mut self, request: &ActionRequest, max: u32) -> Result<(), String> {
        if request.decision_id() != self.id {
            return Err(format!(
                "decision {:?} is not the decision being responded to",
                request.decision_id()
            ));
        }
        let kind = request.kind();
        if kind.acts_on_subject() && request.target() != self.subject {
            let what = match kind {
                EffectKind::RestrictApp | EffectKind::UninstallApp => "app",
                _ => "user",
            };
            return Err(format!(
                "{what} {:?} is not the subject of decision {}",
                request.target(),
                self.id
            ));
        }
        if kind == EffectKind::EndSession
            && !self.sessions.iter().any(|s| s == request.session_id())
        {
            return Err(format!(
                "session {:?} is not named by the findings of decision {}",
                request.session_id(),
                self.id
            ));
        }
        let admitted = &mut self.admitted[kind.index()];
        if *admitted >= max {
            return Err(format!(
                "more than {max} {} effects for one decision",
                request.action()
            ));
        }
        *admitted += 1;
        Ok(())
    }
}

/// A call that kept asking for refused effects past the per-decision cap; the call
/// traps with it.
#[derive(Debug, thiserror::Error)]
#[error("asked for {refused} effects the host refused (first: {first})")]
pub struct EffectsRefused {
    /// How many were refused.
    pub refused: usize,
    /// Why the first was refused.
    pub first: String,
}

/// Records every request and performs nothing (dry-run, `aer test`, detectors).
#[derive(Debug, Default)]
pub struct DryRunActions {
    requests: Mutex<Vec<ActionRequest>>,
}

impl DryRunActions {
    /// Requests recorded so far.
    pub fn requests(&self) -> Vec<ActionRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ActionSink for DryRunActions {
    fn perform(&self, request: ActionRequest) -> Result<String, (String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
        Ok("recorded".into())
    }
}

fn limited(s: String, max: usize) -> String {
    crate::host_api::log::truncate(s, max)
}

impl HostState {
    /// Perform an effect the decision being responded to allows (see
    /// [`DecisionBinding`]); the time it takes (a slow or rate-limited API) is credited
    /// to the call's deadline.
    fn perform(&mut self, request: ActionRequest) -> wasmtime::Result<Result<String, ActionError>> {
        let max = self.limits.effects_per_decision;
        let admitted = match self.decision.as_mut() {
            Some(binding) => binding.admit(&request, max).map_err(|reason| {
                binding.refused.push(reason.clone());
                (binding.id.clone(), binding.refused.len(), reason)
            }),
            None => Err((
                String::new(),
                1,
                "no decision is being responded to".to_owned(),
            )),
        };
        if let Err((decision_id, refused, reason)) = admitted {
            // Audited up to the cap; past it the call traps, so a loop of refused
            // requests can neither grow the log nor run on.
            if refused as u32 > max {
                let first = self
                    .decision
                    .as_ref()
                    .and_then(|b| b.refused.first().cloned())
                    .unwrap_or(reason);
                return Err(EffectsRefused { refused, first }.into());
            }
            self.actions.refused(&request, &decision_id, &reason);
            return Ok(Err(ActionError {
                code: REFUSED.into(),
                message: reason,
            }));
        }
        let started = std::time::Instant::now();
        let result = self.actions.perform(request);
        self.call.waited_since(started);
        Ok(result.map_err(|(code, message)| ActionError { code, message }))
    }
}

impl HostState {
    /// Perform an effect of `kind` on `target` (see [`HostState::perform`]).
    fn on_subject(
        &mut self,
        kind: EffectKind,
        decision_id: String,
        target: String,
        session_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        let max = self.limits.string_bytes;
        self.perform(ActionRequest::Subject {
            kind,
            decision_id: limited(decision_id, max),
            target: limited(target, max),
            session_id: limited(session_id, max),
        })
    }
}

impl Host for HostState {
    fn terminate_sessions(
        &mut self,
        decision_id: String,
        user_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        let kind = EffectKind::TerminateSessions;
        self.on_subject(kind, decision_id, user_id, String::new())
    }

    fn end_session(
        &mut self,
        decision_id: String,
        user_id: String,
        session_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        self.on_subject(EffectKind::EndSession, decision_id, user_id, session_id)
    }

    fn restrict_app(
        &mut self,
        decision_id: String,
        app_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        self.on_subject(EffectKind::RestrictApp, decision_id, app_id, String::new())
    }

    fn uninstall_app(
        &mut self,
        decision_id: String,
        app_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        self.on_subject(EffectKind::UninstallApp, decision_id, app_id, String::new())
    }

    fn demote_admin(
        &mut self,
        decision_id: String,
        user_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        self.on_subject(EffectKind::DemoteAdmin, decision_id, user_id, String::new())
    }

    fn deactivate_user(
        &mut self,
        decision_id: String,
        user_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        let kind = EffectKind::DeactivateUser;
        self.on_subject(kind, decision_id, user_id, String::new())
    }

    fn notify(
        &mut self,
        decision_id: String,
        channel: String,
        text: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        let max = self.limits.string_bytes;
        let request = ActionRequest::Notify {
            decision_id: limited(decision_id, max),
            channel: limited(channel, max),
            text: limited(text, max),
        };
        self.perform(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(kind: EffectKind, target: &str, session: &str) -> ActionRequest {
        ActionRequest::Subject {
            kind,
            decision_id: "d1".into(),
            target: target.into(),
            session_id: session.into(),
        }
    }

    #[test]
    fn an_effect_is_bound_to_the_decisions_subject_and_the_sessions_its_findings_name() {
        let mut b = DecisionBinding::new("d1", "U1", vec!["42".into()]);
        assert_eq!(b.admit(&on(EffectKind::EndSession, "U1", "42"), 5), Ok(()));
        let why = b
            .admit(&on(EffectKind::EndSession, "U1", "43"), 5)
            .unwrap_err();
        assert!(why.contains("not named by the findings"), "{why}");
        let why = b
            .admit(&on(EffectKind::DeactivateUser, "U2", ""), 5)
            .unwrap_err();
        assert!(why.contains("user \"U2\" is not the subject"), "{why}");
        let why = b
            .admit(&on(EffectKind::RestrictApp, "A1", ""), 5)
            .unwrap_err();
        assert!(why.contains("app \"A1\" is not the subject"), "{why}");
        let mut forged = on(EffectKind::DemoteAdmin, "U1", "");
        if let ActionRequest::Subject { decision_id, .. } = &mut forged {
            *decision_id = "d2".into();
        }
        assert!(b.admit(&forged, 5).is_err(), "another decision");
        // Each kind has its own cap.
        assert_eq!(b.admit(&on(EffectKind::DemoteAdmin, "U1", ""), 1), Ok(()));
        assert!(b.admit(&on(EffectKind::DemoteAdmin, "U1", ""), 1).is_err());
        assert_eq!(
            b.admit(&on(EffectKind::DeactivateUser, "U1", ""), 1),
            Ok(())
        );
        let mut app = DecisionBinding::new("d1", "A1", Vec::new());
        assert_eq!(
            app.admit(&on(EffectKind::UninstallApp, "A1", ""), 5),
            Ok(())
        );
    }
}
