//! Native test harness: run a detector or responder under plain `cargo test` against
//! an in-memory host.
//!
//! ```
//! use aer_sdk::prelude::*;
//! use aer_sdk::testing::{TestDetector, event};
//!
//! #[derive(Default)]
//! struct Echo;
//! impl Detector for Echo {
//!     fn on_event(&mut self, ctx: &mut Context<'_>, e: &Event<'_>) -> Result<()> {
//!         ctx.emit(Finding::new("echo", e.actor.id).evidence(e.id));
//!         Ok(())
//!     }
//! }
//!
//! let mut t = TestDetector::<Echo>::new();
//! let findings = t.run(&[event("user_login").id("e1").actor("U1").at(1_000).build()]).unwrap();
//! assert_eq!(findings[0].subject, "U1");
//! assert_eq!(findings[0].time_ms, 1_000);
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use aer_wire::baseline::{BaselineData, BaselineSpec, BaselineStats, baseline_state_key};
use aer_wire::{BatchWriter, Entity};

/// An owned event, as [`event`] builds it and the host sends it.
pub use aer_wire::Event as OwnedEvent;
use aer_wire::Event;

use crate::detector::{Detector, runtime as det};
use crate::error::Result;
use crate::finding::Finding;
use crate::host::{Backend, Level};
use crate::responder::{ActionError, ActionOutcome, Decision, Responder, runtime as resp};

/// An action a responder asked for, as the in-memory host recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAction {
    /// `terminate-sessions` or `notify`.
    pub action: String,
    /// Decision id the action belongs to.
    pub decision_id: String,
    /// User id or notification channel.
    pub target: String,
    /// Notification text (empty for terminations).
    pub text: String,
}

/// In-memory host services: state map, captured logs, recorded actions.
#[derive(Debug, Default)]
pub struct MemoryHost {
    state: RefCell<BTreeMap<String, Vec<u8>>>,
    logs: RefCell<Vec<(Level, String)>>,
    actions: RefCell<Vec<RecordedAction>>,
    fail_actions: RefCell<Option<ActionError>>,
    /// Decoded baselines with the bytes they were stored as, as the real host keeps
    /// them within a call: decoded once, their statistics remembered.
    baselines: RefCell<std::collections::HashMap<String, (Vec<u8>, BaselineData)>>,
}

impl MemoryHost {
    /// Committed value of a state key.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().get(key).cloned()
    }

    /// Number of committed state keys.
    pub fn state_len(&self) -> usize {
        self.state.borrow().len()
    }

    /// Log messages so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Actions requested so far.
    pub fn actions(&self) -> Vec<RecordedAction> {
        self.actions.borrow().clone()
    }

    /// Make every later action fail with `error` (or succeed again with `None`).
    pub fn fail_actions(&self, error: Option<ActionError>) {
        *self.fail_actions.borrow_mut() = error;
    }

    fn act(
        &self,
        action: &str,
        decision_id: &str,
        target: &str,
        text: &str,
    ) -> Result<String, ActionError> {
        if let Some(e) = self.fail_actions.borrow().clone() {
            return Err(e);
        }
        let mut actions = self.actions.borrow_mut();
        actions.push(RecordedAction {
            action: action.into(),
            decision_id: decision_id.into(),
            target: target.into(),
            text: text.into(),
        });
        Ok(format!("recorded-{}", actions.len()))
    }
}

impl Backend for MemoryHost {
    fn state_get(&self, key: &str) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn state_apply(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<(), String> {
        let mut state = self.state.borrow_mut();
        for (k, v) in writes {
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
        Ok(())
    }

    fn state_scan(&self, prefix: &str, limit: u32) -> Vec<(String, Vec<u8>)> {
        self.state
            .borrow()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn baseline_observe(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
        value: f64,
    ) -> Result<BaselineStats, String> {
        let state_key = baseline_state_key(key);
        let stored = self.get(&state_key);
        let mut cache = self.baselines.borrow_mut();
        let mut data = match (cache.remove(&state_key), &stored) {
            // Still what this host stored: no need to decode it again.
            (Some((bytes, data)), Some(now)) if &bytes == now => data,
            _ => stored
                .and_then(|b| BaselineData::decode(&b))
                .unwrap_or_default(),
        };
        let spec = spec.sanitized();
        data.observe(spec, time_ms, if value.is_finite() { value } else { 0.0 });
        let stats = data.stats(spec, time_ms);
        let bytes = data.encode();
        self.state
            .borrow_mut()
            .insert(state_key.clone(), bytes.clone());
        cache.insert(state_key, (bytes, data));
        Ok(stats)
    }

    fn baseline_query(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
    ) -> Result<BaselineStats, String> {
        let data = self
            .get(&baseline_state_key(key))
            .and_then(|b| BaselineData::decode(&b))
            .unwrap_or_default();
        Ok(data.stats(spec.sanitized(), time_ms))
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn terminate_sessions(&self, decision_id: &str, user_id: &str) -> Result<String, ActionError> {
        self.act("terminate-sessions", decision_id, user_id, "")
    }

    fn notify(&self, decision_id: &str, channel: &str, text: &str) -> Result<String, ActionError> {
        self.act("notify", decision_id, channel, text)
    }
}

/// A detector under test with its own in-memory host. Batches go through the same
/// encoding the real host uses.
pub struct TestDetector<D: Detector> {
    detector: D,
    host: MemoryHost,
}

impl<D: Detector> Default for TestDetector<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Detector> TestDetector<D> {
    /// A default-constructed detector with empty state.
    pub fn new() -> Self {
        TestDetector {
            detector: D::default(),
            host: MemoryHost::default(),
        }
    }

    /// Configure with JSON text.
    pub fn configure(&mut self, config: &str) -> Result<&mut Self> {
        self.detector.configure(config)?;
        Ok(self)
    }

    /// Run one batch and return its findings.
    pub fn run(&mut self, events: &[Event]) -> Result<Vec<Finding>> {
        let mut w = BatchWriter::new();
        for e in events {
            w.push(e);
        }
        det::run_batch(&mut self.detector, &self.host, &w.finish())
    }

    /// Run events one batch of `size` at a time and return all findings.
    pub fn run_batched(&mut self, events: &[Event], size: usize) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        for chunk in events.chunks(size.max(1)) {
            out.extend(self.run(chunk)?);
        }
        Ok(out)
    }

    /// Advance event time with no events.
    pub fn tick(&mut self, now_ms: i64) -> Result<Vec<Finding>> {
        det::run_tick(&mut self.detector, &self.host, now_ms)
    }

    /// The in-memory host (state, logs).
    pub fn host(&self) -> &MemoryHost {
        &self.host
    }

    /// The detector itself.
    pub fn detector(&self) -> &D {
        &self.detector
    }
}

/// A responder under test with its own in-memory host.
pub struct TestResponder<R: Responder> {
    responder: R,
    host: MemoryHost,
}

impl<R: Responder> Default for TestResponder<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Responder> TestResponder<R> {
    /// A default-constructed responder.
    pub fn new() -> Self {
        TestResponder {
            responder: R::default(),
            host: MemoryHost::default(),
        }
    }

    /// Configure with JSON text.
    pub fn configure(&mut self, config: &str) -> Result<&mut Self> {
        self.responder.configure(config)?;
        Ok(self)
    }

    /// Handle one decision.
    pub fn respond(&mut self, decision: &Decision) -> Result<Vec<ActionOutcome>> {
        resp::run_respond(&mut self.responder, &self.host, decision)
    }

    /// The in-memory host (state, logs, recorded actions).
    pub fn host(&self) -> &MemoryHost {
        &self.host
    }
}

/// Start building a test event with `action`.
pub fn event(action: &str) -> EventBuilder {
    EventBuilder {
        event: Event {
            action: action.to_owned(),
            actor: Entity {
                kind: "user".into(),
                ..Default::default()
            },
            ..Default::default()
        },
    }
}

/// Builds an [`Event`] for tests.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: Event,
}

impl EventBuilder {
    /// Set the event id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.event.id = id.into();
        self
    }

    /// Set the event time (ms since the epoch).
    pub fn at(mut self, time_ms: i64) -> Self {
        self.event.time_ms = time_ms;
        self
    }

    /// Set the acting user's id.
    pub fn actor(mut self, user_id: impl Into<String>) -> Self {
        self.event.actor.id = user_id.into();
        self
    }

    /// Set the acting user's email.
    pub fn actor_email(mut self, email: impl Into<String>) -> Self {
        self.event.actor.email = email.into();
        self
    }

    /// Set the target entity.
    pub fn target(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.event.target = Some(Entity {
            kind: kind.into(),
            id: id.into(),
            ..Default::default()
        });
        self
    }

    /// Set the client IP.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.event.context.ip = ip.into();
        self
    }

    /// Set the user agent.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.event.context.user_agent = ua.into();
        self
    }

    /// Set the session id.
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.event.context.session_id = session_id.into();
        self
    }

    /// Add a detail.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.event.details.push((key.into(), value.into()));
        self
    }

    /// Finish.
    pub fn build(self) -> Event {
        self.event
    }
}
