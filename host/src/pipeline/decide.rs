//! The decision engine: validates findings against the tenant's policy before anything
//! happens, and records every decision with its reason, whichever way it went.
//!
//! Checks, in order: detector enabled; suppressions a person made (see
//! [`super::suppress`]); minimum score; allowlisted users, groups and
//! IP ranges; external accounts (never acted on); findings that rest on AER's own
//! session resets; corroboration (N findings from M detectors within a window);
//! cooldown per subject; the termination-loop guard (K resets of one user within a
//! window escalate to humans instead); the tenant-wide cap on responses per hour
//! (a circuit breaker against a runaway detector, which escalates too); then dry-run
//! or enforce. Every escalation opens a review for a person (see `ledger::reviews`).
//!
//! Time is event time throughout (the finding's `time_ms`), so replaying history gives
//! the same decisions.
//!
//! Order: every driver decides findings in [`DecisionOrder`] (by position in the inbox,
//! then detector, then the order the detector reported them), only below the position
//! every detector keeping pace has passed ([`decidable_below`]), and has the engine
//! observe the events up to a finding's position, and no further, before deciding it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::policy::{FieldError, Mode, Policy, parse_cidr};
use super::suppress::Suppression;
use crate::Event;
use crate::records::FindingRecord;
pub use crate::records::{DecisionRecord, Outcome};

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// Actions by which a user's sessions were reset (by AER, an admin or Slack itself).
pub const RESET_ACTIONS: [&str; 3] = [
    "user_session_reset_by_admin",
    "user_sessions_reset_by_anomaly_event_response",
    "user_session_invalidated",
];
const REMEMBERED_RESET_EVENTS: usize = 10_000;

/// Where a finding stands in the order decisions are made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DecisionOrder {
    /// Seq of the event the finding is dated from (see
    /// [`crate::plugin::output::finding_times`]).
    pub position: u64,
    /// The detector that made it.
    pub plugin: String,
    /// Its place among that detector's findings (report order).
    pub index: u64,
}

/// The position below which findings may be decided: no finding before it can come
/// any more from a detector that keeps pace. A detector keeps pace when its cursor is
/// at or past `observed` (where the engine has observed to); it then makes findings
/// only at its cursor or later. One behind (new, or enabled again after a pause) is
/// catching up: its findings are decided as they come, late, rather than holding every
/// other detector's responses back while it catches up. `stored` is the inbox's next
/// seq. `cursors` are those of the enabled detectors a driver counts as keeping pace
/// (the daemon leaves out one recovering from a fault, which then falls behind).
pub fn decidable_below(cursors: impl IntoIterator<Item = u64>, observed: u64, stored: u64) -> u64 {
    cursors
        .into_iter()
        .filter(|&c| c >= observed)
        .min()
        .unwrap_or(stored)
        .min(stored)
}

/// What the engine remembers of an event.
struct Observed<'a> {
    id: &'a str,
    time_ms: i64,
    action: &'a str,
    actor_id: &'a str,
    actor_email: &'a str,
    target_id: Option<&'a str>,
    account_type: &'a str,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Recent {
    time_ms: i64,
    rule: String,
}

/// The engine's memory, serialisable so the daemon can persist it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineState {
    recent: BTreeMap<String, VecDeque<Recent>>,
    last_response: BTreeMap<String, i64>,
    resets: BTreeMap<String, VecDeque<i64>>,
    responses: VecDeque<i64>,
    external: BTreeSet<String>,
    reset_events: VecDeque<String>,
}

/// The decision engine of one tenant.
#[derive(Debug, Clone)]
pub struct DecisionEngine {
    policy: Policy,
    cidrs: Vec<IpNet>,
    state: EngineState,
    suppressions: Vec<Suppression>,
}

impl DecisionEngine {
    /// An engine for a validated policy, with empty memory.
    pub fn new(policy: Policy) -> Result<Self, Vec<FieldError>> {
        Self::with_state(policy, EngineState::default())
    }

    /// An engine resuming from saved memory.
    pub fn with_state(policy: Policy, state: EngineState) -> Result<Self, Vec<FieldError>> {
        policy.validate()?;
        let cidrs = policy
            .allowlist
            .cidrs
            .iter()
            .filter_map(|c| parse_cidr(c))
            .collect();
        Ok(DecisionEngine {
            policy,
            cidrs,
            state,
            suppressions: Vec::new(),
        })
    }

    /// The engine honouring `suppressions` (see [`super::suppress`]).
    pub fn with_suppressions(mut self, suppressions: Vec<Suppression>) -> Self {
        self.suppressions = suppressions;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The engine's memory, to persist.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Learn from an event: session resets (for the loop guard, including the ones AER
    /// itself caused, which come back through the audit log) and external accounts.
    pub fn observe(&mut self, event: &Event) {
        self.observe_parts(Observed {
            id: &event.id,
            time_ms: event.time_ms,
            action: &event.action,
            actor_id: &event.actor.id,
            actor_email: &event.actor.email,
            target_id: event.target.as_ref().map(|t| t.id.as_str()),
            account_type: event.detail("actor.account_type").unwrap_or(""),
        });
    }

    /// [`DecisionEngine::observe`] for a borrowed event (as the daemon reads them from
    /// its inbox, without copying).
    pub fn observe_ref(&mut self, event: &aer_wire::EventRef<'_>) {
        self.observe_parts(Observed {
            id: event.id,
            time_ms: event.time_ms,
            action: event.action,
            actor_id: event.actor.id,
            actor_email: event.actor.email,
            target_id: event.target.as_ref().map(|t| t.id),
            account_type: event.detail("actor.account_type").unwrap_or(""),
        });
    }

    fn observe_parts(&mut self, event: Observed<'_>) {
        if RESET_ACTIONS.contains(&event.action) {
            let user = event.target_id.unwrap_or(event.actor_id);
            let resets = self.state.resets.entry(user.to_owned()).or_default();
            // AER's own response was already counted when it was decided; an echo of
            // it (same user, within a minute) is not a second reset.
            let time_ms = aer_wire::time::clamp(event.time_ms);
            if !resets
                .iter()
                .any(|t| time_ms.abs_diff(*t) < MINUTE_MS.unsigned_abs())
            {
                resets.push_back(time_ms);
            }
            self.state.reset_events.push_back(event.id.to_owned());
            if self.state.reset_events.len() > REMEMBERED_RESET_EVENTS {
                self.state.reset_events.pop_front();
            }
        }
        if matches!(
            event.account_type,
            "external" | "slack_connect" | "guest_external"
        ) || self.outside_domains(event.actor_email)
        {
            self.state.external.insert(event.actor_id.to_owned());
        }
    }

    fn outside_domains(&self, email: &str) -> bool {
        let domains = &self.policy.internal_domains;
        if domains.is_empty() || email.is_empty() {
            return false;
        }
        let domain = email.rsplit('@').next().unwrap_or("");
        !domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn allowlisted(&self, f: &FindingRecord) -> Option<String> {
        let a = &self.policy.allowlist;
        if a.users
            .iter()
            .any(|u| *u == f.subject || f.attributes.get("email") == Some(u))
        {
            return Some(format!("{} is allowlisted", f.subject));
        }
        for g in &a.groups {
            if self
                .policy
                .groups
                .get(g)
                .is_some_and(|m| m.contains(&f.subject))
            {
                return Some(format!("{} is in allowlisted group {g}", f.subject));
            }
        }
        let ip = f
            .attributes
            .get("ip")
            .and_then(|ip| ip.parse::<IpAddr>().ok())?;
        self.cidrs
            .iter()
            .find(|n| n.contains(&ip))
            .map(|net| format!("address {ip} is in allowlisted range {net}"))
    }

    /// Decide what to do about one finding.
    pub fn decide(&mut self, finding: &FindingRecord) -> DecisionRecord {
        let (outcome, reason, rules) = self.judge(finding);
        let mut id = Sha256::new();
        for part in [&finding.plugin, &finding.rule, &finding.subject] {
            id.update(part.as_bytes());
            id.update([0]);
        }
        id.update(finding.time_ms.to_le_bytes());
        for e in &finding.evidence {
            id.update(e.as_bytes());
            id.update([0]);
        }
        DecisionRecord {
            id: hex::encode(&id.finalize()[..12]),
            time_ms: finding.time_ms,
            subject: finding.subject.clone(),
            outcome,
            reason,
            finding: finding.clone(),
            corroborating_rules: rules,
        }
    }

    fn judge(&mut self, f: &FindingRecord) -> (Outcome, String, Vec<String>) {
        let suppressed = |reason: String| (Outcome::Suppressed, reason, Vec::new());
        let rule = self
            .policy
            .detectors
            .get(&f.rule)
            .cloned()
            .unwrap_or_default();
        if !rule.enabled {
            return suppressed(format!("detector rule {} is disabled", f.rule));
        }
        if let Some(s) = self
            .suppressions
            .iter()
            .find(|s| s.covers(&f.subject, &f.rule, f.time_ms))
        {
            return suppressed(s.reason());
        }
        let min = rule.min_score.unwrap_or(self.policy.min_score);
        // A NaN (from a record stored before scores were checked at the plugin
        // boundary) is below every minimum.
        if f.score.is_nan() || f.score < min {
            return suppressed(format!(
                "score {:.2} is below the minimum {min:.2}",
                f.score
            ));
        }
        if let Some(why) = self.allowlisted(f) {
            return suppressed(why);
        }
        if self.state.external.contains(&f.subject)
            || self.outside_domains(f.attributes.get("email").map_or("", String::as_str))
        {
            return suppressed(format!(
                "{} is an external account: never acted on",
                f.subject
            ));
        }
        if !f.evidence.is_empty()
            && f.evidence
                .iter()
                .all(|e| self.state.reset_events.contains(e))
        {
            return suppressed(
                "the finding rests only on session resets: AER does not feed on its own effects"
                    .into(),
            );
        }

        // Corroboration within the window. Times are clamped into the accepted range and
        // the policy's durations are bounded (`Policy::validate`), so no difference or
        // window below can overflow, whatever a stored record holds.
        let t = aer_wire::time::clamp(f.time_ms);
        let c = &self.policy.corroboration;
        let window = c.window_minutes.saturating_mul(MINUTE_MS);
        let recent = self.state.recent.entry(f.subject.clone()).or_default();
        recent.retain(|r| t.saturating_sub(r.time_ms) < window);
        recent.push_back(Recent {
            time_ms: t,
            rule: f.rule.clone(),
        });
        let rules: BTreeSet<&str> = recent.iter().map(|r| r.rule.as_str()).collect();
        let rules: Vec<String> = rules.into_iter().map(str::to_owned).collect();
        if (recent.len() as u32) < c.min_findings || (rules.len() as u32) < c.min_detectors {
            return (
                Outcome::Pending,
                format!(
                    "awaiting corroboration: {} of {} findings and {} of {} detectors within {} min",
                    recent.len(),
                    c.min_findings,
                    rules.len(),
                    c.min_detectors,
                    c.window_minutes
                ),
                rules,
            );
        }

        if let Some(last) = self.state.last_response.get(&f.subject) {
            let cooldown = self.policy.cooldown_minutes.saturating_mul(MINUTE_MS);
            if t.saturating_sub(*last) < cooldown {
                return suppressed(format!(
                    "cooldown: {} was responded to {} min ago (cooldown {} min)",
                    f.subject,
                    t.saturating_sub(*last) / MINUTE_MS,
                    self.policy.cooldown_minutes
                ));
            }
        }

        let guard = &self.policy.loop_guard;
        let resets = self.state.resets.entry(f.subject.clone()).or_default();
        let guard_window = guard.window_hours.saturating_mul(HOUR_MS);
        resets.retain(|r| t.saturating_sub(*r) < guard_window);
        if resets.len() as u32 >= guard.max_resets {
            return (
                Outcome::Escalate,
                format!(
                    "loop guard: {} had {} session resets in {} h; escalated to humans instead of another reset",
                    f.subject,
                    resets.len(),
                    guard.window_hours
                ),
                rules,
            );
        }

        self.state
            .responses
            .retain(|r| t.saturating_sub(*r) < HOUR_MS);
        if self.state.responses.len() as u32 >= self.policy.max_responses_per_hour {
            return (
                Outcome::Escalate,
                format!(
                    "circuit breaker: {} responses in the last hour, the cap is {}; escalated to humans",
                    self.state.responses.len(),
                    self.policy.max_responses_per_hour
                ),
                rules,
            );
        }

        // Respond (or record that it would): remember it for cooldown, cap and guard.
        self.state.responses.push_back(t);
        self.state.last_response.insert(f.subject.clone(), t);
        resets.push_back(t);
        let corroborated = self.state.recent.remove(&f.subject).map_or(1, |r| r.len());
        let mut because = format!("{} (score {:.2})", f.rule, f.score);
        if corroborated > 1 {
            because.push_str(&format!(
                "; corroborated by {corroborated} findings from {}",
                rules.join(", ")
            ));
        }
        match self.policy.mode {
            Mode::Enforce => (Outcome::Respond, format!("respond: {because}"), rules),
            Mode::DryRun => (
                Outcome::DryRun,
                format!("dry-run, would respond: {because}"),
                rules,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::policy::{Corroboration, DetectorRule, LoopGuard};
    use aer_wire::Entity;

    fn finding(rule: &str, subject: &str, t: i64, score: f32) -> FindingRecord {
        FindingRecord {
            rule: rule.into(),
            subject: subject.into(),
            score,
            severity: "high".into(),
            summary: String::new(),
            evidence: vec![format!("{rule}-{subject}-{t}")],
            attributes: BTreeMap::new(),
            time_ms: t,
            plugin: rule.into(),
            plugin_version: "1".into(),
        }
    }

    fn engine(policy: Policy) -> DecisionEngine {
        DecisionEngine::new(policy).expect("valid policy")
    }

    fn enforce() -> Policy {
        Policy {
            mode: Mode::Enforce,
            ..Policy::default()
        }
    }

    #[test]
    fn responds_in_enforce_and_records_in_dry_run() {
        let mut e = engine(enforce());
        let d = e.decide(&finding("r", "U1", 0, 0.9));
        assert_eq!(d.outcome, Outcome::Respond, "{}", d.reason);
        let mut e = engine(Policy::default());
        let d = e.decide(&finding("r", "U1", 0, 0.9));
        assert_eq!(d.outcome, Outcome::DryRun);
        assert!(
            d.reason.starts_with("dry-run, would respond"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn disabled_rules_and_low_scores_are_suppressed() {
        let mut p = enforce();
        p.detectors.insert(
            "off".into(),
            DetectorRule {
                enabled: false,
                min_score: None,
            },
        );
        p.detectors.insert(
            "strict".into(),
            DetectorRule {
                enabled: true,
                min_score: Some(0.95),
            },
        );
        let mut e = engine(p);
        assert!(
            e.decide(&finding("off", "U1", 0, 1.0))
                .reason
                .contains("disabled")
        );
        let d = e.decide(&finding("strict", "U1", 0, 0.9));
        assert_eq!(d.outcome, Outcome::Suppressed);
        assert!(d.reason.contains("below the minimum 0.95"), "{}", d.reason);
        assert_eq!(
            e.decide(&finding("other", "U1", 0, 0.4)).outcome,
            Outcome::Suppressed
        );
    }

    #[test]
    fn allowlists_users_groups_and_ranges() {
        let mut p = enforce();
        p.allowlist.users = vec!["U1".into(), "boss@acme.example".into()];
        p.allowlist.groups = vec!["it".into()];
        p.groups.insert("it".into(), vec!["U2".into()]);
        p.allowlist.cidrs = vec!["10.0.0.0/8".into(), "192.0.2.7".into()];
        let mut e = engine(p);
        assert!(
            e.decide(&finding("r", "U1", 0, 1.0))
                .reason
                .contains("U1 is allowlisted")
        );
        assert!(
            e.decide(&finding("r", "U2", 0, 1.0))
                .reason
                .contains("group it")
        );
        let mut f = finding("r", "U3", 0, 1.0);
        f.attributes.insert("ip".into(), "10.2.3.4".into());
        assert!(e.decide(&f).reason.contains("10.0.0.0/8"));
        f.attributes.insert("ip".into(), "192.0.2.7".into());
        assert!(e.decide(&f).reason.contains("192.0.2.7/32"));
        let mut f = finding("r", "U4", 0, 1.0);
        f.attributes
            .insert("email".into(), "boss@acme.example".into());
        assert_eq!(e.decide(&f).outcome, Outcome::Suppressed);
        assert_eq!(
            e.decide(&finding("r", "U5", 0, 1.0)).outcome,
            Outcome::Respond
        );
    }

    #[test]
    fn external_accounts_are_never_acted_on() {
        let mut p = enforce();
        p.internal_domains = vec!["acme.example".into()];
        let mut e = engine(p);
        let mut ev = Event {
            id: "e".into(),
            action: "file_downloaded".into(),
            actor: Entity {
                id: "X1".into(),
                email: "x@partner.example".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        e.observe(&ev);
        ev.actor = Entity {
            id: "X2".into(),
            email: "x2@acme.example".into(),
            ..Default::default()
        };
        ev.details = vec![("actor.account_type".into(), "external".into())];
        e.observe(&ev);
        for user in ["X1", "X2"] {
            let d = e.decide(&finding("r", user, 0, 1.0));
            assert_eq!(d.outcome, Outcome::Suppressed);
            assert!(d.reason.contains("external"), "{}", d.reason);
        }
        assert_eq!(
            e.decide(&finding("r", "U1", 0, 1.0)).outcome,
            Outcome::Respond
        );
    }

    #[test]
    fn corroboration_needs_findings_from_enough_detectors() {
        let mut p = enforce();
        p.corroboration = Corroboration {
            min_findings: 2,
            min_detectors: 2,
            window_minutes: 10,
        };
        let mut e = engine(p);
        let d = e.decide(&finding("a", "U1", 0, 1.0));
        assert_eq!(d.outcome, Outcome::Pending);
        assert!(d.reason.contains("1 of 2 findings"), "{}", d.reason);
        // Same detector again: still one detector.
        assert_eq!(
            e.decide(&finding("a", "U1", MINUTE_MS, 1.0)).outcome,
            Outcome::Pending
        );
        // Another detector, but outside the window of the first two.
        assert_eq!(
            e.decide(&finding("b", "U1", 20 * MINUTE_MS, 1.0)).outcome,
            Outcome::Pending
        );
        let d = e.decide(&finding("a", "U1", 21 * MINUTE_MS, 1.0));
        assert_eq!(d.outcome, Outcome::Respond, "{}", d.reason);
        assert_eq!(
            d.corroborating_rules,
            vec!["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn cooldown_then_loop_guard_then_escalation() {
        let mut p = enforce();
        p.cooldown_minutes = 30;
        p.loop_guard = LoopGuard {
            max_resets: 2,
            window_hours: 24,
        };
        let mut e = engine(p);
        assert_eq!(
            e.decide(&finding("r", "U1", 0, 1.0)).outcome,
            Outcome::Respond
        );
        // AER's reset comes back through the audit log: not a second reset...
        let echo = Event {
            id: "reset-1".into(),
            time_ms: 5_000,
            action: "user_session_reset_by_admin".into(),
            target: Some(Entity {
                id: "U1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        e.observe(&echo);
        // ...and a finding resting only on it is never acted on.
        let mut f = finding("session-fingerprint", "U1", 40 * MINUTE_MS, 1.0);
        f.evidence = vec!["reset-1".into()];
        assert!(e.decide(&f).reason.contains("own effects"));
        let d = e.decide(&finding("r", "U1", 10 * MINUTE_MS, 1.0));
        assert_eq!(d.outcome, Outcome::Suppressed);
        assert!(d.reason.starts_with("cooldown"), "{}", d.reason);
        assert_eq!(
            e.decide(&finding("r", "U1", 60 * MINUTE_MS, 1.0)).outcome,
            Outcome::Respond
        );
        let d = e.decide(&finding("r", "U1", 120 * MINUTE_MS, 1.0));
        assert_eq!(d.outcome, Outcome::Escalate, "{}", d.reason);
        assert!(
            d.reason.contains("2 session resets in 24 h"),
            "{}",
            d.reason
        );
        // A day later the guard has forgotten.
        assert_eq!(
            e.decide(&finding("r", "U1", 25 * 60 * MINUTE_MS, 1.0))
                .outcome,
            Outcome::Respond
        );
    }

    #[test]
    fn the_response_cap_trips_the_circuit_breaker() {
        let mut p = enforce();
        p.max_responses_per_hour = 3;
        let mut e = engine(p);
        let outcomes: Vec<Outcome> = (0..5)
            .map(|i| {
                e.decide(&finding("r", &format!("U{i}"), i * MINUTE_MS, 1.0))
                    .outcome
            })
            .collect();
        assert_eq!(&outcomes[..3], &[Outcome::Respond; 3]);
        assert_eq!(&outcomes[3..], &[Outcome::Escalate; 2]);
        assert!(
            e.decide(&finding("r", "U9", 10 * MINUTE_MS, 1.0))
                .reason
                .contains("circuit breaker")
        );
        assert_eq!(
            e.decide(&finding("r", "U9", 61 * MINUTE_MS, 1.0)).outcome,
            Outcome::Respond
        );
    }

    #[test]
    fn findings_are_decidable_below_every_detector_keeping_pace() {
        // Keeping pace: below the slower one.
        assert_eq!(decidable_below([300, 500], 200, 1_000), 300);
        // One catching up (behind what the engine observed) holds nobody back.
        assert_eq!(decidable_below([10, 500], 200, 1_000), 500);
        // None enabled: everything stored.
        assert_eq!(decidable_below([], 200, 1_000), 1_000);
        assert_eq!(decidable_below([2_000], 0, 1_000), 1_000);
    }

    #[test]
    fn decisions_are_deterministic() {
        let run = || {
            let mut e = engine(enforce());
            (0..10)
                .map(|i| e.decide(&finding("r", &format!("U{}", i % 3), i * MINUTE_MS, 1.0)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    // Regression: findings dated at the i64 limits (a guest's word, or a record stored
    // before the host dated findings) overflowed the engine's windows.
    #[test]
    fn extreme_times_and_scores_never_overflow_or_pass_the_minimum() {
        let mut e = engine(enforce());
        for t in [i64::MAX, i64::MIN, 0, i64::MAX, i64::MIN] {
            let d = e.decide(&finding("r", "U1", t, 1.0));
            assert_ne!(d.outcome, Outcome::Pending);
        }
        // After a response at the latest time, the cooldown still holds.
        assert!(
            e.decide(&finding("r", "U1", i64::MAX, 1.0))
                .reason
                .contains("cooldown")
        );
        let d = e.decide(&finding("r", "U2", 5, f32::NAN));
        assert_eq!(d.outcome, Outcome::Suppressed, "{}", d.reason);
        let mut reset = crate::Event {
            id: "r1".into(),
            time_ms: i64::MIN,
            action: RESET_ACTIONS[0].into(),
            ..Default::default()
        };
        reset.actor.id = "U3".into();
        e.observe(&reset);
        reset.time_ms = i64::MAX;
        e.observe(&reset);
    }
}
