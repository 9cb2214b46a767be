//! Conversions between the WIT types plugins speak and the records the pipeline keeps:
//! the only place the pipeline's records meet the generated bindings.

use crate::bindings::{Attribute, Decision, Finding, Severity};
use crate::records::{DecisionRecord, FindingRecord, Outcome};

/// The lowercase name of a severity.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn severity(name: &str) -> Severity {
    match name {
        "info" => Severity::Info,
        "low" => Severity::Low,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => Severity::Medium,
    }
}

/// A detector's finding as a record, made by `plugin` at `version`.
pub fn finding_record(f: Finding, plugin: &str, version: &str) -> FindingRecord {
    FindingRecord {
        rule: f.rule,
        subject: f.subject,
        score: f.score,
        severity: severity_name(f.severity).into(),
        summary: f.summary,
        evidence: f.evidence,
        attributes: f.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
        time_ms: f.time_ms,
        plugin: plugin.into(),
        plugin_version: version.into(),
    }
}

/// A recorded finding as the WIT type responders receive.
pub fn wit_finding(f: &FindingRecord) -> Finding {
    Finding {
        subject: f.subject.clone(),
        rule: f.rule.clone(),
        score: f.score,
        severity: severity(&f.severity),
        summary: f.summary.clone(),
        evidence: f.evidence.clone(),
        attributes: f
            .attributes
            .iter()
            .map(|(k, v)| Attribute {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        time_ms: f.time_ms,
    }
}

/// The decision a responder receives, built from the decision record: the one builder
/// every driver uses. `enforce` is whether its effects are performed, which only a
/// `respond` outcome allows (a dry-run decision's effects are recorded).
pub fn wit_decision(d: &DecisionRecord) -> Decision {
    Decision {
        id: d.id.clone(),
        subject: d.subject.clone(),
        enforce: d.outcome == Outcome::Respond,
        reason: d.reason.clone(),
        findings: vec![wit_finding(&d.finding)],
        time_ms: d.time_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_survives_the_round_trip_through_its_wit_type() {
        let record = FindingRecord {
            rule: "r".into(),
            subject: "U1".into(),
            score: 0.75,
            severity: "critical".into(),
            summary: "s".into(),
            evidence: vec!["e1".into()],
            attributes: [("ip".to_owned(), "10.0.0.1".to_owned())].into(),
            time_ms: 42,
            plugin: "p".into(),
            plugin_version: "1.0.0".into(),
        };
        assert_eq!(finding_record(wit_finding(&record), "p", "1.0.0"), record);
    }
}
