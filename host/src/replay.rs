//! The local driver of the whole pipeline over a history held in memory, behind
//! `aer replay`: backtest detectors and a policy before enabling them. It runs the
//! daemon's stages by the daemon's rules ([`crate::pipeline`]): each detector over the
//! history in gathered batches (faults retried, isolated and set aside as the daemon
//! does, [`crate::pipeline::faults`]); then every finding in decision order, the engine
//! observing the events up to its position; then the responders, in name order, for
//! each decision that responds, their effects admitted as the daemon admits them and
//! recorded, never performed ([`RecordingActions`]). With the history stored before the
//! daemon's detectors run, the daemon makes the same findings, decisions and effects
//! (`tests/all/parity.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::Event;
use crate::host_api::ActionSink;
use crate::pipeline::decide::{DecisionEngine, DecisionOrder, DecisionRecord};
use crate::pipeline::detect::{Positioned, detect};
use crate::pipeline::faults::{AfterFault, FaultCount};
use crate::pipeline::gather::Gather;
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
/// `responders`; `progress` is told each detector's events done so far. Each event is
/// encoded once (see [`replay_encoded`]).
pub fn replay(
    events: &[Event],
    detectors: &mut [DetectorInstance],
    engine: &mut DecisionEngine,
    responders: &mut Responders,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<ReplayReport, ReplayError> {
    let encoded = crate::pipeline::gather::Encoded::new(events);
    let refs = encoded.events();
    replay_encoded(&refs, detectors, engine, responders, batch, progress)
}

/// [`replay`] over events already encoded with [`aer_wire::encode_event`] (as the
/// daemon's inbox keeps them), the event at index `i` at position `i`.
pub fn replay_encoded(
    events: &[&[u8]],
    detectors: &mut [DetectorInstance],
    engine: &mut DecisionEngine,
    responders: &mut Responders,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<ReplayReport, ReplayError> {
    let rule = Gather::new(batch);
    let mut report = ReplayReport {
        events: events.len(),
        ..Default::default()
    };
    // 1-2. Each detector over the whole history, in gathered batches.
    let mut queue: Vec<(DecisionOrder, FindingRecord)> = Vec::new();
    for d in detectors.iter_mut() {
        let (summary, found) = run_detector(d, events, rule, &mut progress)?;
        report.detectors.push(summary);
        queue.extend(found);
    }
    // 3. Decisions in decision order (every detector kept pace: all are decidable).
    queue.sort_by(|a, b| a.0.cmp(&b.0));
    let mut observed = 0usize;
    responders
        .list
        .sort_by(|a, b| a.id().plugin.cmp(&b.id().plugin));
    let mut counts = vec![FaultCount::default(); responders.list.len()];
    let mut quarantined: Vec<Option<String>> = vec![None; responders.list.len()];
    for (order, finding) in queue {
        let through = (order.position as usize).min(events.len().saturating_sub(1));
        if observed <= through {
            let mut w = aer_wire::BatchWriter::new();
            for e in &events[observed..=through] {
                w.push_encoded(e);
            }
            for e in aer_wire::decode_batch(&w.finish())? {
                engine.observe_ref(&e);
            }
            observed = through + 1;
        }
        let decision = engine.decide(&finding);
        report.findings.push(finding);
        // 4. Responders for decisions that respond.
        if decision.outcome.responds() {
            respond(responders, &decision, &mut counts, &mut quarantined)?;
        }
        report.decisions.push(decision);
    }
    report.actions = responders.log.records();
    report.quarantined_responders = responders
        .list
        .iter()
        .zip(quarantined)
        .filter_map(|(r, q)| Some((r.id().plugin.clone(), q?)))
        .collect();
    Ok(report)
}

/// Run one detector over the history; its summary and its findings in decision order.
fn run_detector(
    d: &mut DetectorInstance,
    events: &[&[u8]],
    rule: Gather,
    progress: &mut impl FnMut(usize),
) -> Result<(DetectorSummary, Vec<(DecisionOrder, FindingRecord)>), ReplayError> {
    let mut summary = DetectorSummary {
        plugin: d.id().plugin.clone(),
        version: d.id().version.clone(),
        delivered: 0,
        findings: 0,
        dead_letters: Vec::new(),
        quarantined: None,
        plugin_time: Duration::ZERO,
    };
    let mut found = Vec::new();
    let mut count = FaultCount::default();
    let mut cursor = 0u64;
    while (cursor as usize) < events.len() {
        let g = count
            .gather(rule)
            .from_slice(events, cursor as usize, |a| d.wants(a));
        let next = g.next_cursor(cursor);
        progress(next as usize);
        if g.is_empty() {
            cursor = next;
            continue;
        }
        let out = match detect(d, &g) {
            Ok(out) => out,
            Err(fault) => match count.batch_fault(g.delivered.len()) {
                AfterFault::Retry | AfterFault::Isolate => continue,
                AfterFault::DeadLetter { quarantine } => {
                    let event = g.delivered.first().map(|&s| events[s as usize]);
                    let id = event.and_then(aer_wire::encoded_id).unwrap_or("");
                    summary.dead_letters.push(id.to_owned());
                    cursor = next;
                    if quarantine {
                        summary.quarantined = Some(fault.to_string());
                        break;
                    }
                    continue;
                }
                AfterFault::Quarantine => {
                    summary.quarantined = Some(fault.to_string());
                    break;
                }
            },
        };
        count.success(rule);
        summary.delivered += g.delivered.len();
        summary.plugin_time += out.plugin_time;
        d.commit(&out.writes)?;
        summary.findings += out.findings.len();
        let first = found.len() as u64;
        found.extend(out.findings.into_iter().enumerate().map(
            |(i, Positioned { finding, position })| {
                let order = DecisionOrder {
                    position,
                    plugin: finding.plugin.clone(),
                    index: first + i as u64,
                };
                (order, finding)
            },
        ));
        cursor = next;
    }
    Ok((summary, found))
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
