//! Suspicious file sharing: a burst of files made public or shared to external (Slack
//! Connect) channels, beyond what the user usually shares. See README.md.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Actions that always expose a file outside the organisation (public links).
    pub public_actions: Vec<String>,
    /// Actions that expose a file when their details say the target is external.
    pub share_actions: Vec<String>,
    /// Details whose value `true` marks an external target (e.g. `is_ext_shared`).
    pub external_flags: Vec<String>,
    /// Details naming the target's privacy, and the values that mean external.
    pub privacy_details: Vec<String>,
    /// Privacy values that mean the target is outside the organisation.
    pub external_privacy: Vec<String>,
    /// Width of the sliding window in minutes.
    #[schemars(range(min = 1))]
    pub window_minutes: i64,
    /// Exposing shares within the window that make a finding.
    #[schemars(range(min = 1))]
    pub threshold: u64,
    /// Standard deviations above the user's daily norm a day's exposing shares must reach.
    #[schemars(range(min = 0))]
    pub k_sigma: f64,
    /// Days of history behind the daily norm.
    #[schemars(range(min = 1))]
    pub history_days: u32,
    /// Days the detector watches before judging against norms; meanwhile the bar is
    /// `threshold * learning_factor`.
    #[schemars(range(min = 0))]
    pub learning_days: i64,
    /// Multiplier of `threshold` while learning.
    #[schemars(range(min = 1))]
    pub learning_factor: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            public_actions: ["file_public_link_created"].map(String::from).to_vec(),
            share_actions: ["file_shared", "canvas_shared", "list_shared"]
                .map(String::from)
                .to_vec(),
            external_flags: [
                "is_ext_shared",
                "is_external_shared",
                "is_shared",
                "channel.is_shared",
            ]
            .map(String::from)
            .to_vec(),
            privacy_details: ["channel_privacy", "privacy", "channel.privacy"]
                .map(String::from)
                .to_vec(),
            external_privacy: ["shared", "external", "connect", "public_link"]
                .map(String::from)
                .to_vec(),
            window_minutes: 30,
            threshold: 5,
            k_sigma: 4.0,
            history_days: 30,
            learning_days: 3,
            learning_factor: 3,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct SuspiciousFileSharing {
    config: Config,
}

impl SuspiciousFileSharing {
    /// Where the event exposes a file to: `Some("public")`, `Some("external")` or `None`.
    fn exposure(&self, event: &Event<'_>) -> Option<&'static str> {
        let c = &self.config;
        if c.public_actions.iter().any(|a| a == event.action) {
            return Some("public");
        }
        if !c.share_actions.iter().any(|a| a == event.action) {
            return None;
        }
        let flagged = c.external_flags.iter().any(|k| {
            event
                .detail(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        });
        let private = c.privacy_details.iter().any(|k| {
            event
                .detail(k)
                .is_some_and(|v| c.external_privacy.iter().any(|p| p.eq_ignore_ascii_case(v)))
        });
        (flagged || private).then_some("external")
    }
}

impl Detector for SuspiciousFileSharing {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        let c = &self.config;
        base.actions(c.public_actions.iter().chain(&c.share_actions).cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.window_minutes < 1 || c.threshold == 0 || c.history_days == 0 {
            return Err(
                "invalid configuration: window_minutes, threshold and history_days must be at least 1"
                    .into(),
            );
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let user = event.actor.id;
        if user.is_empty() {
            return Ok(());
        }
        let Some(target) = self.exposure(event) else {
            return Ok(());
        };
        let c = &self.config;
        let t = event.time_ms;
        let learned = Learning::days(c.learning_days).done(ctx.state(), t)?;
        let window = Window::minutes(c.window_minutes);
        let count = window.add(ctx.state(), &["w/", user].concat(), t, 1)?;
        let daily =
            Baseline::daily(c.history_days).observe(ctx.state(), &["d/", user].concat(), t, 1.0)?;
        let (fires, basis) = if learned {
            let norm = daily.mean + c.k_sigma * daily.stddev;
            (
                count >= c.threshold && daily.current > norm,
                format!(
                    "daily norm {:.1} ± {:.1}, limit {norm:.1}",
                    daily.mean, daily.stddev
                ),
            )
        } else {
            let bar = c.threshold.saturating_mul(c.learning_factor);
            (count >= bar, format!("learning, limit {bar}"))
        };
        if fires
            && Cooldown::new(window.width_ms()).ready(ctx.state(), &["r/", user].concat(), t)?
        {
            let excess = count as f32 / c.threshold as f32;
            ctx.emit(
                Finding::new("suspicious-file-sharing", user)
                    .score((0.55 + 0.1 * excess).min(1.0))
                    .severity(if excess >= 3.0 {
                        Severity::High
                    } else {
                        Severity::Medium
                    })
                    .summary(format!(
                        "{user} exposed {count} files ({target}) in {} min; {basis}",
                        c.window_minutes
                    ))
                    .evidence(event.id)
                    .attr("count", count)
                    .attr("today", daily.current)
                    .attr("target", target)
                    .attr("ip", event.context.ip),
            );
        }
        Ok(())
    }
}

aer_sdk::export_detector!(SuspiciousFileSharing);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    fn shares(user: &str, n: i64, start: i64, step: i64, external: bool) -> Vec<OwnedEvent> {
        (0..n)
            .map(|i| {
                event("file_shared")
                    .id(format!("{user}-{start}-{i}"))
                    .actor(user)
                    .target("file", format!("F{i}"))
                    .detail("is_ext_shared", if external { "true" } else { "false" })
                    .at(start + i * step)
                    .build()
            })
            .collect()
    }

    fn run(mut events: Vec<OwnedEvent>) -> Vec<Finding> {
        let mut t = TestDetector::<SuspiciousFileSharing>::new();
        events.sort_by_key(|e| e.time_ms);
        t.run_batched(&events, 64).unwrap()
    }

    /// Four days of quiet sharing by `quiet`, so the detector is past learning.
    fn history(quiet: &str) -> Vec<OwnedEvent> {
        (0..4)
            .flat_map(|d| shares(quiet, 1, d * DAY, MIN, true))
            .collect()
    }

    #[test]
    fn a_burst_of_external_shares_is_flagged() {
        let mut events = history("Q");
        events.extend(shares("U1", 8, 5 * DAY, MIN, true));
        let findings = run(events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "U1");
        assert_eq!(findings[0].evidence, vec![format!("U1-{}-4", 5 * DAY)]);
    }

    #[test]
    fn internal_shares_do_not_count() {
        let mut events = history("Q");
        events.extend(shares("U1", 30, 5 * DAY, MIN, false));
        assert!(run(events).is_empty());
    }

    #[test]
    fn public_links_count() {
        let mut events = history("Q");
        events.extend((0..6).map(|i| {
            event("file_public_link_created")
                .id(format!("p{i}"))
                .actor("U2")
                .at(5 * DAY + i * MIN)
                .build()
        }));
        assert_eq!(run(events).len(), 1);
    }

    #[test]
    fn a_partner_manager_sharing_as_usual_is_not_flagged() {
        // Eight external shares every day for a week, then the same again.
        let mut events: Vec<OwnedEvent> = (0..8)
            .flat_map(|d| shares("PM", 8, d * DAY, 3 * MIN, true))
            .collect();
        events.extend(shares("U1", 1, 0, MIN, true));
        assert!(run(events).is_empty());
    }

    #[test]
    fn learning_uses_a_higher_bar() {
        assert!(run(shares("U1", 8, 0, MIN, true)).is_empty());
        assert_eq!(run(shares("U1", 16, 0, MIN, true)).len(), 1);
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::SuspiciousFileSharing>::new().check_config_schema();
    }
}
