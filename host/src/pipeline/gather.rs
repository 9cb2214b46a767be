//! Gather: which events one detector call gets. Every driver (the daemon's workers,
//! `aer replay`, `aer test`) batches by this one rule: from the detector's cursor, in
//! inbox order, the events whose action it subscribes to, up to a batch, looking at no
//! more than [`LOOK_AHEAD`] batches' worth of events (so a detector of rare actions
//! keeps up in a call or two rather than one call per batch of others' events), and
//! never past the last event stored. Its cursor then moves past the last event looked
//! at.

use aer_wire::BatchWriter;

/// Events per detector call unless a driver is told otherwise (`--batch`).
pub const BATCH: usize = 256;
/// Events one call may look at, in batches.
pub const LOOK_AHEAD: usize = 16;

/// The batching rule, for a batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gather {
    max: usize,
    look_at: usize,
}

impl Default for Gather {
    fn default() -> Self {
        Gather::new(BATCH)
    }
}

impl Gather {
    /// Up to `batch` subscribed events per call, looking at no more than
    /// [`LOOK_AHEAD`] × `batch` events.
    pub const fn new(batch: usize) -> Self {
        let batch = if batch == 0 { 1 } else { batch };
        Gather {
            max: batch,
            look_at: batch.saturating_mul(LOOK_AHEAD),
        }
    }

    /// The same rule delivering at most `max` events (while a fault is isolated),
    /// looking as far.
    pub fn at_most(self, max: usize) -> Self {
        Gather {
            max: max.clamp(1, self.max),
            ..self
        }
    }

    /// Most events a call gets.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Start gathering one call.
    pub fn start(self) -> Gathering {
        Gathering {
            rule: self,
            batch: BatchWriter::new(),
            delivered: Vec::new(),
            last_seq: None,
            looked_at: 0,
        }
    }

    /// Gather one call from `events`, the event at index `i` having seq `base + i`,
    /// starting at seq `from` (the local drivers' inbox is a slice of a [`Window`]).
    pub fn from_slice(
        self,
        events: &[&[u8]],
        base: u64,
        from: u64,
        wants: impl Fn(&[u8]) -> bool,
    ) -> Gathered {
        let mut g = self.start();
        let skip = from.saturating_sub(base) as usize;
        for (i, bytes) in events.iter().enumerate().skip(skip) {
            if !g.offer(base + i as u64, bytes, &wants) {
                break;
            }
        }
        g.finish()
    }

    /// The next call of a local driver that reads its history a piece at a time
    /// ([`Gather::from_slice`]): `None` when nothing is left from `from`, or while the
    /// call is not whole ([`Gathered::full`]) and more events may come (`done` false),
    /// so calls are exactly those of one pass over the whole history.
    pub fn next_call(
        self,
        events: &[&[u8]],
        base: u64,
        from: u64,
        done: bool,
        wants: impl Fn(&[u8]) -> bool,
    ) -> Option<Gathered> {
        let g = self.from_slice(events, base, from, wants);
        (g.last_seq.is_some() && (g.full || done)).then_some(g)
    }
}

/// The local drivers' inbox: a window of encoded events in inbox order, the first at
/// seq `base`. Drivers push events as they read them and trim what every stage has
/// passed, so a history streams through in bounded memory.
#[derive(Debug, Default)]
pub struct Window {
    base: u64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Window {
    /// A window holding `events`, encoded with [`aer_wire::encode_event`], from seq 0.
    pub fn new(events: &[crate::Event]) -> Self {
        let mut w = Window {
            bytes: Vec::with_capacity(events.len() * 256),
            ends: Vec::with_capacity(events.len()),
            ..Default::default()
        };
        for event in events {
            aer_wire::encode_event(event, &mut w.bytes);
            w.ends.push(w.bytes.len());
        }
        w
    }

    /// Add the next event (as [`aer_wire::encode_event`] wrote it).
    pub fn push(&mut self, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
        self.ends.push(self.bytes.len());
    }

    /// Seq of the first event held.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Seq after the last event held (every event pushed so far).
    pub fn end(&self) -> u64 {
        self.base + self.ends.len() as u64
    }

    /// Events held.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each held event's bytes, in order: index `i` is seq `base + i`.
    pub fn events(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let e = &self.bytes[start..end];
                start = end;
                e
            })
            .collect()
    }

    /// Let go of the events before seq `before`.
    pub fn trim(&mut self, before: u64) {
        let n = (before.saturating_sub(self.base) as usize).min(self.ends.len());
        if n == 0 {
            return;
        }
        let cut = self.ends[n - 1];
        self.bytes.drain(..cut);
        self.ends.drain(..n);
        for end in &mut self.ends {
            *end -= cut;
        }
        self.base += n as u64;
    }
}

/// One call being gathered: offer it events in inbox order until it takes no more.
#[derive(Debug)]
pub struct Gathering {
    rule: Gather,
    batch: BatchWriter,
    delivered: Vec<u64>,
    last_seq: Option<u64>,
    looked_at: usize,
}

impl Gathering {
    /// Whether the call takes no more events.
    pub fn done(&self) -> bool {
        self.delivered.len() >= self.rule.max || self.looked_at >= self.rule.look_at
    }

    /// Offer the next event (`seq`, encoded with [`aer_wire::encode_event`]): taken
    /// when the detector `wants` its action. Returns whether the call takes more; an
    /// event offered after that is not looked at.
    pub fn offer(&mut self, seq: u64, event: &[u8], wants: impl Fn(&[u8]) -> bool) -> bool {
        if self.done() {
            return false;
        }
        if aer_wire::encoded_action_bytes(event).is_some_and(wants) {
            self.batch.push_encoded(event);
            self.delivered.push(seq);
        }
        self.last_seq = Some(seq);
        self.looked_at += 1;
        !self.done()
    }

    /// The gathered call.
    pub fn finish(self) -> Gathered {
        Gathered {
            full: self.done(),
            batch: self.batch.finish(),
            delivered: self.delivered,
            last_seq: self.last_seq,
        }
    }
}

/// One detector call's events.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// The packed batch (see [`aer_wire::BatchWriter`]).
    pub batch: Vec<u8>,
    /// The seq of each event in the batch.
    pub delivered: Vec<u64>,
    /// Whether the call took all it may (a batch, or as many events as it may look
    /// at): more events stored after it would not change it.
    pub full: bool,
    /// The last event looked at (none: no event was offered); the cursor moves past it.
    pub last_seq: Option<u64>,
}

impl Gathered {
    /// Whether the call has no event for the detector.
    pub fn is_empty(&self) -> bool {
        self.delivered.is_empty()
    }

    /// Where the detector's cursor moves: past the last event looked at.
    pub fn next_cursor(&self, cursor: u64) -> u64 {
        self.last_seq.map_or(cursor, |s| s + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` encoded events, the `i`th with action `action(i)`.
    fn events(n: usize, action: impl Fn(usize) -> &'static str) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let e = crate::Event {
                    id: format!("e{i}"),
                    time_ms: i as i64,
                    action: action(i).into(),
                    ..Default::default()
                };
                let mut out = Vec::new();
                aer_wire::encode_event(&e, &mut out);
                out
            })
            .collect()
    }

    fn gathered(events: &[Vec<u8>], from: usize, wanted: &str) -> (usize, Option<u64>) {
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        let g = Gather::default().from_slice(&refs, 0, from as u64, |a| a == wanted.as_bytes());
        (g.delivered.len(), g.last_seq)
    }

    #[test]
    fn a_call_gathers_a_batch_of_the_detectors_actions_looking_ahead_a_bounded_way() {
        // One wanted event among 1,000: found in one call, every event looked at.
        let e = events(1_000, |i| if i == 700 { "rare" } else { "common" });
        assert_eq!(gathered(&e, 0, "rare"), (1, Some(999)));
        // Every event wanted: a batch, ending at its last event.
        assert_eq!(gathered(&e, 0, "common"), (BATCH, Some(BATCH as u64 - 1)));
        // From 600, past the one it does not want (700).
        assert_eq!(
            gathered(&e, 600, "common"),
            (BATCH, Some(600 + BATCH as u64))
        );
        // Every other one: a full batch from twice as many events.
        let e = events(1_000, |i| if i % 2 == 0 { "even" } else { "odd" });
        assert_eq!(gathered(&e, 0, "odd"), (BATCH, Some(2 * BATCH as u64 - 1)));
        // None wanted: no more than LOOK_AHEAD batches looked at in one call.
        let e = events(5_000, |_| "common");
        let look_at = (BATCH * LOOK_AHEAD) as u64;
        assert_eq!(gathered(&e, 0, "rare"), (0, Some(look_at - 1)));
        assert_eq!(gathered(&e, look_at as usize, "rare"), (0, Some(4_999)));
        // Nothing left: nothing looked at, the cursor stays.
        let g = Gather::default().from_slice(&[], 0, 0, |_| true);
        assert_eq!(
            (g.is_empty(), g.last_seq, g.next_cursor(7)),
            (true, None, 7)
        );
    }

    #[test]
    fn an_isolating_call_takes_fewer_events_and_looks_as_far() {
        let e = events(100, |_| "a");
        let refs: Vec<&[u8]> = e.iter().map(Vec::as_slice).collect();
        let g = Gather::new(10).at_most(1).from_slice(&refs, 0, 5, |_| true);
        assert_eq!((g.delivered.clone(), g.last_seq), (vec![5], Some(5)));
        assert_eq!(Gather::new(0).max(), 1);
    }
}
