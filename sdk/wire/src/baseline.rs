//! Rolling per-key statistics over event-time buckets: the arithmetic behind the host's
//! `baseline` service, shared with the SDK's in-memory test host so both agree.
//!
//! A baseline keeps the totals of the last `history` buckets of `bucket_ms` each
//! (sparse: empty buckets are not stored but count as zero). Statistics describe the
//! *completed* buckets before the one holding the query time, so a burst in progress
//! never raises its own threshold.

use crate::varint;

/// How a baseline buckets event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaselineSpec {
    /// Bucket width in milliseconds.
    pub bucket_ms: i64,
    /// Completed buckets kept.
    pub history: u32,
}

/// Statistics of a key's completed buckets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BaselineStats {
    /// Completed buckets since the key was first seen, at most `history`.
    pub buckets: u32,
    /// Mean bucket total.
    pub mean: f64,
    /// Standard deviation of the bucket totals.
    pub stddev: f64,
    /// Median bucket total.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest completed bucket.
    pub max: f64,
    /// Total of the bucket that holds the query time.
    pub current: f64,
}

impl BaselineStats {
    /// `mean + k * stddev`, but never below `floor`: "unusual for this key".
    pub fn sigma_threshold(&self, k: f64, floor: f64) -> f64 {
        (self.mean + k * self.stddev).max(floor)
    }

    /// The larger of the 99th percentile and `floor`.
    pub fn p99_threshold(&self, floor: f64) -> f64 {
        self.p99.max(floor)
    }
}

/// The stored history of one key.
#[derive(Debug, Clone, Default)]
pub struct BaselineData {
    /// Index of the first bucket the key was seen in.
    first: i64,
    /// (bucket index, total), oldest first, only non-empty buckets.
    buckets: Vec<(i64, f64)>,
    /// The completed buckets' statistics as of a current bucket (and spec), which only
    /// change when the current bucket does or another bucket is added to: events of one
    /// key within a bucket reuse them instead of sorting the history each time.
    memo: std::cell::Cell<Option<(BaselineSpec, i64, BaselineStats)>>,
}

impl PartialEq for BaselineData {
    fn eq(&self, other: &Self) -> bool {
        self.first == other.first && self.buckets == other.buckets
    }
}

impl BaselineSpec {
    /// The spec with its fields brought into range (bucket at least 1 ms, history 1..=10,000).
    pub fn sanitized(self) -> Self {
        BaselineSpec {
            bucket_ms: self.bucket_ms.max(1),
            history: self.history.clamp(1, 10_000),
        }
    }

    fn index(&self, time_ms: i64) -> i64 {
        time_ms.div_euclid(self.bucket_ms)
    }
}

impl BaselineData {
    /// Add `value` at `time_ms` (clamped into the accepted event times,
    /// [`crate::time`]). Values older than the kept history are ignored.
    pub fn observe(&mut self, spec: BaselineSpec, time_ms: i64, value: f64) {
        let spec = spec.sanitized();
        let idx = spec.index(crate::time::clamp(time_ms));
        if self.buckets.is_empty() && self.first == 0 {
            self.first = idx;
        }
        self.first = self.first.min(idx);
        let newest = self.buckets.last().map_or(idx, |(b, _)| (*b).max(idx));
        // Saturating: a baseline stored by an earlier version may hold any index.
        let oldest_kept = newest.saturating_sub(spec.history as i64);
        if idx < oldest_kept {
            return;
        }
        // Adding to the current bucket leaves the completed ones as they were; anything
        // else (an earlier bucket, or a later one that may push old ones out) does not.
        if self.memo.get().is_some_and(|(_, cur, _)| idx != cur) {
            self.memo.set(None);
        }
        match self.buckets.binary_search_by_key(&idx, |(b, _)| *b) {
            Ok(i) => self.buckets[i].1 += value,
            Err(i) => self.buckets.insert(i, (idx, value)),
        }
        self.buckets.retain(|(b, _)| *b >= oldest_kept);
    }

    /// Statistics at `time_ms` (clamped like [`BaselineData::observe`]'s).
    pub fn stats(&self, spec: BaselineSpec, time_ms: i64) -> BaselineStats {
        let spec = spec.sanitized();
        let cur = spec.index(crate::time::clamp(time_ms));
        let current = match self.buckets.last() {
            Some((b, v)) if *b == cur => *v,
            _ => self
                .buckets
                .binary_search_by_key(&cur, |(b, _)| *b)
                .map_or(0.0, |i| self.buckets[i].1),
        };
        if let Some((memo_spec, memo_cur, stats)) = self.memo.get()
            && memo_spec == spec
            && memo_cur == cur
        {
            return BaselineStats { current, ..stats };
        }
        let stats = self.completed(spec, cur);
        self.memo.set(Some((spec, cur, stats)));
        BaselineStats { current, ..stats }
    }

    /// Statistics of the completed buckets before bucket `cur` (`current` left at 0).
    fn completed(&self, spec: BaselineSpec, cur: i64) -> BaselineStats {
        let from = self.first.max(cur.saturating_sub(spec.history as i64));
        if self.buckets.is_empty() || from >= cur {
            return BaselineStats::default();
        }
        // At most `history` buckets: `from` is at least `cur - history`.
        let n = cur.abs_diff(from) as usize;
        let mut values = vec![0.0; n];
        for (b, v) in &self.buckets {
            if *b >= from && *b < cur {
                values[b.abs_diff(from) as usize] = *v;
            }
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let rank = |p: f64| ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        let [p50, p90, p99, max] =
            order_statistics(&mut values, [rank(0.5), rank(0.9), rank(0.99), n - 1]);
        BaselineStats {
            buckets: n as u32,
            mean,
            stddev: var.sqrt(),
            p50,
            p90,
            p99,
            max,
            current: 0.0,
        }
    }

    /// Heap bytes held by the decoded buckets (for callers that bound what they keep).
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(i64, f64)>()
    }

    /// Encode for storage: [`COMPACT`], then as varints (see [`crate::varint`]) `first`,
    /// and each bucket as its distance from the previous one (from `first` for the
    /// oldest) and its total. An hourly fortnight of small counts takes about two bytes
    /// per non-empty bucket instead of sixteen.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMPACT.len() + 10 + self.buckets.len() * 3);
        out.extend_from_slice(&COMPACT);
        varint::put(&mut out, self.first);
        let mut prev = self.first;
        for (b, v) in &self.buckets {
            varint::put(&mut out, b.wrapping_sub(prev));
            varint::put_f64(&mut out, *v);
            prev = *b;
        }
        out
    }

    /// Decode what [`BaselineData::encode`] wrote, or the fixed-width layout of earlier
    /// versions (`first`, then (index, total) pairs, eight bytes each, little-endian);
    /// `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.strip_prefix(&COMPACT) {
            Some(rest) => Self::decode_compact(rest),
            None => Self::decode_fixed(bytes),
        }
    }

    fn decode_compact(bytes: &[u8]) -> Option<Self> {
        let mut r = varint::Reader::new(bytes);
        let first: i64 = r.get()?;
        let mut prev = first;
        let mut buckets = Vec::with_capacity(bytes.len() / 2);
        while !r.is_empty() {
            let b = prev.checked_add(r.get()?)?;
            buckets.push((b, r.f64()?));
            prev = b;
        }
        Some(BaselineData {
            first,
            buckets,
            memo: Default::default(),
        })
    }

    fn decode_fixed(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(16) {
            return None;
        }
        let i64_at = |i: usize| i64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let f64_at = |i: usize| f64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let buckets = (8..bytes.len())
            .step_by(16)
            .map(|i| (i64_at(i), f64_at(i + 8)))
            .collect();
        Some(BaselineData {
            first: i64_at(0),
            buckets,
            memo: Default::default(),
        })
    }
}

/// The values a sort of `values` by [`f64::total_cmp`] would put at each of `ranks`
/// (ascending, each below `values.len()`), found by selection: each selection works only
/// on the part above the previous rank, so the whole costs a few passes, not a sort.
/// `values` is left partly ordered.
fn order_statistics<const K: usize>(mut values: &mut [f64], ranks: [usize; K]) -> [f64; K] {
    let mut out = [0.0; K];
    // `values` holds the elements of rank `base` and above.
    let mut base = 0;
    let mut last: Option<(usize, f64)> = None;
    for (slot, rank) in out.iter_mut().zip(ranks) {
        if let Some((r, v)) = last
            && r == rank
        {
            *slot = v;
            continue;
        }
        let (_, v, above) =
            std::mem::take(&mut values).select_nth_unstable_by(rank - base, f64::total_cmp);
        *slot = *v;
        last = Some((rank, *v));
        base = rank + 1;
        values = above;
    }
    out
}

/// The first eight bytes of a compactly encoded baseline. Read as the fixed-width
/// layout's `first` bucket index they would be about -9.2e18, which no event time
/// gives, so the two layouts cannot be confused.
pub const COMPACT: [u8; 8] = *b"AERbl2\x00\x80";

/// The state key under which the host keeps the baseline of `key`.
pub fn baseline_state_key(key: &str) -> String {
    format!("~baseline/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    const H: i64 = 3_600_000;
    const SPEC: BaselineSpec = BaselineSpec {
        bucket_ms: H,
        history: 24,
    };

    #[test]
    fn stats_describe_completed_buckets_with_zeros() {
        let mut d = BaselineData::default();
        // 10 per hour for 4 hours, then nothing for 4 hours.
        for h in 0..4 {
            d.observe(SPEC, h * H + 1, 10.0);
        }
        let s = d.stats(SPEC, 8 * H);
        assert_eq!(s.buckets, 8);
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.stddev, 5.0);
        assert_eq!((s.p50, s.p90, s.max, s.current), (0.0, 10.0, 10.0, 0.0));
        // The current bucket is reported but not part of the statistics.
        d.observe(SPEC, 8 * H + 5, 100.0);
        let s = d.stats(SPEC, 8 * H + 6);
        assert_eq!((s.current, s.max, s.buckets), (100.0, 10.0, 8));
    }

    #[test]
    fn history_is_bounded() {
        let mut d = BaselineData::default();
        for h in 0..100 {
            d.observe(SPEC, h * H, 1.0);
        }
        assert!(d.buckets.len() <= 25, "{}", d.buckets.len());
        let s = d.stats(SPEC, 100 * H);
        assert_eq!((s.buckets, s.mean), (24, 1.0));
        // Too old to count.
        d.observe(SPEC, 0, 1_000.0);
        assert_eq!(d.stats(SPEC, 100 * H).max, 1.0);
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut d = BaselineData::default();
        d.observe(SPEC, 5 * H, 2.5);
        d.observe(SPEC, 7 * H, 1.0);
        assert_eq!(BaselineData::decode(&d.encode()), Some(d.clone()));
        assert_eq!(BaselineData::decode(&[1, 2, 3]), None);
        let mut truncated = d.encode();
        truncated.pop();
        assert_eq!(BaselineData::decode(&truncated), None);
    }

    #[test]
    fn the_fixed_width_layout_of_earlier_versions_is_read() {
        let mut d = BaselineData::default();
        for (h, v) in [(5, 2.0), (7, 1.0), (20, 3.0)] {
            d.observe(SPEC, h * H, v);
        }
        let mut fixed = d.first.to_le_bytes().to_vec();
        for (b, v) in &d.buckets {
            fixed.extend_from_slice(&b.to_le_bytes());
            fixed.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(BaselineData::decode(&fixed), Some(d.clone()));
        assert!(d.encode().len() < fixed.len() / 3, "{}", d.encode().len());
    }

    #[test]
    fn a_fortnight_of_hourly_counts_takes_about_two_bytes_per_hour() {
        let spec = BaselineSpec {
            bucket_ms: H,
            history: 336,
        };
        let mut d = BaselineData::default();
        let first = 1_700_000_000_000 / H;
        for h in 0..336 {
            d.observe(spec, (first + h) * H, (h % 40) as f64);
        }
        let n = d.encode().len();
        assert!(n <= 8 + 6 + 2 * 336, "{n} bytes");
        assert_eq!(BaselineData::decode(&d.encode()), Some(d));
    }

    // Regression: a guest's `baseline.observe` at i64::MIN or i64::MAX overflowed the
    // bucket arithmetic (a panic in debug builds, wrapped windows in release).
    #[test]
    fn extreme_times_are_clamped_and_never_overflow() {
        for bucket_ms in [1, H] {
            let spec = BaselineSpec {
                bucket_ms,
                history: 10_000,
            };
            let mut d = BaselineData::default();
            for t in [i64::MIN, i64::MAX, 0, -1, i64::MAX - 1, i64::MIN + 1] {
                d.observe(spec, t, 1.0);
                let s = d.stats(spec, t);
                assert!(s.buckets <= 10_000 && s.mean.is_finite(), "{t}: {s:?}");
            }
            assert_eq!(d.stats(spec, i64::MAX), d.stats(spec, crate::time::MAX_MS));
        }
        // A stored baseline of an earlier version may hold any index.
        let mut fixed = i64::MIN.to_le_bytes().to_vec();
        for b in [i64::MIN, i64::MAX] {
            fixed.extend_from_slice(&b.to_le_bytes());
            fixed.extend_from_slice(&1.0f64.to_le_bytes());
        }
        let mut d = BaselineData::decode(&fixed).unwrap();
        d.observe(SPEC, 5 * H, 1.0);
        assert!(d.stats(SPEC, 6 * H).mean.is_finite());
    }

    #[test]
    fn new_key_has_empty_stats() {
        let d = BaselineData::default();
        assert_eq!(d.stats(SPEC, 10 * H), BaselineStats::default());
    }

    proptest::proptest! {
        #[test]
        fn order_statistics_equal_a_full_sort(
            mut values in proptest::collection::vec(
                proptest::prop_oneof![
                    (0u8..6).prop_map(f64::from),
                    proptest::num::f64::ANY,
                    proptest::strategy::Just(-0.0),
                ],
                1..400,
            ),
            picks in proptest::collection::vec(0.0f64..1.0, 1..5),
        ) {
            let n = values.len();
            let mut ranks: Vec<usize> = picks.iter().map(|p| (p * n as f64) as usize).collect();
            ranks.sort_unstable();
            ranks.push(n - 1);
            let mut sorted = values.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            let want: Vec<u64> = ranks.iter().map(|r| sorted[*r].to_bits()).collect();
            let got: Vec<u64> = match ranks.len() {
                2 => order_statistics(&mut values, [ranks[0], ranks[1]]).to_vec(),
                3 => order_statistics(&mut values, [ranks[0], ranks[1], ranks[2]]).to_vec(),
                4 => order_statistics(&mut values, [ranks[0], ranks[1], ranks[2], ranks[3]]).to_vec(),
                _ => order_statistics(&mut values, [ranks[0], ranks[1], ranks[2], ranks[3], ranks[4]]).to_vec(),
            }
            .into_iter()
            .map(f64::to_bits)
            .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn remembered_statistics_equal_fresh_ones() {
        let mut data = BaselineData::default();
        // In order, within buckets, across buckets, late and far-future events.
        let times = [
            0,
            1,
            H,
            H + 5,
            3 * H,
            2 * H,
            3 * H + 1,
            30 * H,
            4 * H,
            31 * H,
            31 * H + 7,
        ];
        for (i, t) in times.iter().enumerate() {
            data.observe(SPEC, *t, 1.0 + i as f64);
            for at in [*t, t + H, t + 10 * H] {
                let fresh = BaselineData::decode(&data.encode()).unwrap();
                assert_eq!(
                    data.stats(SPEC, at),
                    fresh.stats(SPEC, at),
                    "after {t} at {at}"
                );
            }
        }
    }
}
