//! The Slack Audit Logs source over real HTTP: the daemon pulls a mock of Slack's
//! Audit Logs API page by page (newest first, `oldest`/`latest` sent again on every
//! page), lets every entry in once and in time order, survives 429, 5xx, entries
//! arriving mid-walk and a bad token, and shows its status; its token is never
//! returned. The `kill -9` test is in `crash.rs`.

use std::time::{Duration, Instant};

use aer_host::config::{IngestConfig, ServeConfig, SourcesConfig};
use aer_host::loopback::audit_log::{AuditLog, entry};
use aer_tests::{Served, TestDaemon, inbox_events};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");
const TOKEN: &str = "xoxp-audit-token-0123456789";
/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200;

/// Calls as fast as the test likes, and the inbox's own deduplication by event id
/// off: the source's must hold by itself (as it must across restarts, or once the
/// inbox's window has moved on).
pub(crate) fn config() -> ServeConfig {
    ServeConfig {
        sources: SourcesConfig {
            max_calls_per_minute: 60_000,
            ..SourcesConfig::default()
        },
        ingest: IngestConfig {
            dedupe_window_events: 0,
            ..IngestConfig::default()
        },
        ..ServeConfig::default()
    }
}

/// `n` entries from `T0`, one every `every` seconds, ids `{prefix}{i}`.
pub(crate) fn entries(prefix: &str, n: usize, every: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let action = if i % 3 == 0 {
                "file_downloaded"
            } else {
                "user_login"
            };
            entry(
                &format!("{prefix}{i:05}"),
                T0 + i as i64 * every,
                action,
                &format!("U{:02}", i % 7),
            )
        })
        .collect()
}

/// A daemon whose tenant `acme` pulls `log` (served on loopback) from `T0`.
struct Pulling {
    d: TestDaemon,
    token: String,
    _slack: Served,
    _dir: tempfile::TempDir,
}

/// Start pulling `log` with `page_size` entries a page and `overlap` seconds; the
/// source as the `PUT` answered it.
fn pulling(log: &AuditLog, page_size: u32, overlap: u32) -> (Pulling, Value) {
    let slack = Served::start(log.router());
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), config());
    let token = d.tenant("acme");
    let (status, body) = put_source(
        &d,
        &token,
        &json!({
            "url": format!("{}/audit/v1", slack.base), "token": TOKEN, "start": T0,
            "page_size": page_size, "overlap_seconds": overlap, "calls_per_minute": 60_000,
            "interval_seconds": 1
        }),
    );
    assert_eq!(status, 200, "{body}");
    let p = Pulling {
        d,
        token,
        _slack: slack,
        _dir: dir,
    };
    (p, body)
}

fn put_source(d: &TestDaemon, token: &str, body: &Value) -> (u16, Value) {
    d.request(
        "PUT",
        "/v1/sources/slack-audit",
        Some(token),
        JSON,
        serde_json::to_vec(body).unwrap(),
    )
}

fn source(d: &TestDaemon, token: &str) -> Value {
    let (status, body) = d.request("GET", "/v1/sources/slack-audit", Some(token), None, vec![]);
    assert_eq!(status, 200, "{body}");
    body
}

/// Wait until the inbox holds `n` events (or fail after 60 s); its (id, time) pairs.
fn wait_inbox(d: &TestDaemon, tenant: &str, n: usize) -> Vec<(String, i64)> {
    let start = Instant::now();
    loop {
        let got = inbox_events(&d.daemon, tenant);
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {n} events",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The present second.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Wait until the source has read up to the present.
fn wait_caught_up(d: &TestDaemon, token: &str) -> Value {
    aer_tests::eventually("the source to catch up", || {
        let s = source(d, token);
        (s["status"]["state"] == "caught_up").then_some(s)
    })
}

/// Every id once, in time order.
fn assert_once_in_order(got: &[(String, i64)], want: &[Value]) {
    let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        got.windows(2).all(|w| w[0].1 <= w[1].1),
        "not in time order"
    );
    ids.sort_unstable();
    let mut expected: Vec<&str> = want.iter().map(|e| e["id"].as_str().unwrap()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "every entry exactly once");
}

#[test]
fn the_daemon_pulls_the_audit_log_in_time_order_and_each_entry_once() {
    let log = AuditLog::new(TOKEN);
    let first = entries("a", 250, 20);
    log.add(first.clone());
    let (p, body) = pulling(&log, 40, 600);
    let (d, t) = (&p.d, &p.token);
    assert_eq!(body["config"]["token"], "********");
    assert!(!body.to_string().contains(TOKEN));
    let got = wait_inbox(d, "acme", 250);
    assert_once_in_order(&got, &first);

    // Every page asked for the same window again, with the page size; pages after a
    // walk's first carried the cursor.
    let calls = log.calls();
    assert!(calls.iter().all(|c| c.authorized));
    for c in &calls {
        for k in ["oldest", "latest", "limit"] {
            assert!(c.query.contains_key(k), "{k} missing from {:?}", c.query);
        }
        assert_eq!(c.query["limit"], "40");
    }
    assert!(calls.iter().any(|c| c.query.contains_key("cursor")));

    // A late entry, dated inside the overlap below the watermark, and a new one: each
    // comes in once.
    let watermark = wait_caught_up(d, t)["watermark"].as_i64().unwrap();
    let now = now();
    let more = vec![
        entry("late", watermark - 300, "user_login", "U01"),
        entry("new", now, "user_logout", "U02"),
    ];
    log.add(more.clone());
    let got = wait_inbox(d, "acme", 252);
    std::thread::sleep(Duration::from_millis(1_500));
    let got_after = inbox_events(&d.daemon, "acme");
    assert_eq!(got_after.len(), 252, "nothing twice after more walks");
    let all: Vec<Value> = first.iter().chain(&more).cloned().collect();
    assert_once_in_order(&got[..250], &first);
    assert_once_in_order(&sorted(&got_after), &all);

    let s = source(d, t);
    assert_eq!(s["status"]["entries"], 252, "{s}");
    assert!(s["status"]["duplicates"].as_u64().unwrap() > 0, "{s}");
    assert!(s["watermark"].as_i64().unwrap() >= now, "{s}");
    assert!(s["lag_seconds"].as_i64().unwrap() < 30, "{s}");
    assert_eq!(s["status"]["state"], "caught_up", "{s}");
    let metrics = d.daemon.metrics.render();
    assert!(
        metrics.contains(
            "aer_source_calls_total{tenant=\"acme\",source=\"slack-audit\",result=\"ok\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("aer_source_lag_seconds{tenant=\"acme\",source=\"slack-audit\"}"));
}

/// `got` by time then id (a late entry is let in after the ones before it).
fn sorted(got: &[(String, i64)]) -> Vec<(String, i64)> {
    let mut v = got.to_vec();
    v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

#[test]
fn rate_limits_server_errors_and_entries_arriving_mid_walk_lose_nothing() {
    let log = AuditLog::new(TOKEN);
    let first = entries("b", 120, 30);
    log.add(first.clone());
    // Arriving on top while the first walk pages: offset cursors then repeat entries.
    let arriving = vec![
        entry("mid-1", T0 + 119 * 30, "user_login", "U03"),
        entry("mid-2", T0 + 100, "user_login", "U04"),
    ];
    log.add_at_call(2, arriving.clone());
    // Failures in the middle of the walk: it goes on where it was.
    log.fail_at(&[(2, 429), (3, 503), (5, 500)]);
    let (p, _) = pulling(&log, 25, 86_400);
    let (d, t) = (&p.d, &p.token);
    let all: Vec<Value> = first.iter().chain(&arriving).cloned().collect();
    wait_inbox(d, "acme", all.len());
    std::thread::sleep(Duration::from_millis(1_500));
    let got = inbox_events(&d.daemon, "acme");
    assert_once_in_order(&sorted(&got), &all);
    let metrics = d.daemon.metrics.render();
    for result in ["rate_limited", "http_503", "http_500"] {
        assert!(
            metrics.contains(&format!("result=\"{result}\"")),
            "{result}: {metrics}"
        );
    }
    let s = source(d, t);
    assert_eq!(s["status"]["entries"], all.len(), "{s}");
}

#[test]
fn a_bad_token_shows_in_the_status_and_a_good_one_starts_the_pull() {
    let log = AuditLog::new(TOKEN);
    let first = entries("c", 30, 60);
    log.add(first.clone());
    let slack = Served::start(log.router());
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), config());
    let t = d.tenant("acme");
    let url = format!("{}/audit/v1", slack.base);
    let (status, _) = put_source(
        &d,
        &t,
        &json!({"url": url, "token": "xoxp-wrong", "start": T0, "calls_per_minute": 60_000}),
    );
    assert_eq!(status, 200);
    let s = aer_tests::eventually("the refusal in the status", || {
        let s = source(&d, &t);
        (s["status"]["last_error"] == "invalid_auth").then_some(s)
    });
    assert_eq!(s["status"]["state"], "failing", "{s}");
    assert!(s["watermark"].is_null(), "{s}");
    assert!(inbox_events(&d.daemon, "acme").is_empty());
    assert!(d.daemon.health.ready(), "no thread died");
    // Fixed: only the token changes; the rest is kept.
    let (status, body) = put_source(&d, &t, &json!({"token": TOKEN}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["config"]["start"], T0);
    let got = wait_inbox(&d, "acme", 30);
    assert_once_in_order(&got, &first);
}

#[test]
fn a_source_is_checked_field_by_field_and_kept_to_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_as_configured(dir.path(), config());
    let a = d.tenant("acme");
    let b = d.tenant("globex");
    let (status, _) = d.request("GET", "/v1/sources/slack-audit", Some(&a), None, vec![]);
    assert_eq!(status, 404);
    // Not among the operator's URLs (the default allows only Slack's own).
    let (status, body) = put_source(
        &d,
        &a,
        &json!({"url": "http://169.254.169.254/audit/v1", "token": TOKEN}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["field"], "url", "{body}");
    let (status, body) = put_source(
        &d,
        &a,
        &json!({"token": TOKEN, "page_size": 10_000, "start": -5, "calls_per_minute": 0, "enabled": false}),
    );
    assert_eq!(status, 400, "{body}");
    let fields = aer_tests::error_fields(&body);
    assert_eq!(fields, ["start", "page_size", "calls_per_minute"], "{body}");
    let (status, body) = put_source(&d, &a, &json!({"token": TOKEN, "enabled": false}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["config"]["url"], "https://api.slack.com/audit/v1");
    assert_eq!(body["status"]["state"], "disabled", "{body}");
    // Another tenant sees nothing of it and cannot remove it.
    let (status, _) = d.request("GET", "/v1/sources/slack-audit", Some(&b), None, vec![]);
    assert_eq!(status, 404);
    let (status, _) = d.request("DELETE", "/v1/sources/slack-audit", Some(&b), None, vec![]);
    assert_eq!(status, 404);
    let (status, _) = d.request("DELETE", "/v1/sources/slack-audit", Some(&a), None, vec![]);
    assert_eq!(status, 204);
    let (status, _) = d.request("GET", "/v1/sources/slack-audit", Some(&a), None, vec![]);
    assert_eq!(status, 404);
}

#[test]
fn aer_source_sets_shows_and_removes_the_source() {
    use aer_tests::aer;
    let log = AuditLog::new(TOKEN);
    let first = entries("d", 20, 60);
    log.add(first.clone());
    let slack = Served::start(log.router());
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), config());
    let t = d.tenant("acme");
    let token_file = dir.path().join("audit-token.txt");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let url = format!("{}/audit/v1", slack.base);
    let client = ["--server", d.base.as_str(), "--token", t.as_str()];
    let mut args = vec![
        "source",
        "set",
        "--url",
        &url,
        "--token-file",
        token_file.to_str().unwrap(),
        "--start",
        "2026-11-01T00:00:00Z",
        "--page-size",
        "7",
        "--calls-per-minute",
        "60000",
    ];
    args.extend(client);
    let run = aer(&args);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("\"token\": \"********\""), "{}", run.out);
    assert!(!run.out.contains(TOKEN));
    let got = wait_inbox(&d, "acme", 20);
    assert_once_in_order(&got, &first);
    assert!(log.calls().iter().all(|c| c.query["limit"] == "7"));

    // A change names only what changes; the rest is kept.
    let mut args = vec!["source", "set", "--enabled", "false"];
    args.extend(client);
    let run = aer(&args);
    assert_eq!(run.code, 0, "{}", run.err);
    let shown: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(shown["config"]["page_size"], 7, "{shown}");
    assert_eq!(shown["config"]["enabled"], false, "{shown}");
    assert_eq!(shown["status"]["state"], "disabled", "{shown}");

    let mut args = vec!["source", "remove"];
    args.extend(client);
    assert_eq!(aer(&args).code, 0);
    let mut args = vec!["source", "show"];
    args.extend(client);
    let run = aer(&args);
    assert_ne!(run.code, 0);
    assert!(run.err.contains("404"), "{}", run.err);
}

#[test]
fn entries_that_are_not_events_are_counted_and_logged_and_the_rest_come_in() {
    let log = AuditLog::new(TOKEN);
    let good = entries("e", 10, 60);
    log.add(good.clone());
    // Without an action, or without an id: not events (as on `POST /v1/events`).
    log.add([
        json!({"id": "no-action", "date_create": T0 + 30, "actor": {"type": "user", "user": {"id": "U1"}}}),
        json!({"date_create": T0 + 90, "action": "user_login", "actor": {"type": "user", "user": {"id": "U2"}}}),
    ]);
    let (p, _) = pulling(&log, 4, 600);
    let got = wait_inbox(&p.d, "acme", 10);
    assert_once_in_order(&got, &good);
    let s = aer_tests::eventually("the rejections in the status", || {
        let s = source(&p.d, &p.token);
        (s["status"]["rejected"] == 2).then_some(s)
    });
    assert_eq!(s["status"]["entries"], 10, "{s}");
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(inbox_events(&p.d.daemon, "acme").len(), 10);
    // Walks after it read them again in the overlap, but as seen: counted once.
    let s = source(&p.d, &p.token);
    assert!(s["status"]["calls"].as_u64().unwrap() > 3, "{s}");
    assert_eq!(s["status"]["rejected"], 2, "{s}");
}

#[test]
fn a_suspended_tenants_source_makes_no_call_until_it_is_resumed() {
    let log = AuditLog::new(TOKEN);
    let first = entries("f", 5, 60);
    log.add(first.clone());
    let (p, _) = pulling(&log, 10, 600);
    wait_inbox(&p.d, "acme", 5);
    let admin = |verb: &str| {
        let path = format!("/v1/admin/tenants/acme/{verb}");
        let (status, body) =
            p.d.request("POST", &path, Some(aer_tests::ADMIN), None, vec![]);
        assert_eq!(status, 200, "{body}");
    };
    admin("suspend");
    // A poll under way when the suspension came may still finish.
    std::thread::sleep(Duration::from_millis(300));
    let calls = log.calls().len();
    log.add([entry("later", now(), "user_login", "U01")]);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(log.calls().len(), calls, "no call while suspended");
    assert_eq!(inbox_events(&p.d.daemon, "acme").len(), 5);
    admin("resume");
    wait_inbox(&p.d, "acme", 6);
}

#[test]
fn a_page_over_the_operators_bound_is_not_read() {
    let log = AuditLog::new(TOKEN);
    log.add(entries("g", 20, 60));
    let slack = Served::start(log.router());
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.sources.max_page_bytes = 1 << 10;
    let d = TestDaemon::start(dir.path(), config);
    let t = d.tenant("acme");
    let (status, body) = put_source(
        &d,
        &t,
        &json!({
            "url": format!("{}/audit/v1", slack.base), "token": TOKEN, "start": T0,
            "page_size": 10, "calls_per_minute": 60_000
        }),
    );
    assert_eq!(status, 200, "{body}");
    let s = aer_tests::eventually("the refusal in the status", || {
        let s = source(&d, &t);
        (s["status"]["last_error"] == "page_too_large").then_some(s)
    });
    assert_eq!(s["status"]["state"], "failing", "{s}");
    assert!(inbox_events(&d.daemon, "acme").is_empty());
    assert!(d.daemon.health.ready());
}
