//! New network origin: a login from a network (or, when events carry one, a country)
//! never seen for the user, on a device never seen for the user, or any login from a
//! Tor exit in the configured list. See README.md.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use aer_sdk::signals::{agent_family, in_cidr, network};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Login actions.
    pub actions: Vec<String>,
    /// Tor exit addresses or ranges (`"185.220.101.4"`, `"185.220.100.0/22"`).
    pub tor_exits: Vec<String>,
    /// Details that may carry the login's country (from an enrichment step).
    pub country_details: Vec<String>,
    /// Prefix length that makes an IPv4 address's network.
    #[schemars(range(min = 0, max = 32))]
    pub ipv4_prefix: u8,
    /// Prefix length that makes an IPv6 address's network.
    #[schemars(range(min = 0, max = 128))]
    pub ipv6_prefix: u8,
    /// Logins of a user seen before their new origins are judged.
    #[schemars(range(min = 0))]
    pub min_logins: i64,
    /// Days the detector watches before judging anyone (Tor excepted).
    #[schemars(range(min = 0))]
    pub learning_days: i64,
    /// Also flag a new origin on a known device (a travelling user), at low score.
    pub flag_known_device: bool,
    /// Days an origin or device is remembered after it was last seen.
    #[schemars(range(min = 1))]
    pub memory_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: ["user_login"].map(String::from).to_vec(),
            tor_exits: Vec::new(),
            country_details: ["country", "context.country", "geo.country"]
                .map(String::from)
                .to_vec(),
            ipv4_prefix: 16,
            ipv6_prefix: 48,
            min_logins: 3,
            learning_days: 3,
            flag_known_device: false,
            memory_days: 90,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct NewNetworkOrigin {
    config: Config,
}

impl Detector for NewNetworkOrigin {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.ipv4_prefix > 32 || c.ipv6_prefix > 128 {
            return Err(
                "invalid configuration: ipv4_prefix is at most 32, ipv6_prefix at most 128".into(),
            );
        }
        if c.memory_days < 1 {
            return Err("invalid configuration: memory_days must be at least 1".into());
        }
        if let Some(bad) = c.tor_exits.iter().find(|e| {
            let base = e.split('/').next().unwrap_or("");
            base.parse::<std::net::IpAddr>().is_err()
        }) {
            return Err(format!(
                "invalid configuration: tor_exits: {bad:?} is not an address or range"
            )
            .into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let c = &self.config;
        let user = event.actor.id;
        let ip = event.context.ip;
        if user.is_empty() || !c.actions.iter().any(|a| a == event.action) {
            return Ok(());
        }
        let t = event.time_ms;
        if c.tor_exits.iter().any(|exit| in_cidr(ip, exit)) {
            ctx.emit(
                Finding::new("new-network-origin", user)
                    .score(0.9)
                    .severity(Severity::High)
                    .summary(format!("{user} logged in from Tor exit {ip}"))
                    .evidence(event.id)
                    .attr("basis", "tor")
                    .attr("ip", ip),
            );
            return Ok(());
        }
        let Some(net) = network(ip, c.ipv4_prefix, c.ipv6_prefix) else {
            return Ok(());
        };
        let country = c
            .country_details
            .iter()
            .find_map(|k| event.detail(k).filter(|v| !v.is_empty()));
        let device = agent_family(event.context.user_agent);

        let memory = Distinct::new(32).ttl_ms(c.memory_days * DAY_MS);
        let (nets, countries, devices) = (
            ["n/", user].concat(),
            ["c/", user].concat(),
            ["a/", user].concat(),
        );
        let new_net = !memory.contains(ctx.state(), &nets, &net)?;
        let new_country = match country {
            Some(cc) => !memory.contains(ctx.state(), &countries, cc)?,
            None => new_net,
        };
        let new_device = !memory.contains(ctx.state(), &devices, &device)?;
        let logins = ctx.state().add(&["l/", user].concat(), 1)? - 1;
        let learned = Learning::days(c.learning_days).done(ctx.state(), t)?;
        let flagged = learned && logins >= c.min_logins && new_country && new_device;
        // A flagged origin is not learnt as the user's: the attacker's next login from
        // it is as suspicious as the first.
        if !flagged {
            memory.insert(ctx.state(), &nets, &net, t)?;
            if let Some(cc) = country {
                memory.insert(ctx.state(), &countries, cc, t)?;
            }
            memory.insert(ctx.state(), &devices, &device, t)?;
        }
        if !learned || logins < c.min_logins || !new_country {
            return Ok(());
        }
        let origin = country.map_or_else(|| format!("network {net}"), |cc| format!("country {cc}"));
        if new_device {
            ctx.emit(
                Finding::new("new-network-origin", user)
                    .score(0.75)
                    .severity(Severity::High)
                    .summary(format!(
                        "{user} logged in from {origin} ({ip}) on a device never seen for them"
                    ))
                    .evidence(event.id)
                    .attr("basis", "new-origin-new-device")
                    .attr("ip", ip)
                    .attr("network", &net)
                    .attr("user_agent", event.context.user_agent),
            );
        } else if c.flag_known_device {
            ctx.emit(
                Finding::new("new-network-origin", user)
                    .score(0.3)
                    .severity(Severity::Low)
                    .summary(format!(
                        "{user} logged in from {origin} ({ip}) on a known device"
                    ))
                    .evidence(event.id)
                    .attr("basis", "new-origin")
                    .attr("ip", ip)
                    .attr("network", &net),
            );
        }
        Ok(())
    }
}

aer_sdk::export_detector!(NewNetworkOrigin);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const LAPTOP: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0 Safari/537.36";
    const OTHER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/121.0";

    fn login(user: &str, day: i64, ip: &str, ua: &str) -> OwnedEvent {
        event("user_login")
            .id(format!("{user}-{day}-{ip}"))
            .actor(user)
            .ip(ip)
            .user_agent(ua)
            .at(day * DAY_MS + 9 * 3_600_000)
            .build()
    }

    /// Five days of logins from home and office.
    fn routine(user: &str) -> Vec<OwnedEvent> {
        (0..5)
            .flat_map(|d| {
                [
                    login(user, d, "198.51.100.20", LAPTOP),
                    login(user, d, "203.0.113.9", LAPTOP),
                ]
            })
            .collect()
    }

    fn run(config: &str, events: &[OwnedEvent]) -> Vec<Finding> {
        let mut t = TestDetector::<NewNetworkOrigin>::new();
        t.configure(config).expect("valid config");
        t.run_batched(events, 16).unwrap()
    }

    #[test]
    fn a_new_network_on_a_new_device_is_flagged() {
        let mut events = routine("U1");
        events.push(login("U1", 6, "192.0.2.77", OTHER));
        let findings = run("{}", &events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].evidence, vec!["U1-6-192.0.2.77".to_string()]);
    }

    #[test]
    fn a_traveller_on_their_own_laptop_is_not() {
        let mut events = routine("U1");
        // A browser update on the road: versions do not make a new device.
        events.push(login(
            "U1",
            6,
            "192.0.2.77",
            &LAPTOP.replace("Chrome/120.0", "Chrome/121.3"),
        ));
        assert!(run("{}", &events).is_empty());
        let findings = run(r#"{"flag_known_device": true}"#, &events);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].score < 0.5);
    }

    #[test]
    fn a_new_device_at_a_known_network_is_not() {
        let mut events = routine("U1");
        events.push(login("U1", 6, "198.51.7.7", OTHER));
        assert!(run("{}", &events).is_empty());
    }

    #[test]
    fn tor_exits_are_always_flagged() {
        let events = [login("U1", 0, "185.220.101.4", LAPTOP)];
        let findings = run(r#"{"tor_exits": ["185.220.100.0/22"]}"#, &events);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::High);
    }

    #[test]
    fn countries_replace_networks_when_events_carry_them() {
        let mut events: Vec<OwnedEvent> = routine("U1")
            .into_iter()
            .map(|mut e| {
                e.details.push(("country".into(), "DE".into()));
                e
            })
            .collect();
        // A new network in a known country on a new device: not a new origin.
        let mut same = login("U1", 6, "192.0.2.77", OTHER);
        same.details.push(("country".into(), "DE".into()));
        events.push(same);
        assert!(run("{}", &events).is_empty());
        let mut abroad = login("U1", 7, "192.0.3.1", "Mozilla/5.0 (X11; Linux) Firefox/1");
        abroad.details.push(("country".into(), "KP".into()));
        events.push(abroad);
        assert_eq!(run("{}", &events).len(), 1);
    }

    #[test]
    fn a_flagged_origin_is_not_learnt() {
        let mut events = routine("U1");
        events.push(login("U1", 6, "192.0.2.77", OTHER));
        let mut again = login("U1", 9, "192.0.2.78", OTHER);
        again.id = "U1-9-again".into();
        events.push(again);
        let findings = run("{}", &events);
        assert_eq!(
            findings.len(),
            2,
            "the attacker's return is flagged too: {findings:#?}"
        );
    }

    #[test]
    fn first_logins_are_learnt_not_judged() {
        let events = [
            login("U1", 4, "198.51.100.20", LAPTOP),
            login("U1", 4, "192.0.2.77", OTHER),
        ];
        assert!(run("{}", &events).is_empty());
    }

    #[test]
    fn bad_config_is_refused() {
        let mut t = TestDetector::<NewNetworkOrigin>::new();
        assert!(t.configure(r#"{"tor_exits": ["not-an-ip"]}"#).is_err());
        assert!(t.configure(r#"{"ipv4_prefix": 40}"#).is_err());
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::NewNetworkOrigin>::new().check_config_schema();
    }
}
