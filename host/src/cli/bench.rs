//! `aer bench`: measure the host against native code and against its goals; prints a
//! table (machine, command, figures, goals, pass or not).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::{EXIT_OK, Io, read};
use crate::bench::{BenchSetup, Section, elapsed_text, machine, run};

/// Arguments of `aer bench`.
#[derive(Debug, Args)]
pub struct BenchCommand {
    /// Directory of the built-in plugins built as components (as `./run.sh demo` builds
    /// them).
    #[arg(long, default_value = "target/wasm-plugins/wasm32-wasip2/plugin")]
    pub plugins: PathBuf,
    /// Rounds per measurement; the best round counts.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Events per measurement.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Seconds the daemon latency measurement streams its half load.
    #[arg(long, default_value_t = 15)]
    pub latency_seconds: u64,
    /// Run only these sections (repeatable; default: all).
    #[arg(long, value_enum)]
    pub only: Vec<Section>,
    /// NDJSON figures instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl BenchCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let component = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path = self.plugins.join(format!("{name}.wasm"));
            read(&path).with_context(|| {
                format!(
                    "{} (build the plugins first: ./run.sh demo)",
                    path.display()
                )
            })
        };
        let setup = BenchSetup {
            only: self.only.clone(),
            excessive_downloads: component("excessive_downloads")?,
            noop: component("noop_detector")?,
            pipeline_detectors: [
                "excessive_downloads",
                "message_volume",
                "new_network_origin",
                "session_fingerprint",
            ]
            .iter()
            .map(|n| component(n))
            .collect::<anyhow::Result<_>>()?,
            responder: component("slack_session_reset")?,
            probe: component("minimal_detector")?,
            latency_seconds: self.latency_seconds,
            rounds: self.rounds,
            events: self.events,
        };
        let mut command = format!(
            "aer bench --rounds {} --events {} --latency-seconds {}",
            self.rounds, self.events, self.latency_seconds
        );
        for section in &self.only {
            if let Some(v) = clap::ValueEnum::to_possible_value(section) {
                command.push_str(&format!(" --only {}", v.get_name()));
            }
        }
        let started = Instant::now();
        let json = self.json || !io.out_is_terminal;
        let figures = run(&setup, |f| {
            if !json {
                let _ = writeln!(io.err, "measured: {} = {}", f.name, f.value);
            }
        })?;
        if json {
            for f in &figures {
                writeln!(io.out, "{}", serde_json::to_string(f)?)?;
            }
            return Ok(EXIT_OK);
        }
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(["figure", "measured", "goal", "pass"]);
        for f in &figures {
            t.add_row(super::row([
                f.name.clone(),
                f.value.clone(),
                f.goal.clone(),
                match f.pass {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => String::new(),
                },
            ]));
        }
        writeln!(io.out, "machine: {}", machine())?;
        writeln!(io.out, "command: {command}")?;
        writeln!(io.out, "{t}")?;
        writeln!(io.out, "took {}", elapsed_text(started.elapsed()))?;
        Ok(EXIT_OK)
    }
}
