//! mass-deletion: a burst of deletions beyond the user's own norm (a wiper, or someone
//! covering tracks). Deletions are weighted by what they destroy: a channel holds more
//! than a file.
//!
//! A finding (high, 0.85; subject the user) when, within `window_minutes`, the user's
//! weighted deletions reach `threshold`, and, once `min_days` of the user's history
//! are known, the day's total also passes `norm_factor` times the user's biggest usual
//! day (and their daily mean plus `k_sigma` deviations): someone who clears out old
//! files every Friday is spared, a wiper is not. One finding per user per window.
//!
//! Config: `{"threshold": 50, "window_minutes": 60, "weights": {"file_deleted": 1, ...},
//! "norm_factor": 1.5, "k_sigma": 4, "min_days": 7, "days": 30}`.

use std::collections::BTreeMap;

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

/// Deletions a finding cites at most (the latest in the window).
const EVIDENCE: usize = 20;

/// What each deletion weighs by default.
const DEFAULT_WEIGHTS: [(&str, u64); 8] = [
    ("file_deleted", 1),
    ("canvas_deleted", 2),
    ("list_deleted", 2),
    ("workflow_deleted", 2),
    ("public_channel_archive", 5),
    ("private_channel_archive", 5),
    ("public_channel_deleted", 10),
    ("private_channel_deleted", 10),
];

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    #[schemars(range(min = 1))]
    threshold: u64,
    #[schemars(range(min = 1))]
    window_minutes: i64,
    weights: BTreeMap<String, u64>,
    #[schemars(range(min = 1))]
    norm_factor: f64,
    #[schemars(range(min = 0))]
    k_sigma: f64,
    #[schemars(range(min = 1))]
    min_days: u32,
    #[schemars(range(min = 1, max = 365))]
    days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 50,
            window_minutes: 60,
            weights: DEFAULT_WEIGHTS
                .iter()
                .map(|(a, w)| ((*a).to_owned(), *w))
                .collect(),
            norm_factor: 1.5,
            k_sigma: 4.0,
            min_days: 7,
            days: 30,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct MassDeletion {
    config: Config,
}

impl Detector for MassDeletion {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.weights.keys().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.threshold == 0 || c.window_minutes < 1 {
            return Err(
                "invalid configuration: threshold and window_minutes must be at least 1".into(),
            );
        }
        if c.weights.is_empty() || c.weights.values().any(|w| *w == 0) {
            return Err("invalid configuration: weights must name actions, each at least 1".into());
        }
        if !c.norm_factor.is_finite()
            || c.norm_factor < 1.0
            || !c.k_sigma.is_finite()
            || c.k_sigma < 0.0
        {
            return Err(
                "invalid configuration: norm_factor must be at least 1 and k_sigma at least 0"
                    .into(),
            );
        }
        if c.min_days == 0 || !(1..=365).contains(&c.days) {
            return Err(
                "invalid configuration: min_days must be at least 1 and days from 1 to 365".into(),
            );
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let Some(&weight) = self.config.weights.get(event.action) else {
            return Ok(());
        };
        let user = event.actor.id;
        if user.is_empty() {
            return Ok(());
        }
        let t = event.time_ms;
        let c = &self.config;
        let window = Window::minutes(c.window_minutes);
        let burst = window.add(ctx.state(), &["w/", user].concat(), t, weight)?;
        let deleted = Evidence::new(EVIDENCE).within_ms(window.width_ms());
        let evidence_key = ["e/", user].concat();
        deleted.push(ctx.state(), &evidence_key, event.id, t)?;
        let daily = Baseline::daily(c.days).observe(
            ctx.state(),
            &["d/", user].concat(),
            t,
            weight as f64,
        )?;
        if burst < c.threshold {
            return Ok(());
        }
        let norm = if daily.buckets >= c.min_days {
            (daily.max * c.norm_factor).max(daily.sigma_threshold(c.k_sigma, 0.0))
        } else {
            0.0
        };
        if daily.current <= norm
            || !Cooldown::new(window.width_ms()).ready(ctx.state(), &["r/", user].concat(), t)?
        {
            return Ok(());
        }
        let cited = deleted.ids(ctx.state(), &evidence_key, t)?;
        ctx.emit(
            Finding::new("mass-deletion", user)
                .score(0.85)
                .severity(Severity::High)
                .summary(format!(
                    "{user} deleted {burst} (weighted) in {} min; {} today, their usual day at most {}",
                    c.window_minutes, daily.current, daily.max
                ))
                .evidence_all(cited)
                .attr("basis", if daily.buckets >= c.min_days { "norm" } else { "threshold" })
                .attr("weighted", burst)
                .attr("today", daily.current)
                .attr("usual_max", daily.max)
                .attr("ip", event.context.ip),
        );
        Ok(())
    }
}

aer_sdk::export_detector!(MassDeletion);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;

    fn delete(i: usize, action: &str, user: &str, t: i64) -> OwnedEvent {
        event(action).id(format!("e{i}")).actor(user).at(t).build()
    }

    #[test]
    fn a_burst_of_deletions_is_flagged_once() {
        let events: Vec<OwnedEvent> = (0..80)
            .map(|i| delete(i, "file_deleted", "U1", i as i64 * 20_000))
            .collect();
        let f = TestDetector::<MassDeletion>::new().run(&events).unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].subject, "U1");
        assert_eq!(f[0].severity, Severity::High);
        // The 50th deletion made it; it cites the latest 20, itself last.
        let cited: Vec<String> = (30..50).map(|i| format!("e{i}")).collect();
        assert_eq!(f[0].evidence, cited);
    }

    #[test]
    fn channels_weigh_more_than_files() {
        let mut events: Vec<OwnedEvent> = (0..4)
            .map(|i| delete(i, "public_channel_deleted", "U1", i as i64 * MIN))
            .collect();
        events.extend((4..14).map(|i| delete(i, "file_deleted", "U1", i as i64 * MIN)));
        assert_eq!(
            TestDetector::<MassDeletion>::new()
                .run(&events)
                .unwrap()
                .len(),
            1,
            "4 channels (40) and 10 files make 50"
        );
    }

    #[test]
    fn a_users_usual_cleanup_day_is_spared_and_a_bigger_one_is_not() {
        // Every day for two weeks, 60 files cleared in the morning.
        let mut events = Vec::new();
        let mut i = 0;
        for day in 0..14 {
            for k in 0..60 {
                events.push(delete(
                    i,
                    "file_deleted",
                    "U1",
                    day * DAY + 9 * 60 * MIN + k * 30_000,
                ));
                i += 1;
            }
        }
        let mut t = TestDetector::<MassDeletion>::new();
        let early = t.run(&events).unwrap();
        // The first days have no norm yet: the threshold alone speaks.
        assert!(early.iter().all(|f| f.time_ms < 7 * DAY), "{early:?}");
        // The usual day again: spared.
        let usual: Vec<OwnedEvent> = (0..60)
            .map(|k| {
                delete(
                    10_000 + k,
                    "file_deleted",
                    "U1",
                    14 * DAY + 9 * 60 * MIN + k as i64 * 30_000,
                )
            })
            .collect();
        assert!(t.run(&usual).unwrap().is_empty());
        // Three times the usual day: flagged.
        let wiper: Vec<OwnedEvent> = (0..180)
            .map(|k| {
                delete(
                    20_000 + k,
                    "file_deleted",
                    "U1",
                    15 * DAY + 9 * 60 * MIN + k as i64 * 10_000,
                )
            })
            .collect();
        assert_eq!(t.run(&wiper).unwrap().len(), 1);
    }

    #[test]
    fn slow_deletions_and_other_actions_are_not() {
        let slow: Vec<OwnedEvent> = (0..80)
            .map(|i| delete(i, "file_deleted", "U1", i as i64 * 5 * MIN))
            .collect();
        assert!(
            TestDetector::<MassDeletion>::new()
                .run(&slow)
                .unwrap()
                .is_empty()
        );
        let other: Vec<OwnedEvent> = (0..80)
            .map(|i| delete(i, "file_downloaded", "U1", i as i64 * 1000))
            .collect();
        assert!(
            TestDetector::<MassDeletion>::new()
                .run(&other)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        let mut t = TestDetector::<MassDeletion>::new();
        assert!(t.configure(r#"{"threshold": 0}"#).is_err());
        assert!(t.configure(r#"{"weights": {"file_deleted": 0}}"#).is_err());
        assert!(t.configure(r#"{"norm_factor": 0.5}"#).is_err());
        assert!(t.configure(r#"{"days": 1000}"#).is_err());
        assert!(t.configure(r#"{"threshold": 20}"#).is_ok());
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::MassDeletion>::new().check_config_schema();
    }
}
