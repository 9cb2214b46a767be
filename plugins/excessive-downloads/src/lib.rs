//! Excessive downloads: a user who downloads or exports more than `threshold` items
//! within a sliding event-time window. See README.md for the configuration.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

const DEFAULT_ACTIONS: [&str; 6] = [
    "file_downloaded",
    "canvas_downloaded",
    "list_downloaded",
    "manual_export_started",
    "scheduled_export_started",
    "channels_export_started",
];

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Items within the window that make a finding.
    #[schemars(range(min = 1))]
    pub threshold: u64,
    /// Width of the sliding window in minutes.
    #[schemars(range(min = 1))]
    pub window_minutes: i64,
    /// Actions that count.
    pub actions: Vec<String>,
    /// How many downloads one export action counts as.
    #[schemars(range(min = 1))]
    pub export_weight: u64,
    /// Also flag an hour far above the user's own hourly norm (`null` turns it off).
    pub baseline: Option<BaselineConfig>,
}

/// "Unusual for this user": the hour's total exceeds the user's hourly mean plus
/// `k_sigma` standard deviations, and at least `floor`, once `min_hours` of history
/// exist. History covers `days` days.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Standard deviations above the mean.
    #[schemars(range(min = 0))]
    pub k_sigma: f64,
    /// Absolute minimum hourly total worth a finding.
    #[schemars(range(min = 0))]
    pub floor: f64,
    /// Hours of history needed before the baseline is trusted.
    #[schemars(range(min = 1))]
    pub min_hours: u32,
    /// Days of history kept.
    #[schemars(range(min = 1))]
    pub days: u32,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            k_sigma: 6.0,
            floor: 30.0,
            min_hours: 24,
            days: 14,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 50,
            window_minutes: 10,
            actions: DEFAULT_ACTIONS.iter().map(|s| s.to_string()).collect(),
            export_weight: 10,
            baseline: Some(BaselineConfig::default()),
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct ExcessiveDownloads {
    config: Config,
}

impl Detector for ExcessiveDownloads {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
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
        let weight = if event.action.ends_with("_downloaded") {
            1
        } else {
            self.config.export_weight
        };
        let user = event.actor.id;
        let window = Window::minutes(self.config.window_minutes);
        let count = window.add(ctx.state(), &["w/", user].concat(), event.time_ms, weight)?;
        if count >= self.config.threshold
            && self.not_reported_within(ctx, user, event.time_ms, window.width_ms())?
        {
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
                    .attr("basis", "threshold")
                    .attr("count", count)
                    .attr("threshold", self.config.threshold)
                    .attr("window_minutes", self.config.window_minutes)
                    .attr("ip", event.context.ip),
            );
            return Ok(());
        }
        let Some(b) = self.config.baseline.clone() else {
            return Ok(());
        };
        let hourly = Baseline::hourly(b.days);
        let stats = hourly.observe(
            ctx.state(),
            &["h/", user].concat(),
            event.time_ms,
            weight as f64,
        )?;
        let limit = stats.sigma_threshold(b.k_sigma, b.floor);
        if stats.buckets >= b.min_hours
            && stats.current > limit
            && self.not_reported_within(ctx, user, event.time_ms, 3_600_000)?
        {
            ctx.emit(
                Finding::new("excessive-downloads", user)
                    .score(0.8)
                    .severity(Severity::Medium)
                    .summary(format!(
                        "{user} downloaded {} items this hour; their norm is {:.1} ± {:.1}",
                        stats.current, stats.mean, stats.stddev
                    ))
                    .evidence(event.id)
                    .attr("basis", "baseline")
                    .attr("count", stats.current)
                    .attr("mean", format!("{:.2}", stats.mean))
                    .attr("stddev", format!("{:.2}", stats.stddev))
                    .attr("limit", format!("{limit:.1}"))
                    .attr("ip", event.context.ip),
            );
        }
        Ok(())
    }
}

impl ExcessiveDownloads {
    /// One finding per user per `span`: true (and remembered) if none was made within it.
    fn not_reported_within(
        &self,
        ctx: &mut Context<'_>,
        user: &str,
        time_ms: i64,
        span: i64,
    ) -> Result<bool> {
        let key = ["r/", user].concat();
        let last: Option<i64> = ctx.state().get(&key)?;
        if last.is_some_and(|t| time_ms - t < span) {
            return Ok(false);
        }
        ctx.state().set(&key, &time_ms)?;
        Ok(true)
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
    fn baseline_flags_an_hour_far_above_the_users_norm_only() {
        let hour = 60 * MIN;
        let config =
            r#"{"threshold": 1000, "baseline": {"k_sigma": 4, "floor": 20, "min_hours": 24}}"#;
        let mut t = detector(config);
        let mut events = Vec::new();
        // Two days: U1 downloads 3 an hour, U2 60 an hour.
        for h in 0..48 {
            events.extend(downloads("U1", 3, h * hour, MIN).into_iter().map(|mut e| {
                e.id = format!("{}-{h}", e.id);
                e
            }));
            events.extend(
                downloads("U2", 60, h * hour, 30_000)
                    .into_iter()
                    .map(|mut e| {
                        e.id = format!("{}-{h}", e.id);
                        e
                    }),
            );
        }
        // Then one hour of 40 each: far above U1's norm, below U2's.
        events.extend(
            downloads("U1", 40, 48 * hour, 60_000)
                .into_iter()
                .map(|mut e| {
                    e.id.push_str("-spike");
                    e
                }),
        );
        events.extend(
            downloads("U2", 40, 48 * hour, 60_000)
                .into_iter()
                .map(|mut e| {
                    e.id.push_str("-spike");
                    e
                }),
        );
        events.sort_by_key(|e| e.time_ms);
        let findings = t.run_batched(&events, 256).unwrap();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "U1");
        assert!(
            findings[0]
                .attributes
                .contains(&("basis".to_string(), "baseline".to_string()))
        );
        // 4 sigma over a mean of 3 with no spread is the floor of 20: the 21st download.
        assert_eq!(findings[0].evidence, vec!["U1-20-spike".to_string()]);
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

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::ExcessiveDownloads>::new().check_config_schema();
    }
}
