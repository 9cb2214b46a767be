//! The `geo` host service end to end: the operator's MaxMind-format databases (built
//! by the test), read by real components in `aer test` and in the daemon, degrading to
//! "unknown" without one; a file that is not a database refused by name.

use aer_host::config::ServeConfig;
use aer_host::geo::write::{Entry, database};
use aer_tests::{TestDaemon, aer, eventually, ndjson, plugins, retry_locked};

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0";
const THIEF: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";

/// A database: an office in Berlin, a consumer network in Lagos, a cloud in Virginia.
fn world(dir: &std::path::Path) -> std::path::PathBuf {
    let entries = [
        (
            "198.51.100.0/24",
            Entry::place("DE", 52.52, 13.40).network(64_500, "Example Office"),
        ),
        (
            "192.0.2.0/24",
            Entry::place("NG", 6.52, 3.38).network(36_873, "Example Mobile"),
        ),
        (
            "203.0.113.0/24",
            Entry::place("US", 39.04, -77.49).network(16_509, "Example Cloud"),
        ),
    ];
    let nets: Vec<(ipnet::IpNet, Entry)> = entries
        .into_iter()
        .map(|(n, e)| (n.parse().unwrap(), e))
        .collect();
    let path = dir.join("world.mmdb");
    std::fs::write(&path, database(nets.iter().map(|(n, e)| (*n, e))).unwrap()).unwrap();
    path
}

fn login(id: &str, time_ms: i64, ip: &str, ua: &str) -> String {
    serde_json::json!({
        "id": id, "time": time_ms, "action": "user_login", "actor": "U1",
        "context": {"ip": ip, "user_agent": ua, "session_id": "7001"}
    })
    .to_string()
}

#[test]
fn aer_test_places_logins_with_a_database_and_judges_nothing_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            login("e1", 1_000_000, "198.51.100.7", BROWSER),
            login("e2", 1_000_000 + 90 * 60_000, "192.0.2.9", THIEF),
        ]
        .join("\n"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "test",
            plugins::IMPOSSIBLE_TRAVEL,
            "--events",
            events.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        aer(&args)
    };
    let with = run(&["--geo", db.to_str().unwrap()]);
    assert_eq!(with.code, 0, "{}", with.err);
    let findings = ndjson(&with.out);
    assert_eq!(findings.len(), 1, "{}", with.out);
    let f = &findings[0];
    assert_eq!(f["rule"], "impossible-travel");
    assert_eq!(f["attributes"]["from_country"], "DE");
    assert_eq!(f["attributes"]["to_country"], "NG");

    let without = run(&[]);
    assert_eq!(without.code, 0, "{}", without.err);
    assert!(
        without.out.trim().is_empty(),
        "unknown places: {}",
        without.out
    );

    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"not a database").unwrap();
    let refused = run(&["--geo", junk.to_str().unwrap()]);
    assert_ne!(refused.code, 0);
    assert!(refused.err.contains("junk.mmdb"), "{}", refused.err);
}

#[test]
fn the_daemon_serves_geo_to_tenants_plugins_and_refuses_a_corrupt_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let mut config = ServeConfig::default();
    config.geo.databases = vec![db];
    let d = TestDaemon::start(&dir.path().join("data"), config.clone());
    let token = d.tenant("acme");
    d.install(
        &token,
        plugins::DATACENTER_ORIGIN,
        r#"{"learning_days": 0}"#,
    );
    let body = [
        login("e1", 1_000_000, "198.51.100.7", BROWSER),
        login("e2", 2_000_000, "203.0.113.80", BROWSER),
    ]
    .join("\n");
    let (status, answer) = d.request(
        "POST",
        "/v1/events",
        Some(&token),
        Some("application/x-ndjson"),
        body.into_bytes(),
    );
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let finding = eventually("a datacenter-origin finding", || {
        let (_, page) = d.request("GET", "/v1/findings", Some(&token), None, vec![]);
        page["items"].as_array()?.first().cloned()
    });
    assert_eq!(finding["rule"], "datacenter-origin", "{finding}");
    assert_eq!(
        finding["output_fields"]["aer.session_id"], "7001",
        "{finding}"
    );
    assert_eq!(finding["output_fields"]["aer.network"], "AS16509");
    d.stop();

    // A file that is not a database stops the start, by name.
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"\0\0\0 truncated").unwrap();
    config.geo.databases = vec![junk];
    config.data_dir = dir.path().join("other");
    let refused = retry_locked(|| {
        match aer_host::daemon::Daemon::open(config.clone(), aer_tests::ADMIN.into()) {
            Ok(_) => Ok(None),
            Err(e) if e.to_string().contains("lock") => Err(e),
            Err(e) => Ok(Some(e.to_string())),
        }
    });
    let refused = refused.expect("the daemon refused to start");
    assert!(refused.contains("junk.mmdb"), "{refused}");
}
