//! Detection to response through the daemon: responders' effects reach a mock Slack
//! API with the tenant's token (never the plugin's), once per decision, recorded in
//! the action log; 429 answers are retried after `Retry-After`; a restart repeats
//! nothing.

use std::time::{Duration, Instant};

use aer_host::config::{ServeConfig, TenantQuota};
use aer_tests::{MockSlack, TestDaemon, plugins, repo_root};
use serde_json::Value;

const JSON: Option<&str> = Some("application/json");

fn policy(slack: &MockSlack, mode: &str) -> Vec<u8> {
    serde_json::json!({
        "mode": mode,
        "allowlist": {"users": ["W04DAVE"]},
        "internal_domains": ["acme.example"],
        "responses": {
            "slack_api_url": format!("{}/api", slack.base),
            "slack_token": "xoxp-tenant-secret",
            "webhooks": {"security": format!("{}/hooks/security", slack.base)}
        }
    })
    .to_string()
    .into_bytes()
}

fn actions(d: &TestDaemon, token: &str) -> Vec<Value> {
    let (status, body) = d.request("GET", "/v1/actions", Some(token), None, vec![]);
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn wait_actions(d: &TestDaemon, token: &str, n: usize) -> Vec<Value> {
    wait_actions_of(d, token, |_| true, n)
}

/// The actions `keep` selects, once `n` of them are settled.
fn wait_actions_of(
    d: &TestDaemon,
    token: &str,
    keep: impl Fn(&Value) -> bool,
    n: usize,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let a: Vec<Value> = actions(d, token).into_iter().filter(&keep).collect();
        if a.len() >= n
            && a.iter()
                .all(|x| x["status"] != "pending" && x["status"] != "queued")
        {
            return a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waiting for {n} actions: {a:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup(d: &TestDaemon, slack: &MockSlack, mode: &str) -> String {
    let t = d.tenant("acme");
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    d.install(
        &t,
        plugins::SLACK_SESSION_RESET,
        r#"{"notify_channel": "security"}"#,
    );
    d.install(&t, plugins::NOTIFY, r#"{"channel": "security"}"#);
    let (status, body) = d.request("PUT", "/v1/policy", Some(&t), JSON, policy(slack, mode));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["responses"]["slack_token"], "********",
        "the token is never shown back"
    );
    t
}

fn put_policy(d: &TestDaemon, token: &str, policy: &Value) {
    let (status, body) = d.request(
        "PUT",
        "/v1/policy",
        Some(token),
        JSON,
        policy.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{body}");
}

fn sample() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/data/sample-audit-log.json")).unwrap()
}

#[test]
fn the_attack_is_answered_once_with_the_tenants_token_and_a_restart_repeats_nothing() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let token;
    {
        let d = TestDaemon::start(dir.path(), ServeConfig::default());
        token = setup(&d, &slack, "enforce");
        assert_eq!(
            d.request("POST", "/v1/events", Some(&token), JSON, sample())
                .0,
            200
        );
        let log = wait_actions(&d, &token, 3);
        let summary: Vec<(&str, &str, &str, &str)> = log
            .iter()
            .map(|a| {
                (
                    a["responder"].as_str().unwrap(),
                    a["action"].as_str().unwrap(),
                    a["target"].as_str().unwrap(),
                    a["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            summary.contains(&(
                "slack-session-reset",
                "terminate-sessions",
                "W01ALICE",
                "done"
            )),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("slack-session-reset", "notify", "security", "done")),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("notify", "notify", "security", "done")),
            "{summary:?}"
        );
        assert_eq!(
            log.len(),
            3,
            "nothing for the allowlisted or the external user: {summary:?}"
        );

        let (status, metrics) = d.request("GET", "/metrics", Some(aer_tests::ADMIN), None, vec![]);
        assert_eq!(status, 200);
        let text = metrics.as_str().unwrap();
        for line in [
            "aer_events_ingested_total{tenant=\"acme\"} 218",
            // Its 211 downloads and the 5 logins it learns usual contexts from.
            "aer_events_processed_total{tenant=\"acme\",plugin=\"excessive-downloads\"} 216",
            "aer_findings_total{tenant=\"acme\",plugin=\"excessive-downloads\"} 3",
            "aer_decisions_total{tenant=\"acme\",outcome=\"respond\"} 1",
            "aer_decisions_total{tenant=\"acme\",outcome=\"suppressed\"} 2",
            "aer_actions_total{tenant=\"acme\",action=\"terminate-sessions\",status=\"done\"} 1",
            "aer_detection_to_response_seconds_count{tenant=\"acme\"} 1",
            "aer_plugin_lag_events{tenant=\"acme\",plugin=\"excessive-downloads\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("aer_plugin_call_seconds_bucket{"), "{text}");

        // Another tenant sees none of it: no actions, findings or decisions.
        let other = d.tenant("globex");
        for path in [
            "/v1/actions",
            "/v1/findings",
            "/v1/decisions",
            "/v1/actions?decision=x",
        ] {
            let (status, body) = d.request("GET", path, Some(&other), None, vec![]);
            assert_eq!(status, 200);
            assert_eq!(body["items"], Value::Array(vec![]), "{path}: {body}");
        }
        let (_, policy) = d.request("GET", "/v1/policy", Some(&other), None, vec![]);
        assert_eq!(
            policy["responses"]["slack_token"],
            Value::Null,
            "no token leaks across tenants"
        );
    }
    let calls = slack.calls();
    assert_eq!(
        calls.resets,
        vec![(
            "Bearer xoxp-tenant-secret".to_string(),
            "W01ALICE".to_string()
        )]
    );
    assert_eq!(calls.webhooks.len(), 2);
    assert!(
        calls.webhooks.iter().any(|w| w["text"]
            .as_str()
            .unwrap()
            .contains("ending all sessions of W01ALICE")),
        "{:?}",
        calls.webhooks
    );

    // Restart on the same data and send the same events again: no second reset.
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let (_, r) = d.request("POST", "/v1/events", Some(&token), JSON, sample());
    assert_eq!(r["duplicates"], 218);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slack.calls().resets.len(), 1);
    assert_eq!(actions(&d, &token).len(), 3);
}

#[test]
fn slack_429_is_retried_after_retry_after() {
    let slack = MockSlack::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = setup(&d, &slack, "enforce");
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    let log = wait_actions(&d, &t, 3);
    let reset = log
        .iter()
        .find(|a| a["action"] == "terminate-sessions")
        .unwrap();
    assert_eq!(
        (reset["status"].as_str(), reset["detail"].as_str()),
        (Some("done"), Some("reset"))
    );
    assert_eq!(
        slack.calls().resets.len(),
        1,
        "one accepted reset after one 429"
    );
    // The second of waiting out Retry-After is the API's time, not the responder's: it
    // does not run the responder past its 100 ms deadline.
    let (_, rec) = d.request(
        "GET",
        "/v1/plugins/slack-session-reset",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(rec["faults"], 0, "{rec}");
}

#[test]
fn dry_run_records_and_sends_nothing() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = setup(&d, &slack, "dry-run");
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    let log = wait_actions(&d, &t, 3);
    assert!(log.iter().all(|a| a["status"] == "recorded"), "{log:?}");
    let calls = slack.calls();
    assert!(
        calls.resets.is_empty() && calls.webhooks.is_empty(),
        "{calls:?}"
    );
}

#[test]
fn notifications_go_to_slack_channels_with_chat_post_message() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    d.install(&t, plugins::EXCESSIVE_DOWNLOADS, "");
    d.install(
        &t,
        plugins::SLACK_SESSION_RESET,
        r#"{"notify_channel": "security"}"#,
    );
    d.install(&t, plugins::NOTIFY, r#"{"channel": "broken"}"#);
    let policy = serde_json::json!({
        "mode": "enforce",
        "allowlist": {"users": ["W04DAVE"]},
        "internal_domains": ["acme.example"],
        "responses": {
            "slack_api_url": format!("{}/api", slack.base),
            "slack_token": "xoxp-tenant-secret",
            "slack_channels": {"security": "C0SEC", "broken": "C0MISSING"}
        }
    });
    put_policy(&d, &t, &policy);
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    let log = wait_actions(&d, &t, 3);

    let calls = slack.calls();
    assert!(calls.webhooks.is_empty(), "{calls:?}");
    let (auth, post) = calls
        .posts
        .iter()
        .find(|(_, b)| b["channel"] == "C0SEC")
        .expect("a message to the security channel");
    assert_eq!(auth, "Bearer xoxp-tenant-secret");
    let text = post["text"].as_str().unwrap();
    assert!(text.contains("all sessions of W01ALICE"), "{text}");
    assert_eq!(post["blocks"][0]["text"]["text"], post["text"]);
    let sent = log
        .iter()
        .find(|a| a["responder"] == "slack-session-reset" && a["action"] == "notify")
        .unwrap();
    assert_eq!(sent["status"], "done", "{sent}");
    // Slack's `ok: false` answer is the failed action's error code.
    let failed = log.iter().find(|a| a["responder"] == "notify").unwrap();
    assert_eq!(
        (failed["status"].as_str(), failed["detail"].as_str()),
        (Some("failed"), Some("channel_not_found")),
        "{failed}"
    );
}

fn wait_responder_actions(d: &TestDaemon, token: &str, responder: &str, n: usize) -> Vec<Value> {
    wait_actions_of(d, token, |a| a["responder"] == responder, n)
}

fn decision_ids(log: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = log
        .iter()
        .map(|a| a["decision_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn decisions_wait_for_a_quarantined_responder_and_reach_it_when_enabled_again() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let policy = serde_json::json!({
        "mode": "enforce",
        "min_score": 0.0,
        "cooldown_minutes": 0,
        "responses": {
            "slack_api_url": format!("{}/api", slack.base),
            "slack_token": "xoxp-tenant-secret",
            "webhooks": {"security": format!("{}/hooks/security", slack.base)}
        }
    });
    let login_failed = |ids: &[(&str, &str)]| -> Vec<u8> {
        ids.iter()
            .map(|(id, user)| {
                format!("{{\"id\":\"{id}\",\"time\":1,\"action\":\"user_login_failed\",\"actor\":\"{user}\"}}\n")
            })
            .collect::<String>()
            .into_bytes()
    };
    let ndjson = Some("application/x-ndjson");
    let token;
    let all_decisions;
    {
        // A state quota of one byte: `notify`'s first state write faults it, while
        // `slack-session-reset` and the detector keep no state.
        let mut config = ServeConfig::default();
        config.quotas.tenants.insert(
            "acme".into(),
            TenantQuota {
                max_state_bytes: Some(1),
                ..Default::default()
            },
        );
        let d = TestDaemon::start(dir.path(), config);
        token = d.tenant("acme");
        d.install(&token, plugins::MINIMAL_DETECTOR, "");
        d.install(&token, plugins::NOTIFY, "");
        d.install(
            &token,
            plugins::SLACK_SESSION_RESET,
            r#"{"min_severity": "low"}"#,
        );
        put_policy(&d, &token, &policy);
        let events = login_failed(&[("e1", "U1"), ("e2", "U2")]);
        let (status, body) = d.request("POST", "/v1/events", Some(&token), ndjson, events);
        assert_eq!(status, 200, "{body}");
        let start = Instant::now();
        loop {
            let (_, rec) = d.request("GET", "/v1/plugins/notify", Some(&token), None, vec![]);
            if rec["status"] == "quarantined" {
                assert!(
                    rec["last_fault"].as_str().unwrap().contains("quota"),
                    "{rec}"
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not quarantined: {rec}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The enabled responder handles the decisions, these and later ones, while
        // they wait for the quarantined one.
        wait_responder_actions(&d, &token, "slack-session-reset", 2);
        let events = login_failed(&[("e3", "U3"), ("e4", "U4")]);
        let (status, body) = d.request("POST", "/v1/events", Some(&token), ndjson, events);
        assert_eq!(status, 200, "{body}");
        let resets = wait_responder_actions(&d, &token, "slack-session-reset", 4);
        let (_, decisions) = d.request("GET", "/v1/decisions", Some(&token), None, vec![]);
        let mut ids: Vec<String> = decisions["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids.len(), 4, "{decisions}");
        assert_eq!(decision_ids(&resets), ids);
        all_decisions = ids;
        // `notify` ran the first decision's effect before its state write passed the
        // quota (it is in the action log, so it is not repeated); no other decision
        // reached it.
        let notified: Vec<Value> = actions(&d, &token)
            .into_iter()
            .filter(|a| a["responder"] == "notify")
            .collect();
        assert!(notified.len() <= 1, "{notified:?}");
        d.stop();
    }
    // Restarted without the quota, `notify` enabled again: it resumes with all four
    // decisions (before, they were dropped as soon as no enabled responder needed them).
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let (status, body) = d.request(
        "POST",
        "/v1/plugins/notify/enable",
        Some(&token),
        None,
        vec![],
    );
    assert_eq!(status, 200, "{body}");
    let notified = wait_responder_actions(&d, &token, "notify", 4);
    assert_eq!(decision_ids(&notified), all_decisions);
    assert!(
        notified.iter().all(|a| a["status"] == "done"),
        "{notified:?}"
    );
    // Once each: no session reset repeated, one message per decision.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(actions(&d, &token).len(), 8);
    let calls = slack.calls();
    assert_eq!(calls.resets.len(), 4, "{calls:?}");
    assert_eq!(calls.webhooks.len(), 4, "{calls:?}");
}

// A decision that responds but whose responders all decline (here, below the
// responder's `min_severity`) must not read as a response in the decision log.
#[test]
fn a_decision_whose_responders_all_declined_says_nothing_was_done() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    // Failed logins are low-severity findings: the responder, acting from `medium`
    // on, declines the first; set to act from `low` on, it acts on the second.
    d.install(&t, plugins::MINIMAL_DETECTOR, "");
    d.install(
        &t,
        plugins::SLACK_SESSION_RESET,
        r#"{"min_severity": "medium"}"#,
    );
    put_policy(
        &d,
        &t,
        &serde_json::json!({
            "mode": "enforce",
            "responses": {"slack_api_url": format!("{}/api", slack.base), "slack_token": "xoxp-t"}
        }),
    );
    let login_failed = |id: &str, user: &str| {
        format!(
            "{{\"id\":\"{id}\",\"time\":1,\"action\":\"user_login_failed\",\"actor\":\"{user}\"}}\n"
        )
        .into_bytes()
    };
    let ndjson = Some("application/x-ndjson");
    let (status, _) = d.request(
        "POST",
        "/v1/events",
        Some(&t),
        ndjson,
        login_failed("e1", "U1"),
    );
    assert_eq!(status, 200);
    let decided = |n: usize| {
        aer_tests::eventually("the decisions' responses", || {
            let (_, body) = d.request("GET", "/v1/decisions", Some(&t), None, vec![]);
            let items = body["items"].as_array().cloned().unwrap_or_default();
            (items.len() == n && items.iter().all(|i| i["response"]["state"] != "waiting"))
                .then_some(items)
        })
    };
    let first = decided(1);
    assert_eq!(first[0]["outcome"], "respond", "{first:?}");
    assert_eq!(first[0]["response"]["state"], "nothing", "{first:?}");
    assert_eq!(first[0]["response"]["effects"], 0);

    let (status, _) = d.request(
        "PUT",
        "/v1/plugins/slack-session-reset/config",
        Some(&t),
        JSON,
        br#"{"min_severity": "low"}"#.to_vec(),
    );
    assert_eq!(status, 200);
    let (status, _) = d.request(
        "POST",
        "/v1/events",
        Some(&t),
        ndjson,
        login_failed("e2", "U2"),
    );
    assert_eq!(status, 200);
    let both = decided(2);
    let second = both.iter().find(|i| i["subject"] == "U2").unwrap();
    assert_eq!(second["response"]["state"], "acted", "{second}");
    assert_eq!(second["response"]["effects"], 1, "{second}");
    wait_actions(&d, &t, 1);
    assert_eq!(slack.calls().resets.len(), 1);
}
