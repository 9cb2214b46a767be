//! The `Responder` trait, decisions, actions and the runtime glue.

use crate::error::Result;
use crate::finding::Finding;
use crate::host::{Backend, Level};
use crate::info::PluginInfo;
use crate::state::State;

/// A decision from the host's decision engine to respond to a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Unique decision id.
    pub id: String,
    /// The user or entity the response is about.
    pub subject: String,
    /// `false` means dry-run: the host records effects without performing them.
    pub enforce: bool,
    /// Why the engine decided to respond.
    pub reason: String,
    /// The findings behind the decision.
    pub findings: Vec<Finding>,
    /// Event time of the decision (ms).
    pub time_ms: i64,
}

/// Why the host could not perform an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    /// Machine-readable code, e.g. `cannot_reset_primary_owner`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ActionError {
    pub(crate) fn unavailable() -> Self {
        ActionError {
            code: "unavailable".into(),
            message: "actions are only available to responders".into(),
        }
    }
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ActionError {}

/// An effect of the response ladder (`aer:plugin@0.1.1`) besides ending every session
/// of a user and notifying: each is admitted only on the decision's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect<'a> {
    /// End one session of a user (a session named by the decision's findings).
    EndSession {
        /// The user.
        user_id: &'a str,
        /// The session (a finding's `session_id` attribute).
        session_id: &'a str,
    },
    /// Stop an app being installed again.
    RestrictApp {
        /// The app.
        app_id: &'a str,
    },
    /// Remove an app.
    UninstallApp {
        /// The app.
        app_id: &'a str,
    },
    /// Make an admin or owner a regular member.
    DemoteAdmin {
        /// The user.
        user_id: &'a str,
    },
    /// Deactivate a user's account.
    DeactivateUser {
        /// The user.
        user_id: &'a str,
    },
}

impl Effect<'_> {
    /// The action's name, as the host's action log shows it.
    pub fn action(&self) -> &'static str {
        match self {
            Effect::EndSession { .. } => "end-session",
            Effect::RestrictApp { .. } => "restrict-app",
            Effect::UninstallApp { .. } => "uninstall-app",
            Effect::DemoteAdmin { .. } => "demote-admin",
            Effect::DeactivateUser { .. } => "deactivate-user",
        }
    }

    /// The user or app it acts on.
    pub fn target(&self) -> &str {
        match self {
            Effect::EndSession { user_id, .. }
            | Effect::DemoteAdmin { user_id }
            | Effect::DeactivateUser { user_id } => user_id,
            Effect::RestrictApp { app_id } | Effect::UninstallApp { app_id } => app_id,
        }
    }
}

/// The answer to an effect the tenant's policy holds for a person's approval: the host
/// performs it once a person approves the review.
pub const AWAITING_APPROVAL: &str = "awaiting-approval";

/// The result of one effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The action (`terminate-sessions`, `end-session`, `restrict-app`, `notify`, ...).
    pub action: String,
    /// Who it was about.
    pub subject: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Host answer or error code.
    pub detail: String,
}

/// A responder's handle on the host while handling one decision. Every action it
/// performs is recorded as an [`ActionOutcome`] and returned to the host.
pub struct ResponseContext<'h> {
    state: State<'h>,
    backend: &'h dyn Backend,
    decision_id: String,
    outcomes: Vec<ActionOutcome>,
}

impl<'h> ResponseContext<'h> {
    /// The plugin's state.
    pub fn state(&mut self) -> &mut State<'h> {
        &mut self.state
    }

    /// Write a log message.
    pub fn log(&self, level: Level, message: &str) {
        self.backend.log(level, message);
    }

    /// Where `address` is and who announces it (see [`crate::geo`]).
    pub fn geo(&self, address: &str) -> crate::Place {
        self.backend.geo_lookup(address)
    }

    /// Ask the host to end every session of `user_id`.
    pub fn terminate_sessions(&mut self, user_id: &str) -> Result<String, ActionError> {
        let r = self.backend.terminate_sessions(&self.decision_id, user_id);
        self.record("terminate-sessions", user_id, &r);
        r
    }

    /// Ask the host to end one session of `user_id`: `session_id` must be a
    /// `session_id` attribute of the decision's findings.
    pub fn end_session(&mut self, user_id: &str, session_id: &str) -> Result<String, ActionError> {
        self.effect(Effect::EndSession {
            user_id,
            session_id,
        })
    }

    /// Ask the host to restrict app `app_id` (it can no longer be installed).
    pub fn restrict_app(&mut self, app_id: &str) -> Result<String, ActionError> {
        self.effect(Effect::RestrictApp { app_id })
    }

    /// Ask the host to uninstall app `app_id` from the organisation.
    pub fn uninstall_app(&mut self, app_id: &str) -> Result<String, ActionError> {
        self.effect(Effect::UninstallApp { app_id })
    }

    /// Ask the host to make admin `user_id` a regular member.
    pub fn demote_admin(&mut self, user_id: &str) -> Result<String, ActionError> {
        self.effect(Effect::DemoteAdmin { user_id })
    }

    /// Ask the host to deactivate `user_id`'s account.
    pub fn deactivate_user(&mut self, user_id: &str) -> Result<String, ActionError> {
        self.effect(Effect::DeactivateUser { user_id })
    }

    /// Ask the host for `effect`. The answer may be [`AWAITING_APPROVAL`]: the tenant's
    /// policy holds the kind for a person.
    pub fn effect(&mut self, effect: Effect<'_>) -> Result<String, ActionError> {
        let r = self.backend.effect(&self.decision_id, &effect);
        self.record(effect.action(), effect.target(), &r);
        r
    }

    /// Ask the host to send `text` to the notification `channel` named in the policy.
    pub fn notify(
        &mut self,
        channel: &str,
        subject: &str,
        text: &str,
    ) -> Result<String, ActionError> {
        let r = self.backend.notify(&self.decision_id, channel, text);
        self.record("notify", subject, &r);
        r
    }

    fn record(&mut self, action: &str, subject: &str, r: &Result<String, ActionError>) {
        let (ok, detail) = match r {
            Ok(detail) => (true, detail.clone()),
            Err(e) => (false, e.code.clone()),
        };
        self.outcomes.push(ActionOutcome {
            action: action.into(),
            subject: subject.into(),
            ok,
            detail,
        });
    }
}

/// A responder: decisions in, effects through the host. Every method has a default.
pub trait Responder: Default + 'static {
    /// Describe the plugin; `base` carries name, version and description.
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base
    }

    /// Apply a JSON configuration (see [`crate::parse_config`]).
    fn configure(&mut self, config: &str) -> Result<()> {
        let _ = config;
        Ok(())
    }

    /// Carry out `decision` through `ctx`'s actions.
    fn respond(&mut self, ctx: &mut ResponseContext<'_>, decision: &Decision) -> Result<()> {
        let _ = (ctx, decision);
        Ok(())
    }
}

/// Runtime glue for [`crate::export_responder!`] and the native test harness.
#[doc(hidden)]
pub mod runtime {
    use std::any::Any;
    use std::cell::RefCell;

    use super::{ActionOutcome, Decision, Responder, ResponseContext};
    use crate::host::Backend;
    use crate::info::PluginInfo;
    use crate::state::State;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    fn with<R: Responder, T>(f: impl FnOnce(&mut R) -> T) -> T {
        INSTANCE.with(|cell| {
            let mut slot = cell.borrow_mut();
            if !slot.as_ref().is_some_and(|b| b.is::<R>()) {
                *slot = Some(Box::new(R::default()));
            }
            let r = slot
                .as_mut()
                .and_then(|b| b.downcast_mut::<R>())
                .expect("instance was just set to this type");
            f(r)
        })
    }

    /// `info` export.
    pub fn info<R: Responder>(base: PluginInfo) -> PluginInfo {
        with::<R, _>(|r| r.info(base))
    }

    /// `configure` export.
    pub fn configure<R: Responder>(config: &str) -> Result<(), String> {
        with::<R, _>(|r| r.configure(config)).map_err(|e| e.to_string())
    }

    /// `respond` export.
    pub fn respond<R: Responder>(
        backend: &dyn Backend,
        decision: &Decision,
    ) -> Result<Vec<ActionOutcome>, String> {
        with::<R, _>(|r| run_respond(r, backend, decision)).map_err(|e| e.to_string())
    }

    /// Run a responder over one decision.
    pub fn run_respond<R: Responder>(
        r: &mut R,
        backend: &dyn Backend,
        decision: &Decision,
    ) -> crate::Result<Vec<ActionOutcome>> {
        let mut ctx = ResponseContext {
            state: State::new(backend),
            backend,
            decision_id: decision.id.clone(),
            outcomes: Vec::new(),
        };
        r.respond(&mut ctx, decision)?;
        ctx.state.finish()?;
        Ok(ctx.outcomes)
    }
}
