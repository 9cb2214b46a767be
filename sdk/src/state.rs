//! Per-plugin state with a read-through cache and buffered writes, plus typed helpers
//! keyed by event time: serde values, counters, sliding windows and bounded distinct sets.
//!
//! Within one batch, reads hit the host once per key and writes are buffered; the SDK
//! sends them in one `apply` call at the end of the batch, and the host commits them
//! together with the batch's findings (exactly-once state).

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::host::Backend;

/// The plugin's key/value state, scoped by the host to this tenant and plugin.
pub struct State<'h> {
    backend: &'h dyn Backend,
    /// Every key read or written in this batch. A fast hash (foldhash): the map lives
    /// for one batch, so its size is bounded by the batch's events, and so is the cost
    /// of any keys made to collide.
    keys: hashbrown::HashMap<String, Slot>,
}

/// One key's value in the batch (`None`: absent or deleted) and whether the batch
/// wrote it since the last flush.
struct Slot {
    value: Option<Vec<u8>>,
    dirty: bool,
}

impl<'h> State<'h> {
    pub(crate) fn new(backend: &'h dyn Backend) -> Self {
        State {
            backend,
            keys: hashbrown::HashMap::default(),
        }
    }

    /// `key`'s slot, read from the host the first time the batch asks for it.
    fn slot(&mut self, key: &str) -> &mut Slot {
        let backend = self.backend;
        self.keys.entry_ref(key).or_insert_with(|| Slot {
            value: backend.state_get(key),
            dirty: false,
        })
    }

    /// Raw bytes of `key`.
    pub fn get_bytes(&mut self, key: &str) -> Option<&[u8]> {
        self.slot(key).value.as_deref()
    }

    /// Set raw bytes.
    pub fn set_bytes(&mut self, key: &str, value: Vec<u8>) {
        self.write(key, Some(value));
    }

    /// The value of `key` decoded from JSON, or `None`.
    pub fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        match self.get_bytes(key) {
            Some(bytes) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| Error::msg(format!("state key {key:?}: {e}"))),
            None => Ok(None),
        }
    }

    /// Store `value` as JSON under `key`.
    pub fn set<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.set_bytes(key, bytes);
        Ok(())
    }

    /// Delete `key`.
    pub fn delete(&mut self, key: &str) {
        self.write(key, None);
    }

    fn write(&mut self, key: &str, value: Option<Vec<u8>>) {
        let slot = self.keys.entry_ref(key).or_insert(Slot {
            value: None,
            dirty: false,
        });
        slot.value = value;
        slot.dirty = true;
    }

    /// Add `delta` to the counter at `key` (absent is zero) and return the new value.
    pub fn add(&mut self, key: &str, delta: i64) -> Result<i64> {
        let current = match self.get_bytes(key) {
            None => 0,
            Some(b) => {
                let arr: [u8; 8] = b
                    .try_into()
                    .map_err(|_| Error::msg(format!("state key {key:?} is not a counter")))?;
                i64::from_le_bytes(arr)
            }
        };
        let next = current.saturating_add(delta);
        self.set_bytes(key, next.to_le_bytes().to_vec());
        Ok(next)
    }

    /// The counter at `key` (absent is zero).
    pub fn counter(&mut self, key: &str) -> Result<i64> {
        self.add(key, 0)
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order.
    ///
    /// Buffered writes are sent to the host first so the scan sees them.
    pub fn scan(&mut self, prefix: &str, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        self.flush()?;
        Ok(self.backend.state_scan(prefix, limit))
    }

    /// Send buffered writes to the host.
    pub fn flush(&mut self) -> Result<()> {
        let writes = self
            .keys
            .iter_mut()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| {
                slot.dirty = false;
                (key.clone(), slot.value.clone())
            })
            .collect();
        apply(self.backend, writes)
    }

    /// Send buffered writes to the host at the end of a batch (nothing is read after).
    pub(crate) fn finish(self) -> Result<()> {
        let writes = self
            .keys
            .into_iter()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| (key, slot.value))
            .collect();
        apply(self.backend, writes)
    }
}

/// Send `writes` to the host in key order (the same order whatever the map's).
fn apply(backend: &dyn Backend, mut writes: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    backend.state_apply(writes).map_err(Error::msg)
}

/// Rolling per-key statistics kept by the host (its `baseline` service): e.g. a user's
/// downloads per hour over the last 14 days, to flag an hour far above their own norm.
///
/// ```
/// # use aer_sdk::prelude::*;
/// # fn f(ctx: &mut Context<'_>, user: &str, t: i64) -> Result<()> {
/// let hourly = Baseline::hourly(14);
/// let stats = hourly.observe(ctx.state(), &["dl/", user].concat(), t, 1.0)?;
/// if stats.buckets >= 24 && stats.current > stats.sigma_threshold(4.0, 50.0) {
///     ctx.emit(Finding::new("unusual-downloads", user));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    spec: aer_wire::baseline::BaselineSpec,
}

impl Baseline {
    /// Buckets of `bucket_ms`, keeping `history` completed buckets.
    pub fn new(bucket_ms: i64, history: u32) -> Self {
        Baseline {
            spec: aer_wire::baseline::BaselineSpec { bucket_ms, history }.sanitized(),
        }
    }

    /// Hourly buckets over the last `days` days.
    pub fn hourly(days: u32) -> Self {
        Baseline::new(3_600_000, days.saturating_mul(24))
    }

    /// Daily buckets over the last `days` days.
    pub fn daily(days: u32) -> Self {
        Baseline::new(86_400_000, days)
    }

    /// Add `value` at `time_ms` and return the statistics at that time.
    pub fn observe(
        &self,
        state: &mut State<'_>,
        key: &str,
        time_ms: i64,
        value: f64,
    ) -> Result<crate::BaselineStats> {
        state
            .backend
            .baseline_observe(key, self.spec, time_ms, value)
            .map_err(Error::msg)
    }

    /// The statistics at `time_ms`, without adding.
    pub fn query(
        &self,
        state: &mut State<'_>,
        key: &str,
        time_ms: i64,
    ) -> Result<crate::BaselineStats> {
        state
            .backend
            .baseline_query(key, self.spec, time_ms)
            .map_err(Error::msg)
    }
}

/// A sliding-window count in event time, kept in buckets: "downloads in the last 10
/// minutes".
///
/// The count at `t` is what was added at times in `(t - width, t]`, counted by bucket:
/// a bucket counts when its start is in that span. [`Window::minutes`] uses one-second
/// buckets, so it is exact for event times in whole seconds (Slack's audit entries) and
/// off by less than a second otherwise; its state is one small entry per second with
/// events in the window. [`Window::new`] with coarser buckets keeps less state and
/// counts between `width - bucket` and `width` of history (a burst straddling the
/// window's start can be undercounted by the bucket it shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    width_ms: i64,
    bucket_ms: i64,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct WindowData {
    /// (bucket start, count), oldest first.
    b: Vec<(i64, u64)>,
}

/// First byte of a window's fixed-width binary encoding (earlier SDK versions): then
/// each bucket as its start (i64) and count (u64), little-endian.
const WINDOW_BINARY: u8 = 1;

/// First byte of a window's compact encoding: then each bucket as varints (see
/// [`aer_wire::varint`]): its start's distance from the previous bucket's (from 0 for
/// the oldest) and its count. Windows stored as JSON (starting with `{`) or in the
/// fixed-width layout by earlier SDK versions are still read.
const WINDOW_COMPACT: u8 = 2;

impl WindowData {
    fn decode(key: &str, bytes: &[u8]) -> Result<WindowData> {
        let corrupt = || Error::msg(format!("state key {key:?}: corrupt window"));
        match bytes.split_first() {
            Some((&WINDOW_COMPACT, rest)) => {
                let mut r = aer_wire::varint::Reader::new(rest);
                let mut b = Vec::with_capacity(rest.len() / 4);
                let mut prev = 0i64;
                while !r.is_empty() {
                    let start = r
                        .get::<i64>()
                        .and_then(|d| prev.checked_add(d))
                        .ok_or_else(corrupt)?;
                    b.push((start, r.get::<u64>().ok_or_else(corrupt)?));
                    prev = start;
                }
                Ok(WindowData { b })
            }
            Some((&WINDOW_BINARY, rest)) if rest.len() % 16 == 0 => Ok(WindowData {
                b: rest
                    .chunks_exact(16)
                    .map(|c| {
                        let (start, n) = c.split_at(8);
                        (
                            i64::from_le_bytes(start.try_into().unwrap_or_default()),
                            u64::from_le_bytes(n.try_into().unwrap_or_default()),
                        )
                    })
                    .collect(),
            }),
            _ => serde_json::from_slice(bytes)
                .map_err(|e| Error::msg(format!("state key {key:?}: {e}"))),
        }
    }

    /// Encode into `out` (cleared first; its allocation is reused).
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(1 + 5 * self.b.len());
        out.push(WINDOW_COMPACT);
        let mut prev = 0i64;
        for (start, n) in &self.b {
            aer_wire::varint::put(out, start.wrapping_sub(prev));
            aer_wire::varint::put(out, *n);
            prev = *start;
        }
    }

    fn load(state: &mut State<'_>, key: &str) -> Result<WindowData> {
        match state.get_bytes(key) {
            Some(bytes) => WindowData::decode(key, bytes),
            None => Ok(WindowData::default()),
        }
    }
}

impl Window {
    /// A window `width_ms` wide counted in buckets of `bucket_ms` (both at least 1).
    pub fn new(width_ms: i64, bucket_ms: i64) -> Self {
        let width_ms = width_ms.max(1);
        Window {
            width_ms,
            bucket_ms: bucket_ms.clamp(1, width_ms),
        }
    }

    /// A window of `minutes`, exact to the second (one-second buckets).
    pub fn minutes(minutes: i64) -> Self {
        Window::new(minutes.saturating_mul(60_000), 1_000)
    }

    /// Width of the window in milliseconds.
    pub fn width_ms(&self) -> i64 {
        self.width_ms
    }

    fn bucket(&self, time_ms: i64) -> i64 {
        time_ms.div_euclid(self.bucket_ms) * self.bucket_ms
    }

    fn total(&self, data: &WindowData, time_ms: i64) -> u64 {
        let from = self.bucket(time_ms) - self.width_ms;
        data.b
            .iter()
            .filter(|(start, _)| *start > from && *start <= time_ms)
            .map(|(_, n)| n)
            .sum()
    }

    /// Count `n` at `time_ms` and return the window's count ending at `time_ms`.
    pub fn add(&self, state: &mut State<'_>, key: &str, time_ms: i64, n: u64) -> Result<u64> {
        // One lookup for the read and the write: windows are counted on every event.
        let slot = state.slot(key);
        let mut data = match slot.value.as_deref() {
            Some(bytes) => WindowData::decode(key, bytes)?,
            None => WindowData::default(),
        };
        let bucket = self.bucket(time_ms);
        match data.b.binary_search_by_key(&bucket, |(s, _)| *s) {
            Ok(i) => data.b[i].1 = data.b[i].1.saturating_add(n),
            Err(i) => data.b.insert(i, (bucket, n)),
        }
        let newest = data.b.last().map_or(bucket, |(s, _)| *s);
        data.b.retain(|(s, _)| *s > newest - self.width_ms);
        let total = self.total(&data, time_ms);
        data.encode_into(slot.value.get_or_insert_default());
        slot.dirty = true;
        Ok(total)
    }

    /// The window's count ending at `time_ms`, without adding.
    pub fn count(&self, state: &mut State<'_>, key: &str, time_ms: i64) -> Result<u64> {
        let data = WindowData::load(state, key)?;
        Ok(self.total(&data, time_ms))
    }
}

/// At most one report per key within a span of event time, e.g. "one finding per user
/// per hour". The last report's time is kept in state under the given key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    span_ms: i64,
}

impl Cooldown {
    /// A cooldown of `span_ms` of event time.
    pub fn new(span_ms: i64) -> Self {
        Cooldown { span_ms }
    }

    /// A cooldown of `minutes`.
    pub fn minutes(minutes: i64) -> Self {
        Cooldown::new(minutes.saturating_mul(60_000))
    }

    /// True, and remembered, if `key` was not reported within the span before `time_ms`.
    pub fn ready(&self, state: &mut State<'_>, key: &str, time_ms: i64) -> Result<bool> {
        let last: Option<i64> = state.get(key)?;
        if last.is_some_and(|t| (time_ms - t) < self.span_ms && time_ms >= t) {
            return Ok(false);
        }
        state.set(key, &time_ms)?;
        Ok(true)
    }
}

/// How long a detector has watched a tenant, in event time: the first event's time is
/// kept in state. Detectors that judge "unusual" against history stay quiet (or use a
/// higher bar) until they have watched for `days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learning {
    span_ms: i64,
}

impl Learning {
    /// Learning lasts `days` of event time from the first event seen.
    pub fn days(days: i64) -> Self {
        Learning {
            span_ms: days.saturating_mul(86_400_000),
        }
    }

    /// Whether the learning period is over at `time_ms` (recording the first time seen).
    pub fn done(&self, state: &mut State<'_>, time_ms: i64) -> Result<bool> {
        const KEY: &str = "aer.learning.since";
        let since = match state.get::<i64>(KEY)? {
            Some(t) => t,
            None => {
                state.set(KEY, &time_ms)?;
                time_ms
            }
        };
        Ok(time_ms - since >= self.span_ms)
    }
}

/// A bounded set of distinct values with the event time each was last seen, e.g. the
/// IP addresses a user logged in from. Beyond `max` values the least recently seen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distinct {
    max: usize,
    ttl_ms: Option<i64>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct DistinctData {
    /// (value, last seen), in insertion order.
    v: Vec<(String, i64)>,
}

impl Distinct {
    /// A set keeping at most `max` values (at least 1).
    pub fn new(max: usize) -> Self {
        Distinct {
            max: max.max(1),
            ttl_ms: None,
        }
    }

    /// Forget values not seen for `ttl_ms` of event time.
    pub fn ttl_ms(mut self, ttl_ms: i64) -> Self {
        self.ttl_ms = Some(ttl_ms);
        self
    }

    /// Record `value` seen at `time_ms`; returns `true` if it was not in the set.
    pub fn insert(
        &self,
        state: &mut State<'_>,
        key: &str,
        value: &str,
        time_ms: i64,
    ) -> Result<bool> {
        let mut data: DistinctData = state.get(key)?.unwrap_or_default();
        if let Some(ttl) = self.ttl_ms {
            data.v.retain(|(_, seen)| *seen > time_ms - ttl);
        }
        let new = match data.v.iter_mut().find(|(v, _)| v == value) {
            Some(entry) => {
                entry.1 = entry.1.max(time_ms);
                false
            }
            None => {
                data.v.push((value.to_owned(), time_ms));
                true
            }
        };
        while data.v.len() > self.max {
            let oldest = data
                .v
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(i, _)| i)
                .unwrap_or(0);
            data.v.remove(oldest);
        }
        state.set(key, &data)?;
        Ok(new)
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, state: &mut State<'_>, key: &str, value: &str) -> Result<bool> {
        let data: DistinctData = state.get(key)?.unwrap_or_default();
        Ok(data.v.iter().any(|(v, _)| v == value))
    }

    /// Number of values in the set.
    pub fn len(&self, state: &mut State<'_>, key: &str) -> Result<usize> {
        let data: DistinctData = state.get(key)?.unwrap_or_default();
        Ok(data.v.len())
    }
}

/// The ids of a key's latest events, the evidence a finding cites: at most `max`, and
/// with [`Evidence::within_ms`] none older than a span of event time (say, the window
/// that made the finding). Older ids go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    max: usize,
    span_ms: Option<i64>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct EvidenceData {
    /// (event id, event time), oldest first.
    e: Vec<(String, i64)>,
}

impl Evidence {
    /// Keep at most `max` ids (at least 1).
    pub fn new(max: usize) -> Self {
        Evidence {
            max: max.max(1),
            span_ms: None,
        }
    }

    /// Keep only ids of events within `span_ms` of event time before the latest.
    pub fn within_ms(mut self, span_ms: i64) -> Self {
        self.span_ms = Some(span_ms.max(1));
        self
    }

    /// Note event `id` at `time_ms` under `key`.
    pub fn push(&self, state: &mut State<'_>, key: &str, id: &str, time_ms: i64) -> Result<()> {
        let mut data: EvidenceData = state.get(key)?.unwrap_or_default();
        data.e.push((id.to_owned(), time_ms));
        self.trim(&mut data, time_ms);
        state.set(key, &data)
    }

    /// The ids kept under `key` as of `time_ms`, oldest first.
    pub fn ids(&self, state: &mut State<'_>, key: &str, time_ms: i64) -> Result<Vec<String>> {
        let mut data: EvidenceData = state.get(key)?.unwrap_or_default();
        self.trim(&mut data, time_ms);
        Ok(data.e.into_iter().map(|(id, _)| id).collect())
    }

    fn trim(&self, data: &mut EvidenceData, time_ms: i64) {
        if let Some(span) = self.span_ms {
            data.e.retain(|(_, t)| *t > time_ms.saturating_sub(span));
        }
        let excess = data.e.len().saturating_sub(self.max);
        data.e.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryHost;

    #[test]
    fn evidence_keeps_the_latest_ids_within_its_span() {
        let host = MemoryHost::default();
        let mut state = State::new(&host);
        let e = Evidence::new(3).within_ms(1_000);
        for (i, t) in [0, 100, 200, 300, 1_250].into_iter().enumerate() {
            e.push(&mut state, "k", &format!("e{i}"), t).unwrap();
        }
        // e0 is past the bound, e1 and e2 older than the span at 1,250.
        assert_eq!(e.ids(&mut state, "k", 1_250).unwrap(), ["e3", "e4"]);
        assert_eq!(e.ids(&mut state, "k", 5_000).unwrap(), Vec::<String>::new());
        let e = Evidence::new(2);
        for i in 0..5 {
            e.push(&mut state, "j", &format!("x{i}"), i).unwrap();
        }
        assert_eq!(e.ids(&mut state, "j", 99).unwrap(), ["x3", "x4"]);
    }

    #[test]
    fn window_counts_only_the_last_width() {
        let host = MemoryHost::default();
        let mut s = State::new(&host);
        let w = Window::new(10_000, 1_000);
        assert_eq!(w.add(&mut s, "k", 0, 1).unwrap(), 1);
        assert_eq!(w.add(&mut s, "k", 5_000, 1).unwrap(), 2);
        assert_eq!(w.add(&mut s, "k", 9_999, 1).unwrap(), 3);
        // At 10_000 the bucket starting at 0 has left the window.
        assert_eq!(w.add(&mut s, "k", 10_000, 1).unwrap(), 3);
        assert_eq!(w.count(&mut s, "k", 30_000).unwrap(), 0);
    }

    #[test]
    fn a_window_of_minutes_counts_exactly_the_minutes_it_names() {
        let host = MemoryHost::default();
        let mut s = State::new(&host);
        let w = Window::minutes(10);
        // A burst across a minute boundary: 0:59 is 9.5 minutes before 10:29, 0:29 is
        // exactly 10 minutes before and out (the span is half-open).
        for t in [29_000, 59_000, 599_000] {
            w.add(&mut s, "k", t, 1).unwrap();
        }
        assert_eq!(w.add(&mut s, "k", 629_000, 1).unwrap(), 3);
        assert_eq!(w.count(&mut s, "k", 658_999).unwrap(), 3);
        assert_eq!(
            w.count(&mut s, "k", 659_000).unwrap(),
            2,
            "0:59 left at 10:59"
        );
        // Coarse buckets trade that for state: the bucket at 0:00 left at 10:00.
        let coarse = Window::new(600_000, 60_000);
        for t in [59_000, 599_000] {
            coarse.add(&mut s, "c", t, 1).unwrap();
        }
        assert_eq!(coarse.add(&mut s, "c", 629_000, 1).unwrap(), 2);
    }

    #[test]
    fn window_reads_what_earlier_versions_stored() {
        let host = MemoryHost::default();
        let mut s = State::new(&host);
        let w = Window::new(10_000, 1_000);
        let mut fixed = vec![WINDOW_BINARY];
        for (start, n) in [(0i64, 2u64), (5_000, 3)] {
            fixed.extend_from_slice(&start.to_le_bytes());
            fixed.extend_from_slice(&n.to_le_bytes());
        }
        for (key, old) in [
            ("json", br#"{"b":[[0,2],[5000,3]]}"#.to_vec()),
            ("fixed", fixed),
        ] {
            s.set_bytes(key, old);
            assert_eq!(w.count(&mut s, key, 9_000).unwrap(), 5, "{key}");
            // The next write stores it compactly, which reads back the same.
            assert_eq!(w.add(&mut s, key, 9_500, 1).unwrap(), 6, "{key}");
            let stored = s.get_bytes(key).unwrap();
            assert_eq!(stored[0], WINDOW_COMPACT);
            assert!(stored.len() <= 1 + 3 * 4, "{} bytes", stored.len());
            assert_eq!(w.count(&mut s, key, 9_999).unwrap(), 6, "{key}");
        }
        s.set_bytes("bad", b"{not json".to_vec());
        assert!(w.count(&mut s, "bad", 0).is_err());
        s.set_bytes("truncated", vec![WINDOW_COMPACT, 0x80]);
        assert!(w.count(&mut s, "truncated", 0).is_err());
    }

    #[test]
    fn distinct_evicts_least_recently_seen() {
        let host = MemoryHost::default();
        let mut s = State::new(&host);
        let d = Distinct::new(2);
        assert!(d.insert(&mut s, "ips", "a", 1).unwrap());
        assert!(d.insert(&mut s, "ips", "b", 2).unwrap());
        assert!(!d.insert(&mut s, "ips", "a", 3).unwrap());
        assert!(d.insert(&mut s, "ips", "c", 4).unwrap());
        assert!(d.contains(&mut s, "ips", "a").unwrap());
        assert!(!d.contains(&mut s, "ips", "b").unwrap());
        assert_eq!(d.len(&mut s, "ips").unwrap(), 2);
    }

    #[test]
    fn baseline_learns_a_users_norm() {
        let host = MemoryHost::default();
        let mut s = State::new(&host);
        let b = Baseline::hourly(7);
        let hour = 3_600_000;
        for h in 0..48 {
            b.observe(&mut s, "u", h * hour, 3.0).unwrap();
        }
        let stats = b.observe(&mut s, "u", 48 * hour, 40.0).unwrap();
        assert_eq!((stats.buckets, stats.mean, stats.current), (48, 3.0, 40.0));
        assert!(stats.current > stats.sigma_threshold(4.0, 10.0));
        assert_eq!(b.query(&mut s, "u", 49 * hour).unwrap().max, 40.0);
    }

    #[test]
    fn writes_reach_the_host_only_on_flush() {
        let host = MemoryHost::default();
        let mut s = State::new(&host);
        assert_eq!(s.add("n", 2).unwrap(), 2);
        assert_eq!(s.add("n", 3).unwrap(), 5);
        assert!(host.get("n").is_none());
        s.flush().unwrap();
        assert_eq!(host.get("n"), Some(5i64.to_le_bytes().to_vec()));
        s.delete("n");
        s.flush().unwrap();
        assert!(host.get("n").is_none());
    }

    type Writes = Vec<(String, Option<Vec<u8>>)>;

    /// Records what each `state_apply` call sent.
    #[derive(Default)]
    struct Recorder {
        applied: std::cell::RefCell<Vec<Writes>>,
    }

    impl Backend for Recorder {
        fn state_get(&self, _key: &str) -> Option<Vec<u8>> {
            None
        }
        fn state_apply(&self, writes: Writes) -> Result<(), String> {
            self.applied.borrow_mut().push(writes);
            Ok(())
        }
        fn state_scan(&self, _prefix: &str, _limit: u32) -> Vec<(String, Vec<u8>)> {
            Vec::new()
        }
        fn baseline_observe(
            &self,
            _key: &str,
            _spec: aer_wire::baseline::BaselineSpec,
            _time_ms: i64,
            _value: f64,
        ) -> Result<crate::BaselineStats, String> {
            Err("unused".into())
        }
        fn baseline_query(
            &self,
            _key: &str,
            _spec: aer_wire::baseline::BaselineSpec,
            _time_ms: i64,
        ) -> Result<crate::BaselineStats, String> {
            Err("unused".into())
        }
        fn log(&self, _level: crate::host::Level, _message: &str) {}
    }

    #[test]
    fn each_key_is_sent_once_with_its_last_value_in_key_order() {
        let host = Recorder::default();
        let mut s = State::new(&host);
        for (i, key) in ["b", "a", "c", "a", "b"].into_iter().enumerate() {
            s.set_bytes(key, vec![i as u8]);
        }
        assert_eq!(s.get_bytes("z"), None); // read, never written: not sent
        s.delete("c");
        s.flush().unwrap();
        // A second flush sends only what was written after the first.
        s.set_bytes("a", vec![9]);
        s.flush().unwrap();
        assert_eq!(s.get_bytes("b"), Some(&[4u8][..]));
        s.finish().unwrap(); // nothing written since: nothing sent
        let applied = host.applied.borrow();
        assert_eq!(
            *applied,
            vec![
                vec![
                    ("a".to_string(), Some(vec![3])),
                    ("b".to_string(), Some(vec![4])),
                    ("c".to_string(), None),
                ],
                vec![("a".to_string(), Some(vec![9]))],
            ]
        );
    }
}
