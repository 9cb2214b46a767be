//! Suppressions: a person's judgement, from a dismissed review, that findings of one
//! rule about one subject are false positives, until an expiry in event time or for
//! good. The decision engine honours them before any other check but a disabled rule,
//! and names the suppression in the reason of each decision it suppresses.

use serde::{Deserialize, Serialize};

/// Most suppressions a tenant keeps.
pub const MAX_SUPPRESSIONS: usize = 10_000;

/// One suppression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Its id, unique within the tenant.
    pub id: u64,
    /// The subject whose findings are suppressed.
    pub subject: String,
    /// The rule whose findings are suppressed.
    pub rule: String,
    /// Event time (ms) from which it no longer applies; none: for good.
    #[serde(default)]
    pub expires_ms: Option<i64>,
    /// The review whose dismissal created it.
    #[serde(default)]
    pub review: Option<u64>,
    /// Who created it.
    pub by: String,
    /// Wall time it was created (ms).
    pub created_ms: i64,
}

impl Suppression {
    /// Whether it suppresses a finding of `rule` about `subject` made at `time_ms`.
    pub fn covers(&self, subject: &str, rule: &str, time_ms: i64) -> bool {
        self.subject == subject && self.rule == rule && self.expires_ms.is_none_or(|e| time_ms < e)
    }

    /// The reason a decision it suppresses gives.
    pub fn reason(&self) -> String {
        let until = match self.expires_ms {
            Some(ms) => format!(
                " until {}",
                chrono::DateTime::from_timestamp_millis(ms)
                    .map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
            ),
            None => String::new(),
        };
        let from = match self.review {
            Some(r) => format!(" (dismissed review {r} as a false positive)"),
            None => String::new(),
        };
        format!(
            "suppression {}: {} findings about {} are suppressed{until} by {}{from}",
            self.id, self.rule, self.subject, self.by
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suppression_covers_its_subject_and_rule_until_it_expires() {
        let s = Suppression {
            id: 1,
            subject: "U1".into(),
            rule: "r".into(),
            expires_ms: Some(100),
            review: Some(7),
            by: "alice".into(),
            created_ms: 0,
        };
        assert!(s.covers("U1", "r", 99));
        assert!(!s.covers("U1", "r", 100), "expired");
        assert!(!s.covers("U2", "r", 0), "another subject");
        assert!(!s.covers("U1", "q", 0), "another rule");
        assert!(s.reason().contains("review 7"), "{}", s.reason());
    }
}
