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
use crate::responder::{ActionError, ActionOutcome, Decision, Effect, Responder, runtime as resp};

/// An action a responder asked for, as the in-memory host recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAction {
    /// The action (`terminate-sessions`, `end-session`, `restrict-app`, `notify`, ...).
    pub action: String,
    /// Decision id the action belongs to.
    pub decision_id: String,
    /// User id or notification channel.
    pub target: String,
    /// Notification text (empty for other actions).
    pub text: String,
    /// The session an `end-session` ends (empty for other actions).
    pub session_id: String,
}

/// In-memory host services: state map, captured logs, recorded actions.
#[derive(Debug, Default)]
pub struct MemoryHost {
    state: RefCell<BTreeMap<String, Vec<u8>>>,
    logs: RefCell<Vec<(Level, String)>>,
    actions: RefCell<Vec<RecordedAction>>,
    fail_actions: RefCell<Option<ActionError>>,
    /// Decoded baselines by state key, as the real host keeps them within a call:
    /// decoded on first use, encoded into the state when the call ends (or the state is
    /// read first). `true`: changed since last encoded.
    baselines: RefCell<std::collections::HashMap<String, (BaselineData, bool)>>,
    /// What the geolocation service answers, by address (unknown otherwise).
    places: RefCell<BTreeMap<String, crate::Place>>,
}

impl MemoryHost {
    /// Committed value of a state key.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.encode_baseline(key);
        self.state.borrow().get(key).cloned()
    }

    /// Number of committed state keys.
    pub fn state_len(&self) -> usize {
        self.encode_baselines();
        self.state.borrow().len()
    }

    /// Store the baseline under state key `key` if it changed since it was stored.
    fn encode_baseline(&self, key: &str) {
        if let Some((data, changed)) = self.baselines.borrow_mut().get_mut(key)
            && std::mem::take(changed)
        {
            self.state
                .borrow_mut()
                .insert(key.to_owned(), data.encode());
        }
    }

    /// End a call as the real host does: store the changed baselines and forget the
    /// decoded ones (the next call decodes them again).
    fn end_call(&self) {
        self.encode_baselines();
        self.baselines.borrow_mut().clear();
    }

    /// Store every baseline that changed since it was stored.
    fn encode_baselines(&self) {
        let mut state = self.state.borrow_mut();
        for (key, (data, changed)) in self.baselines.borrow_mut().iter_mut() {
            if std::mem::take(changed) {
                state.insert(key.clone(), data.encode());
            }
        }
    }

    /// Run `f` on the decoded baseline under state key `key` (`change`: `f` changes it).
    fn with_baseline<T>(
        &self,
        key: String,
        change: bool,
        f: impl FnOnce(&mut BaselineData) -> T,
    ) -> T {
        let mut cache = self.baselines.borrow_mut();
        let (data, changed) = cache.entry(key).or_insert_with_key(|key| {
            let stored = self
                .state
                .borrow()
                .get(key)
                .and_then(|b| BaselineData::decode(b));
            (stored.unwrap_or_default(), false)
        });
        *changed |= change;
        f(data)
    }

    /// Log messages so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Actions requested so far.
    pub fn actions(&self) -> Vec<RecordedAction> {
        self.actions.borrow().clone()
    }

    /// Make the geolocation service answer `place` for `address` (every other address
    /// is unknown, as without a database).
    pub fn set_place(&self, address: &str, place: crate::Place) {
        self.places.borrow_mut().insert(address.to_owned(), place);
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
            session_id: String::new(),
        });
        Ok(format!("recorded-{}", actions.len()))
    }
}

impl Backend for MemoryHost {
    fn state_get(&self, key: &str) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn state_apply(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<(), String> {
        self.encode_baselines();
        let mut state = self.state.borrow_mut();
        let mut baselines = self.baselines.borrow_mut();
        for (k, v) in writes {
            baselines.remove(&k);
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
        Ok(())
    }

    fn state_scan(&self, prefix: &str, limit: u32) -> Vec<(String, Vec<u8>)> {
        self.encode_baselines();
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
        let spec = spec.sanitized();
        let value = if value.is_finite() { value } else { 0.0 };
        Ok(self.with_baseline(baseline_state_key(key), true, |data| {
            data.observe(spec, time_ms, value);
            data.stats(spec, time_ms)
        }))
    }

    fn baseline_query(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
    ) -> Result<BaselineStats, String> {
        let spec = spec.sanitized();
        Ok(self.with_baseline(baseline_state_key(key), false, |data| {
            data.stats(spec, time_ms)
        }))
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn geo_lookup(&self, address: &str) -> crate::Place {
        self.places
            .borrow()
            .get(address)
            .cloned()
            .unwrap_or_default()
    }

    fn terminate_sessions(&self, decision_id: &str, user_id: &str) -> Result<String, ActionError> {
        self.act("terminate-sessions", decision_id, user_id, "")
    }

    fn notify(&self, decision_id: &str, channel: &str, text: &str) -> Result<String, ActionError> {
        self.act("notify", decision_id, channel, text)
    }

    fn effect(&self, decision_id: &str, effect: &Effect<'_>) -> Result<String, ActionError> {
        let answer = self.act(effect.action(), decision_id, effect.target(), "")?;
        if let Effect::EndSession { session_id, .. } = effect
            && let Some(last) = self.actions.borrow_mut().last_mut()
        {
            last.session_id = (*session_id).to_owned();
        }
        Ok(answer)
    }
}

/// Check a plugin's configuration schema against what its `configure` accepts: the
/// schema describes an object that refuses unknown properties (as
/// `#[serde(deny_unknown_fields)]` does), and `configure` accepts `{}`, each property
/// the schema names set to the schema's default, and refuses a property it does not
/// name. Panics naming the first disagreement.
pub fn check_config_schema(schema: &str, mut configure: impl FnMut(&str) -> Result<()>) {
    let schema: serde_json::Value = serde_json::from_str(schema)
        .unwrap_or_else(|e| panic!("the configuration schema is not JSON: {e}"));
    assert_eq!(
        schema["type"], "object",
        "the configuration is an object: {schema}"
    );
    assert_eq!(
        schema["additionalProperties"], false,
        "the schema must refuse unknown properties, as `configure` does: {schema}"
    );
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("the schema names no properties: {schema}"));
    if let Err(e) = configure("{}") {
        panic!("`configure` refuses the defaults: {e}");
    }
    for (name, property) in properties {
        let default = property
            .get("default")
            .unwrap_or_else(|| panic!("property {name} has no default in the schema"));
        let config = serde_json::json!({ name: default }).to_string();
        if let Err(e) = configure(&config) {
            panic!("`configure` refuses {config}, the schema's default: {e}");
        }
    }
    assert!(
        configure(r#"{"no_such_property": 1}"#).is_err(),
        "`configure` accepts a property the schema does not name"
    );
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

    /// Check the detector's configuration schema against its `configure` (see
    /// [`check_config_schema`]); the detector is left configured with its defaults.
    pub fn check_config_schema(&mut self) {
        let info = self.detector.info(crate::PluginInfo::default());
        check_config_schema(&info.config_schema, |c| self.detector.configure(c));
        self.detector
            .configure("{}")
            .expect("the defaults are accepted");
    }

    /// Run one batch and return its findings.
    pub fn run(&mut self, events: &[Event]) -> Result<Vec<Finding>> {
        let mut w = BatchWriter::new();
        for e in events {
            w.push(e);
        }
        self.run_encoded(&w.finish())
    }

    /// Run one packed batch as the host sends it (see [`aer_wire::BatchWriter`]), e.g.
    /// bytes from a fuzzer.
    pub fn run_encoded(&mut self, batch: &[u8]) -> Result<Vec<Finding>> {
        let findings = det::run_batch(&mut self.detector, &self.host, batch);
        self.host.end_call();
        findings
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
        let findings = det::run_tick(&mut self.detector, &self.host, now_ms);
        self.host.end_call();
        findings
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

    /// Check the responder's configuration schema against its `configure` (see
    /// [`check_config_schema`]); the responder is left configured with its defaults.
    pub fn check_config_schema(&mut self) {
        let info = self.responder.info(crate::PluginInfo::default());
        check_config_schema(&info.config_schema, |c| self.responder.configure(c));
        self.responder
            .configure("{}")
            .expect("the defaults are accepted");
    }

    /// Handle one decision.
    pub fn respond(&mut self, decision: &Decision) -> Result<Vec<ActionOutcome>> {
        let outcomes = resp::run_respond(&mut self.responder, &self.host, decision);
        self.host.end_call();
        outcomes
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_are_stored_when_read_and_replaced_by_writes() {
        let host = MemoryHost::default();
        let spec = BaselineSpec {
            bucket_ms: 1_000,
            history: 10,
        };
        for t in [0, 1_000, 2_000] {
            host.baseline_observe("u", spec, t, 2.0).unwrap();
        }
        let key = baseline_state_key("u");
        let stored = BaselineData::decode(&host.get(&key).expect("stored")).expect("decodes");
        assert_eq!(stored.stats(spec, 2_000).buckets, 2);
        assert_eq!(host.state_len(), 1);
        // A write to the key replaces the baseline the host had decoded.
        host.state_apply(vec![(key.clone(), None)]).unwrap();
        assert_eq!(host.baseline_query("u", spec, 2_000).unwrap().buckets, 0);
        assert_eq!(
            host.baseline_observe("u", spec, 3_000, 1.0)
                .unwrap()
                .current,
            1.0
        );
        assert_eq!(host.state_len(), 1);
    }
}
