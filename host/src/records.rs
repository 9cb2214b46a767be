//! The pipeline's records: findings and the decisions made about them, as the host
//! keeps, prints and serialises them (the JSON of `aer test --json`, `aer replay
//! --json` and the daemon's API).

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

/// What the engine decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Respond: responders run and effects are performed.
    Respond,
    /// Would respond, but the tenant is in dry-run mode.
    DryRun,
    /// Not yet: waiting for corroboration.
    Pending,
    /// Not acted on (the reason says why).
    Suppressed,
    /// Not acted on automatically: humans are asked instead (termination-loop guard).
    Escalate,
}

impl Outcome {
    /// The outcome's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Respond => "respond",
            Outcome::DryRun => "dry-run",
            Outcome::Pending => "pending",
            Outcome::Suppressed => "suppressed",
            Outcome::Escalate => "escalate",
        }
    }

    /// Whether responders run for this decision (effects are recorded only in dry-run).
    pub fn responds(self) -> bool {
        matches!(self, Outcome::Respond | Outcome::DryRun)
    }
}

/// A decision, with the finding that prompted it and the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Stable id derived from the prompting finding (a replay gives the same ids).
    pub id: String,
    /// Event time (ms).
    pub time_ms: i64,
    /// The user or entity concerned.
    pub subject: String,
    /// What was decided.
    pub outcome: Outcome,
    /// Why, in one line.
    pub reason: String,
    /// The finding that prompted the decision.
    pub finding: FindingRecord,
    /// Rules of the findings that corroborated it (when responding).
    pub corroborating_rules: Vec<String>,
}
