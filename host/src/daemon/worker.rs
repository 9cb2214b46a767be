//! The pipeline workers: the daemon's driver of the stages ([`crate::pipeline`]). Each
//! worker takes turns over the tenants ([`super::claims`] decides who serves what) and,
//! in a tenant, steps every enabled detector one gathered batch (`worker/detect.rs`), then
//! decides the findings that are decidable (`decide.rs`) and runs the responders on the
//! decisions that respond (`respond.rs`), committing each step's output to the
//! [`crate::ledger`]. Faults are counted and backed off (`faults.rs`); plugin instances
//! are kept warm per worker (`instances.rs`).
//!
//! Exactly-once state: a detector batch's state writes, its findings and its advanced
//! cursor go to disk in one atomic commit. A crash before it leaves all three as they
//! were, and the batch runs again from the same state; after it, none repeats. The
//! decision stage commits its decisions, the engine's memory and its cursor the same
//! way.

mod decide;
mod detect;
mod faults;
mod instances;
mod respond;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use super::claims::Claims;
use super::claims::{DECIDE, Entry, Wake, looks_first};
use super::plugins::{PluginRecord, PluginStatus};
use super::supervise::{self, STAGE};
use super::{Daemon, DaemonError};
use crate::plugin::{DetectorInstance, PluginKind};

pub use detect::QuotaExceeded;
pub use faults::{FaultMemory, QUARANTINE_AFTER};
use instances::{Cached, LiveResponder, RESERVED_INSTANCES};
use respond::{HeldUntil, responders};

/// How long a worker keeps stepping one tenant that has work before moving on.
const SLICE: Duration = Duration::from_millis(10);
/// Extra batches, per step, of the detectors behind the first waiting finding.
const CATCH_UP_STEPS: usize = 4;
/// How recently a tenant must have committed work to contend for the time quota.
const CONTENTION_WINDOW: Duration = Duration::from_millis(250);

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
        threads.extend(super::sources::start(&daemon, &stop));
        let (flag, retained) = (stop.clone(), daemon.clone());
        threads.push(
            std::thread::Builder::new()
                .name("aer-inbox-retention".into())
                .spawn(move || super::retention::run(&retained, &flag))
                .expect("can spawn the inbox retention thread"),
        );
        threads.extend(supervise::spawn_threads(
            &daemon,
            &stop,
            "aer-digests",
            1,
            super::notify::run,
        ));
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

/// One pipeline worker.
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
                        if t.suspended || !self.daemon.serves(&t.name) {
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
        let faults = self.note_fault(tenant, STAGE, |m| m.recent.len());
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
    /// One batch of each detector of the tenant no other worker holds, then decisions
    /// and responses for what is decidable (when no other worker holds that stage).
    fn step(&mut self, entry: &Entry<'_>) -> Result<bool, DaemonError> {
        let tenant = entry.tenant.as_str();
        #[cfg(test)]
        test_hook::run("step", [tenant]);
        let mut progressed = false;
        // Taken before the list is read: a record written after changes it.
        let generation = self.daemon.plugin_generation();
        let plugins = self.daemon.plugins(tenant)?;
        let mut detectors = Vec::new();
        for p in plugins
            .iter()
            .filter(|p| p.kind == PluginKind::Detector && p.status == PluginStatus::Enabled)
        {
            detectors.push((self.daemon.detector_cursor(tenant, &p.name)?, p));
        }
        // The most advanced first. Findings are decided in position order, once every
        // detector keeping pace has passed them: a finding made at the head of the inbox
        // is then passed, in this same step, by the detectors behind it, and decided at
        // the end of the step rather than a step later (the detection-to-response
        // latency).
        detectors.sort_by_key(|(cursor, _)| std::cmp::Reverse(*cursor));
        // At the head of the inbox, a finding is decided as soon as the last detector
        // behind it passes it, not at the end of the step.
        for (_, p) in &detectors {
            if self.step_claimed(entry, p, generation)? {
                progressed = true;
                self.decide_if_due(entry, p, &plugins, generation)?;
            }
        }
        // The first waiting finding is decided once every detector keeping pace has
        // passed it: the ones still behind it step again now, ahead of other work, so
        // it is decided in this step (their work is the same, only sooner).
        for _ in 0..CATCH_UP_STEPS {
            let Some(first) = self.daemon.ledger.first_queued(tenant)? else {
                break;
            };
            let mut stepped = false;
            for (_, p) in &detectors {
                if self.daemon.detector_cursor(tenant, &p.name)? <= first
                    && self.step_claimed(entry, p, generation)?
                {
                    stepped = true;
                    self.decide_if_due(entry, p, &plugins, generation)?;
                }
            }
            progressed |= stepped;
            if !stepped {
                break;
            }
        }
        progressed |= self.decide_and_respond(entry, &plugins, generation)?;
        Ok(progressed)
    }

    /// One batch of detector `p` (listed when the plugin records were at
    /// `generation`), unless another worker holds it or it is backing off; whether it
    /// progressed.
    fn step_claimed(
        &mut self,
        entry: &Entry<'_>,
        p: &PluginRecord,
        generation: u64,
    ) -> Result<bool, DaemonError> {
        let tenant = entry.tenant.as_str();
        if self.backing_off(tenant, &p.name) {
            return Ok(false);
        }
        let Some(_claim) = entry.claim(&p.name) else {
            return Ok(false);
        };
        // A plugin deleted (or changed) since the list was read must not run: its
        // deletion clears its state under the same claim (`Claims::hold`). So when a
        // record was written meanwhile, its record is read again under the claim.
        let fresh;
        let p = if self.daemon.plugin_generation() == generation {
            p
        } else {
            match self.daemon.plugin(tenant, &p.name) {
                Ok(r) if r.status == PluginStatus::Enabled => {
                    fresh = r;
                    &fresh
                }
                _ => return Ok(false),
            }
        };
        Ok(self.step_detector(tenant, p)?.is_some())
    }

    /// Decide and respond at once when detector `stepped` has just reached the head of
    /// the inbox and the tenant's first waiting finding has become decidable (see
    /// [`Worker::decide_and_respond`] for the other arguments). Behind the head (a
    /// backlog), decisions wait for the end of the step, in fewer, larger commits.
    fn decide_if_due(
        &mut self,
        entry: &Entry<'_>,
        stepped: &PluginRecord,
        plugins: &[PluginRecord],
        generation: u64,
    ) -> Result<(), DaemonError> {
        let tenant = entry.tenant.as_str();
        let head = self.daemon.inbox.next_seq(tenant).unwrap_or(0);
        if self.daemon.detector_cursor(tenant, &stepped.name)? < head {
            return Ok(());
        }
        let Some(first) = self.daemon.ledger.first_queued(tenant)? else {
            return Ok(());
        };
        if first < self.decidable_below(tenant, &self.pacing(tenant, plugins))? {
            self.decide_and_respond(entry, plugins, generation)?;
        }
        Ok(())
    }

    /// The tenant's detectors (of `plugins`) that count as keeping pace: the enabled
    /// ones, less any recovering from a fault (waiting out a backoff, or isolating the
    /// event that faulted one event a call). Counted, one recovering would hold every
    /// other detector's decisions until its retry (up to a minute) or until its batches
    /// have grown back; it falls behind instead and catches up, its findings decided as
    /// they come.
    fn pacing<'p>(&self, tenant: &str, plugins: &'p [PluginRecord]) -> Vec<&'p str> {
        plugins
            .iter()
            .filter(|p| p.kind == PluginKind::Detector && p.status == PluginStatus::Enabled)
            .filter(|p| !self.recovering(tenant, &p.name))
            .map(|p| p.name.as_str())
            .collect()
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
            listed = self.daemon.plugins(&entry.tenant)?;
            &listed
        };
        let detectors = self.pacing(&entry.tenant, plugins);
        let decided = self.step_decisions(&entry.tenant, &detectors)?;
        let responded = self.step_responses(&entry.tenant, &responders(plugins))?;
        Ok(decided || responded)
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
    use super::*;

    /// `n` events, the `i`th with action `action(i)`.
    pub(super) fn events_of(n: u32, action: impl Fn(u32) -> &'static str) -> Vec<crate::Event> {
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
}
