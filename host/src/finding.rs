//! Findings as the host records and prints them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
