//! The smallest AER detector: one finding per failed login. The README's snippet.

// README-SNIPPET-START
use aer_sdk::prelude::*;

#[derive(Default)]
struct FailedLogin;

impl Detector for FailedLogin {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(["user_login_failed"])
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        ctx.emit(
            Finding::new("failed-login", event.actor.id)
                .severity(Severity::Low)
                .summary(format!("failed login from {}", event.context.ip))
                .evidence(event.id),
        );
        Ok(())
    }
}

aer_sdk::export_detector!(FailedLogin);
// README-SNIPPET-END

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{TestDetector, event};

    #[test]
    fn flags_each_failed_login() {
        let mut t = TestDetector::<FailedLogin>::new();
        let events = [
            event("user_login_failed")
                .id("a")
                .actor("U1")
                .ip("10.0.0.1")
                .at(5)
                .build(),
            event("user_login").id("b").actor("U1").at(6).build(),
        ];
        let findings = t.run(&events).unwrap();
        // The host filters by subscribed action; the detector itself flags whatever it gets.
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].summary, "failed login from 10.0.0.1");
        assert_eq!(findings[0].severity, Severity::Low);
    }
}
