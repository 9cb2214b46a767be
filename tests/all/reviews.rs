//! The response ladder and human review through the daemon, over real HTTP with a mock
//! Slack API that checks each method's arguments as Slack documents them: an OAuth-app
//! exfiltration held for approval and restricted once after a person approves; a
//! dismissed false positive that suppresses what follows, and says so; an escalation
//! whose approval runs the responders; the user effects of the ladder; a responder
//! built against `aer:plugin@0.1.0` running unchanged.

use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_tests::{MockSlack, TestDaemon, aer, plugins};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");
/// 2026-01-05T00:00:00Z, in seconds.
const T0: i64 = 1_767_571_200;

pub(crate) fn entry(id: &str, action: &str, user: &str, secs: i64, extra: Value) -> Value {
    let mut e = json!({
        "id": id,
        "date_create": T0 + secs,
        "action": action,
        "actor": {"type": "user", "user": {"id": user, "name": user, "email": format!("{user}@acme.example")}},
        "context": {"location": {"type": "enterprise", "id": "E0ACME"}, "ua": "Mozilla/5.0 Chrome/120.0",
                    "ip_address": "198.51.100.20", "session_id": 2_183_488_812_i64},
    });
    if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
        e.extend(extra);
    }
    e
}

/// An unapproved app `app` installed with broad scopes by `user`, then `downloads`
/// files downloaded through it, starting at `secs`.
pub(crate) fn exfiltration(app: &str, user: &str, secs: i64, downloads: usize) -> Vec<Value> {
    let mut out = vec![entry(
        &format!("{app}-install-{secs}"),
        "app_installed",
        user,
        secs,
        json!({"entity": {"type": "app", "app": {"id": app, "name": "PDF Helper",
               "is_directory_approved": false, "scopes": ["files:read", "chat:write"]}}}),
    )];
    for i in 0..downloads {
        let mut d = entry(
            &format!("{app}-dl-{secs}-{i}"),
            "file_downloaded",
            user,
            secs + 60 + i as i64,
            json!({"entity": {"type": "file", "file": {"id": format!("F{i}"), "name": "plan.pdf"}}}),
        );
        d["context"]["app"] = json!({"id": app, "name": "PDF Helper"});
        d["context"]["session_id"] = Value::Null;
        out.push(d);
    }
    out
}

pub(crate) fn ingest(d: &TestDaemon, token: &str, entries: &[Value]) {
    let body = serde_json::to_vec(&json!({"ok": true, "entries": entries})).unwrap();
    let (status, answer) = d.request("POST", "/v1/events", Some(token), JSON, body);
    assert_eq!(status, 200, "{answer}");
}

pub(crate) fn policy(slack: &MockSlack, extra: Value) -> Vec<u8> {
    let mut p = json!({
        "mode": "enforce",
        "responses": {
            "slack_api_url": format!("{}/api", slack.base),
            "scim_api_url": format!("{}/scim/v1", slack.base),
            "slack_token": "xoxp-tenant-secret",
            "slack_org_id": "E0ACME",
            "webhooks": {"security": format!("{}/hooks/security", slack.base)}
        }
    });
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        for (k, v) in extra {
            if k == "responses" {
                p["responses"]
                    .as_object_mut()
                    .unwrap()
                    .extend(v.as_object().unwrap().clone());
            } else {
                p.insert(k, v);
            }
        }
    }
    p.to_string().into_bytes()
}

pub(crate) fn put_policy(d: &TestDaemon, t: &str, body: Vec<u8>) {
    let (status, answer) = d.request("PUT", "/v1/policy", Some(t), JSON, body);
    assert_eq!(status, 200, "{answer}");
}

fn get(d: &TestDaemon, t: &str, path: &str) -> Value {
    let (status, body) = d.request("GET", path, Some(t), None, vec![]);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn post(d: &TestDaemon, t: &str, path: &str, body: Value) -> (u16, Value) {
    d.request("POST", path, Some(t), JSON, body.to_string().into_bytes())
}

/// Wait up to a minute for `f` to give something.
pub(crate) fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn reviews(d: &TestDaemon, t: &str, query: &str) -> Vec<Value> {
    get(d, t, &format!("/v1/reviews{query}"))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn decisions(d: &TestDaemon, t: &str) -> Vec<Value> {
    get(d, t, "/v1/decisions")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn app_tenant(d: &TestDaemon, slack: &MockSlack) -> String {
    let t = d.tenant("acme");
    d.install(&t, plugins::RISKY_APP, "");
    d.install(
        &t,
        plugins::SLACK_APP_RESTRICT,
        r#"{"notify_channel": "security"}"#,
    );
    put_policy(d, &t, policy(slack, json!({})));
    t
}

#[test]
fn an_oauth_app_exfiltration_is_restricted_once_after_a_person_approves() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = app_tenant(&d, &slack);
    ingest(&d, &t, &exfiltration("A0EXFIL", "U0ALICE", 0, 30));

    // The install is decided first: its effects wait in a review, nothing reaches Slack
    // (the downloads' finding falls in the app's cooldown).
    // (The review opens with the first held effect; the responder's call goes on.)
    let open = wait("an open review holding both effects", || {
        let r = reviews(&d, &t, "?state=open");
        r.iter()
            .all(|r| {
                let effects = r["effects"].as_array().unwrap();
                effects.iter().filter(|e| e["action"] != "notify").count() == 2
            })
            .then_some(r)
            .filter(|r| !r.is_empty())
    });
    assert_eq!(open.len(), 1, "one review for the app: {open:#?}");
    let review = &open[0];
    assert_eq!(
        (
            review["kind"].as_str(),
            review["subject"].as_str(),
            review["rule"].as_str()
        ),
        (Some("approval"), Some("A0EXFIL"), Some("risky-app"))
    );
    let held: Vec<(&str, &str)> = review["effects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "notify")
        .map(|e| (e["action"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        held,
        [
            ("restrict-app", "awaiting_approval"),
            ("uninstall-app", "awaiting_approval")
        ]
    );
    let decision = decisions(&d, &t)
        .into_iter()
        .find(|x| x["id"] == review["decision_id"])
        .unwrap();
    assert_eq!(decision["response"]["state"], "awaiting-approval");
    std::thread::sleep(Duration::from_millis(300));
    assert!(slack.calls().admin.is_empty(), "nothing before approval");
    // The security channel heard that approval is asked for.
    let notes = wait("the notification", || {
        let w = slack.calls().webhooks;
        (!w.is_empty()).then_some(w)
    });
    let texts: Vec<&str> = notes.iter().filter_map(|n| n["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("asks for approval to restrict app A0EXFIL")),
        "{texts:?}"
    );
    // The review itself reached the security route, with its link.
    let id = review["id"].as_u64().unwrap();
    wait("the review's announcement", || {
        slack
            .calls()
            .webhooks
            .iter()
            .any(|m| {
                m["text"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("AER review {id} (approval) for A0EXFIL"))
            })
            .then_some(())
    });

    // Approve, with a name: the effects run once, at the mock, with Slack's arguments.
    let (status, _) = post(&d, &t, &format!("/v1/reviews/{id}/approve"), json!({}));
    assert_eq!(status, 400, "who approves is required");
    let (status, approved) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/approve"),
        json!({"by": "alice@acme.example"}),
    );
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["resolved_by"], "alice@acme.example");
    let calls = wait("restrict and uninstall", || {
        let c = slack.calls();
        (c.admin.len() >= 2).then_some(c)
    });
    assert_eq!(
        calls.of("admin.apps.restrict"),
        [json!({"app_id": "A0EXFIL", "enterprise_id": "E0ACME"})]
    );
    assert_eq!(
        calls.of("admin.apps.uninstall"),
        [json!({"app_id": "A0EXFIL", "enterprise_id": "E0ACME"})]
    );
    let done = wait("effects done", || {
        let r = get(&d, &t, &format!("/v1/reviews/{id}"));
        r["effects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] != "notify")
            .all(|e| e["status"] == "done")
            .then_some(r)
    });
    for e in done["effects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "notify")
    {
        assert_eq!(e["approved_by"], "alice@acme.example", "{e}");
    }
    // Approving again is refused; nothing is repeated.
    let (status, again) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/approve"),
        json!({"by": "bob"}),
    );
    assert_eq!(status, 409, "{again}");
    std::thread::sleep(Duration::from_millis(500));
    let calls = slack.calls();
    assert_eq!(calls.of("admin.apps.restrict").len(), 1, "restricted once");
    assert_eq!(calls.of("admin.apps.uninstall").len(), 1);
    // Another tenant sees none of it.
    let other = d.tenant("globex");
    assert!(reviews(&d, &other, "").is_empty());
    let (status, _) = post(
        &d,
        &other,
        &format!("/v1/reviews/{id}/approve"),
        json!({"by": "mallory"}),
    );
    assert_eq!(status, 404);
}

#[test]
fn a_dismissed_false_positive_suppresses_what_follows_and_says_so() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = app_tenant(&d, &slack);
    ingest(&d, &t, &exfiltration("A0TOOL", "U0ALICE", 0, 0));
    let review = wait("a review", || reviews(&d, &t, "?state=open").pop());
    let id = review["id"].as_u64().unwrap();
    let (status, answer) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/dismiss"),
        json!({"by": "alice", "reason": "benign", "suppress": {}}),
    );
    assert_eq!(status, 400, "only a false positive suppresses: {answer}");
    // The CLI lists the open review and dismisses it.
    let client = ["--server", d.base.as_str(), "--token", t.as_str()];
    let run = aer(&[&["reviews", "--state", "open"][..], &client].concat());
    assert_eq!(run.code, 0, "{}", run.err);
    let listed: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(listed["items"][0]["id"], id, "{listed}");
    let id_text = id.to_string();
    let run = aer(&[
        &[
            "review",
            "dismiss",
            id_text.as_str(),
            "--reason",
            "false-positive",
            "--note",
            "our PDF tool",
            "--suppress",
            "--by",
            "alice",
        ][..],
        &client,
    ]
    .concat());
    assert_eq!(run.code, 0, "{}", run.err);
    let answer: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(answer["review"]["state"], "dismissed");
    assert_eq!(answer["review"]["dismissal"], "false_positive");
    let statuses: Vec<(&str, &str)> = answer["review"]["effects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "notify")
        .map(|e| (e["status"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("dismissed", "false_positive"),
            ("dismissed", "false_positive")
        ]
    );
    let suppression = answer["suppression"].clone();
    assert_eq!(
        (
            suppression["subject"].as_str(),
            suppression["rule"].as_str()
        ),
        (Some("A0TOOL"), Some("risky-app"))
    );
    let list = get(&d, &t, "/v1/suppressions")["items"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The same app expands its scopes: suppressed, the reason names the suppression.
    let expand = |id: &str, secs: i64| {
        entry(
            id,
            "app_scopes_expanded",
            "U0ALICE",
            secs,
            json!({"entity": {"type": "app", "app": {"id": "A0TOOL", "name": "PDF Helper",
                   "is_directory_approved": false, "scopes": ["files:read", "search:read"]}}}),
        )
    };
    ingest(&d, &t, &[expand("x1", 3_600)]);
    let suppressed = wait("the suppressed decision", || {
        decisions(&d, &t)
            .into_iter()
            .find(|x| x["finding"]["evidence"][0] == "x1")
    });
    assert_eq!(suppressed["outcome"], "suppressed");
    let reason = suppressed["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("suppression {}", suppression["id"]))
            && reason.contains(&format!("review {id}")),
        "{reason}"
    );
    // Removed, the next one is decided as before (and opens a review).
    let sid = suppression["id"].as_u64().unwrap().to_string();
    let run = aer(&[&["suppressions", "remove", sid.as_str()][..], &client].concat());
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        get(&d, &t, "/v1/suppressions")["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = d.request(
        "DELETE",
        &format!("/v1/suppressions/{sid}"),
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(status, 404, "gone");
    ingest(&d, &t, &[expand("x2", 7_200)]);
    let again = wait("the decision after removal", || {
        decisions(&d, &t)
            .into_iter()
            .find(|x| x["finding"]["evidence"][0] == "x2")
    });
    assert_eq!(again["outcome"], "respond", "{again}");
    wait("a second open review", || {
        (reviews(&d, &t, "?state=open").len() == 1).then_some(())
    });
    assert!(slack.calls().admin.is_empty(), "nothing was ever performed");
}

#[test]
fn an_escalation_opens_a_review_and_approving_it_runs_the_responders_once() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    d.install(&t, plugins::RISKY_APP, "");
    d.install(&t, plugins::SLACK_APP_RESTRICT, r#"{"uninstall": false}"#);
    // One response an hour, and app effects run at once: the second app escalates.
    put_policy(
        &d,
        &t,
        policy(
            &slack,
            json!({"max_responses_per_hour": 1, "responses": {"effects": {"restrict-app": "auto"}}}),
        ),
    );
    let mut entries = exfiltration("A0FIRST", "U0ALICE", 0, 0);
    entries.extend(exfiltration("A0SECOND", "U0BOB", 60, 0));
    ingest(&d, &t, &entries);
    let review = wait("the escalation's review", || {
        reviews(&d, &t, "?kind=escalation").pop()
    });
    assert_eq!(review["subject"], "A0SECOND");
    assert!(
        review["reason"]
            .as_str()
            .unwrap()
            .contains("circuit breaker"),
        "{review}"
    );
    wait("the first restriction", || {
        (slack.calls().of("admin.apps.restrict").len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slack.calls().of("admin.apps.restrict"),
        [json!({"app_id": "A0FIRST", "enterprise_id": "E0ACME"})],
        "the escalated app waits for a person"
    );
    let id = review["id"].as_u64().unwrap();
    // The security route heard of it, with a link to the review.
    let told = wait("the review's announcement", || {
        slack
            .calls()
            .webhooks
            .into_iter()
            .find(|m| m["text"].as_str().unwrap_or("").contains("(escalation)"))
    });
    let text = told["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("AER review {id} (escalation) for A0SECOND"))
            && text.ends_with(&format!("/v1/reviews/{id}")),
        "{text}"
    );
    let (status, answer) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/approve"),
        json!({"by": "alice"}),
    );
    assert_eq!(status, 200, "{answer}");
    wait("the second restriction", || {
        (slack.calls().of("admin.apps.restrict").len() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let restricted = slack.calls().of("admin.apps.restrict");
    assert_eq!(restricted.len(), 2, "once each: {restricted:?}");
    assert_eq!(restricted[1]["app_id"], "A0SECOND");
}

#[test]
fn the_user_effects_of_the_ladder_reach_slack_with_its_arguments_and_unnamed_sessions_are_refused()
{
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    d.install(&t, plugins::SESSION_FINGERPRINT, "");
    d.install(&t, plugins::HOSTILE_RESPONDER, r#"{"mode": "ladder"}"#);
    put_policy(
        &d,
        &t,
        policy(
            &slack,
            json!({"responses": {"effects": {"demote-admin": "auto", "deactivate-user": "auto"}}}),
        ),
    );
    // Session 2183488812 seen from another client: a hijacked session.
    let mut other = entry("s2", "file_downloaded", "U0CAROL", 60, json!({}));
    other["context"]["ua"] = json!("Mozilla/5.0 (Windows NT 10.0) Firefox/121.0");
    ingest(
        &d,
        &t,
        &[
            entry("s1", "file_downloaded", "U0CAROL", 0, json!({})),
            other,
        ],
    );
    let calls = wait("three ladder calls", || {
        let c = slack.calls();
        (c.admin.len() >= 3).then_some(c)
    });
    assert_eq!(
        calls.of("admin.users.session.invalidate"),
        [json!({"user_id": "U0CAROL", "session_id": 2_183_488_812_u64})]
    );
    assert_eq!(
        calls.of("admin.users.setRegular"),
        [json!({"team_id": "E0ACME", "user_id": "U0CAROL"})]
    );
    assert_eq!(calls.of("scim.Users.delete"), [json!({"id": "U0CAROL"})]);
    assert!(calls.resets.is_empty(), "one session, not all of them");

    // A session no finding names is refused and audited; nothing reaches Slack.
    let t2 = d.tenant("globex");
    d.install(&t2, plugins::SESSION_FINGERPRINT, "");
    d.install(
        &t2,
        plugins::HOSTILE_RESPONDER,
        r#"{"mode": "unnamed-session"}"#,
    );
    put_policy(&d, &t2, policy(&slack, json!({})));
    let mut other = entry("g2", "file_downloaded", "U0DAN", 60, json!({}));
    other["context"]["ua"] = json!("Mozilla/5.0 (Windows NT 10.0) Firefox/121.0");
    ingest(
        &d,
        &t2,
        &[entry("g1", "file_downloaded", "U0DAN", 0, json!({})), other],
    );
    let refused = wait("the refusal", || {
        get(&d, &t2, "/v1/actions")["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["status"] == "refused")
            .cloned()
    });
    assert_eq!(refused["action"], "end-session");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("not named by the findings"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slack.calls().of("admin.users.session.invalidate").len(), 1);

    // Slack's own refusals come back as the effect's error code, in the action log.
    let t3 = d.tenant("initech");
    d.install(&t3, plugins::SESSION_FINGERPRINT, "");
    d.install(&t3, plugins::HOSTILE_RESPONDER, r#"{"mode": "ladder"}"#);
    put_policy(
        &d,
        &t3,
        policy(
            &slack,
            json!({"responses": {"effects": {"demote-admin": "auto", "deactivate-user": "auto"}}}),
        ),
    );
    let mut other = entry("w2", "file_downloaded", "W0OWNER", 60, json!({}));
    other["context"]["ua"] = json!("Mozilla/5.0 (Windows NT 10.0) Firefox/121.0");
    ingest(
        &d,
        &t3,
        &[
            entry("w1", "file_downloaded", "W0OWNER", 0, json!({})),
            other,
        ],
    );
    let log = wait("three settled effects", || {
        let items = get(&d, &t3, "/v1/actions")["items"].clone();
        let items = items.as_array().unwrap().clone();
        (items.len() == 3
            && items
                .iter()
                .all(|a| a["status"] == "done" || a["status"] == "failed"))
        .then_some(items)
    });
    let outcome = |action: &str| {
        let a = log.iter().find(|a| a["action"] == action).unwrap();
        (
            a["status"].as_str().unwrap().to_owned(),
            a["detail"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        outcome("end-session"),
        ("failed".into(), "cannot_invalidate_primary_owner".into())
    );
    assert_eq!(
        outcome("demote-admin"),
        ("failed".into(), "cannot_modify_primary_owner".into())
    );
    assert_eq!(
        outcome("deactivate-user"),
        ("done".into(), "deactivated".into())
    );
}

#[test]
fn a_responder_built_against_wit_0_1_0_runs_unchanged_on_this_host() {
    let engine = aer_tests::engine();
    let old = aer_tests::load(&engine, plugins::WIT_0_1_0_RESPONDER);
    assert_eq!(old.meta.wit_version, "0.1.0");
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    d.install(&t, plugins::SESSION_FINGERPRINT, "");
    d.install(&t, plugins::WIT_0_1_0_RESPONDER, "");
    put_policy(&d, &t, policy(&slack, json!({})));
    let mut other = entry("o2", "file_downloaded", "U0EVE", 60, json!({}));
    other["context"]["ua"] = json!("Mozilla/5.0 (Windows NT 10.0) Firefox/121.0");
    ingest(
        &d,
        &t,
        &[entry("o1", "file_downloaded", "U0EVE", 0, json!({})), other],
    );
    let calls = wait("the old responder's reset and notification", || {
        let c = slack.calls();
        (!c.resets.is_empty() && !c.webhooks.is_empty()).then_some(c)
    });
    assert_eq!(calls.resets[0].1, "U0EVE");
    assert_eq!(calls.webhooks[0]["text"], "0.1.0 reset U0EVE");
}

#[test]
fn findings_and_decisions_are_triaged_in_bulk_and_only_the_tenants_own() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = app_tenant(&d, &slack);
    ingest(&d, &t, &exfiltration("A0TRIAGE", "U0ALICE", 0, 30));
    let findings = wait("two findings", || {
        let f = get(&d, &t, "/v1/findings")["items"].clone();
        (f.as_array().unwrap().len() == 2).then_some(f)
    });
    let made = wait("two decisions", || {
        let d = decisions(&d, &t);
        (d.len() == 2).then_some(d)
    });
    assert_eq!(findings[0]["triage"]["status"], "open");
    let (f0, f1) = (findings[0]["seq"].clone(), findings[1]["seq"].clone());
    let d0 = made[0]["seq"].clone();

    let (status, answer) = post(
        &d,
        &t,
        "/v1/triage",
        json!({"findings": [f0, f1], "decisions": [d0], "status": "acknowledged", "by": "alice"}),
    );
    assert_eq!(
        (status, answer["updated"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
    let (status, _) = post(
        &d,
        &t,
        "/v1/triage",
        json!({"decisions": [d0], "status": "closed", "by": "alice"}),
    );
    assert_eq!(status, 400, "closing needs a reason");
    let (status, answer) = post(
        &d,
        &t,
        "/v1/triage",
        json!({"findings": [f0, 999], "status": "closed", "reason": "resolved", "by": "alice"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errors"], json!(["no finding 999"]));
    let (status, _) = post(
        &d,
        &t,
        "/v1/triage",
        json!({"decisions": [d0], "status": "closed", "reason": "resolved", "note": "app removed", "by": "bob"}),
    );
    assert_eq!(status, 200);
    let now = get(&d, &t, "/v1/findings")["items"].clone();
    assert_eq!(
        now[0]["triage"]["status"], "acknowledged",
        "unchanged by the refused request"
    );
    assert_eq!(now[0]["triage"]["by"], "alice");
    let closed = decisions(&d, &t)
        .into_iter()
        .find(|x| x["seq"] == d0)
        .unwrap();
    assert_eq!(
        (
            closed["triage"]["status"].as_str(),
            closed["triage"]["reason"].as_str()
        ),
        (Some("closed"), Some("resolved"))
    );
    // Another tenant cannot name them: they are not its own.
    let other = d.tenant("globex");
    let (status, answer) = post(
        &d,
        &other,
        "/v1/triage",
        json!({"findings": [f0], "status": "acknowledged", "by": "mallory"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        get(&d, &t, "/v1/findings")["items"][0]["triage"]["by"],
        "alice"
    );
}

#[test]
fn what_a_person_signs_notes_and_names_at_once_is_bounded() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = app_tenant(&d, &slack);
    ingest(&d, &t, &exfiltration("A0BOUND", "U0ALICE", 0, 0));
    let review = wait("a review", || reviews(&d, &t, "?state=open").pop());
    let id = review["id"].as_u64().unwrap();
    let long = "x".repeat(201);
    for by in ["", "  ", "alice\u{7}", long.as_str()] {
        let (status, answer) = post(
            &d,
            &t,
            &format!("/v1/reviews/{id}/approve"),
            json!({ "by": by }),
        );
        assert_eq!(status, 400, "by {by:?}: {answer}");
    }
    let (status, answer) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/dismiss"),
        json!({"by": "alice", "reason": "benign", "note": "n".repeat(2_001)}),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/dismiss"),
        json!({"by": "alice", "reason": "ignored"}),
    );
    assert_eq!(status, 400, "an unknown reason: {answer}");
    let many: Vec<u64> = (0..1_001).collect();
    let (status, answer) = post(
        &d,
        &t,
        "/v1/triage",
        json!({"findings": many, "status": "acknowledged", "by": "alice"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("1 to 1000"),
        "refused for its size, before any is looked up: {answer}"
    );
    let (status, _) = post(
        &d,
        &t,
        "/v1/triage",
        json!({"findings": [], "status": "acknowledged", "by": "alice"}),
    );
    assert_eq!(status, 400, "nothing named");
    // Nothing was decided by the refused requests.
    assert_eq!(get(&d, &t, &format!("/v1/reviews/{id}"))["state"], "open");
    let (status, _) = post(
        &d,
        &t,
        &format!("/v1/reviews/{id}/approve"),
        json!({"by": "x".repeat(200)}),
    );
    assert_eq!(status, 200, "200 bytes is within the bound");
}
