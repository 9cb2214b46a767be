//! Instances: how long starting one takes, and what an idle one keeps resident.

use std::sync::Arc;
use std::time::Duration;

use aer_wire::BatchWriter;

use super::{Figure, spec};
use crate::Event;
use crate::engine::{AerEngine, EngineConfig};
use crate::plugin::DetectorInstance;
use crate::plugin::instance::time_instantiations;
use crate::store::{MemoryStore, StateStore};

/// Instances kept idle at once for the memory figure (100 tenants x 4 plugins).
pub const IDLE_INSTANCES: usize = 400;

/// This process's resident memory in bytes (`VmRSS`), if the system says.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The `p`-quantile of `sorted`.
pub fn quantile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * p).round() as usize).copied()
}

/// Instantiation time (bare, and ready: configured and described) and the resident
/// memory of idle instances of `component`, each having run one batch of `events`.
pub fn measure(
    component: &[u8],
    events: &[Event],
    rounds: usize,
    push: &mut dyn FnMut(Figure),
) -> anyhow::Result<()> {
    let engine = AerEngine::new(EngineConfig {
        max_instances: (IDLE_INSTANCES + 16) as u32,
        ..EngineConfig::default()
    })?;
    let plugin = crate::plugin::Loader::new(engine.clone())
        .load(component)
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    let memory = || -> Arc<dyn StateStore> { Arc::new(MemoryStore::default()) };

    // Bare instantiation: a fresh store and the component instantiated in it, the
    // store dropped before the next (as a worker does when it replaces an instance).
    let mut bare: Vec<Duration> = Vec::new();
    for _ in 0..rounds.max(1) {
        bare.extend(time_instantiations(&engine, &plugin, 2_000).map_err(anyhow::Error::from)?);
    }
    bare.sort();
    // Ready: instantiated, `configure` and `info` called (what a worker waits for).
    let mut ready: Vec<Duration> = Vec::new();
    for _ in 0..rounds.max(1) * 500 {
        let started = std::time::Instant::now();
        let instance = DetectorInstance::new(&engine, &plugin, spec(memory()))?;
        ready.push(started.elapsed());
        drop(instance);
    }
    ready.sort();
    let us = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
    push(Figure {
        name: format!(
            "instantiation p99, store + instantiate (us; p50 {:.1}, {} samples)",
            us(quantile(&bare, 0.5)),
            bare.len()
        ),
        value: format!("{:.1}", us(quantile(&bare, 0.99))),
        goal: "<= 10".into(),
        pass: Some(us(quantile(&bare, 0.99)) <= 10.0),
    });
    push(Figure::info(
        format!(
            "instance ready p99, instantiate + configure + info (us; p50 {:.1})",
            us(quantile(&ready, 0.5))
        ),
        format!("{:.1}", us(quantile(&ready, 0.99))),
    ));

    // Idle instances: each ran one batch and now waits.
    let mut w = BatchWriter::new();
    for e in events.iter().take(16) {
        w.push(e);
    }
    let batch = w.finish();
    let before = resident_bytes();
    let mut idle = Vec::with_capacity(IDLE_INSTANCES);
    for _ in 0..IDLE_INSTANCES {
        let mut d = DetectorInstance::new(&engine, &plugin, spec(memory()))?;
        let out = d.on_events(&batch)?;
        d.commit(&out.writes)?;
        idle.push(d);
    }
    let after = resident_bytes();
    let per = match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / IDLE_INSTANCES as f64 / 1024.0,
        _ => f64::NAN,
    };
    push(Figure {
        name: format!(
            "resident memory per idle instance ({IDLE_INSTANCES} instances, each after one batch; KiB)"
        ),
        value: format!("{per:.0}"),
        goal: "<= 256".into(),
        pass: Some(per <= 256.0),
    });
    drop(idle);
    Ok(())
}
