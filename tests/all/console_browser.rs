//! The console's browser suite (`tests/browser/`): a daemon with one tenant whose
//! risky-app review waits for approval and a mock Slack API, then Debian's headless
//! Chromium driven by playwright-core signs in, approves the review in the page, sees
//! its effect, walks its case, watches a finding arrive live, edits the policy with an
//! error and then correctly, switches its mode after the confirmation, uploads a new
//! plugin version and rolls it back, and takes each page's screenshots at
//! 1280 and 390 pixels into `target/console-screenshots/`; and it times the findings
//! page of a tenant with 10,000 findings in the browser (reported, not asserted: the
//! goal is `aer bench --only console`'s). Afterwards Slack must have been asked to
//! restrict the app exactly once.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`; `AER_CHROMIUM` names another) and
//! `npm ci` in `tests/browser` (`./test.sh` and `.ci/run` do both);
//! `AER_SKIP_BROWSER=1` skips it, saying so.

use std::process::Command;

use aer_host::config::ServeConfig;
use aer_tests::{ADMIN, MockSlack, TestDaemon, plugins, repo_root};

use crate::console::open_review;
use crate::reviews::{entry, ingest, wait};

#[test]
fn the_console_in_a_real_browser() {
    if std::env::var_os("AER_SKIP_BROWSER").is_some() {
        eprintln!("AER_SKIP_BROWSER is set: the console's browser suite is NOT run");
        return;
    }
    let suite = repo_root().join("tests").join("browser");
    let chromium = std::env::var("AER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "the browser suite needs Chromium at {chromium} (Debian: apt-get install chromium; or set AER_CHROMIUM, or AER_SKIP_BROWSER=1 to skip it)"
    );
    assert!(
        suite.join("node_modules").join("playwright-core").exists(),
        "the browser suite needs its npm packages: npm ci --prefix tests/browser"
    );

    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let hostile = "<script>alert(1)</script> PDF Helper";
    let (token, review) = open_review(&d, &slack, hostile);
    wait("the install's finding", || {
        let (_, f) = d.request("GET", "/v1/findings", Some(&token), None, vec![]);
        (!f["items"].as_array().unwrap().is_empty()).then_some(())
    });

    // A second tenant with 10,000 findings (the hostile fixture behaving: one finding
    // per event), for the pages' timing in the browser.
    let big = d.tenant("bigco");
    d.install(&big, plugins::HOSTILE, "");
    let entries: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            entry(
                &format!("big-{i}"),
                "user_login",
                &format!("W{:05}", i % 500),
                i,
                serde_json::json!({}),
            )
        })
        .collect();
    for chunk in entries.chunks(2_000) {
        ingest(&d, &big, chunk);
    }
    wait("bigco's 10,000 findings", || {
        (d.daemon.detector_cursor("bigco", "hostile").unwrap_or(0) >= 10_000).then_some(())
    });

    let shots = repo_root().join("target").join("console-screenshots");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "console.test.mjs"])
        .current_dir(&suite)
        .env("AER_CONSOLE", &d.base)
        .env("AER_TOKEN", &token)
        .env("AER_ADMIN", ADMIN)
        .env("AER_REVIEW", review.to_string())
        .env("AER_SHOTS", &shots)
        .env("AER_CHROMIUM", &chromium)
        .env("AER_COMPONENT", plugins::RISKY_APP)
        .env("AER_BIG_TOKEN", &big)
        .output()
        .expect("node runs (Node.js 20 or later)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser suite failed:\n{report}");
    eprintln!("{report}");

    // Approved once in the page: restricted once at Slack.
    let calls = slack.calls();
    assert_eq!(
        calls.of("admin.apps.restrict").len(),
        1,
        "{:?}",
        calls.admin
    );
    for page in [
        "overview",
        "reviews",
        "reviews-approved",
        "decisions",
        "case",
        "findings",
        "policy",
        "policy-error",
        "plugins",
        "plugin",
        "tenants",
    ] {
        for width in [1280, 390] {
            let shot = shots.join(format!("{page}-{width}.png"));
            assert!(
                shot.metadata().is_ok_and(|m| m.len() > 1_000),
                "{}",
                shot.display()
            );
        }
    }
}
