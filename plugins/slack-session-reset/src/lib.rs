//! slack-session-reset: ends the sessions of the decision's subject. For a hijacked
//! session (a `session-fingerprint` finding naming a Slack session id) it ends that one
//! session (`actions.end-session`, Slack's `admin.users.session.invalidate`), so the
//! user keeps working elsewhere; otherwise every session (`actions.terminate-sessions`,
//! `admin.users.session.reset`). The host performs both with the tenant's token, which
//! the plugin never sees. Optionally tells a notification channel what it did.
//!
//! Config: `{"min_severity": "high", "notify_channel": "security"}`: only decisions with
//! a finding at least that severe reset sessions (default `medium`); `notify_channel`
//! (default none) gets one line per reset, including failures.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    min_severity: String,
    notify_channel: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_severity: "medium".into(),
            notify_channel: None,
        }
    }
}

#[derive(Default)]
struct SessionReset {
    config: Config,
    min: Severity,
}

impl Responder for SessionReset {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        self.min = c
            .min_severity
            .parse()
            .map_err(|e| Error::msg(format!("invalid configuration: min_severity {e}")))?;
        self.config = c;
        Ok(())
    }

    fn respond(&mut self, ctx: &mut ResponseContext<'_>, decision: &Decision) -> Result<()> {
        // Sessions belong to people: a decision about an app, an address or a channel
        // is left to other responders.
        if !aer_sdk::is_slack_id(&decision.subject, &['U', 'W'])
            || !decision.findings.iter().any(|f| f.severity >= self.min)
        {
            return Ok(());
        }
        let sessions = hijacked_sessions(decision);
        let (result, what) = if sessions.is_empty() {
            (
                ctx.terminate_sessions(&decision.subject),
                "all sessions".to_owned(),
            )
        } else {
            let mut result = Ok(String::new());
            for s in &sessions {
                let r = ctx.end_session(&decision.subject, s);
                if result.is_ok() {
                    result = r;
                }
            }
            (result, format!("session {}", sessions.join(", ")))
        };
        if let Some(channel) = self.config.notify_channel.clone() {
            let rules: Vec<&str> = decision.findings.iter().map(|f| f.rule.as_str()).collect();
            let subject = &decision.subject;
            let rules = rules.join(", ");
            let text = match &result {
                // The host performs the effect after this call (its outcome is in the
                // action log); the notification follows it.
                Ok(detail) if detail == "queued" => {
                    format!("AER is ending {what} of {subject} ({rules})")
                }
                Ok(detail) if detail == aer_sdk::AWAITING_APPROVAL => {
                    format!("AER asks for approval to end {what} of {subject} ({rules})")
                }
                Ok(_) => format!("AER ended {what} of {subject} ({rules})"),
                Err(e) => format!("AER could not end {what} of {subject}: {}", e.code),
            };
            let _ = ctx.notify(&channel, subject, &text);
        }
        Ok(())
    }
}

/// The Slack session ids (integers) that `session-fingerprint` findings of `decision`
/// name: those sessions were hijacked, the others are the user's own.
fn hijacked_sessions(decision: &Decision) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in decision
        .findings
        .iter()
        .filter(|f| f.rule == "session-fingerprint")
    {
        for (k, v) in &f.attributes {
            if k == "session_id" && v.parse::<u64>().is_ok() && !out.contains(v) {
                out.push(v.clone());
            }
        }
    }
    out
}

aer_sdk::export_responder!(SessionReset);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::ActionError;
    use aer_sdk::testing::TestResponder;

    fn decision(sev: Severity) -> Decision {
        Decision {
            id: "d1".into(),
            subject: "U1".into(),
            enforce: true,
            reason: "test".into(),
            findings: vec![Finding::new("excessive-downloads", "U1").severity(sev)],
            time_ms: 0,
        }
    }

    #[test]
    fn resets_and_reports() {
        let mut t = TestResponder::<SessionReset>::new();
        t.configure(r#"{"notify_channel": "security"}"#).unwrap();
        let outcomes = t.respond(&decision(Severity::High)).unwrap();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|o| o.ok));
        let actions = t.host().actions();
        assert_eq!(actions[0].action, "terminate-sessions");
        assert_eq!(actions[0].target, "U1");
        assert_eq!(actions[0].decision_id, "d1");
        assert_eq!(actions[1].target, "security");
        assert!(
            actions[1].text.contains("ended all sessions of U1"),
            "{}",
            actions[1].text
        );
    }

    #[test]
    fn a_hijacked_session_is_ended_alone() {
        let mut t = TestResponder::<SessionReset>::new();
        let mut d = decision(Severity::High);
        d.findings = vec![
            Finding::new("session-fingerprint", "U1")
                .severity(Severity::High)
                .attr("session_id", "2183488812"),
        ];
        t.respond(&d).unwrap();
        let actions = t.host().actions();
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(actions[0].action, "end-session");
        assert_eq!(actions[0].session_id, "2183488812");
        // A session id that is not Slack's (not an integer): every session ends.
        let mut t = TestResponder::<SessionReset>::new();
        d.findings[0] = Finding::new("session-fingerprint", "U1")
            .severity(Severity::High)
            .attr("session_id", "abc");
        t.respond(&d).unwrap();
        assert_eq!(t.host().actions()[0].action, "terminate-sessions");
    }

    #[test]
    fn only_people_have_sessions_to_end() {
        let mut t = TestResponder::<SessionReset>::new();
        for subject in ["A0APP", "192.0.2.66", "C0CHANNEL"] {
            let mut d = decision(Severity::Critical);
            d.subject = subject.into();
            assert!(t.respond(&d).unwrap().is_empty(), "{subject}");
        }
        assert!(t.host().actions().is_empty());
    }

    #[test]
    fn below_min_severity_does_nothing() {
        let mut t = TestResponder::<SessionReset>::new();
        t.configure(r#"{"min_severity": "high"}"#).unwrap();
        assert!(t.respond(&decision(Severity::Medium)).unwrap().is_empty());
        assert!(t.host().actions().is_empty());
    }

    #[test]
    fn failures_are_outcomes_and_reported() {
        let mut t = TestResponder::<SessionReset>::new();
        t.configure(r#"{"notify_channel": "security"}"#).unwrap();
        t.host().fail_actions(Some(ActionError {
            code: "cannot_reset_primary_owner".into(),
            message: "no".into(),
        }));
        let outcomes = t.respond(&decision(Severity::High)).unwrap();
        assert!(!outcomes[0].ok);
        assert_eq!(outcomes[0].detail, "cannot_reset_primary_owner");
    }

    #[test]
    fn bad_severity_is_refused() {
        let mut t = TestResponder::<SessionReset>::new();
        let err = t.configure(r#"{"min_severity": "urgent"}"#).err().unwrap();
        assert!(err.message().contains("min_severity"), "{err}");
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestResponder::<super::SessionReset>::new().check_config_schema();
    }
}
