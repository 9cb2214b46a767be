//! The daemon's pipeline over real HTTP: detectors run from the durable inbox, findings
//! and decisions are queryable per tenant, state is exactly-once across a restart, and
//! a faulting plugin is quarantined without losing an event or stopping other tenants.

use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_tests::{TestDaemon, plugins, repo_root};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");
const NDJSON: Option<&str> = Some("application/x-ndjson");

fn sample() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/data/sample-audit-log.json")).unwrap()
}

/// Poll `path` until `done` holds for its `items` (or fail after 60 s).
fn wait_for(
    d: &TestDaemon,
    token: &str,
    path: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let (status, body) = d.request("GET", path, Some(token), None, vec![]);
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if done(&items) {
            return items;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting on {path}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn findings_and_decisions_flow_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let a = d.tenant("acme");
    let b = d.tenant("globex");
    d.install(&a, plugins::EXCESSIVE_DOWNLOADS, "");
    let policy = br#"{"mode": "enforce", "allowlist": {"users": ["W04DAVE"]}, "internal_domains": ["acme.example"]}"#;
    assert_eq!(
        d.request("PUT", "/v1/policy", Some(&a), JSON, policy.to_vec())
            .0,
        200
    );
    assert_eq!(
        d.request("POST", "/v1/events", Some(&a), JSON, sample()).0,
        200
    );
    assert_eq!(
        d.request("POST", "/v1/events", Some(&b), JSON, sample()).0,
        200
    );

    let findings = wait_for(&d, &a, "/v1/findings", |items| items.len() >= 3);
    assert_eq!(findings.len(), 3);
    let f = &findings[0];
    // Falco-compatible alert shape, plus AER's fields.
    assert_eq!(f["rule"], "excessive-downloads");
    assert_eq!(f["priority"], "Warning");
    assert_eq!(f["source"], "aer");
    assert_eq!(f["time"], "2026-01-05T14:04:05.000Z");
    assert_eq!(
        f["output"],
        "W01ALICE downloaded 50 items in 10 min (threshold 50)"
    );
    assert_eq!(f["output_fields"]["subject"], "W01ALICE");
    assert_eq!(f["output_fields"]["aer.count"], "50");
    assert_eq!(
        (
            f["tenant"].as_str(),
            f["plugin"].as_str(),
            f["plugin_version"].as_str()
        ),
        (Some("acme"), Some("excessive-downloads"), Some("0.1.0"))
    );
    assert_eq!(f["event_ids"].as_array().unwrap().len(), 1);

    let decisions = wait_for(&d, &a, "/v1/decisions", |items| items.len() >= 3);
    let outcomes: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| {
            (
                d["subject"].as_str().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("W01ALICE", "respond"),
            ("W04DAVE", "suppressed"),
            ("W09PARTNER", "suppressed")
        ]
    );
    assert!(
        decisions[2]["reason"]
            .as_str()
            .unwrap()
            .contains("external"),
        "{}",
        decisions[2]
    );
    // Falco's alert shape too.
    assert_eq!(decisions[0]["priority"], "Warning");
    assert_eq!(decisions[0]["output"], decisions[0]["reason"]);
    assert_eq!(decisions[0]["output_fields"]["outcome"], "respond");
    assert_eq!(decisions[0]["source"], "aer");
    assert_eq!(decisions[0]["tenant"], "acme");
    assert_eq!(decisions[0]["time"], "2026-01-05T14:04:05.000Z");

    // Filters and cursor pagination.
    let (_, one) = d.request(
        "GET",
        "/v1/findings?subject=W04DAVE",
        Some(&a),
        None,
        vec![],
    );
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let (_, page) = d.request("GET", "/v1/findings?limit=2", Some(&a), None, vec![]);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next"].as_u64().unwrap();
    let (_, rest) = d.request(
        "GET",
        &format!("/v1/findings?after={next}"),
        Some(&a),
        None,
        vec![],
    );
    assert_eq!(rest["items"][0]["output_fields"]["subject"], "W09PARTNER");
    let (_, none) = d.request(
        "GET",
        "/v1/findings?since_ms=1767628997000",
        Some(&a),
        None,
        vec![],
    );
    assert!(none["items"].as_array().unwrap().is_empty());

    // The other tenant, with no plugins, has nothing; and sees none of acme's.
    let (_, theirs) = d.request("GET", "/v1/findings", Some(&b), None, vec![]);
    assert_eq!(theirs["items"], Value::Array(vec![]));
    let (_, theirs) = d.request("GET", "/v1/decisions", Some(&b), None, vec![]);
    assert_eq!(theirs["items"], Value::Array(vec![]));
}

fn downloads(user: &str, range: std::ops::Range<i64>) -> Vec<u8> {
    range
        .map(|i| format!("{{\"id\":\"{user}-{i}\",\"time\":{},\"action\":\"file_downloaded\",\"actor\":\"{user}\"}}\n", 1_767_603_600_000 + i * 4_000))
        .collect::<String>()
        .into_bytes()
}

fn processed(d: &TestDaemon, tenant: &str) -> u64 {
    d.daemon.processed_seq(tenant).unwrap()
}

fn wait_processed(d: &TestDaemon, tenant: &str, n: u64) {
    let start = Instant::now();
    while processed(d, tenant) < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pipeline stuck at {}",
            processed(d, tenant)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn detector_state_is_exactly_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = TestDaemon::start(dir.path(), ServeConfig::default());
        let t = d.tenant("acme");
        d.install(&t, plugins::EXCESSIVE_DOWNLOADS, r#"{"threshold": 50}"#);
        assert_eq!(
            d.request(
                "POST",
                "/v1/events",
                Some(&t),
                NDJSON,
                downloads("U1", 0..30)
            )
            .0,
            200
        );
        wait_processed(&d, "acme", 30);
        let (_, f) = d.request("GET", "/v1/findings", Some(&t), None, vec![]);
        assert!(
            f["items"].as_array().unwrap().is_empty(),
            "30 is under the threshold"
        );
        std::fs::write(dir.path().join("token"), &t).unwrap();
    }
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = std::fs::read_to_string(dir.path().join("token")).unwrap();
    // A client retrying the first request after the restart changes nothing.
    let (_, r) = d.request(
        "POST",
        "/v1/events",
        Some(&t),
        NDJSON,
        downloads("U1", 0..30),
    );
    assert_eq!(r["duplicates"], 30);
    assert_eq!(
        d.request(
            "POST",
            "/v1/events",
            Some(&t),
            NDJSON,
            downloads("U1", 30..60)
        )
        .0,
        200
    );
    let findings = wait_for(&d, &t, "/v1/findings", |items| !items.is_empty());
    wait_processed(&d, "acme", 60);
    let (_, all) = d.request("GET", "/v1/findings", Some(&t), None, vec![]);
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    // The count carried over the restart: exactly the 50th download, not the 20th.
    assert_eq!(findings[0]["event_ids"][0], "U1-49");
}

fn dead_letters(d: &TestDaemon, token: &str) -> Vec<Value> {
    let (status, page) = d.request("GET", "/v1/dead-letters", Some(token), None, vec![]);
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

// Regression: a poison event stalled its detector forever (retried, then the whole
// plugin quarantined with the event still at its cursor).
#[test]
fn a_poison_event_goes_to_the_dead_letters_and_the_detector_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let a = d.tenant("acme");
    let b = d.tenant("globex");
    d.install(&a, plugins::HOSTILE, r#"{"mode": "loop"}"#);
    d.install(&b, plugins::EXCESSIVE_DOWNLOADS, "");
    let events = b"{\"id\":\"e1\",\"time\":1,\"action\":\"ok\",\"actor\":\"U1\"}\n\
                   {\"id\":\"e2\",\"time\":2,\"action\":\"hostile\",\"actor\":\"U1\"}\n\
                   {\"id\":\"e3\",\"time\":3,\"action\":\"ok\",\"actor\":\"U2\"}\n";
    assert_eq!(
        d.request("POST", "/v1/events", Some(&a), NDJSON, events.to_vec())
            .0,
        200
    );
    assert_eq!(
        d.request("POST", "/v1/events", Some(&b), JSON, sample()).0,
        200
    );
    // The looping event is isolated and set aside; the others are processed.
    let seen = wait_for(&d, &a, "/v1/findings", |items| items.len() == 2);
    let ids: Vec<&str> = seen
        .iter()
        .map(|f| f["event_ids"][0].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e1", "e3"]);
    let letters = aer_tests::eventually("the dead letter", || {
        let l = dead_letters(&d, &a);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (&letter["event_id"], &letter["plugin"]),
        (&json!("e2"), &json!("hostile"))
    );
    assert!(
        letter["fault"].as_str().unwrap().contains("timeout"),
        "{letter}"
    );
    assert_eq!(processed(&d, "acme"), 3, "past every event, none lost");
    let (_, rec) = d.request("GET", "/v1/plugins/hostile", Some(&a), None, vec![]);
    assert_eq!(rec["status"], "enabled", "{rec}");
    // The other tenant kept running.
    wait_for(&d, &b, "/v1/findings", |items| items.len() == 3);

    // Fixed, the dead letter is replayed and leaves the dead letters.
    let (status, _) = d.request(
        "PUT",
        "/v1/plugins/hostile/config",
        Some(&a),
        JSON,
        br#"{"mode": "probe"}"#.to_vec(),
    );
    assert_eq!(status, 200);
    let path = format!("/v1/dead-letters/{}/replay", letter["seq"]);
    let (status, body) = d.request("POST", &path, Some(&a), None, vec![]);
    assert_eq!(status, 200, "{body}");
    let probe = wait_for(&d, &a, "/v1/findings", |items| items.len() == 3);
    assert_eq!(
        probe[2]["rule"], "probe",
        "the replay ran the fixed detector"
    );
    aer_tests::eventually("the replayed mark", || {
        (dead_letters(&d, &a)[0]["status"] == "replayed").then_some(())
    });
}

// A plugin that faults on event after event is quarantined: the fault is its own, not
// its events'.
#[test]
fn a_plugin_faulting_on_every_event_is_quarantined_after_three_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let a = d.tenant("acme");
    d.install(&a, plugins::HOSTILE, r#"{"mode": "panic"}"#);
    let events: String = (0..6)
        .map(|i| {
            format!("{{\"id\":\"h{i}\",\"time\":{i},\"action\":\"hostile\",\"actor\":\"U1\"}}\n")
        })
        .collect();
    assert_eq!(
        d.request("POST", "/v1/events", Some(&a), NDJSON, events.into_bytes())
            .0,
        200
    );
    let rec = aer_tests::eventually("the quarantine", || {
        let (_, rec) = d.request("GET", "/v1/plugins/hostile", Some(&a), None, vec![]);
        (rec["status"] == "quarantined").then_some(rec)
    });
    assert!(
        rec["last_fault"].as_str().unwrap().contains("panic"),
        "{rec}"
    );
    let ids: Vec<String> = dead_letters(&d, &a)
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["h0", "h1", "h2"]);
    assert_eq!(processed(&d, "acme"), 3, "the rest wait at the cursor");
}

// Regression: a detector waiting out a fault backoff held every other detector's
// decisions until its retry (the backoffs grow to a minute), since findings are decided
// only below the position of every detector keeping pace.
#[test]
fn a_detector_backing_off_after_a_fault_holds_back_no_other_detectors_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let a = d.tenant("acme");
    d.install(&a, plugins::HOSTILE, r#"{"mode": "error"}"#);
    d.install(&a, plugins::MINIMAL_DETECTOR, "");
    // The hostile detector faults on e1: its batch is retried, then its events one by
    // one, e1 twice more before it is a dead letter, 100 + 200 + 400 + 800 ms of
    // backoff before it gets to e2.
    let events = b"{\"id\":\"e1\",\"time\":1,\"action\":\"hostile\",\"actor\":\"U1\"}\n\
                   {\"id\":\"e2\",\"time\":2,\"action\":\"user_login_failed\",\"actor\":\"U2\"}\n";
    assert_eq!(
        d.request("POST", "/v1/events", Some(&a), NDJSON, events.to_vec())
            .0,
        200
    );
    let by = |items: &[Value], plugin: &str| {
        items
            .iter()
            .filter(|i| i["finding"]["plugin"] == plugin)
            .count()
    };
    wait_for(&d, &a, "/v1/decisions", |items| {
        by(items, "minimal-detector") == 1
    });
    // Read after the decision: the hostile detector had not passed e2 when it was made.
    let hostile = d.daemon.detector_cursor("acme", "hostile").unwrap();
    assert!(hostile < 2, "the decision waited for the faulting detector");
    // It catches up, its finding on e2 decided late; nothing is lost.
    let decided = wait_for(&d, &a, "/v1/decisions", |items| by(items, "hostile") == 1);
    assert_eq!(decided.len(), 2, "{decided:?}");
    assert_eq!(dead_letters(&d, &a).len(), 1);
    // Each decision's wait for the order is measured.
    let metrics = d.daemon.metrics.render();
    assert!(
        metrics.contains("aer_decision_wait_seconds_count{tenant=\"acme\"} 2"),
        "{metrics}"
    );
}

#[test]
fn the_live_stream_sends_findings_and_decisions_as_they_commit() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let a = d.tenant("acme");
    let b = d.tenant("globex");
    d.install(&a, plugins::EXCESSIVE_DOWNLOADS, "");

    let (tx, rx) = std::sync::mpsc::channel::<(String, Value)>();
    let url = format!("{}/v1/stream", d.base);
    let token = a.clone();
    std::thread::spawn(move || {
        let resp = ureq::get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let mut name = String::new();
        for line in std::io::BufReader::new(resp.into_body().into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ")
                && tx
                    .send((name.clone(), serde_json::from_str(data).unwrap()))
                    .is_err()
            {
                return;
            }
        }
    });
    // Another tenant's activity never shows up in acme's stream.
    d.install(&b, plugins::EXCESSIVE_DOWNLOADS, "");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        d.request("POST", "/v1/events", Some(&b), JSON, sample()).0,
        200
    );
    assert_eq!(
        d.request("POST", "/v1/events", Some(&a), JSON, sample()).0,
        200
    );

    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.iter().filter(|(n, _)| n == "decision").count() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(rx.recv_timeout(left).expect("stream events arrive"));
    }
    let findings: Vec<&Value> = seen
        .iter()
        .filter(|(n, _)| n == "finding")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(findings.len(), 3, "{seen:?}");
    assert!(
        findings
            .iter()
            .all(|f| f["tenant"] == "acme" && f["source"] == "aer"),
        "{findings:?}"
    );
    // One atomic batch may be announced in any order.
    let mut subjects: Vec<&str> = findings
        .iter()
        .map(|f| f["output_fields"]["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["W01ALICE", "W04DAVE", "W09PARTNER"]);
}

#[test]
fn the_decision_engine_observes_a_quiet_spell_before_the_next_finding_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    // 6,000 events the detector does not subscribe to: processed, no finding.
    let quiet: String = (0..6_000)
        .map(|i| {
            format!(
                "{{\"id\":\"l{i}\",\"time\":{},\"action\":\"channel_created\",\"actor\":\"U{}\"}}\n",
                1_767_600_000_000i64 + i * 100,
                i % 50
            )
        })
        .collect();
    let (status, body) = d.request("POST", "/v1/events", Some(&t), NDJSON, quiet.into_bytes());
    assert_eq!(status, 200, "{body}");
    wait_processed(&d, "acme", 6_000);
    // The decision engine observes them with no finding waiting (4,096 a step).
    let start = Instant::now();
    while d.daemon.decision_observed("acme").unwrap() < 6_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "observed {}",
            d.daemon.decision_observed("acme").unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next finding is decided as before.
    let (status, body) = d.request(
        "POST",
        "/v1/events",
        Some(&t),
        NDJSON,
        downloads("U9", 0..60),
    );
    assert_eq!(status, 200, "{body}");
    let decisions = wait_for(&d, &t, "/v1/decisions", |items| !items.is_empty());
    assert_eq!(
        decisions[0]["output_fields"]["subject"], "U9",
        "{decisions:?}"
    );
    // Observed through the finding's position (its latest evidence event), no further.
    let last: i64 = decisions[0]["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap()["U9-".len()..].parse::<i64>().unwrap())
        .max()
        .unwrap();
    assert!(last < 59, "{last}");
    assert_eq!(
        d.daemon.decision_observed("acme").unwrap(),
        6_000 + last as u64 + 1
    );
}
