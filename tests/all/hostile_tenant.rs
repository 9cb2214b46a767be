//! A hostile tenant against the running daemon: its responders, its uploads, its HTTP
//! bodies, and what it can do to the data directory's owner. Each test names the threat
//! it pins (docs/threats.md).

use std::io::Write as _;
use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_host::store::{Scope, StateStore};
use aer_tests::{MockSlack, TestDaemon, eventually, plugins, repo_root};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");
const NDJSON: Option<&str> = Some("application/x-ndjson");

fn sample() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/data/sample-audit-log.json")).unwrap()
}

fn get(d: &TestDaemon, token: &str, path: &str) -> Value {
    let (status, body) = d.request("GET", path, Some(token), None, vec![]);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// A tenant with excessive-downloads and the hostile responder in `mode`, enforcing,
/// with W04DAVE allowlisted and notifications to the mock's webhook.
fn hostile_tenant(d: &TestDaemon, slack: &MockSlack, name: &str, mode: &str) -> String {
    let t = d.tenant(name);
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    let config = json!({"mode": mode, "target": "W04DAVE", "channel": "security"});
    d.install(&t, plugins::HOSTILE_RESPONDER, &config.to_string());
    let policy = json!({
        "mode": "enforce",
        "allowlist": {"users": ["W04DAVE"]},
        "internal_domains": ["acme.example"],
        "responses": {
            "slack_api_url": format!("{}/api", slack.base),
            "slack_token": "xoxp-tenant-secret",
            "webhooks": {"security": format!("{}/hooks/security", slack.base)}
        }
    });
    let (status, body) = put_policy(d, &t, &policy);
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.request("POST", "/v1/events", Some(&t), JSON, sample());
    assert_eq!(status, 200, "{body}");
    t
}

/// The responder's record once it is quarantined.
fn quarantined(d: &TestDaemon, token: &str) -> Value {
    eventually("the hostile responder's quarantine", || {
        let p = get(d, token, "/v1/plugins/hostile-responder");
        (p["status"] == "quarantined").then_some(p)
    })
}

// Threat: effects not bound to decisions. A responder handed a decision about one
// user reset an allowlisted user of its choosing, reset 4,449 users for one decision,
// and used forged decision ids; only the action log showed it.
#[test]
fn a_responder_acts_only_on_its_decisions_subject_within_the_cap() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let other = hostile_tenant(&d, &slack, "other", "other-user");
    let flood = hostile_tenant(&d, &slack, "flood", "flood");
    let forged = hostile_tenant(&d, &slack, "forged", "forged-id");
    let notify = hostile_tenant(&d, &slack, "notifies", "notify-flood");

    for (token, reason) in [
        (&other, "user \"W04DAVE\" is not the subject"),
        (&flood, "is not the subject"),
        (
            &forged,
            "decision \"forged0decision\" is not the decision being responded to",
        ),
        (&notify, "more than 4 notify effects for one decision"),
    ] {
        let p = quarantined(&d, token);
        assert!(
            p["last_fault"].as_str().unwrap().contains("effect refused"),
            "{p}"
        );
        let log = get(&d, token, "/v1/actions")["items"].clone();
        let refused: Vec<&Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "refused")
            .collect();
        assert!(!refused.is_empty(), "audited: {log}");
        assert!(
            refused.len() <= 4,
            "refusals are audited up to the cap, then the call traps: {log}"
        );
        assert!(
            refused[0]["detail"].as_str().unwrap().contains(reason),
            "{reason}: {log}"
        );
    }
    // The forged decision's subject and the allowlisted user were never reset, and no
    // made-up user was.
    let calls = slack.calls();
    assert!(calls.resets.is_empty(), "{:?}", calls.resets);
    // The notify flood got its 4 (all to one channel: one delivery, the rest answered
    // from the action log by their idempotency key).
    assert_eq!(calls.webhooks.len(), 1, "{:?}", calls.webhooks);
}

// Threat: text from plugins trusted by its readers. A finding subject `<!channel>
// <https://evil.example|Re-authenticate>` was posted verbatim to Slack.
#[test]
fn slack_markup_from_a_plugin_reaches_slack_as_text() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let _t = hostile_tenant(&d, &slack, "markup", "markup");
    let hook = eventually("the webhook", || slack.calls().webhooks.first().cloned());
    let text = hook["text"].as_str().unwrap();
    assert_eq!(
        text,
        "&lt;!channel&gt; W01ALICE &lt;https://evil.example|Re-authenticate&gt;"
    );
    assert_eq!(hook["blocks"][0]["text"]["text"], text);
}

// Threat: identity is what the component says. Two uploads of the same bytes under
// two names shared state; findings, faults and deletion followed the declared name.
#[test]
fn one_component_under_two_names_is_two_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    for name in ["s1", "s2"] {
        let path = format!("/v1/plugins?name={name}");
        let (status, body) = d.request("POST", &path, Some(&t), None, bytes.clone());
        assert_eq!(status, 201, "{body}");
        let path = format!("/v1/plugins/{name}/enable");
        assert_eq!(d.request("POST", &path, Some(&t), None, vec![]).0, 200);
    }
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    let findings = eventually("six findings", || {
        let items = get(&d, &t, "/v1/findings")["items"].clone();
        (items.as_array().unwrap().len() >= 6).then_some(items)
    });
    let mut by_plugin: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["plugin"].as_str().unwrap())
        .collect();
    by_plugin.sort();
    assert_eq!(by_plugin, ["s1", "s1", "s1", "s2", "s2", "s2"]);
    let store = d.daemon.state_store();
    let keys = |plugin: &str| {
        store
            .scan(&Scope::new("acme", plugin), "", 1_000_000)
            .unwrap()
            .len()
    };
    assert!(
        keys("s1") > 0 && keys("s1") == keys("s2"),
        "{} {}",
        keys("s1"),
        keys("s2")
    );
    assert_eq!(
        keys("excessive-downloads"),
        0,
        "nothing under the declared name"
    );
    // Deleting one leaves the other's state whole.
    let s2_before = keys("s2");
    assert_eq!(
        d.request("DELETE", "/v1/plugins/s1", Some(&t), None, vec![])
            .0,
        204
    );
    assert_eq!((keys("s1"), keys("s2")), (0, s2_before));
}

fn gzip(members: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(m).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

fn post_gzip(d: &TestDaemon, token: &str, body: Vec<u8>) -> (u16, Value) {
    aer_tests::http_with_headers(
        &d.base,
        "POST",
        "/v1/events",
        Some(token),
        &[
            ("content-type", "application/x-ndjson"),
            ("content-encoding", "gzip"),
        ],
        body,
    )
    .unwrap()
}

fn lines(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .map(|i| {
            format!(
                r#"{{"id":"g{i}","time_ms":{},"action":"user_login","actor":"U1"}}"#,
                1_000 + i
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

// Threat: silent loss in gzip. Only the first member of a multi-member body was read
// (5 of 10 events accepted, 0 rejected).
#[test]
fn every_gzip_member_is_read_and_trailing_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let (status, body) = post_gzip(&d, &t, gzip(&[&lines(0, 5), &lines(5, 5)]));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 10, "{body}");
    let mut garbage = gzip(&[&lines(10, 5)]);
    garbage.extend_from_slice(b"not gzip at all");
    let (status, body) = post_gzip(&d, &t, garbage);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("gzip"), "{body}");
}

// Threat: numbers from outside. `time_ms` at the i64 limits was accepted at ingest and
// overflowed the pipeline's time arithmetic.
#[test]
fn event_times_outside_1970_to_9999_are_refused_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let body = format!(
        "{}\n{}\n{}\n",
        json!({"id": "max", "time_ms": i64::MAX, "action": "a", "actor": "U1"}),
        json!({"id": "ok", "time_ms": 5, "action": "a", "actor": "U1"}),
        json!({"id": "min", "time_ms": i64::MIN, "action": "a", "actor": "U1"}),
    );
    let (status, body) = d.request("POST", "/v1/events", Some(&t), NDJSON, body.into_bytes());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{body}"
    );
}

// Threat: numbers from outside. Policies with durations of i64::MAX were accepted and
// turned the cooldown, loop guard and hourly cap off.
#[test]
fn a_policy_with_durations_that_cannot_be_meant_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let policy = json!({"cooldown_minutes": i64::MAX, "loop_guard": {"window_hours": i64::MAX}});
    let (status, body) = d.request(
        "PUT",
        "/v1/policy",
        Some(&t),
        JSON,
        policy.to_string().into_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    let fields = aer_tests::error_fields(&body);
    assert_eq!(fields, ["cooldown_minutes", "loop_guard.window_hours"]);
}

/// The database file of a data directory.
fn db_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("db").join("db")
}

// Threat: the data directory is trusted. A zero-length database file started an empty
// daemon (every tenant and token gone, `/readyz` 200); a truncated one panicked.
#[test]
fn a_damaged_data_directory_refuses_to_start_with_exit_2() {
    for damage in ["empty", "truncated", "no-db"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let d = TestDaemon::start(dir.path(), ServeConfig::default());
            d.tenant("acme");
            d.stop();
        }
        let file = db_file(dir.path());
        match damage {
            "empty" => std::fs::File::create(&file).map(drop).unwrap(),
            // Cut inside sled's header: (sled recovers a log cut later on to its last
            // whole record, as after a crash.)
            "truncated" => std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(20)
                .unwrap(),
            _ => std::fs::remove_dir_all(dir.path().join("db")).unwrap(),
        }
        let config = ServeConfig {
            data_dir: dir.path().to_owned(),
            ..ServeConfig::default()
        };
        let err = aer_tests::retry_locked(|| {
            match aer_host::daemon::Daemon::open(config.clone(), aer_tests::ADMIN.into()) {
                Err(aer_host::daemon::DaemonError::Ledger(
                    aer_host::ledger::LedgerError::Sled(e),
                )) => Err(e),
                other => Ok(other),
            }
        })
        .err()
        .unwrap_or_else(|| panic!("{damage}: the daemon started"));
        let text = err.to_string();
        assert!(
            matches!(
                err,
                aer_host::daemon::DaemonError::Ledger(
                    aer_host::ledger::LedgerError::Corrupt { .. }
                )
            ),
            "{damage}: {text}"
        );
        assert!(
            text.contains("restore it from a backup"),
            "{damage}: {text}"
        );
        let file = dir.path().join("aer.toml");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nadmin_token = \"{}\"\n",
            aer_tests::ADMIN
        );
        std::fs::write(&file, toml).unwrap();
        let run = aer_tests::aer(&[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ]);
        assert_eq!(run.code, 2, "{damage}: {}", run.err);
        assert!(
            run.err.contains("restore it from a backup"),
            "{damage}: {}",
            run.err
        );
    }
}

fn put_policy(d: &TestDaemon, token: &str, policy: &Value) -> (u16, Value) {
    d.request(
        "PUT",
        "/v1/policy",
        Some(token),
        JSON,
        policy.to_string().into_bytes(),
    )
}

// Threat: outbound requests go anywhere. A tenant's `slack_api_url` and webhooks
// reached 127.0.0.1 services and the link-local metadata address with its token.
#[test]
fn destinations_outside_the_operators_rules_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    // The operator's defaults: Slack's own API, https webhooks, no internal address.
    let d = TestDaemon::start_as_configured(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let (status, body) = put_policy(
        &d,
        &t,
        &json!({"responses": {
            "slack_api_url": "http://127.0.0.1:9/api",
            "scim_api_url": "https://169.254.169.254/scim/v1",
            "slack_token": "xoxp-secret",
            "webhooks": {"meta": "http://169.254.169.254/latest/meta-data"}
        }}),
    );
    assert_eq!(status, 400, "{body}");
    let fields = aer_tests::error_fields(&body);
    assert_eq!(
        fields,
        [
            "responses.slack_api_url",
            "responses.scim_api_url",
            "responses.webhooks.meta"
        ]
    );
    // Slack's own API and SCIM base URLs, the defaults, pass the operator's defaults.
    let (status, body) = put_policy(
        &d,
        &t,
        &json!({"responses": {"slack_token": "xoxp-secret"}}),
    );
    assert_eq!(status, 200, "{body}");
}

// Threat: outbound requests go anywhere. A webhook whose name resolves to loopback
// (https, so it passes the URL rules) is refused when it is resolved, before any
// connection; redirects are not followed.
#[test]
fn internal_addresses_and_redirects_are_not_reached() {
    let slack = MockSlack::start(0);
    let port = slack.base.rsplit(':').next().unwrap().to_owned();
    // (operator rules, webhook) -> the failure code the action log shows.
    let cases = [
        (
            aer_host::config::OutboundConfig::default(),
            format!("https://localhost:{port}/hooks/security"),
            "destination_not_allowed",
        ),
        (
            aer_host::config::OutboundConfig::loopback(),
            format!("{}/hooks-moved/security", slack.base),
            "http_307",
        ),
    ];
    for (outbound, hook, code) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = ServeConfig {
            outbound,
            ..ServeConfig::default()
        };
        let d = TestDaemon::start_as_configured(dir.path(), config);
        let t = d.tenant("acme");
        d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
        d.install(&t, plugins::NOTIFY, r#"{"channel": "security"}"#);
        let (status, body) = put_policy(
            &d,
            &t,
            &json!({"mode": "enforce", "responses": {"webhooks": {"security": hook}}}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
            200
        );
        let failed = eventually("the notification's failure", || {
            let items = get(&d, &t, "/v1/actions")["items"].clone();
            items
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["status"] == "failed")
                .cloned()
        });
        assert_eq!(failed["detail"], code, "{hook}: {failed}");
    }
    assert!(slack.calls().webhooks.is_empty(), "{:?}", slack.calls());
}

// Threat: one tenant's effects stall others. Two tenants whose Slack answered 429 kept
// another tenant's burst from any finding for 120 s: effects waited out `Retry-After`
// inside the pipeline workers.
#[test]
fn a_rate_limited_tenants_effects_never_hold_up_another_tenants_pipeline() {
    // Every reset is answered 429 (Retry-After: 1).
    let slow_slack = MockSlack::start(usize::MAX);
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        pipeline_threads: 2,
        ..ServeConfig::default()
    };
    let d = TestDaemon::start(dir.path(), config);
    let mut slow = Vec::new();
    for name in ["slow-a", "slow-b"] {
        let t = d.tenant(name);
        d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
        d.install(&t, plugins::SLACK_SESSION_RESET, "");
        let policy = json!({
            "mode": "enforce",
            "responses": {
                "slack_api_url": format!("{}/api", slow_slack.base),
                "slack_token": "xoxp-slow",
                "max_attempts": 10
            }
        });
        assert_eq!(put_policy(&d, &t, &policy).0, 200);
        assert_eq!(
            d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
            200
        );
        slow.push(t);
    }
    // The slow tenants' resets are waiting out their rate limit now.
    eventually("the slow tenants' resets to be tried", || {
        slow.iter()
            .all(|t| {
                get(&d, t, "/v1/actions")["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| {
                        a["action"] == "terminate-sessions" && a["attempts"].as_u64() >= Some(1)
                    })
            })
            .then_some(())
    });
    let victim = d.tenant("victim");
    d.install(&victim, plugins::EXCESSIVE_DOWNLOADS, "");
    let sent = Instant::now();
    assert_eq!(
        d.request("POST", "/v1/events", Some(&victim), JSON, sample())
            .0,
        200
    );
    eventually("the victim's decisions", || {
        let items = get(&d, &victim, "/v1/decisions")["items"].clone();
        (items.as_array().unwrap().len() == 3).then_some(())
    });
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(5), "the victim waited {took:?}");
    // The rate-limited effects are still retried, off the workers, within their bound.
    let first = get(&d, &slow[0], "/v1/actions")["items"][0].clone();
    assert!(
        matches!(first["status"].as_str(), Some("queued" | "pending")),
        "{first}"
    );
}
