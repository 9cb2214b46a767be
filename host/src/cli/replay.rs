//! `aer replay`: the whole local pipeline over a history file: detectors, the decision
//! engine under a policy, and responders whose effects are recorded, never performed.
//! Prints findings, decisions (with reasons) and would-be actions, per detector.

use crate::pipeline::respond::{AWAITING_APPROVAL, response_state, tally};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::{EXIT_ERROR, EXIT_OK, EXIT_REJECTED, Io, events, read, read_text, text_or_file, utc};
use crate::host_api::DryRunActions;
use crate::pipeline::decide::{DecisionEngine, Outcome};
use crate::pipeline::policy::Policy;
use crate::plugin::instance::InstanceSpec;
use crate::plugin::{DetectorInstance, PluginKind, ResponderInstance};
use crate::replay::{Replay, Responders};
use crate::store::{MemoryStore, StateStore};

/// Arguments of `aer replay`.
#[derive(Debug, Args)]
pub struct ReplayCommand {
    /// Events: a Slack Audit Logs envelope, NDJSON of entries, or generic NDJSON events.
    #[arg(long, short)]
    pub events: PathBuf,
    /// A detector component (repeat for several).
    #[arg(long = "detector", short = 'd', required_unless_present = "plugins")]
    pub detectors: Vec<PathBuf>,
    /// A directory of components: every `.wasm` file in it is loaded as the detector or
    /// responder it is.
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Labelled attacks and near-misses (NDJSON, as `aer gen` writes): print precision
    /// and recall per detector instead of the finding and decision tables.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Sweep one detector setting: `PLUGIN.KEY=V1,V2,...` (KEY may be a dotted path into
    /// the configuration, e.g. `excessive-downloads.baseline.floor=20,30,40`). Replays
    /// the history through that detector once per value and prints findings per day at
    /// each (and precision and recall with `--labels`). Repeatable.
    #[arg(long, value_name = "PLUGIN.KEY=VALUES")]
    pub calibrate: Vec<String>,
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
    /// Events held back to put an NDJSON file in time order; an event earlier than
    /// that many events before it stops the run (sort the file first).
    #[arg(long, default_value_t = super::events::REORDER_WINDOW, value_name = "EVENTS")]
    pub reorder_window: usize,
    /// A geolocation database (MaxMind format) for the `geo` service; repeat for several
    /// (e.g. City and ASN). Without one every address is unknown.
    #[arg(long, value_name = "FILE")]
    pub geo: Vec<PathBuf>,
    /// Per-call deadline in milliseconds (default: the daemon's).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// Memory limit of each plugin in MiB (default: the daemon's).
    #[arg(long)]
    pub memory_mib: Option<usize>,
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
        let Some(policy) = super::read_policy(self.policy.as_deref(), io)? else {
            return Ok(EXIT_ERROR);
        };
        let mut responders = Responders::new(policy.responses.clone());
        let mut decisions =
            DecisionEngine::new(policy).map_err(|e| anyhow::anyhow!("invalid policy: {e:?}"))?;

        let engine = super::local_engine(self.deadline_ms, self.memory_mib, &self.geo)?;
        let state: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let mut detectors = Vec::new();
        let mut configs_used = BTreeMap::new();
        let mut paths: Vec<(PathBuf, Option<PluginKind>)> = self
            .detectors
            .iter()
            .map(|p| (p.clone(), Some(PluginKind::Detector)))
            .chain(
                self.responders
                    .iter()
                    .map(|p| (p.clone(), Some(PluginKind::Responder))),
            )
            .collect();
        if let Some(dir) = &self.plugins {
            paths.extend(components_in(dir)?.into_iter().map(|p| (p, None)));
        }
        let mut loaded = Vec::new();
        for (path, want) in paths {
            let plugin = match crate::plugin::Loader::new(engine.clone()).load(&read(&path)?) {
                Ok(p) => p,
                Err(reason) => {
                    writeln!(io.err, "aer: rejected {}: {reason}", path.display())?;
                    return Ok(EXIT_REJECTED);
                }
            };
            let want = want.unwrap_or(plugin.meta.kind);
            if plugin.meta.kind != want {
                bail!("{} is a {}, not a {want}", path.display(), plugin.meta.kind);
            }
            loaded.push((plugin.info().name.clone(), plugin.clone()));
            let config = configs.remove(&plugin.info().name).unwrap_or_default();
            configs_used.insert(plugin.info().name.clone(), config.clone());
            let actions = match want {
                PluginKind::Detector => Arc::new(DryRunActions::default()) as _,
                PluginKind::Responder => responders.sink(&plugin.info().name),
            };
            let spec = InstanceSpec {
                tenant: "replay".into(),
                name: None,
                config,
                state: state.clone(),
                actions,
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

        let labels = match &self.labels {
            Some(path) => Some(
                crate::labels::parse(&read_text(path)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            ),
            None => None,
        };
        let sweeps = self
            .calibrate
            .iter()
            .map(|c| Sweep::parse(c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for sweep in &sweeps {
            if !loaded.iter().any(|(name, _)| *name == sweep.plugin) {
                bail!(
                    "--calibrate {}: no detector named {:?} is loaded",
                    sweep.spec,
                    sweep.plugin
                );
            }
        }

        let size = std::fs::metadata(&self.events).map_or(0, |m| m.len());
        let bar = if std::io::stderr().is_terminal() && size > (8 << 20) {
            indicatif::ProgressBar::new(size)
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut run = Replay::new(&mut detectors, &mut decisions, &mut responders, self.batch);
        let streamed = events::stream(
            &self.events,
            io,
            self.reorder_window,
            |chunk| Ok(run.feed(chunk)?),
            |read| bar.set_position(read),
        )?;
        let report = run.finish()?;
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
                let mut line = serde_json::json!({"type": "decision", "decision": d});
                let (effects, held) = effects_of(&report, &d.id);
                if let Some(state) = response_state(d.outcome, effects, held, false) {
                    line["response"] = serde_json::json!({"state": state, "effects": effects});
                }
                writeln!(io.out, "{line}")?;
            }
            for a in &report.actions {
                writeln!(
                    io.out,
                    "{}",
                    serde_json::json!({"type": "action", "action": a})
                )?;
            }
            if let Some(labels) = &labels {
                for row in crate::labels::score(labels, &report.findings) {
                    writeln!(
                        io.out,
                        "{}",
                        serde_json::json!({"type": "score", "score": row, "precision": row.precision(), "recall": row.recall()})
                    )?;
                }
            }
        } else if let Some(labels) = &labels {
            print_detectors(io.out, &report)?;
            print_scores(io.out, &crate::labels::score(labels, &report.findings))?;
        } else {
            print_tables(io.out, &report)?;
        }
        let days = streamed.days();
        for sweep in &sweeps {
            let (_, plugin) = loaded
                .iter()
                .find(|(name, _)| *name == sweep.plugin)
                .expect("checked above");
            let base = configs_used.get(&sweep.plugin).cloned().unwrap_or_default();
            let mut t = table(["setting", "findings", "per day", "precision", "recall"]);
            for value in &sweep.values {
                let config = sweep.config_with(&base, value)?;
                let spec = InstanceSpec {
                    tenant: "calibrate".into(),
                    name: None,
                    config,
                    state: Arc::new(MemoryStore::default()),
                    actions: Arc::new(DryRunActions::default()),
                };
                let mut d = vec![DetectorInstance::new(&engine, plugin, spec)?];
                let mut quiet = DecisionEngine::new(Policy::default())
                    .map_err(|e| anyhow::anyhow!("invalid policy: {e:?}"))?;
                let mut none = Responders::default();
                let mut run = Replay::new(&mut d, &mut quiet, &mut none, self.batch);
                // Lines rejected were reported on the first pass.
                let (mut out, mut err) = (std::io::sink(), std::io::sink());
                let mut quiet_io = Io {
                    out: &mut out,
                    err: &mut err,
                    out_is_terminal: false,
                };
                events::stream(
                    &self.events,
                    &mut quiet_io,
                    self.reorder_window,
                    |chunk| Ok(run.feed(chunk)?),
                    |_| {},
                )?;
                let r = run.finish()?;
                let (p, rc) = match &labels {
                    Some(l) => {
                        let rows = crate::labels::score(l, &r.findings);
                        let row = rows
                            .iter()
                            .find(|x| x.detector == sweep.plugin)
                            .cloned()
                            .unwrap_or_default();
                        (
                            format!("{:.3}", row.precision()),
                            format!("{:.3}", row.recall()),
                        )
                    }
                    None => ("-".into(), "-".into()),
                };
                if self.json || !io.out_is_terminal {
                    writeln!(
                        io.out,
                        "{}",
                        serde_json::json!({"type": "calibration", "plugin": sweep.plugin,
                            "key": sweep.key, "value": value, "findings": r.findings.len(),
                            "per_day": r.findings.len() as f64 / days,
                            "precision": p.parse::<f64>().ok(), "recall": rc.parse::<f64>().ok()})
                    )?;
                }
                t.add_row(super::row([
                    format!("{}={value}", sweep.key),
                    r.findings.len().to_string(),
                    format!("{:.2}", r.findings.len() as f64 / days),
                    p,
                    rc,
                ]));
            }
            if !self.json && io.out_is_terminal {
                writeln!(
                    io.out,
                    "\nCalibration of {} over {days:.1} days of history\n{t}",
                    sweep.plugin
                )?;
            }
        }
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &report.decisions {
            *outcomes.entry(outcome_name(d.outcome)).or_default() += 1;
        }
        let outcomes: Vec<String> = outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        for d in &report.detectors {
            if !d.dead_letters.is_empty() {
                writeln!(
                    io.err,
                    "aer: detector {} faulted on {} event(s) every time and went on past them (as the daemon's dead letters): {}",
                    d.plugin,
                    d.dead_letters.len(),
                    crate::text::escape_control(&d.dead_letters.join(", "))
                )?;
            }
            if let Some(fault) = &d.quarantined {
                writeln!(
                    io.err,
                    "aer: detector {} was quarantined (the daemon would stop it): {}",
                    d.plugin,
                    crate::text::escape_control(fault)
                )?;
            }
        }
        for (name, fault) in &report.quarantined_responders {
            writeln!(
                io.err,
                "aer: responder {name} was quarantined (the daemon would stop it): {}",
                crate::text::escape_control(fault)
            )?;
        }
        writeln!(
            io.err,
            "replayed {} events ({} rejected): {} findings, {} decisions ({}), {} recorded actions",
            report.events,
            streamed.rejected,
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

/// How many effects (refusals aside) the responders asked for in decision `id`, and
/// how many of them wait for approval.
fn effects_of(r: &crate::replay::ReplayReport, id: &str) -> (usize, usize) {
    tally(
        r.actions
            .iter()
            .filter(|a| a.decision_id == id)
            .map(|a| (a.action.as_str(), a.detail.as_str())),
    )
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

/// The `.wasm` files in `dir`, sorted.
fn components_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            out.push(path);
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("{} holds no .wasm components", dir.display());
    }
    Ok(out)
}

/// One `--calibrate PLUGIN.KEY=V1,V2` sweep.
struct Sweep {
    spec: String,
    plugin: String,
    key: String,
    values: Vec<serde_json::Value>,
}

impl Sweep {
    fn parse(spec: &str) -> anyhow::Result<Sweep> {
        let bad = || anyhow::anyhow!("--calibrate {spec:?}: expected PLUGIN.KEY=V1,V2,...");
        let (target, values) = spec.split_once('=').ok_or_else(bad)?;
        let (plugin, key) = target.split_once('.').ok_or_else(bad)?;
        let values: Vec<serde_json::Value> = values
            .split(',')
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                serde_json::from_str(v.trim())
                    .unwrap_or_else(|_| serde_json::Value::String(v.trim().into()))
            })
            .collect();
        if plugin.is_empty() || key.is_empty() || values.is_empty() {
            return Err(bad());
        }
        Ok(Sweep {
            spec: spec.to_owned(),
            plugin: plugin.to_owned(),
            key: key.to_owned(),
            values,
        })
    }

    /// `base` (a JSON object, or empty) with this sweep's key set to `value`.
    fn config_with(&self, base: &str, value: &serde_json::Value) -> anyhow::Result<String> {
        let mut config: serde_json::Value = if base.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(base)
                .with_context(|| format!("configuration of {}", self.plugin))?
        };
        let mut at = &mut config;
        let mut parts = self.key.split('.').peekable();
        while let Some(part) = parts.next() {
            let obj = at.as_object_mut().ok_or_else(|| {
                anyhow::anyhow!(
                    "--calibrate {}: {part:?} is not inside an object",
                    self.spec
                )
            })?;
            if parts.peek().is_none() {
                obj.insert(part.to_owned(), value.clone());
                break;
            }
            at = obj
                .entry(part.to_owned())
                .or_insert_with(|| serde_json::json!({}));
        }
        Ok(config.to_string())
    }
}

fn print_detectors(out: &mut dyn Write, r: &crate::replay::ReplayReport) -> anyhow::Result<()> {
    let mut t = table([
        "detector",
        "version",
        "events",
        "findings",
        "would act",
        "us/event",
    ]);
    for d in &r.detectors {
        let acted = r
            .decisions
            .iter()
            .filter(|x| x.outcome.responds() && x.finding.plugin == d.plugin)
            .count();
        let us = if d.delivered > 0 {
            d.plugin_time.as_secs_f64() * 1e6 / d.delivered as f64
        } else {
            0.0
        };
        t.add_row(super::row([
            d.plugin.clone(),
            d.version.clone(),
            d.delivered.to_string(),
            d.findings.to_string(),
            acted.to_string(),
            format!("{us:.2}"),
        ]));
    }
    writeln!(out, "Detectors\n{t}")?;
    Ok(())
}

fn print_scores(out: &mut dyn Write, rows: &[crate::labels::Score]) -> anyhow::Result<()> {
    let mut t = table([
        "detector",
        "attacks",
        "detected",
        "findings",
        "true",
        "precision",
        "recall",
        "near-misses flagged",
    ]);
    for s in rows {
        t.add_row(super::row([
            s.detector.clone(),
            s.attacks.to_string(),
            s.detected.to_string(),
            s.findings.to_string(),
            s.true_findings.to_string(),
            format!("{:.3}", s.precision()),
            format!("{:.3}", s.recall()),
            format!("{}/{}", s.near_misses_flagged, s.near_misses),
        ]));
    }
    writeln!(out, "\nAgainst the labels\n{t}")?;
    Ok(())
}

fn print_tables(out: &mut dyn Write, r: &crate::replay::ReplayReport) -> anyhow::Result<()> {
    print_detectors(out, r)?;
    if !r.findings.is_empty() {
        writeln!(out, "\nFindings")?;
        super::test::print_table(out, &r.findings)?;
    }
    if !r.decisions.is_empty() {
        let mut t = table(["time (UTC)", "subject", "decision", "reason", "response"]);
        for d in &r.decisions {
            let (effects, held) = effects_of(r, &d.id);
            let response = match response_state(d.outcome, effects, held, false) {
                Some("nothing") => "nothing: every responder declined".to_owned(),
                Some(AWAITING_APPROVAL) => format!("{effects} effect(s), {held} awaiting approval"),
                Some(_) => format!("{effects} effect(s)"),
                None => String::new(),
            };
            t.add_row(super::row([
                utc(d.time_ms),
                d.subject.clone(),
                outcome_name(d.outcome).into(),
                d.reason.clone(),
                response,
            ]));
        }
        writeln!(out, "\nDecisions\n{t}")?;
    }
    if !r.actions.is_empty() {
        let mut t = table(["time (UTC)", "responder", "action", "target", "result"]);
        for a in &r.actions {
            let result = if a.ok {
                format!("ok ({})", a.detail)
            } else {
                format!("failed: {}", a.detail)
            };
            t.add_row(super::row([
                utc(a.time_ms),
                a.responder.clone(),
                a.action.clone(),
                a.target.clone(),
                result,
            ]));
        }
        writeln!(out, "\nActions (recorded, not performed)\n{t}")?;
    }
    Ok(())
}
