//! The local driver of one detector over a stream of events ([`Run`]), behind
//! `aer test` (and the tests): the pipeline's gather and detect stages
//! ([`crate::pipeline`]) by the daemon's batching rule, committing the detector's state
//! after each call. Unlike the daemon and `aer replay`, it stops at the first fault: a
//! plugin author wants to see it.

use std::time::Duration;

use crate::Event;
use crate::host_api::LogRecord;
use crate::ingest::Encoded;
use crate::pipeline::detect::detect;
use crate::pipeline::gather::{Gather, Window};
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
    let mut run = Run::new(detector, batch_size);
    run.window = Window::new(events);
    run.finish()
}

/// A run under way, for a history read a piece at a time: [`Run::push`] events in
/// event-time order, [`Run::run`] after each piece, [`Run::finish`] at the end. It
/// holds only the events the detector's next call may take; a call waits until it is
/// whole, so the calls are exactly those of one pass over the whole history.
pub struct Run<'d> {
    detector: &'d mut DetectorInstance,
    rule: Gather,
    window: Window,
    cursor: u64,
    report: RunReport,
}

impl<'d> Run<'d> {
    /// A run of `detector`, up to `batch_size` events per call.
    pub fn new(detector: &'d mut DetectorInstance, batch_size: usize) -> Self {
        Run {
            detector,
            rule: Gather::new(batch_size),
            window: Window::default(),
            cursor: 0,
            report: RunReport::default(),
        }
    }

    /// Add the next event (as [`aer_wire::encode_event`] wrote it).
    pub fn push(&mut self, encoded: &[u8]) {
        self.window.push(encoded);
    }

    /// Events held: those the detector's next call may take.
    pub fn held(&self) -> u64 {
        self.window.len()
    }

    /// [`Run::push`] `events`, then [`Run::run`].
    pub fn feed(&mut self, events: &[Encoded]) -> Result<(), RunError> {
        for e in events {
            self.push(&e.bytes);
        }
        self.run()
    }

    /// Make every whole call the events pushed so far allow.
    pub fn run(&mut self) -> Result<(), RunError> {
        self.step(false)
    }

    /// Make the rest of the calls (the last may be short) and report.
    pub fn finish(mut self) -> Result<RunReport, RunError> {
        self.step(true)?;
        self.report.events = self.window.end() as usize;
        Ok(self.report)
    }

    fn step(&mut self, last: bool) -> Result<(), RunError> {
        let events = self.window.events();
        let base = self.window.base();
        while let Some(g) = self
            .rule
            .next_call(&events, base, self.cursor, last, |a| self.detector.wants(a))
        {
            self.cursor = g.next_cursor(self.cursor);
            if g.is_empty() {
                continue;
            }
            let out = detect(self.detector, &g)?;
            self.report.delivered += g.delivered.len();
            self.report.plugin_time += out.plugin_time;
            self.report.batches += 1;
            self.detector.commit(&out.writes)?;
            self.report.logs.extend(out.logs);
            self.report
                .findings
                .extend(out.findings.into_iter().map(|p| p.finding));
        }
        drop(events);
        self.window.trim(self.cursor);
        Ok(())
    }
}
