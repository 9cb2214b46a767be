//! Inbox retention: each tenant's events that every enabled and quarantined detector
//! has processed are removed once `ingest.retain_events` newer ones are stored, so a
//! daemon that runs for months keeps a bounded inbox. The newest events stay for
//! deduplication after a restart and for detectors uploaded later, which start at the
//! oldest kept event (a disabled detector whose cursor fell behind does too; a
//! quarantined one holds its events, as it is to resume losing none).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Daemon, DaemonError};

/// How often the retention pass runs.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// Remove what retention allows from every tenant's inbox; events removed.
pub(crate) fn pass(daemon: &Daemon) -> Result<u64, DaemonError> {
    let keep = daemon.config.ingest.retain_events.max(1);
    let mut removed = 0;
    for t in daemon.tenants()? {
        let tenant = t.name.as_str();
        let next = daemon.inbox.next_seq(tenant)?;
        let before = next.saturating_sub(keep).min(daemon.processed_seq(tenant)?);
        if before <= daemon.inbox.first_seq(tenant)? {
            continue;
        }
        let n = daemon.inbox.trim(tenant, before)?;
        if n > 0 {
            daemon.metrics.inbox_trimmed(tenant, n);
            tracing::debug!(%tenant, events = n, before, "inbox trimmed");
        }
        removed += n;
    }
    Ok(removed)
}

/// Run [`pass`] every [`EVERY`] until `stop` is set.
pub(crate) fn run(daemon: &Daemon, stop: &AtomicBool) {
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() < EVERY {
            continue;
        }
        last = Instant::now();
        if let Err(e) = pass(daemon) {
            tracing::error!("inbox retention: {e}");
        }
    }
}
