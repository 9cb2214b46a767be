//! Excessive downloads: a user who downloads or exports more than `threshold` items
//! within a sliding event-time window. See README.md for the configuration.

use aer_sdk::prelude::*;
use serde::Deserialize;

const DEFAULT_ACTIONS: [&str; 4] = [
    "file_downloaded",
    "manual_export_started",
    "scheduled_export_started",
    "channels_export_started",
];

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Items within the window that make a finding.
    pub threshold: u64,
    /// Width of the sliding window in minutes.
    pub window_minutes: i64,
    /// Actions that count.
    pub actions: Vec<String>,
    /// How many downloads one export action counts as.
    pub export_weight: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 50,
            window_minutes: 10,
            actions: DEFAULT_ACTIONS.iter().map(|s| s.to_string()).collect(),
            export_weight: 10,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct ExcessiveDownloads {
    config: Config,
}

const SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"properties":{
"threshold":{"type":"integer","minimum":1},
"window_minutes":{"type":"integer","minimum":1},
"actions":{"type":"array","items":{"type":"string"}},
"export_weight":{"type":"integer","minimum":1}}}"#;

impl Detector for ExcessiveDownloads {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema(SCHEMA)
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.threshold == 0 {
            return Err("invalid configuration: threshold must be at least 1".into());
        }
        if c.window_minutes < 1 {
            return Err("invalid configuration: window_minutes must be at least 1".into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        if !self.config.actions.iter().any(|a| a == event.action) || event.actor.id.is_empty() {
            return Ok(());
        }
        let weight = if event.action == "file_downloaded" {
            1
        } else {
            self.config.export_weight
        };
        let window = Window::minutes(self.config.window_minutes);
        let user = event.actor.id;
        let count = window.add(ctx.state(), &format!("w/{user}"), event.time_ms, weight)?;
        if count < self.config.threshold {
            return Ok(());
        }
        // One finding per window: remember when we last reported this user.
        let last_key = format!("r/{user}");
        let last: Option<i64> = ctx.state().get(&last_key)?;
        if last.is_some_and(|t| event.time_ms - t < window.width_ms()) {
            return Ok(());
        }
        ctx.state().set(&last_key, &event.time_ms)?;
        let excess = count as f32 / self.config.threshold as f32;
        let severity = if excess >= 3.0 {
            Severity::High
        } else {
            Severity::Medium
        };
        ctx.emit(
            Finding::new("excessive-downloads", user)
                .score((0.5 + 0.25 * excess).min(1.0))
                .severity(severity)
                .summary(format!(
                    "{user} downloaded {count} items in {} min (threshold {})",
                    self.config.window_minutes, self.config.threshold
                ))
                .evidence(event.id)
                .attr("count", count)
                .attr("threshold", self.config.threshold)
                .attr("window_minutes", self.config.window_minutes)
                .attr("ip", event.context.ip),
        );
        Ok(())
    }
}

aer_sdk::export_detector!(ExcessiveDownloads);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MIN: i64 = 60_000;

    fn downloads(user: &str, n: i64, start: i64, step: i64) -> Vec<OwnedEvent> {
        (0..n)
            .map(|i| {
                event("file_downloaded")
                    .id(format!("{user}-{i}"))
                    .actor(user)
                    .at(start + i * step)
                    .build()
            })
            .collect()
    }

    fn detector(config: &str) -> TestDetector<ExcessiveDownloads> {
        let mut t = TestDetector::new();
        t.configure(config).expect("valid config");
        t
    }

    #[test]
    fn burst_over_threshold_gives_one_finding() {
        let mut t = detector(r#"{"threshold": 20, "window_minutes": 10}"#);
        let findings = t.run(&downloads("U1", 30, 0, 1_000)).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.subject, "U1");
        assert_eq!(f.rule, "excessive-downloads");
        assert_eq!(f.evidence, vec!["U1-19".to_string()]);
        assert_eq!(f.time_ms, 19_000);
    }

    #[test]
    fn slow_steady_downloads_stay_quiet() {
        let mut t = detector(r#"{"threshold": 20, "window_minutes": 10}"#);
        // One download a minute for a day: at most 10 in any 10-minute window.
        let findings = t.run_batched(&downloads("U1", 1_440, 0, MIN), 100).unwrap();
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn state_carries_across_batches() {
        let mut t = detector(r#"{"threshold": 20}"#);
        let events = downloads("U1", 25, 0, 1_000);
        let findings = t.run_batched(&events, 3).unwrap();
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn users_are_counted_separately() {
        let mut t = detector(r#"{"threshold": 20}"#);
        let mut events = downloads("U1", 15, 0, 1_000);
        events.extend(downloads("U2", 15, 0, 1_000));
        events.sort_by_key(|e| e.time_ms);
        assert!(t.run(&events).unwrap().is_empty());
    }

    #[test]
    fn exports_weigh_more_than_downloads() {
        let mut t = detector(r#"{"threshold": 20, "export_weight": 10}"#);
        let events: Vec<OwnedEvent> = (0..2)
            .map(|i| {
                event("manual_export_started")
                    .id(format!("x{i}"))
                    .actor("A")
                    .at(i)
                    .build()
            })
            .collect();
        assert_eq!(t.run(&events).unwrap().len(), 1);
    }

    #[test]
    fn reports_again_only_after_a_window() {
        let mut t = detector(r#"{"threshold": 5, "window_minutes": 10}"#);
        let mut events = downloads("U1", 10, 0, 1_000);
        events.extend(
            downloads("U1", 10, 11 * MIN, 1_000)
                .into_iter()
                .map(|mut e| {
                    e.id.push_str("-late");
                    e
                }),
        );
        assert_eq!(t.run(&events).unwrap().len(), 2);
    }

    #[test]
    fn bad_config_names_the_field() {
        let mut t = TestDetector::<ExcessiveDownloads>::new();
        let err = t
            .configure(r#"{"threshold": "many"}"#)
            .err()
            .expect("rejected");
        assert!(err.message().contains("invalid type"), "{err}");
        let err = t.configure(r#"{"treshold": 3}"#).err().expect("rejected");
        assert!(err.message().contains("treshold"), "{err}");
        let err = t.configure(r#"{"threshold": 0}"#).err().expect("rejected");
        assert!(err.message().contains("threshold"), "{err}");
    }
}
