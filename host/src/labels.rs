//! Labelled history: which attacks (and benign near-misses) a dataset holds, and how a
//! replay's findings score against them: precision and recall per detector.
//!
//! A finding matches a label when it comes from the label's detector, names the label's
//! subject, and falls between the label's start and its end plus [`GRACE_MS`] (hourly
//! baselines report within the hour). Recall counts attacks with at least one matching
//! finding; precision counts findings that match an attack.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::FindingRecord;

/// The detectors `aer gen` writes attacks for.
pub const DETECTORS: &[&str] = &[
    "excessive-downloads",
    "rapid-account-creation",
    "suspicious-file-sharing",
    "message-volume",
    "new-network-origin",
    "session-fingerprint",
    "privilege-escalation",
    "slack-anomaly",
    "impossible-travel",
    "datacenter-origin",
    "brute-force",
    "mass-deletion",
    "risky-app",
];

/// How long after an attack's last event a finding still counts as its detection.
pub const GRACE_MS: i64 = 2 * 3_600_000;

/// Whether a label marks an attack or a benign look-alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelKind {
    /// Should be flagged.
    Attack,
    /// Looks like an attack but is not: should not be flagged.
    NearMiss,
}

/// One labelled episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Attack or near-miss.
    pub kind: LabelKind,
    /// The detector (plugin name) that should flag it, or that it could fool.
    pub detector: String,
    /// What happened, e.g. `download-burst`, `travelling-user`.
    pub scenario: String,
    /// The user concerned (a finding's subject).
    pub subject: String,
    /// Event time of its first event (ms).
    pub start_ms: i64,
    /// Event time of its last event (ms).
    pub end_ms: i64,
}

impl Label {
    /// Whether `f` is a finding about this episode.
    pub fn matches(&self, f: &FindingRecord) -> bool {
        f.plugin == self.detector
            && f.subject == self.subject
            && f.time_ms >= self.start_ms - 60_000
            && f.time_ms <= self.end_ms + GRACE_MS
    }
}

/// Parse a labels file (NDJSON, one [`Label`] per line).
pub fn parse(text: &str) -> Result<Vec<Label>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// How one detector did against the labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    /// Detector, or `all`.
    pub detector: String,
    /// Labelled attacks.
    pub attacks: usize,
    /// Attacks with at least one matching finding.
    pub detected: usize,
    /// Findings the detector made.
    pub findings: usize,
    /// Findings that match an attack.
    pub true_findings: usize,
    /// Labelled near-misses.
    pub near_misses: usize,
    /// Near-misses the detector flagged anyway.
    pub near_misses_flagged: usize,
}

impl Score {
    /// Matching findings / findings (1 when there are none).
    pub fn precision(&self) -> f64 {
        if self.findings == 0 {
            1.0
        } else {
            self.true_findings as f64 / self.findings as f64
        }
    }

    /// Detected attacks / attacks (1 when there are none).
    pub fn recall(&self) -> f64 {
        if self.attacks == 0 {
            1.0
        } else {
            self.detected as f64 / self.attacks as f64
        }
    }

    fn add(&mut self, o: &Score) {
        self.attacks += o.attacks;
        self.detected += o.detected;
        self.findings += o.findings;
        self.true_findings += o.true_findings;
        self.near_misses += o.near_misses;
        self.near_misses_flagged += o.near_misses_flagged;
    }
}

/// Score `findings` against `labels`: one row per detector that has labels or findings,
/// then the `all` row.
pub fn score(labels: &[Label], findings: &[FindingRecord]) -> Vec<Score> {
    let mut by: BTreeMap<&str, Score> = BTreeMap::new();
    // Labels per (detector, subject), so matching is not quadratic in the dataset.
    let mut index: BTreeMap<(&str, &str), Vec<(usize, &Label)>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        index
            .entry((l.detector.as_str(), l.subject.as_str()))
            .or_default()
            .push((i, l));
        let s = by.entry(&l.detector).or_default();
        match l.kind {
            LabelKind::Attack => s.attacks += 1,
            LabelKind::NearMiss => s.near_misses += 1,
        }
    }
    let mut hit = vec![false; labels.len()];
    for f in findings {
        let s = by.entry(&f.plugin).or_default();
        s.findings += 1;
        let mut true_finding = false;
        for (i, l) in index
            .get(&(f.plugin.as_str(), f.subject.as_str()))
            .into_iter()
            .flatten()
        {
            if l.matches(f) {
                hit[*i] = true;
                true_finding |= l.kind == LabelKind::Attack;
            }
        }
        if true_finding {
            s.true_findings += 1;
        }
    }
    for (l, hit) in labels.iter().zip(hit) {
        if hit {
            let s = by.entry(&l.detector).or_default();
            match l.kind {
                LabelKind::Attack => s.detected += 1,
                LabelKind::NearMiss => s.near_misses_flagged += 1,
            }
        }
    }
    let mut all = Score {
        detector: "all".into(),
        ..Default::default()
    };
    let mut rows: Vec<Score> = by
        .into_iter()
        .map(|(d, mut s)| {
            s.detector = d.to_owned();
            all.add(&s);
            s
        })
        .collect();
    rows.push(all);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(plugin: &str, subject: &str, time_ms: i64) -> FindingRecord {
        FindingRecord {
            plugin: plugin.into(),
            subject: subject.into(),
            time_ms,
            ..Default::default()
        }
    }

    fn label(kind: LabelKind, detector: &str, subject: &str, start: i64, end: i64) -> Label {
        Label {
            kind,
            detector: detector.into(),
            scenario: "x".into(),
            subject: subject.into(),
            start_ms: start,
            end_ms: end,
        }
    }

    #[test]
    fn precision_and_recall_per_detector() {
        let labels = vec![
            label(LabelKind::Attack, "a", "U1", 1_000_000, 2_000_000),
            label(LabelKind::Attack, "a", "U2", 1_000_000, 2_000_000),
            label(LabelKind::NearMiss, "a", "U3", 1_000_000, 2_000_000),
            label(LabelKind::Attack, "b", "U1", 1_000_000, 2_000_000),
        ];
        let findings = vec![
            finding("a", "U1", 1_500_000),
            finding("a", "U1", 1_600_000),
            finding("a", "U3", 1_500_000),
            finding("a", "U2", 2_000_000 + GRACE_MS + 1),
            finding("b", "U1", 1_500_000),
            finding("c", "U9", 0),
        ];
        let rows = score(&labels, &findings);
        let a = rows.iter().find(|r| r.detector == "a").unwrap();
        assert_eq!(
            (a.attacks, a.detected, a.findings, a.true_findings),
            (2, 1, 4, 2)
        );
        assert_eq!((a.near_misses, a.near_misses_flagged), (1, 1));
        assert_eq!(a.recall(), 0.5);
        assert_eq!(a.precision(), 0.5);
        let b = rows.iter().find(|r| r.detector == "b").unwrap();
        assert_eq!((b.recall(), b.precision()), (1.0, 1.0));
        let c = rows.iter().find(|r| r.detector == "c").unwrap();
        assert_eq!((c.attacks, c.findings, c.precision()), (0, 1, 0.0));
        let all = rows.last().unwrap();
        assert_eq!(all.detector, "all");
        assert_eq!(
            (all.attacks, all.detected, all.findings, all.true_findings),
            (3, 2, 6, 3)
        );
    }

    #[test]
    fn labels_round_trip_as_ndjson() {
        let l = label(LabelKind::NearMiss, "a", "U1", 1, 2);
        let text = serde_json::to_string(&l).unwrap();
        assert!(text.contains("\"near-miss\""), "{text}");
        assert_eq!(
            parse(&format!("{text}\n\n{text}\n")).unwrap(),
            vec![l.clone(), l]
        );
        assert!(parse("{}").unwrap_err().starts_with("line 1:"));
    }
}
