//! slack-anomaly: passes Slack's own `anomaly` audit entries through as findings, so
//! they go through the tenant's decision policy like any other detector's.
//!
//! `details.reason` is a list of codes (`tor`, `asn`, `ip_address`, `session_fingerprint`,
//! `excessive_downloads`, ...). Each code has a severity and a score; the finding takes
//! the highest. Unknown codes (Slack adds new ones) count as low. The subject is the
//! user the entry is about (its user entity, else its actor).
//!
//! Config: `{"ignore": ["asn"]}`: codes that alone never make a finding.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    ignore: Vec<String>,
}

#[derive(Default)]
struct SlackAnomaly {
    config: Config,
}

/// Severity and score of one reason code.
fn weigh(code: &str) -> (Severity, f32) {
    match code {
        "tor" | "session_fingerprint" => (Severity::High, 0.9),
        "unexpected_admin_action" => (Severity::High, 0.8),
        "excessive_downloads"
        | "excessive_file_shares"
        | "unexpected_scraping"
        | "unexpected_api_call_volume" => (Severity::Medium, 0.75),
        "spoofed_user_agent" | "unexpected_user_agent" | "unexpected_client" => {
            (Severity::Medium, 0.7)
        }
        "asn" | "ip_address" | "potential_spam" => (Severity::Low, 0.5),
        _ => (Severity::Low, 0.4),
    }
}

/// The reason codes of an entry: a JSON list, or a single code as text.
fn reasons(detail: Option<&str>) -> Vec<String> {
    match detail {
        None => Vec::new(),
        Some(text) => serde_json::from_str::<Vec<String>>(text).unwrap_or_else(|_| {
            text.split(',')
                .map(|s| s.trim().trim_matches('"').to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
    }
}

impl Detector for SlackAnomaly {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(["anomaly"]).config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        self.config = parse_config(config)?;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        if event.action != "anomaly" {
            return Ok(());
        }
        let codes: Vec<String> = reasons(event.detail("reason"))
            .into_iter()
            .filter(|c| !self.config.ignore.contains(c))
            .collect();
        if codes.is_empty() {
            return Ok(());
        }
        let (severity, score) = codes
            .iter()
            .map(|c| weigh(c))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((Severity::Low, 0.4));
        let subject = match event.target {
            Some(t) if t.kind == "user" && !t.id.is_empty() => t.id,
            _ => event.actor.id,
        };
        ctx.emit(
            Finding::new("slack-anomaly", subject)
                .severity(severity)
                .score(score)
                .summary(format!("Slack flagged {subject}: {}", codes.join(", ")))
                .evidence(event.id)
                .attr("reasons", codes.join(","))
                .attr("ip", event.context.ip)
                .attr("user_agent", event.context.user_agent),
        );
        Ok(())
    }
}

aer_sdk::export_detector!(SlackAnomaly);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{TestDetector, event};

    fn anomaly(id: &str, reason: &str) -> aer_sdk::testing::OwnedEvent {
        event("anomaly")
            .id(id)
            .actor("U1")
            .target("user", "U1")
            .ip("185.220.101.4")
            .detail("reason", reason)
            .build()
    }

    #[test]
    fn the_strongest_reason_sets_severity_and_score() {
        let mut t = TestDetector::<SlackAnomaly>::new();
        let f = t.run(&[anomaly("a", r#"["asn","tor"]"#)]).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].severity, f[0].score), (Severity::High, 0.9));
        assert_eq!(f[0].summary, "Slack flagged U1: asn, tor");
        assert!(
            f[0].attributes
                .contains(&("ip".to_string(), "185.220.101.4".to_string()))
        );
    }

    #[test]
    fn unknown_codes_are_kept_as_low() {
        let mut t = TestDetector::<SlackAnomaly>::new();
        let f = t.run(&[anomaly("a", r#"["brand_new_reason"]"#)]).unwrap();
        assert_eq!((f[0].severity, f[0].score), (Severity::Low, 0.4));
    }

    #[test]
    fn ignored_codes_alone_make_nothing() {
        let mut t = TestDetector::<SlackAnomaly>::new();
        t.configure(r#"{"ignore": ["asn"]}"#).unwrap();
        assert!(t.run(&[anomaly("a", r#"["asn"]"#)]).unwrap().is_empty());
        assert_eq!(
            t.run(&[anomaly("b", r#"["asn","session_fingerprint"]"#)])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_plain_text_reason_and_other_actions() {
        let mut t = TestDetector::<SlackAnomaly>::new();
        let f = t
            .run(&[
                anomaly("a", "excessive_downloads"),
                event("user_login").id("b").actor("U2").build(),
            ])
            .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Medium);
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::SlackAnomaly>::new().check_config_schema();
    }
}
