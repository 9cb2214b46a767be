//! `aer:plugin/baseline`: rolling per-key statistics kept in the plugin's state.
//!
//! Within a call, baselines are decoded once and kept in the call's cache; the host
//! encodes the changed ones into the call's write set when the call ends, so they are
//! committed (or dropped) together with the rest of the call's state. Between calls an
//! instance keeps what it decoded ([`Baselines`]), beside the bytes it came from,
//! and takes it again only while the store holds those very bytes.

use std::collections::HashMap;

use aer_wire::baseline::{BaselineData, BaselineSpec, baseline_state_key};

use crate::bindings::host::aer::plugin::baseline::{BaselineSpec as WitSpec, BaselineStats, Host};
use crate::bindings::host::aer::plugin::state::StateError;
use crate::host_api::{CallNumber, HostState};

fn spec(s: WitSpec) -> BaselineSpec {
    BaselineSpec {
        bucket_ms: s.bucket_ms,
        history: s.history,
    }
    .sanitized()
}

fn wit_stats(s: aer_wire::baseline::BaselineStats) -> BaselineStats {
    BaselineStats {
        buckets: s.buckets,
        mean: s.mean,
        stddev: s.stddev,
        p50: s.p50,
        p90: s.p90,
        p99: s.p99,
        max: s.max,
        current: s.current,
    }
}

/// What a baseline first used in a call costs that call beyond its stored bytes.
const CACHED_BASELINE_BYTES: usize = 64;
/// What one observation may add to a cached baseline (a bucket).
const BUCKET_BYTES: usize = 16;
/// What one instance keeps of its baselines between calls, at most (keys, stored bytes,
/// decoded buckets and bookkeeping).
pub const KEPT_BASELINE_BYTES: usize = 1 << 20;
/// Bookkeeping counted per kept baseline besides its key, bytes and buckets.
const KEPT_ENTRY_BYTES: usize = 96;

/// The baselines an instance has decoded, by the plugin's key, each beside the stored
/// bytes it was decoded from or encoded to. The store stays the truth: the first use of
/// a key in a call reads the store, and the kept data (with its remembered statistics)
/// is used only if the store holds exactly those bytes; otherwise (another instance
/// wrote, a call's writes were never committed) the stored bytes are decoded afresh.
/// Between calls at most [`KEPT_BASELINE_BYTES`]; past it, the set starts afresh at the
/// end of a call (within a call, what it loads is charged to its read budget).
#[derive(Debug, Default)]
pub struct Baselines {
    entries: HashMap<String, Entry>,
    /// The entries' weights as of the end of the last call.
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    data: BaselineData,
    /// The stored bytes `data` came from or was encoded to (none: absent).
    stored: Option<Vec<u8>>,
    /// The call that last checked it against the store.
    checked_in: CallNumber,
    /// Observed since it was last written back.
    changed: bool,
    /// Its weight as counted in [`Baselines::bytes`].
    weight: usize,
}

impl Entry {
    fn weight(&self, key: &str) -> usize {
        key.len()
            + self.stored.as_ref().map_or(0, Vec::len)
            + self.data.heap_bytes()
            + KEPT_ENTRY_BYTES
    }
}

impl Baselines {
    /// Whether `key` was checked against the store in call `call`.
    fn checked(&self, key: &str, call: CallNumber) -> bool {
        self.entries.get(key).is_some_and(|e| e.checked_in == call)
    }

    /// Take `stored`, the store's bytes for `key`, as of call `call`: the kept data when
    /// it came from those very bytes and holds nothing unwritten, else decoded now
    /// (empty when absent or unreadable).
    fn check(&mut self, key: &str, stored: Option<Vec<u8>>, call: CallNumber) -> &mut Entry {
        let fresh = |stored: Option<Vec<u8>>| Entry {
            data: stored
                .as_deref()
                .and_then(BaselineData::decode)
                .unwrap_or_default(),
            stored,
            checked_in: call,
            changed: false,
            weight: 0,
        };
        let entry = match self.entries.entry(key.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let e = o.into_mut();
                if e.changed || e.stored != stored {
                    let weight = e.weight;
                    *e = fresh(stored);
                    e.weight = weight;
                }
                e
            }
            std::collections::hash_map::Entry::Vacant(v) => v.insert(fresh(stored)),
        };
        entry.checked_in = call;
        entry
    }

    /// Bytes kept between calls.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl HostState {
    /// The baseline of `key`, checked against the store on its first use in this call.
    fn baseline(&mut self, key: &str) -> wasmtime::Result<Result<&mut Entry, StateError>> {
        let call = self.call.number;
        if !self.baselines.checked(key, call) {
            let state_key = baseline_state_key(key);
            if let Err(e) = self.check_key(&state_key) {
                return Ok(Err(e));
            }
            // The entry's own memory counts against the read budget too.
            self.charge_read(CACHED_BASELINE_BYTES)?;
            let stored = self.read(&state_key)?;
            self.call.baselines.push(key.to_owned());
            return Ok(Ok(self.baselines.check(key, stored, call)));
        }
        Ok(Ok(self
            .baselines
            .entries
            .get_mut(key)
            .expect("checked in this call")))
    }

    /// Write this call's changed baselines into its write set (at the end of a call),
    /// and keep what fits for the next.
    pub(crate) fn flush_baselines(&mut self) {
        let Baselines { entries, bytes } = &mut self.baselines;
        for key in std::mem::take(&mut self.call.baselines) {
            let Some(e) = entries.get_mut(&key) else {
                continue;
            };
            if e.changed {
                let encoded = e.data.encode();
                self.call
                    .writes
                    .put(baseline_state_key(&key), Some(encoded.clone()));
                e.stored = Some(encoded);
                e.changed = false;
            }
            let weight = e.weight(&key);
            *bytes = *bytes - e.weight + weight;
            e.weight = weight;
        }
        if *bytes > KEPT_BASELINE_BYTES {
            entries.clear();
            *bytes = 0;
        }
    }
}

impl Host for HostState {
    fn observe(
        &mut self,
        key: String,
        s: WitSpec,
        time_ms: i64,
        value: f64,
    ) -> wasmtime::Result<Result<BaselineStats, StateError>> {
        if let Err(e) = self.charge(1) {
            return Ok(Err(e));
        }
        self.charge_read(BUCKET_BYTES)?;
        let spec = spec(s);
        let value = if value.is_finite() { value } else { 0.0 };
        Ok(self.baseline(&key)?.map(|e| {
            e.data.observe(spec, time_ms, value);
            e.changed = true;
            wit_stats(e.data.stats(spec, time_ms))
        }))
    }

    fn query(
        &mut self,
        key: String,
        s: WitSpec,
        time_ms: i64,
    ) -> wasmtime::Result<Result<BaselineStats, StateError>> {
        if let Err(e) = self.charge(1) {
            return Ok(Err(e));
        }
        let spec = spec(s);
        Ok(self
            .baseline(&key)?
            .map(|e| wit_stats(e.data.stats(spec, time_ms))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::host_api::{DryRunActions, PluginId};
    use crate::store::{MemoryStore, Scope, StateStore};

    const HOUR: i64 = 3_600_000;
    const SPEC: WitSpec = WitSpec {
        bucket_ms: HOUR,
        history: 48,
    };

    fn instance(store: &Arc<MemoryStore>) -> HostState {
        HostState::new(
            PluginId {
                tenant: "t".into(),
                plugin: "p".into(),
                version: "1".into(),
            },
            Arc::new(crate::limits::Limits::default()),
            store.clone(),
            Arc::new(DryRunActions::default()),
            Arc::new(crate::geo::Geo::none()),
            [0; 32],
        )
    }

    /// One call observing `key` once an hour at each of `hours`, ending as a detector
    /// call does; its writes are committed only if `commit`. The last statistics.
    fn call(
        state: &mut HostState,
        store: &MemoryStore,
        key: &str,
        hours: &[i64],
        commit: bool,
    ) -> String {
        state.call = Default::default();
        let mut last = None;
        for h in hours {
            last = Some(
                state
                    .observe(key.into(), SPEC, h * HOUR, 1.0)
                    .unwrap()
                    .unwrap(),
            );
        }
        state.flush_baselines();
        let call = std::mem::take(&mut state.call);
        if commit {
            store.commit(&Scope::new("t", "p"), &call.writes).unwrap();
        }
        format!("{:?}", last.unwrap())
    }

    /// What the statistics are after the committed observations alone.
    fn expected(hours: &[i64], at: i64) -> String {
        let mut d = BaselineData::default();
        for h in hours {
            d.observe(spec(SPEC), h * HOUR, 1.0);
        }
        format!("{:?}", wit_stats(d.stats(spec(SPEC), at * HOUR)))
    }

    #[test]
    fn a_kept_baseline_is_used_only_while_the_store_holds_its_bytes() {
        let store = Arc::new(MemoryStore::default());
        let (mut a, mut b) = (instance(&store), instance(&store));
        call(&mut a, &store, "u", &[1, 2, 3], true);
        assert!(a.baselines.bytes() > 0, "the call's baseline is kept");
        // Another instance adds to the same key: `a`'s kept copy is stale now.
        call(&mut b, &store, "u", &[4, 4, 5], true);
        let got = call(&mut a, &store, "u", &[6], true);
        assert_eq!(got, expected(&[1, 2, 3, 4, 4, 5, 6], 6));
        // A call whose writes are never committed (a failed commit, a dropped batch):
        // the next call sees only what the store holds.
        call(&mut a, &store, "u", &[7, 7, 7], false);
        let got = call(&mut a, &store, "u", &[8], true);
        assert_eq!(got, expected(&[1, 2, 3, 4, 4, 5, 6, 8], 8));
        // A call abandoned before its end (a trap drops the instance; a driver that
        // kept it would start the next call afresh): its observations are not kept.
        a.call = Default::default();
        a.observe("u".into(), SPEC, 8 * HOUR, 5.0).unwrap().unwrap();
        let got = call(&mut a, &store, "u", &[8], true);
        assert_eq!(got, expected(&[1, 2, 3, 4, 4, 5, 6, 8, 8], 8));
        // The state removed under it: the baseline starts empty.
        let mut removal = crate::store::WriteSet::default();
        removal.put(baseline_state_key("u"), None);
        store.commit(&Scope::new("t", "p"), &removal).unwrap();
        let got = call(&mut a, &store, "u", &[9], true);
        assert_eq!(got, expected(&[9], 9));
    }

    #[test]
    fn kept_baselines_stay_within_their_bound() {
        let store = Arc::new(MemoryStore::default());
        let mut a = instance(&store);
        let hours: Vec<i64> = (0..40).collect();
        let mut most = 0;
        for round in 0..400 {
            let keys: Vec<String> = (0..10).map(|k| format!("user-{round}-{k}")).collect();
            state_call_many(&mut a, &store, &keys, &hours);
            most = most.max(a.baselines.bytes());
            let counted: usize = a.baselines.entries.iter().map(|(k, v)| v.weight(k)).sum();
            assert_eq!(counted, a.baselines.bytes(), "the count is exact");
        }
        assert!(most <= KEPT_BASELINE_BYTES, "{most} bytes kept");
        assert!(
            most > KEPT_BASELINE_BYTES / 2,
            "the bound is reached: {most}"
        );
    }

    fn state_call_many(state: &mut HostState, store: &MemoryStore, keys: &[String], hours: &[i64]) {
        state.call = Default::default();
        for key in keys {
            for h in hours {
                state
                    .observe(key.clone(), SPEC, h * HOUR, 1.0)
                    .unwrap()
                    .unwrap();
            }
        }
        state.flush_baselines();
        let call = std::mem::take(&mut state.call);
        store.commit(&Scope::new("t", "p"), &call.writes).unwrap();
    }
}
