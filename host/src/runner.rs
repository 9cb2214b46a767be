//! Runs a detector over a list of events in batches, committing its state after each
//! batch: the local loop behind `aer test` (and the tests).

use std::time::{Duration, Instant};

use aer_wire::BatchWriter;

use crate::Event;
use crate::finding::FindingRecord;
use crate::host_api::LogRecord;
use crate::plugin::{DetectorInstance, Fault};

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Findings, in the order the detector reported them.
    pub findings: Vec<FindingRecord>,
    /// Events offered.
    pub events: usize,
    /// Events the detector subscribed to and received.
    pub delivered: usize,
    /// Plugin calls made.
    pub batches: usize,
    /// Time spent inside plugin calls (encoding and commit excluded).
    pub plugin_time: Duration,
    /// Log messages the plugin wrote.
    pub logs: Vec<LogRecord>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plugin failed a call.
    #[error(transparent)]
    Fault(#[from] Fault),
    /// Its state could not be committed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Feed `events` (already in event-time order) to `detector`, `batch_size` at a time.
pub fn run_detector(
    detector: &mut DetectorInstance,
    events: &[Event],
    batch_size: usize,
) -> Result<RunReport, RunError> {
    let mut report = RunReport {
        events: events.len(),
        ..Default::default()
    };
    let name = detector.id().plugin.clone();
    let version = detector.id().version.clone();
    let wanted: Vec<&Event> = events
        .iter()
        .filter(|e| detector.wants(&e.action))
        .collect();
    report.delivered = wanted.len();
    for chunk in wanted.chunks(batch_size.max(1)) {
        let mut w = BatchWriter::new();
        for e in chunk {
            w.push(e);
        }
        let batch = w.finish();
        let started = Instant::now();
        let out = detector.on_events(&batch)?;
        report.plugin_time += started.elapsed();
        report.batches += 1;
        detector.commit(&out.writes)?;
        report.logs.extend(out.logs);
        report.findings.extend(
            out.value
                .into_iter()
                .map(|f| FindingRecord::new(f, &name, &version)),
        );
    }
    Ok(report)
}
