//! notify: sends one message per decision to a notification channel (the host maps the
//! channel name to a webhook or a Slack channel from the tenant's policy), deduplicated
//! per subject within `dedup_minutes` of event time.
//!
//! Config: `{"channel": "security", "dedup_minutes": 60}`.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    channel: String,
    dedup_minutes: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            channel: "security".into(),
            dedup_minutes: 60,
        }
    }
}

#[derive(Default)]
struct Notify {
    config: Config,
}

/// The message: who, why, and the findings with their evidence counts.
fn message(d: &Decision) -> String {
    let mut text = format!(
        "{} AER decision about {}: {}",
        if d.enforce { "[enforced]" } else { "[dry-run]" },
        d.subject,
        d.reason
    );
    for f in &d.findings {
        text.push_str(&format!(
            "\n- {} ({:?}, score {:.2}): {} [{} events]",
            f.rule,
            f.severity,
            f.score,
            f.summary,
            f.evidence.len()
        ));
    }
    text
}

impl Responder for Notify {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.channel.is_empty() {
            return Err("invalid configuration: channel must not be empty".into());
        }
        self.config = c;
        Ok(())
    }

    fn respond(&mut self, ctx: &mut ResponseContext<'_>, d: &Decision) -> Result<()> {
        let key = format!("sent/{}", d.subject);
        let last: Option<i64> = ctx.state().get(&key)?;
        if last.is_some_and(|t| d.time_ms - t < self.config.dedup_minutes * 60_000) {
            return Ok(());
        }
        ctx.state().set(&key, &d.time_ms)?;
        let _ = ctx.notify(&self.config.channel, &d.subject, &message(d));
        Ok(())
    }
}

aer_sdk::export_responder!(Notify);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::TestResponder;

    fn decision(t: i64) -> Decision {
        Decision {
            id: format!("d{t}"),
            subject: "U1".into(),
            enforce: false,
            reason: "excessive-downloads corroborated".into(),
            findings: vec![
                Finding::new("excessive-downloads", "U1")
                    .summary("60 downloads")
                    .evidence("e1"),
            ],
            time_ms: t,
        }
    }

    #[test]
    fn one_message_per_subject_per_window() {
        let mut t = TestResponder::<Notify>::new();
        t.configure(r#"{"channel": "soc", "dedup_minutes": 10}"#)
            .unwrap();
        assert_eq!(t.respond(&decision(0)).unwrap().len(), 1);
        assert!(t.respond(&decision(5 * 60_000)).unwrap().is_empty());
        assert_eq!(t.respond(&decision(11 * 60_000)).unwrap().len(), 1);
        let sent = t.host().actions();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].target, "soc");
        assert!(
            sent[0].text.starts_with("[dry-run] AER decision about U1"),
            "{}",
            sent[0].text
        );
        assert!(
            sent[0]
                .text
                .contains("excessive-downloads (Medium, score 1.00): 60 downloads [1 events]"),
            "{}",
            sent[0].text
        );
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestResponder::<super::Notify>::new().check_config_schema();
    }
}
