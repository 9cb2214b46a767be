//! The `Detector` trait and the runtime glue the export macro calls.

use crate::context::Context;
use crate::error::Result;
use crate::info::PluginInfo;
use aer_wire::EventRef;

/// A detector: events in, findings out. Every method has a default.
///
/// The host creates one instance (`Default`), calls [`Detector::configure`], then feeds
/// batches of events in event-time order. State kept in fields is lost when the host
/// restarts the plugin; state that must last goes through [`Context::state`].
pub trait Detector: Default + 'static {
    /// Describe the plugin. `base` carries name, version and description from
    /// `Cargo.toml`; add subscribed actions and a config schema here.
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base
    }

    /// Apply a JSON configuration (see [`crate::parse_config`]).
    fn configure(&mut self, config: &str) -> Result<()> {
        let _ = config;
        Ok(())
    }

    /// Look at one event. Called by the default [`Detector::on_batch`].
    fn on_event(&mut self, ctx: &mut Context<'_>, event: &EventRef<'_>) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// Look at a batch of events; the default calls [`Detector::on_event`] for each.
    fn on_batch(&mut self, ctx: &mut Context<'_>, events: &[EventRef<'_>]) -> Result<()> {
        for event in events {
            ctx.set_now(event.time_ms);
            self.on_event(ctx, event)?;
        }
        Ok(())
    }

    /// Event time moved to `now_ms` with no new events: close windows that ended.
    fn on_tick(&mut self, ctx: &mut Context<'_>, now_ms: i64) -> Result<()> {
        let _ = (ctx, now_ms);
        Ok(())
    }
}

/// Runtime glue for [`crate::export_detector!`] and the native test harness.
#[doc(hidden)]
pub mod runtime {
    use std::any::Any;
    use std::cell::RefCell;

    use super::Detector;
    use crate::context::Context;
    use crate::finding::Finding;
    use crate::host::Backend;
    use crate::info::PluginInfo;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    fn with<D: Detector, R>(f: impl FnOnce(&mut D) -> R) -> R {
        INSTANCE.with(|cell| {
            let mut slot = cell.borrow_mut();
            if !slot.as_ref().is_some_and(|b| b.is::<D>()) {
                *slot = Some(Box::new(D::default()));
            }
            let d = slot
                .as_mut()
                .and_then(|b| b.downcast_mut::<D>())
                .expect("instance was just set to this type");
            f(d)
        })
    }

    /// `info` export.
    pub fn info<D: Detector>(base: PluginInfo) -> PluginInfo {
        with::<D, _>(|d| d.info(base))
    }

    /// `configure` export.
    pub fn configure<D: Detector>(config: &str) -> Result<(), String> {
        with::<D, _>(|d| d.configure(config)).map_err(|e| e.to_string())
    }

    /// `on-events` export.
    pub fn on_events<D: Detector>(
        backend: &dyn Backend,
        batch: &[u8],
    ) -> Result<Vec<Finding>, String> {
        with::<D, _>(|d| run_batch(d, backend, batch)).map_err(|e| e.to_string())
    }

    /// `on-tick` export.
    pub fn on_tick<D: Detector>(
        backend: &dyn Backend,
        now_ms: i64,
    ) -> Result<Vec<Finding>, String> {
        with::<D, _>(|d| run_tick(d, backend, now_ms)).map_err(|e| e.to_string())
    }

    /// Decode a batch and run a detector over it.
    pub fn run_batch<D: Detector>(
        d: &mut D,
        backend: &dyn Backend,
        batch: &[u8],
    ) -> crate::Result<Vec<Finding>> {
        let events = aer_wire::decode_batch(batch)?;
        let mut ctx = Context::new(backend, events.first().map_or(0, |e| e.time_ms));
        d.on_batch(&mut ctx, &events)?;
        ctx.finish()
    }

    /// Run a detector's tick.
    pub fn run_tick<D: Detector>(
        d: &mut D,
        backend: &dyn Backend,
        now_ms: i64,
    ) -> crate::Result<Vec<Finding>> {
        let mut ctx = Context::new(backend, now_ms);
        d.on_tick(&mut ctx, now_ms)?;
        ctx.finish()
    }
}
