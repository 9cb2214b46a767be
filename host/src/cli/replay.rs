//! `aer replay`: the whole local pipeline over a history file: detectors, the decision
//! engine under a policy, and responders whose effects are recorded, never performed.
//! Prints findings, decisions (with reasons) and would-be actions, per detector.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::{
    EXIT_ERROR, EXIT_OK, EXIT_REJECTED, Io, read, read_events, read_text, text_or_file, utc,
};
use crate::engine::{AerEngine, EngineConfig};
use crate::pipeline::decision::{DecisionEngine, Outcome, Policy};
use crate::plugin::instance::InstanceSpec;
use crate::plugin::{DetectorInstance, PluginKind, ResponderInstance};
use crate::replay::{recording_actions, replay};
use crate::store::{MemoryStore, StateStore};

/// Arguments of `aer replay`.
#[derive(Debug, Args)]
pub struct ReplayCommand {
    /// Events: a Slack Audit Logs envelope, NDJSON of entries, or generic NDJSON events.
    #[arg(long, short)]
    pub events: PathBuf,
    /// A detector component (repeat for several).
    #[arg(long = "detector", short = 'd', required = true)]
    pub detectors: Vec<PathBuf>,
    /// A responder component (repeat for several).
    #[arg(long = "responder", short = 'r')]
    pub responders: Vec<PathBuf>,
    /// Configuration of a plugin, by its name: `NAME=JSON` or `NAME=@FILE` (repeatable).
    #[arg(long = "config", short = 'c', value_name = "NAME=JSON")]
    pub configs: Vec<String>,
    /// The decision policy (JSON); default: dry-run with default settings.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// NDJSON records (`finding`, `decision`, `action`) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Events per detector call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

impl ReplayCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let mut configs = BTreeMap::new();
        for c in &self.configs {
            let Some((name, value)) = c.split_once('=') else {
                bail!("--config {c:?}: expected NAME=JSON or NAME=@FILE");
            };
            configs.insert(name.to_owned(), text_or_file(value)?);
        }
        let policy = match &self.policy {
            Some(path) => match Policy::from_json(&read_text(path)?) {
                Ok(p) => p,
                Err(errors) => {
                    for e in errors {
                        writeln!(io.err, "{}: {e}", path.display())?;
                    }
                    return Ok(EXIT_ERROR);
                }
            },
            None => Policy::default(),
        };
        let mut decisions =
            DecisionEngine::new(policy).map_err(|e| anyhow::anyhow!("invalid policy: {e:?}"))?;

        let engine = AerEngine::new(EngineConfig::default())?;
        let state: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let actions = recording_actions();
        let mut detectors = Vec::new();
        let mut responders = Vec::new();
        for (path, want) in self
            .detectors
            .iter()
            .map(|p| (p, PluginKind::Detector))
            .chain(self.responders.iter().map(|p| (p, PluginKind::Responder)))
        {
            let plugin = match engine.load(&read(path)?) {
                Ok(p) => p,
                Err(reason) => {
                    writeln!(io.err, "aer: rejected {}: {reason}", path.display())?;
                    return Ok(EXIT_REJECTED);
                }
            };
            if plugin.meta.kind != want {
                bail!("{} is a {}, not a {want}", path.display(), plugin.meta.kind);
            }
            let spec = InstanceSpec {
                tenant: "replay".into(),
                config: configs.remove(&plugin.info().name).unwrap_or_default(),
                state: state.clone(),
                actions: actions.clone(),
            };
            match want {
                PluginKind::Detector => {
                    detectors.push(DetectorInstance::new(&engine, &plugin, spec)?)
                }
                PluginKind::Responder => {
                    responders.push(ResponderInstance::new(&engine, &plugin, spec)?)
                }
            }
        }
        if let Some(name) = configs.keys().next() {
            bail!("--config names {name:?}, which is not one of the loaded plugins");
        }

        let parsed = read_events(&self.events, io)?;

        let total = parsed.events.len() as u64;
        let bar = if std::io::stderr().is_terminal() && total > 10_000 {
            indicatif::ProgressBar::new(total * detectors.len() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut base = 0u64;
        let mut last = 0usize;
        let report = replay(
            &parsed.events,
            &mut detectors,
            &mut decisions,
            &mut responders,
            self.batch,
            |done| {
                if done < last {
                    base += total;
                }
                last = done;
                bar.set_position(base + done as u64);
            },
        )?;
        bar.finish_and_clear();

        if self.json || !io.out_is_terminal {
            for f in &report.findings {
                writeln!(
                    io.out,
                    "{}",
                    serde_json::json!({"type": "finding", "finding": f})
                )?;
            }
            for d in &report.decisions {
                writeln!(
                    io.out,
                    "{}",
                    serde_json::json!({"type": "decision", "decision": d})
                )?;
            }
            for a in &report.actions {
                writeln!(
                    io.out,
                    "{}",
                    serde_json::json!({"type": "action", "action": a})
                )?;
            }
        } else {
            print_tables(io.out, &report)?;
        }
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &report.decisions {
            *outcomes.entry(outcome_name(d.outcome)).or_default() += 1;
        }
        let outcomes: Vec<String> = outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(
            io.err,
            "replayed {} events ({} rejected): {} findings, {} decisions ({}), {} recorded actions",
            report.events,
            parsed.errors.len(),
            report.findings.len(),
            report.decisions.len(),
            if outcomes.is_empty() {
                "none".to_owned()
            } else {
                outcomes.join(", ")
            },
            report.actions.len(),
        )?;
        Ok(EXIT_OK)
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    o.as_str()
}

fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    t
}

fn print_tables(out: &mut dyn Write, r: &crate::replay::ReplayReport) -> anyhow::Result<()> {
    let mut t = table(["detector", "version", "events", "findings", "us/event"]);
    for d in &r.detectors {
        let us = if d.delivered > 0 {
            d.plugin_time.as_secs_f64() * 1e6 / d.delivered as f64
        } else {
            0.0
        };
        t.add_row([
            d.plugin.clone(),
            d.version.clone(),
            d.delivered.to_string(),
            d.findings.to_string(),
            format!("{us:.2}"),
        ]);
    }
    writeln!(out, "Detectors\n{t}")?;
    if !r.findings.is_empty() {
        let mut t = table([
            "time (UTC)",
            "rule",
            "subject",
            "severity",
            "score",
            "summary",
        ]);
        for f in &r.findings {
            t.add_row([
                utc(f.time_ms),
                f.rule.clone(),
                f.subject.clone(),
                f.severity.clone(),
                format!("{:.2}", f.score),
                f.summary.clone(),
            ]);
        }
        writeln!(out, "\nFindings\n{t}")?;
    }
    if !r.decisions.is_empty() {
        let mut t = table(["time (UTC)", "subject", "decision", "reason"]);
        for d in &r.decisions {
            t.add_row([
                utc(d.time_ms),
                d.subject.clone(),
                outcome_name(d.outcome).into(),
                d.reason.clone(),
            ]);
        }
        writeln!(out, "\nDecisions\n{t}")?;
    }
    if !r.actions.is_empty() {
        let mut t = table(["time (UTC)", "responder", "action", "subject", "result"]);
        for a in &r.actions {
            let result = if a.ok {
                format!("ok ({})", a.detail)
            } else {
                format!("failed: {}", a.detail)
            };
            t.add_row([
                utc(a.time_ms),
                a.responder.clone(),
                a.action.clone(),
                a.subject.clone(),
                result,
            ]);
        }
        writeln!(out, "\nActions (recorded, not performed)\n{t}")?;
    }
    Ok(())
}
