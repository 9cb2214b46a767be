//! brute-force: password guessing, from `user_login_failed` and `user_login`.
//!
//! - `guessed` (high, 0.85): `failures` or more failed logins of one user within
//!   `window_minutes`, then a successful login of that user within the same window;
//!   subject the user.
//! - `spray` (medium, 0.7): one address failing against `spray_users` or more distinct
//!   users within `spray_window_minutes`; subject the address (`ip` attribute too), for
//!   notification: there is no one account to act on yet.
//! - `sprayed` (critical, 0.95): a successful login from an address while it is
//!   spraying; subject the user who logged in.
//!
//! A typo streak of two or three failures, or a success after failures spread over
//! hours, is not guessing. One finding per user (or address) per window.
//!
//! Config: `{"failures": 5, "window_minutes": 15, "spray_users": 10,
//! "spray_window_minutes": 60}`.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

const FAILED: &str = "user_login_failed";
const SUCCEEDED: &str = "user_login";
/// Users remembered per spraying address (enough to count past any sane threshold).
const MAX_SPRAYED_USERS: usize = 1_000;
/// Failed logins a finding cites at most.
const EVIDENCE: usize = 20;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    #[schemars(range(min = 2))]
    failures: u64,
    #[schemars(range(min = 1))]
    window_minutes: i64,
    #[schemars(range(min = 2, max = 1000))]
    spray_users: usize,
    #[schemars(range(min = 1))]
    spray_window_minutes: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            failures: 5,
            window_minutes: 15,
            spray_users: 10,
            spray_window_minutes: 60,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct BruteForce {
    config: Config,
}

impl Detector for BruteForce {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions([FAILED, SUCCEEDED])
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.failures < 2 {
            return Err("invalid configuration: failures must be at least 2".into());
        }
        if c.window_minutes < 1 || c.spray_window_minutes < 1 {
            return Err(
                "invalid configuration: window_minutes and spray_window_minutes must be at least 1"
                    .into(),
            );
        }
        if !(2..=MAX_SPRAYED_USERS).contains(&c.spray_users) {
            return Err(format!(
                "invalid configuration: spray_users must be from 2 to {MAX_SPRAYED_USERS}"
            )
            .into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let user = event.actor.id;
        if user.is_empty() {
            return Ok(());
        }
        match event.action {
            FAILED => self.failed(ctx, event, user),
            SUCCEEDED => self.succeeded(ctx, event, user),
            _ => Ok(()),
        }
    }
}

impl BruteForce {
    fn window(&self) -> Window {
        Window::minutes(self.config.window_minutes)
    }

    fn spray_window_ms(&self) -> i64 {
        self.config.spray_window_minutes.saturating_mul(60_000)
    }

    /// The failed logins a `guessed` finding cites (the latest, within the window).
    fn failures(&self) -> Evidence {
        Evidence::new(EVIDENCE).within_ms(self.window().width_ms())
    }

    fn failed(&self, ctx: &mut Context<'_>, event: &Event<'_>, user: &str) -> Result<()> {
        let t = event.time_ms;
        self.window()
            .add(ctx.state(), &["f/", user].concat(), t, 1)?;
        self.failures()
            .push(ctx.state(), &["fe/", user].concat(), event.id, t)?;
        let ip = event.context.ip;
        if ip.is_empty() {
            return Ok(());
        }
        let users = Distinct::new(MAX_SPRAYED_USERS).ttl_ms(self.spray_window_ms());
        let key = ["s/", ip].concat();
        users.insert(ctx.state(), &key, user, t)?;
        let n = users.len(ctx.state(), &key)?;
        if n < self.config.spray_users {
            return Ok(());
        }
        // Spraying from here now: a success from it in the window is `sprayed`.
        ctx.state().set(&["p/", ip].concat(), &t)?;
        if Cooldown::new(self.spray_window_ms()).ready(ctx.state(), &["rs/", ip].concat(), t)? {
            ctx.emit(
                Finding::new("brute-force", ip)
                    .score(0.7)
                    .severity(Severity::Medium)
                    .summary(format!(
                        "{ip} failed to log in as {n} different users in {} min",
                        self.config.spray_window_minutes
                    ))
                    .evidence(event.id)
                    .attr("basis", "spray")
                    .attr("users", n)
                    .attr("ip", ip),
            );
        }
        Ok(())
    }

    fn succeeded(&self, ctx: &mut Context<'_>, event: &Event<'_>, user: &str) -> Result<()> {
        let t = event.time_ms;
        let ip = event.context.ip;
        let spraying: Option<i64> = if ip.is_empty() {
            None
        } else {
            ctx.state().get(&["p/", ip].concat())?
        };
        if spraying.is_some_and(|s| t - s < self.spray_window_ms())
            && Cooldown::new(self.spray_window_ms()).ready(
                ctx.state(),
                &["r/", user].concat(),
                t,
            )?
        {
            ctx.emit(
                Finding::new("brute-force", user)
                    .score(0.95)
                    .severity(Severity::Critical)
                    .summary(format!(
                        "{user} logged in from {ip}, which was failing against many users"
                    ))
                    .evidence(event.id)
                    .attr("basis", "sprayed")
                    .attr("ip", ip),
            );
            return Ok(());
        }
        let failures = self
            .window()
            .count(ctx.state(), &["f/", user].concat(), t)?;
        if failures < self.config.failures {
            return Ok(());
        }
        let span = self.window().width_ms();
        if !Cooldown::new(span).ready(ctx.state(), &["r/", user].concat(), t)? {
            return Ok(());
        }
        let cited = self
            .failures()
            .ids(ctx.state(), &["fe/", user].concat(), t)?;
        ctx.emit(
            Finding::new("brute-force", user)
                .score(0.85)
                .severity(Severity::High)
                .summary(format!(
                    "{user} logged in from {ip} after {failures} failed logins in {} min",
                    self.config.window_minutes
                ))
                .evidence_all(cited)
                .evidence(event.id)
                .attr("basis", "guessed")
                .attr("failures", failures)
                .attr("ip", ip),
        );
        Ok(())
    }
}

aer_sdk::export_detector!(BruteForce);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MIN: i64 = 60_000;

    fn login(i: i64, action: &str, user: &str, ip: &str, t: i64) -> OwnedEvent {
        event(action)
            .id(format!("e{i}"))
            .actor(user)
            .ip(ip)
            .at(t)
            .build()
    }

    fn run(events: &[OwnedEvent]) -> Vec<Finding> {
        TestDetector::<BruteForce>::new().run(events).unwrap()
    }

    #[test]
    fn failures_then_a_success_are_guessing() {
        let mut events: Vec<OwnedEvent> = (0..6)
            .map(|i| login(i, FAILED, "U1", "203.0.113.9", i * 10_000))
            .collect();
        events.push(login(9, SUCCEEDED, "U1", "203.0.113.9", 2 * MIN));
        let f = run(&events);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].subject, "U1");
        assert_eq!(f[0].attribute("basis"), Some("guessed"));
        assert_eq!(f[0].attribute("failures"), Some("6"));
        assert_eq!(
            f[0].evidence,
            ["e0", "e1", "e2", "e3", "e4", "e5", "e9"],
            "the failures, then the success"
        );
        assert_eq!(f[0].severity, Severity::High);
    }

    #[test]
    fn a_typo_streak_or_failures_long_before_are_not() {
        let typo = [
            login(0, FAILED, "U1", "198.51.100.20", 0),
            login(1, FAILED, "U1", "198.51.100.20", 20_000),
            login(2, SUCCEEDED, "U1", "198.51.100.20", 40_000),
        ];
        assert!(run(&typo).is_empty());
        let mut old: Vec<OwnedEvent> = (0..6)
            .map(|i| login(i, FAILED, "U1", "198.51.100.20", i * 10_000))
            .collect();
        old.push(login(9, SUCCEEDED, "U1", "198.51.100.20", 3 * 60 * MIN));
        assert!(run(&old).is_empty(), "a success hours later");
        let no_success: Vec<OwnedEvent> = (0..20)
            .map(|i| login(i, FAILED, "U1", "198.51.100.20", i * 10_000))
            .collect();
        assert!(
            run(&no_success).is_empty(),
            "no success: nothing was guessed"
        );
    }

    #[test]
    fn one_address_failing_against_many_users_is_spraying_and_its_success_is_critical() {
        let mut events: Vec<OwnedEvent> = (0..12)
            .map(|i| login(i, FAILED, &format!("U{i}"), "192.0.2.66", i * MIN))
            .collect();
        events.push(login(50, SUCCEEDED, "U7", "192.0.2.66", 20 * MIN));
        // Another user's own login elsewhere is not touched.
        events.push(login(51, SUCCEEDED, "U8", "198.51.100.20", 21 * MIN));
        let f = run(&events);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(
            (f[0].subject.as_str(), f[0].attribute("basis")),
            ("192.0.2.66", Some("spray"))
        );
        assert_eq!(f[0].attribute("users"), Some("10"));
        assert_eq!(
            (f[1].subject.as_str(), f[1].attribute("basis")),
            ("U7", Some("sprayed"))
        );
        assert_eq!(f[1].severity, Severity::Critical);
    }

    #[test]
    fn bad_configuration_is_refused_by_name() {
        let mut t = TestDetector::<BruteForce>::new();
        let e = t.configure(r#"{"failures": 1}"#).err().unwrap();
        assert!(e.to_string().contains("failures"), "{e}");
        let e = t.configure(r#"{"spray_users": 5000}"#).err().unwrap();
        assert!(e.to_string().contains("spray_users"), "{e}");
        assert!(t.configure(r#"{"oops": 1}"#).is_err());
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::BruteForce>::new().check_config_schema();
    }
}
