//! Findings as the host records and prints them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bindings::{Finding, Severity};

/// A finding with the plugin that made it; the JSON shape of `aer test --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// Rule id.
    pub rule: String,
    /// The user or entity at risk.
    pub subject: String,
    /// Confidence, 0..1.
    pub score: f32,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// One line for people.
    pub summary: String,
    /// Supporting event ids.
    pub evidence: Vec<String>,
    /// Extra facts.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Event time (ms since the epoch).
    pub time_ms: i64,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub plugin_version: String,
}

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

impl FindingRecord {
    /// A record of `f`, made by `plugin` at `version`.
    pub fn new(f: Finding, plugin: &str, version: &str) -> Self {
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
}
