//! `aer:plugin/baseline`: rolling per-key statistics kept in the plugin's state.
//!
//! Within a call, baselines are decoded once and kept in the call's cache; the host
//! encodes the changed ones into the call's write set when the call ends, so they are
//! committed (or dropped) together with the rest of the call's state.

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

impl HostState {
    /// The cached baseline of `key` and whether it changed in this call, loading it
    /// from state on first use in this call.
    fn baseline(
        &mut self,
        key: &str,
    ) -> wasmtime::Result<Result<&mut (BaselineData, bool), StateError>> {
        let state_key = baseline_state_key(key);
        if let Err(e) = self.check_key(&state_key) {
            return Ok(Err(e));
        }
        let loaded = if self.call.baselines.contains_key(&state_key) {
            None
        } else {
            // The cache entry's own memory counts against the read budget too.
            self.charge_read(CACHED_BASELINE_BYTES)?;
            let stored = self.read(&state_key)?;
            Some(
                stored
                    .and_then(|b| BaselineData::decode(&b))
                    .unwrap_or_default(),
            )
        };
        let cached = self.call.baselines.entry(state_key);
        Ok(Ok(
            cached.or_insert_with(|| (loaded.unwrap_or_default(), false))
        ))
    }

    /// Move changed baselines into the call's write set (at the end of a call).
    pub(crate) fn flush_baselines(&mut self) {
        for (key, (data, dirty)) in std::mem::take(&mut self.call.baselines) {
            if dirty {
                self.call.writes.put(key, Some(data.encode()));
            }
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
        Ok(self.baseline(&key)?.map(|(data, changed)| {
            data.observe(spec, time_ms, value);
            *changed = true;
            wit_stats(data.stats(spec, time_ms))
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
            .map(|(data, _)| wit_stats(data.stats(spec, time_ms))))
    }
}
