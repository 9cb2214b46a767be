//! `aer serve` over real HTTP on loopback with real sled files: tenants and auth,
//! cross-tenant isolation, plugin lifecycle, policy, durable idempotent ingest, and a
//! clear 4xx for every kind of bad input while the daemon keeps serving.

use aer_host::config::ServeConfig;
use aer_tests::{ADMIN, TestDaemon, plugins, repo_root};
use serde_json::Value;

const JSON: Option<&str> = Some("application/json");
const NDJSON: Option<&str> = Some("application/x-ndjson");

fn sample() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/data/sample-audit-log.json")).unwrap()
}

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn start() -> (tempfile::TempDir, TestDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    (dir, d)
}

#[test]
fn tenants_need_the_admin_token_and_tokens_authenticate() {
    let (_dir, d) = start();
    let body = br#"{"name": "acme"}"#.to_vec();
    assert_eq!(
        d.request("POST", "/v1/tenants", None, JSON, body.clone()).0,
        401
    );
    assert_eq!(
        d.request(
            "POST",
            "/v1/tenants",
            Some("wrong-admin-token-000000"),
            JSON,
            body.clone()
        )
        .0,
        401
    );
    let token = d.tenant("acme");
    assert!(token.starts_with("aer_") && token.len() > 40, "{token}");
    let (status, err) = d.request("POST", "/v1/tenants", Some(ADMIN), JSON, body);
    assert_eq!(status, 409, "{err}");
    let (status, err) = d.request(
        "POST",
        "/v1/tenants",
        Some(ADMIN),
        JSON,
        br#"{"name": "../etc"}"#.to_vec(),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("invalid tenant name"),
        "{err}"
    );
    // Only a hash of the token is stored.
    let tenants = d.daemon.tenants().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_ne!(tenants[0].token_sha256, token);
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&token), None, vec![])
            .0,
        200
    );
    assert_eq!(
        d.request("GET", "/v1/plugins", Some("aer_forged"), None, vec![])
            .0,
        401
    );
    assert_eq!(d.request("GET", "/v1/plugins", None, None, vec![]).0, 401);
    // The admin token is not a tenant token.
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(ADMIN), None, vec![]).0,
        401
    );
}

#[test]
fn tenant_b_never_reads_changes_or_infers_tenant_a() {
    let (_dir, d) = start();
    let a = d.tenant("tenant-a");
    let b = d.tenant("tenant-b");
    let (status, rec) = d.request(
        "POST",
        "/v1/plugins",
        Some(&a),
        None,
        wasm(plugins::EXCESSIVE_DOWNLOADS),
    );
    assert_eq!(status, 201, "{rec}");
    assert_eq!(
        d.request(
            "POST",
            "/v1/plugins/excessive-downloads/enable",
            Some(&a),
            None,
            vec![]
        )
        .0,
        200
    );
    assert_eq!(
        d.request(
            "PUT",
            "/v1/policy",
            Some(&a),
            JSON,
            br#"{"mode": "enforce", "min_score": 0.9}"#.to_vec()
        )
        .0,
        200
    );

    // Every plugin route answers B as if A's plugin did not exist.
    let (status, list) = d.request("GET", "/v1/plugins", Some(&b), None, vec![]);
    assert_eq!((status, list), (200, Value::Array(vec![])));
    for (method, path, body) in [
        ("GET", "/v1/plugins/excessive-downloads", vec![]),
        (
            "PUT",
            "/v1/plugins/excessive-downloads/config",
            b"{}".to_vec(),
        ),
        ("POST", "/v1/plugins/excessive-downloads/enable", vec![]),
        ("POST", "/v1/plugins/excessive-downloads/disable", vec![]),
        ("POST", "/v1/plugins/excessive-downloads/rollback", vec![]),
        ("DELETE", "/v1/plugins/excessive-downloads", vec![]),
        ("GET", "/v1/plugins/no-such-plugin", vec![]),
    ] {
        let (status, body) = d.request(method, path, Some(&b), JSON, body);
        assert_eq!(status, 404, "{method} {path}: {body}");
        // The same answer as for a plugin that exists nowhere: nothing to infer.
        assert!(
            body["error"].as_str().unwrap().starts_with("no plugin"),
            "{body}"
        );
    }
    // B's policy is its own default; A's is untouched by B.
    let (_, policy) = d.request("GET", "/v1/policy", Some(&b), None, vec![]);
    assert_eq!(policy["mode"], "dry-run");
    assert_eq!(
        d.request(
            "PUT",
            "/v1/policy",
            Some(&b),
            JSON,
            br#"{"mode": "dry-run"}"#.to_vec()
        )
        .0,
        200
    );
    let (_, policy) = d.request("GET", "/v1/policy", Some(&a), None, vec![]);
    assert_eq!(
        (policy["mode"].as_str(), policy["min_score"].as_f64()),
        (Some("enforce"), Some(0.9))
    );
    // A's plugin is still there and enabled.
    let (_, rec) = d.request(
        "GET",
        "/v1/plugins/excessive-downloads",
        Some(&a),
        None,
        vec![],
    );
    assert_eq!(rec["status"], "enabled");

    // Event ids are per tenant: B sending A's events is not told they exist.
    let (_, first) = d.request("POST", "/v1/events", Some(&a), JSON, sample());
    assert_eq!(first["accepted"], 218);
    let (_, second) = d.request("POST", "/v1/events", Some(&b), JSON, sample());
    assert_eq!(
        (
            second["accepted"].as_u64(),
            second["duplicates"].as_u64(),
            second["first_seq"].as_u64()
        ),
        (Some(218), Some(0), Some(0))
    );
}

#[test]
fn plugin_lifecycle_upload_configure_version_rollback_delete() {
    let (_dir, d) = start();
    let t = d.tenant("acme");
    let bytes = wasm(plugins::EXCESSIVE_DOWNLOADS);
    let (status, rec) = d.request("POST", "/v1/plugins", Some(&t), None, bytes.clone());
    assert_eq!(status, 201, "{rec}");
    assert_eq!(
        (
            rec["name"].as_str(),
            rec["active"].as_str(),
            rec["status"].as_str()
        ),
        (Some("excessive-downloads"), Some("0.1.0"), Some("disabled"))
    );
    assert_eq!(rec["kind"], "detector");

    // The plugin itself judges its configuration.
    let (status, err) = d.request(
        "PUT",
        "/v1/plugins/excessive-downloads/config",
        Some(&t),
        JSON,
        br#"{"threshold": "many"}"#.to_vec(),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("invalid type"),
        "{err}"
    );
    let (status, err) = d.request(
        "PUT",
        "/v1/plugins/excessive-downloads/config",
        Some(&t),
        JSON,
        b"{not json".to_vec(),
    );
    assert_eq!(status, 400, "{err}");
    let (status, rec) = d.request(
        "PUT",
        "/v1/plugins/excessive-downloads/config",
        Some(&t),
        JSON,
        br#"{"threshold": 20}"#.to_vec(),
    );
    assert_eq!(status, 200, "{rec}");
    assert_eq!(rec["config"], r#"{"threshold": 20}"#);

    // A second version (same bytes, new version name) becomes active; roll back.
    let (status, rec) = d.request(
        "POST",
        "/v1/plugins?version=0.2.0",
        Some(&t),
        None,
        bytes.clone(),
    );
    assert_eq!(status, 201, "{rec}");
    assert_eq!(rec["active"], "0.2.0");
    assert_eq!(rec["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        rec["config"], r#"{"threshold": 20}"#,
        "configuration survives a new version"
    );
    // Same version, other bytes: refused.
    let (status, err) = d.request(
        "POST",
        "/v1/plugins?name=excessive-downloads&version=0.2.0",
        Some(&t),
        None,
        wasm(plugins::MINIMAL_DETECTOR),
    );
    assert_eq!(status, 409, "{err}");
    let (status, rec) = d.request(
        "POST",
        "/v1/plugins/excessive-downloads/rollback",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!((status, rec["active"].as_str()), (200, Some("0.1.0")));
    let (status, _) = d.request(
        "POST",
        "/v1/plugins/excessive-downloads/rollback",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(status, 409, "no earlier version");
    let (status, rec) = d.request(
        "POST",
        "/v1/plugins/excessive-downloads/rollback?version=0.2.0",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!((status, rec["active"].as_str()), (200, Some("0.2.0")));

    // A responder cannot take a detector's name.
    let (status, err) = d.request(
        "POST",
        "/v1/plugins?name=excessive-downloads&version=9.0.0",
        Some(&t),
        None,
        wasm(plugins::NOTIFY),
    );
    assert_eq!(status, 409, "{err}");

    assert_eq!(
        d.request(
            "DELETE",
            "/v1/plugins/excessive-downloads",
            Some(&t),
            None,
            vec![]
        )
        .0,
        204
    );
    assert_eq!(
        d.request(
            "GET",
            "/v1/plugins/excessive-downloads",
            Some(&t),
            None,
            vec![]
        )
        .0,
        404
    );
}

#[test]
fn ingest_is_durable_idempotent_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let (status, r) = d.request("POST", "/v1/events", Some(&t), JSON, sample());
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (
            r["accepted"].as_u64(),
            r["first_seq"].as_u64(),
            r["last_seq"].as_u64()
        ),
        (Some(218), Some(0), Some(217))
    );
    let (_, again) = d.request("POST", "/v1/events", Some(&t), JSON, sample());
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(218))
    );
    d.stop();

    // Restart on the same files: the events are there, ids still known, seq continues.
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    assert_eq!(d.daemon.inbox.next_seq("acme").unwrap(), 218);
    let stored = d.daemon.inbox.read("acme", 0, 1_000).unwrap();
    assert_eq!(stored.len(), 218);
    let first = aer_wire::decode_batch(&{
        let mut w = aer_wire::BatchWriter::new();
        w.push_encoded(stored.iter().next().unwrap().1);
        w.finish()
    })
    .unwrap()[0]
        .to_owned_event();
    assert_eq!(first.action, "user_login", "the oldest entry comes first");
    let (_, again) = d.request("POST", "/v1/events", Some(&t), JSON, sample());
    assert_eq!(again["duplicates"], 218);
    let line = br#"{"id": "new-1", "time": "2026-01-06T09:00:00Z", "action": "message", "actor": "W01ALICE"}"#.to_vec();
    let (_, r) = d.request("POST", "/v1/events", Some(&t), NDJSON, line);
    assert_eq!(
        (r["accepted"].as_u64(), r["first_seq"].as_u64()),
        (Some(1), Some(218))
    );
}

#[test]
fn gzip_ndjson_with_bad_lines_reports_each_and_keeps_the_rest() {
    use std::io::Write as _;
    let (_dir, d) = start();
    let t = d.tenant("acme");
    let text = "{\"id\":\"a\",\"date_create\":1767600000,\"action\":\"user_login\",\"actor\":{\"type\":\"user\",\"user\":{\"id\":\"U1\"}}}\n\
                {broken\n\
                {\"id\":\"b\",\"time\":5,\"action\":\"message\",\"actor\":\"U2\"}\n\
                {\"id\":\"c\",\"action\":\"message\"}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{}/v1/events", d.base))
        .header("Authorization", format!("Bearer {t}"))
        .header("Content-Type", "application/x-ndjson")
        .header("Content-Encoding", "gzip")
        .send(&body[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let r: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    let lines: Vec<u64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"]["number"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 4]);
    assert!(
        r["errors"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("neither"),
        "{r}"
    );
}

#[test]
fn bad_input_gets_a_clear_4xx_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        // Small enough that the oversized body below fits in the loopback socket
        // buffers, so the client reads the 413 instead of a broken pipe.
        http: aer_host::config::HttpConfig {
            max_body_bytes: 256 << 10,
            ..Default::default()
        },
        ..ServeConfig::default()
    };
    let d = TestDaemon::start(dir.path(), config);
    let t = d.tenant("acme");
    // (what, path, token, content type, body, expected status, expected text)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            "/v1/events",
            Some(&t),
            JSON,
            b"{\"entries\": [".to_vec(),
            400,
            "no valid event",
        ),
        (
            "wrong content type",
            "/v1/events",
            Some(&t),
            Some("text/csv"),
            b"a,b".to_vec(),
            415,
            "content type",
        ),
        (
            "oversized body",
            "/v1/events",
            Some(&t),
            JSON,
            vec![b' '; 300 << 10],
            413,
            "",
        ),
        (
            "bad token",
            "/v1/events",
            Some("aer_nope"),
            JSON,
            sample(),
            401,
            "bearer token",
        ),
        (
            "no token",
            "/v1/policy",
            None,
            JSON,
            b"{}".to_vec(),
            401,
            "bearer token",
        ),
        (
            "invalid policy",
            "/v1/policy",
            Some(&t),
            JSON,
            br#"{"min_score": 3, "allowlist": {"cidrs": ["x"]}}"#.to_vec(),
            400,
            "invalid policy",
        ),
        (
            "random bytes as a component",
            "/v1/plugins",
            Some(&t),
            None,
            b"this is not wasm at all".to_vec(),
            400,
            "not a WebAssembly binary",
        ),
        (
            "a component importing acme:evil",
            "/v1/plugins",
            Some(&t),
            None,
            wasm(plugins::EVIL_IMPORT),
            400,
            "acme:evil/x",
        ),
        (
            "empty upload",
            "/v1/plugins",
            Some(&t),
            None,
            vec![],
            400,
            "empty body",
        ),
        (
            "unknown route",
            "/v1/nothing",
            Some(&t),
            None,
            vec![],
            404,
            "no such route",
        ),
    ];
    for (what, path, token, ct, body, want, needle) in cases {
        let method = if path == "/v1/policy" {
            "PUT"
        } else if path == "/v1/nothing" {
            "GET"
        } else {
            "POST"
        };
        // A server that refuses a request before reading its body (an oversized body,
        // a bad token) may close the connection before the client has written all of
        // it; the client then sees a broken pipe instead of the answer. Retry those
        // (only on a transport error) a few times.
        let mut attempt = 0;
        let (status, answer) = loop {
            attempt += 1;
            match aer_tests::http(&d.base, method, path, token, ct, body.clone()) {
                Ok(r) => break r,
                Err(e) if !body.is_empty() && attempt < 10 => {
                    eprintln!("{what}: attempt {attempt}: {e}; retrying");
                }
                Err(e) => panic!("{what}: attempt {attempt}: {e}"),
            }
        };
        assert_eq!(status, want, "{what}: {answer}");
        if !needle.is_empty() {
            assert!(answer.to_string().contains(needle), "{what}: {answer}");
        }
    }
    let (_, policy_errors) = d.request(
        "PUT",
        "/v1/policy",
        Some(&t),
        JSON,
        br#"{"min_score": 3, "allowlist": {"cidrs": ["x"]}}"#.to_vec(),
    );
    let fields = aer_tests::error_fields(&policy_errors);
    assert_eq!(fields, ["min_score", "allowlist.cidrs[0]"]);
    assert_eq!(d.request("GET", "/healthz", None, None, vec![]).0, 200);
    let (status, _) = d.request("POST", "/v1/events", Some(&t), JSON, sample());
    assert_eq!(status, 200, "still ingesting after all that");
}

#[test]
fn over_the_rate_limit_ingest_answers_429_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        ingest: aer_host::config::IngestConfig {
            // The bucket holds 10 events and refills at 10 per second; a larger request
            // passes only on a full bucket, so the second one waits about 22 seconds.
            max_events_per_second: 10,
            ..aer_host::config::IngestConfig::default()
        },
        ..ServeConfig::default()
    };
    let d = TestDaemon::start(dir.path(), config);
    let t = d.tenant("acme");
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    let renamed = String::from_utf8(sample())
        .unwrap()
        .replace("\"5f0c", "\"6f0c")
        .into_bytes();
    let (status, err) = d.request("POST", "/v1/events", Some(&t), JSON, renamed);
    assert_eq!(status, 429, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("rate limit of 10 events per second"),
        "{err}"
    );
    assert_eq!(
        d.daemon.inbox.next_seq("acme").unwrap(),
        218,
        "nothing of the refused request stored"
    );
    // Another tenant has its own bucket.
    let other = d.tenant("globex");
    assert_eq!(
        d.request("POST", "/v1/events", Some(&other), JSON, sample())
            .0,
        200
    );
}

#[test]
fn over_the_inbox_bound_ingest_answers_429_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        ingest: aer_host::config::IngestConfig {
            max_inbox_events: 400,
            ..aer_host::config::IngestConfig::default()
        },
        ..ServeConfig::default()
    };
    let d = TestDaemon::start(dir.path(), config);
    let t = d.tenant("acme");
    // A detector that never gets past the first event keeps every event waiting.
    let (status, _) = d.request(
        "POST",
        "/v1/plugins",
        Some(&t),
        None,
        wasm(plugins::HOSTILE),
    );
    assert_eq!(status, 201);
    let (status, _) = d.request(
        "PUT",
        "/v1/plugins/hostile/config",
        Some(&t),
        JSON,
        br#"{"mode": "loop"}"#.to_vec(),
    );
    assert_eq!(status, 200);
    assert_eq!(
        d.request("POST", "/v1/plugins/hostile/enable", Some(&t), None, vec![])
            .0,
        200
    );
    let stuck = br#"{"id": "stuck", "time": 1, "action": "hostile", "actor": "U1"}"#.to_vec();
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), NDJSON, stuck).0,
        200
    );
    assert_eq!(
        d.request("POST", "/v1/events", Some(&t), JSON, sample()).0,
        200
    );
    let renamed = String::from_utf8(sample())
        .unwrap()
        .replace("\"5f0c", "\"6f0c")
        .into_bytes();
    let (status, err) = d.request("POST", "/v1/events", Some(&t), JSON, renamed);
    assert_eq!(status, 429, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("inbox full: 219 events waiting, the bound is 400"),
        "{err}"
    );
    assert_eq!(d.daemon.inbox.next_seq("acme").unwrap(), 219);
}

#[test]
fn the_example_configuration_is_the_defaults_and_parses() {
    let text = std::fs::read_to_string(repo_root().join("examples/aer.toml")).unwrap();
    let parsed = ServeConfig::parse(&text).expect("examples/aer.toml parses");
    assert_eq!(
        parsed,
        ServeConfig::default(),
        "examples/aer.toml documents the defaults"
    );
    let run = aer_tests::aer(&[
        "serve",
        "--config",
        repo_root().join("examples/aer.toml").to_str().unwrap(),
        "--print-config",
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        ServeConfig::parse(&run.out).unwrap(),
        ServeConfig::default()
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\ndeadline = 5\n").unwrap();
    let run = aer_tests::aer(&["serve", "--config", bad.to_str().unwrap(), "--print-config"]);
    assert_eq!(run.code, 2);
    assert!(run.err.contains("unknown field `deadline`"), "{}", run.err);
}
