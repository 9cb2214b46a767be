//! What a plugin's faults lead to, counted the same way by every driver (the daemon
//! adds a growing wait between retries, `daemon/faults.rs`; a local run retries at
//! once).
//!
//! A detector batch that faults is retried; faulting again, its events are isolated:
//! one event per call until the event that faults, which faults twice in a row and
//! becomes a dead letter (the cursor moves past it, and batches grow back, doubling
//! with each successful call). A plugin that makes [`QUARANTINE_AFTER`] dead letters in
//! a row, or faults that many times in a row otherwise (an instance that cannot be
//! built, a state quota, a responder's call), is quarantined.

use super::gather::Gather;

/// Faults in a row (or dead letters in a row) after which a plugin is quarantined.
pub const QUARANTINE_AFTER: u32 = 3;

/// What a fault leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFault {
    /// Try the same again.
    Retry,
    /// Try again, one event per call, to find the event that faults.
    Isolate,
    /// The one event faults every time: set it aside as a dead letter and go on past
    /// it, quarantining the plugin when it has faulted on event after event.
    DeadLetter {
        /// Whether the plugin is quarantined too.
        quarantine: bool,
    },
    /// Quarantine the plugin.
    Quarantine,
}

/// One plugin's recent faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCount {
    consecutive: u32,
    /// While a poison event is being isolated: most events the next call gets.
    isolate: Option<usize>,
    /// Dead letters since the last successful call.
    dead_streak: u32,
}

impl FaultCount {
    /// A call failed, not over a batch of events; counts towards quarantine.
    pub fn fault(&mut self) -> AfterFault {
        self.consecutive += 1;
        if self.consecutive >= QUARANTINE_AFTER {
            self.consecutive = 0;
            AfterFault::Quarantine
        } else {
            AfterFault::Retry
        }
    }

    /// A detector call over `delivered` events faulted.
    pub fn batch_fault(&mut self, delivered: usize) -> AfterFault {
        if delivered == 0 {
            return self.fault();
        }
        self.consecutive += 1;
        if self.consecutive < 2 {
            return AfterFault::Retry;
        }
        self.consecutive = 0;
        // One event at a time until the one that faults: each faulting call may cost a
        // whole deadline, so one search of single events (the good ones are cheap)
        // costs fewer of them than halving would.
        self.isolate = Some(1);
        if delivered > 1 {
            return AfterFault::Isolate;
        }
        // Event after event: the plugin, not the events.
        let quarantine = self.dead_streak + 1 >= QUARANTINE_AFTER;
        self.dead_streak = if quarantine { 0 } else { self.dead_streak + 1 };
        AfterFault::DeadLetter { quarantine }
    }

    /// A call succeeded: faults in a row start again from none, and isolated batches
    /// grow back towards `rule`'s.
    pub fn success(&mut self, rule: Gather) {
        self.consecutive = 0;
        self.dead_streak = 0;
        self.isolate = self.isolate.map(|n| n * 2).filter(|n| *n < rule.max());
    }

    /// Whether the plugin is isolating a fault (fewer events a call until its batches
    /// have grown back).
    pub fn isolating(&self) -> bool {
        self.isolate.is_some()
    }

    /// The batching rule for the next call: `rule`, or fewer events while isolating.
    pub fn gather(&self, rule: Gather) -> Gather {
        match self.isolate {
            Some(n) => rule.at_most(n),
            None => rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poison_event_is_isolated_then_set_aside() {
        let rule = Gather::new(8);
        let mut c = FaultCount::default();
        assert_eq!(c.batch_fault(8), AfterFault::Retry);
        assert_eq!(c.batch_fault(8), AfterFault::Isolate);
        assert_eq!(c.gather(rule).max(), 1);
        // Good single events pass; the poison one faults twice.
        c.success(rule);
        assert_eq!(c.gather(rule).max(), 2);
        assert_eq!(c.batch_fault(2), AfterFault::Retry);
        assert_eq!(c.batch_fault(2), AfterFault::Isolate);
        assert_eq!(c.batch_fault(1), AfterFault::Retry);
        assert_eq!(
            c.batch_fault(1),
            AfterFault::DeadLetter { quarantine: false }
        );
        // Batches grow back with each success.
        for max in [2, 4] {
            c.success(rule);
            assert_eq!(c.gather(rule).max(), max);
        }
        c.success(rule);
        assert_eq!(c.gather(rule).max(), 8);
    }

    #[test]
    fn faulting_on_event_after_event_or_call_after_call_quarantines() {
        let mut c = FaultCount::default();
        let mut outcomes = Vec::new();
        for _ in 0..6 {
            outcomes.push(c.batch_fault(1));
        }
        assert_eq!(
            outcomes,
            [
                AfterFault::Retry,
                AfterFault::DeadLetter { quarantine: false },
                AfterFault::Retry,
                AfterFault::DeadLetter { quarantine: false },
                AfterFault::Retry,
                AfterFault::DeadLetter { quarantine: true },
            ]
        );
        let mut c = FaultCount::default();
        assert_eq!(c.fault(), AfterFault::Retry);
        // A success in between starts the count again.
        c.success(Gather::default());
        assert_eq!(c.fault(), AfterFault::Retry);
        assert_eq!(c.fault(), AfterFault::Retry);
        assert_eq!(c.fault(), AfterFault::Quarantine);
    }
}
