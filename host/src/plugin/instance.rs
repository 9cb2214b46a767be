//! Live plugin instances: one long-lived store per (tenant, plugin), every call bounded
//! by an epoch deadline, a memory cap and output caps.
//!
//! A trap of any kind kills the store: it is dropped, and the next call instantiates a
//! fresh one from the pre-instantiated component (and configures it again). State writes
//! of a failed call are dropped with it.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::fault::{Fault, FaultKind};
use super::output::{check_info, finding_times};
use crate::bindings::detector::Detector;
use crate::bindings::responder::Responder;
use crate::bindings::{ActionOutcome, Decision, Finding, PluginInfo};
use crate::engine::AerEngine;
use crate::host_api::limiter::MemoryLimitExceeded;
use crate::host_api::{ActionSink, CallState, HostState, LogRecord, PluginId};
use crate::plugin::validate::{LoadedPlugin, WorldPre};
use crate::store::{StateStore, WriteSet};

/// What a successful call produced.
#[derive(Debug)]
pub struct CallOutput<T> {
    /// The call's result.
    pub value: T,
    /// State writes to commit (see [`DetectorInstance::commit`]).
    pub writes: WriteSet,
    /// Log messages the call wrote.
    pub logs: Vec<LogRecord>,
}

/// A finding as a record of the plugin that made it, with the index in its batch of the
/// event it is dated from.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The finding.
    pub finding: crate::records::FindingRecord,
    /// Index in the batch of the event the finding is dated from.
    pub at: usize,
}

enum Bindings {
    Detector(Detector),
    Responder(Responder),
}

struct Live {
    store: Store<HostState>,
    bindings: Bindings,
}

/// The shared machinery of both instance kinds.
struct Sandbox {
    engine: Arc<AerEngine>,
    plugin: Arc<LoadedPlugin>,
    id: PluginId,
    config: String,
    state: Arc<dyn StateStore>,
    actions: Arc<dyn ActionSink>,
    live: Option<Live>,
    peak_memory: usize,
    restarts: u64,
    info: Option<PluginInfo>,
    /// The actions of `info` as a set (`None`: every action), so matching an event
    /// costs one lookup however many actions a plugin subscribes to.
    subscribed: Option<hashbrown::HashSet<Box<[u8]>>>,
    /// The WASI random seed of every store of this instance (derived once).
    random_seed: [u8; 32],
    configure_on_start: bool,
}

impl Sandbox {
    fn fault(&self, kind: FaultKind, message: impl Into<String>) -> Fault {
        Fault {
            plugin: self.id.clone(),
            kind,
            message: message.into(),
        }
    }

    fn classify(&self, e: &wasmtime::Error, stderr: &str) -> Fault {
        if let Some(m) = e
            .chain()
            .find_map(|c| c.downcast_ref::<MemoryLimitExceeded>())
        {
            return self.fault(FaultKind::MemoryLimit, m.to_string());
        }
        if let Some(r) = e
            .chain()
            .find_map(|c| c.downcast_ref::<crate::host_api::ReadLimitExceeded>())
        {
            return self.fault(FaultKind::ReadLimit, r.to_string());
        }
        if let Some(r) = e
            .chain()
            .find_map(|c| c.downcast_ref::<crate::host_api::actions::EffectsRefused>())
        {
            return self.fault(FaultKind::EffectRefused, r.to_string());
        }
        if let Some(trap) = e.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => self.fault(
                    FaultKind::Timeout,
                    format!(
                        "interrupted after its {} ms deadline",
                        self.engine.limits().deadline_ms
                    ),
                ),
                Trap::StackOverflow => self.fault(FaultKind::StackOverflow, "wasm stack exhausted"),
                Trap::UnreachableCodeReached if stderr.contains("panicked") => {
                    self.fault(FaultKind::Panic, panic_message(stderr))
                }
                other => self.fault(FaultKind::Trap, other.to_string()),
            };
        }
        let text = format!("{e:#}");
        if text.contains("too much data") {
            return self.fault(FaultKind::OutputLimit, text);
        }
        self.fault(FaultKind::Trap, text)
    }

    fn new_store(&self) -> Store<HostState> {
        let limits = self.engine.limits().clone();
        let data = HostState::new(
            self.id.clone(),
            limits.clone(),
            self.state.clone(),
            self.actions.clone(),
            self.engine.geo().clone(),
            self.random_seed,
        );
        let mut store = Store::new(self.engine.engine(), data);
        store.limiter(|s| &mut s.limiter);
        // Time a call waited in the host (an effect over the network, the state store)
        // is not the plugin's: at the deadline, extend it by the whole ticks waited so
        // far (the rest carries over) and trap when there are none, so the plugin's own
        // time stays within its deadline.
        let tick = std::time::Duration::from_millis(self.engine.tick_ms());
        let most = std::time::Duration::from_millis(limits.host_wait_ms);
        store.epoch_deadline_callback(move |mut cx| {
            let call = &mut cx.data_mut().call;
            let left = most.saturating_sub(call.credited);
            let waited = call.waited.get().min(left);
            let ticks = u32::try_from(waited.as_nanos() / tick.as_nanos()).unwrap_or(u32::MAX);
            if ticks == 0 {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            call.waited
                .set(call.waited.get().saturating_sub(tick * ticks));
            call.credited += tick * ticks;
            Ok(wasmtime::UpdateDeadline::Continue(u64::from(ticks)))
        });
        store.set_hostcall_fuel(limits.copy_bytes_per_call);
        store
    }

    /// Instantiate and configure a fresh store if there is none.
    fn ensure_live(&mut self) -> Result<(), Fault> {
        if self.live.is_some() {
            return Ok(());
        }
        let mut store = self.new_store();
        store.set_epoch_deadline(self.engine.deadline_ticks());
        let instantiated = match &self.plugin.pre {
            WorldPre::Detector(pre) => pre.instantiate(&mut store).map(Bindings::Detector),
            WorldPre::Responder(pre) => pre.instantiate(&mut store).map(Bindings::Responder),
        };
        let bindings = match instantiated {
            Ok(b) => b,
            Err(e) => return Err(self.classify(&e, &store.data().stderr_text())),
        };
        self.restarts += 1;
        self.live = Some(Live { store, bindings });
        if self.configure_on_start {
            let config = self.config.clone();
            let configured = self.call(|b, s| match b {
                Bindings::Detector(d) => d.aer_plugin_detection().call_configure(&mut *s, &config),
                Bindings::Responder(r) => r.aer_plugin_response().call_configure(&mut *s, &config),
            })?;
            if let Err(msg) = configured.value {
                self.live = None;
                return Err(self.fault(FaultKind::Config, msg));
            }
        }
        // Described after configuration: subscriptions may depend on it. A configured
        // instance's description is asked once per configuration (see
        // `LoadedPlugin::described`).
        let known = self
            .configure_on_start
            .then(|| self.plugin.described(&self.config))
            .flatten();
        let info = match known {
            Some(info) => info,
            None => {
                let info = self.call(|b, s| match b {
                    Bindings::Detector(d) => d.aer_plugin_detection().call_info(&mut *s),
                    Bindings::Responder(r) => r.aer_plugin_response().call_info(&mut *s),
                })?;
                if let Err(why) = check_info(&info.value) {
                    self.live = None;
                    return Err(self.fault(FaultKind::OutputLimit, format!("plugin info: {why}")));
                }
                if self.configure_on_start {
                    self.plugin.remember(&self.config, &info.value);
                }
                info.value
            }
        };
        self.subscribed = (!info.actions.is_empty())
            .then(|| info.actions.iter().map(|a| a.as_bytes().into()).collect());
        self.info = Some(info);
        Ok(())
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<CallOutput<R>, Fault> {
        self.ensure_live()?;
        let Some(live) = self.live.as_mut() else {
            return Err(self.fault(FaultKind::Trap, "no live instance"));
        };
        live.store.data_mut().call = CallState::default();
        live.store.set_epoch_deadline(self.engine.deadline_ticks());
        let result = f(&live.bindings, &mut live.store);
        live.store.data_mut().forward_stdio();
        self.peak_memory = self.peak_memory.max(live.store.data().limiter.peak());
        match result {
            Ok(value) => {
                live.store.data_mut().flush_baselines();
                let call = std::mem::take(&mut live.store.data_mut().call);
                if call.logs_dropped > 0 {
                    tracing::warn!(plugin = %self.id, dropped = call.logs_dropped, "plugin log messages over the per-call cap were dropped");
                }
                Ok(CallOutput {
                    value,
                    writes: call.writes,
                    logs: call.logs,
                })
            }
            Err(e) => {
                let stderr = live.store.data().stderr_text();
                let fault = self.classify(&e, &stderr);
                // A trapped store is dead: drop it; the next call builds a fresh one.
                self.live = None;
                tracing::warn!(plugin = %self.id, kind = %fault.kind, "{}", fault.message);
                Err(fault)
            }
        }
    }

    fn commit(&self, writes: &WriteSet) -> Result<(), crate::store::StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.state.commit(
            &crate::store::Scope::new(&self.id.tenant, &self.id.plugin),
            writes,
        )
    }

    fn check_findings(&self, findings: &[Finding]) -> Result<(), Fault> {
        super::output::check_findings(findings, self.engine.limits())
            .map_err(|(kind, why)| self.fault(kind, why))
    }
}

/// Everything needed to create an instance.
pub struct InstanceSpec {
    /// Tenant name.
    pub tenant: String,
    /// The name and version the tenant uploaded the plugin under, which key its state,
    /// findings, faults and quotas (never what the component says of itself); `None`
    /// outside the daemon (`aer test`, `aer replay`), where the component's own are used.
    pub name: Option<(String, String)>,
    /// JSON configuration passed to `configure`.
    pub config: String,
    /// Where the plugin's state lives.
    pub state: Arc<dyn StateStore>,
    /// Who performs responder effects.
    pub actions: Arc<dyn ActionSink>,
}

fn sandbox(engine: &Arc<AerEngine>, plugin: &Arc<LoadedPlugin>, spec: InstanceSpec) -> Sandbox {
    let info = plugin.info();
    let (name, version) = spec
        .name
        .unwrap_or_else(|| (info.name.clone(), info.version.clone()));
    Sandbox {
        random_seed: engine.random_seed(&spec.tenant, &name),
        engine: engine.clone(),
        plugin: plugin.clone(),
        id: PluginId {
            tenant: spec.tenant,
            plugin: name,
            version,
        },
        config: spec.config,
        state: spec.state,
        actions: spec.actions,
        live: None,
        peak_memory: 0,
        restarts: 0,
        info: None,
        subscribed: None,
        configure_on_start: true,
    }
}

/// Instantiate `plugin` `n` times, each in a fresh store that is dropped before the
/// next (its pool slot reused), calling nothing; the time of each store's creation and
/// instantiation. What starting an instance costs the host, for `aer bench`.
pub fn time_instantiations(
    engine: &Arc<AerEngine>,
    plugin: &Arc<LoadedPlugin>,
    n: usize,
) -> Result<Vec<std::time::Duration>, Fault> {
    let probe = sandbox(
        engine,
        plugin,
        InstanceSpec {
            tenant: "bench".into(),
            name: None,
            config: String::new(),
            state: Arc::new(crate::store::MemoryStore::default()),
            actions: Arc::new(crate::host_api::DryRunActions::default()),
        },
    );
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let mut store = probe.new_store();
        store.set_epoch_deadline(engine.deadline_ticks());
        let instantiated = match &plugin.pre {
            WorldPre::Detector(pre) => pre.instantiate(&mut store).map(|_| ()),
            WorldPre::Responder(pre) => pre.instantiate(&mut store).map(|_| ()),
        };
        times.push(started.elapsed());
        instantiated.map_err(|e| probe.classify(&e, ""))?;
    }
    Ok(times)
}

/// Start a plugin once, unconfigured, with throwaway state, and read its `info`.
pub(crate) fn probe_info(
    engine: &Arc<AerEngine>,
    plugin: &Arc<LoadedPlugin>,
) -> Result<PluginInfo, Fault> {
    let mut probe = Sandbox {
        engine: engine.clone(),
        plugin: plugin.clone(),
        id: PluginId {
            tenant: String::new(),
            plugin: plugin.meta.sha256.chars().take(12).collect(),
            version: String::new(),
        },
        config: String::new(),
        state: Arc::new(crate::store::MemoryStore::default()),
        actions: Arc::new(crate::host_api::DryRunActions::default()),
        live: None,
        peak_memory: 0,
        restarts: 0,
        info: None,
        subscribed: None,
        random_seed: [0; 32],
        configure_on_start: false,
    };
    probe.ensure_live()?;
    probe
        .info
        .take()
        .ok_or_else(|| probe.fault(FaultKind::Trap, "no info"))
}

macro_rules! common_accessors {
    () => {
        /// The plugin's self-description.
        pub fn info(&self) -> &PluginInfo {
            self.sandbox
                .info
                .as_ref()
                .expect("set when the instance was created")
        }

        /// Tenant, plugin and version.
        pub fn id(&self) -> &PluginId {
            &self.sandbox.id
        }

        /// Largest linear memory granted so far, in bytes.
        pub fn peak_memory(&self) -> usize {
            self.sandbox.peak_memory
        }

        /// How many stores were built (1 + restarts after faults).
        pub fn instantiations(&self) -> u64 {
            self.sandbox.restarts
        }

        /// Commit a successful call's state writes.
        pub fn commit(&self, writes: &WriteSet) -> Result<(), crate::store::StoreError> {
            self.sandbox.commit(writes)
        }
    };
}

/// A live detector.
pub struct DetectorInstance {
    sandbox: Sandbox,
}

impl DetectorInstance {
    /// Instantiate and configure a detector, named as `spec` says.
    pub fn new(
        engine: &Arc<AerEngine>,
        plugin: &Arc<LoadedPlugin>,
        spec: InstanceSpec,
    ) -> Result<Self, Fault> {
        let mut sandbox = sandbox(engine, plugin, spec);
        if !matches!(plugin.pre, WorldPre::Detector(_)) {
            return Err(sandbox.fault(FaultKind::Config, "not a detector component"));
        }
        sandbox.ensure_live()?;
        Ok(DetectorInstance { sandbox })
    }

    common_accessors!();

    /// Whether the detector subscribed to `action`, an encoded event's action bytes
    /// (no subscriptions means every action that is text).
    pub fn wants(&self, action: &[u8]) -> bool {
        match &self.sandbox.subscribed {
            Some(actions) => actions.contains(action),
            None => std::str::from_utf8(action).is_ok(),
        }
    }

    /// Run one packed batch (see `aer_wire::BatchWriter`). Each finding's time is the
    /// host's, from the batch (see [`finding_times`]).
    #[allow(clippy::ptr_arg)] // the generated binding takes `&Vec<u8>`
    pub fn on_events(&mut self, batch: &Vec<u8>) -> Result<CallOutput<Vec<Finding>>, Fault> {
        self.on_events_at(batch).map(|(out, _)| out)
    }

    /// [`DetectorInstance::on_events`], its findings as records of this plugin, each
    /// with the index in the batch of the event it is dated from: the pipeline's detect
    /// stage (see [`crate::pipeline::detect`]).
    #[allow(clippy::ptr_arg)]
    pub fn detect(&mut self, batch: &Vec<u8>) -> Result<CallOutput<Vec<Detection>>, Fault> {
        let (out, positions) = self.on_events_at(batch)?;
        let id = &self.sandbox.id;
        let value = out
            .value
            .into_iter()
            .zip(positions)
            .map(|(f, at)| Detection {
                finding: super::convert::finding_record(f, &id.plugin, &id.version),
                at,
            })
            .collect();
        Ok(CallOutput {
            value,
            writes: out.writes,
            logs: out.logs,
        })
    }

    #[allow(clippy::ptr_arg)]
    fn on_events_at(
        &mut self,
        batch: &Vec<u8>,
    ) -> Result<(CallOutput<Vec<Finding>>, Vec<usize>), Fault> {
        let out = self.sandbox.call(|b, s| match b {
            Bindings::Detector(d) => d.aer_plugin_detection().call_on_events(s, batch),
            Bindings::Responder(_) => Ok(Err("not a detector".into())),
        })?;
        let mut out = self.findings(out)?;
        let mut positions = Vec::new();
        if !out.value.is_empty() {
            positions = finding_times(&mut out.value, batch)
                .map_err(|e| self.sandbox.fault(FaultKind::Trap, e.to_string()))?;
        }
        Ok((out, positions))
    }

    /// Tell the detector event time advanced to `now_ms`; its findings are dated then.
    pub fn on_tick(&mut self, now_ms: i64) -> Result<CallOutput<Vec<Finding>>, Fault> {
        let now_ms = aer_wire::time::clamp(now_ms);
        let out = self.sandbox.call(|b, s| match b {
            Bindings::Detector(d) => d.aer_plugin_detection().call_on_tick(s, now_ms),
            Bindings::Responder(_) => Ok(Err("not a detector".into())),
        })?;
        let mut out = self.findings(out)?;
        for f in &mut out.value {
            f.time_ms = now_ms;
        }
        Ok(out)
    }

    fn findings(
        &self,
        out: CallOutput<Result<Vec<Finding>, String>>,
    ) -> Result<CallOutput<Vec<Finding>>, Fault> {
        let findings = out
            .value
            .map_err(|msg| self.sandbox.fault(FaultKind::PluginError, msg))?;
        self.sandbox.check_findings(&findings)?;
        Ok(CallOutput {
            value: findings,
            writes: out.writes,
            logs: out.logs,
        })
    }
}

/// A live responder.
pub struct ResponderInstance {
    sandbox: Sandbox,
}

impl ResponderInstance {
    /// Instantiate and configure a responder, named as `spec` says.
    pub fn new(
        engine: &Arc<AerEngine>,
        plugin: &Arc<LoadedPlugin>,
        spec: InstanceSpec,
    ) -> Result<Self, Fault> {
        let mut sandbox = sandbox(engine, plugin, spec);
        if !matches!(plugin.pre, WorldPre::Responder(_)) {
            return Err(sandbox.fault(FaultKind::Config, "not a responder component"));
        }
        sandbox.ensure_live()?;
        Ok(ResponderInstance { sandbox })
    }

    common_accessors!();

    /// Carry out a decision. The host admits only effects bound to it (see
    /// [`crate::host_api::DecisionBinding`]); a call that asked for any other faults.
    pub fn respond(
        &mut self,
        decision: &Decision,
    ) -> Result<CallOutput<Vec<ActionOutcome>>, Fault> {
        let out = self.sandbox.call(|b, s| match b {
            Bindings::Responder(r) => {
                s.data_mut().decision = Some(crate::host_api::DecisionBinding::to(decision));
                r.aer_plugin_response().call_respond(s, decision)
            }
            Bindings::Detector(_) => Ok(Err("not a responder".into())),
        });
        let binding = self
            .sandbox
            .live
            .as_mut()
            .and_then(|l| l.store.data_mut().decision.take());
        let out = out?;
        if let Some(first) = binding.and_then(|b| b.refused.into_iter().next()) {
            return Err(self.sandbox.fault(FaultKind::EffectRefused, first));
        }
        let outcomes = out
            .value
            .map_err(|msg| self.sandbox.fault(FaultKind::PluginError, msg))?;
        Ok(CallOutput {
            value: outcomes,
            writes: out.writes,
            logs: out.logs,
        })
    }
}

/// The whole message of the guest's last panic from its stderr: from the last
/// `panicked at` line to the end, every line of the message joined with ` / `, without
/// the standard library's backtrace note.
fn panic_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains("panicked at"))
        .or_else(|| lines.iter().rposition(|l| l.contains("panicked")))
        .unwrap_or(0);
    let message: Vec<&str> = lines[start..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    if message.is_empty() {
        "panicked".to_owned()
    } else {
        message.join(" / ")
    }
}
