//! The operator's side: an HTTP server no client can hold open, metrics and tenant
//! administration behind the operator's tokens, and the quotas on what a tenant
//! uploads. Each test names the threat it pins (docs/threats.md).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aer_host::config::{HttpConfig, QuotaConfig, ServeConfig};
use aer_tests::{ADMIN, TestDaemon, plugins, repo_root};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

fn http_config(http: HttpConfig) -> ServeConfig {
    ServeConfig {
        http,
        ..ServeConfig::default()
    }
}

fn connect(d: &TestDaemon) -> TcpStream {
    let s = TcpStream::connect(d.base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the server sends until it closes the connection (or 10 s pass, which
/// fails the test: the bound did not hold).
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            String::from_utf8_lossy(&out).into_owned()
        }
        Err(e) => panic!("the server kept the connection open: {e}"),
    }
}

// Threat: the HTTP server can be held open. A trickled request stayed open forever, and
// idle connections were never closed.
#[test]
fn trickled_headers_and_idle_connections_are_closed_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        http_config(HttpConfig {
            header_timeout_ms: 300,
            ..HttpConfig::default()
        }),
    );
    let started = Instant::now();
    let mut idle = connect(&d);
    let mut trickle = connect(&d);
    let writer = {
        let mut t = trickle.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in b"GET /healthz HTTP/1.1\r\nx-slow: " {
                if t.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    read_until_closed(&mut trickle);
    read_until_closed(&mut idle);
    writer.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A prompt client is served as before.
    assert_eq!(d.request("GET", "/healthz", None, None, vec![]).0, 200);
}

// Threat: the HTTP server can be held open by a half-sent body.
#[test]
fn a_trickled_body_is_answered_408_at_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        http_config(HttpConfig {
            body_timeout_ms: 300,
            ..HttpConfig::default()
        }),
    );
    let t = d.tenant("acme");
    let mut s = connect(&d);
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {t}\r\n\
         content-type: application/x-ndjson\r\ncontent-length: 1000\r\n\r\n{{\"id\""
    )
    .unwrap();
    let answer = read_until_closed(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

// Threat: the HTTP server can be held open. 1,100 idle sockets exhausted file
// descriptors and blocked every tenant.
#[test]
fn connections_past_the_cap_are_answered_503_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        http_config(HttpConfig {
            max_connections: 4,
            ..HttpConfig::default()
        }),
    );
    let held: Vec<TcpStream> = (0..4).map(|_| connect(&d)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = connect(&d);
    let answer = read_until_closed(&mut fifth);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    // Room again once they are gone.
    let start = Instant::now();
    while aer_tests::http(&d.base, "GET", "/healthz", None, None, vec![])
        .map_or(true, |(status, _)| status != 200)
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Threat: the HTTP server can be held open. SIGTERM waited forever on a half-sent
// request.
#[test]
fn shutdown_ends_within_its_deadline_despite_a_half_sent_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        http_config(HttpConfig {
            header_timeout_ms: 60_000,
            shutdown_deadline_ms: 500,
            ..HttpConfig::default()
        }),
    );
    let mut half = connect(&d);
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    d.stop();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A request from a given local address (any of 127.0.0.0/8 reaches the daemon).
fn from(addr: &str, d: &TestDaemon, path: &str, token: &str) -> u16 {
    let target: std::net::SocketAddr = d.base.trim_start_matches("http://").parse().unwrap();
    let local: std::net::SocketAddr = format!("{addr}:0").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(local).unwrap();
        socket.connect(target).await.unwrap()
    });
    let mut s = stream.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let answer = read_until_closed(&mut s);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer}"))
}

// Threat: an outsider guesses tokens. Failed authentication was neither limited nor
// logged.
#[test]
fn failed_authentication_is_limited_per_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        http_config(HttpConfig {
            auth_failures_per_minute: 3,
            ..HttpConfig::default()
        }),
    );
    let t = d.tenant("acme");
    for _ in 0..3 {
        assert_eq!(from("127.0.0.2", &d, "/v1/plugins", "aer_guess"), 401);
    }
    // Blocked now, even with a good token; other addresses are not.
    assert_eq!(from("127.0.0.2", &d, "/v1/plugins", "aer_guess"), 429);
    assert_eq!(from("127.0.0.2", &d, "/v1/plugins", &t), 429);
    assert_eq!(from("127.0.0.3", &d, "/v1/plugins", &t), 200);
}

// Threat: operators lack the basic controls. `/metrics` was unauthenticated and listed
// every tenant's name and counts.
#[test]
fn metrics_need_the_metrics_or_admin_token() {
    let metrics_token = "metrics-reader-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        http_config(HttpConfig {
            metrics_token: Some(metrics_token.into()),
            ..HttpConfig::default()
        }),
    );
    let t = d.tenant("acme");
    let status = |token: Option<&str>| d.request("GET", "/metrics", token, None, vec![]).0;
    assert_eq!(status(None), 401);
    assert_eq!(status(Some(&t)), 401);
    assert_eq!(status(Some(metrics_token)), 200);
    assert_eq!(status(Some(ADMIN)), 200);
}

// Threat: operators lack the basic controls: no way to list, suspend or delete a tenant
// or rotate its token.
#[test]
fn the_operator_lists_rotates_suspends_and_deletes_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let old = d.tenant("acme");
    let other = d.tenant("other");
    d.install(&old, plugins::EXCESSIVE_DOWNLOADS, "");
    let sample = std::fs::read(repo_root().join("examples/data/sample-audit-log.json")).unwrap();
    assert_eq!(
        d.request("POST", "/v1/events", Some(&old), JSON, sample).0,
        200
    );

    let (status, list) = d.request("GET", "/v1/admin/tenants", Some(ADMIN), None, vec![]);
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "other"]);
    assert_eq!(
        d.request("GET", "/v1/admin/tenants", Some(&old), None, vec![])
            .0,
        401,
        "a tenant token is not the operator's"
    );

    // Rotate: the old token stops at once.
    let (status, rotated) = d.request(
        "POST",
        "/v1/admin/tenants/acme/token",
        Some(ADMIN),
        None,
        vec![],
    );
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&old), None, vec![]).0,
        401
    );
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&new), None, vec![]).0,
        200
    );

    // Suspend: refused (403) until resumed.
    let post = |path: &str| d.request("POST", path, Some(ADMIN), None, vec![]).0;
    assert_eq!(post("/v1/admin/tenants/acme/suspend"), 200);
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&new), None, vec![]).0,
        403
    );
    assert_eq!(post("/v1/admin/tenants/acme/resume"), 200);
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&new), None, vec![]).0,
        200
    );
    assert_eq!(post("/v1/admin/tenants/ghost/suspend"), 404);

    // Wait for the pipeline to have made state, then delete the tenant with its data.
    let start = Instant::now();
    while d.daemon.state_bytes("acme").unwrap() == 0 {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = d.request(
        "DELETE",
        "/v1/admin/tenants/acme",
        Some(ADMIN),
        None,
        vec![],
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&new), None, vec![]).0,
        401
    );
    assert_eq!(d.daemon.state_bytes("acme").unwrap(), 0);
    assert_eq!(
        d.daemon.inbox.next_seq("acme").unwrap(),
        0,
        "the inbox is gone"
    );
    let artifacts = std::fs::read_dir(dir.path().join("artifacts"))
        .unwrap()
        .count();
    assert_eq!(artifacts, 0, "no tenant uses the component any more");
    // The other tenant is untouched; the name can be used afresh.
    assert_eq!(
        d.request("GET", "/v1/plugins", Some(&other), None, vec![])
            .0,
        200
    );
    let fresh = d.tenant("acme");
    let (_, findings) = d.request("GET", "/v1/findings", Some(&fresh), None, vec![]);
    assert_eq!(findings["items"], json!([]));
}

/// `bytes` with a custom section appended: the same component, another hash.
fn variant(bytes: &[u8], i: u8) -> Vec<u8> {
    let name = b"aer-test";
    let mut out = bytes.to_vec();
    out.extend_from_slice(&[0, (1 + name.len() + 1) as u8, name.len() as u8]);
    out.extend_from_slice(name);
    out.push(i);
    out
}

// Threat: some resources have no quota. 20 versions x 16 MiB were accepted, and
// deleting the plugin left the files.
#[test]
fn versions_are_pruned_and_artifact_bytes_are_bounded() {
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        quotas: QuotaConfig {
            max_versions: 3,
            max_artifact_bytes: 5 * variant(&bytes, 0).len() as u64,
            ..QuotaConfig::default()
        },
        ..ServeConfig::default()
    };
    let d = TestDaemon::start(dir.path(), config);
    let t = d.tenant("acme");
    let upload = |name: &str, i: u8| -> (u16, Value) {
        let path = format!("/v1/plugins?name={name}&version=0.1.{i}");
        d.request("POST", &path, Some(&t), None, variant(&bytes, i))
    };
    let files = || {
        std::fs::read_dir(dir.path().join("artifacts"))
            .unwrap()
            .count()
    };
    for i in 0..5 {
        let (status, rec) = upload("p", i);
        assert_eq!(status, 201, "{rec}");
    }
    let (_, rec) = d.request("GET", "/v1/plugins/p", Some(&t), None, vec![]);
    let kept: Vec<&str> = rec["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["0.1.2", "0.1.3", "0.1.4"]);
    assert_eq!(files(), 3, "pruned versions' files are removed");
    // 3 kept + 2 of another plugin reach the byte quota; one more does not fit.
    assert_eq!(upload("q", 10).0, 201);
    assert_eq!(upload("q", 11).0, 201);
    let (status, body) = upload("q", 12);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("would weigh"),
        "{body}"
    );
    assert_eq!(files(), 5, "nothing stored for the refused upload");
    assert_eq!(
        d.request("DELETE", "/v1/plugins/p", Some(&t), None, vec![])
            .0,
        204
    );
    assert_eq!(files(), 2, "a deleted plugin's files go with it");
}
