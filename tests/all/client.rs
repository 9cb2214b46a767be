//! The CLI client verbs against a daemon on loopback.

use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_tests::{ADMIN, TestDaemon, aer, plugins, repo_root};

fn data(name: &str) -> String {
    repo_root()
        .join("examples/data")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn a_tenant_drives_the_daemon_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let server = d.base.as_str();

    let run = aer(&[
        "tenant", "create", "acme", "--server", server, "--token", ADMIN,
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let created: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let t = token.as_str();

    let run = aer(&[
        "plugin",
        "upload",
        plugins::EXCESSIVE_DOWNLOADS,
        "--server",
        server,
        "--token",
        t,
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("\"status\": \"disabled\""), "{}", run.out);
    assert_eq!(
        aer(&[
            "plugin",
            "config",
            "excessive-downloads",
            r#"{"threshold": 50}"#,
            "--server",
            server,
            "--token",
            t
        ])
        .code,
        0
    );
    assert_eq!(
        aer(&[
            "plugin",
            "enable",
            "excessive-downloads",
            "--server",
            server,
            "--token",
            t
        ])
        .code,
        0
    );
    assert_eq!(
        aer(&[
            "policy",
            "set",
            &data("policy.json"),
            "--server",
            server,
            "--token",
            t
        ])
        .code,
        0
    );
    let run = aer(&["policy", "get", "--server", server, "--token", t]);
    assert!(run.out.contains("\"mode\": \"enforce\""), "{}", run.out);

    let run = aer(&[
        "events",
        "send",
        &data("sample-audit-log.json"),
        "--batch",
        "50",
        "--server",
        server,
        "--token",
        t,
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        run.out.trim(),
        "sent 218 events: 218 accepted, 0 duplicates, 0 rejected"
    );

    let start = Instant::now();
    let decisions = loop {
        let run = aer(&["decisions", "--json", "--server", server, "--token", t]);
        assert_eq!(run.code, 0, "{}", run.err);
        if run.out.lines().count() == 3 {
            break run.out;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", run.out);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        decisions
            .lines()
            .next()
            .unwrap()
            .contains("\"outcome\":\"respond\""),
        "{decisions}"
    );
    let run = aer(&[
        "findings",
        "--json",
        "--subject",
        "W04DAVE",
        "--server",
        server,
        "--token",
        t,
    ]);
    assert_eq!(run.out.lines().count(), 1, "{}", run.out);
    let run = aer(&[
        "plugin",
        "show",
        "excessive-downloads",
        "--server",
        server,
        "--token",
        t,
    ]);
    assert!(run.out.contains("\"lag\": 0"), "{}", run.out);

    // Errors carry the server's reason and exit 2.
    let run = aer(&["plugin", "list", "--server", server, "--token", "aer_wrong"]);
    assert_eq!(run.code, 2);
    assert!(
        run.err
            .contains("HTTP 401: missing or invalid bearer token"),
        "{}",
        run.err
    );
    let run = aer(&[
        "plugin",
        "config",
        "excessive-downloads",
        r#"{"threshold": "x"}"#,
        "--server",
        server,
        "--token",
        t,
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.err.contains("HTTP 400") && run.err.contains("invalid type"),
        "{}",
        run.err
    );
}

#[test]
fn aer_demo_shows_detection_decision_and_session_reset() {
    let dir = std::path::Path::new(plugins::EXCESSIVE_DOWNLOADS)
        .parent()
        .unwrap();
    let run = aer(&["demo", "--plugins", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.out, run.err);
    for needle in [
        "uploaded and enabled excessive-downloads 0.1.0 (detector)",
        "finding   2026-01-05T14:04:05.000Z excessive-downloads W01ALICE",
        "decision  W01ALICE respond",
        "decision  W04DAVE suppressed: W04DAVE is allowlisted",
        "decision  W09PARTNER suppressed",
        "Slack API admin.users.session.reset user_id=W01ALICE",
        "detection to response: ",
        "webhook security: AER is ending all sessions of W01ALICE",
        "globex has the daemon pull its audit log",
        "calls to the mock Audit Logs API",
        "globex decision W01ALICE respond",
        "globex decision A0PDFHELPER respond",
        "(approval) for A0PDFHELPER",
        "waiting for approval: restrict-app A0PDFHELPER (calls to admin.apps.restrict so far: 0)",
        "POST /v1/reviews/",
        "approve by demo-analyst: approved",
        r#"Slack API admin.apps.restrict {"app_id":"A0PDFHELPER","enterprise_id":"E0GLOBEX"}"#,
        "console: http://127.0.0.1:",
        "  sign in as acme with its token:   aer_",
        "for app A0NOTESYNC waits for approval there",
    ] {
        assert!(
            run.out.contains(needle),
            "missing {needle:?} in\n{}",
            run.out
        );
    }
    assert_eq!(
        run.out.matches("admin.users.session.reset").count(),
        1,
        "{}",
        run.out
    );
    assert_eq!(run.out.matches("Slack API admin.apps.restrict").count(), 1);
    // Not on a terminal: the demo does not wait for Ctrl-C.
    assert!(!run.out.contains("stays up"), "{}", run.out);
}
