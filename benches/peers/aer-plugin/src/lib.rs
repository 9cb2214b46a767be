//! The detector as an AER plugin: subscribed to downloads, each user's window in the
//! plugin's state (the SDK's `State`).

use aer_sdk::prelude::*;
use peers_common::{ACTION, Download};

#[derive(Default)]
struct Downloads;

impl Detector for Downloads {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions([ACTION])
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let d = Download {
            id: event.id.to_owned(),
            user: event.actor.id.to_owned(),
            time_ms: event.time_ms,
        };
        let window = ctx.state().get_bytes(&d.user).map(<[u8]>::to_vec);
        let mut next = None;
        let hit = peers_common::judge(&d, |_| window, |_, v| next = Some(v));
        if let Some(v) = next {
            ctx.state().set_bytes(&d.user, v);
        }
        if let Some(h) = hit {
            ctx.emit(Finding::new("downloads-in-window", &h.subject).evidence(&h.evidence));
        }
        Ok(())
    }
}

aer_sdk::export_detector!(Downloads);
