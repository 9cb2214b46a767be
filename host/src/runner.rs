//! The local driver of one detector over a list of events, behind `aer test` (and the
//! tests): the pipeline's gather and detect stages ([`crate::pipeline`]) by the
//! daemon's batching rule, committing the detector's state after each call. Unlike the
//! daemon and `aer replay`, it stops at the first fault: a plugin author wants to see
//! it.

use std::time::Duration;

use crate::Event;
use crate::host_api::LogRecord;
use crate::pipeline::detect::detect;
use crate::pipeline::gather::Gather;
use crate::plugin::{DetectorInstance, Fault};
use crate::records::FindingRecord;

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

/// Feed `events` (already in event-time order) to `detector`, gathering up to
/// `batch_size` of its actions per call.
pub fn run_detector(
    detector: &mut DetectorInstance,
    events: &[Event],
    batch_size: usize,
) -> Result<RunReport, RunError> {
    let mut report = RunReport {
        events: events.len(),
        ..Default::default()
    };
    let encoded = crate::pipeline::gather::Encoded::new(events);
    let refs = encoded.events();
    let rule = Gather::new(batch_size);
    let mut cursor = 0u64;
    while (cursor as usize) < refs.len() {
        let g = rule.from_slice(&refs, cursor as usize, |a| detector.wants(a));
        cursor = g.next_cursor(cursor);
        if g.is_empty() {
            continue;
        }
        let out = detect(detector, &g)?;
        report.delivered += g.delivered.len();
        report.plugin_time += out.plugin_time;
        report.batches += 1;
        detector.commit(&out.writes)?;
        report.logs.extend(out.logs);
        report
            .findings
            .extend(out.findings.into_iter().map(|p| p.finding));
    }
    Ok(report)
}
