//! datacenter-origin: a person's session used from a hosting or cloud network, placed
//! by the host's `geo` service. See README.md.
//!
//! People work from homes, offices and phone networks; servers work from datacenters.
//! A person's login or session activity from a hosting network is the shape of a
//! stolen session cookie or password replayed from a server (whatever browser string it
//! claims). What an app does on a person's grant (an event with `context.app`) comes
//! from the app's servers and is not judged here. Hosting networks a user was seen on during the detector's first
//! `learning_days` are theirs (a developer's cloud desktop), and the tenant can allow
//! networks by AS number or address range. Apps and bots, which do run in datacenters,
//! are not judged. Without a geolocation database no address is a hosting network's.

use std::collections::HashMap;

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use aer_sdk::signals::in_cidr;
use serde::{Deserialize, Serialize};

/// Addresses whose answer the instance keeps (the lookup is pure, so this only saves
/// calls); emptied when full.
const CACHE_ADDRESSES: usize = 4_096;
/// Hosting networks remembered per user.
const REMEMBERED: usize = 16;

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Actions judged; empty: every action (session activity as well as logins).
    pub actions: Vec<String>,
    /// Actor types that are people (apps and bots are not judged).
    pub person_types: Vec<String>,
    /// Hosting networks every user may use, by AS number (e.g. the company's VDI).
    pub allowed_asns: Vec<u32>,
    /// Hosting address ranges every user may use (`"203.0.113.0/24"`).
    pub allowed_cidrs: Vec<String>,
    /// Days from the first event during which a user's hosting networks are learnt as theirs.
    #[schemars(range(min = 0, max = 365))]
    pub learning_days: i64,
    /// Also flag a known VPN, Tor exit or public proxy, at score 0.4 (medium).
    pub flag_anonymous: bool,
    /// Hours before the same user and network are reported again.
    #[schemars(range(min = 1, max = 720))]
    pub cooldown_hours: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: Vec::new(),
            person_types: vec!["user".to_owned(), String::new()],
            allowed_asns: Vec::new(),
            allowed_cidrs: Vec::new(),
            learning_days: 3,
            flag_anonymous: false,
            cooldown_hours: 24,
        }
    }
}

/// What one address is, as far as this detector cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Ordinary,
    Hosting(u32),
    Anonymous(u32),
}

/// The detector.
#[derive(Default)]
pub struct DatacenterOrigin {
    config: Config,
    cache: HashMap<String, (Origin, String)>,
}

impl DatacenterOrigin {
    /// The address's origin and its network's organisation, looked up once per address.
    fn origin(&mut self, ctx: &Context<'_>, ip: &str) -> (Origin, String) {
        if let Some(known) = self.cache.get(ip) {
            return known.clone();
        }
        let place = ctx.geo(ip);
        let answer = match place.network {
            Some(n) if n.hosting => (Origin::Hosting(n.asn), n.organisation),
            Some(n) if n.anonymous => (Origin::Anonymous(n.asn), n.organisation),
            _ => (Origin::Ordinary, String::new()),
        };
        if self.cache.len() >= CACHE_ADDRESSES {
            self.cache.clear();
        }
        self.cache.insert(ip.to_owned(), answer.clone());
        answer
    }
}

impl Detector for DatacenterOrigin {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if !(0..=365).contains(&c.learning_days) {
            return Err("invalid configuration: learning_days must be from 0 to 365".into());
        }
        if !(1..=720).contains(&c.cooldown_hours) {
            return Err("invalid configuration: cooldown_hours must be from 1 to 720".into());
        }
        if let Some(bad) = c.allowed_cidrs.iter().find(|r| {
            let base = r.split('/').next().unwrap_or("");
            base.parse::<std::net::IpAddr>().is_err()
        }) {
            return Err(format!(
                "invalid configuration: allowed_cidrs: {bad:?} is not an address or range"
            )
            .into());
        }
        self.config = c;
        self.cache.clear();
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let user = event.actor.id;
        let ip = event.context.ip;
        let c = &self.config;
        // What an app does on a person's grant comes from the app's servers (`risky-app`
        // judges apps).
        if user.is_empty()
            || ip.is_empty()
            || event.detail("context.app").is_some()
            || !c.person_types.iter().any(|k| k == event.actor.kind)
            || !(c.actions.is_empty() || c.actions.iter().any(|a| a == event.action))
        {
            return Ok(());
        }
        // Learning starts at the first event judged, not at the first hosting address.
        let t = event.time_ms;
        let learned = Learning::days(c.learning_days).done(ctx.state(), t)?;
        let (origin, organisation) = self.origin(ctx, ip);
        let c = &self.config;
        let (asn, anonymous) = match origin {
            Origin::Ordinary => return Ok(()),
            Origin::Anonymous(_) if !c.flag_anonymous => return Ok(()),
            Origin::Hosting(asn) => (asn, false),
            Origin::Anonymous(asn) => (asn, true),
        };
        if c.allowed_asns.contains(&asn) || c.allowed_cidrs.iter().any(|r| in_cidr(ip, r)) {
            return Ok(());
        }
        let network = if asn == 0 {
            ip.to_owned()
        } else {
            format!("AS{asn}")
        };
        let theirs = ["n/", user].concat();
        let memory = Distinct::new(REMEMBERED);
        if !learned {
            memory.insert(ctx.state(), &theirs, &network, t)?;
            return Ok(());
        }
        if memory.contains(ctx.state(), &theirs, &network)? {
            return Ok(());
        }
        let cooldown = Cooldown::new(c.cooldown_hours.saturating_mul(3_600_000));
        if !cooldown.ready(ctx.state(), &["c/", user, "/", &network].concat(), t)? {
            return Ok(());
        }
        let kind = if anonymous {
            "an anonymising network (VPN, Tor or proxy)"
        } else {
            "a hosting network"
        };
        let owner = if organisation.is_empty() {
            network.clone()
        } else {
            format!("{organisation}, {network}")
        };
        let session = event.context.session_id;
        let mut finding = Finding::new("datacenter-origin", user)
            .score(if anonymous { 0.4 } else { 0.8 })
            .severity(if anonymous {
                Severity::Medium
            } else {
                Severity::High
            })
            .summary(format!(
                "{user} used {ip}, {kind} ({owner}), for {}",
                event.action
            ))
            .evidence(event.id)
            .attr("basis", if anonymous { "anonymous" } else { "hosting" })
            .attr("ip", ip)
            .attr("network", &network)
            .attr("organisation", &organisation)
            .attr("user_agent", event.context.user_agent);
        if !session.is_empty() {
            finding = finding.attr("session_id", session);
        }
        ctx.emit(finding);
        Ok(())
    }
}

aer_sdk::export_detector!(DatacenterOrigin);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const HOME: &str = "198.51.100.10";
    const CLOUD: &str = "203.0.113.66";
    const VDI: &str = "203.0.113.200";
    const VPN: &str = "192.0.2.9";
    const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0";

    fn detector(config: &str) -> TestDetector<DatacenterOrigin> {
        let mut t = TestDetector::<DatacenterOrigin>::new();
        t.configure(config).expect("valid config");
        let h = t.host();
        h.set_place(HOME, Place::at("DE", 52.5, 13.4).network(3320, "Telekom"));
        h.set_place(
            CLOUD,
            Place::at("US", 39.0, -77.5)
                .network(16509, "Amazon")
                .hosting(),
        );
        h.set_place(
            VDI,
            Place::at("DE", 50.1, 8.7)
                .network(8075, "Microsoft")
                .hosting(),
        );
        h.set_place(
            VPN,
            Place::at("NL", 52.4, 4.9).network(9009, "M247").anonymous(),
        );
        t
    }

    fn at(day: i64, id: &str, action: &str, user: &str, ip: &str) -> OwnedEvent {
        event(action)
            .id(id)
            .actor(user)
            .ip(ip)
            .user_agent(BROWSER)
            .session("8123")
            .at(day * 86_400_000 + 9 * 3_600_000)
            .build()
    }

    #[test]
    fn a_stolen_cookie_replayed_from_a_server_is_flagged_with_its_session() {
        let mut t = detector("{}");
        let f = t
            .run(&[
                at(0, "e1", "user_login", "U1", HOME),
                at(5, "e2", "file_downloaded", "U1", HOME),
                at(5, "e3", "file_downloaded", "U1", CLOUD),
                at(5, "e4", "file_downloaded", "U1", CLOUD),
            ])
            .unwrap();
        assert_eq!(f.len(), 1, "one per user and network per cooldown: {f:#?}");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence, ["e3"]);
        assert_eq!(f[0].attribute("session_id"), Some("8123"));
        assert_eq!(f[0].attribute("network"), Some("AS16509"));
        assert!(f[0].summary.contains("Amazon"), "{}", f[0].summary);
    }

    #[test]
    fn a_cloud_desktop_used_while_learning_is_the_users_own() {
        let mut t = detector("{}");
        let f = t
            .run(&[
                at(0, "e1", "user_login", "U1", VDI),
                at(6, "e2", "user_login", "U1", VDI),
                at(6, "e3", "user_login", "U2", VDI),
            ])
            .unwrap();
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].subject, "U2", "U2 never used it while learning");
        let f = detector(r#"{"allowed_asns": [8075]}"#)
            .run(&[
                at(0, "e0", "user_login", "U9", HOME),
                at(6, "e3", "user_login", "U2", VDI),
            ])
            .unwrap();
        assert!(f.is_empty(), "an allowed network: {f:#?}");
        let f = detector(r#"{"allowed_cidrs": ["203.0.113.0/24"]}"#)
            .run(&[
                at(0, "e0", "user_login", "U9", HOME),
                at(6, "e3", "user_login", "U2", VDI),
            ])
            .unwrap();
        assert!(f.is_empty(), "an allowed range: {f:#?}");
    }

    #[test]
    fn apps_vpns_and_unknown_addresses_are_not_judged() {
        let mut t = detector("{}");
        let mut app = at(5, "e2", "file_downloaded", "A1", CLOUD);
        app.actor.kind = "app".into();
        let f = t
            .run(&[
                at(0, "e1", "user_login", "U1", HOME),
                app,
                at(5, "e3", "user_login", "U1", VPN),
                at(5, "e4", "user_login", "U1", "10.0.0.8"),
            ])
            .unwrap();
        assert!(f.is_empty(), "{f:#?}");
        let mut through_app = at(6, "e5", "file_downloaded", "U1", CLOUD);
        through_app.details.push((
            "context.app".into(),
            r#"{"id":"A0SYNC","name":"Sync"}"#.into(),
        ));
        assert!(t.run(&[through_app]).unwrap().is_empty(), "an app's server");
        let f = detector(r#"{"flag_anonymous": true}"#)
            .run(&[
                at(0, "e1", "user_login", "U1", HOME),
                at(5, "e3", "user_login", "U1", VPN),
            ])
            .unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].score < 0.5);
    }

    #[test]
    fn the_schema_matches_the_configuration() {
        TestDetector::<DatacenterOrigin>::new().check_config_schema();
        let mut t = TestDetector::<DatacenterOrigin>::new();
        assert!(t.configure(r#"{"allowed_cidrs": ["nope"]}"#).is_err());
        assert!(t.configure(r#"{"cooldown_hours": 0}"#).is_err());
    }
}
