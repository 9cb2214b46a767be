//! The pipeline worker: for each tenant, runs every enabled detector over the inbox
//! from its own cursor, then the decision engine over new findings.
//!
//! Exactly-once state: a detector batch's state writes, its findings and its advanced
//! cursor go to disk in one atomic sled batch. A crash before it leaves all three as
//! they were, and the batch runs again from the same state; after it, none repeats.
//! The decision stage commits its decisions, the engine's memory and its cursors the
//! same way.
//!
//! A faulting plugin's cursor stays put; after [`QUARANTINE_AFTER`] consecutive faults
//! it is quarantined, and enabling it again resumes from where it stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aer_wire::BatchWriter;
use serde::{Deserialize, Serialize};

use super::inbox::{InboxError, InboxEvents};
use super::keys::{self, kind};
use super::plugins::{PluginRecord, PluginStatus};
use super::supervise::{self, STAGE};
use super::{Daemon, DaemonError};
use crate::finding::FindingRecord;
use crate::host_api::DryRunActions;
use crate::pipeline::decide::{DecisionEngine, DecisionRecord, EngineState, decidable_below};
use crate::pipeline::detect::{Positioned, detect};
use crate::pipeline::faults::{AfterFault, FaultCount};
use crate::pipeline::gather::{Gather, Gathered};
use crate::plugin::instance::InstanceSpec;
use crate::plugin::records::wit_decision;
use crate::plugin::validate::Rejection;
use crate::plugin::{DetectorInstance, PluginKind, ResponderInstance};

use super::effects::DaemonActions;
use crate::store::{Scope, StateStore};

pub use crate::pipeline::faults::QUARANTINE_AFTER;
/// Wait before retrying a plugin after its first fault in [`FAULT_WINDOW`]; each
/// further fault in the window doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before retrying a faulting plugin.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a fault counts towards the backoff (re-enabling does not forget it).
const FAULT_WINDOW: Duration = Duration::from_secs(300);
/// How long a worker keeps stepping one tenant that has work before moving on.
const SLICE: Duration = Duration::from_millis(10);
/// How recently a tenant must have committed work to contend for the time quota.
const CONTENTION_WINDOW: Duration = Duration::from_millis(250);

/// A plugin's recent faults: what they lead to (counted by the pipeline's rule,
/// [`FaultCount`]) and their times (for the retry backoff, so a plugin that keeps
/// looping, even when re-enabled again and again, is retried ever more rarely).
#[derive(Debug, Default)]
pub struct FaultMemory {
    count: FaultCount,
    recent: std::collections::VecDeque<Instant>,
    retry_at: Option<Instant>,
}

impl FaultMemory {
    /// Record a fault's time now: the plugin waits before its next call.
    fn backoff(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > FAULT_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let doublings = (self.recent.len() as u32 - 1).min(20);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF);
        self.retry_at = Some(now + wait);
    }

    /// Whether the plugin is waiting out its backoff at `now`.
    fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }
}
/// Inbox events read at a time.
const READ: usize = crate::pipeline::gather::BATCH;
/// Findings per decision-stage step.
const DECISION_BATCH: usize = 256;
/// Processed events that gather, with no finding waiting, before the decision engine
/// observes them ahead of the next finding (see `Worker::observe_ahead`).
const OBSERVE_AHEAD: u64 = 1024;
/// Most events the decision engine observes ahead in one step.
const OBSERVE_STEP: u64 = 4_096;

/// A finding as stored, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Per-tenant finding sequence number.
    pub seq: u64,
    /// Its position: the inbox seq of the event it is dated from (see
    /// [`crate::pipeline::decide::DecisionOrder`]).
    pub event_seq: u64,
    /// Wall time when it was committed (ms), for detection-to-response latency.
    #[serde(default)]
    pub committed_ms: i64,
    /// The finding.
    #[serde(flatten)]
    pub finding: FindingRecord,
}

/// A decision as stored, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    /// Per-tenant decision sequence number.
    pub seq: u64,
    /// Wall time when its finding was committed (ms).
    #[serde(default)]
    pub finding_committed_ms: i64,
    /// The decision.
    #[serde(flatten)]
    pub decision: DecisionRecord,
}

/// Wakes the workers when there is new work: a count of signals, so each worker
/// knows whether anything arrived since it last looked, whatever the others did (a
/// shared "woken" flag could be taken by a worker that then found the tenant busy,
/// leaving the worker holding it asleep with work waiting).
#[derive(Default)]
pub struct Wake {
    signals: Mutex<u64>,
    cond: Condvar,
}

impl Wake {
    /// Signal new work.
    pub fn notify(&self) {
        *self.signals.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cond.notify_all();
    }

    /// Signals so far; pass it to [`Wake::wait`] after looking for work.
    fn seen(&self) -> u64 {
        *self.signals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until a signal after `seen`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .cond
            .wait_timeout_while(guard, timeout, |signals| *signals == seen)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// The running workers; they stop (finishing their current batches) when dropped.
///
/// Each worker takes turns over the tenants (see [`Claims`] for who serves what), so
/// one tenant's slow or looping plugin occupies at most one worker while other tenants
/// wait, and a lone busy tenant's detectors run on every worker.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pipeline {
    /// Start `config.pipeline_threads` workers (0: one per available core), the
    /// effects executor (`executor.rs`), the inbox retention thread (`retention.rs`), and
    /// compile every tenant's active plugin versions on a thread of their own, so that
    /// after a restart the workers find them compiled rather than compiling on the
    /// event path.
    pub fn start(daemon: Arc<Daemon>) -> Pipeline {
        let warm = daemon.clone();
        let _ = std::thread::Builder::new()
            .name("aer-warm-up".into())
            .spawn(move || warm_up(&warm));
        let stop = Arc::new(AtomicBool::new(false));
        let wake = daemon.wake.clone();
        let n = match daemon.config.pipeline_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let room = (daemon
            .config
            .max_instances
            .saturating_sub(RESERVED_INSTANCES) as usize
            / n.max(1))
        .max(1);
        let mut threads = (0..n)
            .map(|i| {
                let flag = stop.clone();
                let daemon = daemon.clone();
                let name = format!("aer-pipeline-{i}");
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || {
                        supervise::run_thread(&name, &daemon.health, &daemon.metrics, &flag, || {
                            Worker::new(daemon.clone(), room, (i, n)).run(&flag)
                        })
                    })
                    .expect("can spawn a pipeline thread")
            })
            .collect::<Vec<_>>();
        if let Err(e) = daemon.recover_replays() {
            tracing::error!("cannot read the dead letters waiting for a replay: {e}");
        }
        threads.extend(super::executor::start(&daemon, &stop));
        let (flag, retained) = (stop.clone(), daemon.clone());
        threads.push(
            std::thread::Builder::new()
                .name("aer-inbox-retention".into())
                .spawn(move || super::retention::run(&retained, &flag))
                .expect("can spawn the inbox retention thread"),
        );
        Pipeline {
            stop,
            wake,
            threads,
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Compile the active version of every enabled plugin of every tenant.
fn warm_up(daemon: &Daemon) {
    let Ok(tenants) = daemon.tenants() else {
        return;
    };
    for t in tenants {
        for p in daemon.plugins(&t.name).unwrap_or_default() {
            if p.status != PluginStatus::Enabled {
                continue;
            }
            if let Some(v) = p.active_version()
                && let Err(e) = daemon.load_artifact(&v.sha256)
            {
                tracing::warn!(tenant = %t.name, plugin = %p.name, "cannot compile the stored plugin: {e}");
            }
        }
    }
}

/// Which workers are in which tenants, and which parts of a tenant (a detector, or the
/// decision and response stage) a worker holds. Each part is held by one worker at a
/// time, so its batches stay in order; a tenant's different parts may be served by
/// different workers at once, so one tenant's detectors use every core when no other
/// tenant is waiting.
#[derive(Default)]
pub struct Claims(Mutex<ClaimSet>);

#[derive(Default)]
struct ClaimSet {
    /// Workers in each tenant.
    workers: HashMap<String, usize>,
    /// Held (tenant, part) pairs.
    parts: std::collections::HashSet<(String, String)>,
}

/// A worker's presence in a tenant, released when dropped.
struct Entry<'c> {
    claims: &'c Claims,
    tenant: String,
}

/// A hold on one part of a tenant (by a worker, or by a change no batch may run
/// beside), released when dropped.
pub(crate) struct Claim<'c> {
    claims: &'c Claims,
    key: (String, String),
}

/// The part name of a tenant's decision and response stage (plugin names are never
/// empty).
const DECIDE: &str = "";

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClaimSet> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enter `tenant`: always when no worker is in it; when one is, only if no tenant
    /// in `busy` (those with recent work) is left without a worker, so a tenant takes a
    /// second worker only from idle capacity and one tenant's slow or looping plugins
    /// never keep the others waiting.
    fn enter(&self, tenant: &str, busy: &[String]) -> Option<Entry<'_>> {
        let mut set = self.lock();
        let inside = set.workers.get(tenant).copied().unwrap_or(0);
        let someone_waiting = || {
            busy.iter()
                .any(|b| b != tenant && set.workers.get(b).copied().unwrap_or(0) == 0)
        };
        if inside > 0 && someone_waiting() {
            return None;
        }
        *set.workers.entry(tenant.to_owned()).or_default() += 1;
        Some(Entry {
            claims: self,
            tenant: tenant.to_owned(),
        })
    }

    /// Hold the part of `tenant` that runs `plugin` (a detector's own part, the
    /// decision and response stage for a responder), waiting while a worker holds it:
    /// no batch of the plugin runs until the hold is dropped.
    pub(crate) fn hold(&self, tenant: &str, plugin: &str, kind: PluginKind) -> Claim<'_> {
        let part = match kind {
            PluginKind::Detector => plugin,
            PluginKind::Responder => DECIDE,
        };
        let key = (tenant.to_owned(), part.to_owned());
        loop {
            if self.lock().parts.insert(key.clone()) {
                return Claim { claims: self, key };
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Entry<'_> {
    /// Hold `part` of the tenant, unless another worker does.
    fn claim(&self, part: &str) -> Option<Claim<'_>> {
        let key = (self.tenant.clone(), part.to_owned());
        let held = self.claims.lock().parts.insert(key.clone());
        // Built only when held: a dropped claim releases its part.
        held.then(|| Claim {
            claims: self.claims,
            key,
        })
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let mut set = self.claims.lock();
        if let Some(n) = set.workers.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                set.workers.remove(&self.tenant);
            }
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.claims.lock().parts.remove(&self.key);
    }
}

/// A responder instance and the action sink it was built with.
type LiveResponder = (ResponderInstance, Arc<DaemonActions>);

/// A live plugin instance, kept while its version and configuration stay the same.
struct Cached<T> {
    sha256: String,
    config: String,
    used: Instant,
    value: T,
}

/// Instances kept out of the workers' shares, for uploads (which instantiate a plugin
/// to describe it) and for `aer validate`-style checks running at the same time.
const RESERVED_INSTANCES: u32 = 32;

/// Why a plugin instance cannot be had.
enum Unavailable {
    /// Every compiler slot is taken (another worker or the start-up warm-up is
    /// compiling): the host's condition, not the plugin's; try again on a later turn.
    Busy,
    /// Loading or starting it failed: the plugin's fault.
    Fault(String),
}

/// The cached instance of `p` for `tenant`, rebuilt with `build` (given the loaded
/// component) when the active version or the configuration changed. Before building
/// one, when the worker already holds `room` instances (`held` of them in this cache),
/// the least recently used one of this cache is dropped.
fn cached<'c, T>(
    cache: &'c mut HashMap<(String, String), Cached<T>>,
    (held, room): (usize, usize),
    daemon: &Daemon,
    tenant: &str,
    p: &super::plugins::PluginRecord,
    build: impl FnOnce(&Arc<crate::plugin::LoadedPlugin>) -> Result<T, crate::plugin::Fault>,
) -> Result<&'c mut T, Unavailable> {
    let sha = p
        .active_version()
        .map(|v| v.sha256.clone())
        .ok_or_else(|| Unavailable::Fault(format!("no active version {}", p.active)))?;
    let key = (tenant.to_owned(), p.name.clone());
    let stale = cache
        .get(&key)
        .is_none_or(|c| c.sha256 != sha || c.config != p.config);
    if stale {
        cache.remove(&key);
        if held >= room {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        let loaded = daemon.load_artifact(&sha).map_err(|e| match e {
            super::plugins::PluginError::Rejected(Rejection::CompilerBusy { .. }) => {
                Unavailable::Busy
            }
            e => Unavailable::Fault(e.to_string()),
        })?;
        let value = build(&loaded).map_err(|f| Unavailable::Fault(f.to_string()))?;
        daemon.metrics.instantiated(tenant, &p.name);
        cache.insert(
            key.clone(),
            Cached {
                sha256: sha,
                config: p.config.clone(),
                used: Instant::now(),
                value,
            },
        );
    }
    let entry = cache.get_mut(&key).expect("inserted above");
    entry.used = Instant::now();
    Ok(&mut entry.value)
}

/// What an instance of `tenant`'s plugin `p` is built with: its configuration, the
/// daemon's state store and `actions`.
fn instance_spec(
    daemon: &Daemon,
    tenant: &str,
    p: &super::plugins::PluginRecord,
    actions: Arc<dyn crate::host_api::ActionSink>,
) -> InstanceSpec {
    InstanceSpec {
        tenant: tenant.to_owned(),
        // The tenant's name for the plugin keys everything, never the component's.
        name: Some((p.name.clone(), p.active.clone())),
        config: p.config.clone(),
        state: Arc::new(daemon.state_store()),
        actions,
    }
}

struct Worker {
    daemon: Arc<Daemon>,
    /// Instances this worker may keep (its share of `max_instances`).
    room: usize,
    /// This worker's number among `workers`: it looks at the tenants that hash to it
    /// first (see [`looks_first`]).
    index: usize,
    workers: usize,
    detectors: HashMap<(String, String), Cached<DetectorInstance>>,
    responders: HashMap<(String, String), Cached<LiveResponder>>,
    /// Per tenant, where its pending responses start to need an enabled responder
    /// (see [`HeldUntil`]).
    held: HashMap<String, HeldUntil>,
}

/// The decision seq below which every pending response of a tenant waits only for its
/// quarantined responders, as found with these enabled and quarantined responders (a
/// change of either finds it again from the start).
struct HeldUntil {
    responders: (Vec<String>, Vec<String>),
    seq: u64,
}

/// Gather one call of a detector by `rule` (see [`crate::pipeline::gather`]) from
/// `first` (read at its cursor) and the inbox after it (`read` from a seq).
fn gather_inbox(
    first: InboxEvents,
    mut read: impl FnMut(u64) -> Result<InboxEvents, InboxError>,
    rule: Gather,
    wants: impl Fn(&str) -> bool,
) -> Result<Gathered, DaemonError> {
    let mut g = rule.start();
    let mut events = first;
    loop {
        let mut last = None;
        for (seq, bytes) in events.iter() {
            if !g.offer(seq, bytes, &wants) {
                return Ok(g.finish());
            }
            last = Some(seq);
        }
        // A short read is the end of what is stored.
        let Some(last) = last.filter(|_| events.len() >= READ) else {
            return Ok(g.finish());
        };
        events = read(last + 1).map_err(|e| DaemonError::record("inbox", e))?;
    }
}

/// The responders that decisions go to, in name order: enabled ones run, quarantined
/// ones are waited for (see `Worker::step_responses`).
fn responders(plugins: &[PluginRecord]) -> Vec<PluginRecord> {
    let mut list: Vec<PluginRecord> = plugins
        .iter()
        .filter(|p| {
            p.kind == PluginKind::Responder
                && matches!(p.status, PluginStatus::Enabled | PluginStatus::Quarantined)
        })
        .cloned()
        .collect();
    // In name order, as every driver runs them.
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

fn json_err(e: serde_json::Error) -> DaemonError {
    DaemonError::record("pipeline record", e)
}

/// A big-endian u64 record (absent: 0).
pub(crate) fn get_u64(tree: &sled::Tree, key: &[u8]) -> Result<u64, DaemonError> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// The seq after the last key under `prefix` (0 when there is none).
pub(crate) fn next_seq(tree: &sled::Tree, prefix: &[u8]) -> Result<u64, DaemonError> {
    Ok(match tree.scan_prefix(prefix).next_back() {
        Some(r) => keys::seq_of(&r?.0).map_or(0, |s| s + 1),
        None => 0,
    })
}

impl Worker {
    fn new(daemon: Arc<Daemon>, room: usize, (index, workers): (usize, usize)) -> Self {
        Worker {
            daemon,
            room,
            index,
            workers: workers.max(1),
            detectors: HashMap::new(),
            responders: HashMap::new(),
            held: HashMap::new(),
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let seen = self.daemon.wake.seen();
            let mut progressed = false;
            match self.daemon.tenants() {
                Ok(mut tenants) => {
                    tenants.sort_by_key(|t| !looks_first(&t.name, self.index, self.workers));
                    // Once per pass: "recent" spans several passes.
                    let busy = self.recently_busy();
                    #[cfg(test)]
                    test_hook::run("pass", tenants.iter().map(|t| t.name.as_str()));
                    for t in tenants {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if t.suspended {
                            continue;
                        }
                        let daemon = self.daemon.clone();
                        let Some(entry) = daemon.claims.enter(&t.name, &busy) else {
                            continue;
                        };
                        progressed |= self.serve(&entry);
                    }
                }
                Err(e) => tracing::error!("cannot list tenants: {e}"),
            }
            if !progressed {
                self.daemon.wake.wait(seen, Duration::from_millis(100));
            }
        }
    }

    /// Step the tenant while it has work, for up to [`SLICE`] (so its instances stay
    /// warm on this worker instead of every worker building them), giving way when
    /// its time quota runs out. Whether anything progressed.
    fn serve(&mut self, entry: &Entry<'_>) -> bool {
        let tenant = entry.tenant.as_str();
        if self.backing_off(tenant, STAGE) {
            return false;
        }
        let cpu = self.daemon.config.quota(tenant).cpu_ms_per_second;
        let slice = Instant::now();
        let mut progressed = false;
        loop {
            // The tenant's pipeline time quota: past it, it gives way to tenants with
            // work and time left (alone, it carries on).
            let balance = self.daemon.cpu.balance(tenant, cpu);
            if balance <= 0.0 && self.should_yield(tenant, balance) {
                self.daemon.metrics.throttled(tenant);
                return progressed;
            }
            let started = Instant::now();
            let p = match supervise::catch(|| self.step(entry)) {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::error!(%tenant, "pipeline step failed: {e}");
                    false
                }
                Err(panic) => {
                    self.stage_panicked(tenant, &panic);
                    return progressed;
                }
            };
            if p {
                self.daemon.busy().insert(tenant.to_owned(), Instant::now());
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            self.daemon.cpu.charge(tenant, ms, cpu);
            progressed |= p;
            if !p || slice.elapsed() >= SLICE {
                return progressed;
            }
        }
    }

    /// A panic in `tenant`'s stage: fault the stage (it waits out a growing backoff,
    /// see [`FaultMemory`]) and drop this worker's instances of the tenant, which the
    /// panic may have left mid-call. Other tenants are untouched.
    fn stage_panicked(&mut self, tenant: &str, message: &str) {
        let message = crate::text::escape_control(message);
        let faults = {
            let mut memory = self.daemon.fault_memory();
            let m = memory
                .entry((tenant.to_owned(), STAGE.to_owned()))
                .or_default();
            m.backoff(Instant::now());
            m.recent.len()
        };
        tracing::error!(%tenant, faults, "the tenant's pipeline stage panicked: {message}; it is retried after a backoff");
        self.daemon.metrics.stage_fault(tenant);
        self.detectors.retain(|(t, _), _| t != tenant);
        self.responders.retain(|(t, _), _| t != tenant);
        self.held.remove(tenant);
    }

    /// The tenants that committed work within [`CONTENTION_WINDOW`].
    fn recently_busy(&self) -> Vec<String> {
        let now = Instant::now();
        self.daemon
            .busy()
            .iter()
            .filter(|(_, at)| now.duration_since(**at) < CONTENTION_WINDOW)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// One batch of each detector of the tenant no other worker holds, each followed
    /// by decisions and responses for the findings it made (when no other worker holds
    /// that stage).
    fn step(&mut self, entry: &Entry<'_>) -> Result<bool, DaemonError> {
        let tenant = entry.tenant.as_str();
        #[cfg(test)]
        test_hook::run("step", [tenant]);
        let mut progressed = false;
        // Taken before the list is read: a record written after changes it.
        let generation = self.daemon.plugin_generation();
        let plugins = self
            .daemon
            .plugins(tenant)
            .map_err(|e| DaemonError::record("plugins", e))?;
        for p in plugins
            .iter()
            .filter(|p| p.kind == PluginKind::Detector && p.status == PluginStatus::Enabled)
        {
            if self.backing_off(tenant, &p.name) {
                continue;
            }
            let Some(_claim) = entry.claim(&p.name) else {
                continue;
            };
            // A plugin deleted (or changed) since the list was read must not run: its
            // deletion clears its state under the same claim (`Claims::hold`). So when
            // a record was written meanwhile, its record is read again under the claim.
            let fresh;
            let p = if self.daemon.plugin_generation() == generation {
                p
            } else {
                match self.daemon.plugin(tenant, &p.name) {
                    Ok(r) if r.status == PluginStatus::Enabled => {
                        fresh = r;
                        &fresh
                    }
                    _ => continue,
                }
            };
            match self.step_detector(tenant, p)? {
                Some(0) => progressed = true,
                // Findings are decided and responded to at once, not after the other
                // detectors' batches: that is the detection-to-response latency.
                Some(_) => {
                    progressed = true;
                    self.decide_and_respond(entry, &plugins, generation)?;
                }
                None => {}
            }
        }
        progressed |= self.decide_and_respond(entry, &plugins, generation)?;
        Ok(progressed)
    }

    /// Decide the tenant's new findings and run its responders (`plugins` as listed
    /// when the plugin records were at `generation`), unless another worker is doing
    /// so.
    fn decide_and_respond(
        &mut self,
        entry: &Entry<'_>,
        plugins: &[PluginRecord],
        generation: u64,
    ) -> Result<bool, DaemonError> {
        let Some(_claim) = entry.claim(DECIDE) else {
            return Ok(false);
        };
        // Listed again under the claim when a record was written since, for the reason
        // `step` reads a detector's again under its own.
        let listed;
        let plugins = if self.daemon.plugin_generation() == generation {
            plugins
        } else {
            listed = self
                .daemon
                .plugins(&entry.tenant)
                .map_err(|e| DaemonError::record("plugins", e))?;
            &listed
        };
        let detectors: Vec<&str> = plugins
            .iter()
            .filter(|p| p.kind == PluginKind::Detector && p.status == PluginStatus::Enabled)
            .map(|p| p.name.as_str())
            .collect();
        let decided = self.step_decisions(&entry.tenant, &detectors)?;
        let responded = self.step_responses(&entry.tenant, &responders(plugins))?;
        Ok(decided || responded)
    }

    fn instance(
        &mut self,
        tenant: &str,
        p: &super::plugins::PluginRecord,
    ) -> Result<&mut DetectorInstance, Unavailable> {
        let daemon = self.daemon.clone();
        let held = (self.detectors.len() + self.responders.len(), self.room);
        cached(
            &mut self.detectors,
            held,
            &self.daemon,
            tenant,
            p,
            |loaded| {
                DetectorInstance::new(
                    &daemon.engine,
                    loaded,
                    instance_spec(&daemon, tenant, p, Arc::new(DryRunActions::default())),
                )
            },
        )
    }

    /// Whether `tenant`'s plugin `name` is waiting out a fault backoff.
    fn backing_off(&self, tenant: &str, name: &str) -> bool {
        self.daemon
            .fault_memory()
            .get(&(tenant.to_owned(), name.to_owned()))
            .is_some_and(|m| m.backing_off(Instant::now()))
    }

    /// Whether `tenant`, whose time bucket holds `balance`, should give way: another
    /// tenant committed work within [`CONTENTION_WINDOW`] and has more time left.
    fn should_yield(&self, tenant: &str, balance: f64) -> bool {
        self.recently_busy()
            .iter()
            .filter(|t| *t != tenant)
            .any(|other| {
                let per_second = self.daemon.config.quota(other).cpu_ms_per_second;
                self.daemon.cpu.balance(other, per_second) > balance
            })
    }

    /// Stage a call's state writes into `batch`, updating the tenant's state size
    /// `size`; `Ok(Err(why))`, staging nothing, when they would pass the tenant's quota.
    /// Once the batch is applied, hand the token to [`crate::store::SledStore::applied`].
    fn stage_state(
        &self,
        tenant: &str,
        plugin: &str,
        writes: &crate::store::WriteSet,
        batch: &mut sled::Batch,
        size: &mut u64,
    ) -> Result<Result<crate::store::Staged, String>, DaemonError> {
        let store = self.daemon.state_store();
        let scope = Scope::new(tenant, plugin);
        let mut delta: i64 = 0;
        for (k, v) in writes.iter() {
            let old = store
                .get(&scope, k)
                .map_err(|e| DaemonError::record("state", e))?;
            if let Some(old) = old {
                delta -= (k.len() + old.len()) as i64;
            }
            if let Some(v) = v {
                delta += (k.len() + v.len()) as i64;
            }
        }
        // The plugin that grows past a limit faults, not its siblings: its own bytes
        // against the per-plugin limit first, then the tenant's total.
        let plugin_key = keys::plugin_state_bytes(tenant, plugin);
        let plugin_size = get_u64(&self.daemon.pipeline, &plugin_key)?;
        let plugin_new = (plugin_size as i64).saturating_add(delta).max(0) as u64;
        let new = (*size as i64).saturating_add(delta).max(0) as u64;
        let quota = self.daemon.config.quota(tenant);
        if delta > 0 && plugin_new > quota.max_plugin_state_bytes {
            return Ok(Err(format!(
                "state quota: the plugin would keep {plugin_new} bytes of state, its limit is {}",
                quota.max_plugin_state_bytes
            )));
        }
        if delta > 0 && new > quota.max_state_bytes {
            return Ok(Err(format!(
                "state quota: the tenant's plugins would keep {new} bytes of state, its limit is {}",
                quota.max_state_bytes
            )));
        }
        let staged = store.stage(&scope, writes, batch);
        batch.insert(plugin_key, &plugin_new.to_be_bytes());
        *size = new;
        Ok(Ok(staged))
    }

    /// A fault not tied to a batch's events (see [`FaultCount::fault`]): the plugin
    /// waits out its backoff and is quarantined after [`QUARANTINE_AFTER`] in a row.
    fn record_fault(
        &mut self,
        tenant: &str,
        name: &str,
        message: String,
    ) -> Result<(), DaemonError> {
        let after = {
            let mut memory = self.daemon.fault_memory();
            let m = memory
                .entry((tenant.to_owned(), name.to_owned()))
                .or_default();
            m.backoff(Instant::now());
            m.count.fault()
        };
        self.fault_in_record(tenant, name, message, after == AfterFault::Quarantine)
    }

    /// A successful call of `tenant`'s plugin `name`: its faults in a row start again.
    fn succeeded(&self, tenant: &str, name: &str) {
        if let Some(m) = self
            .daemon
            .fault_memory()
            .get_mut(&(tenant.to_owned(), name.to_owned()))
        {
            m.count.success(Gather::default());
        }
    }

    /// Count a fault in the plugin's record (its count and last fault), quarantining it
    /// with `quarantine`.
    fn fault_in_record(
        &self,
        tenant: &str,
        name: &str,
        message: String,
        quarantine: bool,
    ) -> Result<(), DaemonError> {
        tracing::warn!(%tenant, plugin = %name, quarantine, "plugin fault: {}", crate::text::escape_control(&message));
        if let Ok(mut rec) = self.daemon.plugin(tenant, name) {
            rec.faults += 1;
            rec.last_fault = Some(message);
            if quarantine {
                rec.status = PluginStatus::Quarantined;
            }
            self.daemon.put_plugin_record(tenant, &rec)?;
        }
        Ok(())
    }

    /// One batch of one detector: `None` when it made no progress, else the number of
    /// findings it committed.
    fn step_detector(
        &mut self,
        tenant: &str,
        p: &super::plugins::PluginRecord,
    ) -> Result<Option<usize>, DaemonError> {
        let daemon = self.daemon.clone();
        let tree = self.daemon.pipeline.clone();
        let cursor_key = keys::cursor(tenant, &p.name);
        let cursor = get_u64(&tree, &cursor_key)?;
        if let Some(letter) = self.daemon.next_replay(tenant, &p.name)? {
            return self.replay(tenant, p, letter);
        }
        let events = self
            .daemon
            .inbox
            .read(tenant, cursor, READ)
            .map_err(|e| DaemonError::record("inbox", e))?;
        if events.is_empty() {
            return Ok(None);
        }
        if let Some((first, _)) = events.iter().next()
            && first > cursor
        {
            tracing::warn!(%tenant, plugin = %p.name, skipped = first - cursor,
                "the detector's next events were removed by inbox retention (it was disabled or new)");
        }
        let instance = match self.instance(tenant, p) {
            Ok(i) => i,
            Err(Unavailable::Busy) => return Ok(None),
            Err(Unavailable::Fault(message)) => {
                self.record_fault(tenant, &p.name, message)?;
                return Ok(None);
            }
        };
        let rule = daemon
            .fault_memory()
            .get(&(tenant.to_owned(), p.name.clone()))
            .map_or(Gather::default(), |m| m.count.gather(Gather::default()));
        let g = gather_inbox(
            events,
            |from| daemon.inbox.read(tenant, from, READ),
            rule,
            |a| instance.wants(a),
        )?;
        let next_cursor = g.next_cursor(cursor);
        let mut batch = sled::Batch::default();
        let mut found = 0;
        let mut commit = None;
        let mut staged = None;
        if !g.is_empty() {
            let out = match detect(instance, &g) {
                Ok(out) => out,
                Err(fault) => {
                    // The store is rebuilt on the next call, which retries this batch
                    // (or part of it, isolating the event that faults).
                    self.daemon
                        .metrics
                        .fault(tenant, &p.name, &fault.kind.to_string());
                    return self.batch_fault(tenant, &p.name, fault.to_string(), &g);
                }
            };
            let id = instance.id().clone();
            let lag = self
                .daemon
                .inbox
                .next_seq(tenant)
                .unwrap_or(0)
                .saturating_sub(next_cursor);
            self.daemon.metrics.detector_call(
                tenant,
                &id.plugin,
                g.delivered.len(),
                out.findings.len(),
                out.plugin_time.as_secs_f64(),
                lag,
            );
            commit = Some(daemon.commit_lock());
            let mut size = self.daemon.state_bytes(tenant)?;
            let token =
                match self.stage_state(tenant, &id.plugin, &out.writes, &mut batch, &mut size)? {
                    Ok(token) => token,
                    Err(message) => {
                        self.daemon.metrics.fault(tenant, &p.name, "quota");
                        self.record_fault(tenant, &p.name, message)?;
                        return Ok(None);
                    }
                };
            batch.insert(keys::state_bytes(tenant), &size.to_be_bytes());
            found = stage_findings(&tree, tenant, out.findings, &mut batch)?;
            staged = Some((token, Scope::new(tenant, &id.plugin), out.writes));
        }
        batch.insert(cursor_key, &next_cursor.to_be_bytes());
        tree.apply_batch(batch)?;
        let store = self.daemon.state_store();
        if let Some((token, scope, writes)) = &staged {
            store.applied(*token, scope, writes);
        }
        drop(commit);
        self.daemon.fold_state_if_due();
        self.succeeded(tenant, &p.name);
        Ok(Some(found))
    }

    /// A detector call over the events of `g` faulted: it is retried after the backoff,
    /// its events isolated, and the event that faults every time set aside as a dead
    /// letter, by the pipeline's rule ([`FaultCount::batch_fault`]). Always `None`: a
    /// fault is not progress, even when the cursor moved past a dead letter (a tenant
    /// whose plugin only faults must not count as busy for the time quota, or a busy
    /// neighbour past its quota would give way to it).
    fn batch_fault(
        &mut self,
        tenant: &str,
        name: &str,
        message: String,
        g: &Gathered,
    ) -> Result<Option<usize>, DaemonError> {
        // Every fault counts towards the backoff: a plugin that faults on event after
        // event waits ever longer between them, as a quarantined one re-enabled again
        // and again does.
        let after = {
            let mut memory = self.daemon.fault_memory();
            let m = memory
                .entry((tenant.to_owned(), name.to_owned()))
                .or_default();
            m.backoff(Instant::now());
            m.count.batch_fault(g.delivered.len())
        };
        let quarantine = match after {
            AfterFault::Retry | AfterFault::Isolate => false,
            AfterFault::Quarantine => true,
            AfterFault::DeadLetter { quarantine } => {
                self.dead_letter(tenant, name, &message, g)?;
                quarantine
            }
        };
        self.fault_in_record(tenant, name, message, quarantine)?;
        Ok(None)
    }

    /// Set the one event of `g` aside as a dead letter of detector `name`, moving its
    /// cursor past the events `g` looked at.
    fn dead_letter(
        &self,
        tenant: &str,
        name: &str,
        message: &str,
        g: &Gathered,
    ) -> Result<(), DaemonError> {
        let Some(&event_seq) = g.delivered.first() else {
            return Ok(());
        };
        let events = self
            .daemon
            .inbox
            .read(tenant, event_seq, 1)
            .map_err(|e| DaemonError::record("inbox", e))?;
        let encoded = events
            .iter()
            .find(|(seq, _)| *seq == event_seq)
            .map(|(_, bytes)| bytes.to_vec())
            .unwrap_or_default();
        let mut letter = super::dead_letters::DeadLetter {
            seq: 0,
            plugin: name.to_owned(),
            event_seq,
            event_id: aer_wire::encoded_id(&encoded).unwrap_or("").to_owned(),
            fault: message.to_owned(),
            status: "dead".into(),
            time_ms: super::now_ms(),
            event: hex::encode(&encoded),
        };
        let mut batch = sled::Batch::default();
        self.daemon
            .stage_dead_letter(tenant, &mut letter, &mut batch)?;
        batch.insert(
            keys::cursor(tenant, name),
            &g.next_cursor(event_seq).to_be_bytes(),
        );
        self.daemon.pipeline.apply_batch(batch)?;
        self.daemon.metrics.dead_letter(tenant, name);
        tracing::warn!(%tenant, plugin = %name, event = %crate::text::escape_control(&letter.event_id),
            event_seq, dead_letter = letter.seq, "the event faults the detector every time: moved to the dead letters");
        Ok(())
    }

    /// Run dead letter `letter` of detector `p` alone (a replay asked for after a fix):
    /// its findings and state are committed with the letter marked `replayed`, or the
    /// letter stays dead with the new fault. The cursor does not move.
    fn replay(
        &mut self,
        tenant: &str,
        p: &super::plugins::PluginRecord,
        mut letter: super::dead_letters::DeadLetter,
    ) -> Result<Option<usize>, DaemonError> {
        let instance = match self.instance(tenant, p) {
            Ok(i) => i,
            Err(Unavailable::Busy) => return Ok(None),
            Err(Unavailable::Fault(message)) => {
                self.record_fault(tenant, &p.name, message)?;
                return Ok(None);
            }
        };
        let mut w = BatchWriter::new();
        w.push_encoded(&letter.encoded().unwrap_or_default());
        letter.time_ms = super::now_ms();
        let g = Gathered {
            batch: w.finish(),
            delivered: vec![letter.event_seq],
            last_seq: Some(letter.event_seq),
        };
        let out = match detect(instance, &g) {
            Ok(out) => out,
            Err(fault) => {
                letter.status = "dead".into();
                letter.fault = fault.to_string();
                self.daemon.put_dead_letter(tenant, &letter)?;
                return Ok(Some(0));
            }
        };
        let id = instance.id().clone();
        let daemon = self.daemon.clone();
        let commit = daemon.commit_lock();
        let mut batch = sled::Batch::default();
        let mut size = self.daemon.state_bytes(tenant)?;
        let token =
            match self.stage_state(tenant, &id.plugin, &out.writes, &mut batch, &mut size)? {
                Ok(token) => token,
                Err(message) => {
                    drop(commit);
                    letter.status = "dead".into();
                    letter.fault = message;
                    self.daemon.put_dead_letter(tenant, &letter)?;
                    return Ok(Some(0));
                }
            };
        batch.insert(keys::state_bytes(tenant), &size.to_be_bytes());
        let found = stage_findings(&self.daemon.pipeline, tenant, out.findings, &mut batch)?;
        letter.status = "replayed".into();
        batch.insert(
            keys::seq_key(kind::DEAD_LETTER, tenant, letter.seq),
            serde_json::to_vec(&letter).map_err(json_err)?,
        );
        self.daemon.pipeline.apply_batch(batch)?;
        self.daemon
            .state_store()
            .applied(token, &Scope::new(tenant, &id.plugin), &out.writes);
        drop(commit);
        Ok(Some(found))
    }

    /// Decide the tenant's waiting findings in decision order, those below the
    /// position every detector keeping pace has passed ([`decidable_below`]), the engine
    /// observing the inbox up to each one's position first. `detectors` are the
    /// tenant's enabled detectors.
    fn step_decisions(&mut self, tenant: &str, detectors: &[&str]) -> Result<bool, DaemonError> {
        let tree = self.daemon.pipeline.clone();
        let t = tenant.as_bytes();
        let observed_key = keys::observed(tenant);
        let state_key = keys::key(kind::ENGINE_STATE, &[t]);
        let mut observed = get_u64(&tree, &observed_key)?;
        // Cursors first: a finding below one is committed with it, so in the queue.
        let cursors = detectors
            .iter()
            .map(|d| get_u64(&tree, &keys::cursor(tenant, d)))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = self.daemon.inbox.next_seq(tenant).unwrap_or(0);
        let below = decidable_below(cursors, observed, stored);
        let mut queued = Vec::new();
        for r in tree
            .scan_prefix(keys::key(kind::DECISION_QUEUE, &[t]))
            .take(DECISION_BATCH)
        {
            let (key, _) = r?;
            let (position, seq) = keys::queued(&key, tenant)
                .ok_or_else(|| DaemonError::record("decision queue", "a malformed key"))?;
            if position >= below {
                break;
            }
            queued.push((key, position, seq));
        }
        if queued.is_empty() {
            return self.observe_ahead(tenant);
        }
        let mut engine = self.decision_engine(tenant)?;
        let first_decision = next_seq(&tree, &keys::key(kind::DECISION, &[t]))?;
        let mut batch = sled::Batch::default();
        for (dseq, (key, position, seq)) in (first_decision..).zip(queued) {
            batch.remove(key);
            let Some(v) = tree.get(keys::seq_key(kind::FINDING, tenant, seq))? else {
                continue;
            };
            let f: StoredFinding = serde_json::from_slice(&v).map_err(json_err)?;
            self.observe(tenant, &mut engine, &mut observed, position)?;
            let decision = engine.decide(&f.finding);
            self.daemon
                .metrics
                .decision(tenant, decision.outcome.as_str());
            if decision.outcome.responds() {
                batch.insert(keys::seq_key(kind::PENDING_RESPONSE, tenant, dseq), &[]);
            }
            batch.insert(
                keys::seq_key(kind::DECISION, tenant, dseq),
                serde_json::to_vec(&StoredDecision {
                    seq: dseq,
                    finding_committed_ms: f.committed_ms,
                    decision,
                })
                .map_err(json_err)?,
            );
        }
        batch.insert(
            state_key,
            serde_json::to_vec(engine.state()).map_err(json_err)?,
        );
        batch.insert(observed_key, &observed.to_be_bytes());
        tree.apply_batch(batch)?;
        Ok(true)
    }

    /// The tenant's decision engine: its policy, and its memory as last committed.
    fn decision_engine(&self, tenant: &str) -> Result<DecisionEngine, DaemonError> {
        let policy = self.daemon.policy(tenant)?;
        let state_key = keys::key(kind::ENGINE_STATE, &[tenant.as_bytes()]);
        let state: EngineState = match self.daemon.pipeline.get(&state_key)? {
            Some(v) => serde_json::from_slice(&v).map_err(json_err)?,
            None => EngineState::default(),
        };
        DecisionEngine::with_state(policy, state)
            .map_err(|e| DaemonError::record("policy", format!("{e:?}")))
    }

    /// Have `engine` observe the inbox from `observed` through seq `until`, moving
    /// `observed` past what it read.
    fn observe(
        &self,
        tenant: &str,
        engine: &mut DecisionEngine,
        observed: &mut u64,
        until: u64,
    ) -> Result<(), DaemonError> {
        while *observed <= until {
            let events = self
                .daemon
                .inbox
                .read(tenant, *observed, READ)
                .map_err(|e| DaemonError::record("inbox", e))?;
            if events.is_empty() {
                break;
            }
            // One decoding for the events up to `until`, read in place.
            let mut w = BatchWriter::new();
            for (seq, bytes) in events.iter().take_while(|(s, _)| *s <= until) {
                w.push_encoded(bytes);
                *observed = seq + 1;
            }
            if w.is_empty() {
                // The events through `until` were removed by the inbox's retention.
                *observed = until + 1;
                break;
            }
            let encoded = w.finish();
            for e in aer_wire::decode_batch(&encoded).unwrap_or_default() {
                engine.observe_ref(&e);
            }
        }
        Ok(())
    }

    /// With no finding waiting, have the decision engine observe what every enabled
    /// and quarantined detector has processed (a finding made later comes from a batch
    /// after it), [`OBSERVE_STEP`] events at most, once [`OBSERVE_AHEAD`] have
    /// gathered: so the first finding after a quiet spell does not wait while the
    /// engine observes the whole spell. Whether it observed anything.
    fn observe_ahead(&mut self, tenant: &str) -> Result<bool, DaemonError> {
        let tree = &self.daemon.pipeline;
        let t = tenant.as_bytes();
        let observed_key = keys::observed(tenant);
        let mut observed = get_u64(tree, &observed_key)?;
        // What is stored bounds what is processed, and is known without reading cursors.
        let stored = self.daemon.inbox.next_seq(tenant).unwrap_or(0);
        if stored.saturating_sub(observed) < OBSERVE_AHEAD {
            return Ok(false);
        }
        let processed = self.daemon.processed_seq(tenant)?;
        if processed.saturating_sub(observed) < OBSERVE_AHEAD {
            return Ok(false);
        }
        let mut engine = self.decision_engine(tenant)?;
        let until = processed.min(observed + OBSERVE_STEP) - 1;
        self.observe(tenant, &mut engine, &mut observed, until)?;
        let mut batch = sled::Batch::default();
        batch.insert(
            keys::key(kind::ENGINE_STATE, &[t]),
            serde_json::to_vec(engine.state()).map_err(json_err)?,
        );
        batch.insert(observed_key, &observed.to_be_bytes());
        tree.apply_batch(batch)?;
        Ok(true)
    }

    fn responder(
        &mut self,
        tenant: &str,
        p: &super::plugins::PluginRecord,
    ) -> Result<&mut LiveResponder, Unavailable> {
        let daemon = self.daemon.clone();
        let held = (self.detectors.len() + self.responders.len(), self.room);
        cached(
            &mut self.responders,
            held,
            &self.daemon,
            tenant,
            p,
            |loaded| {
                let sink = Arc::new(DaemonActions::new(&daemon, tenant, &p.name));
                let instance = ResponderInstance::new(
                    &daemon.engine,
                    loaded,
                    instance_spec(&daemon, tenant, p, sink.clone()),
                )?;
                Ok((instance, sink))
            },
        )
    }

    /// Run the enabled responders for decisions that respond, in order. A decision
    /// stays pending until every enabled responder handled it, and also while a
    /// quarantined responder has not: enabled again, it resumes with the decisions made
    /// meanwhile, as a quarantined detector resumes at its cursor (a disabled responder
    /// is passed over). The pending record names the responders done with it. Effects
    /// already in the action log are not repeated when a decision runs again.
    fn step_responses(
        &mut self,
        tenant: &str,
        responders: &[super::plugins::PluginRecord],
    ) -> Result<bool, DaemonError> {
        let (enabled, quarantined): (Vec<_>, Vec<_>) = responders
            .iter()
            .partition(|p| p.status == PluginStatus::Enabled);
        // A responder that faulted waits out its backoff, as detectors do, and the
        // tenant's responses wait with it (they run in decision order).
        if enabled.iter().any(|p| self.backing_off(tenant, &p.name)) {
            return Ok(false);
        }
        let tree = self.daemon.pipeline.clone();
        let names = |list: &[&super::plugins::PluginRecord]| -> Vec<String> {
            list.iter().map(|p| p.name.clone()).collect()
        };
        let now = (names(&enabled), names(&quarantined));
        // Records that wait only for a quarantined responder are passed over once, not
        // read again on every step.
        let from = match self.held.get(tenant) {
            Some(h) if h.responders == now => h.seq,
            _ => 0,
        };
        let mut progressed = false;
        let mut due: Vec<(u64, Vec<String>)> = Vec::new();
        let mut held_until = from;
        for r in tree
            .range(
                keys::seq_key(kind::PENDING_RESPONSE, tenant, from)
                    ..keys::seq_key(kind::PENDING_RESPONSE, tenant, u64::MAX),
            )
            .take(PENDING_SCAN)
        {
            let (key, done) = r?;
            let dseq = keys::seq_of(&key).unwrap_or(0);
            let done = responders_done(&done)?;
            if enabled.iter().any(|p| !done.contains(&p.name)) {
                due.push((dseq, done));
                if due.len() == PENDING_BATCH {
                    break;
                }
                continue;
            }
            if quarantined.iter().all(|p| done.contains(&p.name)) {
                // Nothing left to wait for (a responder it waited for was disabled or
                // removed).
                tree.remove(key)?;
                progressed = true;
            }
            if due.is_empty() {
                held_until = dseq + 1;
            }
        }
        let held = HeldUntil {
            responders: now,
            seq: held_until,
        };
        match self.held.get_mut(tenant) {
            Some(h) => *h = held,
            None => {
                self.held.insert(tenant.to_owned(), held);
            }
        }
        for (dseq, done) in due {
            let Some(v) = tree.get(keys::seq_key(kind::DECISION, tenant, dseq))? else {
                tree.remove(keys::seq_key(kind::PENDING_RESPONSE, tenant, dseq))?;
                progressed = true;
                continue;
            };
            let stored: StoredDecision = serde_json::from_slice(&v).map_err(json_err)?;
            let wit = wit_decision(&stored.decision);
            let enforce = wit.enforce;
            // (responder name, plugin id, its state writes)
            let mut writes = Vec::with_capacity(enabled.len());
            for p in enabled.iter().filter(|p| !done.contains(&p.name)) {
                let r = match self.responder(tenant, p) {
                    Ok(r) => r,
                    Err(Unavailable::Busy) => return Ok(false),
                    Err(Unavailable::Fault(message)) => {
                        self.record_fault(tenant, &p.name, message)?;
                        return Ok(true);
                    }
                };
                r.1.set_enforce(enforce);
                match r.0.respond(&wit) {
                    Ok(out) => writes.push((&p.name, r.0.id().plugin.clone(), out.writes)),
                    Err(fault) => {
                        self.record_fault(tenant, &p.name, fault.to_string())?;
                        return Ok(true);
                    }
                }
            }
            let daemon = self.daemon.clone();
            let commit = daemon.commit_lock();
            let mut batch = sled::Batch::default();
            let mut size = self.daemon.state_bytes(tenant)?;
            let mut tokens = Vec::with_capacity(writes.len());
            for (name, plugin, w) in &writes {
                match self.stage_state(tenant, plugin, w, &mut batch, &mut size)? {
                    Ok(token) => tokens.push(token),
                    Err(message) => {
                        drop(commit);
                        self.record_fault(tenant, name, message)?;
                        return Ok(true);
                    }
                }
            }
            batch.insert(keys::state_bytes(tenant), &size.to_be_bytes());
            let pending_key = keys::seq_key(kind::PENDING_RESPONSE, tenant, dseq);
            let mut now_done = done.clone();
            now_done.extend(writes.iter().map(|(name, _, _)| (*name).clone()));
            if quarantined.iter().all(|p| now_done.contains(&p.name)) {
                batch.remove(pending_key);
            } else {
                batch.insert(
                    pending_key,
                    serde_json::to_vec(&now_done).map_err(json_err)?,
                );
            }
            tree.apply_batch(batch)?;
            progressed = true;
            let store = self.daemon.state_store();
            for ((name, plugin, w), token) in writes.iter().zip(tokens) {
                store.applied(token, &Scope::new(tenant, plugin), w);
                self.succeeded(tenant, name);
            }
            drop(commit);
            self.daemon.fold_state_if_due();
            // Measured when the decision is first responded to.
            if done.is_empty() && stored.finding_committed_ms > 0 {
                let ms = (super::now_ms() - stored.finding_committed_ms).max(0);
                self.daemon
                    .metrics
                    .detection_to_response(tenant, ms as f64 / 1000.0);
            }
        }
        Ok(progressed)
    }
}

/// Stage `findings` of `tenant` into `batch` under the tenant's next finding seqs, each
/// with its place in the decision queue; how many.
fn stage_findings(
    tree: &sled::Tree,
    tenant: &str,
    findings: Vec<Positioned>,
    batch: &mut sled::Batch,
) -> Result<usize, DaemonError> {
    let first = next_seq(tree, &keys::key(kind::FINDING, &[tenant.as_bytes()]))?;
    let n = findings.len();
    for (seq, Positioned { finding, position }) in (first..).zip(findings) {
        batch.insert(
            keys::decision_queue(tenant, position, &finding.plugin, seq),
            &[],
        );
        let stored = StoredFinding {
            seq,
            event_seq: position,
            committed_ms: super::now_ms(),
            finding,
        };
        batch.insert(
            keys::seq_key(kind::FINDING, tenant, seq),
            serde_json::to_vec(&stored).map_err(json_err)?,
        );
    }
    Ok(n)
}

/// Move the findings a data directory of an earlier version had not decided (those
/// from its decision cursor on) into the decision queue, and drop the cursor.
pub(crate) fn migrate_decision_cursors(tree: &sled::Tree) -> Result<(), DaemonError> {
    let cursors: Vec<(sled::IVec, sled::IVec)> = tree
        .scan_prefix([kind::OLD_DECISION_CURSOR])
        .collect::<Result<_, _>>()?;
    for (key, from) in cursors {
        let tenant = keys::tenant_of(&key)
            .ok_or_else(|| DaemonError::record("decision cursor", "a malformed key"))?;
        let from = <[u8; 8]>::try_from(from.as_ref()).map_or(0, u64::from_be_bytes);
        let mut batch = sled::Batch::default();
        for r in tree.range(
            keys::seq_key(kind::FINDING, &tenant, from)
                ..keys::seq_key(kind::FINDING, &tenant, u64::MAX),
        ) {
            let (_, v) = r?;
            let f: StoredFinding = serde_json::from_slice(&v).map_err(json_err)?;
            batch.insert(
                keys::decision_queue(&tenant, f.event_seq, &f.finding.plugin, f.seq),
                &[],
            );
        }
        batch.remove(key);
        tree.apply_batch(batch)?;
        tracing::info!(%tenant, "the undecided findings moved into the decision queue");
    }
    Ok(())
}

/// Pending responses run per step.
const PENDING_BATCH: usize = 16;
/// Pending records read per step at most (those waiting only for a quarantined responder
/// are passed over, and the next step goes on after them).
const PENDING_SCAN: usize = 4096;

/// The responders a pending response record says are done with its decision (a
/// record written before records named them is empty: none).
fn responders_done(record: &[u8]) -> Result<Vec<String>, DaemonError> {
    if record.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(record).map_err(json_err)
}

/// Whether worker `index` of `workers` looks at `tenant` before the other tenants in
/// each pass (by a stable hash of the name). A tenant with more work than a slice then
/// comes back to the worker that holds its instances instead of every worker building
/// them (with 100 busy tenants, 730-770 instances were built for 400 detectors, most on
/// both workers); a worker without work of its own still takes the others' tenants.
fn looks_first(tenant: &str, index: usize, workers: usize) -> bool {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    tenant.hash(&mut h);
    h.finish() % workers.max(1) as u64 == index as u64
}

/// Panics injected by tests where no input can cause one any more: `run(at, tenants)`
/// calls the installed hook with the place (`pass`, once per pass over the tenants;
/// `step`, once per tenant step) and the tenants concerned.
#[cfg(test)]
pub(crate) mod test_hook {
    use std::sync::{Arc, Mutex};

    type Hook = Arc<dyn Fn(&str, &str) + Send + Sync>;
    static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

    /// Add a hook (kept for the test binary's life: key it by tenant names of its own).
    pub fn install(hook: impl Fn(&str, &str) + Send + Sync + 'static) {
        HOOKS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(hook));
    }

    pub(super) fn run<'a>(at: &str, tenants: impl IntoIterator<Item = &'a str>) {
        // Called outside the lock: a hook that panics must not poison it.
        let hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for t in tenants {
            for hook in &hooks {
                hook(at, t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::inbox::Inbox;
    use super::*;
    use crate::pipeline::gather::{BATCH, LOOK_AHEAD};

    const READ_AHEAD: usize = BATCH * LOOK_AHEAD;

    /// `n` events, the `i`th with action `action(i)`.
    fn events_of(n: u32, action: impl Fn(u32) -> &'static str) -> Vec<crate::Event> {
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "{{\"id\":\"e{i}\",\"time_ms\":{i},\"action\":\"{}\",\"actor\":\"U1\"}}\n",
                    action(i)
                )
            })
            .collect();
        crate::ingest::parse(&text).events
    }

    /// An inbox holding [`events_of`]`(n, action)`.
    fn inbox_of(n: u32, action: impl Fn(u32) -> &'static str) -> (tempfile::TempDir, Inbox) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let inbox = Inbox::new(db.clone(), db.open_tree("pipeline").unwrap(), 10).unwrap();
        let events = events_of(n, action);
        for chunk in events.chunks(300) {
            inbox.store("acme", chunk, 0, u64::MAX).unwrap();
        }
        (dir, inbox)
    }

    /// [`gather`] from `cursor` for a detector of `wanted`: events delivered, last seq.
    fn gathered(inbox: &Inbox, cursor: u64, wanted: &str) -> (usize, u64) {
        let first = inbox.read("acme", cursor, READ).unwrap();
        let read = |from| inbox.read("acme", from, READ);
        let g = gather_inbox(first, read, Gather::default(), |a| a == wanted).unwrap();
        (g.delivered.len(), g.last_seq.unwrap())
    }

    #[test]
    fn the_decision_engine_observes_past_events_removed_by_retention() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::ServeConfig {
            data_dir: dir.path().to_owned(),
            ingest: crate::config::IngestConfig {
                retain_events: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        let daemon = Daemon::open(config, "admin-token-0123456789abcdefghijklmn".into()).unwrap();
        daemon.create_tenant("acme").unwrap();
        for chunk in events_of(6_000, |_| "user_login").chunks(1_000) {
            daemon.inbox.store("acme", chunk, 0, u64::MAX).unwrap();
        }
        // No detector: everything is processed, and all but the newest chunk goes.
        let removed = super::super::retention::pass(&daemon).unwrap();
        assert_eq!(removed, daemon.inbox.first_seq("acme").unwrap());
        assert!(removed > 4_096, "{removed}");
        let mut worker = Worker::new(daemon.clone(), 8, (0, 1));
        let entry = daemon.claims.enter("acme", &[]).unwrap();
        // The first step's 4,096 events were all removed: it moves past them.
        assert!(worker.step(&entry).unwrap());
        assert_eq!(daemon.decision_observed("acme").unwrap(), 4_096);
        assert!(worker.step(&entry).unwrap());
        assert_eq!(daemon.decision_observed("acme").unwrap(), 6_000);
    }

    // Regression: a panic in one tenant's stage (an i64 overflow in the decision engine
    // in debug builds) stopped every tenant's pipeline, also after a restart, while
    // `/readyz` said ready.
    #[test]
    fn a_panic_in_one_tenants_stage_faults_it_alone_and_a_dead_thread_shows_in_health() {
        use std::sync::atomic::AtomicUsize;
        static TRIES: AtomicUsize = AtomicUsize::new(0);
        static PASS_PANICS: AtomicUsize = AtomicUsize::new(0);
        test_hook::install(|at, tenant| {
            if at == "step" && tenant == "panics-in-step" {
                TRIES.fetch_add(1, Ordering::SeqCst);
                panic!("injected into the stage");
            }
            if at == "pass"
                && tenant == "panics-in-pass"
                && PASS_PANICS.fetch_add(1, Ordering::SeqCst) == 0
            {
                panic!("injected into the pass");
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::ServeConfig {
            data_dir: dir.path().to_owned(),
            pipeline_threads: 1,
            ..Default::default()
        };
        let daemon = Daemon::open(config, "admin-token-0123456789abcdefghijklmn".into()).unwrap();
        for t in ["panics-in-step", "victim"] {
            daemon.create_tenant(t).unwrap();
            daemon
                .inbox
                .store(t, &events_of(6_000, |_| "user_login"), 0, u64::MAX)
                .unwrap();
        }
        let pipeline = Pipeline::start(daemon.clone());
        let wait = |what: &str, done: &dyn Fn() -> bool| {
            let start = Instant::now();
            while !done() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "waiting for {what}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        wait("the victim's stage", &|| {
            daemon.decision_observed("victim").unwrap() == 6_000
        });
        std::thread::sleep(Duration::from_millis(500));
        let tries = TRIES.load(Ordering::SeqCst);
        assert!(
            (1..=10).contains(&tries),
            "the faulting stage waits out a growing backoff: {tries} tries"
        );
        assert_eq!(daemon.decision_observed("panics-in-step").unwrap(), 0);
        let metrics = daemon.metrics.render();
        assert!(
            metrics.contains("aer_stage_faults_total{tenant=\"panics-in-step\"}"),
            "{metrics}"
        );
        assert!(daemon.health.ready());

        // A panic outside any tenant's stage: the thread is down, then restarted.
        daemon.create_tenant("panics-in-pass").unwrap();
        daemon.wake.notify();
        wait("the thread's panic", &|| !daemon.health.ready());
        wait("the thread's restart", &|| daemon.health.ready());
        assert!(
            daemon
                .metrics
                .render()
                .contains("aer_pipeline_thread_restarts_total 1")
        );
        drop(pipeline);
    }

    #[test]
    fn findings_an_earlier_version_left_undecided_move_into_the_decision_queue() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("pipeline").unwrap();
        for seq in 0..5u64 {
            let f = StoredFinding {
                seq,
                event_seq: 100 - seq,
                committed_ms: 0,
                finding: FindingRecord {
                    plugin: "d".into(),
                    ..Default::default()
                },
            };
            let v = serde_json::to_vec(&f).unwrap();
            tree.insert(keys::seq_key(kind::FINDING, "acme", seq), v)
                .unwrap();
        }
        // Decided up to finding 3.
        let cursor = keys::key(kind::OLD_DECISION_CURSOR, &[b"acme"]);
        tree.insert(&cursor, &3u64.to_be_bytes()).unwrap();
        migrate_decision_cursors(&tree).unwrap();
        let queued: Vec<(u64, u64)> = tree
            .scan_prefix(keys::key(kind::DECISION_QUEUE, &[b"acme"]))
            .map(|r| keys::queued(&r.unwrap().0, "acme").unwrap())
            .collect();
        // In decision order: by position.
        assert_eq!(queued, [(96, 4), (97, 3)]);
        assert!(tree.get(&cursor).unwrap().is_none());
        migrate_decision_cursors(&tree).unwrap();
        assert_eq!(tree.scan_prefix([kind::DECISION_QUEUE]).count(), 2);
    }

    #[test]
    fn a_call_gathers_across_inbox_reads_by_the_pipelines_rule() {
        // One wanted event among 1,000: found in one step, every event looked at.
        let (_dir, inbox) = inbox_of(1_000, |i| if i == 700 { "rare" } else { "common" });
        assert_eq!(gathered(&inbox, 0, "rare"), (1, 999));
        // Every event wanted: a batch, as without reading ahead.
        assert_eq!(gathered(&inbox, 0, "common"), (BATCH, BATCH as u64 - 1));
        // From 600, past the one it does not want (700).
        assert_eq!(gathered(&inbox, 600, "common"), (BATCH, 600 + BATCH as u64));
        // Every other one: a full batch from twice as many events.
        let (_dir, inbox) = inbox_of(1_000, |i| if i % 2 == 0 { "even" } else { "odd" });
        assert_eq!(gathered(&inbox, 0, "odd"), (BATCH, 2 * BATCH as u64 - 1));
        // None wanted: no more than READ_AHEAD looked at in one step.
        let (_dir, inbox) = inbox_of(5_000, |_| "common");
        assert_eq!(gathered(&inbox, 0, "rare"), (0, READ_AHEAD as u64 - 1));
        assert_eq!(gathered(&inbox, READ_AHEAD as u64, "rare"), (0, 4_999));
    }

    #[test]
    fn each_tenant_is_looked_at_first_by_one_worker_and_the_tenants_are_shared() {
        for workers in [1, 2, 3] {
            let mut share = vec![0; workers];
            for t in 0..100 {
                let tenant = format!("tenant{t:03}");
                let firsts: Vec<usize> = (0..workers)
                    .filter(|&i| looks_first(&tenant, i, workers))
                    .collect();
                assert_eq!(firsts.len(), 1, "{tenant} with {workers} workers");
                share[firsts[0]] += 1;
            }
            let fair = 100 / workers;
            assert!(
                share.iter().all(|&n| n > fair / 2 && n < fair * 3 / 2),
                "{share:?}"
            );
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_second_worker_joins_a_tenant_only_when_no_busy_tenant_waits() {
        let claims = Claims::default();
        let first = claims.enter("a", &names(&["a", "b"])).expect("a is free");
        // b has recent work and no worker: a second worker goes there, not to a.
        assert!(claims.enter("a", &names(&["a", "b"])).is_none());
        let in_b = claims.enter("b", &names(&["a", "b"])).expect("b is free");
        // Every busy tenant has a worker: a third may join a.
        let second = claims
            .enter("a", &names(&["a", "b"]))
            .expect("nobody waits");
        // A tenant with no recent work does not hold anyone back.
        drop(in_b);
        assert!(claims.enter("a", &names(&["a"])).is_some());
        drop((first, second));
    }

    #[test]
    fn each_part_of_a_tenant_is_held_by_one_worker_at_a_time() {
        let claims = Claims::default();
        let one = claims.enter("a", &[]).unwrap();
        let two = claims.enter("a", &[]).unwrap();
        let held = one.claim("detector-x").expect("free");
        assert!(two.claim("detector-x").is_none());
        assert!(two.claim("detector-y").is_some());
        assert!(two.claim(DECIDE).is_some());
        drop(held);
        assert!(two.claim("detector-x").is_some(), "released on drop");
        // Another tenant's part of the same name is its own.
        let other = claims.enter("b", &[]).unwrap();
        let _x = one.claim("detector-x").unwrap();
        assert!(other.claim("detector-x").is_some());
    }
}
