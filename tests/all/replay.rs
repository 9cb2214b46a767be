//! `aer replay`: detectors, decisions under a policy, and recorded responses.

use aer_tests::{aer, plugins, repo_root};
use serde_json::Value;

fn data(name: &str) -> String {
    repo_root()
        .join("examples/data")
        .join(name)
        .display()
        .to_string()
}

fn records(out: &str, kind: &str) -> Vec<Value> {
    aer_tests::ndjson(out)
        .into_iter()
        .filter(|v| v["type"] == kind)
        .map(|v| v[kind].clone())
        .collect()
}

#[test]
fn sample_replay_acts_on_the_attack_only() {
    let run = aer(&[
        "replay",
        "--events",
        &data("sample-audit-log.json"),
        "-d",
        plugins::EXCESSIVE_DOWNLOADS,
        "-r",
        plugins::SLACK_SESSION_RESET,
        "-r",
        plugins::NOTIFY,
        "-c",
        r#"slack-session-reset={"notify_channel": "security"}"#,
        "--policy",
        &data("policy.json"),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let decisions = records(&run.out, "decision");
    let summary: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| {
            (
                d["subject"].as_str().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("W01ALICE", "respond"),
            ("W04DAVE", "suppressed"),
            ("W09PARTNER", "suppressed")
        ]
    );
    assert!(
        decisions[1]["reason"]
            .as_str()
            .unwrap()
            .contains("W04DAVE is allowlisted"),
        "{}",
        decisions[1]
    );
    assert!(
        decisions[2]["reason"]
            .as_str()
            .unwrap()
            .contains("external account"),
        "{}",
        decisions[2]
    );

    let actions = records(&run.out, "action");
    let acts: Vec<(&str, &str, &str)> = actions
        .iter()
        .map(|a| {
            (
                a["responder"].as_str().unwrap(),
                a["action"].as_str().unwrap(),
                a["target"].as_str().unwrap(),
            )
        })
        .collect();
    // As the host admitted them: responders in name order, notifications by channel.
    assert_eq!(
        acts,
        [
            ("notify", "notify", "security"),
            ("slack-session-reset", "terminate-sessions", "W01ALICE"),
            ("slack-session-reset", "notify", "security"),
        ]
    );
    assert!(
        actions
            .iter()
            .all(|a| a["decision_id"] == decisions[0]["id"])
    );
    assert!(
        run.err
            .contains("3 findings, 3 decisions (1 respond, 2 suppressed), 3 recorded actions"),
        "{}",
        run.err
    );
}

#[test]
fn dry_run_policy_records_would_be_responses() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"mode": "dry-run"}"#).unwrap();
    let run = aer(&[
        "replay",
        "--events",
        &data("sample-audit-log.json"),
        "-d",
        plugins::EXCESSIVE_DOWNLOADS,
        "-r",
        plugins::SLACK_SESSION_RESET,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let outcomes: Vec<String> = records(&run.out, "decision")
        .iter()
        .map(|d| d["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["dry-run"; 3]);
    assert_eq!(
        records(&run.out, "action").len(),
        3,
        "one would-be reset per decision"
    );
}

#[test]
fn invalid_policy_is_refused_with_field_errors() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"min_score": 7, "allowlist": {"cidrs": ["300.1.1.1/8"]}}"#,
    )
    .unwrap();
    let run = aer(&[
        "replay",
        "--events",
        &data("sample-audit-log.json"),
        "-d",
        plugins::EXCESSIVE_DOWNLOADS,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.err.contains("min_score: must be between 0 and 1"),
        "{}",
        run.err
    );
    assert!(
        run.err
            .contains("allowlist.cidrs[0]: not an IP address or CIDR range"),
        "{}",
        run.err
    );
}

#[test]
fn a_responder_passed_as_detector_is_refused() {
    let run = aer(&[
        "replay",
        "--events",
        &data("sample-audit-log.json"),
        "-d",
        plugins::NOTIFY,
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.err.contains("is a responder, not a detector"),
        "{}",
        run.err
    );
}

// The decision log of a replay says what came of each decision that responds, as the
// daemon's API does: set to act from `critical` on, the responder declines them all.
#[test]
fn a_replayed_decision_whose_responders_all_declined_says_nothing_was_done() {
    let replay = |min: &str| {
        let config = format!(r#"slack-session-reset={{"min_severity": "{min}"}}"#);
        let run = aer(&[
            "replay",
            "--events",
            &data("sample-audit-log.json"),
            "-d",
            plugins::EXCESSIVE_DOWNLOADS,
            "-r",
            plugins::SLACK_SESSION_RESET,
            "-c",
            &config,
            "--json",
        ]);
        assert_eq!(run.code, 0, "{}", run.err);
        run.out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["type"] == "decision")
            .collect::<Vec<_>>()
    };
    let acting = replay("low");
    let would = acting
        .iter()
        .find(|l| l["decision"]["subject"] == "W01ALICE")
        .unwrap();
    assert_eq!(would["response"]["state"], "acted", "{would}");
    assert_eq!(would["response"]["effects"], 1, "{would}");
    assert!(
        acting
            .iter()
            .filter(|l| l["decision"]["outcome"] == "suppressed")
            .all(|l| l["response"].is_null())
    );
    let declining = replay("critical");
    let declined = declining
        .iter()
        .find(|l| l["decision"]["subject"] == "W01ALICE")
        .unwrap();
    assert_eq!(declined["response"]["state"], "nothing", "{declined}");
    assert_eq!(declined["response"]["effects"], 0);
}
