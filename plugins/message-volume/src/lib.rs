//! Unusual message volume: an hour in which a user posts far more messages than their
//! own hourly norm (a compromised account spamming or phishing colleagues). The audit
//! log has no per-message action, so this reads generic message events (Slack's Events
//! API `message`, through AER's generic event format). See README.md.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Actions that are one message each.
    pub actions: Vec<String>,
    /// Standard deviations above the user's hourly mean.
    #[schemars(range(min = 0))]
    pub k_sigma: f64,
    /// Messages in one hour below which nothing is flagged, whatever the norm.
    #[schemars(range(min = 1))]
    pub floor: f64,
    /// Days of hourly history behind the norm.
    #[schemars(range(min = 1))]
    pub history_days: u32,
    /// Days the detector watches before judging against norms; meanwhile the bar is
    /// `floor * learning_factor`.
    #[schemars(range(min = 0))]
    pub learning_days: i64,
    /// Multiplier of `floor` while learning.
    #[schemars(range(min = 1))]
    pub learning_factor: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: ["message", "message_posted"].map(String::from).to_vec(),
            k_sigma: 6.0,
            floor: 80.0,
            history_days: 14,
            learning_days: 3,
            learning_factor: 3.0,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct MessageVolume {
    config: Config,
}

impl Detector for MessageVolume {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        let at_least_one = |x: f64| x.is_finite() && x >= 1.0;
        if !at_least_one(c.floor) || c.history_days == 0 || !at_least_one(c.learning_factor) {
            return Err(
                "invalid configuration: floor and learning_factor must be at least 1, history_days at least 1"
                    .into(),
            );
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let c = &self.config;
        let user = event.actor.id;
        if user.is_empty() || !c.actions.iter().any(|a| a == event.action) {
            return Ok(());
        }
        let t = event.time_ms;
        let learned = Learning::days(c.learning_days).done(ctx.state(), t)?;
        let stats = Baseline::hourly(c.history_days).observe(
            ctx.state(),
            &["h/", user].concat(),
            t,
            1.0,
        )?;
        let limit = if learned {
            stats.sigma_threshold(c.k_sigma, c.floor)
        } else {
            c.floor * c.learning_factor
        };
        if stats.current > limit
            && Cooldown::minutes(60).ready(ctx.state(), &["r/", user].concat(), t)?
        {
            let excess = stats.current / limit;
            ctx.emit(
                Finding::new("message-volume", user)
                    .score((0.5 + 0.15 * excess as f32).min(1.0))
                    .severity(if excess >= 2.0 {
                        Severity::High
                    } else {
                        Severity::Medium
                    })
                    .summary(format!(
                        "{user} posted {} messages this hour; their norm is {:.1} ± {:.1} (limit {limit:.0})",
                        stats.current, stats.mean, stats.stddev
                    ))
                    .evidence(event.id)
                    .attr("count", stats.current)
                    .attr("mean", format!("{:.2}", stats.mean))
                    .attr("stddev", format!("{:.2}", stats.stddev))
                    .attr("limit", format!("{limit:.1}"))
                    .attr("learning", !learned),
            );
        }
        Ok(())
    }
}

aer_sdk::export_detector!(MessageVolume);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const HOUR: i64 = 3_600_000;

    /// `per_hour` messages in each of hours 9..17 of `days` days.
    fn workdays(user: &str, days: i64, per_hour: i64) -> Vec<OwnedEvent> {
        let mut out = Vec::new();
        for d in 0..days {
            for h in 9..17 {
                let start = d * 24 * HOUR + h * HOUR;
                for i in 0..per_hour {
                    out.push(
                        event("message")
                            .id(format!("{user}-{d}-{h}-{i}"))
                            .actor(user)
                            .at(start + i * (HOUR / per_hour))
                            .build(),
                    );
                }
            }
        }
        out
    }

    fn burst(user: &str, at: i64, n: i64) -> Vec<OwnedEvent> {
        (0..n)
            .map(|i| {
                event("message")
                    .id(format!("{user}-burst-{i}"))
                    .actor(user)
                    .at(at + i * 5_000)
                    .build()
            })
            .collect()
    }

    fn run(mut events: Vec<OwnedEvent>) -> Vec<Finding> {
        let mut t = TestDetector::<MessageVolume>::new();
        events.sort_by_key(|e| e.time_ms);
        t.run_batched(&events, 256).unwrap()
    }

    #[test]
    fn a_spam_hour_from_a_quiet_user_is_flagged_once() {
        let mut events = workdays("Q", 5, 6);
        events.extend(burst("Q", 5 * 24 * HOUR + 10 * HOUR, 300));
        let findings = run(events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "Q");
        // Floor 80 against a norm of 2 a hour: the 81st message.
        assert_eq!(findings[0].evidence, vec!["Q-burst-80".to_string()]);
    }

    #[test]
    fn a_chatty_user_at_their_usual_pace_is_not() {
        let mut events = workdays("C", 5, 120);
        events.extend(burst("C", 5 * 24 * HOUR + 10 * HOUR, 150));
        assert!(run(events).is_empty());
    }

    #[test]
    fn learning_uses_a_higher_bar() {
        assert!(run(burst("N", 0, 200)).is_empty());
        assert_eq!(run(burst("N", 0, 300)).len(), 1);
    }

    #[test]
    fn bad_config_is_refused() {
        let mut t = TestDetector::<MessageVolume>::new();
        assert!(t.configure(r#"{"floor": 0}"#).is_err());
        assert!(t.configure(r#"{"k": 1}"#).is_err());
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::MessageVolume>::new().check_config_schema();
    }
}
