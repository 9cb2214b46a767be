//! Plugin instances a worker keeps warm, per (tenant, plugin), rebuilt when the active
//! version or the configuration changes, the least recently used dropped when the
//! worker holds its share of `max_instances`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::Worker;
use crate::daemon::Daemon;
use crate::daemon::effects::DaemonActions;
use crate::daemon::plugins::{PluginError, PluginRecord};
use crate::host_api::DryRunActions;
use crate::plugin::instance::InstanceSpec;
use crate::plugin::validate::Rejection;
use crate::plugin::{DetectorInstance, ResponderInstance};

/// A responder instance and the action sink it was built with.
pub(super) type LiveResponder = (ResponderInstance, Arc<DaemonActions>);

/// A live plugin instance, kept while its version and configuration stay the same.
pub(super) struct Cached<T> {
    sha256: String,
    config: String,
    used: Instant,
    value: T,
}

/// Instances kept out of the workers' shares, for uploads (which instantiate a plugin
/// to describe it) and for `aer validate`-style checks running at the same time.
pub(super) const RESERVED_INSTANCES: u32 = 32;

/// Why a plugin instance cannot be had.
pub(super) enum Unavailable {
    /// Every compiler slot is taken (another worker or the start-up warm-up is
    /// compiling): the host's condition, not the plugin's; try again on a later turn.
    Busy,
    /// Loading or starting it failed: the plugin's fault.
    Fault(String),
}

/// The cached instance of `p` for `tenant`, rebuilt with `build` (given the loaded
/// component) when the active version or the configuration changed. Before building
/// one, when the worker already holds `room` instances (`held` of them in this cache),
/// the least recently used one of this cache is dropped.
fn cached<'c, T>(
    cache: &'c mut HashMap<(String, String), Cached<T>>,
    (held, room): (usize, usize),
    daemon: &Daemon,
    tenant: &str,
    p: &PluginRecord,
    build: impl FnOnce(&Arc<crate::plugin::LoadedPlugin>) -> Result<T, crate::plugin::Fault>,
) -> Result<&'c mut T, Unavailable> {
    let sha = p
        .active_version()
        .map(|v| v.sha256.clone())
        .ok_or_else(|| Unavailable::Fault(format!("no active version {}", p.active)))?;
    let key = (tenant.to_owned(), p.name.clone());
    let stale = cache
        .get(&key)
        .is_none_or(|c| c.sha256 != sha || c.config != p.config);
    if stale {
        cache.remove(&key);
        if held >= room {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        let loaded = daemon.load_artifact(&sha).map_err(|e| match e {
            PluginError::Rejected(Rejection::CompilerBusy { .. }) => Unavailable::Busy,
            e => Unavailable::Fault(e.to_string()),
        })?;
        let value = build(&loaded).map_err(|f| Unavailable::Fault(f.to_string()))?;
        daemon.metrics.instantiated(tenant, &p.name);
        cache.insert(
            key.clone(),
            Cached {
                sha256: sha,
                config: p.config.clone(),
                used: Instant::now(),
                value,
            },
        );
    }
    let entry = cache.get_mut(&key).expect("inserted above");
    entry.used = Instant::now();
    Ok(&mut entry.value)
}

/// What an instance of `tenant`'s plugin `p` is built with: its configuration, the
/// daemon's state store and `actions`.
fn instance_spec(
    daemon: &Daemon,
    tenant: &str,
    p: &PluginRecord,
    actions: Arc<dyn crate::host_api::ActionSink>,
) -> InstanceSpec {
    InstanceSpec {
        tenant: tenant.to_owned(),
        // The tenant's name for the plugin keys everything, never the component's.
        name: Some((p.name.clone(), p.active.clone())),
        config: p.config.clone(),
        state: Arc::new(daemon.state_store()),
        actions,
    }
}

impl Worker {
    pub(super) fn instance(
        &mut self,
        tenant: &str,
        p: &PluginRecord,
    ) -> Result<&mut DetectorInstance, Unavailable> {
        let daemon = self.daemon.clone();
        let held = (self.detectors.len() + self.responders.len(), self.room);
        cached(
            &mut self.detectors,
            held,
            &self.daemon,
            tenant,
            p,
            |loaded| {
                DetectorInstance::new(
                    &daemon.engine,
                    loaded,
                    instance_spec(&daemon, tenant, p, Arc::new(DryRunActions::default())),
                )
            },
        )
    }
    pub(super) fn responder(
        &mut self,
        tenant: &str,
        p: &PluginRecord,
    ) -> Result<&mut LiveResponder, Unavailable> {
        let daemon = self.daemon.clone();
        let held = (self.detectors.len() + self.responders.len(), self.room);
        cached(
            &mut self.responders,
            held,
            &self.daemon,
            tenant,
            p,
            |loaded| {
                let sink = Arc::new(DaemonActions::new(&daemon, tenant, &p.name));
                let instance = ResponderInstance::new(
                    &daemon.engine,
                    loaded,
                    instance_spec(&daemon, tenant, p, sink.clone()),
                )?;
                Ok((instance, sink))
            },
        )
    }
}
