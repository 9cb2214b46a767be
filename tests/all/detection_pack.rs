//! The detection pack against labelled synthetic history: every detector's precision
//! and recall on a million generated events, the decision engine's guarantees on the
//! same run, and `aer gen` + `aer replay --labels/--calibrate` through the CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aer_host::engine::{AerEngine, EngineConfig};
use aer_host::geo::Geo;
use aer_host::labels::{self, LabelKind};
use aer_host::pipeline::policy::Policy;
use aer_host::replay::replay;
use aer_host::synth::{GenConfig, generate};
use aer_tests::{aer, plugins};
use serde_json::Value;

/// The pack: (component, configuration).
fn pack(tor_config: &str) -> Vec<(&'static str, String)> {
    vec![
        (plugins::EXCESSIVE_DOWNLOADS, String::new()),
        (plugins::RAPID_ACCOUNT_CREATION, String::new()),
        (plugins::SUSPICIOUS_FILE_SHARING, String::new()),
        (plugins::MESSAGE_VOLUME, String::new()),
        (plugins::NEW_NETWORK_ORIGIN, tor_config.to_owned()),
        (plugins::SESSION_FINGERPRINT, String::new()),
        (plugins::PRIVILEGE_ESCALATION, String::new()),
        (plugins::SLACK_ANOMALY, String::new()),
        (plugins::IMPOSSIBLE_TRAVEL, String::new()),
        (plugins::DATACENTER_ORIGIN, String::new()),
        (plugins::BRUTE_FORCE, String::new()),
        (plugins::MASS_DELETION, String::new()),
        (plugins::RISKY_APP, String::new()),
    ]
}

/// An engine whose `geo` service reads `aer gen`'s world database (written to `dir`).
fn engine_with_world(dir: &std::path::Path) -> Arc<AerEngine> {
    let path = dir.join("geo.mmdb");
    std::fs::write(&path, aer_host::synth::geo_database()).unwrap();
    let geo = Geo::open(&[path], aer_host::geo::DEFAULT_HOSTING_ASNS.iter().copied()).unwrap();
    AerEngine::new(EngineConfig {
        geo: Arc::new(geo),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn every_detector_reaches_095_precision_and_recall_on_a_million_labelled_events() {
    let config = GenConfig::default();
    assert!(config.users >= 500 && config.days >= 14);
    let data = generate(&config);
    assert!(
        data.events.len() >= 1_000_000,
        "{} events",
        data.events.len()
    );
    let users: BTreeSet<&str> = data.events.iter().map(|e| e.actor.id.as_str()).collect();
    assert!(users.len() >= 500, "{} distinct actors", users.len());

    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_world(dir.path());
    let policy = Policy::from_json(&data.policy_json()).unwrap();
    let loop_guard = policy.loop_guard.clone();
    let (mut detectors, mut decisions, mut responders) = aer_tests::replay_pipeline(
        &engine,
        "pack",
        pack(&data.new_network_origin_config()),
        policy,
    );
    let report = replay(
        &data.events,
        &mut detectors,
        &mut decisions,
        &mut responders,
        256,
    )
    .unwrap();

    // Precision and recall, per detector, against the labels.
    let rows = labels::score(&data.labels, &report.findings);
    let mut table = String::new();
    for r in &rows {
        table.push_str(&format!(
            "{:<24} attacks {:>3} detected {:>3} findings {:>3} precision {:.3} recall {:.3}\n",
            r.detector,
            r.attacks,
            r.detected,
            r.findings,
            r.precision(),
            r.recall()
        ));
    }
    for detector in labels::DETECTORS {
        let row = rows
            .iter()
            .find(|r| r.detector == *detector)
            .unwrap_or_else(|| panic!("no row for {detector}\n{table}"));
        assert!(
            row.attacks >= 20,
            "{detector}: only {} attacks\n{table}",
            row.attacks
        );
        assert!(row.recall() >= 0.95, "{detector}: recall\n{table}");
        assert!(row.precision() >= 0.95, "{detector}: precision\n{table}");
    }
    assert!(
        rows.iter()
            .all(|r| labels::DETECTORS.contains(&r.detector.as_str()) || r.detector == "all"),
        "findings from an unexpected detector\n{table}"
    );
    let near_misses = data
        .labels
        .iter()
        .filter(|l| l.kind == LabelKind::NearMiss)
        .count();
    assert!(near_misses >= 40, "{near_misses} near-misses");

    // Never acted on: allowlisted and external users, though both were attacked and flagged.
    let allowlisted: BTreeSet<&str> = data.allowlisted.iter().map(String::as_str).collect();
    let external: BTreeSet<&str> = data
        .events
        .iter()
        .filter(|e| e.detail("actor.account_type") == Some("external"))
        .map(|e| e.actor.id.as_str())
        .collect();
    let flagged = |set: &BTreeSet<&str>| {
        report
            .findings
            .iter()
            .filter(|f| set.contains(f.subject.as_str()))
            .count()
    };
    assert!(
        flagged(&allowlisted) >= 2 && flagged(&external) >= 2,
        "the never-act checks would be vacuous"
    );
    for d in &report.decisions {
        if allowlisted.contains(d.subject.as_str()) || external.contains(d.subject.as_str()) {
            assert!(
                !d.outcome.responds(),
                "acted on {}: {}",
                d.subject,
                d.reason
            );
        }
    }
    for a in &report.actions {
        assert!(
            !allowlisted.contains(a.target.as_str()) && !external.contains(a.target.as_str()),
            "{a:?}"
        );
    }

    // No benign near-miss is reset: no session of its subject ended during it for a
    // decision that answers no attack (one attacked during a trip is reset for the
    // attack).
    let answers_an_attack = |decision_id: &str| {
        report
            .decisions
            .iter()
            .find(|d| d.id == decision_id)
            .is_some_and(|d| {
                data.labels
                    .iter()
                    .any(|l| l.kind == LabelKind::Attack && l.matches(&d.finding))
            })
    };
    for l in data.labels.iter().filter(|l| l.kind == LabelKind::NearMiss) {
        let reset = report.actions.iter().find(|a| {
            (a.action == "terminate-sessions" || a.action == "end-session")
                && a.target == l.subject
                && a.time_ms >= l.start_ms - 60_000
                && a.time_ms <= l.end_ms + labels::GRACE_MS
                && !answers_an_attack(&a.decision_id)
        });
        assert!(reset.is_none(), "near-miss {l:?} was reset: {reset:?}");
    }

    // No termination loop: nobody is reset more than the guard allows within its window.
    let window = loop_guard.window_hours * 3_600_000;
    let mut resets: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for a in report
        .actions
        .iter()
        .filter(|a| a.action == "terminate-sessions")
    {
        resets.entry(a.target.as_str()).or_default().push(a.time_ms);
    }
    assert!(!resets.is_empty(), "no resets at all");
    for (user, times) in &resets {
        for t in times {
            let within = times
                .iter()
                .filter(|u| **u >= *t && **u - *t < window)
                .count();
            assert!(
                within as u32 <= loop_guard.max_resets,
                "{user} reset {within} times within {window} ms"
            );
        }
    }
}

fn records(out: &str, kind: &str) -> Vec<Value> {
    aer_tests::ndjson(out)
        .into_iter()
        .filter(|v| v["type"] == kind)
        .collect()
}

#[test]
fn gen_then_replay_with_labels_and_calibration_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let out = out.to_str().unwrap();
    let args = [
        "gen",
        "--out",
        out,
        "--users",
        "60",
        "--days",
        "14",
        "--messages-per-day",
        "40",
        "--seed",
        "9",
    ];
    let run = aer(&args);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("labelled attacks"), "{}", run.out);
    let events = std::fs::read(format!("{out}/events.ndjson")).unwrap();
    // The same seed writes the same bytes.
    let again = dir.path().join("again");
    let mut args2 = args;
    args2[2] = again.to_str().unwrap();
    assert_eq!(aer(&args2).code, 0);
    assert_eq!(events, std::fs::read(again.join("events.ndjson")).unwrap());
    assert_eq!(
        std::fs::read(format!("{out}/geo.mmdb")).unwrap(),
        std::fs::read(again.join("geo.mmdb")).unwrap(),
        "the world's database too"
    );

    let file = |name: &str| format!("{out}/{name}");
    let mut argv: Vec<String> = [
        "replay",
        "--events",
        &file("events.ndjson"),
        "--labels",
        &file("labels.ndjson"),
        "--policy",
        &file("policy.json"),
        "--geo",
        &file("geo.mmdb"),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    for (path, _) in pack("") {
        argv.extend(["-d".into(), path.into()]);
    }
    argv.extend([
        "-c".into(),
        format!("new-network-origin=@{}", file("new-network-origin.json")),
        "--calibrate".into(),
        "excessive-downloads.threshold=3,50,5000".into(),
        "--calibrate".into(),
        "excessive-downloads.baseline=null".into(),
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let run = aer(&argv);
    assert_eq!(run.code, 0, "{}", run.err);
    let scores = records(&run.out, "score");
    let all = scores
        .iter()
        .find(|s| s["score"]["detector"] == "all")
        .expect("an overall row");
    assert!(
        all["score"]["attacks"].as_u64().unwrap() >= labels::DETECTORS.len() as u64 * 3,
        "{all}"
    );
    assert!(all["recall"].as_f64().unwrap() >= 0.9, "{}", run.out);
    assert!(all["precision"].as_f64().unwrap() >= 0.9, "{}", run.out);

    // The sweep: a lower threshold never makes fewer findings; 3 flags ordinary users.
    let cal = records(&run.out, "calibration");
    let counts: Vec<u64> = cal
        .iter()
        .filter(|c| c["key"] == "threshold")
        .map(|c| c["findings"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), 3, "{}", run.out);
    assert!(
        counts[0] > counts[1] && counts[1] >= counts[2],
        "{counts:?}"
    );
    let low = cal
        .iter()
        .find(|c| c["key"] == "threshold" && c["value"] == 3)
        .unwrap();
    assert!(low["precision"].as_f64().unwrap() < 0.5, "{low}");
    let off = cal.iter().find(|c| c["key"] == "baseline").unwrap();
    assert!(off["value"].is_null(), "{off}");

    // Bad sweeps are refused with the reason.
    let run = aer(&[
        "replay",
        "--events",
        &file("events.ndjson"),
        "-d",
        plugins::EXCESSIVE_DOWNLOADS,
        "--calibrate",
        "nope",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.err.contains("PLUGIN.KEY="), "{}", run.err);
    let run = aer(&[
        "replay",
        "--events",
        &file("events.ndjson"),
        "-d",
        plugins::EXCESSIVE_DOWNLOADS,
        "--calibrate",
        "other.threshold=1",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.err.contains("no detector named"), "{}", run.err);
}
