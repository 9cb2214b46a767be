//! The filter the findings and decisions pages share: subject, rule or plugin,
//! severity, outcome (decisions), triage status, event time and page size, and where
//! the page stands.

use serde::Deserialize;

use super::PageError;
use crate::ledger::TriageStatus;
use crate::records::FindingRecord;

/// Page sizes offered; the first is the default.
pub const SIZES: [usize; 4] = [100, 500, 1_000, 50];

/// The outcomes a filter may name.
pub const OUTCOMES: [&str; 5] = ["respond", "dry-run", "escalate", "pending", "suppressed"];

/// The severities a filter may name.
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// A list page's query.
#[derive(Debug, Default, Deserialize)]
pub struct RecordFilter {
    #[serde(default)]
    pub subject: String,
    /// A rule id or a plugin name.
    #[serde(default)]
    pub rule: String,
    /// Decisions only.
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub severity: String,
    /// `open`, `acknowledged` or `closed`.
    #[serde(default)]
    pub triage: String,
    /// Event time from (`YYYY-MM-DDTHH:MM`, UTC, inclusive).
    #[serde(default)]
    pub since: String,
    /// Event time until (exclusive).
    #[serde(default)]
    pub until: String,
    /// Records before this seq (the next page).
    #[serde(default)]
    pub before: Option<u64>,
    #[serde(default)]
    pub size: Option<usize>,
    /// How many the last triage set (a number only: nothing from a link is shown as
    /// text).
    #[serde(default)]
    pub triaged: Option<u32>,
}

/// A filter's values, checked.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    since: Option<i64>,
    until: Option<i64>,
    /// The triage status asked for.
    pub triage: Option<TriageStatus>,
    /// Records on a page.
    pub size: usize,
}

/// A `datetime-local` value (UTC) as ms since the epoch; empty is `None`.
pub fn time_field(name: &str, value: &str) -> Result<Option<i64>, PageError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            PageError::bad_request(format!(
                "`{name}` must be a date and time like 2026-01-05T14:04 (UTC)"
            ))
        })
}

/// A triage status's name.
pub fn triage_name(s: TriageStatus) -> &'static str {
    match s {
        TriageStatus::Open => "open",
        TriageStatus::Acknowledged => "acknowledged",
        TriageStatus::Closed => "closed",
    }
}

impl RecordFilter {
    /// Check every field; an unknown value is refused by name.
    pub fn check(&self) -> Result<Checked, PageError> {
        let triage = match self.triage.as_str() {
            "" => None,
            "open" => Some(TriageStatus::Open),
            "acknowledged" => Some(TriageStatus::Acknowledged),
            "closed" => Some(TriageStatus::Closed),
            other => {
                return Err(PageError::bad_request(format!(
                    "no triage status {other:?}"
                )));
            }
        };
        if !self.outcome.is_empty() && !OUTCOMES.contains(&self.outcome.as_str()) {
            return Err(PageError::bad_request(format!(
                "no outcome {:?}",
                self.outcome
            )));
        }
        if !self.severity.is_empty() && !SEVERITIES.contains(&self.severity.as_str()) {
            return Err(PageError::bad_request(format!(
                "no severity {:?}",
                self.severity
            )));
        }
        Ok(Checked {
            since: time_field("since", &self.since)?,
            until: time_field("until", &self.until)?,
            triage,
            size: self.size.filter(|s| SIZES.contains(s)).unwrap_or(SIZES[0]),
        })
    }

    /// Whether a record about `subject` prompted by `f`, dated `time_ms`, with
    /// `outcome` (decisions), passes every part but the triage status.
    pub fn matches(
        &self,
        checked: &Checked,
        subject: &str,
        f: &FindingRecord,
        time_ms: i64,
        outcome: Option<&str>,
    ) -> bool {
        (self.subject.is_empty() || subject == self.subject)
            && (self.rule.is_empty() || f.rule == self.rule || f.plugin == self.rule)
            && (self.severity.is_empty() || f.severity == self.severity)
            && (self.outcome.is_empty() || outcome == Some(self.outcome.as_str()))
            && checked.since.is_none_or(|t| time_ms >= t)
            && checked.until.is_none_or(|t| time_ms < t)
    }

    /// The filter as a query string, without the page's position.
    pub fn query(&self, checked: &Checked) -> String {
        serde_html_form::to_string([
            ("subject", self.subject.as_str()),
            ("rule", self.rule.as_str()),
            ("outcome", self.outcome.as_str()),
            ("severity", self.severity.as_str()),
            ("triage", self.triage.as_str()),
            ("since", self.since.as_str()),
            ("until", self.until.as_str()),
            ("size", &checked.size.to_string()),
        ])
        .unwrap_or_default()
    }

    /// What the last triage did, in words.
    pub fn notice(&self) -> String {
        self.triaged
            .map(|n| format!("{n} triaged"))
            .unwrap_or_default()
    }
}
