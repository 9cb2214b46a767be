//! What a detector's callbacks get: state, findings, logging and the event clock.

use crate::finding::Finding;
use crate::host::{Backend, Level};
use crate::state::State;

/// The detector's handle on the host during one batch or tick.
pub struct Context<'h> {
    state: State<'h>,
    backend: &'h dyn Backend,
    findings: Vec<Finding>,
    now_ms: i64,
}

impl<'h> Context<'h> {
    pub(crate) fn new(backend: &'h dyn Backend, now_ms: i64) -> Self {
        Context {
            state: State::new(backend),
            backend,
            findings: Vec::new(),
            now_ms,
        }
    }

    /// The plugin's state.
    pub fn state(&mut self) -> &mut State<'h> {
        &mut self.state
    }

    /// Event time now: the time of the event being handled, or the tick time.
    /// Detectors never see wall-clock time, so a replay gives the same findings.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    pub(crate) fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// Report a finding (its time defaults to [`Context::now_ms`]).
    pub fn emit(&mut self, mut finding: Finding) {
        if finding.time_ms == 0 {
            finding.time_ms = self.now_ms;
        }
        self.findings.push(finding);
    }

    /// Findings reported so far in this call.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Where `address` is and who announces it, from the operator's geolocation
    /// databases; unknown fields are `None` (see [`crate::geo`]).
    pub fn geo(&self, address: &str) -> crate::Place {
        self.backend.geo_lookup(address)
    }

    /// Write a log message.
    pub fn log(&self, level: Level, message: &str) {
        self.backend.log(level, message);
    }

    pub(crate) fn finish(self) -> crate::Result<Vec<Finding>> {
        self.state.finish()?;
        Ok(self.findings)
    }
}
