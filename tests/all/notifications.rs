//! The policy's notification routes through the daemon, over real HTTP to a mock
//! webhook receiver: a route sends once per subject and rule within its dedup window,
//! gathers decisions into a digest, or sends OCSF Detection Findings; every review
//! reaches the security route with a link; bad routes are refused by field.

use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_tests::{MockSlack, TestDaemon, error_fields, plugins};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");
/// 2026-01-05T00:00:00Z, in seconds.
const T0: i64 = 1_767_571_200;

/// An unapproved app `app` installed (or its scopes expanded) with a broad scope.
fn install(id: &str, app: &str, secs: i64) -> Value {
    json!({
        "id": id, "date_create": T0 + secs, "action": "app_installed",
        "actor": {"type": "user", "user": {"id": "U0ALICE", "name": "alice", "email": "alice@acme.example"}},
        "entity": {"type": "app", "app": {"id": app, "name": "Helper", "is_directory_approved": false,
                   "scopes": ["files:read"]}},
        "context": {"ua": "Mozilla/5.0", "ip_address": "198.51.100.20", "session_id": 1},
    })
}

fn tenant_with(d: &TestDaemon, slack: &MockSlack, notifications: Value) -> String {
    let t = d.tenant("acme");
    d.install(&t, plugins::RISKY_APP, "");
    let policy = json!({
        "mode": "enforce",
        "cooldown_minutes": 0,
        "loop_guard": {"max_resets": 100, "window_hours": 24},
        "responses": {
            "slack_api_url": format!("{}/api", slack.base),
            "webhooks": {"security": format!("{}/hooks/security", slack.base),
                         "siem": format!("{}/hooks/siem", slack.base)}
        },
        "notifications": notifications,
    });
    let (status, body) = d.request(
        "PUT",
        "/v1/policy",
        Some(&t),
        JSON,
        policy.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    t
}

fn ingest(d: &TestDaemon, t: &str, entries: Vec<Value>) {
    let body = serde_json::to_vec(&json!({"ok": true, "entries": entries})).unwrap();
    let (status, answer) = d.request("POST", "/v1/events", Some(t), JSON, body);
    assert_eq!(status, 200, "{answer}");
}

/// The webhook bodies received, once `n` arrived and nothing more came for a while.
fn settled(slack: &MockSlack, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let got = slack.calls().webhooks;
        if got.len() >= n {
            std::thread::sleep(Duration::from_millis(400));
            return slack.calls().webhooks;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waiting for {n} webhook messages: {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn decisions(d: &TestDaemon, t: &str, n: usize) {
    let start = Instant::now();
    loop {
        let (_, body) = d.request("GET", "/v1/decisions", Some(t), None, vec![]);
        if body["items"].as_array().is_some_and(|a| a.len() >= n) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waiting for {n} decisions"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_route_sends_once_per_subject_and_rule_within_its_dedup_window() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = tenant_with(
        &d,
        &slack,
        json!({"routes": [{"name": "apps", "outcomes": ["respond"], "min_severity": "medium",
                           "rules": ["risky-app"], "to": ["security"], "dedup_minutes": 60}]}),
    );
    // A0ONE three times (at 0, 10 min, 2 h), A0TWO once: three messages.
    ingest(
        &d,
        &t,
        vec![
            install("a", "A0ONE", 0),
            install("b", "A0ONE", 600),
            install("c", "A0TWO", 700),
            install("e", "A0ONE", 7_200),
        ],
    );
    decisions(&d, &t, 4);
    let got = settled(&slack, 3);
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts.iter().all(|t| t.starts_with("AER respond: A0")),
        "{texts:#?}"
    );
    assert_eq!(texts.iter().filter(|t| t.contains("A0ONE")).count(), 2);
    assert_eq!(texts.iter().filter(|t| t.contains("A0TWO")).count(), 1);
    let (_, log) = d.request("GET", "/v1/actions", Some(&t), None, vec![]);
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["responder"] == "route:apps" && a["status"] == "done"),
        "{log}"
    );
}

#[test]
fn a_digest_gathers_decisions_into_one_message() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = tenant_with(
        &d,
        &slack,
        json!({"routes": [{"name": "daily", "to": ["security"], "digest_seconds": 1}]}),
    );
    ingest(
        &d,
        &t,
        vec![
            install("a", "A0ONE", 0),
            install("b", "A0TWO", 60),
            install("c", "A0THREE", 120),
        ],
    );
    decisions(&d, &t, 3);
    let got = settled(&slack, 1);
    assert_eq!(got.len(), 1, "one digest: {got:#?}");
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("AER digest (daily): 3 decision(s)"),
        "{text}"
    );
    for app in ["A0ONE", "A0TWO", "A0THREE"] {
        assert!(text.contains(app), "{text}");
    }
}

#[test]
fn an_ocsf_route_sends_detection_findings_to_a_webhook() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = tenant_with(
        &d,
        &slack,
        json!({"routes": [{"name": "siem", "to": ["siem"], "format": "ocsf"}]}),
    );
    ingest(&d, &t, vec![install("a", "A0ONE", 0)]);
    let got = settled(&slack, 1);
    let f = &got[0];
    assert_eq!(
        (
            f["class_uid"].as_u64(),
            f["category_uid"].as_u64(),
            f["type_uid"].as_u64()
        ),
        (Some(2004), Some(2), Some(200_401)),
        "{f:#}"
    );
    assert_eq!(f["severity"], "Medium");
    assert_eq!(f["finding_info"]["analytic"]["name"], "risky-app");
    assert_eq!(f["finding_info"]["related_events"][0]["uid"], "a");
    assert_eq!(f["resources"][0], json!({"uid": "A0ONE", "type": "app"}));
    assert_eq!(f["metadata"]["tenant_uid"], "acme");
    assert_eq!(f["unmapped"]["aer"]["outcome"], "respond");
}

#[test]
fn bad_routes_are_refused_by_field() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let policy = json!({
        "responses": {"webhooks": {"siem": format!("{}/hooks/siem", slack.base)},
                      "slack_channels": {"sec": "C0SEC"}},
        "notifications": {"security_route": "nowhere", "routes": [
            {"name": "a", "to": ["sec"], "format": "ocsf", "min_severity": "severe"},
            {"name": "a", "to": [], "dedup_minutes": -1, "digest_seconds": 100000}
        ]}
    });
    let (status, body) = d.request(
        "PUT",
        "/v1/policy",
        Some(&t),
        JSON,
        policy.to_string().into_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_fields(&body),
        [
            "notifications.security_route",
            "notifications.routes[0].min_severity",
            "notifications.routes[0].to[0]",
            "notifications.routes[1].name",
            "notifications.routes[1].to",
            "notifications.routes[1].dedup_minutes",
            "notifications.routes[1].digest_seconds",
        ]
    );
}
