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

/// Performs effects for responders. Errors are `(code, message)`.
pub trait ActionSink: Send + Sync {
    /// Perform (or record) one effect; `Ok` carries a detail such as a message id.
    fn perform(&self, request: ActionRequest) -> Result<String, (String, String)>;
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
    /// Perform an effect; the time it takes (a slow or rate-limited API) is credited
    /// to the call's deadline.
    fn perform(&mut self, request: ActionRequest) -> Result<String, ActionError> {
        let started = std::time::Instant::now();
        let result = self.actions.perform(request);
        self.call.waited_since(started);
        result.map_err(|(code, message)| ActionError { code, message })
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
        Ok(self.perform(request))
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
        Ok(self.perform(request))
    }
}
