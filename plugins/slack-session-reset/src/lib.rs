//! slack-session-reset: ends every session of the decision's subject through the host's
//! `actions.terminate-sessions` (which the host performs as Slack's
//! `admin.users.session.reset` with the tenant's token; the plugin never sees it).
//! Optionally tells a notification channel what it did.
//!
//! Config: `{"min_severity": "high", "notify_channel": "security"}`: only decisions with
//! a finding at least that severe reset sessions (default `medium`); `notify_channel`
//! (default none) gets one line per reset, including failures.

use aer_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
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

fn severity(name: &str) -> Option<Severity> {
    Some(match name {
        "info" => Severity::Info,
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

#[derive(Default)]
struct SessionReset {
    config: Config,
    min: Severity,
}

impl Responder for SessionReset {
    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        self.min = severity(&c.min_severity).ok_or_else(|| {
            Error::msg(format!(
                "invalid configuration: min_severity {:?} is not one of info, low, medium, high, critical",
                c.min_severity
            ))
        })?;
        self.config = c;
        Ok(())
    }

    fn respond(&mut self, ctx: &mut ResponseContext<'_>, decision: &Decision) -> Result<()> {
        if !decision.findings.iter().any(|f| f.severity >= self.min) {
            return Ok(());
        }
        let result = ctx.terminate_sessions(&decision.subject);
        if let Some(channel) = self.config.notify_channel.clone() {
            let rules: Vec<&str> = decision.findings.iter().map(|f| f.rule.as_str()).collect();
            let text = match &result {
                // The host performs the reset after this call (its outcome is in the
                // action log); the notification follows it.
                Ok(detail) if detail == "queued" => format!(
                    "AER is ending all sessions of {} ({})",
                    decision.subject,
                    rules.join(", ")
                ),
                Ok(_) => format!(
                    "AER ended all sessions of {} ({})",
                    decision.subject,
                    rules.join(", ")
                ),
                Err(e) => format!(
                    "AER could not end the sessions of {}: {}",
                    decision.subject, e.code
                ),
            };
            let _ = ctx.notify(&channel, &decision.subject, &text);
        }
        Ok(())
    }
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
