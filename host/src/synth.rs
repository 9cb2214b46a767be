//! `aer gen`: seeded synthetic Slack audit traffic with labelled attacks.
//!
//! A population of users with their own habits (working hours in their time zone, office
//! and home networks, devices, message, download and sharing rates), service accounts,
//! external (Slack Connect) users and admins, over a daily and weekly rhythm. On top of
//! it, attack scenarios for every detector (labelled) and benign near-misses (labelled
//! as such): an admin's legitimate bulk export, a travelling user, a team onboarding
//! many guests, a partner manager's busy day, a chatty user's busy hour.
//!
//! The same seed and settings give the same events, byte for byte. Audit events render
//! as Slack Audit Logs entries; message events (which the audit log does not carry) as
//! AER generic events; both go in one NDJSON file.

mod geography;
mod population;
mod render;
mod scenarios;
mod traffic;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

pub use geography::geo_database;
pub use render::to_json;

use crate::Event;
use crate::labels::Label;

/// Milliseconds in an hour, a minute and a day.
pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 60 * MINUTE_MS;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// Settings of a generated dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// People in the organisation (service accounts and external users included).
    pub users: usize,
    /// Days of traffic.
    pub days: u32,
    /// Midnight UTC of the first day, in ms (a Monday by default).
    pub start_ms: i64,
    /// Mean messages a regular user posts on a working day.
    pub messages_per_day: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            users: 500,
            days: 14,
            // 2026-11-02T00:00:00Z, a Monday.
            start_ms: 1_793_577_600_000,
            messages_per_day: 215.0,
        }
    }
}

/// A generated dataset.
#[derive(Debug, Default)]
pub struct Dataset {
    /// Events in event-time order.
    pub events: Vec<Event>,
    /// Attacks (and near-misses) with the detector that should (not) flag them.
    pub labels: Vec<Label>,
    /// Users the policy should allowlist (some are attacked: the engine must not act).
    pub allowlisted: Vec<String>,
    /// The organisation's email domain (anyone else is external).
    pub internal_domain: String,
    /// Tor exit addresses some attacks come from (configure `new-network-origin` with them).
    pub tor_exits: Vec<String>,
}

impl Dataset {
    /// A decision policy for this dataset: dry-run, the allowlist and internal domain.
    pub fn policy_json(&self) -> String {
        serde_json::to_string_pretty(&serde_json::json!({
            "mode": "dry-run",
            "min_score": 0.5,
            "allowlist": {"users": self.allowlisted},
            "internal_domains": [self.internal_domain],
            "cooldown_minutes": 60,
            "loop_guard": {"max_resets": 2, "window_hours": 24},
            "max_responses_per_hour": 20
        }))
        .expect("a JSON value serialises")
    }

    /// The `new-network-origin` configuration for this dataset (its Tor exit list).
    pub fn new_network_origin_config(&self) -> String {
        serde_json::json!({ "tor_exits": self.tor_exits }).to_string()
    }
}

/// The random source of a dataset: a documented, portable generator, so a seed means
/// the same dataset on every machine.
pub(crate) type Rng = Xoshiro256PlusPlus;

/// Generate a dataset.
pub fn generate(config: &GenConfig) -> Dataset {
    let mut rng = Rng::seed_from_u64(config.seed);
    let people = population::Population::new(config, &mut rng);
    let mut out = traffic::Sink::new(config.seed);
    let plans = traffic::normal(config, &people, &mut rng, &mut out);
    let mut labels = Vec::new();
    scenarios::add_all(config, &people, &plans, &mut rng, &mut out, &mut labels);
    let mut events = out.events;
    events.sort_by_key(|e| e.time_ms);
    labels.sort_by(|a, b| (a.start_ms, &a.subject).cmp(&(b.start_ms, &b.subject)));
    Dataset {
        events,
        labels,
        allowlisted: people.allowlisted(),
        internal_domain: population::DOMAIN.to_owned(),
        tor_exits: population::TOR_EXITS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> GenConfig {
        GenConfig {
            users: 60,
            days: 14,
            messages_per_day: 20.0,
            ..GenConfig::default()
        }
    }

    #[test]
    fn a_seed_gives_the_same_dataset() {
        let a = generate(&small());
        let b = generate(&small());
        assert_eq!(a.events, b.events);
        assert_eq!(a.labels, b.labels);
        let c = generate(&GenConfig { seed: 7, ..small() });
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn events_are_in_time_order_with_unique_ids() {
        let d = generate(&small());
        assert!(d.events.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
        let ids: std::collections::HashSet<&str> = d.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), d.events.len());
    }

    #[test]
    fn every_detector_has_attacks_and_labels_lie_inside_the_data() {
        let d = generate(&small());
        let first = d.events.first().map(|e| e.time_ms).unwrap_or(0);
        let last = d.events.last().map(|e| e.time_ms).unwrap_or(0);
        for detector in crate::labels::DETECTORS {
            let n = d
                .labels
                .iter()
                .filter(|l| l.detector == *detector && l.kind == crate::labels::LabelKind::Attack)
                .count();
            assert!(n >= 2, "{detector}: {n} attacks");
        }
        for l in &d.labels {
            assert!(
                l.start_ms >= first && l.end_ms <= last && l.start_ms <= l.end_ms,
                "{l:?}"
            );
        }
    }

    #[test]
    fn rendered_events_parse_back_to_the_same_events() {
        let d = generate(&GenConfig {
            users: 30,
            days: 2,
            messages_per_day: 5.0,
            ..GenConfig::default()
        });
        for e in d.events.iter().step_by(7) {
            let json = to_json(e);
            let back = crate::ingest::parse_value(serde_json::from_str(&json).unwrap()).unwrap();
            assert_eq!(&back, e, "{json}");
        }
    }
}
