//! Findings: what a detector reports.

/// How urgent a finding is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Severity {
    /// Worth recording, not worth a look.
    Info,
    /// Worth a look when convenient.
    Low,
    /// Worth a look today.
    #[default]
    Medium,
    /// Worth a look now.
    High,
    /// An attack in progress.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Its name, as configurations and the host write it: `info`, `low`, `medium`,
    /// `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = crate::Error;

    /// Parse a severity's name (see [`Severity::as_str`]); the error lists the names.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                crate::Error::msg(format!(
                    "{name:?} is not a severity (info, low, medium, high, critical)"
                ))
            })
    }
}

/// A subject at risk and why; built with chained setters.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The user or entity at risk.
    pub subject: String,
    /// Stable rule id.
    pub rule: String,
    /// Confidence, 0.0 to 1.0.
    pub score: f32,
    /// Urgency.
    pub severity: Severity,
    /// One human-readable line.
    pub summary: String,
    /// Ids of supporting events.
    pub evidence: Vec<String>,
    /// Extra facts as key/value text.
    pub attributes: Vec<(String, String)>,
    /// Event time of the finding (ms); 0 means "the time of the event being handled".
    pub time_ms: i64,
}

impl Finding {
    /// A finding of `rule` about `subject`, score 1.0, severity medium.
    pub fn new(rule: impl Into<String>, subject: impl Into<String>) -> Self {
        Finding {
            subject: subject.into(),
            rule: rule.into(),
            score: 1.0,
            severity: Severity::Medium,
            summary: String::new(),
            evidence: Vec::new(),
            attributes: Vec::new(),
            time_ms: 0,
        }
    }

    /// Set the score, clamped to 0.0..=1.0.
    pub fn score(mut self, score: f32) -> Self {
        self.score = if score.is_nan() {
            0.0
        } else {
            score.clamp(0.0, 1.0)
        };
        self
    }

    /// Set the severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Set the summary line.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = summary.into();
        self
    }

    /// Add one supporting event id.
    pub fn evidence(mut self, event_id: impl Into<String>) -> Self {
        self.evidence.push(event_id.into());
        self
    }

    /// Add many supporting event ids.
    pub fn evidence_all<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.evidence.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Add an attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.attributes.push((key.into(), value.to_string()));
        self
    }

    /// Set the event time of the finding.
    pub fn at(mut self, time_ms: i64) -> Self {
        self.time_ms = time_ms;
        self
    }

    /// The value of the first attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod severity_tests {
    use super::Severity;

    #[test]
    fn a_severity_reads_back_its_own_name_and_refuses_others() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>().unwrap(), s);
        }
        let err = "urgent".parse::<Severity>().unwrap_err();
        assert!(
            err.to_string()
                .contains("info, low, medium, high, critical"),
            "{err}"
        );
        assert!(Severity::ALL.is_sorted(), "lowest first");
    }
}
