//! Privilege escalation unusual for the actor: admin or owner grants by someone who does
//! not usually grant them, anyone granting themselves, a brand-new account promoted, or
//! a burst of grants. See README.md.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Actions that grant privileges.
    pub grant_actions: Vec<String>,
    /// Actions that create an account (to spot a new account being promoted).
    pub create_actions: Vec<String>,
    /// Actions that only start the learning clock: the tenant's history starts with its
    /// first event of any subscribed action, not with its first grant (on a quiet
    /// workspace the attack itself would otherwise open the learning period).
    pub clock_actions: Vec<String>,
    /// Earlier days with grants (within `history_days`) that make a regular granter.
    #[schemars(range(min = 1, max = 3650))]
    pub regular_days: usize,
    /// Days of grant history kept per actor.
    #[schemars(range(min = 1, max = 3650))]
    pub history_days: i64,
    /// Hours after its creation during which promoting an account is flagged.
    #[schemars(range(min = 0, max = 87600))]
    pub new_account_hours: i64,
    /// Grants by one actor within an hour that are flagged even for a regular granter.
    #[schemars(range(min = 1))]
    pub burst: u64,
    /// Days the detector watches (from the first subscribed event) before judging who
    /// is a regular granter.
    #[schemars(range(min = 0, max = 3650))]
    pub learning_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grant_actions: [
                "role_change_to_admin",
                "role_change_to_owner",
                "permissions_assigned",
                "owner_transferred",
            ]
            .map(String::from)
            .to_vec(),
            create_actions: ["user_created", "guest_created"].map(String::from).to_vec(),
            clock_actions: vec!["user_login".to_owned()],
            regular_days: 2,
            history_days: 90,
            new_account_hours: 72,
            burst: 10,
            learning_days: 7,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct PrivilegeEscalation {
    config: Config,
}

impl Detector for PrivilegeEscalation {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        let c = &self.config;
        base.actions(
            c.grant_actions
                .iter()
                .chain(&c.create_actions)
                .chain(&c.clock_actions)
                .cloned(),
        )
        .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if !(1..=3650).contains(&c.history_days)
            || c.burst == 0
            || !(1..=3650).contains(&c.regular_days)
        {
            return Err(
                "invalid configuration: history_days and regular_days must be from 1 to 3650, burst at least 1"
                    .into(),
            );
        }
        if !(0..=3650).contains(&c.learning_days) || !(0..=87_600).contains(&c.new_account_hours) {
            return Err(
                "invalid configuration: learning_days must be from 0 to 3650, new_account_hours from 0 to 87600"
                    .into(),
            );
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let c = &self.config;
        let actor = event.actor.id;
        let t = event.time_ms;
        let target = event.target.map_or("", |e| e.id);
        let subscribed = |list: &[String]| list.iter().any(|a| a == event.action);
        if !subscribed(&c.grant_actions)
            && !subscribed(&c.create_actions)
            && !subscribed(&c.clock_actions)
        {
            return Ok(());
        }
        // Every subscribed event runs the learning clock, which starts at the first.
        let learned = Learning::days(c.learning_days).done(ctx.state(), t)?;
        if c.create_actions.iter().any(|a| a == event.action) {
            if !target.is_empty() {
                ctx.state().set(&["c/", target].concat(), &t)?;
            }
            return Ok(());
        }
        if actor.is_empty() || !c.grant_actions.iter().any(|a| a == event.action) {
            return Ok(());
        }
        let days = Distinct::new(c.history_days as usize + 1).ttl_ms(c.history_days * DAY_MS);
        let days_key = ["d/", actor].concat();
        let day = t.div_euclid(DAY_MS).to_string();
        days.insert(ctx.state(), &days_key, &day, t)?;
        let earlier_days = days.len(ctx.state(), &days_key)? - 1;
        let in_hour = Window::minutes(60).add(ctx.state(), &["w/", actor].concat(), t, 1)?;
        let created: Option<i64> = match target {
            "" => None,
            id => ctx.state().get(&["c/", id].concat())?,
        };

        let (basis, score, why) = if !target.is_empty() && target == actor {
            (
                "self-escalation",
                0.9,
                format!("{actor} granted themselves {}", event.action),
            )
        } else if let Some(at) = created.filter(|at| t - at <= c.new_account_hours * HOUR_MS) {
            (
                "new-account-promoted",
                0.85,
                format!(
                    "{actor} promoted {target}, an account created {} h earlier ({})",
                    (t - at) / HOUR_MS,
                    event.action
                ),
            )
        } else if learned && earlier_days < c.regular_days {
            (
                "unusual-granter",
                if event.action == "role_change_to_owner" {
                    0.85
                } else {
                    0.75
                },
                format!(
                    "{actor}, who granted privileges on {earlier_days} earlier days, did {} for {target}",
                    event.action
                ),
            )
        } else if in_hour >= c.burst {
            (
                "burst",
                0.7,
                format!("{actor} made {in_hour} grants within an hour"),
            )
        } else {
            return Ok(());
        };
        if Cooldown::minutes(60).ready(ctx.state(), &["r/", actor].concat(), t)? {
            ctx.emit(
                Finding::new("privilege-escalation", actor)
                    .score(score)
                    .severity(if score >= 0.8 {
                        Severity::High
                    } else {
                        Severity::Medium
                    })
                    .summary(why)
                    .evidence(event.id)
                    .attr("basis", basis)
                    .attr("action", event.action)
                    .attr("target", target)
                    .attr("ip", event.context.ip),
            );
        }
        Ok(())
    }
}

aer_sdk::export_detector!(PrivilegeEscalation);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    fn grant(i: i64, actor: &str, target: &str, at: i64) -> OwnedEvent {
        event("role_change_to_admin")
            .id(format!("g{i}"))
            .actor(actor)
            .target("user", target)
            .at(at)
            .build()
    }

    /// The IT admin grants something every second day for two weeks.
    fn routine() -> Vec<OwnedEvent> {
        (0..7)
            .map(|i| grant(i, "IT", &format!("T{i}"), i * 2 * DAY_MS + 10 * HOUR_MS))
            .collect()
    }

    fn run(mut events: Vec<OwnedEvent>) -> Vec<Finding> {
        events.sort_by_key(|e| e.time_ms);
        TestDetector::<PrivilegeEscalation>::new()
            .run_batched(&events, 8)
            .unwrap()
    }

    fn basis(f: &Finding) -> &str {
        f.attributes
            .iter()
            .find(|(k, _)| k == "basis")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    #[test]
    fn a_regular_granter_is_quiet_and_a_first_time_granter_is_not() {
        let mut events = routine();
        events.push(grant(100, "A2", "T9", 13 * DAY_MS));
        let findings = run(events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "A2");
        assert_eq!(basis(&findings[0]), "unusual-granter");
    }

    #[test]
    fn the_first_grant_on_a_quiet_workspace_is_judged_from_the_start_of_history() {
        // Logins only for ten days, then the first grant anyone ever made.
        let mut events: Vec<OwnedEvent> = (0..10)
            .map(|d| {
                event("user_login")
                    .id(format!("l{d}"))
                    .actor("U1")
                    .at(d * DAY_MS)
                    .build()
            })
            .collect();
        events.push(grant(1, "U1", "U2", 10 * DAY_MS));
        let findings = run(events.clone());
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(basis(&findings[0]), "unusual-granter");
        let mut t = TestDetector::<PrivilegeEscalation>::new();
        t.configure(r#"{"clock_actions": []}"#).unwrap();
        assert!(
            t.run(&events).unwrap().is_empty(),
            "without the clock the attack opens the learning period"
        );
    }

    #[test]
    fn the_schema_matches_the_configuration() {
        TestDetector::<PrivilegeEscalation>::new().check_config_schema();
    }

    #[test]
    fn self_escalation_is_flagged_even_while_learning() {
        let findings = run(vec![grant(1, "A3", "A3", 0)]);
        assert_eq!(findings.len(), 1);
        assert_eq!(basis(&findings[0]), "self-escalation");
    }

    #[test]
    fn promoting_a_new_account_is_flagged() {
        let mut events = routine();
        events.push(
            event("guest_created")
                .id("c1")
                .actor("IT")
                .target("user", "NEW")
                .at(13 * DAY_MS)
                .build(),
        );
        events.push(grant(101, "IT", "NEW", 13 * DAY_MS + HOUR_MS));
        let findings = run(events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(basis(&findings[0]), "new-account-promoted");
    }

    #[test]
    fn a_burst_by_a_regular_granter_is_flagged() {
        let mut events = routine();
        events.extend(
            (0..12).map(|i| grant(200 + i, "IT", &format!("B{i}"), 13 * DAY_MS + i * 60_000)),
        );
        let findings = run(events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(basis(&findings[0]), "burst");
    }
}
