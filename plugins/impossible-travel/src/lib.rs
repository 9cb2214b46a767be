//! impossible-travel: two consecutive logins of one user too far apart for the time
//! between them, placed by the host's `geo` service. See README.md.
//!
//! A move is judged between the user's last placed login and this one: the distance
//! between them less both places' accuracy radii, over the time between them. Moves
//! shorter than `min_distance_km` or slower than `max_speed_kmh` are travel; the
//! countries of a plausible move make a known route for the user. An impossible move
//! is spared when its route is known, and when it comes from one of the user's known
//! devices (or, with `flag_known_device`, reported low, below the default decision
//! score): a phone on its home carrier while its owner's laptop is abroad looks like a
//! jump and is not one. A login
//! through a VPN, Tor or proxy is not placed at all. Without a geolocation database
//! nothing is placed, so nothing is judged.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use aer_sdk::signals::agent_family;
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: f64 = 3_600_000.0;
/// The shortest time a move is judged over: logins a few seconds apart are measured as
/// this far apart, so rounding never makes a speed infinite.
const MIN_ELAPSED_HOURS: f64 = 1.0 / 60.0;
/// Devices and routes remembered per user.
const REMEMBERED: usize = 32;
/// Longest event id kept as evidence for the next login.
const MAX_ID_BYTES: usize = 128;

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Login actions.
    pub actions: Vec<String>,
    /// Fastest plausible travel in km/h (an airliner cruises near 900).
    #[schemars(range(min = 100.0, max = 20000.0))]
    pub max_speed_kmh: f64,
    /// Moves shorter than this are never judged (addresses of one region).
    #[schemars(range(min = 0.0, max = 20000.0))]
    pub min_distance_km: f64,
    /// Also report an impossible move from a known device, at score 0.3 (low).
    pub flag_known_device: bool,
    /// Days a device or route is remembered after it was last seen.
    #[schemars(range(min = 1, max = 3650))]
    pub memory_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: vec!["user_login".to_owned()],
            max_speed_kmh: 1000.0,
            min_distance_km: 500.0,
            flag_known_device: false,
            memory_days: 90,
        }
    }
}

/// The user's last placed login.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Last {
    t: i64,
    lat: f64,
    lon: f64,
    acc: u32,
    cc: String,
    id: String,
    ip: String,
}

/// The detector.
#[derive(Default)]
pub struct ImpossibleTravel {
    config: Config,
}

impl Detector for ImpossibleTravel {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if !(100.0..=20_000.0).contains(&c.max_speed_kmh) {
            return Err("invalid configuration: max_speed_kmh must be from 100 to 20000".into());
        }
        if !(0.0..=20_000.0).contains(&c.min_distance_km) {
            return Err("invalid configuration: min_distance_km must be from 0 to 20000".into());
        }
        if !(1..=3650).contains(&c.memory_days) {
            return Err("invalid configuration: memory_days must be from 1 to 3650".into());
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
        let place = ctx.geo(event.context.ip);
        if place.network.as_ref().is_some_and(|n| n.anonymous) {
            return Ok(());
        }
        let Some(here) = place.coordinates else {
            return Ok(());
        };
        let t = event.time_ms;
        let country = place.country.unwrap_or_default();
        let memory = Distinct::new(REMEMBERED).ttl_ms(c.memory_days.saturating_mul(DAY_MS));
        let device = agent_family(event.context.user_agent);
        let new_device = memory.insert(ctx.state(), &["d/", user].concat(), &device, t)?;
        let last_key = ["l/", user].concat();
        let last: Option<Last> = ctx.state().get(&last_key)?;
        ctx.state().set(
            &last_key,
            &Last {
                t,
                lat: here.latitude,
                lon: here.longitude,
                acc: here.accuracy_km,
                cc: country.clone(),
                id: clip(event.id),
                ip: clip(event.context.ip),
            },
        )?;
        let Some(last) = last.filter(|l| l.t <= t) else {
            return Ok(());
        };
        let there = aer_sdk::geo::Coordinates {
            latitude: last.lat,
            longitude: last.lon,
            accuracy_km: last.acc,
        };
        let km = there.least_distance_km(&here);
        let hours = ((t - last.t) as f64 / HOUR_MS).max(MIN_ELAPSED_HOURS);
        let kmh = km / hours;
        let route = route(&last.cc, &country);
        let routes = ["r/", user].concat();
        if km < c.min_distance_km || kmh <= c.max_speed_kmh {
            memory.insert(ctx.state(), &routes, &route, t)?;
            return Ok(());
        }
        if memory.contains(ctx.state(), &routes, &route)? {
            return Ok(());
        }
        if !new_device && !c.flag_known_device {
            return Ok(());
        }
        let (score, severity, basis) = if new_device {
            (0.85, Severity::High, "impossible-travel")
        } else {
            (0.3, Severity::Low, "impossible-travel-known-device")
        };
        let minutes = (t - last.t) / 60_000;
        let from = if last.cc.is_empty() { "?" } else { &last.cc };
        let to = if country.is_empty() { "?" } else { &country };
        ctx.emit(
            Finding::new("impossible-travel", user)
                .score(score)
                .severity(severity)
                .summary(format!(
                    "{user} logged in from {to} ({}) {minutes} min after {from} ({}), {km:.0} km away ({kmh:.0} km/h)",
                    event.context.ip, last.ip
                ))
                .evidence(last.id.as_str())
                .evidence(event.id)
                .attr("basis", basis)
                .attr("ip", event.context.ip)
                .attr("previous_ip", &last.ip)
                .attr("from_country", from)
                .attr("to_country", to)
                .attr("distance_km", format!("{km:.0}"))
                .attr("speed_kmh", format!("{kmh:.0}"))
                .attr("minutes", minutes.to_string())
                .attr("user_agent", event.context.user_agent),
        );
        Ok(())
    }
}

/// The unordered pair of countries a move joins, e.g. `DE-US` (a round trip is one route).
fn route(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}-{b}")
    } else {
        format!("{b}-{a}")
    }
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_ID_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

aer_sdk::export_detector!(ImpossibleTravel);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const LAPTOP: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0 Safari/537.36";
    const PHONE: &str = "Slack/24.01 (iPhone; iOS 17.2)";
    const ATTACKER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/121.0";
    const MIN: i64 = 60_000;

    const BERLIN: &str = "198.51.100.10";
    const HAMBURG: &str = "198.51.100.20";
    const NEW_YORK: &str = "203.0.113.10";
    const LAGOS: &str = "192.0.2.10";
    const VPN: &str = "192.0.2.200";

    fn detector(config: &str) -> TestDetector<ImpossibleTravel> {
        let mut t = TestDetector::<ImpossibleTravel>::new();
        t.configure(config).expect("valid config");
        let h = t.host();
        h.set_place(BERLIN, Place::at("DE", 52.52, 13.40));
        h.set_place(HAMBURG, Place::at("DE", 53.55, 9.99));
        h.set_place(NEW_YORK, Place::at("US", 40.71, -74.01));
        h.set_place(LAGOS, Place::at("NG", 6.52, 3.38));
        h.set_place(VPN, Place::at("NG", 6.52, 3.38).anonymous());
        t
    }

    fn login(id: &str, minute: i64, ip: &str, ua: &str) -> OwnedEvent {
        event("user_login")
            .id(id)
            .actor("U1")
            .ip(ip)
            .user_agent(ua)
            .at(10 * 86_400_000 + minute * MIN)
            .build()
    }

    #[test]
    fn a_login_too_far_too_soon_on_a_new_device_is_flagged() {
        let mut t = detector("{}");
        let f = t
            .run(&[
                login("e1", 0, BERLIN, LAPTOP),
                login("e2", 90, LAGOS, ATTACKER),
            ])
            .unwrap();
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence, ["e1", "e2"]);
        assert_eq!(f[0].attribute("from_country"), Some("DE"));
        assert_eq!(f[0].attribute("to_country"), Some("NG"));
        let kmh: f64 = f[0].attribute("speed_kmh").unwrap().parse().unwrap();
        assert!(kmh > 3000.0, "{kmh}");
    }

    #[test]
    fn a_real_flight_is_travel() {
        let mut t = detector("{}");
        // Berlin to New York is about 6,400 km: nine hours is an airliner's pace.
        let f = t
            .run(&[
                login("e1", 0, BERLIN, LAPTOP),
                login("e2", 9 * 60, NEW_YORK, LAPTOP),
                login("e3", 9 * 60 + 30, NEW_YORK, PHONE),
            ])
            .unwrap();
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn moves_within_a_region_are_not_judged() {
        let mut t = detector("{}");
        // Berlin to Hamburg (about 250 km) in ten minutes: addresses of one country.
        let f = t
            .run(&[
                login("e1", 0, BERLIN, LAPTOP),
                login("e2", 10, HAMBURG, ATTACKER),
            ])
            .unwrap();
        assert!(f.is_empty(), "{f:#?}");
        let f = detector(r#"{"min_distance_km": 100}"#)
            .run(&[
                login("e1", 0, BERLIN, LAPTOP),
                login("e2", 10, HAMBURG, ATTACKER),
            ])
            .unwrap();
        assert_eq!(f.len(), 1, "a lower floor judges them");
    }

    #[test]
    fn a_known_device_jumping_is_low_and_a_known_route_is_spared() {
        let mut t = detector("{}");
        // The phone still placed at home while its owner's laptop is in New York.
        let f = t
            .run(&[
                login("e1", 0, BERLIN, PHONE),
                login("e2", 9 * 60, NEW_YORK, LAPTOP),
                login("e3", 9 * 60 + 5, BERLIN, PHONE),
            ])
            .unwrap();
        assert_eq!(
            f.len(),
            0,
            "the DE-US route was travelled plausibly first: {f:#?}"
        );
        let jump = [
            login("e1", 0, BERLIN, LAPTOP),
            login("e2", 5, NEW_YORK, LAPTOP),
        ];
        assert!(detector("{}").run(&jump).unwrap().is_empty());
        let f = detector(r#"{"flag_known_device": true}"#)
            .run(&jump)
            .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Low);
        assert!(f[0].score < 0.5);
    }

    #[test]
    fn anonymous_and_unknown_addresses_are_not_placed() {
        let mut t = detector("{}");
        let f = t
            .run(&[
                login("e1", 0, BERLIN, LAPTOP),
                login("e2", 5, VPN, ATTACKER),
                login("e3", 6, "10.1.2.3", ATTACKER),
            ])
            .unwrap();
        assert!(f.is_empty(), "{f:#?}");
        // Without a database (the test host answers unknown for everything) nothing is judged.
        let mut bare = TestDetector::<ImpossibleTravel>::new();
        let f = bare
            .run(&[
                login("e1", 0, BERLIN, LAPTOP),
                login("e2", 5, LAGOS, ATTACKER),
            ])
            .unwrap();
        assert!(f.is_empty());
    }

    #[test]
    fn the_schema_matches_the_configuration() {
        TestDetector::<ImpossibleTravel>::new().check_config_schema();
        let mut t = TestDetector::<ImpossibleTravel>::new();
        assert!(t.configure(r#"{"max_speed_kmh": 0}"#).is_err());
        assert!(t.configure(r#"{"memory_days": 0}"#).is_err());
    }
}
