//! Micro-benchmarks of the hot path's parts, each per event: parsing Slack audit
//! entries, encoding and decoding a plugin batch, the durable inbox, and one call of a
//! no-op and of a real detector component (when `./run.sh demo` or the tests have
//! built them). `aer bench` measures the whole against native code and the goals.
//!
//! `cargo bench -p aer-host --bench micro`
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: a panic is the failure report

use std::path::PathBuf;
use std::sync::Arc;

use aer_host::Event;
use aer_host::engine::{AerEngine, EngineConfig};
use aer_host::host_api::DryRunActions;
use aer_host::plugin::DetectorInstance;
use aer_host::plugin::instance::InstanceSpec;
use aer_host::store::MemoryStore;
use aer_host::synth::{GenConfig, generate, to_json};
use aer_wire::BatchWriter;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// `n` generated events, Slack audit entries and messages in time order.
fn events(n: usize) -> Vec<Event> {
    generate(&GenConfig {
        users: 60,
        days: 7,
        ..GenConfig::default()
    })
    .events
    .into_iter()
    .take(n)
    .collect()
}

fn batch(events: &[Event]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for e in events {
        w.push(e);
    }
    w.finish()
}

fn parse_and_wire(c: &mut Criterion) {
    let events = events(1_000);
    let text: String = events.iter().map(|e| to_json(e) + "\n").collect();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("parse 1000 NDJSON lines", |b| {
        b.iter(|| aer_host::ingest::parse(std::hint::black_box(&text)))
    });
    g.finish();

    let slice = &events[..256];
    let encoded = batch(slice);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(slice.len() as u64));
    g.bench_function("encode a batch of 256", |b| b.iter(|| batch(slice)));
    g.bench_function("decode a batch of 256", |b| {
        b.iter(|| {
            aer_wire::decode_batch(std::hint::black_box(&encoded))
                .unwrap()
                .len()
        })
    });
    g.finish();
}

fn inbox(c: &mut Criterion) {
    let events = events(1_000);
    let dir = tempfile::tempdir().unwrap();
    let inbox = aer_host::ledger::Ledger::open(dir.path())
        .unwrap()
        .inbox(200_000)
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut round = 0u64;
    let mut g = c.benchmark_group("inbox");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(20);
    g.bench_function("append 1000 events, durable", |b| {
        b.iter_batched(
            || {
                // Fresh ids every round: a re-sent id would be skipped.
                round += 1;
                events
                    .iter()
                    .map(|e| Event {
                        id: format!("{}-{round}", e.id),
                        ..e.clone()
                    })
                    .collect::<Vec<_>>()
            },
            |fresh| {
                runtime
                    .block_on(inbox.append("bench", &fresh, 0, u64::MAX))
                    .unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("read 256 events", |b| {
        b.iter(|| inbox.read("bench", 300, 256).unwrap().len())
    });
    g.finish();
}

/// A component built by `./run.sh demo` or the tests, if it is there.
fn component(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm-plugins/wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).ok();
    if bytes.is_none() {
        eprintln!(
            "{} is not built (./run.sh demo builds it): skipped",
            path.display()
        );
    }
    bytes
}

fn detector_calls(c: &mut Criterion) {
    let engine = AerEngine::new(EngineConfig::default()).unwrap();
    let downloads: Vec<Event> = events(20_000)
        .into_iter()
        .filter(|e| e.action == "file_downloaded")
        .take(256)
        .collect();
    let encoded = batch(&downloads);
    let mut g = c.benchmark_group("detector call");
    g.throughput(Throughput::Elements(downloads.len() as u64));
    for name in ["noop_detector", "excessive_downloads"] {
        let Some(bytes) = component(name) else {
            continue;
        };
        let plugin = aer_host::plugin::Loader::new(engine.clone())
            .load(&bytes)
            .map_err(|r| r.to_string())
            .unwrap();
        let mut d = DetectorInstance::new(
            &engine,
            &plugin,
            InstanceSpec {
                tenant: "bench".into(),
                name: None,
                config: String::new(),
                state: Arc::new(MemoryStore::default()),
                actions: Arc::new(DryRunActions::default()),
            },
        )
        .unwrap();
        g.bench_function(format!("{name}, batch of {}", downloads.len()), |b| {
            b.iter(|| {
                let out = d.on_events(&encoded).unwrap();
                d.commit(&out.writes).unwrap();
                out.value.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_and_wire, inbox, detector_calls);
criterion_main!(benches);
