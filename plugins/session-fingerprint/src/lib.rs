//! Session fingerprint: a session id seen from another client (a copied session cookie
//! replayed from another browser), a session used from two networks at once (a stolen
//! cookie next to its owner), and a script or headless browser on the account of a user
//! who never used one (a spoofed or unexpected user agent). See README.md.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use aer_sdk::signals::{agent_family, is_scripted_agent, network};
use serde::{Deserialize, Serialize};

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Actions looked at (empty: all).
    pub actions: Vec<String>,
    /// Minutes within which a session seen back on a network it had left counts as used
    /// from two places at once.
    #[schemars(range(min = 1))]
    pub concurrent_minutes: i64,
    /// Prefix length that makes an IPv4 address's network.
    #[schemars(range(min = 0, max = 32))]
    pub ipv4_prefix: u8,
    /// Prefix length that makes an IPv6 address's network.
    #[schemars(range(min = 0, max = 128))]
    pub ipv6_prefix: u8,
    /// More user-agent substrings that mean a script (beyond the SDK's list).
    pub scripted_agents: Vec<String>,
    /// Events of a user seen before a scripted agent on their account is judged.
    #[schemars(range(min = 0))]
    pub min_events: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            actions: Vec::new(),
            concurrent_minutes: 10,
            ipv4_prefix: 16,
            ipv6_prefix: 48,
            scripted_agents: Vec::new(),
            min_events: 50,
        }
    }
}

/// What a session has been seen with.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SessionSeen {
    /// The user it belongs to.
    u: String,
    /// Client (user-agent family) it was first seen with.
    a: String,
    /// Networks, most recent last, with the minute each was last seen.
    n: Vec<(String, i64)>,
    /// Already reported.
    r: bool,
}

/// What a user's events have been seen with.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UserSeen {
    /// Events seen, up to `min_events`.
    n: u32,
    /// A scripted agent has been seen on this account.
    s: bool,
}

/// The detector.
#[derive(Default)]
pub struct SessionFingerprint {
    config: Config,
}

const MINUTE_MS: i64 = 60_000;
const NETWORKS_KEPT: usize = 4;

impl SessionFingerprint {
    fn finding(event: &Event<'_>, user: &str, basis: &str, score: f32, summary: String) -> Finding {
        Finding::new("session-fingerprint", user)
            .score(score)
            .severity(if score >= 0.8 {
                Severity::High
            } else {
                Severity::Medium
            })
            .summary(summary)
            .evidence(event.id)
            .attr("basis", basis)
            .attr("session_id", event.context.session_id)
            .attr("ip", event.context.ip)
            .attr("user_agent", event.context.user_agent)
    }

    /// The session rules; returns the finding, if any.
    fn check_session(&self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<Option<Finding>> {
        let user = event.actor.id;
        let session = event.context.session_id;
        let key = ["s/", session].concat();
        let minute = event.time_ms.div_euclid(MINUTE_MS);
        let device = agent_family(event.context.user_agent);
        let net = network(
            event.context.ip,
            self.config.ipv4_prefix,
            self.config.ipv6_prefix,
        );
        let Some(mut seen) = ctx.state().get::<SessionSeen>(&key)? else {
            let seen = SessionSeen {
                u: user.to_owned(),
                a: device,
                n: net.into_iter().map(|n| (n, minute)).collect(),
                r: false,
            };
            ctx.state().set(&key, &seen)?;
            return Ok(None);
        };
        let mut finding = None;
        if !seen.r {
            if seen.u != user {
                finding = Some(Self::finding(
                    event,
                    &seen.u,
                    "session-shared",
                    0.9,
                    format!("session {session} of {} used by {user}", seen.u),
                ));
            } else if !device.is_empty() && !seen.a.is_empty() && device != seen.a {
                finding = Some(Self::finding(
                    event,
                    user,
                    "client-mismatch",
                    0.85,
                    format!(
                        "session {session} of {user} seen from another client: {:?} after {:?}",
                        event.context.user_agent, seen.a
                    ),
                ));
            }
        }
        let mut changed = false;
        if let Some(net) = net {
            let current = seen.n.last().map(|(n, _)| n.as_str());
            if current != Some(net.as_str()) {
                let window = self.config.concurrent_minutes;
                let back = seen
                    .n
                    .iter()
                    .find(|(n, last)| *n == net && minute - last <= window);
                if let (Some((_, last)), None, false) = (back, &finding, seen.r) {
                    finding = Some(Self::finding(
                        event,
                        user,
                        "concurrent-networks",
                        0.8,
                        format!(
                            "session {session} of {user} went back to {net} {} min after leaving it for {}: used from two places at once",
                            minute - last,
                            current.unwrap_or("?")
                        ),
                    ));
                }
                seen.n.retain(|(n, _)| *n != net);
                seen.n.push((net, minute));
                if seen.n.len() > NETWORKS_KEPT {
                    seen.n.remove(0);
                }
                changed = true;
            } else if let Some(last) = seen.n.last_mut()
                && last.1 != minute
            {
                last.1 = minute;
                changed = true;
            }
        }
        if finding.is_some() {
            seen.r = true;
            changed = true;
        }
        if changed {
            ctx.state().set(&key, &seen)?;
        }
        Ok(finding)
    }

    /// The scripted-agent rule; returns the finding, if any.
    fn check_agent(&self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<Option<Finding>> {
        let user = event.actor.id;
        let key = ["u/", user].concat();
        let mut seen: UserSeen = ctx.state().get(&key)?.unwrap_or_default();
        let scripted = is_scripted_agent(event.context.user_agent, &self.config.scripted_agents);
        let mut finding = None;
        if scripted && !seen.s && seen.n >= self.config.min_events {
            finding = Some(Self::finding(
                event,
                user,
                "scripted-agent",
                0.7,
                format!(
                    "{user}, who has only used ordinary clients, acted through {:?}",
                    event.context.user_agent
                ),
            ));
        }
        let before = (seen.n, seen.s);
        seen.n = (seen.n + 1).min(self.config.min_events);
        seen.s |= scripted;
        if (seen.n, seen.s) != before {
            ctx.state().set(&key, &seen)?;
        }
        Ok(finding)
    }
}

impl Detector for SessionFingerprint {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(self.config.actions.iter().cloned())
            .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.concurrent_minutes < 1 || c.ipv4_prefix > 32 || c.ipv6_prefix > 128 {
            return Err("invalid configuration: concurrent_minutes must be at least 1, ipv4_prefix at most 32, ipv6_prefix at most 128".into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let c = &self.config;
        if event.actor.id.is_empty()
            || event.context.user_agent.is_empty()
            || (!c.actions.is_empty() && !c.actions.iter().any(|a| a == event.action))
        {
            return Ok(());
        }
        let session = match event.context.session_id {
            "" => None,
            _ => self.check_session(ctx, event)?,
        };
        let agent = self.check_agent(ctx, event)?;
        if let Some(f) = session.or(agent) {
            ctx.emit(f);
        }
        Ok(())
    }
}

aer_sdk::export_detector!(SessionFingerprint);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0 Safari/537.36";
    const WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/121.0";
    const OFFICE: &str = "198.51.100.20";
    const HOME: &str = "203.0.113.9";
    const ELSEWHERE: &str = "192.0.2.66";

    fn ev(i: i64, user: &str, session: &str, ip: &str, ua: &str) -> OwnedEvent {
        event("file_downloaded")
            .id(format!("e{i}"))
            .actor(user)
            .session(session)
            .ip(ip)
            .user_agent(ua)
            .at(i * MINUTE_MS)
            .build()
    }

    fn run(events: &[OwnedEvent]) -> Vec<Finding> {
        TestDetector::<SessionFingerprint>::new()
            .run_batched(events, 8)
            .unwrap()
    }

    #[test]
    fn another_client_on_the_same_session_is_flagged_once() {
        let events = [
            ev(0, "U1", "s1", OFFICE, MAC),
            ev(1, "U1", "s1", OFFICE, WIN),
            ev(2, "U1", "s1", OFFICE, WIN),
        ];
        let findings = run(&events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].evidence, vec!["e1".to_string()]);
    }

    #[test]
    fn moving_from_office_to_home_is_not() {
        let mut events: Vec<OwnedEvent> = (0..60).map(|i| ev(i, "U1", "s1", OFFICE, MAC)).collect();
        events.extend((100..160).map(|i| ev(i, "U1", "s1", HOME, MAC)));
        // ... and back the next morning.
        events.extend((1000..1010).map(|i| ev(i, "U1", "s1", OFFICE, MAC)));
        assert!(run(&events).is_empty());
    }

    #[test]
    fn a_session_alternating_between_networks_is_flagged() {
        let events = [
            ev(0, "U1", "s1", OFFICE, MAC),
            ev(1, "U1", "s1", ELSEWHERE, MAC),
            ev(3, "U1", "s1", OFFICE, MAC),
            ev(4, "U1", "s1", ELSEWHERE, MAC),
        ];
        let findings = run(&events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].evidence, vec!["e3".to_string()]);
    }

    #[test]
    fn a_script_on_a_persons_account_is_flagged_but_a_bots_own_is_not() {
        let mut events: Vec<OwnedEvent> = (0..60)
            .map(|i| ev(i, "U1", &format!("s{i}"), OFFICE, MAC))
            .collect();
        events.extend((0..60).map(|i| ev(i, "BOT", "", OFFICE, "python-requests/2.31.0")));
        events.push(ev(70, "U1", "", ELSEWHERE, "python-requests/2.31.0"));
        events.sort_by_key(|e| e.time_ms);
        let findings = run(&events);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "U1");
        assert_eq!(findings[0].evidence, vec!["e70".to_string()]);
    }

    #[test]
    fn a_session_id_used_by_another_user_names_the_owner() {
        let events = [
            ev(0, "U1", "s1", OFFICE, MAC),
            ev(1, "U2", "s1", OFFICE, MAC),
        ];
        let findings = run(&events);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "U1");
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::SessionFingerprint>::new().check_config_schema();
    }
}
