//! Rapid account creation: an actor creating or inviting accounts far faster than they
//! usually do (a compromised admin seeding accounts, an invitation spray), and a whole
//! workspace doing so. See README.md for the configuration.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Actions that create or invite an account.
    pub actions: Vec<String>,
    /// Width of the sliding window in minutes.
    #[schemars(range(min = 1))]
    pub window_minutes: i64,
    /// Accounts one actor may create within the window.
    #[schemars(range(min = 1))]
    pub threshold: u64,
    /// Days with creations (within `history_days`) that make an actor a regular creator.
    #[schemars(range(min = 1))]
    pub regular_days: usize,
    /// Accounts a regular creator (an HR or IT admin) may create within the window.
    #[schemars(range(min = 1))]
    pub regular_threshold: u64,
    /// Days of creation history kept per actor.
    #[schemars(range(min = 1))]
    pub history_days: i64,
    /// Accounts the whole workspace may create within the window (0: no workspace rule).
    #[schemars(range(min = 0))]
    pub workspace_threshold: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: [
                "user_created",
                "guest_created",
                "connect_dm_invite_generated",
                "external_shared_channel_invite_created",
            ]
            .map(String::from)
            .to_vec(),
            window_minutes: 60,
            threshold: 10,
            regular_days: 3,
            regular_threshold: 50,
            history_days: 60,
            workspace_threshold: 100,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct RapidAccountCreation {
    config: Config,
}

impl Detector for RapidAccountCreation {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.window_minutes < 1 || c.threshold == 0 || c.regular_threshold == 0 {
            return Err(
                "invalid configuration: window_minutes, threshold and regular_threshold must be at least 1"
                    .into(),
            );
        }
        if c.history_days < 1 {
            return Err("invalid configuration: history_days must be at least 1".into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let c = &self.config;
        let actor = event.actor.id;
        if actor.is_empty() || !c.actions.iter().any(|a| a == event.action) {
            return Ok(());
        }
        let window = Window::minutes(c.window_minutes);
        let cooldown = Cooldown::new(window.width_ms());
        let t = event.time_ms;

        // Days this actor created accounts on, today included.
        let days = Distinct::new(c.history_days as usize + 1).ttl_ms(c.history_days * DAY_MS);
        let day = t.div_euclid(DAY_MS).to_string();
        days.insert(ctx.state(), &["d/", actor].concat(), &day, t)?;
        let earlier_days = days.len(ctx.state(), &["d/", actor].concat())? - 1;
        let regular = earlier_days >= c.regular_days;
        let limit = if regular {
            c.regular_threshold
        } else {
            c.threshold
        };

        let count = window.add(ctx.state(), &["w/", actor].concat(), t, 1)?;
        if count >= limit && cooldown.ready(ctx.state(), &["r/", actor].concat(), t)? {
            let excess = count as f32 / limit as f32;
            ctx.emit(
                Finding::new("rapid-account-creation", actor)
                    .score((0.6 + 0.1 * excess).min(1.0))
                    .severity(if excess >= 2.0 {
                        Severity::High
                    } else {
                        Severity::Medium
                    })
                    .summary(format!(
                        "{actor} created or invited {count} accounts in {} min (limit {limit}{})",
                        c.window_minutes,
                        if regular { ", a regular creator" } else { "" }
                    ))
                    .evidence(event.id)
                    .attr("scope", "actor")
                    .attr("count", count)
                    .attr("limit", limit)
                    .attr("regular_creator", regular)
                    .attr("ip", event.context.ip),
            );
        }

        if c.workspace_threshold > 0 {
            let workspace = match event.context.location.id {
                "" => "workspace",
                id => id,
            };
            let total = window.add(ctx.state(), &["t/", workspace].concat(), t, 1)?;
            if total >= c.workspace_threshold
                && cooldown.ready(ctx.state(), &format!("rt/{workspace}"), t)?
            {
                ctx.emit(
                    Finding::new("rapid-account-creation", workspace)
                        .score(0.4)
                        .severity(Severity::Medium)
                        .summary(format!(
                            "workspace {workspace} created or invited {total} accounts in {} min",
                            c.window_minutes
                        ))
                        .evidence(event.id)
                        .attr("scope", "workspace")
                        .attr("count", total)
                        .attr("limit", c.workspace_threshold),
                );
            }
        }
        Ok(())
    }
}

aer_sdk::export_detector!(RapidAccountCreation);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MIN: i64 = 60_000;

    fn creations(actor: &str, n: i64, start: i64, step: i64) -> Vec<OwnedEvent> {
        (0..n)
            .map(|i| {
                event(if i % 2 == 0 {
                    "user_created"
                } else {
                    "guest_created"
                })
                .id(format!("{actor}-{start}-{i}"))
                .actor(actor)
                .target("user", format!("N{start}{i}"))
                .at(start + i * step)
                .build()
            })
            .collect()
    }

    fn run(config: &str, mut events: Vec<OwnedEvent>) -> Vec<Finding> {
        let mut t = TestDetector::<RapidAccountCreation>::new();
        t.configure(config).expect("valid config");
        events.sort_by_key(|e| e.time_ms);
        t.run_batched(&events, 64).unwrap()
    }

    #[test]
    fn a_burst_by_an_occasional_creator_is_flagged_once() {
        let findings = run("{}", creations("A1", 15, 0, MIN));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "A1");
        assert_eq!(findings[0].evidence, vec!["A1-0-9".to_string()]);
    }

    #[test]
    fn a_regular_creator_onboarding_a_team_is_not() {
        // Two accounts a day for five days, then 30 guests in one hour.
        let mut events = Vec::new();
        for d in 0..5 {
            events.extend(creations("HR", 2, d * DAY_MS, MIN));
        }
        events.extend(creations("HR", 30, 5 * DAY_MS, 2 * MIN));
        assert!(run("{}", events.clone()).is_empty());
        // The same hour by someone who never creates accounts is.
        events.extend(creations("X", 30, 5 * DAY_MS, 2 * MIN));
        let findings = run("{}", events);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "X");
    }

    #[test]
    fn slow_creation_stays_quiet() {
        assert!(run("{}", creations("A1", 40, 0, 10 * MIN)).is_empty());
    }

    #[test]
    fn the_workspace_rule_sees_many_actors() {
        let mut events = Vec::new();
        for a in 0..8 {
            events.extend(creations(&format!("A{a}"), 5, a, MIN));
        }
        let findings = run(r#"{"workspace_threshold": 30}"#, events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "workspace");
        assert!(findings[0].score < 0.5);
    }

    #[test]
    fn bad_config_is_refused() {
        let mut t = TestDetector::<RapidAccountCreation>::new();
        assert!(t.configure(r#"{"threshold": 0}"#).is_err());
        assert!(t.configure(r#"{"thresold": 3}"#).is_err());
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::RapidAccountCreation>::new().check_config_schema();
    }
}
