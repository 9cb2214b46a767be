//! `aer:plugin/baseline`: rolling per-key statistics kept in the plugin's state.
//!
//! Within a call, baselines are decoded once and kept in the call's cache; the host
//! encodes the changed ones into the call's write set when the call ends, so they are
//! committed (or dropped) together with the rest of the call's state. Between calls an
//! instance keeps what it decoded ([`KeptBaselines`]), beside the bytes it came from,
//! and takes it again only while the store holds those very bytes.

use std::collections::HashMap;

use aer_wire::baseline::{BaselineData, BaselineSpec, baseline_state_key};

use crate::bindings::host::aer::plugin::baseline::{BaselineSpec as WitSpec, BaselineStats, Host};
use crate::bindings::host::aer::plugin::state::StateError;
use crate::host_api::HostState;

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

/// What a baseline cached for a call costs beyond its stored bytes (the map entry).
const CACHED_BASELINE_BYTES: usize = 64;
/// What one observation may add to a cached baseline (a bucket).
const BUCKET_BYTES: usize = 16;
/// What one instance keeps of its baselines between calls, at most (keys, stored bytes,
/// decoded buckets and bookkeeping).
pub const KEPT_BASELINE_BYTES: usize = 1 << 20;
/// Bookkeeping counted per kept baseline besides its key, bytes and buckets.
const KEPT_ENTRY_BYTES: usize = 96;

/// A baseline in use in a call.
#[derive(Debug)]
pub struct CallBaseline {
    data: BaselineData,
    /// Observed in this call (written back when the call ends).
    changed: bool,
    /// The stored bytes it was read from (none when absent).
    stored: Option<Vec<u8>>,
}

/// Baselines an instance decoded in earlier calls, each beside the bytes it was decoded
/// from or encoded to: a later call whose store holds the same bytes takes the decoded
/// data (and its remembered statistics) instead of decoding and summarising it again.
/// The store stays the truth: when its bytes differ (another instance wrote, the call's
/// writes were never committed) the stored bytes are decoded afresh. At most
/// [`KEPT_BASELINE_BYTES`]; reaching it starts the set afresh.
#[derive(Debug, Default)]
pub struct KeptBaselines {
    entries: HashMap<String, Kept>,
    bytes: usize,
}

#[derive(Debug)]
struct Kept {
    stored: Vec<u8>,
    data: BaselineData,
}

impl Kept {
    fn weight(&self, key: &str) -> usize {
        key.len() + self.stored.len() + self.data.heap_bytes() + KEPT_ENTRY_BYTES
    }
}

impl KeptBaselines {
    /// The baseline stored under `key` as `stored` bytes: the kept data when it came
    /// from those very bytes, else decoded now (empty when absent or unreadable).
    fn take(&mut self, key: &str, stored: Option<&[u8]>) -> BaselineData {
        let kept = self
            .entries
            .remove(key)
            .inspect(|k| self.bytes -= k.weight(key));
        match (kept, stored) {
            (Some(k), Some(stored)) if k.stored == stored => k.data,
            (_, stored) => stored.and_then(BaselineData::decode).unwrap_or_default(),
        }
    }

    /// Keep `data`, which is what `stored` decodes to, for a later call.
    fn keep(&mut self, key: String, stored: Vec<u8>, data: BaselineData) {
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.weight(&key);
        }
        let kept = Kept { stored, data };
        let weight = kept.weight(&key);
        if weight > KEPT_BASELINE_BYTES {
            return;
        }
        if self.bytes + weight > KEPT_BASELINE_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += weight;
        self.entries.insert(key, kept);
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl HostState {
    /// The cached baseline of `key` and whether it changed in this call, loading it
    /// from state on first use in this call.
    fn baseline(&mut self, key: &str) -> wasmtime::Result<Result<&mut CallBaseline, StateError>> {
        let state_key = baseline_state_key(key);
        if let Err(e) = self.check_key(&state_key) {
            return Ok(Err(e));
        }
        if !self.call.baselines.contains_key(&state_key) {
            // The cache entry's own memory counts against the read budget too.
            self.charge_read(CACHED_BASELINE_BYTES)?;
            let stored = self.read(&state_key)?;
            let data = self.kept_baselines.take(&state_key, stored.as_deref());
            self.call.baselines.insert(
                state_key.clone(),
                CallBaseline {
                    data,
                    changed: false,
                    stored,
                },
            );
        }
        Ok(Ok(self
            .call
            .baselines
            .get_mut(&state_key)
            .expect("inserted above")))
    }

    /// Move changed baselines into the call's write set (at the end of a call), and
    /// keep every baseline of the call for the next.
    pub(crate) fn flush_baselines(&mut self) {
        for (key, b) in std::mem::take(&mut self.call.baselines) {
            let stored = if b.changed {
                let bytes = b.data.encode();
                self.call.writes.put(key.clone(), Some(bytes.clone()));
                bytes
            } else {
                match b.stored {
                    Some(stored) => stored,
                    None => continue,
                }
            };
            self.kept_baselines.keep(key, stored, b.data);
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
        Ok(self.baseline(&key)?.map(|b| {
            b.data.observe(spec, time_ms, value);
            b.changed = true;
            wit_stats(b.data.stats(spec, time_ms))
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
            .map(|b| wit_stats(b.data.stats(spec, time_ms))))
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
        assert!(a.kept_baselines.bytes() > 0, "the call's baseline is kept");
        // Another instance adds to the same key: `a`'s kept copy is stale now.
        call(&mut b, &store, "u", &[4, 4, 5], true);
        let got = call(&mut a, &store, "u", &[6], true);
        assert_eq!(got, expected(&[1, 2, 3, 4, 4, 5, 6], 6));
        // A call whose writes are never committed (a failed commit, a dropped batch):
        // the next call sees only what the store holds.
        call(&mut a, &store, "u", &[7, 7, 7], false);
        let got = call(&mut a, &store, "u", &[8], true);
        assert_eq!(got, expected(&[1, 2, 3, 4, 4, 5, 6, 8], 8));
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
            most = most.max(a.kept_baselines.bytes());
            let counted: usize = a
                .kept_baselines
                .entries
                .iter()
                .map(|(k, v)| v.weight(k))
                .sum();
            assert_eq!(counted, a.kept_baselines.bytes(), "the count is exact");
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
