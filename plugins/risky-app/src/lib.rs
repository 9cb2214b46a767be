//! risky-app: the malicious OAuth app. Its findings are about the app (the subject is
//! the app id, the installer an attribute), so a responder can restrict or uninstall
//! the app itself: ending the installer's sessions leaves the app's token working.
//!
//! Two rules:
//! - `install`: an app installed, or its scopes expanded, with broad scopes (reading
//!   files or message history, admin) while it is not approved in the app directory
//!   (medium);
//! - `downloads`: an app flagged at install that downloads `threshold` files or more
//!   within `window_minutes` (downloads whose `context.app` is the app): high.
//!
//! Config: `{"broad_scopes": [...], "threshold": 20, "window_minutes": 10}`.

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

const INSTALL_ACTIONS: [&str; 2] = ["app_installed", "app_scopes_expanded"];
const DOWNLOAD_ACTION: &str = "file_downloaded";

/// Scopes that read what people wrote or administer the organisation.
const DEFAULT_BROAD_SCOPES: [&str; 10] = [
    "files:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "search:read",
    "admin",
    "users:read.email",
    "channels:read",
    "remote_files:read",
];

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct Config {
    broad_scopes: Vec<String>,
    #[schemars(range(min = 1))]
    threshold: u64,
    #[schemars(range(min = 1))]
    window_minutes: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            broad_scopes: DEFAULT_BROAD_SCOPES.iter().map(|s| s.to_string()).collect(),
            threshold: 20,
            window_minutes: 10,
        }
    }
}

/// What the detector remembers of a risky app.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Flagged {
    installer: String,
    scopes: Vec<String>,
}

/// The detector.
#[derive(Default)]
pub struct RiskyApp {
    config: Config,
}

/// The scopes an install or expansion entry grants: the app's scopes, bot scopes and
/// the newly added ones (each a JSON list of strings in the entry).
fn scopes(event: &Event<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in ["entity.scopes", "entity.scopes_bot", "new_scopes"] {
        if let Some(list) = event.detail(key)
            && let Ok(list) = serde_json::from_str::<Vec<String>>(list)
        {
            for s in list {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// The id of the app a download went through (`context.app`), if any.
fn via_app<'a>(event: &Event<'a>) -> Option<String> {
    let app: serde_json::Value = serde_json::from_str(event.detail("context.app")?).ok()?;
    app["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

impl Detector for RiskyApp {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(
            INSTALL_ACTIONS
                .iter()
                .chain(&[DOWNLOAD_ACTION])
                .map(|s| s.to_string()),
        )
        .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.threshold == 0 {
            return Err("invalid configuration: threshold must be at least 1".into());
        }
        if c.window_minutes < 1 {
            return Err("invalid configuration: window_minutes must be at least 1".into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        if INSTALL_ACTIONS.contains(&event.action) {
            return self.installed(ctx, event);
        }
        if event.action != DOWNLOAD_ACTION {
            return Ok(());
        }
        let Some(app) = via_app(event) else {
            return Ok(());
        };
        let key = ["a/", &app].concat();
        let Some(flagged) = ctx.state().get::<Flagged>(&key)? else {
            return Ok(());
        };
        let window = Window::minutes(self.config.window_minutes);
        let count = window.add(ctx.state(), &["w/", &app].concat(), event.time_ms, 1)?;
        if count < self.config.threshold
            || !Cooldown::new(window.width_ms()).ready(
                ctx.state(),
                &["r/", &app].concat(),
                event.time_ms,
            )?
        {
            return Ok(());
        }
        ctx.emit(
            Finding::new("risky-app", &app)
                .score(0.9)
                .severity(Severity::High)
                .summary(format!(
                    "app {app}, installed by {} with broad scopes, downloaded {count} files in {} min",
                    flagged.installer, self.config.window_minutes
                ))
                .evidence(event.id)
                .attr("basis", "downloads")
                .attr("app_id", &app)
                .attr("installer", &flagged.installer)
                .attr("user", event.actor.id)
                .attr("count", count)
                .attr("scopes", flagged.scopes.join(" ")),
        );
        Ok(())
    }
}

impl RiskyApp {
    fn installed(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let Some(app) = event.target.filter(|t| t.kind == "app" && !t.id.is_empty()) else {
            return Ok(());
        };
        if event.detail("entity.is_directory_approved") == Some("true") {
            return Ok(());
        }
        let granted = scopes(event);
        let broad: Vec<String> = granted
            .iter()
            .filter(|s| self.config.broad_scopes.contains(s))
            .cloned()
            .collect();
        if broad.is_empty() {
            return Ok(());
        }
        let installer = event.actor.id.to_owned();
        ctx.state().set(
            &["a/", app.id].concat(),
            &Flagged {
                installer: installer.clone(),
                scopes: broad.clone(),
            },
        )?;
        ctx.emit(
            Finding::new("risky-app", app.id)
                .score(0.6)
                .severity(Severity::Medium)
                .summary(format!(
                    "{installer} installed app {} ({}) with broad scopes {}; it is not approved",
                    app.id,
                    app.name,
                    broad.join(", ")
                ))
                .evidence(event.id)
                .attr("basis", "install")
                .attr("app_id", app.id)
                .attr("installer", &installer)
                .attr("scopes", broad.join(" "))
                .attr("ip", event.context.ip),
        );
        Ok(())
    }
}

aer_sdk::export_detector!(RiskyApp);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{TestDetector, event};

    type Owned = aer_sdk::testing::OwnedEvent;

    fn install(approved: bool, scopes: &str) -> Owned {
        event("app_installed")
            .id("i0")
            .at(0)
            .actor("U1")
            .target("app", "A1")
            .detail("entity.scopes", scopes)
            .detail(
                "entity.is_directory_approved",
                if approved { "true" } else { "false" },
            )
            .build()
    }

    fn download(i: i64, app: &str) -> Owned {
        event(DOWNLOAD_ACTION)
            .id(format!("d{i}"))
            .at(10_000 + i * 1000)
            .actor("U1")
            .detail("context.app", format!(r#"{{"id":"{app}"}}"#))
            .build()
    }

    #[test]
    fn a_broad_unapproved_install_then_its_downloads_are_flagged_on_the_app() {
        let mut t = TestDetector::<RiskyApp>::new();
        let mut events = vec![install(false, r#"["files:read","chat:write"]"#)];
        events.extend((0..25).map(|i| download(i, "A1")));
        let findings = t.run(&events).unwrap();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(findings[0].subject, "A1");
        assert_eq!(findings[0].attribute("basis"), Some("install"));
        assert_eq!(findings[0].attribute("installer"), Some("U1"));
        assert_eq!(findings[1].attribute("basis"), Some("downloads"));
        assert_eq!(findings[1].severity, Severity::High);
        assert_eq!(findings[1].subject, "A1");
    }

    #[test]
    fn approved_or_narrow_apps_and_other_apps_downloads_are_not() {
        let run = |approved, scopes: &str, app: &str| {
            let mut t = TestDetector::<RiskyApp>::new();
            let mut events = vec![install(approved, scopes)];
            events.extend((0..25).map(|i| download(i, app)));
            t.run(&events).unwrap().len()
        };
        assert_eq!(run(true, r#"["files:read"]"#, "A1"), 0, "approved");
        assert_eq!(run(false, r#"["chat:write"]"#, "A1"), 0, "narrow scopes");
        assert_eq!(run(false, r#"["files:read"]"#, "A2"), 1, "only the install");
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::RiskyApp>::new().check_config_schema();
    }
}
