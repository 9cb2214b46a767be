//! `aer test RESPONDER --decisions FILE`: a responder over recorded decisions, its
//! effects admitted as the daemon admits them and recorded, never performed.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::test::TestCommand;
use super::{EXIT_ERROR, EXIT_OK, Io, read_text};
use crate::engine::AerEngine;
use crate::pipeline::respond::{ActionRecord, RecordedLog, RecordingActions};
use crate::plugin::LoadedPlugin;
use crate::plugin::ResponderInstance;
use crate::plugin::convert::wit_decision;
use crate::plugin::instance::InstanceSpec;
use crate::records::DecisionRecord;
use crate::store::{MemoryStore, StateStore};

/// Run `plugin` (a responder) over the decisions in `path`.
pub(super) fn run(
    cmd: &TestCommand,
    engine: &Arc<AerEngine>,
    plugin: &Arc<LoadedPlugin>,
    config: String,
    path: &Path,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let decisions = read_decisions(path)?;
    let Some(policy) = super::read_policy(cmd.policy.as_deref(), io)? else {
        return Ok(EXIT_ERROR);
    };
    let log = Arc::new(RecordedLog::default());
    let name = plugin.info().name.clone();
    let state: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let spec = InstanceSpec {
        tenant: cmd.tenant.clone(),
        name: None,
        config,
        state,
        actions: Arc::new(RecordingActions::new(log.clone(), policy.responses, &name)),
    };
    let mut responder = ResponderInstance::new(engine, plugin, spec)?;
    let mut handled = 0usize;
    for d in decisions.iter().filter(|d| d.outcome.responds()) {
        log.begin(d);
        let out = match responder.respond(&wit_decision(d)) {
            Ok(out) => out,
            Err(fault) => {
                writeln!(
                    io.err,
                    "aer: decision {} faulted the responder: {fault}",
                    d.id
                )?;
                return Ok(EXIT_ERROR);
            }
        };
        responder.commit(&out.writes)?;
        for l in &out.logs {
            writeln!(io.err, "plugin {}: {}", l.level, l.message)?;
        }
        handled += 1;
    }
    let records = log.records();
    if cmd.json || !io.out_is_terminal {
        for r in &records {
            writeln!(io.out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        print_actions(io.out, &records)?;
    }
    writeln!(
        io.err,
        "{name} {}: {} decisions ({handled} responding), {} effects asked for ({} refused or failed)",
        plugin.info().version,
        decisions.len(),
        records.len(),
        records.iter().filter(|r| !r.ok).count(),
    )?;
    Ok(EXIT_OK)
}

/// Decision records from NDJSON: bare, or `{"type": "decision", "decision": {...}}`
/// lines among the other records of `aer replay --json` (skipped).
fn read_decisions(path: &Path) -> anyhow::Result<Vec<DecisionRecord>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line).with_context(at)?;
        let record = match value.get("type").and_then(|t| t.as_str()) {
            Some("decision") => value.get("decision").cloned().unwrap_or_default(),
            Some(_) => continue,
            None => value,
        };
        out.push(serde_json::from_value(record).with_context(at)?);
    }
    Ok(out)
}

fn print_actions(out: &mut dyn Write, records: &[ActionRecord]) -> anyhow::Result<()> {
    if records.is_empty() {
        writeln!(out, "no effects")?;
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["decision", "action", "target", "ok", "detail", "text"]);
    for r in records {
        table.add_row(super::row([
            r.decision_id.clone(),
            r.action.clone(),
            r.target.clone(),
            r.ok.to_string(),
            r.detail.clone(),
            r.text.clone(),
        ]));
    }
    writeln!(out, "{table}")?;
    Ok(())
}
