//! Panics in the pipeline are contained, never fatal. A panic in one tenant's stage
//! (a bug the host's checks missed, whatever the input) is caught, faults that tenant's
//! stage (logged, counted in `aer_stage_faults_total`, retried after a backoff that
//! grows with repeated faults) and leaves every other tenant running. A panic outside
//! any tenant's stage restarts the pipeline thread; while a thread is down, `/readyz`
//! says so.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The fault-memory part name of a tenant's whole stage (plugin names are never empty
/// and never start with `#`).
pub(crate) const STAGE: &str = "#stage";

/// Longest wait before a pipeline thread that panicked is started again.
const MAX_RESTART_WAIT: Duration = Duration::from_secs(5);

/// Whether every pipeline thread is running.
#[derive(Debug, Default)]
pub struct Health {
    dead: AtomicUsize,
}

impl Health {
    /// Whether no pipeline thread is down.
    pub fn ready(&self) -> bool {
        self.dead.load(Ordering::Acquire) == 0
    }

    /// Pipeline threads down now.
    pub fn dead_threads(&self) -> usize {
        self.dead.load(Ordering::Acquire)
    }
}

pub(crate) use crate::panic::catch;

/// Run the pipeline thread `name`'s loop `body` until it returns, starting it again
/// (after a growing wait, up to [`MAX_RESTART_WAIT`], or until `stop`) whenever it
/// panics; `health` counts the thread as down meanwhile.
pub(crate) fn run_thread(
    name: &str,
    health: &Health,
    metrics: &super::metrics::Metrics,
    stop: &AtomicBool,
    mut body: impl FnMut(),
) {
    let mut wait = Duration::from_millis(100);
    loop {
        match catch(&mut body) {
            Ok(()) => return,
            Err(message) => {
                health.dead.fetch_add(1, Ordering::AcqRel);
                metrics.pipeline_restart();
                tracing::error!(
                    thread = name,
                    "pipeline thread panicked: {message}; restarting it in {wait:?}"
                );
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                health.dead.fetch_sub(1, Ordering::AcqRel);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                wait = (wait * 2).min(MAX_RESTART_WAIT);
            }
        }
    }
}

/// Start `n` supervised threads `{prefix}-0`, `{prefix}-1`, ... of `daemon`, each running
/// `body` under [`run_thread`] until `stop`; a thread that cannot be started is logged.
pub(crate) fn spawn_threads(
    daemon: &std::sync::Arc<super::Daemon>,
    stop: &std::sync::Arc<AtomicBool>,
    prefix: &str,
    n: usize,
    body: fn(&super::Daemon, &AtomicBool),
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n.max(1))
        .filter_map(|i| {
            let (daemon, stop) = (daemon.clone(), stop.clone());
            let name = format!("{prefix}-{i}");
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    run_thread(&name, &daemon.health, &daemon.metrics, &stop, || {
                        body(&daemon, &stop)
                    })
                })
                .map_err(|e| tracing::error!("cannot start thread {prefix}-{i}: {e}"))
                .ok()
        })
        .collect()
}
