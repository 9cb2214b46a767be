//! `aer gen`: write a seeded synthetic dataset (events, labels, a matching policy and
//! detector configuration) into a directory, for `aer replay --labels`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{EXIT_OK, Io};
use crate::labels::LabelKind;
use crate::synth::{GenConfig, generate, to_json};

/// Arguments of `aer gen`.
#[derive(Debug, Args)]
pub struct GenCommand {
    /// Directory to write `events.ndjson`, `labels.ndjson`, `policy.json`,
    /// `new-network-origin.json` and the world's geolocation database `geo.mmdb` (for
    /// `aer replay --geo`) into (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Seed: the same seed and settings give the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Accounts in the organisation.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Days of traffic.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Mean messages an ordinary user posts on a working day.
    #[arg(long, default_value_t = 215.0)]
    pub messages_per_day: f64,
    /// Write events as a Slack `{"entries": [...]}` envelope instead of NDJSON.
    #[arg(long)]
    pub envelope: bool,
}

impl GenCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let config = GenConfig {
            seed: self.seed,
            users: self.users,
            days: self.days,
            messages_per_day: self.messages_per_day,
            ..GenConfig::default()
        };
        let data = generate(&config);
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let create = |name: &str| -> anyhow::Result<BufWriter<std::fs::File>> {
            let path = self.out.join(name);
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Ok(BufWriter::new(file))
        };

        let events_name = if self.envelope {
            "events.json"
        } else {
            "events.ndjson"
        };
        let mut w = create(events_name)?;
        if self.envelope {
            w.write_all(b"{\"ok\": true, \"entries\": [\n")?;
            for (i, e) in data.events.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",\n")?;
                }
                w.write_all(to_json(e).as_bytes())?;
            }
            w.write_all(b"\n]}\n")?;
        } else {
            for e in &data.events {
                w.write_all(to_json(e).as_bytes())?;
                w.write_all(b"\n")?;
            }
        }
        w.flush()?;
        let mut w = create("labels.ndjson")?;
        for l in &data.labels {
            serde_json::to_writer(&mut w, l)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        std::fs::write(self.out.join("policy.json"), data.policy_json())?;
        std::fs::write(self.out.join("geo.mmdb"), crate::synth::geo_database())?;
        std::fs::write(
            self.out.join("new-network-origin.json"),
            data.new_network_origin_config(),
        )?;

        let attacks = data
            .labels
            .iter()
            .filter(|l| l.kind == LabelKind::Attack)
            .count();
        writeln!(
            io.out,
            "wrote {} events ({} users, {} days, seed {}), {} labelled attacks and {} near-misses to {}",
            data.events.len(),
            config.users,
            config.days,
            config.seed,
            attacks,
            data.labels.len() - attacks,
            self.out.display()
        )?;
        Ok(EXIT_OK)
    }
}
