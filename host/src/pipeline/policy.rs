//! A tenant's decision policy: what the decision engine ([`super::decide`]) checks a
//! finding against, and where responses go. Every field is validated by name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::host_api::actions::EffectKind;

/// Bounds of the policy's durations and counts: beyond them a value cannot be meant,
/// and the engine's memory (findings kept per subject, responses per hour) stays small.
const MAX_CORROBORATION_MINUTES: i64 = 30 * 24 * 60;
const MAX_CORROBORATION_FINDINGS: u32 = 1_000;
const MAX_COOLDOWN_MINUTES: i64 = 365 * 24 * 60;
const MAX_LOOP_GUARD_HOURS: i64 = 365 * 24;
const MAX_LOOP_GUARD_RESETS: u32 = 1_000;
const MAX_RESPONSES_PER_HOUR: u32 = 1_000_000;

/// Whether the tenant's decisions act or only record what they would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Responders perform effects.
    Enforce,
    /// Decisions are recorded; responders run with effects recorded, not performed.
    #[default]
    DryRun,
}

/// Per-detector (per rule id) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorRule {
    /// Whether findings of this rule may lead to a response.
    pub enabled: bool,
    /// Minimum score for this rule (overrides the policy's).
    pub min_score: Option<f32>,
}

impl Default for DetectorRule {
    fn default() -> Self {
        DetectorRule {
            enabled: true,
            min_score: None,
        }
    }
}

/// Who is never acted on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Allowlist {
    /// User ids or email addresses.
    pub users: Vec<String>,
    /// Group names (members listed in [`Policy::groups`]).
    pub groups: Vec<String>,
    /// IP ranges in CIDR notation; a finding whose `ip` attribute falls inside is not acted on.
    pub cidrs: Vec<String>,
}

/// How much agreement a response needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Corroboration {
    /// Findings about the subject needed within the window.
    pub min_findings: u32,
    /// Distinct rules among them.
    pub min_detectors: u32,
    /// The window, in minutes of event time.
    pub window_minutes: i64,
}

impl Default for Corroboration {
    fn default() -> Self {
        Corroboration {
            min_findings: 1,
            min_detectors: 1,
            window_minutes: 60,
        }
    }
}

/// The termination-loop guard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopGuard {
    /// Resets of one user within the window after which AER escalates instead.
    pub max_resets: u32,
    /// The window, in hours of event time.
    pub window_hours: i64,
}

impl Default for LoopGuard {
    fn default() -> Self {
        LoopGuard {
            max_resets: 2,
            window_hours: 24,
        }
    }
}

/// A tenant's decision policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Enforce or dry-run.
    pub mode: Mode,
    /// Minimum finding score, 0..1.
    pub min_score: f32,
    /// Per-rule settings, keyed by rule id.
    pub detectors: BTreeMap<String, DetectorRule>,
    /// Who is never acted on.
    pub allowlist: Allowlist,
    /// Group name to member user ids (for [`Allowlist::groups`]).
    pub groups: BTreeMap<String, Vec<String>>,
    /// Email domains of the organisation; when set, users of other domains are
    /// external and never acted on.
    pub internal_domains: Vec<String>,
    /// Agreement needed before acting.
    pub corroboration: Corroboration,
    /// Minutes after a response during which the same subject is not acted on again.
    pub cooldown_minutes: i64,
    /// The termination-loop guard.
    pub loop_guard: LoopGuard,
    /// Most responses in any hour, tenant-wide.
    pub max_responses_per_hour: u32,
    /// Where responses go: the Slack API and notification channels.
    pub responses: ResponseSettings,
    /// Which decisions are announced where, besides what responders send.
    pub notifications: Notifications,
}

/// Bounds of notification routes.
const MAX_ROUTES: usize = 50;
const MAX_ROUTE_CHANNELS: usize = 10;
const MAX_DEDUP_MINUTES: i64 = 30 * 24 * 60;
const MAX_DIGEST_SECONDS: u64 = 24 * 3600;

/// Which decisions are announced where (see [`super::notify`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    /// The channel every review goes to (escalations, effects waiting for approval),
    /// with a link to it, whatever the routes say; none: the channel named `security`
    /// if the policy maps one.
    pub security_route: Option<String>,
    /// Routes, each checked against every decision.
    pub routes: Vec<Route>,
}

/// One notification route: decisions it takes, and where they go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// Its name (unique).
    pub name: String,
    /// Outcomes it takes (`respond`, `dry-run`, `escalate`, `suppressed`, `pending`);
    /// empty: all but `pending`.
    pub outcomes: Vec<crate::records::Outcome>,
    /// The least severity it takes (`info` to `critical`); none: any.
    pub min_severity: Option<String>,
    /// Rules it takes; empty: any.
    pub rules: Vec<String>,
    /// Channels of `responses.slack_channels` or `responses.webhooks` it sends to.
    pub to: Vec<String>,
    /// Minutes of event time after a message about a subject and rule during which
    /// the route sends no other about them (0: every decision).
    pub dedup_minutes: i64,
    /// Seconds between digests: decisions gather and go as one summary each period
    /// (0: one message each).
    pub digest_seconds: u64,
    /// `text`, or `ocsf`: webhooks get OCSF Detection Finding JSON (class 2004).
    pub format: RouteFormat,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            name: String::new(),
            outcomes: Vec::new(),
            min_severity: None,
            rules: Vec::new(),
            to: Vec::new(),
            dedup_minutes: 0,
            digest_seconds: 0,
            format: RouteFormat::Text,
        }
    }
}

/// What a route's messages look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteFormat {
    /// One line for people (a Slack message, or the same JSON to a webhook).
    Text,
    /// An OCSF Detection Finding (`class_uid` 2004) per decision, to webhooks only.
    Ocsf,
}

/// The rank of a severity name (`info` 0 to `critical` 4).
pub fn severity_rank(name: &str) -> Option<u8> {
    ["info", "low", "medium", "high", "critical"]
        .iter()
        .position(|s| *s == name)
        .map(|i| i as u8)
}

/// Where the host performs responders' effects, with credentials plugins never see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSettings {
    /// Base URL of the Slack Web API (`admin.users.session.reset` is called under it).
    pub slack_api_url: String,
    /// Slack token with `admin.users:write`; shown redacted when the policy is read.
    pub slack_token: Option<String>,
    /// Notification channel name to webhook URL (JSON POST).
    pub webhooks: BTreeMap<String, String>,
    /// Notification channel name to Slack channel id: notifications to it are posted
    /// with `chat.postMessage` and the tenant's token (taking precedence over a webhook).
    pub slack_channels: BTreeMap<String, String>,
    /// Attempts per effect when Slack answers 429 (waiting `Retry-After`, at most 30 s).
    pub max_attempts: u32,
    /// Effect kind (`end-session`, `restrict-app`, ...) to `auto` (performed at once)
    /// or `approval` (waits in a review for a person); kinds not named keep their
    /// default: session effects and notifications `auto`, the rest `approval`.
    pub effects: BTreeMap<String, EffectMode>,
    /// The Slack organisation (`E...`) or workspace (`T...`) that app and admin effects
    /// apply in (`admin.apps.restrict`, `admin.apps.uninstall`, `admin.users.setRegular`).
    pub slack_org_id: Option<String>,
    /// Base URL of Slack's SCIM API (users are deactivated with `DELETE /Users/{id}`).
    pub scim_api_url: String,
}

/// Whether an effect kind runs at once or waits for a person's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EffectMode {
    /// Performed as soon as a responder asks (in enforce mode).
    Auto,
    /// Held in a review until a person approves it.
    Approval,
}

impl ResponseSettings {
    /// Whether effects of `kind` wait for a person's approval.
    pub fn needs_approval(&self, kind: EffectKind) -> bool {
        match self.effects.get(kind.name()) {
            Some(mode) => *mode == EffectMode::Approval,
            None => kind.needs_approval_by_default(),
        }
    }
}

impl Default for ResponseSettings {
    fn default() -> Self {
        ResponseSettings {
            slack_api_url: "https://slack.com/api".into(),
            slack_token: None,
            webhooks: BTreeMap::new(),
            slack_channels: BTreeMap::new(),
            max_attempts: 3,
            effects: BTreeMap::new(),
            slack_org_id: None,
            scim_api_url: "https://api.slack.com/scim/v1".into(),
        }
    }
}

/// What a secret reads back as.
pub const REDACTED: &str = "********";

impl Policy {
    /// The policy with secrets replaced by [`REDACTED`] (for reading back).
    pub fn redacted(&self) -> Policy {
        let mut p = self.clone();
        if p.responses.slack_token.is_some() {
            p.responses.slack_token = Some(REDACTED.into());
        }
        p
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::DryRun,
            min_score: 0.5,
            detectors: BTreeMap::new(),
            allowlist: Allowlist::default(),
            groups: BTreeMap::new(),
            internal_domains: Vec::new(),
            corroboration: Corroboration::default(),
            cooldown_minutes: 60,
            loop_guard: LoopGuard::default(),
            max_responses_per_hour: 20,
            responses: ResponseSettings::default(),
            notifications: Notifications::default(),
        }
    }
}

/// One invalid policy field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Dotted path of the field, e.g. `allowlist.cidrs[2]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Policy {
    /// Parse a policy from JSON and check every field; errors name the fields.
    pub fn from_json(json: &str) -> Result<Policy, Vec<FieldError>> {
        let policy: Policy = serde_json::from_str(json).map_err(|e| {
            vec![FieldError {
                field: "(policy)".into(),
                message: e.to_string(),
            }]
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Check every field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: &str| {
            errors.push(FieldError {
                field,
                message: message.into(),
            })
        };
        if !(0.0..=1.0).contains(&self.min_score) {
            err("min_score".into(), "must be between 0 and 1");
        }
        for (rule, d) in &self.detectors {
            if d.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
                err(
                    format!("detectors.{rule}.min_score"),
                    "must be between 0 and 1",
                );
            }
        }
        for (i, c) in self.allowlist.cidrs.iter().enumerate() {
            if parse_cidr(c).is_none() {
                err(
                    format!("allowlist.cidrs[{i}]"),
                    "not an IP address or CIDR range",
                );
            }
        }
        for (i, g) in self.allowlist.groups.iter().enumerate() {
            if !self.groups.contains_key(g) {
                err(
                    format!("allowlist.groups[{i}]"),
                    "no such group in `groups`",
                );
            }
        }
        let c = &self.corroboration;
        if c.min_findings < 1 {
            err("corroboration.min_findings".into(), "must be at least 1");
        }
        if c.min_detectors < 1 || c.min_detectors > c.min_findings {
            err(
                "corroboration.min_detectors".into(),
                "must be at least 1 and at most min_findings",
            );
        }
        if c.min_findings > MAX_CORROBORATION_FINDINGS {
            err(
                "corroboration.min_findings".into(),
                &format!("must be at most {MAX_CORROBORATION_FINDINGS}"),
            );
        }
        if !(1..=MAX_CORROBORATION_MINUTES).contains(&c.window_minutes) {
            err(
                "corroboration.window_minutes".into(),
                &format!("must be from 1 to {MAX_CORROBORATION_MINUTES} (30 days)"),
            );
        }
        if !(0..=MAX_COOLDOWN_MINUTES).contains(&self.cooldown_minutes) {
            err(
                "cooldown_minutes".into(),
                &format!("must be from 0 to {MAX_COOLDOWN_MINUTES} (365 days)"),
            );
        }
        if !(1..=MAX_LOOP_GUARD_RESETS).contains(&self.loop_guard.max_resets) {
            err(
                "loop_guard.max_resets".into(),
                &format!("must be from 1 to {MAX_LOOP_GUARD_RESETS}"),
            );
        }
        if !(1..=MAX_LOOP_GUARD_HOURS).contains(&self.loop_guard.window_hours) {
            err(
                "loop_guard.window_hours".into(),
                &format!("must be from 1 to {MAX_LOOP_GUARD_HOURS} (365 days)"),
            );
        }
        let r = &self.responses;
        if !(r.slack_api_url.starts_with("http://") || r.slack_api_url.starts_with("https://")) {
            err("responses.slack_api_url".into(), "must be an http(s) URL");
        }
        for (name, url) in &r.webhooks {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                err(
                    format!("responses.webhooks.{name}"),
                    "must be an http(s) URL",
                );
            }
        }
        for (name, id) in &r.slack_channels {
            if id.trim().is_empty() {
                err(
                    format!("responses.slack_channels.{name}"),
                    "must be a Slack channel id",
                );
            }
        }
        if !(r.scim_api_url.starts_with("http://") || r.scim_api_url.starts_with("https://")) {
            err("responses.scim_api_url".into(), "must be an http(s) URL");
        }
        for (name, mode) in &r.effects {
            match EffectKind::from_name(name) {
                None => err(
                    format!("responses.effects.{name}"),
                    &format!(
                        "no such effect; the effects are {}",
                        EffectKind::ALL.map(EffectKind::name).join(", ")
                    ),
                ),
                Some(EffectKind::Notify) if *mode == EffectMode::Approval => err(
                    format!("responses.effects.{name}"),
                    "notifications are never held for approval",
                ),
                Some(_) => {}
            }
        }
        if let Some(org) = &r.slack_org_id
            && !aer_wire::slack::is_id(org, &['E', 'T'])
        {
            err(
                "responses.slack_org_id".into(),
                "must be a Slack organisation (E...) or workspace (T...) id",
            );
        }
        let n = &self.notifications;
        let mapped = |c: &str| r.slack_channels.contains_key(c) || r.webhooks.contains_key(c);
        if let Some(c) = &n.security_route
            && !mapped(c)
        {
            err(
                "notifications.security_route".into(),
                "no such channel in responses.slack_channels or responses.webhooks",
            );
        }
        if n.routes.len() > MAX_ROUTES {
            err(
                "notifications.routes".into(),
                &format!("at most {MAX_ROUTES} routes"),
            );
        }
        for (i, route) in n.routes.iter().enumerate() {
            let at = |f: &str| format!("notifications.routes[{i}].{f}");
            if route.name.trim().is_empty() || route.name.len() > 64 {
                err(at("name"), "must be 1 to 64 bytes");
            } else if n.routes[..i].iter().any(|o| o.name == route.name) {
                err(at("name"), "another route has this name");
            }
            if route
                .min_severity
                .as_deref()
                .is_some_and(|s| severity_rank(s).is_none())
            {
                err(
                    at("min_severity"),
                    "must be info, low, medium, high or critical",
                );
            }
            if route.to.is_empty() || route.to.len() > MAX_ROUTE_CHANNELS {
                err(
                    at("to"),
                    &format!("must name 1 to {MAX_ROUTE_CHANNELS} channels"),
                );
            }
            for (j, c) in route.to.iter().enumerate() {
                if !mapped(c) {
                    err(
                        format!("notifications.routes[{i}].to[{j}]"),
                        "no such channel in responses.slack_channels or responses.webhooks",
                    );
                } else if route.format == RouteFormat::Ocsf && !r.webhooks.contains_key(c) {
                    err(
                        format!("notifications.routes[{i}].to[{j}]"),
                        "OCSF goes to webhooks only",
                    );
                }
            }
            if !(0..=MAX_DEDUP_MINUTES).contains(&route.dedup_minutes) {
                err(
                    at("dedup_minutes"),
                    &format!("must be from 0 to {MAX_DEDUP_MINUTES} (30 days)"),
                );
            }
            if route.digest_seconds > MAX_DIGEST_SECONDS {
                err(
                    at("digest_seconds"),
                    &format!("must be from 0 to {MAX_DIGEST_SECONDS} (a day)"),
                );
            }
            if route.digest_seconds > 0 && route.format == RouteFormat::Ocsf {
                err(
                    at("digest_seconds"),
                    "an OCSF route sends each finding; digests are text",
                );
            }
        }
        if r.max_attempts < 1 || r.max_attempts > 10 {
            err("responses.max_attempts".into(), "must be between 1 and 10");
        }
        if self.max_responses_per_hour < 1 {
            err(
                "max_responses_per_hour".into(),
                "must be at least 1 (use mode dry-run to stop responses)",
            );
        }
        if self.max_responses_per_hour > MAX_RESPONSES_PER_HOUR {
            err(
                "max_responses_per_hour".into(),
                &format!("must be at most {MAX_RESPONSES_PER_HOUR}"),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

pub(crate) fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_policies_name_their_fields() {
        let errors = Policy::from_json(
            r#"{"min_score": 2, "allowlist": {"cidrs": ["10.0.0.0/8", "nope"], "groups": ["ghosts"]},
                "corroboration": {"min_findings": 1, "min_detectors": 2}, "max_responses_per_hour": 0}"#,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "min_score",
                "allowlist.cidrs[1]",
                "allowlist.groups[0]",
                "corroboration.min_detectors",
                "max_responses_per_hour"
            ]
        );
        let errors = Policy::from_json(r#"{"mode": "yolo"}"#).unwrap_err();
        assert!(
            errors[0].message.contains("unknown variant `yolo`"),
            "{errors:?}"
        );
        let errors = Policy::from_json(r#"{"cooldown": 5}"#).unwrap_err();
        assert!(
            errors[0].message.contains("unknown field `cooldown`"),
            "{errors:?}"
        );
        assert!(Policy::from_json("{}").is_ok());
    }

    // Regression: `cooldown_minutes`, `corroboration.window_minutes` and
    // `loop_guard.window_hours` of i64::MAX were accepted, and their products with a
    // minute or an hour overflowed (a panic in debug, a guard that turned itself off in
    // release).
    #[test]
    fn durations_and_counts_that_cannot_be_meant_are_refused_by_name() {
        let errors = Policy::from_json(&format!(
            r#"{{"cooldown_minutes": {max}, "corroboration": {{"window_minutes": {max}, "min_findings": 5000, "min_detectors": 1}},
                "loop_guard": {{"window_hours": {max}, "max_resets": 4294967295}}, "max_responses_per_hour": 4294967295}}"#,
            max = i64::MAX
        ))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "corroboration.min_findings",
                "corroboration.window_minutes",
                "cooldown_minutes",
                "loop_guard.max_resets",
                "loop_guard.window_hours",
                "max_responses_per_hour"
            ]
        );
        let errors = Policy::from_json(r#"{"min_score": NaN}"#).unwrap_err();
        assert_eq!(errors[0].field, "(policy)");
    }
}
