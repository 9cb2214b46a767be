//! Crash safety: `kill -9` the real daemon process at several points while 100,000
//! events are ingested and processed with a detector and a responder enabled, restart
//! it on the same files, finish, and compare with a clean run: every acknowledged event
//! processed exactly once (the detector's state equals the clean run's, byte for byte),
//! the same findings and decisions, and every decided session reset at the mock Slack
//! API exactly once (by idempotency key).
//!
//! And the Slack Audit Logs source: `kill -9` the daemon again and again while it walks
//! a mock Audit Logs API; restarted, it lets every entry in once, in the same order as
//! a run without kills.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_host::loopback::audit_log::{AuditLog, entry};
use aer_tests::{MockSlack, Served, TestDaemon, http, inbox_events};
use serde_json::Value;

pub(crate) const JSON: Option<&str> = Some("application/json");
pub(crate) const NDJSON: Option<&str> = Some("application/x-ndjson");
pub(crate) const EVENTS: usize = 100_000;
const CHUNK: usize = 2_000;
pub(crate) const ATTACKERS: usize = 40;

/// 100,000 generic events: 1,000 users downloading and logging in over two days, and 40
/// of them downloading 60 files in four minutes once.
pub(crate) fn events() -> Vec<String> {
    aer_tests::download_org(EVENTS, ATTACKERS)
}

pub(crate) fn chunks(lines: &[String]) -> Vec<Vec<u8>> {
    lines
        .chunks(CHUNK)
        .map(|c| c.concat().into_bytes())
        .collect()
}

/// Send one chunk as a client would: a 429 (the events-per-second limit) is waited out
/// and sent again.
pub(crate) fn send(base: &str, token: &str, body: &[u8]) -> Result<(u16, Value), String> {
    loop {
        match http(
            base,
            "POST",
            "/v1/events",
            Some(token),
            NDJSON,
            body.to_vec(),
        ) {
            Ok((429, _)) => std::thread::sleep(Duration::from_millis(100)),
            other => return other.map_err(|e| e.to_string()),
        }
    }
}

/// Create tenant `acme`; its token.
fn create_tenant(base: &str) -> String {
    aer_tests::create_tenant(base, "acme")
}

/// Create tenant `acme` with the detector and the responder, and its policy; its token.
pub(crate) fn setup(base: &str, slack: &MockSlack) -> String {
    aer_tests::set_up_responding_tenant(base, "acme", &slack.base)
}

pub(crate) type Proc = aer_tests::ServeProcess;

fn spawn(dir: &std::path::Path) -> Proc {
    spawn_with(dir, ServeConfig::default())
}

/// A daemon process on `dir` with `config` (its outbound rules replaced so its effects
/// reach the mock Slack API on loopback).
pub(crate) fn spawn_with(dir: &std::path::Path, config: ServeConfig) -> Proc {
    let config = ServeConfig {
        outbound: aer_host::config::OutboundConfig::loopback(),
        ..config
    };
    aer_tests::ServeProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_aer-under-test")),
        dir,
        &config,
    )
}

pub(crate) fn terminate(p: Proc) {
    p.terminate();
}

pub(crate) fn kill9(p: Proc) {
    p.kill9();
}

/// Wait until the detector has no lag and every decision's responses are done.
pub(crate) fn wait_done(base: &str, token: &str) -> (Vec<Value>, Vec<Value>) {
    let start = Instant::now();
    loop {
        let rec = aer_tests::plugin_record(base, token, "excessive-downloads").unwrap();
        let findings = all(base, token, "/v1/findings");
        let decisions = all(base, token, "/v1/decisions");
        let (_, actions) = http(base, "GET", "/v1/actions", Some(token), None, vec![]).unwrap();
        let actions = actions["items"].as_array().cloned().unwrap_or_default();
        let responds = decisions
            .iter()
            .filter(|d| d["outcome"] == "respond")
            .count();
        if rec["lag"] == 0
            && decisions.len() == findings.len()
            && actions.len() == responds
            && actions.iter().all(|a| a["status"] == "done")
        {
            return (findings, decisions);
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "not done: lag {} findings {} decisions {} ({responds} to respond) actions {} \
             (statuses {:?}); plugins: {}",
            rec["lag"],
            findings.len(),
            decisions.len(),
            actions.len(),
            actions
                .iter()
                .map(|a| a["status"].clone())
                .collect::<Vec<_>>(),
            http(base, "GET", "/v1/plugins", Some(token), None, vec![])
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn all(base: &str, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let q = after.map_or(String::from("?limit=1000"), |a| {
            format!("?limit=1000&after={a}")
        });
        let (_, page) = http(
            base,
            "GET",
            &format!("{path}{q}"),
            Some(token),
            None,
            vec![],
        )
        .unwrap();
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next"].as_u64() {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Plugin state as the daemon left it after a graceful stop (which folds the state
/// journal into the keys).
/// The detector's state as the daemon left it in its database.
pub(crate) fn plugin_state(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    use aer_host::store::{Scope, StateStore};
    let ledger = aer_tests::retry_locked(|| aer_host::ledger::Ledger::open(dir));
    let store = ledger.state_store(1 << 20).unwrap();
    assert_eq!(store.journal_records(), 0, "journal folded at stop");
    let scope = Scope::new("acme", "excessive-downloads");
    store
        .scan(&scope, "", usize::MAX)
        .unwrap()
        .into_iter()
        .collect()
}

pub(crate) fn summary_f(findings: &[Value]) -> Vec<(String, String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().into(),
                f["output_fields"]["subject"].as_str().unwrap().into(),
                f["event_ids"].to_string(),
            )
        })
        .collect()
}

pub(crate) fn summary_d(decisions: &[Value]) -> Vec<(String, String, String)> {
    decisions
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().into(),
                d["subject"].as_str().unwrap().into(),
                d["outcome"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn kill_9_during_ingest_loses_nothing_and_repeats_nothing() {
    let lines = events();
    assert_eq!(lines.len(), EVENTS);
    let chunks = chunks(&lines);

    // The clean run, in-process, no crash.
    let clean_slack = MockSlack::start(0);
    let clean_dir = tempfile::tempdir().unwrap();
    let (clean_findings, clean_decisions) = {
        let d = TestDaemon::start(clean_dir.path(), ServeConfig::default());
        let token = setup(&d.base, &clean_slack);
        for c in &chunks {
            let (s, r) = send(&d.base, &token, c).unwrap();
            assert_eq!(s, 200, "{r}");
        }
        wait_done(&d.base, &token)
    };
    let clean_state = plugin_state(clean_dir.path());
    assert_eq!(clean_findings.len(), ATTACKERS, "one finding per attacker");
    assert_eq!(clean_slack.calls().resets.len(), ATTACKERS);

    // The crash run: a real process, killed with SIGKILL at four points, one of them
    // while a request is in flight (so that chunk may or may not have been stored).
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path());
    let token = setup(&p.base, &slack);
    let kills_after = [6usize, 19, 33];
    let mut kills = 0;
    let mut i = 0;
    while i < chunks.len() {
        if i == 27 {
            // Kill while this chunk is being sent; the client retries it afterwards.
            let base = p.base.clone();
            let body = chunks[i].clone();
            let tok = token.clone();
            let sender = std::thread::spawn(move || {
                http(&base, "POST", "/v1/events", Some(&tok), NDJSON, body)
            });
            std::thread::sleep(Duration::from_millis(3));
            kill9(p);
            kills += 1;
            let _ = sender.join();
            p = spawn(dir.path());
            // Not acknowledged (or not known to be): send again; duplicates are skipped.
        }
        match send(&p.base, &token, &chunks[i]) {
            Ok((200, _)) => {}
            other => panic!("chunk {i}: {other:?}"),
        }
        if kills_after.contains(&i) {
            kill9(p);
            kills += 1;
            p = spawn(dir.path());
        }
        i += 1;
    }
    let (findings, decisions) = wait_done(&p.base, &token);
    let (_, rec) = http(
        &p.base,
        "GET",
        "/v1/plugins/excessive-downloads",
        Some(&token),
        None,
        vec![],
    )
    .unwrap();
    assert_eq!(
        rec["cursor"], EVENTS as u64,
        "every acknowledged event, each once: {rec}"
    );
    // Graceful stop, then read its files.
    terminate(p);

    assert_eq!(summary_f(&findings), summary_f(&clean_findings));
    assert_eq!(summary_d(&decisions), summary_d(&clean_decisions));
    let state = plugin_state(dir.path());
    assert!(!state.is_empty());
    assert_eq!(
        state, clean_state,
        "the detector's state equals the clean run's"
    );

    let calls = slack.calls();
    let keys: BTreeSet<&String> = calls.reset_keys.iter().collect();
    let responds = decisions
        .iter()
        .filter(|d| d["outcome"] == "respond")
        .count();
    assert_eq!(
        keys.len(),
        responds,
        "every decided reset reached Slack, once per idempotency key"
    );
    let users: BTreeSet<&String> = calls.resets.iter().map(|(_, u)| u).collect();
    assert_eq!(users.len(), ATTACKERS);
    // A repeat is possible only for an effect cut by a kill between the request and
    // its `done` mark, and it carries the same key.
    assert!(
        calls.resets.len() <= responds + kills,
        "{} calls for {responds} decisions",
        calls.resets.len()
    );
    eprintln!(
        "crash run: {kills} kills, {} reset calls for {responds} decisions",
        calls.resets.len()
    );
}

/// A daemon whose Slack Audit Logs source may call as fast as the test likes, with
/// the inbox's own deduplication off (so the source's watermark and seen ids alone
/// keep entries from coming in twice), and slices small enough that a walk of the
/// mock's history takes many.
fn source_config() -> ServeConfig {
    ServeConfig {
        sources: aer_host::config::SourcesConfig {
            max_calls_per_minute: 60_000,
            max_slice_entries: 300,
            ..Default::default()
        },
        ingest: aer_host::config::IngestConfig {
            dedupe_window_events: 0,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Set the tenant's source to walk `log` from `start`.
fn put_source(base: &str, token: &str, url: &str, start: i64) {
    let body = serde_json::json!({
        "url": url, "token": "xoxp-audit", "start": start, "page_size": 40,
        "calls_per_minute": 60_000, "interval_seconds": 1, "overlap_seconds": 600
    });
    let (status, answer) = http(
        base,
        "PUT",
        "/v1/sources/slack-audit",
        Some(token),
        JSON,
        serde_json::to_vec(&body).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
}

/// Whether the tenant's source has walked past `last` and is caught up.
fn source_done(base: &str, token: &str, last: i64) -> bool {
    let (_, s) = http(
        base,
        "GET",
        "/v1/sources/slack-audit",
        Some(token),
        None,
        vec![],
    )
    .unwrap();
    s["status"]["state"] == "caught_up" && s["watermark"].as_i64().is_some_and(|w| w >= last)
}

#[test]
fn kill_9_while_the_audit_log_source_walks_leaves_no_gap_and_no_duplicate() {
    const START: i64 = 1_793_491_200;
    let log = AuditLog::new("xoxp-audit");
    // 2,400 entries over three days, some seconds holding several.
    let entries: Vec<Value> = (0..2_400)
        .map(|i: i64| {
            entry(
                &format!("k{i:05}"),
                START + (i / 2) * 215,
                "user_login",
                &format!("U{:02}", i % 13),
            )
        })
        .collect();
    let last = START + 1_199 * 215;
    log.add(entries.clone());
    // Slow enough that a kill lands in the middle of walks.
    log.set_delay(Duration::from_millis(12));
    let slack = Served::start(log.router());
    let url = format!("{}/audit/v1", slack.base);

    // The straight run.
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = {
        let d = TestDaemon::start(straight_dir.path(), source_config());
        let token = d.tenant("acme");
        put_source(&d.base, &token, &url, START);
        let start = Instant::now();
        while !source_done(&d.base, &token, last) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the straight run did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        inbox_events(&d.daemon, "acme")
    };
    assert_eq!(straight.len(), entries.len());

    // The same, killed at several points.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let p = spawn_with(&dir, source_config());
    let token = create_tenant(&p.base);
    put_source(&p.base, &token, &url, START);
    let mut p = p;
    let mut kills = 0;
    for wait_ms in [120, 250, 90, 400, 60, 300] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        if source_done(&p.base, &token, last) {
            break;
        }
        kill9(p);
        kills += 1;
        p = spawn_with(&dir, source_config());
    }
    assert!(kills >= 3, "the walk ended before the kills ({kills})");
    let start = Instant::now();
    while !source_done(&p.base, &token, last) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the killed run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(p);
    let d = TestDaemon::start(&dir, source_config());
    let killed = inbox_events(&d.daemon, "acme");
    assert_eq!(killed.len(), entries.len(), "no gap, no duplicate");
    assert_eq!(killed, straight, "the same events in the same order");
}
