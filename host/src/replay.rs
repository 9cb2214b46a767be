//! The local driver of the whole pipeline over a history, behind `aer replay`:
//! backtest detectors and a policy before enabling them. It runs the daemon's stages by
//! the daemon's rules ([`crate::pipeline`]): each detector over the history in gathered
//! batches (faults retried, isolated and set aside as the daemon does,
//! [`crate::pipeline::faults`]); then every finding in decision order, the engine
//! observing the events up to its position; then the responders, in name order, for
//! each decision that responds, their effects admitted as the daemon admits them and
//! recorded, never performed ([`RecordingActions`]). With the history stored before the
//! daemon's detectors run, the daemon makes the same findings, decisions and effects
//! (`tests/all/parity.rs`). The history streams through ([`Replay`]): memory holds the
//! events not yet passed by every stage, not the history (`tests/all/streaming.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::Event;
use crate::host_api::ActionSink;
use crate::ingest::Encoded;
use crate::pipeline::decide::{DecisionEngine, DecisionOrder, DecisionRecord};
use crate::pipeline::detect::{Positioned, detect};
use crate::pipeline::faults::{AfterFault, FaultCount};
use crate::pipeline::gather::{Gather, Window};
use crate::pipeline::policy::ResponseSettings;
use crate::pipeline::respond::RecordedLog;
pub use crate::pipeline::respond::{ActionRecord, RecordingActions};
use crate::plugin::convert::wit_decision;
use crate::plugin::{DetectorInstance, Fault, ResponderInstance};
use crate::records::FindingRecord;

/// What one detector did in a replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectorSummary {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// Events it subscribed to and received.
    pub delivered: usize,
    /// Findings it reported.
    pub findings: usize,
    /// Ids of the events it faulted on every time (set aside, as the daemon's dead
    /// letters).
    pub dead_letters: Vec<String>,
    /// Why it was quarantined, if it was (it saw no event after).
    pub quarantined: Option<String>,
    /// Time inside its calls.
    #[serde(skip)]
    pub plugin_time: Duration,
}

/// Everything a replay produced.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Events replayed.
    pub events: usize,
    /// Per detector.
    pub detectors: Vec<DetectorSummary>,
    /// All findings, in decision order.
    pub findings: Vec<FindingRecord>,
    /// Every decision, whichever way it went.
    pub decisions: Vec<DecisionRecord>,
    /// Effects responders asked for, as the host admitted and recorded them.
    pub actions: Vec<ActionRecord>,
    /// Responders quarantined (they faulted call after call), with the last fault.
    pub quarantined_responders: Vec<(String, String)>,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Plugin state could not be committed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// An encoded event did not decode.
    #[error("encoded events: {0}")]
    Decode(#[from] aer_wire::DecodeError),
}

/// A replay's responders and the log their effects are recorded in.
#[derive(Default)]
pub struct Responders {
    list: Vec<ResponderInstance>,
    log: Arc<RecordedLog>,
    settings: ResponseSettings,
}

impl Responders {
    /// No responders yet; effects will be admitted under `settings` (the policy's).
    pub fn new(settings: ResponseSettings) -> Self {
        Responders {
            settings,
            ..Default::default()
        }
    }

    /// The action sink to build responder `name`'s instance with.
    pub fn sink(&self, name: &str) -> Arc<dyn ActionSink> {
        Arc::new(RecordingActions::new(
            self.log.clone(),
            self.settings.clone(),
            name,
        ))
    }

    /// Add a responder built with [`Responders::sink`].
    pub fn push(&mut self, r: ResponderInstance) {
        self.list.push(r);
    }
}

/// Replay `events` (in event-time order) through `detectors`, `engine` and
/// `responders`. Each event is encoded once (see [`replay_encoded`]).
pub fn replay(
    events: &[Event],
    detectors: &mut [DetectorInstance],
    engine: &mut DecisionEngine,
    responders: &mut Responders,
    batch: usize,
) -> Result<ReplayReport, ReplayError> {
    let mut r = Replay::new(detectors, engine, responders, batch);
    r.window = Window::new(events);
    r.finish()
}

/// [`replay`] over events already encoded with [`aer_wire::encode_event`] (as the
/// daemon's inbox keeps them), the event at index `i` at position `i`.
pub fn replay_encoded(
    events: &[&[u8]],
    detectors: &mut [DetectorInstance],
    engine: &mut DecisionEngine,
    responders: &mut Responders,
    batch: usize,
) -> Result<ReplayReport, ReplayError> {
    let mut r = Replay::new(detectors, engine, responders, batch);
    for e in events {
        r.push(e);
    }
    r.finish()
}

/// A replay under way, for a history read a piece at a time: [`Replay::push`] events
/// in event-time order, [`Replay::run`] after each piece, [`Replay::finish`] at the
/// end. It holds only the events some detector or the decision stage has not passed
/// (a detector's call waits until it is whole, so calls and findings are exactly those
/// of one pass over the whole history), never the history.
pub struct Replay<'r> {
    detectors: &'r mut [DetectorInstance],
    engine: &'r mut DecisionEngine,
    responders: &'r mut Responders,
    rule: Gather,
    window: Window,
    runs: Vec<DetectorRun>,
    /// Findings not yet decided, and the events the engine has observed.
    pending: Vec<(DecisionOrder, FindingRecord)>,
    observed: u64,
    responder_faults: Vec<FaultCount>,
    responders_quarantined: Vec<Option<String>>,
    report: ReplayReport,
}

/// One detector's progress through a replay.
struct DetectorRun {
    summary: DetectorSummary,
    count: FaultCount,
    cursor: u64,
    /// Findings it has reported (the next one's place in decision order).
    reported: u64,
    /// Quarantined: it sees nothing more.
    stopped: bool,
}

impl<'r> Replay<'r> {
    /// A replay through `detectors`, `engine` and `responders`, `batch` events per
    /// detector call.
    pub fn new(
        detectors: &'r mut [DetectorInstance],
        engine: &'r mut DecisionEngine,
        responders: &'r mut Responders,
        batch: usize,
    ) -> Self {
        responders
            .list
            .sort_by(|a, b| a.id().plugin.cmp(&b.id().plugin));
        let runs = detectors
            .iter()
            .map(|d| DetectorRun {
                summary: DetectorSummary {
                    plugin: d.id().plugin.clone(),
                    version: d.id().version.clone(),
                    delivered: 0,
                    findings: 0,
                    dead_letters: Vec::new(),
                    quarantined: None,
                    plugin_time: Duration::ZERO,
                },
                count: FaultCount::default(),
                cursor: 0,
                reported: 0,
                stopped: false,
            })
            .collect();
        let n = responders.list.len();
        Replay {
            detectors,
            engine,
            responders,
            rule: Gather::new(batch),
            window: Window::default(),
            runs,
            pending: Vec::new(),
            observed: 0,
            responder_faults: vec![FaultCount::default(); n],
            responders_quarantined: vec![None; n],
            report: ReplayReport::default(),
        }
    }

    /// Add the next event of the history (as [`aer_wire::encode_event`] wrote it).
    pub fn push(&mut self, encoded: &[u8]) {
        self.window.push(encoded);
    }

    /// Events held: those some detector or the decision stage has not passed.
    pub fn held(&self) -> u64 {
        self.window.len()
    }

    /// [`Replay::push`] `events`, then [`Replay::run`].
    pub fn feed(&mut self, events: &[Encoded]) -> Result<(), ReplayError> {
        for e in events {
            self.push(&e.bytes);
        }
        self.run()
    }

    /// Run every whole call the events pushed so far allow, decide every finding no
    /// detector can come before any more, and let go of the events all have passed.
    pub fn run(&mut self) -> Result<(), ReplayError> {
        self.step(false)
    }

    /// Run the rest (the last calls may be short), decide every finding, and report.
    pub fn finish(mut self) -> Result<ReplayReport, ReplayError> {
        self.step(true)?;
        let mut report = self.report;
        report.events = self.window.end() as usize;
        report.detectors = self.runs.into_iter().map(|r| r.summary).collect();
        report.actions = self.responders.log.records();
        report.quarantined_responders = self
            .responders
            .list
            .iter()
            .zip(self.responders_quarantined)
            .filter_map(|(r, q)| Some((r.id().plugin.clone(), q?)))
            .collect();
        Ok(report)
    }

    fn step(&mut self, last: bool) -> Result<(), ReplayError> {
        let events = self.window.events();
        let base = self.window.base();
        for (d, run) in self.detectors.iter_mut().zip(&mut self.runs) {
            run_detector(d, run, &events, base, self.rule, last, &mut self.pending)?;
        }
        // 3. Decisions in decision order, up to the first position a detector still
        //    running may report at.
        let passed = self
            .runs
            .iter()
            .filter(|r| !r.stopped)
            .map(|r| r.cursor)
            .min()
            .unwrap_or(u64::MAX);
        let decidable = if last { u64::MAX } else { passed };
        self.pending.sort_by(|a, b| a.0.cmp(&b.0));
        let ready = self
            .pending
            .partition_point(|(o, _)| o.position < decidable);
        for (order, finding) in self.pending.drain(..ready) {
            let through = order.position.min(self.window.end().saturating_sub(1));
            observe(self.engine, &mut self.observed, &events, base, through + 1)?;
            let decision = self.engine.decide(&finding);
            self.report.findings.push(finding);
            // 4. Responders for decisions that respond.
            if decision.outcome.responds() {
                respond(
                    self.responders,
                    &decision,
                    &mut self.responder_faults,
                    &mut self.responders_quarantined,
                )?;
            }
            self.report.decisions.push(decision);
        }
        if last {
            return Ok(());
        }
        // Every finding still to come is dated at or after `passed`, so it would observe
        // the events before it first: observe them now and let them go.
        let passed = passed.min(self.window.end());
        observe(self.engine, &mut self.observed, &events, base, passed)?;
        drop(events);
        self.window.trim(passed);
        Ok(())
    }
}

/// Let `engine` observe the events from `observed` (the first it has not) up to
/// `until`, `events` starting at seq `base`.
fn observe(
    engine: &mut DecisionEngine,
    observed: &mut u64,
    events: &[&[u8]],
    base: u64,
    until: u64,
) -> Result<(), ReplayError> {
    if *observed >= until {
        return Ok(());
    }
    for e in &events[(*observed - base) as usize..(until - base) as usize] {
        engine.observe_ref(&aer_wire::decode_event(e)?);
    }
    *observed = until;
    Ok(())
}

/// Run one detector over the events held, from its cursor, while its calls are whole
/// (all of them when `last`); its findings go to `found` in decision order.
fn run_detector(
    d: &mut DetectorInstance,
    run: &mut DetectorRun,
    events: &[&[u8]],
    base: u64,
    rule: Gather,
    last: bool,
    found: &mut Vec<(DecisionOrder, FindingRecord)>,
) -> Result<(), ReplayError> {
    while !run.stopped {
        let Some(g) = run
            .count
            .gather(rule)
            .next_call(events, base, run.cursor, last, |a| d.wants(a))
        else {
            break;
        };
        let next = g.next_cursor(run.cursor);
        if g.is_empty() {
            run.cursor = next;
            continue;
        }
        let out = match detect(d, &g) {
            Ok(out) => out,
            Err(fault) => match run.count.batch_fault(g.delivered.len()) {
                AfterFault::Retry | AfterFault::Isolate => continue,
                AfterFault::DeadLetter { quarantine } => {
                    let event = g.delivered.first().map(|&s| events[(s - base) as usize]);
                    let id = event.and_then(aer_wire::encoded_id).unwrap_or("");
                    run.summary.dead_letters.push(id.to_owned());
                    run.cursor = next;
                    if quarantine {
                        run.summary.quarantined = Some(fault.to_string());
                        run.stopped = true;
                    }
                    continue;
                }
                AfterFault::Quarantine => {
                    run.summary.quarantined = Some(fault.to_string());
                    run.stopped = true;
                    break;
                }
            },
        };
        run.count.success(rule);
        run.summary.delivered += g.delivered.len();
        run.summary.plugin_time += out.plugin_time;
        d.commit(&out.writes)?;
        run.summary.findings += out.findings.len();
        for Positioned { finding, position } in out.findings {
            let order = DecisionOrder {
                position,
                plugin: finding.plugin.clone(),
                index: run.reported,
            };
            run.reported += 1;
            found.push((order, finding));
        }
        run.cursor = next;
    }
    Ok(())
}

/// Run the responders not quarantined for `decision`, as the daemon does: in name
/// order; one that faults is run again (with the others, whose writes are dropped, and
/// whose effects get their first answers) until it succeeds or is quarantined.
fn respond(
    responders: &mut Responders,
    decision: &DecisionRecord,
    counts: &mut [FaultCount],
    quarantined: &mut [Option<String>],
) -> Result<(), ReplayError> {
    let wit = wit_decision(decision);
    responders.log.begin(decision);
    loop {
        let mut writes = Vec::new();
        let mut faulted: Option<(usize, Fault)> = None;
        for (i, r) in responders.list.iter_mut().enumerate() {
            if quarantined[i].is_some() {
                continue;
            }
            match r.respond(&wit) {
                Ok(out) => writes.push((i, out.writes)),
                Err(fault) => {
                    faulted = Some((i, fault));
                    break;
                }
            }
        }
        match faulted {
            None => {
                for (i, w) in writes {
                    responders.list[i].commit(&w)?;
                    counts[i].success(Gather::default());
                }
                return Ok(());
            }
            Some((i, fault)) => {
                if counts[i].fault() == AfterFault::Quarantine {
                    quarantined[i] = Some(fault.to_string());
                }
            }
        }
    }
}
