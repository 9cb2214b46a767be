//! `aer test PLUGIN.wasm --events FILE`: run a detector over an event file and print
//! its findings (a table on a terminal, NDJSON with `--json` or when piped). With
//! `--expect FILE` compare against expected findings and exit 3 on a difference.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Deserialize;

use super::{
    EXIT_ERROR, EXIT_MISMATCH, EXIT_OK, EXIT_REJECTED, Io, read, read_text, text_or_file, utc,
};
use crate::host_api::DryRunActions;
use crate::plugin::instance::InstanceSpec;
use crate::plugin::{DetectorInstance, PluginKind};
use crate::records::FindingRecord;
use crate::store::{MemoryStore, SledStore, StateStore};

/// Arguments of `aer test`.
#[derive(Debug, Args)]
pub struct TestCommand {
    /// The detector or responder component.
    pub plugin: PathBuf,
    /// Events for a detector: a Slack Audit Logs envelope, NDJSON of entries, or generic
    /// NDJSON events.
    #[arg(long, short, required_unless_present = "decisions")]
    pub events: Option<PathBuf>,
    /// Decisions for a responder: NDJSON of decision records, bare or as `aer replay
    /// --json` prints them (its other lines are skipped).
    #[arg(long, conflicts_with = "events")]
    pub decisions: Option<PathBuf>,
    /// The tenant's policy (JSON) whose `responses` admit a responder's effects (which
    /// run at once, which wait for approval); default: the default policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Plugin configuration as JSON text, or `@FILE` to read it from a file.
    #[arg(long, short)]
    pub config: Option<String>,
    /// Expected findings (NDJSON); exit 3 if the findings differ.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Print findings as NDJSON even on a terminal.
    #[arg(long)]
    pub json: bool,
    /// Events per plugin call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Events held back to put an NDJSON file in time order; an event earlier than
    /// that many events before it stops the run (sort the file first).
    #[arg(long, default_value_t = super::events::REORDER_WINDOW, value_name = "EVENTS")]
    pub reorder_window: usize,
    /// Keep the plugin's state in a sled database in this directory (default: memory).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Tenant name the state is kept under.
    #[arg(long, default_value = "local")]
    pub tenant: String,
    /// Per-call deadline in milliseconds.
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// Memory limit in MiB.
    #[arg(long)]
    pub memory_mib: Option<usize>,
    /// A geolocation database (MaxMind format) for the `geo` service; repeat for several
    /// (e.g. City and ASN). Without one every address is unknown.
    #[arg(long, value_name = "FILE")]
    pub geo: Vec<PathBuf>,
}

/// One expected finding; fields left out are not compared, unknown ones are refused
/// (a misspelt field would otherwise compare nothing).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    subject: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    time_ms: Option<i64>,
    #[serde(default)]
    evidence: Option<Vec<String>>,
}

impl Expected {
    fn matches(&self, f: &FindingRecord) -> bool {
        self.rule == f.rule
            && self.subject == f.subject
            && self.severity.as_ref().is_none_or(|s| *s == f.severity)
            && self.time_ms.is_none_or(|t| t == f.time_ms)
            && self.evidence.as_ref().is_none_or(|e| *e == f.evidence)
    }

    /// Every field it compares.
    fn describe(&self) -> String {
        let mut s = format!("{} {}", self.rule, self.subject);
        if let Some(sev) = &self.severity {
            s.push_str(&format!(" {sev}"));
        }
        if let Some(t) = self.time_ms {
            s.push_str(&format!(" at {t}"));
        }
        if let Some(e) = &self.evidence {
            s.push_str(&format!(" evidence {}", e.join(",")));
        }
        s
    }
}

impl TestCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let engine = super::local_engine(self.deadline_ms, self.memory_mib, &self.geo)?;
        let bytes = read(&self.plugin)?;
        let plugin = match crate::plugin::Loader::new(engine.clone()).load(&bytes) {
            Ok(p) => p,
            Err(reason) => {
                writeln!(io.err, "aer: rejected {}: {reason}", self.plugin.display())?;
                return Ok(EXIT_REJECTED);
            }
        };
        let config = match &self.config {
            Some(c) => text_or_file(c)?,
            None => String::new(),
        };
        let input = match (plugin.meta.kind, &self.events, &self.decisions) {
            (PluginKind::Detector, Some(events), _) => events.clone(),
            (PluginKind::Responder, _, Some(decisions)) => {
                return super::test_responder::run(&self, &engine, &plugin, config, decisions, io);
            }
            (kind, _, _) => {
                let wants = match kind {
                    PluginKind::Detector => "--events",
                    PluginKind::Responder => "--decisions",
                };
                writeln!(
                    io.err,
                    "aer: {} is a {kind}: test it with {wants} FILE",
                    self.plugin.display()
                )?;
                return Ok(EXIT_ERROR);
            }
        };
        let state: Arc<dyn StateStore> = match &self.state {
            Some(dir) => Arc::new(
                SledStore::open(dir)
                    .with_context(|| format!("cannot open state in {}", dir.display()))?,
            ),
            None => Arc::new(MemoryStore::default()),
        };
        let expected = match &self.expect {
            Some(path) => Some(read_expected(path)?),
            None => None,
        };

        let spec = InstanceSpec {
            tenant: self.tenant.clone(),
            name: None,
            config,
            state: state.clone(),
            actions: Arc::new(DryRunActions::default()),
        };
        let mut detector = DetectorInstance::new(&engine, &plugin, spec)?;
        let mut run = crate::runner::Run::new(&mut detector, self.batch);
        let streamed = super::events::stream(
            &input,
            io,
            self.reorder_window,
            |chunk| Ok(run.feed(chunk)?),
            |_| {},
        )?;
        let report = run.finish()?;
        state.flush()?;

        if self.json || !io.out_is_terminal {
            for f in &report.findings {
                writeln!(io.out, "{}", serde_json::to_string(f)?)?;
            }
        } else {
            print_table(io.out, &report.findings)?;
        }
        for log in &report.logs {
            writeln!(io.err, "plugin {}: {}", log.level, log.message)?;
        }
        let per_event_us = if report.delivered > 0 {
            report.plugin_time.as_secs_f64() * 1e6 / report.delivered as f64
        } else {
            0.0
        };
        let limits = engine.limits();
        writeln!(
            io.err,
            "{} {}: {} events ({} delivered, {} rejected), {} findings, {:.2} us/event in {} calls, peak guest memory {:.1} MiB of {} MiB, deadline {} ms",
            detector.id().plugin,
            detector.id().version,
            report.events,
            report.delivered,
            streamed.rejected,
            report.findings.len(),
            per_event_us,
            report.batches,
            detector.peak_memory() as f64 / (1 << 20) as f64,
            limits.memory_bytes >> 20,
            limits.deadline_ms,
        )?;

        let Some(expected) = expected else {
            return Ok(EXIT_OK);
        };
        let (missing, unexpected) = compare(&expected, &report.findings);
        if missing.is_empty() && unexpected.is_empty() {
            writeln!(io.err, "findings match {} expected", expected.len())?;
            return Ok(EXIT_OK);
        }
        writeln!(io.err, "findings differ from expected:")?;
        for m in missing {
            writeln!(io.err, "- {}", m.describe())?;
        }
        for f in unexpected {
            writeln!(
                io.err,
                "+ {} {} {} at {} evidence {}",
                f.rule,
                f.subject,
                f.severity,
                f.time_ms,
                f.evidence.join(",")
            )?;
        }
        Ok(EXIT_MISMATCH)
    }
}

fn read_expected(path: &std::path::Path) -> anyhow::Result<Vec<Expected>> {
    let text = read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// Match expected to actual findings one to one; return what is left on each side.
fn compare<'a>(
    expected: &'a [Expected],
    actual: &'a [FindingRecord],
) -> (Vec<&'a Expected>, Vec<&'a FindingRecord>) {
    let mut used = vec![false; actual.len()];
    let mut missing = Vec::new();
    for e in expected {
        match (0..actual.len()).find(|&i| !used[i] && e.matches(&actual[i])) {
            Some(i) => used[i] = true,
            None => missing.push(e),
        }
    }
    let unexpected = actual
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(f, _)| f)
        .collect();
    (missing, unexpected)
}

/// Findings as a table (or `no findings`); `aer replay` prints its findings with it too.
pub(super) fn print_table(out: &mut dyn Write, findings: &[FindingRecord]) -> anyhow::Result<()> {
    if findings.is_empty() {
        writeln!(out, "no findings")?;
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header([
            "time (UTC)",
            "rule",
            "subject",
            "severity",
            "score",
            "summary",
        ]);
    for f in findings {
        table.add_row(super::row([
            utc(f.time_ms),
            f.rule.clone(),
            f.subject.clone(),
            f.severity.clone(),
            format!("{:.2}", f.score),
            f.summary.clone(),
        ]));
    }
    writeln!(out, "{table}")?;
    Ok(())
}
