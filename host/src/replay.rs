//! The whole local pipeline over a history of events: detectors, the decision engine,
//! and responders whose effects are recorded, never performed. Behind `aer replay`:
//! backtest detectors and a policy before enabling them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aer_wire::BatchWriter;

use crate::Event;
use crate::bindings::{Attribute, Decision, Finding, Severity};
use crate::finding::FindingRecord;
use crate::host_api::DryRunActions;
use crate::pipeline::decision::{DecisionEngine, DecisionRecord, Mode};
use crate::plugin::{DetectorInstance, Fault, ResponderInstance};

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
    /// Time inside its calls.
    #[serde(skip)]
    pub plugin_time: Duration,
}

/// An effect a responder asked for, recorded instead of performed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActionRecord {
    /// Decision it belongs to.
    pub decision_id: String,
    /// Event time of the decision.
    pub time_ms: i64,
    /// Responder plugin.
    pub responder: String,
    /// `terminate-sessions` or `notify`.
    pub action: String,
    /// Who it was about.
    pub subject: String,
    /// Whether the (recording) host accepted it.
    pub ok: bool,
    /// Host answer or error code.
    pub detail: String,
}

/// Everything a replay produced.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Events replayed.
    pub events: usize,
    /// Per detector.
    pub detectors: Vec<DetectorSummary>,
    /// All findings, in event-time order.
    pub findings: Vec<FindingRecord>,
    /// Every decision, whichever way it went.
    pub decisions: Vec<DecisionRecord>,
    /// Effects responders asked for.
    pub actions: Vec<ActionRecord>,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A plugin failed.
    #[error(transparent)]
    Fault(#[from] Fault),
    /// Plugin state could not be committed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// An encoded event did not decode.
    #[error("encoded events: {0}")]
    Decode(#[from] aer_wire::DecodeError),
}

fn severity(name: &str) -> Severity {
    match name {
        "info" => Severity::Info,
        "low" => Severity::Low,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => Severity::Medium,
    }
}

/// A recorded finding as the WIT type responders receive.
pub fn to_wit_finding(f: &FindingRecord) -> Finding {
    Finding {
        subject: f.subject.clone(),
        rule: f.rule.clone(),
        score: f.score,
        severity: severity(&f.severity),
        summary: f.summary.clone(),
        evidence: f.evidence.clone(),
        attributes: f
            .attributes
            .iter()
            .map(|(k, v)| Attribute {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        time_ms: f.time_ms,
    }
}

/// Replay `events` (in event-time order) through `detectors`, `engine` and `responders`.
/// Responders' actions go to `actions`, which records them; nothing is performed.
/// Each event is encoded once (see [`replay_encoded`]).
pub fn replay(
    events: &[Event],
    detectors: &mut [DetectorInstance],
    engine: &mut DecisionEngine,
    responders: &mut [ResponderInstance],
    batch_size: usize,
    progress: impl FnMut(usize),
) -> Result<ReplayReport, ReplayError> {
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            aer_wire::encode_event(e, &mut out);
            out
        })
        .collect();
    let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    replay_encoded(&refs, detectors, engine, responders, batch_size, progress)
}

/// [`replay`] over events already encoded with [`aer_wire::encode_event`] (as the
/// daemon's inbox keeps them): batches are built from the bytes as they are, and the
/// decision engine observes the events in place, never as owned copies.
pub fn replay_encoded(
    events: &[&[u8]],
    detectors: &mut [DetectorInstance],
    engine: &mut DecisionEngine,
    responders: &mut [ResponderInstance],
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport {
        events: events.len(),
        ..Default::default()
    };
    // 1. Detectors, batch by batch.
    for d in detectors.iter_mut() {
        let mut summary = DetectorSummary {
            plugin: d.id().plugin.clone(),
            version: d.id().version.clone(),
            delivered: 0,
            findings: 0,
            plugin_time: Duration::ZERO,
        };
        let mut done = 0;
        for chunk in events.chunks(batch_size.max(1)) {
            let mut w = BatchWriter::new();
            for e in chunk
                .iter()
                .filter(|e| aer_wire::encoded_action(e).is_some_and(|a| d.wants(a)))
            {
                w.push_encoded(e);
            }
            done += chunk.len();
            progress(done);
            if w.is_empty() {
                continue;
            }
            summary.delivered += w.len();
            let batch = w.finish();
            let started = Instant::now();
            let out = d.on_events(&batch)?;
            summary.plugin_time += started.elapsed();
            d.commit(&out.writes)?;
            summary.findings += out.value.len();
            report.findings.extend(
                out.value
                    .into_iter()
                    .map(|f| FindingRecord::new(f, &summary.plugin, &summary.version)),
            );
        }
        report.detectors.push(summary);
    }
    report.findings.sort_by_key(|f| f.time_ms);

    // 2. Decisions in event time, the engine observing the events as they pass (resets,
    //    external accounts); at equal times events come first.
    let mut all = BatchWriter::new();
    for e in events {
        all.push_encoded(e);
    }
    let all = all.finish();
    let decoded = aer_wire::decode_batch(&all)?;
    let mut next_event = decoded.iter().peekable();
    for f in &report.findings {
        while let Some(e) = next_event.next_if(|e| e.time_ms <= f.time_ms) {
            engine.observe_ref(e);
        }
        let decision = engine.decide(f);
        // 3. Responders for decisions that respond.
        if decision.outcome.responds() {
            let wit = Decision {
                id: decision.id.clone(),
                subject: decision.subject.clone(),
                enforce: engine.policy().mode == Mode::Enforce,
                reason: decision.reason.clone(),
                findings: vec![to_wit_finding(f)],
                time_ms: decision.time_ms,
            };
            for r in responders.iter_mut() {
                let out = r.respond(&wit)?;
                r.commit(&out.writes)?;
                report
                    .actions
                    .extend(out.value.into_iter().map(|o| ActionRecord {
                        decision_id: decision.id.clone(),
                        time_ms: decision.time_ms,
                        responder: r.id().plugin.clone(),
                        action: o.action,
                        subject: o.subject,
                        ok: o.ok,
                        detail: o.detail,
                    }));
            }
        }
        report.decisions.push(decision);
    }
    Ok(report)
}

/// The recording action sink a replay's responders should use.
pub fn recording_actions() -> Arc<DryRunActions> {
    Arc::new(DryRunActions::default())
}
