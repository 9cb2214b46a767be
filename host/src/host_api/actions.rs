//! `aer:plugin/actions`: effects a responder asks for, performed by an [`ActionSink`]
//! with the tenant's credentials (which the plugin never sees).

use std::sync::Mutex;

use crate::bindings::host::aer::plugin::actions::{ActionError, Host};
use crate::host_api::HostState;

/// One effect requested by a responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRequest {
    /// End every session of a user.
    TerminateSessions {
        /// Decision the effect belongs to.
        decision_id: String,
        /// The user.
        user_id: String,
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
    /// The action's name, as in the action log.
    pub fn action(&self) -> &'static str {
        match self {
            ActionRequest::TerminateSessions { .. } => "terminate-sessions",
            ActionRequest::Notify { .. } => "notify",
        }
    }

    /// The decision the responder says the effect belongs to.
    pub fn decision_id(&self) -> &str {
        match self {
            ActionRequest::TerminateSessions { decision_id, .. }
            | ActionRequest::Notify { decision_id, .. } => decision_id,
        }
    }

    /// Who or where the effect is aimed at: the user, or the channel.
    pub fn target(&self) -> &str {
        match self {
            ActionRequest::TerminateSessions { user_id, .. } => user_id,
            ActionRequest::Notify { channel, .. } => channel,
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
/// accepts an effect only for this decision's id and, for effects on a user, only on
/// its subject, at most [`crate::limits::Limits::effects_per_decision`] of each kind;
/// every other request is refused (the plugin sees [`REFUSED`]), audited, and faults
/// the call. The decision stage is thus the only gate to an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionBinding {
    /// The decision's id.
    pub id: String,
    /// The decision's subject.
    pub subject: String,
    /// Effects admitted so far: terminate-sessions, notify.
    admitted: [u32; 2],
    /// Why requests were refused, in order.
    pub refused: Vec<String>,
}

impl DecisionBinding {
    /// A binding to the decision `id` about `subject`.
    pub fn new(id: &str, subject: &str) -> Self {
        DecisionBinding {
            id: id.to_owned(),
            subject: subject.to_owned(),
            admitted: [0; 2],
            refused: Vec::new(),
        }
    }

    /// Admit `request`, or say why not.
    fn admit(&mut self, request: &ActionRequest, max: u32) -> Result<(), String> {
        if request.decision_id() != self.id {
            return Err(format!(
                "decision {:?} is not the decision being responded to",
                request.decision_id()
            ));
        }
        let kind = match request {
            ActionRequest::TerminateSessions { user_id, .. } => {
                if *user_id != self.subject {
                    return Err(format!(
                        "user {:?} is not the subject of decision {}",
                        user_id, self.id
                    ));
                }
                0
            }
            ActionRequest::Notify { .. } => 1,
        };
        if self.admitted[kind] >= max {
            return Err(format!(
                "more than {max} {} effects for one decision",
                request.action()
            ));
        }
        self.admitted[kind] += 1;
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

impl Host for HostState {
    fn terminate_sessions(
        &mut self,
        decision_id: String,
        user_id: String,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        let max = self.limits.string_bytes;
        let request = ActionRequest::TerminateSessions {
            decision_id: limited(decision_id, max),
            user_id: limited(user_id, max),
        };
        self.perform(request)
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
