//! Per-tenant quotas from the configuration: plugins, events per second, state bytes
//! and pipeline time, each enforced for the tenant that passes it and no other; and
//! the inbox's retention, which keeps each tenant's stored events bounded.

use std::time::{Duration, Instant};

use aer_host::config::{ServeConfig, TenantQuota};
use aer_tests::{TestDaemon, plugins, repo_root};
use serde_json::Value;

const JSON: Option<&str> = Some("application/json");

fn sample() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/data/sample-audit-log.json")).unwrap()
}

fn config(edit: impl FnOnce(&mut ServeConfig)) -> ServeConfig {
    let mut c = ServeConfig::default();
    edit(&mut c);
    c
}

fn plugin(d: &TestDaemon, token: &str, name: &str) -> Value {
    let (status, body) = d.request(
        "GET",
        &format!("/v1/plugins/{name}"),
        Some(token),
        None,
        vec![],
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_tenant_cannot_have_more_plugins_than_its_quota() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), config(|c| c.quotas.max_plugins = 2));
    let t = d.tenant("acme");
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    d.install(&t, plugins::NOTIFY, "");
    let bytes = std::fs::read(plugins::SLACK_ANOMALY).unwrap();
    let (status, body) = d.request("POST", "/v1/plugins", Some(&t), None, bytes);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.to_string()
            .contains("quota: the tenant has 2 plugins, its limit is 2"),
        "{body}"
    );
    // A new version of a plugin it has is not a new plugin.
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    let (status, body) = d.request("POST", "/v1/plugins?version=0.2.0", Some(&t), None, bytes);
    assert_eq!(status, 201, "{body}");
    // Another tenant has its own count.
    let other = d.tenant("other");
    d.install(&other, plugins::SLACK_ANOMALY, "");
}

#[test]
fn events_per_second_can_be_set_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        config(|c| {
            c.quotas.tenants.insert(
                "slow".into(),
                TenantQuota {
                    max_events_per_second: Some(10),
                    ..Default::default()
                },
            );
        }),
    );
    let slow = d.tenant("slow");
    let fast = d.tenant("fast");
    // A request larger than the bucket passes once the bucket is full; the next one
    // within the second does not.
    let (status, body) = d.request("POST", "/v1/events", Some(&slow), JSON, sample());
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.request("POST", "/v1/events", Some(&slow), JSON, sample());
    assert_eq!(status, 429, "{body}");
    assert!(
        body.to_string()
            .contains("rate limit of 10 events per second"),
        "{body}"
    );
    // The default (50,000 a second) for another tenant.
    for _ in 0..2 {
        let (status, body) = d.request("POST", "/v1/events", Some(&fast), JSON, sample());
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn state_past_the_quota_faults_the_batch_and_quarantines_the_plugin_only_for_that_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        config(|c| {
            c.quotas.tenants.insert(
                "small".into(),
                TenantQuota {
                    max_state_bytes: Some(100),
                    ..Default::default()
                },
            );
        }),
    );
    let small = d.tenant("small");
    let big = d.tenant("big");
    for t in [&small, &big] {
        d.install(t, plugins::EXCESSIVE_DOWNLOADS, "");
        let (status, body) = d.request("POST", "/v1/events", Some(t), JSON, sample());
        assert_eq!(status, 200, "{body}");
    }
    wait_for("the small tenant's detector to be quarantined", || {
        plugin(&d, &small, "excessive-downloads")["status"] == "quarantined"
    });
    let rec = plugin(&d, &small, "excessive-downloads");
    assert!(
        rec["last_fault"].as_str().unwrap().contains("state quota"),
        "{rec}"
    );
    let (_, findings) = d.request("GET", "/v1/findings", Some(&small), None, vec![]);
    assert_eq!(
        findings["items"],
        Value::Array(vec![]),
        "nothing committed: {findings}"
    );
    // The other tenant runs as usual.
    wait_for("the big tenant's findings", || {
        let (_, f) = d.request("GET", "/v1/findings", Some(&big), None, vec![]);
        f["items"].as_array().is_some_and(|a| a.len() == 3)
    });
    assert_eq!(plugin(&d, &big, "excessive-downloads")["status"], "enabled");
}

// Regression: one plugin's state overrun faulted its sibling detectors (the quota was
// the tenant's alone, so every plugin that wrote after it faulted).
#[test]
fn the_plugin_that_overruns_its_state_faults_and_its_siblings_run_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        config(|c| {
            c.quotas.max_plugin_state_bytes = 1 << 20;
            // 200,000 writes take longer than the default deadline in a debug build.
            c.limits.deadline_ms = 20_000;
        }),
    );
    let t = d.tenant("acme");
    d.install(&t, plugins::HOSTILE, r#"{"mode": "state-flood"}"#);
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    let mut events = sample();
    let hostile = br#"{"id": "h1", "time_ms": 1767600000000, "action": "hostile", "actor": "U1"}"#;
    let (status, body) = d.request(
        "POST",
        "/v1/events",
        Some(&t),
        JSON,
        std::mem::take(&mut events),
    );
    assert_eq!(status, 200, "{body}");
    let ndjson = Some("application/x-ndjson");
    let (status, body) = d.request("POST", "/v1/events", Some(&t), ndjson, hostile.to_vec());
    assert_eq!(status, 200, "{body}");
    wait_for("the flooding plugin's quarantine", || {
        plugin(&d, &t, "hostile")["status"] == "quarantined"
    });
    let rec = plugin(&d, &t, "hostile");
    assert!(
        rec["last_fault"]
            .as_str()
            .unwrap()
            .contains("the plugin would keep"),
        "{rec}"
    );
    wait_for("the sibling's findings", || {
        let (_, f) = d.request(
            "GET",
            "/v1/findings?plugin=excessive-downloads",
            Some(&t),
            None,
            vec![],
        );
        f["items"].as_array().is_some_and(|a| a.len() == 3)
    });
    let sibling = plugin(&d, &t, "excessive-downloads");
    assert_eq!(
        (&sibling["status"], &sibling["faults"]),
        (&Value::from("enabled"), &Value::from(0)),
        "{sibling}"
    );
}

#[test]
fn deleting_a_plugin_frees_its_state_and_one_uploaded_again_under_its_name_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let name = d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    let (status, body) = d.request("POST", "/v1/events", Some(&t), JSON, sample());
    assert_eq!(status, 200, "{body}");
    let findings = |d: &TestDaemon| {
        let (_, f) = d.request("GET", "/v1/findings", Some(&t), None, vec![]);
        f["items"].as_array().map_or(0, Vec::len)
    };
    wait_for("the first findings", || findings(&d) == 3);
    let cursor = d.daemon.detector_cursor("acme", &name).unwrap();
    let bytes = d.daemon.state_bytes("acme").unwrap();
    assert!(
        cursor > 0 && bytes > 0,
        "cursor {cursor}, {bytes} bytes of state"
    );

    let path = format!("/v1/plugins/{name}");
    let (status, body) = d.request("DELETE", &path, Some(&t), None, vec![]);
    assert_eq!(status, 204, "{body}");
    assert_eq!(d.daemon.state_bytes("acme").unwrap(), 0);
    assert_eq!(d.daemon.detector_cursor("acme", &name).unwrap(), 0);
    // The deletions are committed as a batch's state is: a restart reads them back.
    d.stop();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let scope = aer_host::store::Scope::new("acme", &name);
    let left = aer_host::store::StateStore::scan(&d.daemon.state_store(), &scope, "", 1_000);
    assert_eq!(left.unwrap(), vec![]);
    assert_eq!(d.daemon.state_bytes("acme").unwrap(), 0);
    assert_eq!(d.request("GET", &path, Some(&t), None, vec![]).0, 404);

    // Its findings stay. Uploaded again, it runs the inbox from the start on fresh
    // state (its one-finding-per-window memory gone too), finding the same again.
    assert_eq!(findings(&d), 3);
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    wait_for("the same findings again", || findings(&d) == 6);
    assert_eq!(d.daemon.detector_cursor("acme", &name).unwrap(), cursor);
    assert_eq!(d.daemon.state_bytes("acme").unwrap(), bytes);
}

#[test]
fn a_tenant_past_its_pipeline_time_gives_way_to_others_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        config(|c| {
            c.quotas.tenants.insert(
                "busy".into(),
                TenantQuota {
                    cpu_ms_per_second: Some(1),
                    ..Default::default()
                },
            );
        }),
    );
    let busy = d.tenant("busy");
    let steady = d.tenant("steady");
    for t in [&busy, &steady] {
        d.install(t, plugins::EXCESSIVE_DOWNLOADS, "");
        d.install(t, plugins::SLACK_ANOMALY, "");
    }
    // Both tenants have work for a while: a few thousand events each.
    let events: Vec<String> = (0..4_000)
        .map(|i| {
            format!(
                r#"{{"id":"e{i}","time_ms":{i},"action":"file_downloaded","actor":"U{}"}}"#,
                i % 97
            )
        })
        .collect();
    for chunk in events.chunks(500) {
        for t in [&busy, &steady] {
            let body = chunk.join("\n").into_bytes();
            let (status, answer) = d.request(
                "POST",
                "/v1/events",
                Some(t),
                Some("application/x-ndjson"),
                body,
            );
            assert_eq!(status, 200, "{answer}");
        }
    }
    // Everything is processed for both, the busy one a little at a time.
    for t in [&busy, &steady] {
        wait_for("every event processed", || {
            plugin(&d, t, "excessive-downloads")["cursor"] == 4_000
        });
    }
    let (status, metrics) = d.request("GET", "/metrics", Some(aer_tests::ADMIN), None, vec![]);
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    let count = |tenant: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "aer_tenant_throttled_total{{tenant=\"{tenant}\"}}"
                ))
            })
            .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
    };
    assert!(count("busy") >= 1.0, "the busy tenant gave way:\n{text}");
    assert_eq!(count("steady"), 0.0, "the other never did");
}

/// A metric's value for `labels` (e.g. `tenant="acme"`), 0 when absent.
fn metric(d: &TestDaemon, name: &str, labels: &str) -> f64 {
    let (status, metrics) = d.request("GET", "/metrics", Some(aer_tests::ADMIN), None, vec![]);
    assert_eq!(status, 200);
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn processed_events_past_the_retention_leave_the_inbox_unless_a_quarantined_detector_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let retain = |quota: Option<u64>| {
        config(|c| {
            c.ingest.retain_events = 10;
            c.quotas.tenants.insert(
                "acme".into(),
                TenantQuota {
                    max_state_bytes: quota,
                    ..Default::default()
                },
            );
        })
    };
    // A one-byte state quota quarantines excessive-downloads at its first batch, with
    // its cursor at 0; minimal-detector keeps no state and processes everything.
    let d = TestDaemon::start(dir.path(), retain(Some(1)));
    let t = d.tenant("acme");
    let minimal = d.install(&t, plugins::MINIMAL_DETECTOR, "");
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    // Five requests of twenty downloads: a chunk each, seqs 0-19 .. 80-99.
    let send = |d: &TestDaemon, ids: std::ops::Range<i64>| {
        let body: Vec<String> = ids
            .map(|i| {
                format!(
                    r#"{{"id":"e{i}","time_ms":{},"action":"file_downloaded","actor":"U1"}}"#,
                    i * 1000
                )
            })
            .collect();
        let (status, answer) = d.request(
            "POST",
            "/v1/events",
            Some(&t),
            Some("application/x-ndjson"),
            body.join("\n").into_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        answer
    };
    for r in 0..5 {
        send(&d, r * 20..r * 20 + 20);
    }
    wait_for("minimal-detector to process everything", || {
        plugin(&d, &t, &minimal)["cursor"] == 100
    });
    wait_for("excessive-downloads to be quarantined", || {
        plugin(&d, &t, "excessive-downloads")["status"] == "quarantined"
    });
    // Three retention passes: the quarantined detector holds every event it has not
    // processed.
    std::thread::sleep(std::time::Duration::from_millis(3_200));
    assert_eq!(d.daemon.inbox.first_seq("acme").unwrap(), 0);
    assert_eq!(plugin(&d, &t, "excessive-downloads")["cursor"], 0);

    // Disabled, it holds nothing: everything before 90 (the newest ten kept) goes, a
    // whole chunk at a time, so the chunk 80-99 stays.
    let path = "/v1/plugins/excessive-downloads/disable";
    assert_eq!(d.request("POST", path, Some(&t), None, vec![]).0, 200);
    wait_for("the inbox to be trimmed", || {
        d.daemon.inbox.first_seq("acme").unwrap() == 80
    });
    let trimmed = metric(&d, "aer_inbox_trimmed_events_total", r#"tenant="acme""#);
    assert_eq!(trimmed, 80.0);

    // After a restart (without the state quota) the numbering carries on, and the
    // detector enabled again starts at the oldest kept event.
    d.stop();
    let d = TestDaemon::start(dir.path(), retain(None));
    assert_eq!(send(&d, 100..101)["first_seq"], 100);
    let path = "/v1/plugins/excessive-downloads/enable";
    assert_eq!(d.request("POST", path, Some(&t), None, vec![]).0, 200);
    wait_for("excessive-downloads to process what is kept", || {
        plugin(&d, &t, "excessive-downloads")["cursor"] == 101
    });
    let labels = r#"tenant="acme",plugin="excessive-downloads""#;
    assert_eq!(metric(&d, "aer_events_processed_total", labels), 21.0);
}

// Regression: the action log had no quota (one dry-run decision grew the database by
// 120 MB through 1,900 notifications).
#[test]
fn the_action_log_stops_growing_at_its_quota() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), config(|c| c.quotas.max_action_log_entries = 2));
    let t = d.tenant("acme");
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    d.install(
        &t,
        plugins::SLACK_SESSION_RESET,
        r#"{"notify_channel": "security"}"#,
    );
    d.install(&t, plugins::NOTIFY, r#"{"channel": "security"}"#);
    let policy = br#"{"mode": "dry-run", "responses": {"webhooks": {"security": "http://127.0.0.1:9/hook"}}}"#;
    let (status, body) = d.request("PUT", "/v1/policy", Some(&t), JSON, policy.to_vec());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    // One decision responds: three effects asked for, two fit.
    wait_for("the decision's responses", || {
        metric(
            &d,
            "aer_actions_total",
            "tenant=\"acme\",action=\"notify\",status=\"action_log_full\"",
        ) >= 1.0
    });
    let (_, log) = d.request("GET", "/v1/actions", Some(&t), None, vec![]);
    assert_eq!(log["items"].as_array().unwrap().len(), 2, "{log}");
}
