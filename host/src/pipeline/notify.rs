//! Notification routes: which decisions a route takes, and what its messages say (one
//! line for people, or an OCSF Detection Finding for a SIEM); and the message every
//! review sends to the tenant's security route. The daemon sends them
//! (`daemon/notify.rs`).

use serde_json::{Value, json};

use super::policy::{Notifications, Policy, Route, severity_rank};
use crate::records::{DecisionRecord, Outcome};

/// The OCSF schema version the Detection Finding follows.
pub const OCSF_VERSION: &str = "1.1.0";

impl Route {
    /// Whether the route takes decision `d`.
    pub fn takes(&self, d: &DecisionRecord) -> bool {
        let outcome = if self.outcomes.is_empty() {
            d.outcome != Outcome::Pending
        } else {
            self.outcomes.contains(&d.outcome)
        };
        let severity = self.min_severity.as_deref().is_none_or(|min| {
            severity_rank(&d.finding.severity).unwrap_or(0) >= severity_rank(min).unwrap_or(0)
        });
        let rule = self.rules.is_empty() || self.rules.contains(&d.finding.rule);
        outcome && severity && rule
    }
}

impl Notifications {
    /// The channel reviews go to, if the policy has one.
    pub fn security_channel<'a>(&'a self, policy: &'a Policy) -> Option<&'a str> {
        self.security_route.as_deref().or_else(|| {
            let r = &policy.responses;
            (r.slack_channels.contains_key("security") || r.webhooks.contains_key("security"))
                .then_some("security")
        })
    }
}

/// Whether an action log entry from `responder` is one of the host's own notices (a
/// route's message, a review's announcement) rather than a responder's effect.
pub fn is_host_notice(responder: &str) -> bool {
    responder == "review" || responder.starts_with("route:")
}

/// One line about decision `d` for people.
pub fn line(d: &DecisionRecord) -> String {
    let f = &d.finding;
    format!(
        "AER {}: {} ({}, {} score {:.2}): {}",
        d.outcome.as_str(),
        d.subject,
        f.rule,
        f.severity,
        f.score,
        d.reason
    )
}

/// The message a review sends to the security route, with `link` to the review.
pub fn review_message(kind: &str, id: u64, d: &DecisionRecord, link: &str) -> String {
    format!(
        "AER review {id} ({kind}) for {}: {} ({}): {}. Approve or dismiss: {link}",
        d.subject, d.finding.rule, d.finding.severity, d.reason
    )
}

/// The summary one digest sends: `count` decisions since `since`, `lines` of them.
pub fn digest_message(route: &str, count: u64, lines: &[String]) -> String {
    let mut text = format!("AER digest ({route}): {count} decision(s)");
    for l in lines {
        text.push_str("\n• ");
        text.push_str(l);
    }
    if count as usize > lines.len() {
        text.push_str(&format!("\n… and {} more", count as usize - lines.len()));
    }
    text
}

/// OCSF's severity id for an AER severity.
fn severity_id(severity: &str) -> (u8, &'static str) {
    match severity {
        "info" => (1, "Informational"),
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        "critical" => (5, "Critical"),
        _ => (0, "Unknown"),
    }
}

/// Decision `d` of `tenant` as an OCSF Detection Finding (class 2004, activity
/// Create): the finding's rule as the analytic, its evidence as related events, the
/// subject as the resource, AER's outcome and reason under `unmapped`.
pub fn ocsf_detection_finding(tenant: &str, d: &DecisionRecord) -> Value {
    let f = &d.finding;
    let (severity_id, severity) = severity_id(&f.severity);
    let kind = if aer_wire::slack::is_id(&d.subject, &['A']) {
        "app"
    } else {
        "user"
    };
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200_401,
        "type_name": "Detection Finding: Create",
        "time": d.time_ms,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "message": f.summary,
        "confidence_score": (f.score.clamp(0.0, 1.0) * 100.0).round() as u8,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": d.id,
            "tenant_uid": tenant,
            "product": {"name": "AER", "vendor_name": "AER", "version": env!("CARGO_PKG_VERSION")},
        },
        "finding_info": {
            "uid": d.id,
            "title": f.rule,
            "desc": f.summary,
            "types": [f.rule],
            "first_seen_time": f.time_ms,
            "analytic": {"name": f.rule, "uid": f.plugin, "type_id": 1, "type": "Rule"},
            "related_events": f.evidence.iter().map(|e| json!({"uid": e})).collect::<Vec<_>>(),
        },
        "resources": [{"uid": d.subject, "type": kind}],
        "unmapped": {"aer": {"outcome": d.outcome.as_str(), "reason": d.reason,
                             "plugin_version": f.plugin_version, "attributes": f.attributes}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::FindingRecord;

    fn decision(outcome: Outcome, severity: &str, rule: &str) -> DecisionRecord {
        DecisionRecord {
            id: "d1".into(),
            time_ms: 1_000,
            subject: "A0APP".into(),
            outcome,
            reason: "why".into(),
            finding: FindingRecord {
                rule: rule.into(),
                subject: "A0APP".into(),
                score: 0.9,
                severity: severity.into(),
                summary: "<b>app</b>".into(),
                evidence: vec!["e1".into()],
                time_ms: 1_000,
                plugin: "risky-app".into(),
                plugin_version: "0.1.0".into(),
                ..FindingRecord::default()
            },
            corroborating_rules: Vec::new(),
        }
    }

    #[test]
    fn a_route_takes_its_outcomes_severities_and_rules() {
        let route = Route {
            outcomes: vec![Outcome::Respond, Outcome::Escalate],
            min_severity: Some("high".into()),
            rules: vec!["risky-app".into()],
            ..Route::default()
        };
        assert!(route.takes(&decision(Outcome::Respond, "high", "risky-app")));
        assert!(route.takes(&decision(Outcome::Escalate, "critical", "risky-app")));
        assert!(!route.takes(&decision(Outcome::Suppressed, "high", "risky-app")));
        assert!(!route.takes(&decision(Outcome::Respond, "medium", "risky-app")));
        assert!(!route.takes(&decision(Outcome::Respond, "high", "other")));
        assert!(
            !Route::default().takes(&decision(Outcome::Pending, "high", "x")),
            "pending only when named"
        );
    }

    #[test]
    fn the_ocsf_finding_has_the_detection_finding_shape() {
        let v = ocsf_detection_finding("acme", &decision(Outcome::Respond, "high", "risky-app"));
        assert_eq!(
            (
                v["class_uid"].as_u64(),
                v["type_uid"].as_u64(),
                v["severity_id"].as_u64()
            ),
            (Some(2004), Some(200_401), Some(4))
        );
        assert_eq!(v["finding_info"]["analytic"]["name"], "risky-app");
        assert_eq!(v["finding_info"]["related_events"][0]["uid"], "e1");
        assert_eq!(v["resources"][0]["type"], "app");
        assert_eq!(v["confidence_score"], 90);
        assert_eq!(
            v["message"], "<b>app</b>",
            "JSON-escaped by serde, not altered"
        );
    }
}
