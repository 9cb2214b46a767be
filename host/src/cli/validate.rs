//! `aer validate PLUGIN.wasm`: check a component the way an upload is checked and print
//! its world, WIT version, imports, exports, size and sha256. Exit 4 when rejected.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{EXIT_OK, EXIT_REJECTED, Io, read};
use crate::engine::{AerEngine, EngineConfig};

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
        let plugin = match crate::plugin::Loader::new(engine.clone()).load(&bytes) {
            Ok(p) => p,
            Err(reason) => {
                writeln!(io.err, "aer: rejected {}: {reason}", self.plugin.display())?;
                return Ok(EXIT_REJECTED);
            }
        };
        // Loading started it once, unconfigured, to read its self-description.
        self.print(io, &plugin.meta, plugin.info())
    }

    fn print(
        &self,
        io: &mut Io<'_>,
        meta: &crate::plugin::PluginMeta,
        info: &crate::bindings::PluginInfo,
    ) -> anyhow::Result<u8> {
        if self.json {
            let info = serde_json::json!({
                "name": info.name, "version": info.version, "description": info.description,
                "actions": info.actions, "config_schema": info.config_schema,
            });
            let v = serde_json::json!({
                "file": self.plugin.display().to_string(),
                "world": meta.kind,
                "wit": format!("aer:plugin@{}", meta.wit_version),
                "size": meta.size,
                "sha256": meta.sha256,
                "code": meta.code,
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
        writeln!(
            o,
            "  code:    {} functions in {} modules, {} bytes, largest body {} bytes",
            meta.code.functions, meta.code.modules, meta.code.code_bytes, meta.code.largest_body
        )?;
        writeln!(o, "  plugin:  {} {}", info.name, info.version)?;
        if !info.description.is_empty() {
            writeln!(o, "  about:   {}", info.description)?;
        }
        let actions = if info.actions.is_empty() {
            "(all)".to_owned()
        } else {
            info.actions.join(", ")
        };
        writeln!(o, "  actions: {actions}")?;
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
