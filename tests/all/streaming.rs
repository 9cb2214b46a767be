//! The local drivers stream: a history pushed a piece at a time makes exactly the
//! calls, findings, decisions and effects of one pass over it, while the drivers hold
//! only a bounded window of events; and `aer test` / `aer replay` put an NDJSON file
//! in time order within their window or stop naming the line.

use std::sync::Arc;

use aer_host::host_api::DryRunActions;
use aer_host::pipeline::decide::DecisionEngine;
use aer_host::pipeline::gather::LOOK_AHEAD;
use aer_host::pipeline::policy::Policy;
use aer_host::plugin::DetectorInstance;
use aer_host::plugin::instance::InstanceSpec;
use aer_host::replay::{Replay, ReplayReport, Responders, replay};
use aer_host::runner::{Run, run_detector};
use aer_host::store::MemoryStore;
use aer_host::synth::{Dataset, GenConfig, generate};
use aer_tests::{aer, engine, load, plugins};

const BATCH: usize = 64;
const PIECE: usize = 997;

/// A week of a small organisation, with its attacks.
fn world() -> Dataset {
    generate(&GenConfig {
        users: 80,
        days: 7,
        ..GenConfig::default()
    })
}

/// Detectors, a decision engine and responders for `data`, on fresh state.
fn pipeline(data: &Dataset) -> (Vec<DetectorInstance>, DecisionEngine, Responders) {
    let detectors = vec![
        (plugins::EXCESSIVE_DOWNLOADS, String::new()),
        (
            plugins::NEW_NETWORK_ORIGIN,
            data.new_network_origin_config(),
        ),
        (plugins::SESSION_FINGERPRINT, String::new()),
        (plugins::BRUTE_FORCE, String::new()),
        (plugins::MASS_DELETION, String::new()),
        (plugins::PRIVILEGE_ESCALATION, String::new()),
    ];
    let policy = Policy::from_json(&data.policy_json()).unwrap();
    aer_tests::replay_pipeline(&engine(), "stream", detectors, policy)
}

/// Everything a replay reported, as text to compare.
fn outcome(r: &ReplayReport) -> (usize, Vec<String>, Vec<String>, Vec<String>, Vec<usize>) {
    let json = |v: serde_json::Result<String>| v.unwrap();
    (
        r.events,
        r.findings
            .iter()
            .map(|f| json(serde_json::to_string(f)))
            .collect(),
        r.decisions
            .iter()
            .map(|d| json(serde_json::to_string(d)))
            .collect(),
        r.actions
            .iter()
            .map(|a| json(serde_json::to_string(a)))
            .collect(),
        r.detectors.iter().map(|d| d.delivered).collect(),
    )
}

fn encoded(data: &Dataset) -> Vec<Vec<u8>> {
    data.events
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            aer_wire::encode_event(e, &mut b);
            b
        })
        .collect()
}

#[test]
fn a_replay_streamed_in_pieces_decides_as_one_pass_in_a_bounded_window() {
    let data = world();
    let (mut detectors, mut decisions, mut responders) = pipeline(&data);
    let whole = replay(
        &data.events,
        &mut detectors,
        &mut decisions,
        &mut responders,
        BATCH,
    )
    .unwrap();
    assert!(
        whole.decisions.len() >= 10,
        "{} decisions",
        whole.decisions.len()
    );
    assert!(!whole.actions.is_empty(), "no effects");

    let (mut detectors, mut decisions, mut responders) = pipeline(&data);
    let mut run = Replay::new(&mut detectors, &mut decisions, &mut responders, BATCH);
    let mut most = 0;
    for piece in encoded(&data).chunks(PIECE) {
        for e in piece {
            run.push(e);
        }
        run.run().unwrap();
        most = most.max(run.held());
    }
    let streamed = run.finish().unwrap();
    // A detector waits for a whole call: at most a call's look-ahead of events is held.
    assert!(
        most < (LOOK_AHEAD * BATCH) as u64,
        "held {most} events of {}",
        data.events.len()
    );
    assert_eq!(outcome(&streamed), outcome(&whole));
}

#[test]
fn a_detector_run_streamed_in_pieces_makes_the_calls_of_one_pass() {
    let data = world();
    let engine = engine();
    let plugin = load(&engine, plugins::EXCESSIVE_DOWNLOADS);
    let spec = || InstanceSpec {
        tenant: "stream".into(),
        name: None,
        config: String::new(),
        state: Arc::new(MemoryStore::default()),
        actions: Arc::new(DryRunActions::default()),
    };
    let mut d = DetectorInstance::new(&engine, &plugin, spec()).unwrap();
    let whole = run_detector(&mut d, &data.events, BATCH).unwrap();
    assert!(!whole.findings.is_empty());

    let mut d = DetectorInstance::new(&engine, &plugin, spec()).unwrap();
    let mut run = Run::new(&mut d, BATCH);
    let mut most = 0;
    for piece in encoded(&data).chunks(PIECE) {
        for e in piece {
            run.push(e);
        }
        run.run().unwrap();
        most = most.max(run.held());
    }
    let streamed = run.finish().unwrap();
    assert!(most < (LOOK_AHEAD * BATCH) as u64, "held {most} events");
    assert_eq!(
        (streamed.events, streamed.delivered, streamed.batches),
        (whole.events, whole.delivered, whole.batches)
    );
    let json = |r: &aer_host::runner::RunReport| serde_json::to_string(&r.findings).unwrap();
    assert_eq!(json(&streamed), json(&whole));
}

/// A generic event line at minute `minute`.
fn line(id: &str, minute: i64) -> String {
    serde_json::json!({"id": id, "time_ms": 1_767_600_000_000_i64 + minute * 60_000,
        "action": "user_login_failed", "actor": "U1"})
    .to_string()
}

#[test]
fn aer_test_orders_ndjson_within_its_window_and_stops_at_an_event_older_than_that() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    // Six failed logins, the third written late: two events ahead of its place.
    let shuffled = [
        line("a", 1),
        line("b", 2),
        line("d", 4),
        line("e", 5),
        line("c", 3),
    ];
    std::fs::write(&path, shuffled.join("\n") + "\n").unwrap();
    let file = path.to_str().unwrap();
    let ids = |out: &str| -> Vec<String> {
        aer_tests::ndjson(out)
            .iter()
            .flat_map(|f| f["evidence"].as_array().cloned().unwrap_or_default())
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let ok = aer(&[
        "test",
        plugins::MINIMAL_DETECTOR,
        "--events",
        file,
        "--reorder-window",
        "2",
        "--json",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.err);
    assert_eq!(ids(&ok.out), ["a", "b", "c", "d", "e"], "{}", ok.out);

    let late = aer(&[
        "test",
        plugins::MINIMAL_DETECTOR,
        "--events",
        file,
        "--reorder-window",
        "1",
    ]);
    assert_ne!(late.code, 0);
    assert!(
        late.err.contains(
            "line 5: this event (at 2026-01-05 08:03:00) is earlier than events already run"
        ) && late.err.contains("sort it by time first"),
        "{}",
        late.err
    );
}
