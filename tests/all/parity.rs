//! Parity: `aer replay` and the daemon run the same stages by the same rules, so over
//! one history they make the same findings, the same decisions (in the same order, with
//! the same reasons) and the same effects, performed by the daemon and recorded by the
//! replay. The history is a generated organisation with its attacks, run through the
//! detection pack and a detector whose findings show how its events were batched and
//! rest on the last event of each batch, with session resets among the events (what
//! the decision engine has observed when it decides then shows in its reasons); the
//! responders include one that notifies a channel the policy does not map and one that
//! faults on its first call.

use std::collections::BTreeMap;

use aer_host::config::ServeConfig;
use aer_tests::{MockSlack, TestDaemon, aer, eventually, ndjson, plugins};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

/// Detectors: (component, name, configuration).
fn detectors(tor: &str) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            plugins::EXCESSIVE_DOWNLOADS,
            "excessive-downloads",
            String::new(),
        ),
        (
            plugins::RAPID_ACCOUNT_CREATION,
            "rapid-account-creation",
            String::new(),
        ),
        (
            plugins::SUSPICIOUS_FILE_SHARING,
            "suspicious-file-sharing",
            String::new(),
        ),
        (plugins::MESSAGE_VOLUME, "message-volume", String::new()),
        (
            plugins::NEW_NETWORK_ORIGIN,
            "new-network-origin",
            tor.to_owned(),
        ),
        (
            plugins::SESSION_FINGERPRINT,
            "session-fingerprint",
            String::new(),
        ),
        (
            plugins::PRIVILEGE_ESCALATION,
            "privilege-escalation",
            String::new(),
        ),
        (plugins::SLACK_ANOMALY, "slack-anomaly", String::new()),
        (plugins::BATCH_SUMMARY, "batch-summary", String::new()),
    ]
}

/// Responders: (component, name, configuration).
fn responders() -> Vec<(&'static str, &'static str, String)> {
    vec![
        // A channel the policy does not map: fails `unknown_channel` in both.
        (
            plugins::SLACK_SESSION_RESET,
            "slack-session-reset",
            r#"{"notify_channel": "nowhere"}"#.into(),
        ),
        // Its text says whether the decision it got enforces, and why it was made.
        (
            plugins::NOTIFY,
            "notify",
            r#"{"channel": "security"}"#.into(),
        ),
        (
            plugins::HOSTILE_RESPONDER,
            "hostile-responder",
            r#"{"mode": "fail-first", "channel": "security"}"#.into(),
        ),
    ]
}

/// Every page of a tenant's `path` listing.
fn all_pages(d: &TestDaemon, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let url = format!("{path}?limit=1000{after}");
        let (status, body) = d.request("GET", &url, Some(token), None, vec![]);
        assert_eq!(status, 200, "{body}");
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match &body["next"] {
            Value::Null => return items,
            next => {
                let next = next
                    .as_str()
                    .map_or_else(|| next.to_string(), str::to_owned);
                after = format!("&after={next}");
            }
        }
    }
}

/// An effect as both drivers can tell it: decision, responder, action, target, and
/// `performed`, `dry-run` or `failed: CODE` (the daemon performs what the replay
/// records).
type Effect = (String, String, String, String, String);

fn daemon_effect(a: &Value) -> Effect {
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let outcome = match s("status").as_str() {
        "done" | "queued" | "pending" => "performed".to_owned(),
        "recorded" => "dry-run".to_owned(),
        "refused" => "failed: effect_refused".to_owned(),
        _ => format!("failed: {}", s("detail")),
    };
    (
        s("decision_id"),
        s("responder"),
        s("action"),
        s("target"),
        outcome,
    )
}

fn replay_effect(a: &Value) -> Effect {
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let outcome = match (a["ok"].as_bool(), s("detail").as_str()) {
        (Some(true), "recorded") => "performed".to_owned(),
        (Some(true), "dry-run") => "dry-run".to_owned(),
        (_, detail) => format!("failed: {detail}"),
    };
    (
        s("decision_id"),
        s("responder"),
        s("action"),
        s("target"),
        outcome,
    )
}

/// A decision as both drivers record it.
fn decision(d: &Value) -> Value {
    json!({
        "id": d["id"], "outcome": d["outcome"], "reason": d["reason"],
        "subject": d["subject"], "time_ms": d["time_ms"], "finding": d["finding"],
        "corroborating_rules": d["corroborating_rules"],
    })
}

#[test]
fn replay_and_the_daemon_make_the_same_findings_decisions_and_effects() {
    let dir = tempfile::tempdir().unwrap();
    let gen_dir = dir.path().join("gen");
    let gen_path = gen_dir.to_str().unwrap();
    let run = aer(&["gen", "--out", gen_path, "--users", "40", "--days", "3"]);
    assert_eq!(run.code, 0, "{}", run.err);
    let tor = std::fs::read_to_string(gen_dir.join("new-network-origin.json")).unwrap();
    let slack = MockSlack::start(0);
    let mut policy: Value =
        serde_json::from_str(&std::fs::read_to_string(gen_dir.join("policy.json")).unwrap())
            .unwrap();
    policy["mode"] = json!("enforce");
    policy["responses"] = json!({
        "slack_api_url": format!("{}/api", slack.base),
        "slack_token": "xoxp-tenant-secret",
        "slack_channels": {"security": "C0SECURITY"},
    });
    // Low-scored batch findings are judged further (external, resting on resets).
    policy["detectors"] = json!({"batch": {"min_score": 0.0}});
    // A session reset by an admin after every 16th event, of the user who acted.
    let events_path = dir.path().join("events.ndjson");
    let mut events = String::new();
    let generated = std::fs::read_to_string(gen_dir.join("events.ndjson")).unwrap();
    for (i, line) in generated.lines().enumerate() {
        events.push_str(line);
        events.push('\n');
        if i % 16 == 15 {
            let e: Value = serde_json::from_str(line).unwrap();
            let reset = json!({
                "id": format!("reset-{i}"),
                "action": "user_session_reset_by_admin",
                "date_create": e["date_create"],
                "actor": {"type": "user", "user": {"id": "W0ADMIN", "email": "admin@acme.example"}},
                "entity": {"type": "user", "user": e["actor"]["user"]},
                "context": e["context"],
            });
            events.push_str(&reset.to_string());
            events.push('\n');
        }
    }
    std::fs::write(&events_path, events).unwrap();

    let policy_path = dir.path().join("policy.json");
    std::fs::write(&policy_path, policy.to_string()).unwrap();

    // The replay.
    let mut args: Vec<String> = vec![
        "replay".into(),
        "--json".into(),
        "--events".into(),
        events_path.to_str().unwrap().into(),
        "--policy".into(),
        policy_path.to_str().unwrap().into(),
    ];
    for (flag, list) in [
        ("--detector", detectors(&tor)),
        ("--responder", responders()),
    ] {
        for (path, name, config) in list {
            args.extend([flag.into(), path.into()]);
            if !config.is_empty() {
                args.extend(["--config".into(), format!("{name}={config}")]);
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = aer(&args);
    assert_eq!(run.code, 0, "{}", run.err);
    let records = ndjson(&run.out);
    let of = |kind: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| r[kind].clone())
            .collect()
    };
    let replayed_decisions: Vec<Value> = of("decision").iter().map(decision).collect();
    let mut replayed_effects: Vec<Effect> = of("action").iter().map(replay_effect).collect();
    replayed_effects.sort();

    // The history is worth comparing: attacks answered, the unmapped channel and the
    // faulting responder met, and the batching detector's calls among the findings.
    let outcomes = |ds: &[Value]| {
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        for d in ds {
            *n.entry(d["outcome"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        n
    };
    let counts = outcomes(&replayed_decisions);
    assert!(
        counts.get("respond").copied().unwrap_or(0) >= 5,
        "{counts:?}"
    );
    assert!(
        counts.get("suppressed").copied().unwrap_or(0) >= 5,
        "{counts:?}"
    );
    assert!(
        replayed_effects
            .iter()
            .any(|e| e.4 == "failed: unknown_channel"),
        "{replayed_effects:?}"
    );
    assert!(replayed_effects.iter().any(|e| e.1 == "hostile-responder"));
    let batches = replayed_decisions
        .iter()
        .filter(|d| d["finding"]["rule"] == "batch")
        .count();
    assert!(batches >= 100, "{batches} batch findings");
    let on_resets = replayed_decisions
        .iter()
        .filter(|d| {
            d["reason"]
                .as_str()
                .unwrap()
                .contains("rests only on session resets")
        })
        .count();
    assert!(on_resets >= 2, "{on_resets} findings resting on resets");
    assert!(!run.err.contains("quarantined"), "{}", run.err);

    // The daemon: the plugins and policy first, then the history in one request, so
    // its detectors find it stored (as a replay does) when they first run.
    let config = ServeConfig {
        pipeline_threads: 2,
        ..ServeConfig::default()
    };
    let d = TestDaemon::start(&dir.path().join("data"), config);
    let token = d.tenant("acme");
    let (status, body) = d.request(
        "PUT",
        "/v1/policy",
        Some(&token),
        JSON,
        policy.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    for (path, name, config) in detectors(&tor).into_iter().chain(responders()) {
        assert_eq!(d.install(&token, path, &config), name);
    }
    let (status, body) = d.request(
        "POST",
        "/v1/events",
        Some(&token),
        Some("application/x-ndjson"),
        std::fs::read(&events_path).unwrap(),
    );
    assert!(status == 200 || status == 202, "{status} {body}");

    let (daemon_decisions, daemon_effects) = eventually("the daemon to catch up", || {
        let decisions = all_pages(&d, &token, "/v1/decisions");
        let effects = all_pages(&d, &token, "/v1/actions");
        let settled = effects
            .iter()
            .all(|a| a["status"] != "queued" && a["status"] != "pending");
        (decisions.len() >= replayed_decisions.len()
            && effects.len() >= replayed_effects.len()
            && settled)
            .then_some((decisions, effects))
    });
    let findings = all_pages(&d, &token, "/v1/findings");
    assert_eq!(findings.len(), replayed_decisions.len());

    // Findings (in any order: the daemon's detectors commit as they run).
    let sorted = |ds: &[Value]| {
        let mut f: Vec<String> = ds.iter().map(|d| d["finding"].to_string()).collect();
        f.sort();
        f
    };
    let daemon_decisions: Vec<Value> = daemon_decisions.iter().map(decision).collect();
    assert_eq!(sorted(&daemon_decisions), sorted(&replayed_decisions));
    // Decisions, in order, with their reasons.
    for (i, (a, b)) in daemon_decisions.iter().zip(&replayed_decisions).enumerate() {
        assert_eq!(a, b, "decision {i} differs");
    }
    assert_eq!(daemon_decisions.len(), replayed_decisions.len());
    // Effects: the responders' (the daemon's own announcements of its reviews, which a
    // replay has none of, apart).
    let (notices, effects): (Vec<&Value>, Vec<&Value>) = daemon_effects.iter().partition(|a| {
        aer_host::pipeline::notify::is_host_notice(a["responder"].as_str().unwrap_or(""))
    });
    assert!(
        notices.iter().all(|n| n["responder"] == "review"),
        "no routes in this policy: {notices:?}"
    );
    let escalations = daemon_decisions
        .iter()
        .filter(|d| d["outcome"] == "escalate")
        .count();
    assert_eq!(
        notices.len(),
        escalations,
        "each escalation's review is announced"
    );
    let mut daemon_effects: Vec<Effect> = effects.into_iter().map(daemon_effect).collect();
    daemon_effects.sort();
    assert_eq!(daemon_effects, replayed_effects);
    // Notifications, as posted to Slack and as recorded (the text tells whether the
    // responder was told the decision enforces).
    let mut posted: Vec<(String, String)> = slack
        .calls()
        .posts
        .iter()
        .filter(|(_, body)| {
            !body["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("AER review ")
        })
        .map(|(_, body)| {
            assert_eq!(body["channel"], "C0SECURITY");
            let s = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
            (s("decision_id"), s("text"))
        })
        .collect();
    posted.sort();
    let mut recorded: Vec<(String, String)> = of("action")
        .iter()
        .filter(|a| a["action"] == "notify" && a["ok"] == true)
        .map(|a| {
            let text = a["text"].as_str().unwrap_or_default();
            (
                a["decision_id"].as_str().unwrap_or_default().to_owned(),
                aer_host::text::escape_slack(text).into_owned(),
            )
        })
        .collect();
    recorded.sort();
    assert!(
        recorded.iter().any(|(_, t)| t.contains("[enforced]")),
        "{recorded:?}"
    );
    assert_eq!(posted, recorded);
    // The responder that faults on its first call was retried, not quarantined (each
    // pipeline worker holds an instance of its own, whose first call faults).
    let (status, body) = d.request("GET", "/v1/plugins", Some(&token), None, vec![]);
    assert_eq!(status, 200);
    let hostile = body
        .as_array()
        .or(body["items"].as_array())
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "hostile-responder")
        .cloned()
        .unwrap_or_default();
    assert_eq!(hostile["status"], "enabled", "{hostile}");
    let faults = hostile["faults"].as_u64().unwrap_or_default();
    assert!((1..=2).contains(&faults), "{hostile}");
}
