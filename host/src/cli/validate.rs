//! `aer validate PLUGIN.wasm`: check a component the way an upload is checked and print
//! its world, WIT version, imports, exports, size and sha256. Exit 4 when rejected.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{EXIT_OK, EXIT_REJECTED, Io, read};
use crate::engine::{AerEngine, EngineConfig};
use crate::host_api::DryRunActions;
use crate::plugin::instance::InstanceSpec;
use crate::plugin::{DetectorInstance, PluginKind, ResponderInstance};
use crate::store::MemoryStore;

/// Arguments of `aer validate`.
#[derive(Debug, Args)]
pub struct ValidateCommand {
    /// The component file.
    pub plugin: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ValidateCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let bytes = read(&self.plugin)?;
        let engine = AerEngine::new(EngineConfig::default())?;
        let plugin = match engine.load(&bytes) {
            Ok(p) => p,
            Err(reason) => {
                writeln!(io.err, "aer: rejected {}: {reason}", self.plugin.display())?;
                return Ok(EXIT_REJECTED);
            }
        };
        // Start it once, as the host would, to read its self-description.
        let spec = InstanceSpec {
            tenant: "validate".into(),
            config: String::new(),
            state: Arc::new(MemoryStore::default()),
            actions: Arc::new(DryRunActions::default()),
        };
        let info = match plugin.meta.kind {
            PluginKind::Detector => {
                DetectorInstance::new(&engine, &plugin, spec).map(|i| i.info().clone())
            }
            PluginKind::Responder => {
                ResponderInstance::new(&engine, &plugin, spec).map(|i| i.info().clone())
            }
        };
        let info = match info {
            Ok(info) => info,
            Err(fault) if fault.kind == crate::plugin::FaultKind::Config => {
                // Refusing an empty configuration is allowed: it may need real settings.
                writeln!(
                    io.err,
                    "note: the plugin refuses an empty configuration: {}",
                    fault.message
                )?;
                return self.print(io, &plugin.meta, None);
            }
            Err(fault) => {
                writeln!(
                    io.err,
                    "aer: rejected {}: fails to start: {}: {}",
                    self.plugin.display(),
                    fault.kind,
                    fault.message
                )?;
                return Ok(EXIT_REJECTED);
            }
        };
        self.print(io, &plugin.meta, Some(info))
    }

    fn print(
        &self,
        io: &mut Io<'_>,
        meta: &crate::plugin::PluginMeta,
        info: Option<crate::bindings::PluginInfo>,
    ) -> anyhow::Result<u8> {
        if self.json {
            let info = info.map(|i| {
                serde_json::json!({
                    "name": i.name, "version": i.version, "description": i.description,
                    "actions": i.actions, "config_schema": i.config_schema,
                })
            });
            let v = serde_json::json!({
                "file": self.plugin.display().to_string(),
                "world": meta.kind,
                "wit": format!("aer:plugin@{}", meta.wit_version),
                "size": meta.size,
                "sha256": meta.sha256,
                "imports": meta.imports,
                "exports": meta.exports,
                "plugin": info,
            });
            writeln!(io.out, "{v}")?;
            return Ok(EXIT_OK);
        }
        let o = &mut io.out;
        writeln!(
            o,
            "valid {} component: {}",
            meta.kind,
            self.plugin.display()
        )?;
        writeln!(o, "  world:   {}", meta.kind)?;
        writeln!(o, "  wit:     aer:plugin@{}", meta.wit_version)?;
        writeln!(o, "  size:    {} bytes", meta.size)?;
        writeln!(o, "  sha256:  {}", meta.sha256)?;
        if let Some(i) = info {
            writeln!(o, "  plugin:  {} {}", i.name, i.version)?;
            if !i.description.is_empty() {
                writeln!(o, "  about:   {}", i.description)?;
            }
            let actions = if i.actions.is_empty() {
                "(all)".to_owned()
            } else {
                i.actions.join(", ")
            };
            writeln!(o, "  actions: {actions}")?;
        }
        writeln!(o, "  imports:")?;
        for i in &meta.imports {
            writeln!(o, "    {i}")?;
        }
        writeln!(o, "  exports:")?;
        for e in &meta.exports {
            writeln!(o, "    {e}")?;
        }
        Ok(EXIT_OK)
    }
}
