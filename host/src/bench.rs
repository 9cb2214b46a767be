//! `aer bench`: the host's speed against native code and against its goals, measured in
//! one run with the contenders interleaved (this kind of machine is shared and noisy,
//! so ratios from one run mean more than absolute times).
//!
//! The same detector logic runs natively (the built-in `excessive-downloads` crate
//! calling the host's services directly, [`native`]) and as its Wasm component in the
//! real host.

mod console;
mod daemon;
mod instances;
pub mod native;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aer_wire::BatchWriter;
use cpu_time::ThreadTime;

use crate::Event;
use crate::engine::{AerEngine, EngineConfig};
use crate::host_api::DryRunActions;
use crate::pipeline::decide::DecisionEngine;
use crate::pipeline::policy::Policy;
use crate::plugin::instance::InstanceSpec;
use crate::plugin::{DetectorInstance, LoadedPlugin, ResponderInstance};
use crate::store::{MemoryStore, SledStore, StateStore};
use crate::synth::{GenConfig, generate, to_json};
use aer_sdk::testing::TestDetector;

/// One measured figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What it measures.
    pub name: String,
    /// The measured value, formatted.
    pub value: String,
    /// The goal, formatted (empty: no goal).
    pub goal: String,
    /// Whether the goal was met (`None`: no goal).
    pub pass: Option<bool>,
}

impl Figure {
    /// A figure measured for the record, with no goal.
    fn info(name: impl Into<String>, value: impl Into<String>) -> Figure {
        Figure {
            name: name.into(),
            value: value.into(),
            goal: String::new(),
            pass: None,
        }
    }

    fn ratio(name: impl Into<String>, value: f64, goal: Option<(&str, f64)>) -> Figure {
        let (goal_text, pass) = match goal {
            Some((">=", g)) => (format!(">= {g:.2}"), Some(value >= g)),
            Some(("<=", g)) => (format!("<= {g:.2}"), Some(value <= g)),
            _ => (String::new(), None),
        };
        Figure {
            name: name.into(),
            value: format!("{value:.3}"),
            goal: goal_text,
            pass,
        }
    }
}

/// The groups of figures, each runnable on its own (`aer bench --only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Wasm against native, the no-op detector, epoch interruption, sled state.
    Detector,
    /// Parsing Slack entries, on one thread.
    Parse,
    /// Instantiation time and idle instance memory.
    Instances,
    /// The whole local pipeline's throughput.
    Pipeline,
    /// Event-to-response latency through the daemon at half load.
    Latency,
    /// 100 tenants against one, through the daemon.
    Tenants,
    /// A daemon restart with 100 tenants' plugins: time to the first batch.
    Restart,
    /// The console's pages with 10,000 findings and decisions.
    Console,
}

/// What the benchmark needs: the components and how hard to try.
pub struct BenchSetup {
    /// The sections to run (empty: all).
    pub only: Vec<Section>,
    /// `excessive-downloads` as a component.
    pub excessive_downloads: Vec<u8>,
    /// A detector that is handed every event and does nothing with it (the
    /// `noop-detector` test fixture).
    pub noop: Vec<u8>,
    /// The detectors of the pipeline measurement.
    pub pipeline_detectors: Vec<Vec<u8>>,
    /// The responder of the pipeline and daemon measurements.
    pub responder: Vec<u8>,
    /// A detector that flags every failed login (`minimal-detector`), the daemon
    /// latency measurement's probe.
    pub probe: Vec<u8>,
    /// How long the daemon latency measurement streams its half load.
    pub latency_seconds: u64,
    /// Rounds per measurement (the best round counts).
    pub rounds: usize,
    /// Events per measurement.
    pub events: usize,
}

fn spec(state: Arc<dyn StateStore>) -> InstanceSpec {
    InstanceSpec {
        tenant: "bench".into(),
        name: None,
        config: String::new(),
        state,
        actions: Arc::new(DryRunActions::default()),
    }
}

/// Download events from a generated organisation (the excessive-downloads detector's
/// input), at least `n`, in time order.
fn download_events(n: usize) -> Vec<Event> {
    let data = generate(&GenConfig {
        users: (n / 300).clamp(30, 300),
        days: 14,
        messages_per_day: 1.0,
        ..GenConfig::default()
    });
    let downloads: Vec<Event> = data
        .events
        .into_iter()
        .filter(|e| e.action == "file_downloaded")
        .collect();
    downloads.into_iter().cycle().take(n).collect()
}

/// Each event encoded once, as the daemon's inbox keeps them; batches are built by
/// concatenating these (in the timed part, as the daemon's workers do).
fn encode_each(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            let mut out = Vec::with_capacity(512);
            aer_wire::encode_event(e, &mut out);
            out
        })
        .collect()
}

/// Seconds per event of running `f` over `events` in packed batches of `batch`.
fn batched(events: &[Vec<u8>], batch: usize, mut f: impl FnMut(&Vec<u8>)) -> f64 {
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        let mut w = BatchWriter::new();
        for e in chunk {
            w.push_encoded(e);
        }
        f(&w.finish());
    }
    started.elapsed().as_secs_f64() / events.len() as f64
}

/// Seconds per event of a fresh native detector on the host's services, committing
/// each batch's state to `state` (as [`wasm_run`] does).
fn native_run(state: Arc<dyn StateStore>, events: &[Vec<u8>], batch: usize) -> f64 {
    let mut d = native::NativeDetector::<excessive_downloads::ExcessiveDownloads>::new(
        "bench",
        "excessive-downloads",
        state,
    );
    batched(events, batch, |b| {
        std::hint::black_box(d.on_events(b).expect("native run"));
    })
}

/// Seconds per event of a fresh native detector on the SDK's in-memory test host.
fn sdk_native_run(events: &[Vec<u8>], batch: usize) -> f64 {
    let mut d = TestDetector::<excessive_downloads::ExcessiveDownloads>::new();
    batched(events, batch, |b| {
        std::hint::black_box(d.run_encoded(b).expect("native run"));
    })
}

/// Seconds per event of a fresh Wasm instance, committing each batch's state to
/// `state`.
fn wasm_run(
    engine: &Arc<AerEngine>,
    plugin: &Arc<LoadedPlugin>,
    state: Arc<dyn StateStore>,
    events: &[Vec<u8>],
    batch: usize,
) -> f64 {
    let mut d = DetectorInstance::new(engine, plugin, spec(state)).expect("instantiates");
    batched(events, batch, |b| {
        let out = d.on_events(b).expect("wasm run");
        d.commit(&out.writes).expect("commit");
        std::hint::black_box(out.value);
    })
}

/// The best (smallest) of `rounds` runs of `f`.
fn best(rounds: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..rounds.max(1))
        .map(|_| f())
        .fold(f64::INFINITY, f64::min)
}

fn engine(interruptible: bool) -> anyhow::Result<Arc<AerEngine>> {
    // A generous deadline: a busy machine must not turn a slow batch into a fault.
    Ok(AerEngine::new(EngineConfig {
        interruptible,
        limits: crate::limits::Limits {
            deadline_ms: 10_000,
            ..Default::default()
        },
        ..EngineConfig::default()
    })?)
}

/// Run every measurement; `progress` hears each figure as it is measured.
pub fn run(setup: &BenchSetup, mut progress: impl FnMut(&Figure)) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut push = |f: Figure, figures: &mut Vec<Figure>| {
        progress(&f);
        figures.push(f);
    };
    let runs = |section: Section| setup.only.is_empty() || setup.only.contains(&section);
    let owned_events = download_events(setup.events);
    let events = encode_each(&owned_events);
    let engine_on = engine(true)?;
    let engine_off = engine(false)?;
    let load = |e: &Arc<AerEngine>, bytes: &[u8]| {
        crate::plugin::Loader::new(e.clone())
            .load(bytes)
            .map_err(|r| anyhow::anyhow!("{r}"))
    };
    let ed_on = load(&engine_on, &setup.excessive_downloads)?;
    let ed_off = load(&engine_off, &setup.excessive_downloads)?;
    let noop = load(&engine_on, &setup.noop)?;
    let memory = || -> Arc<dyn StateStore> { Arc::new(MemoryStore::default()) };

    if runs(Section::Detector) {
        // 1. Wasm / native throughput by batch size, interleaved.
        let mut native_256 = 0.0;
        for batch in [1usize, 16, 64, 256, 1024] {
            let n = if batch == 1 {
                events.len() / 4
            } else {
                events.len()
            };
            let slice = &events[..n];
            let (mut native, mut wasm) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..setup.rounds.max(1) {
                native = native.min(native_run(memory(), slice, batch));
                wasm = wasm.min(wasm_run(&engine_on, &ed_on, memory(), slice, batch));
            }
            if batch == 256 {
                native_256 = native;
            }
            let goal = (batch >= 64).then_some((">=", 0.80));
            push(
                Figure::ratio(
                    format!(
                        "wasm / native throughput, batch {batch} (native {:.2} us/event, wasm {:.2})",
                        native * 1e6,
                        wasm * 1e6
                    ),
                    native / wasm,
                    goal,
                ),
                &mut figures,
            );
        }
        // The same, with the native detector on the SDK's lighter in-memory test host
        // (no quotas, no write set, no store) instead of the host's services.
        let (mut sdk_native, mut wasm) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..setup.rounds.max(1) {
            sdk_native = sdk_native.min(sdk_native_run(&events, 256));
            wasm = wasm.min(wasm_run(&engine_on, &ed_on, memory(), &events, 256));
        }
        push(
            Figure::ratio(
                format!(
                    "wasm / native on the SDK test host, batch 256 (native {:.2} us/event, wasm {:.2})",
                    sdk_native * 1e6,
                    wasm * 1e6
                ),
                sdk_native / wasm,
                None,
            ),
            &mut figures,
        );

        // 2. A no-op Wasm detector's cost per event / the native detector's.
        let noop_cost = best(setup.rounds, || {
            wasm_run(&engine_on, &noop, memory(), &events, 256)
        });
        push(
            Figure::ratio(
                format!(
                    "no-op wasm / native full detector, per event, batch 256 ({:.3} us vs {:.3} us)",
                    noop_cost * 1e6,
                    native_256 * 1e6
                ),
                noop_cost / native_256,
                Some(("<=", 0.25)),
            ),
            &mut figures,
        );

        // Where a no-op call's time goes: encoding events (once each, at ingest; not in
        // the figures above), decoding a batch (natively here; the guest does the same).
        let (mut encode, mut decode) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..setup.rounds.max(1) {
            let started = Instant::now();
            let mut out = Vec::with_capacity(events.iter().map(Vec::len).sum());
            for e in &owned_events {
                aer_wire::encode_event(e, &mut out);
            }
            std::hint::black_box(out);
            encode = encode.min(started.elapsed().as_secs_f64() / events.len() as f64);
            let mut batches = Vec::new();
            batched(&events, 256, |b| batches.push(b.clone()));
            let started = Instant::now();
            for b in &batches {
                std::hint::black_box(aer_wire::decode_batch(b).map(|e| e.len()).unwrap_or(0));
            }
            decode = decode.min(started.elapsed().as_secs_f64() / events.len() as f64);
        }
        for (what, cost) in [
            ("event encoding, once per event at ingest", encode),
            ("native batch decoding", decode),
        ] {
            push(
                Figure::info(
                    format!("{what}, per event (us)"),
                    format!("{:.3}", cost * 1e6),
                ),
                &mut figures,
            );
        }

        // 3. Epoch interruption on / off.
        let (mut on, mut off) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..setup.rounds.max(1) {
            on = on.min(wasm_run(&engine_on, &ed_on, memory(), &events, 256));
            off = off.min(wasm_run(&engine_off, &ed_off, memory(), &events, 256));
        }
        push(
            Figure::ratio(
                "throughput with epoch interruption / without, batch 256",
                off / on,
                Some((">=", 0.92)),
            ),
            &mut figures,
        );

        // 4. sled-backed state / in-memory state, each round starting empty (state left
        //    by an earlier round would change what the detector computes). The sled
        //    time includes folding what the run left in the state journal.
        let (mut mem, mut sled) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..setup.rounds.max(1) {
            mem = mem.min(wasm_run(&engine_on, &ed_on, memory(), &events, 256));
            let dir = tempfile::tempdir()?;
            let sled_store = SledStore::open(dir.path())?;
            let run = wasm_run(
                &engine_on,
                &ed_on,
                Arc::new(sled_store.clone()),
                &events,
                256,
            );
            let folding = Instant::now();
            sled_store.fold()?;
            let fold = folding.elapsed().as_secs_f64() / events.len() as f64;
            sled = sled.min(run + fold);
        }
        push(
            Figure::ratio(
                "throughput with sled state / in-memory state, batch 256",
                mem / sled,
                Some((">=", 0.75)),
            ),
            &mut figures,
        );
    }

    // 7. Instances: instantiation time, idle memory.
    if runs(Section::Instances) {
        instances::measure(
            &setup.excessive_downloads,
            &owned_events,
            setup.rounds,
            &mut |f| push(f, &mut figures),
        )?;
    }

    // 5. Parsing alone, then the whole local pipeline: parse, a durable inbox, the
    //    detectors, decisions, dry-run responses.
    if runs(Section::Parse) {
        let (_, requests) = requests(setup);
        let (per_event, bytes_per_second) = parse_cost(setup, &requests);
        push(
            Figure::ratio(
                format!(
                    "parse, NDJSON into the stored encoding, one thread, per event (us; {:.0} MB/s)",
                    bytes_per_second / 1e6
                ),
                per_event * 1e6,
                Some(("<=", 1.0)),
            ),
            &mut figures,
        );
    }
    if runs(Section::Pipeline) {
        let p = best_throughput(setup, &engine_on)?;
        push(
            Figure {
                name: format!(
                    "pipeline: parse, sled inbox, {} detectors, decisions, dry-run response (events/s)",
                    setup.pipeline_detectors.len()
                ),
                value: format!("{:.0}", p.events_per_second),
                goal: ">= 400000".into(),
                pass: Some(p.events_per_second >= 400_000.0),
            },
            &mut figures,
        );
        for (stage, cost) in [
            ("parse", p.parse),
            ("sled inbox, storing", p.inbox),
            (
                "the pipeline thread: inbox read, detectors, decisions, dry-run response",
                p.pipeline,
            ),
            (
                "the rest: flushes, sled's threads",
                p.process - p.parse - p.inbox - p.pipeline,
            ),
            ("the whole process", p.process),
        ] {
            push(
                Figure::info(
                    format!("pipeline CPU time per event (us): {stage}"),
                    format!("{:.2}", cost * 1e6),
                ),
                &mut figures,
            );
        }
    }

    if runs(Section::Console) {
        console::measure_console(&mut |f| push(f, &mut figures))?;
    }

    // 6 and 7. The daemon over HTTP: latency at half load; 100 tenants against one.
    if !runs(Section::Latency) && !runs(Section::Tenants) && !runs(Section::Restart) {
        return Ok(figures);
    }
    let daemon_setup = daemon::DaemonSetup {
        detectors: &setup.pipeline_detectors,
        probe: &setup.probe,
        responder: &setup.responder,
    };
    // Enough for the maximum-load stream and the half-load one (a generated user
    // makes about 170 events a day; this machine's maximum is under 250,000 events/s,
    // so half of it under 125,000; the latency figure says if the stream ran out).
    let users = (setup.events / 300).clamp(30, 300);
    let needed = setup.events.min(60_000) + 125_000 * setup.latency_seconds as usize;
    let lines: Vec<String> = generate(&GenConfig {
        users,
        days: (needed / (users * 170) + 1).clamp(7, 60) as u32,
        ..GenConfig::default()
    })
    .events
    .iter()
    .map(to_json)
    .collect();
    if runs(Section::Latency) {
        daemon::measure_latency(
            &daemon_setup,
            &lines,
            setup.events.min(60_000),
            setup.latency_seconds,
            &mut |f| push(f, &mut figures),
        )?;
    }
    if runs(Section::Tenants) {
        daemon::measure_tenants(
            &daemon_setup,
            &lines[..setup.events.min(lines.len())],
            setup.rounds,
            &mut |f| push(f, &mut figures),
        )?;
    }
    if runs(Section::Restart) {
        daemon::measure_restart(
            &daemon_setup,
            &lines[..setup.events.min(lines.len())],
            setup.rounds,
            &mut |f| push(f, &mut figures),
        )?;
    }
    Ok(figures)
}

/// A generated organisation's week and its first `setup.events` events as Slack
/// entries in request bodies of 1,000 NDJSON lines.
fn requests(setup: &BenchSetup) -> (crate::synth::Dataset, Vec<String>) {
    let data = generate(&GenConfig {
        users: (setup.events / 1_000).clamp(30, 200),
        days: 7,
        ..GenConfig::default()
    });
    let requests = data
        .events
        .iter()
        .take(setup.events)
        .map(|e| to_json(e) + "\n")
        .collect::<Vec<_>>()
        .chunks(1_000)
        .map(|c| c.concat())
        .collect();
    (data, requests)
}

/// Seconds per event and bytes per second parsing `requests` on one thread (the best
/// of the rounds).
fn parse_cost(setup: &BenchSetup, requests: &[String]) -> (f64, f64) {
    let bytes: usize = requests.iter().map(String::len).sum();
    let mut best = f64::INFINITY;
    let mut events = 0;
    for _ in 0..setup.rounds.max(1) {
        let started = Instant::now();
        events = 0;
        for body in requests {
            events += std::hint::black_box(crate::ingest::parse_encoded(body.as_bytes()))
                .events
                .len();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    (best / events.max(1) as f64, bytes as f64 / best)
}

/// The pipeline's best round: throughput and each stage's CPU time per event (the
/// threads' own CPU time: waiting for a core or for a flush does not count).
struct PipelineRun {
    events_per_second: f64,
    /// CPU seconds per event parsing request bodies.
    parse: f64,
    /// CPU seconds per event storing them in the inbox (the shared flush is not in it).
    inbox: f64,
    /// CPU seconds per event of the thread that reads the inbox and runs the detectors,
    /// decisions and responses (one thread: its cost bounds the throughput).
    pipeline: f64,
    /// CPU seconds per event of the whole process over the round (every thread: the
    /// stages, the flushes, sled's own threads).
    process: f64,
}

/// Events per second through the whole local pipeline (the best of the rounds), laid
/// out as the daemon runs it: two ingest threads (two clients' requests of 1,000 NDJSON
/// lines each: parse, store in the inbox, wait until durable) while a pipeline thread
/// reads the inbox in batches and runs the detectors, decisions and a dry-run responder.
fn best_throughput(setup: &BenchSetup, engine: &Arc<AerEngine>) -> anyhow::Result<PipelineRun> {
    let (data, requests) = requests(setup);
    let total = data.events.len().min(setup.events) as u64;
    let mut best = PipelineRun {
        events_per_second: 0.0,
        parse: 0.0,
        inbox: 0.0,
        pipeline: 0.0,
        process: 0.0,
    };
    let loader = crate::plugin::Loader::new(engine.clone());
    let load = |bytes: &[u8]| loader.load(bytes).map_err(|r| anyhow::anyhow!("{r}"));
    let plugins = setup
        .pipeline_detectors
        .iter()
        .map(|bytes| load(bytes))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let responder = load(&setup.responder)?;
    for _ in 0..setup.rounds.max(1) {
        let dir = tempfile::tempdir()?;
        let inbox = crate::ledger::Ledger::open(dir.path())?
            .inbox(crate::config::IngestConfig::default().dedupe_window_events)?;
        let state: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let mut detectors = plugins
            .iter()
            .map(|p| Ok(DetectorInstance::new(engine, p, spec(state.clone()))?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let policy = Policy::from_json(&data.policy_json()).unwrap_or_default();
        let mut responders = crate::replay::Responders::new(policy.responses.clone());
        responders.push(ResponderInstance::new(
            engine,
            &responder,
            InstanceSpec {
                actions: responders.sink(&responder.info().name),
                ..spec(state.clone())
            },
        )?);
        let mut decisions = DecisionEngine::new(policy).map_err(|e| anyhow::anyhow!("{e:?}"))?;

        let started = Instant::now();
        let cpu = cpu_time::ProcessTime::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let ingest = |_| -> anyhow::Result<(f64, f64)> {
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            let (mut parse, mut store) = (0.0, 0.0);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = requests.get(i) else {
                    return Ok((parse, store));
                };
                let t = ThreadTime::now();
                let parsed = crate::ingest::parse_encoded(body.as_bytes());
                parse += t.elapsed().as_secs_f64();
                let t = ThreadTime::now();
                inbox.store("bench", &parsed.events, 0, u64::MAX)?;
                store += t.elapsed().as_secs_f64();
                runtime.block_on(inbox.durable())?;
            }
        };
        let (ingested, pipeline_cpu) = std::thread::scope(|s| -> anyhow::Result<_> {
            let clients = [s.spawn(|| ingest(0)), s.spawn(|| ingest(1))];
            let mut done = 0u64;
            let pipeline_cpu = ThreadTime::now();
            while done < total {
                let read = inbox.read("bench", done, 1_024)?;
                let Some(last) = read.last_seq() else {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                };
                // The inbox's encoded events as they are, as the daemon's workers use
                // them.
                let events: Vec<&[u8]> = read.iter().map(|(_, bytes)| bytes).collect();
                let report = crate::replay::replay_encoded(
                    &events,
                    &mut detectors,
                    &mut decisions,
                    &mut responders,
                    256,
                )?;
                std::hint::black_box(report.findings.len());
                done = last + 1;
            }
            let pipeline_cpu = pipeline_cpu.elapsed().as_secs_f64();
            let mut ingested = (0.0, 0.0);
            for c in clients {
                let (p, s) = c
                    .join()
                    .map_err(|_| anyhow::anyhow!("an ingest thread panicked"))??;
                ingested.0 += p;
                ingested.1 += s;
            }
            Ok((ingested, pipeline_cpu))
        })?;
        let seconds = started.elapsed().as_secs_f64();
        let process = cpu.elapsed().as_secs_f64();
        let eps = total as f64 / seconds;
        if eps > best.events_per_second {
            best = PipelineRun {
                events_per_second: eps,
                parse: ingested.0 / total as f64,
                inbox: ingested.1 / total as f64,
                pipeline: pipeline_cpu / total as f64,
                process: process / total as f64,
            };
        }
    }
    Ok(best)
}

/// A short description of this machine.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {cpu}")
}

/// How long the measurements took, for the report.
pub fn elapsed_text(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
