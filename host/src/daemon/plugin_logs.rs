//! The plugins' recent log lines, for the console: the last [`LINES`] of each plugin,
//! each cut to [`LINE_BYTES`], all plugins' lines within [`BYTES`] (past it, the lines
//! of plugins not heard from for longest go first). Held in memory only: a restart
//! starts them afresh (every line also goes to the daemon's own log).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::host_api::log::LogRecord;

/// Lines kept per plugin.
pub const LINES: usize = 100;
/// Longest line kept (bytes).
pub const LINE_BYTES: usize = 1_024;
/// Bytes of lines kept for every plugin together.
pub const BYTES: u64 = 16 << 20;

/// One kept line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When the host took it (ms since the epoch).
    pub time_ms: i64,
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message (control characters already escaped).
    pub message: String,
}

type Key = (String, String);
type Ring = Arc<VecDeque<Line>>;

#[derive(Clone)]
struct RingWeight;

impl quick_cache::Weighter<Key, Ring> for RingWeight {
    fn weight(&self, key: &Key, ring: &Ring) -> u64 {
        let lines: usize = ring.iter().map(|l| l.message.len() + 48).sum();
        (key.0.len() + key.1.len() + lines) as u64
    }
}

/// The recent lines of every plugin.
pub struct PluginLogs {
    rings: quick_cache::sync::Cache<Key, Ring, RingWeight>,
}

impl Default for PluginLogs {
    fn default() -> Self {
        PluginLogs {
            rings: quick_cache::sync::Cache::with_weighter(4_096, BYTES, RingWeight),
        }
    }
}

impl PluginLogs {
    /// Keep what `plugin` of `tenant` logged in one call (nothing to do, the common
    /// case, when it logged nothing).
    pub fn keep(&self, tenant: &str, plugin: &str, logs: &[LogRecord]) {
        if logs.is_empty() {
            return;
        }
        let time_ms = super::now_ms();
        let key = (tenant.to_owned(), plugin.to_owned());
        let mut ring: VecDeque<Line> = self
            .rings
            .get(&key)
            .map(|r| (*r).clone())
            .unwrap_or_default();
        for l in logs.iter().skip(logs.len().saturating_sub(LINES)) {
            ring.push_back(Line {
                time_ms,
                level: l.level,
                message: crate::host_api::log::truncate(l.message.clone(), LINE_BYTES),
            });
        }
        while ring.len() > LINES {
            ring.pop_front();
        }
        self.rings.insert(key, Arc::new(ring));
    }

    /// `plugin`'s kept lines, oldest first.
    pub fn recent(&self, tenant: &str, plugin: &str) -> Vec<Line> {
        self.rings
            .get(&(tenant.to_owned(), plugin.to_owned()))
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forget `plugin`'s lines (its deletion).
    pub fn forget(&self, tenant: &str, plugin: &str) {
        self.rings.remove(&(tenant.to_owned(), plugin.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, len: usize) -> Vec<LogRecord> {
        (0..n)
            .map(|i| LogRecord {
                level: "info",
                message: format!("{i:06}{}", "x".repeat(len)),
            })
            .collect()
    }

    #[test]
    fn a_plugin_keeps_its_last_lines_each_cut_and_all_within_the_budget() {
        let logs = PluginLogs::default();
        logs.keep("acme", "p", &records(70, 0));
        logs.keep("acme", "p", &records(70, 5_000));
        let kept = logs.recent("acme", "p");
        assert_eq!(kept.len(), LINES);
        assert_eq!(kept[0].message, "000040", "the oldest 40 went");
        assert!(kept.last().unwrap().message.starts_with("000069x"));
        assert!(
            kept.iter()
                .all(|l| l.message.len() <= LINE_BYTES + '…'.len_utf8())
        );
        assert!(logs.recent("acme", "q").is_empty() && logs.recent("globex", "p").is_empty());
        // Many plugins' full rings stay within the budget.
        for i in 0..400 {
            logs.keep("acme", &format!("p{i}"), &records(LINES, 2_000));
        }
        assert!(logs.rings.weight() <= BYTES, "{}", logs.rings.weight());
        logs.forget("acme", "p");
        assert!(logs.recent("acme", "p").is_empty());
    }
}
