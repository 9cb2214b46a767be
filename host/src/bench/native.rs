//! The reference the Wasm detector is measured against: the same detector crate
//! compiled natively, calling the host's own services (state with its quotas and write
//! set, baselines, logs) directly instead of through the component boundary, and
//! committing each batch as a Wasm instance's call is committed. The difference between
//! the two is the boundary and the code generation, nothing else.

use std::cell::RefCell;
use std::sync::Arc;

use aer_sdk::__private::{Backend, BaselineSpec, detector};
use aer_sdk::{BaselineStats, Detector, Level};

use crate::bindings::host::aer::plugin::baseline::{
    BaselineSpec as WitSpec, BaselineStats as WitStats, Host as BaselineHost,
};
use crate::bindings::host::aer::plugin::log::{Host as LogHost, Level as WitLevel};
use crate::bindings::host::aer::plugin::state::{Host as StateHost, StateError, Write};
use crate::host_api::{DryRunActions, HostState, PluginId};
use crate::store::{Scope, StateStore};

/// A natively compiled detector on the host's services.
pub struct NativeDetector<D: Detector> {
    detector: D,
    host: NativeHost,
    store: Arc<dyn StateStore>,
    scope: Scope,
}

impl<D: Detector> NativeDetector<D> {
    /// A detector with default configuration, its state in `store`.
    pub fn new(tenant: &str, plugin: &str, store: Arc<dyn StateStore>) -> Self {
        let id = PluginId {
            tenant: tenant.into(),
            plugin: plugin.into(),
            version: "native".into(),
        };
        let state = HostState::new(
            id,
            Arc::new(crate::limits::Limits::default()),
            store.clone(),
            Arc::new(DryRunActions::default()),
            Arc::new(crate::geo::Geo::none()),
            [0; 32],
        );
        NativeDetector {
            detector: D::default(),
            host: NativeHost(RefCell::new(state)),
            store,
            scope: Scope::new(tenant, plugin),
        }
    }

    /// Run one packed batch and commit its state writes; the number of findings.
    pub fn on_events(&mut self, batch: &[u8]) -> anyhow::Result<usize> {
        self.host.0.borrow_mut().call = Default::default();
        let findings = detector::run_batch(&mut self.detector, &self.host, batch)
            .map_err(|e| anyhow::anyhow!("native detector: {e}"))?
            .len();
        let mut state = self.host.0.borrow_mut();
        state.flush_baselines();
        let call = std::mem::take(&mut state.call);
        if !call.writes.is_empty() {
            self.store.commit(&self.scope, &call.writes)?;
        }
        Ok(findings)
    }
}

/// [`Backend`] over a [`HostState`], as the generated Wasm glue calls it.
struct NativeHost(RefCell<HostState>);

fn wit_spec(spec: BaselineSpec) -> WitSpec {
    WitSpec {
        bucket_ms: spec.bucket_ms,
        history: spec.history,
    }
}

/// A host service's answer as the SDK takes it: a refusal or a host error as text.
fn answer<T>(r: wasmtime::Result<Result<T, StateError>>) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(e) => Err(format!("{e:#}")),
    }
}

fn stats(s: WitStats) -> BaselineStats {
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

impl Backend for NativeHost {
    fn state_get(&self, key: &str) -> Option<Vec<u8>> {
        StateHost::get(&mut *self.0.borrow_mut(), key.to_owned())
            .ok()
            .flatten()
    }

    fn state_apply(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<(), String> {
        let writes = writes
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => Write::Set((k, v)),
                None => Write::Delete(k),
            })
            .collect();
        answer(StateHost::apply(&mut *self.0.borrow_mut(), writes))
    }

    fn state_scan(&self, prefix: &str, limit: u32) -> Vec<(String, Vec<u8>)> {
        StateHost::scan(&mut *self.0.borrow_mut(), prefix.to_owned(), limit).unwrap_or_default()
    }

    fn baseline_observe(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
        value: f64,
    ) -> Result<BaselineStats, String> {
        let mut state = self.0.borrow_mut();
        let spec = wit_spec(spec);
        answer(BaselineHost::observe(
            &mut *state,
            key.to_owned(),
            spec,
            time_ms,
            value,
        ))
        .map(stats)
    }

    fn baseline_query(
        &self,
        key: &str,
        spec: BaselineSpec,
        time_ms: i64,
    ) -> Result<BaselineStats, String> {
        let mut state = self.0.borrow_mut();
        answer(BaselineHost::query(
            &mut *state,
            key.to_owned(),
            wit_spec(spec),
            time_ms,
        ))
        .map(stats)
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => WitLevel::Debug,
            Level::Info => WitLevel::Info,
            Level::Warn => WitLevel::Warn,
            Level::Error => WitLevel::Error,
        };
        let _ = LogHost::write(&mut *self.0.borrow_mut(), level, message.to_owned());
    }
}
