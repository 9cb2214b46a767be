//! `aer test`: findings as NDJSON, expectations, malformed input lines.

use aer_tests::{aer, plugins, repo_root};

fn sample() -> String {
    repo_root()
        .join("examples/data/sample-audit-log.json")
        .display()
        .to_string()
}

#[test]
fn bundled_sample_shows_an_excessive_downloads_finding() {
    let run = aer(&["test", plugins::EXCESSIVE_DOWNLOADS, "--events", &sample()]);
    assert_eq!(run.code, 0, "{}", run.err);
    let findings: Vec<serde_json::Value> = aer_tests::ndjson(&run.out);
    // Three bursts: alice's attack, dave's bulk export, a partner's external account.
    let subjects: Vec<&str> = findings
        .iter()
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["W01ALICE", "W04DAVE", "W09PARTNER"],
        "{}",
        run.out
    );
    assert!(findings.iter().all(|f| f["rule"] == "excessive-downloads"));
    // The summary line reports events, findings, time per event and peak memory.
    assert!(run.err.contains("218 events"), "{}", run.err);
    assert!(run.err.contains("3 findings"), "{}", run.err);
    assert!(run.err.contains("us/event"), "{}", run.err);
    assert!(run.err.contains("peak guest memory"), "{}", run.err);
}

#[test]
fn expect_matches_and_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    // `aer test` over the sample with `expected` as its `--expect` file.
    let expect = |dir: &tempfile::TempDir, name: &str, expected: &str| {
        let file = dir.path().join(format!("{name}.ndjson"));
        std::fs::write(&file, expected).unwrap();
        aer(&[
            "test",
            plugins::EXCESSIVE_DOWNLOADS,
            "--events",
            &sample(),
            "--expect",
            file.to_str().unwrap(),
        ])
    };
    let expected: String = ["W01ALICE", "W04DAVE", "W09PARTNER"]
        .iter()
        .map(|s| {
            format!(
                "{{\"rule\":\"excessive-downloads\",\"subject\":\"{s}\",\"severity\":\"medium\"}}\n"
            )
        })
        .collect();
    let run = expect(&dir, "good", &expected);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.err.contains("findings match 3 expected"), "{}", run.err);

    let run = expect(
        &dir,
        "bad",
        concat!(r#"{"rule":"excessive-downloads","subject":"W02BOB"}"#, "\n"),
    );
    assert_eq!(run.code, 3, "{}", run.err);
    assert!(
        run.err.contains("- excessive-downloads W02BOB"),
        "{}",
        run.err
    );
    assert!(
        run.err
            .contains("+ excessive-downloads W01ALICE medium at "),
        "every compared field is shown: {}",
        run.err
    );

    // A misspelt field is refused, not silently left uncompared.
    let run = expect(
        &dir,
        "typo",
        concat!(
            r#"{"rule":"excessive-downloads","subject":"W01ALICE","severty":"high"}"#,
            "\n"
        ),
    );
    assert_eq!(run.code, 2, "{}", run.err);
    assert!(
        run.err.contains("line 1") && run.err.contains("unknown field `severty`"),
        "{}",
        run.err
    );
    // A compared severity shows in what is missing.
    let run = expect(
        &dir,
        "wrong",
        concat!(
            r#"{"rule":"excessive-downloads","subject":"W01ALICE","severity":"critical"}"#,
            "\n"
        ),
    );
    assert_eq!(run.code, 3, "{}", run.err);
    assert!(
        run.err.contains("- excessive-downloads W01ALICE critical"),
        "{}",
        run.err
    );
}

#[test]
fn config_changes_the_threshold() {
    let run = aer(&[
        "test",
        plugins::EXCESSIVE_DOWNLOADS,
        "--events",
        &sample(),
        "--config",
        r#"{"threshold": 1000}"#,
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.is_empty(), "{}", run.out);
    let run = aer(&[
        "test",
        plugins::EXCESSIVE_DOWNLOADS,
        "--events",
        &sample(),
        "--config",
        r#"{"threshold": "x"}"#,
    ]);
    assert_eq!(run.code, 2);
    assert!(run.err.contains("invalid configuration"), "{}", run.err);
}

#[test]
fn malformed_lines_are_reported_and_the_rest_processed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(&format!(
            "{{\"id\":\"e{i}\",\"date_create\":{},\"action\":\"file_downloaded\",\"actor\":{{\"type\":\"user\",\"user\":{{\"id\":\"U1\"}}}}}}\n",
            1_767_603_600 + i
        ));
        if i == 10 {
            text.push_str("{not json\n");
        }
    }
    std::fs::write(&path, text).unwrap();
    let run = aer(&[
        "test",
        plugins::EXCESSIVE_DOWNLOADS,
        "--events",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.err.contains("line 12: invalid JSON"), "{}", run.err);
    assert!(
        run.err.contains("60 events (60 delivered, 1 rejected)"),
        "{}",
        run.err
    );
    assert_eq!(run.out.lines().count(), 1, "{}", run.out);
}

#[test]
fn minimal_example_flags_failed_logins_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(
        &path,
        "{\"id\":\"a\",\"time\":1000,\"action\":\"user_login_failed\",\"actor\":\"U1\",\"context\":{\"ip\":\"10.1.1.1\"}}\n\
         {\"id\":\"b\",\"time\":2000,\"action\":\"user_login\",\"actor\":\"U1\"}\n",
    )
    .unwrap();
    let run = aer(&[
        "test",
        plugins::MINIMAL_DETECTOR,
        "--events",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let lines: Vec<_> = run.out.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the host delivers only subscribed actions: {}",
        run.out
    );
    assert!(
        lines[0].contains("failed login from 10.1.1.1"),
        "{}",
        lines[0]
    );
}

#[test]
fn slack_anomaly_passes_slacks_own_signal_through() {
    let run = aer(&["test", plugins::SLACK_ANOMALY, "--events", &sample()]);
    assert_eq!(run.code, 0, "{}", run.err);
    let findings: Vec<serde_json::Value> = aer_tests::ndjson(&run.out);
    assert_eq!(findings.len(), 1, "{}", run.out);
    assert_eq!(findings[0]["subject"], "W02BOB");
    assert_eq!(findings[0]["severity"], "high");
    assert_eq!(findings[0]["attributes"]["reasons"], "tor");
    assert!(
        run.err.contains("(1 delivered, 0 rejected)"),
        "only the anomaly entry is delivered: {}",
        run.err
    );
}

#[test]
fn bench_measures_every_figure_against_its_goal() {
    let dir = std::path::Path::new(aer_tests::plugins::EXCESSIVE_DOWNLOADS)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let run = aer_tests::aer(&[
        "bench",
        "--plugins",
        &dir,
        "--rounds",
        "1",
        "--events",
        "3000",
        "--latency-seconds",
        "1",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let figures: Vec<serde_json::Value> = aer_tests::ndjson(&run.out);
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for want in [
        "wasm / native throughput, batch 1 ",
        "wasm / native throughput, batch 1024",
        "no-op wasm / native full detector",
        "epoch interruption",
        "sled state / in-memory state",
        "pipeline: parse, sled inbox",
        "instantiation p99",
        "resident memory per idle instance",
        "daemon: event-to-response p99",
        "daemon: 100 tenants",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "{want} in {names:?}"
        );
    }
    for f in &figures {
        // A number, or several ("5.2 / 60.1 / 63.0", "51777 of 103985").
        let text = f["value"].as_str().unwrap();
        let numbers: Vec<f64> = text
            .split(|c: char| c == '/' || c.is_whitespace())
            .filter(|p| !p.is_empty() && *p != "of")
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(!numbers.is_empty(), "{f}");
        for value in numbers {
            assert!(value.is_finite() && value > 0.0, "{f}");
        }
        if !f["goal"].as_str().unwrap().is_empty() {
            assert!(f["pass"].is_boolean(), "{f}");
        }
    }
}

/// A decision record as `aer replay --json` prints it.
fn decision_line(id: &str, subject: &str, outcome: &str, rule: &str, attributes: &str) -> String {
    format!(
        r#"{{"type":"decision","decision":{{"id":"{id}","time_ms":1000,"subject":"{subject}","outcome":"{outcome}","reason":"test","corroborating_rules":[],"finding":{{"plugin":"{rule}","plugin_version":"0.1.0","rule":"{rule}","subject":"{subject}","score":0.9,"severity":"high","summary":"s","evidence":["e1"],"attributes":{attributes},"time_ms":1000}}}}}}"#
    )
}

#[test]
fn a_responder_runs_over_a_decision_file_and_shows_the_effects_it_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.ndjson");
    std::fs::write(
        &path,
        [
            decision_line(
                "d1",
                "W0ALICE",
                "respond",
                "session-fingerprint",
                r#"{"session_id":"8123"}"#,
            ),
            r#"{"type":"finding","finding":{}}"#.to_owned(),
            decision_line("d2", "W0BOB", "dry-run", "new-network-origin", "{}"),
            decision_line("d3", "W0CAROL", "suppressed", "new-network-origin", "{}"),
        ]
        .join("\n"),
    )
    .unwrap();
    let run = aer(&[
        "test",
        plugins::SLACK_SESSION_RESET,
        "--decisions",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let effects = aer_tests::ndjson(&run.out);
    let summary: Vec<(String, String, String)> = effects
        .iter()
        .map(|e| {
            (
                e["decision_id"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "d1".to_owned(),
                "end-session".to_owned(),
                "W0ALICE".to_owned()
            ),
            (
                "d2".to_owned(),
                "terminate-sessions".to_owned(),
                "W0BOB".to_owned()
            ),
        ],
        "the hijacked session alone, every session of a dry-run, nothing for a suppressed decision: {}",
        run.out
    );
    assert_eq!(effects[1]["detail"], "dry-run", "{}", run.out);
    assert!(
        run.err.contains("3 decisions (2 responding)"),
        "{}",
        run.err
    );

    // A detector is asked for events, a responder for decisions, by name.
    let wrong = aer(&[
        "test",
        plugins::SLACK_SESSION_RESET,
        "--events",
        path.to_str().unwrap(),
    ]);
    assert_eq!(wrong.code, 2);
    assert!(wrong.err.contains("--decisions"), "{}", wrong.err);
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"id\": 3}\n").unwrap();
    let refused = aer(&[
        "test",
        plugins::SLACK_SESSION_RESET,
        "--decisions",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(refused.code, 0);
    assert!(refused.err.contains("bad.ndjson line 1"), "{}", refused.err);
}
