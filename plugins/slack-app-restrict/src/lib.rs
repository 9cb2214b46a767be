//! slack-app-restrict: for a decision about an app (a malicious OAuth app: its subject
//! is the app id), asks the host to restrict the app (`actions.restrict-app`, Slack's
//! `admin.apps.restrict`: it cannot be installed again) and, with `uninstall`, to remove
//! it (`actions.uninstall-app`, `admin.apps.uninstall`: its tokens stop working). The
//! tenant's policy holds both for a person's approval by default. Decisions about
//! anything but an app are left to other responders.
//!
//! Config: `{"uninstall": true, "notify_channel": "security"}` (defaults: uninstall,
//! no notification).

use aer_sdk::AWAITING_APPROVAL;
use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    uninstall: bool,
    notify_channel: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            uninstall: true,
            notify_channel: None,
        }
    }
}

#[derive(Default)]
struct AppRestrict {
    config: Config,
}

impl Responder for AppRestrict {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        self.config = parse_config(config)?;
        Ok(())
    }

    fn respond(&mut self, ctx: &mut ResponseContext<'_>, decision: &Decision) -> Result<()> {
        let app = decision.subject.as_str();
        if !aer_sdk::is_slack_id(app, &['A']) {
            return Ok(());
        }
        let mut done = vec![ctx.restrict_app(app)];
        if self.config.uninstall {
            done.push(ctx.uninstall_app(app));
        }
        if let Some(channel) = self.config.notify_channel.clone() {
            let text = if done
                .iter()
                .any(|r| matches!(r, Ok(d) if d == AWAITING_APPROVAL))
            {
                format!(
                    "AER asks for approval to restrict app {app}: {}",
                    decision.reason
                )
            } else if let Some(Err(e)) = done.iter().find(|r| r.is_err()) {
                format!("AER could not restrict app {app}: {}", e.code)
            } else {
                format!("AER is restricting app {app}: {}", decision.reason)
            };
            let _ = ctx.notify(&channel, app, &text);
        }
        Ok(())
    }
}

aer_sdk::export_responder!(AppRestrict);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::TestResponder;

    fn decision(subject: &str) -> Decision {
        Decision {
            id: "d1".into(),
            subject: subject.into(),
            enforce: true,
            reason: "risky-app (score 0.90)".into(),
            findings: vec![Finding::new("risky-app", subject).severity(Severity::High)],
            time_ms: 0,
        }
    }

    #[test]
    fn an_app_is_restricted_and_uninstalled_a_user_is_left_alone() {
        let mut t = TestResponder::<AppRestrict>::new();
        t.configure(r#"{"notify_channel": "security"}"#).unwrap();
        t.respond(&decision("A0EXFIL")).unwrap();
        let actions: Vec<(String, String)> = t
            .host()
            .actions()
            .into_iter()
            .map(|a| (a.action, a.target))
            .collect();
        assert_eq!(
            actions,
            [
                ("restrict-app".to_owned(), "A0EXFIL".to_owned()),
                ("uninstall-app".to_owned(), "A0EXFIL".to_owned()),
                ("notify".to_owned(), "security".to_owned())
            ]
        );
        let mut t = TestResponder::<AppRestrict>::new();
        assert!(t.respond(&decision("U1")).unwrap().is_empty());
        assert!(t.host().actions().is_empty());
    }

    #[test]
    fn uninstalling_can_be_turned_off() {
        let mut t = TestResponder::<AppRestrict>::new();
        t.configure(r#"{"uninstall": false}"#).unwrap();
        t.respond(&decision("A0EXFIL")).unwrap();
        let actions = t.host().actions();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].action, "restrict-app");
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestResponder::<super::AppRestrict>::new().check_config_schema();
    }
}
