//! Detect: one detector call on a gathered batch. Its findings come back as records,
//! each at its position (the seq of the event the host dated it from, see
//! [`crate::plugin::output::finding_times`]), with the call's state writes, which the
//! driver commits together with the findings and the detector's cursor.

use std::time::{Duration, Instant};

use super::gather::Gathered;
use crate::host_api::LogRecord;
use crate::plugin::{DetectorInstance, Fault};
use crate::records::FindingRecord;
use crate::store::WriteSet;

/// A finding at its position in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Positioned {
    /// The finding.
    pub finding: FindingRecord,
    /// Seq of the event it is dated from: where it stands in decision order.
    pub position: u64,
}

/// What one detector call produced.
#[derive(Debug, Default)]
pub struct Detected {
    /// Findings, in the order the detector reported them.
    pub findings: Vec<Positioned>,
    /// State writes to commit with them.
    pub writes: WriteSet,
    /// Log messages the call wrote.
    pub logs: Vec<LogRecord>,
    /// Time inside the call.
    pub plugin_time: Duration,
}

/// Call `detector` on `gathered` (not empty).
pub fn detect(detector: &mut DetectorInstance, gathered: &Gathered) -> Result<Detected, Fault> {
    let started = Instant::now();
    let out = detector.detect(&gathered.batch)?;
    let plugin_time = started.elapsed();
    let findings = out
        .value
        .into_iter()
        .map(|d| Positioned {
            finding: d.finding,
            // The host dated it from an event of this batch.
            position: gathered.delivered.get(d.at).copied().unwrap_or_default(),
        })
        .collect();
    Ok(Detected {
        findings,
        writes: out.writes,
        logs: out.logs,
        plugin_time,
    })
}
