//! Harness for AER's integration tests: paths of the components built from source by
//! `build.rs`, a shared engine, the CLI driven in-process, event builders, a daemon on
//! loopback and a mock Slack API.
#![allow(clippy::unwrap_used)] // test harness: a panic is the failure report

use std::sync::{Arc, OnceLock};

use aer_host::engine::{AerEngine, EngineConfig};
use aer_host::host_api::DryRunActions;
use aer_host::limits::Limits;
use aer_host::plugin::instance::InstanceSpec;
use aer_host::plugin::{DetectorInstance, Fault, LoadedPlugin};
use aer_host::store::StateStore;
use aer_wire::{Context, Entity, Event};

/// Paths of the built components, one constant per crate (e.g. [`plugins::HOSTILE`]).
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository root")
        .to_path_buf()
}

/// An engine with default limits, shared by tests that need nothing special.
pub fn engine() -> Arc<AerEngine> {
    static ENGINE: OnceLock<Arc<AerEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| AerEngine::new(EngineConfig::default()).expect("engine"))
        .clone()
}

/// What `aer replay` runs, built on `engine` with fresh in-memory state: `detectors`
/// (component, configuration), the decision engine under `policy`, and the built-in
/// responders `slack-session-reset` and `notify` with their effects recorded.
pub fn replay_pipeline(
    engine: &Arc<AerEngine>,
    tenant: &str,
    detectors: Vec<(&str, String)>,
    policy: aer_host::pipeline::policy::Policy,
) -> (
    Vec<DetectorInstance>,
    aer_host::pipeline::decide::DecisionEngine,
    aer_host::replay::Responders,
) {
    let state: Arc<dyn StateStore> = Arc::new(aer_host::store::MemoryStore::default());
    let mut responders = aer_host::replay::Responders::new(policy.responses.clone());
    let spec = |config: String, actions: Arc<dyn aer_host::host_api::ActionSink>| InstanceSpec {
        tenant: tenant.into(),
        name: None,
        config,
        state: state.clone(),
        actions,
    };
    let detectors = detectors
        .into_iter()
        .map(|(path, config)| {
            let actions = Arc::new(DryRunActions::default());
            DetectorInstance::new(engine, &load(engine, path), spec(config, actions)).unwrap()
        })
        .collect();
    for path in [plugins::SLACK_SESSION_RESET, plugins::NOTIFY] {
        let plugin = load(engine, path);
        let actions = responders.sink(&plugin.info().name);
        responders.push(
            aer_host::plugin::ResponderInstance::new(engine, &plugin, spec(String::new(), actions))
                .unwrap(),
        );
    }
    let decisions = aer_host::pipeline::decide::DecisionEngine::new(policy).unwrap();
    (detectors, decisions, responders)
}

/// An engine of its own with these limits.
pub fn engine_with(limits: Limits) -> Arc<AerEngine> {
    AerEngine::new(EngineConfig {
        limits,
        max_instances: 16,
        ..Default::default()
    })
    .expect("engine")
}

/// Load a built component. The tests share one engine, whose compiler slots other
/// tests' loads may hold for a while: a load refused for that is tried again, as a
/// client of the daemon would.
pub fn load(engine: &Arc<AerEngine>, path: &str) -> Arc<LoadedPlugin> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    try_load(engine, &bytes).unwrap_or_else(|e| panic!("load {path}: {e}"))
}

/// Load `bytes` as a component, trying again while the shared engine's compiler slots
/// are all taken (up to five minutes); its rejection otherwise.
pub fn try_load(
    engine: &Arc<AerEngine>,
    bytes: &[u8],
) -> Result<Arc<LoadedPlugin>, aer_host::plugin::validate::Rejection> {
    use aer_host::plugin::validate::Rejection;
    let loader = aer_host::plugin::Loader::new(engine.clone());
    let started = std::time::Instant::now();
    loop {
        match loader.load(bytes) {
            Err(Rejection::CompilerBusy { .. })
                if started.elapsed() < std::time::Duration::from_secs(300) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// A detector instance for tenant `t1`.
pub fn detector(
    engine: &Arc<AerEngine>,
    path: &str,
    config: &str,
    state: Arc<dyn StateStore>,
) -> Result<DetectorInstance, Fault> {
    let plugin = load(engine, path);
    DetectorInstance::new(
        engine,
        &plugin,
        InstanceSpec {
            tenant: "t1".into(),
            name: None,
            config: config.into(),
            state,
            actions: Arc::new(DryRunActions::default()),
        },
    )
}

/// What one in-process `aer` run printed and returned.
#[derive(Debug)]
pub struct CliRun {
    /// Exit code.
    pub code: u8,
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
}

/// Run `aer ARGS...` in-process, stdout not a terminal.
pub fn aer(args: &[&str]) -> CliRun {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = {
        let mut io = aer_host::cli::Io {
            out: &mut out,
            err: &mut err,
            out_is_terminal: false,
        };
        aer_host::cli::run_args(std::iter::once("aer").chain(args.iter().copied()), &mut io)
    };
    CliRun {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The JSON values of NDJSON output, one per line (panics on a line that is not JSON).
pub fn ndjson(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// An event of `action` by `user` at `time_ms`.
pub fn event(id: impl Into<String>, action: &str, user: &str, time_ms: i64) -> Event {
    Event {
        id: id.into(),
        time_ms,
        action: action.into(),
        actor: Entity {
            kind: "user".into(),
            id: user.into(),
            name: user.to_lowercase(),
            email: format!("{}@acme.example", user.to_lowercase()),
        },
        target: None,
        context: Context {
            ip: "198.51.100.7".into(),
            user_agent: "Mozilla/5.0".into(),
            session_id: "1".into(),
            ..Default::default()
        },
        details: Vec::new(),
    }
}

/// Poll `f` every 50 ms until it gives a value (or fail naming `what` after 60 s).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Minutes in milliseconds.
pub const MIN: i64 = 60_000;

/// A daemon serving its real HTTP API on a loopback port, on a data directory that
/// outlives restarts within a test.
pub struct TestDaemon {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The daemon's shared state (for white-box checks).
    pub daemon: Arc<aer_host::daemon::Daemon>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The admin token of test daemons.
pub const ADMIN: &str = "test-admin-token-0123456789abcdefghij";

impl TestDaemon {
    /// Start a daemon on `data_dir` with `config` (its data dir and address replaced),
    /// its effects allowed to reach the mock Slack API on loopback.
    pub fn start(data_dir: &std::path::Path, config: aer_host::config::ServeConfig) -> TestDaemon {
        let config = aer_host::config::ServeConfig {
            outbound: aer_host::config::OutboundConfig::loopback(),
            ..config
        };
        Self::start_as_configured(data_dir, config)
    }

    /// [`TestDaemon::start`] with `config`'s outbound rules as they are.
    pub fn start_as_configured(
        data_dir: &std::path::Path,
        mut config: aer_host::config::ServeConfig,
    ) -> TestDaemon {
        config.data_dir = data_dir.to_owned();
        let daemon = retry_locked(|| aer_host::daemon::Daemon::open(config.clone(), ADMIN.into()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = daemon.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                aer_host::api::serve(served, listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("serves");
            });
        });
        TestDaemon {
            base,
            daemon,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stop serving (graceful) and wait.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Send a request; returns the status and the JSON body (or the text as a JSON
    /// string, `null` when empty).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        http(&self.base, method, path, token, content_type, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Upload a component for the tenant of `token`, configure it (unless `config` is
    /// empty) and enable it; returns the plugin's name.
    pub fn install(&self, token: &str, path: &str, config: &str) -> String {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let (status, rec) = self.request("POST", "/v1/plugins", Some(token), None, bytes);
        assert_eq!(status, 201, "{rec}");
        let name = rec["name"].as_str().expect("name").to_owned();
        if !config.is_empty() {
            let path = format!("/v1/plugins/{name}/config");
            let (status, body) = self.request(
                "PUT",
                &path,
                Some(token),
                Some("application/json"),
                config.as_bytes().to_vec(),
            );
            assert_eq!(status, 200, "{body}");
        }
        let (status, body) = self.request(
            "POST",
            &format!("/v1/plugins/{name}/enable"),
            Some(token),
            None,
            vec![],
        );
        assert_eq!(status, 200, "{body}");
        name
    }

    /// Create a tenant; returns its token.
    pub fn tenant(&self, name: &str) -> String {
        let (status, body) = self.request(
            "POST",
            "/v1/tenants",
            Some(ADMIN),
            Some("application/json"),
            format!("{{\"name\": \"{name}\"}}").into_bytes(),
        );
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the mock Slack API and webhook receiver saw.
#[derive(Debug, Default, Clone)]
pub struct SlackCalls {
    /// (authorization header, user id) of every `admin.users.session.reset` request.
    pub resets: Vec<(String, String)>,
    /// The `X-AER-Idempotency-Key` of every reset request, in order.
    pub reset_keys: Vec<String>,
    /// JSON bodies posted to webhooks.
    pub webhooks: Vec<serde_json::Value>,
    /// (authorization header, JSON body) of every `chat.postMessage` request.
    pub posts: Vec<(String, serde_json::Value)>,
    /// (method, JSON body) of every call of the response ladder: the `admin.*` methods
    /// besides the reset, and `scim.Users.delete` with `{"id": ...}` for SCIM.
    pub admin: Vec<(String, serde_json::Value)>,
}

impl SlackCalls {
    /// The bodies of the ladder calls of `method`.
    pub fn of(&self, method: &str) -> Vec<serde_json::Value> {
        self.admin
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// How the mock checks a ladder method's arguments, as Slack documents them: the error
/// Slack answers, or none.
fn ladder_error(method: &str, body: &serde_json::Value) -> Option<&'static str> {
    let s = |k: &str| body[k].as_str().filter(|v| !v.is_empty());
    let one_place =
        |a: &str, b: &str| s(a).is_some() != body[b].as_str().is_some_and(|v| !v.is_empty());
    match method {
        "admin.users.session.invalidate" => {
            if s("user_id").is_none() || !body["session_id"].is_u64() {
                return Some("invalid_arguments");
            }
            (s("user_id") == Some("W0OWNER")).then_some("cannot_invalidate_primary_owner")
        }
        "admin.apps.restrict" => {
            if s("app_id").is_none() || !one_place("team_id", "enterprise_id") {
                return Some("invalid_arguments");
            }
            (s("app_id") == Some("A0MISSING")).then_some("invalid_app_id")
        }
        "admin.apps.uninstall" => {
            if s("app_id").is_none() || !one_place("team_ids", "enterprise_id") {
                return Some("invalid_arguments");
            }
            (s("app_id") == Some("A0MISSING")).then_some("app_not_found")
        }
        "admin.users.setRegular" => {
            if s("user_id").is_none() || s("team_id").is_none() {
                return Some("invalid_arguments");
            }
            (s("user_id") == Some("W0OWNER")).then_some("cannot_modify_primary_owner")
        }
        _ => Some("unknown_method"),
    }
}

/// A mock of Slack's Web API (`/api/admin.users.session.reset`, `/api/chat.postMessage`,
/// the ladder's `admin.*` methods with their arguments checked as Slack documents,
/// answering `invalid_arguments` otherwise; `/scim/v1/Users/{id}` for SCIM) and a
/// webhook receiver (`/hooks/{channel}`; `/hooks-moved/{channel}` redirects there)
/// on a loopback port. It answers 429 with
/// `Retry-After: 1` to the first `rate_limit_first` resets, `cannot_reset_primary_owner`
/// for user `W0OWNER`, `channel_not_found` for channel `C0MISSING`, and `ok` otherwise.
pub struct MockSlack {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    calls: Arc<std::sync::Mutex<SlackCalls>>,
    _served: Served,
}

impl MockSlack {
    /// Start it.
    pub fn start(rate_limit_first: usize) -> MockSlack {
        use axum::Json;
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;

        type Shared = (
            Arc<std::sync::Mutex<SlackCalls>>,
            Arc<std::sync::atomic::AtomicUsize>,
            usize,
        );
        async fn reset(
            State((calls, seen, limited)): State<Shared>,
            headers: HeaderMap,
            Json(body): Json<serde_json::Value>,
        ) -> axum::response::Response {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < limited {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("Retry-After", "1")],
                    "slow down",
                )
                    .into_response();
            }
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let user = body["user_id"].as_str().unwrap_or("").to_owned();
            let key = headers
                .get("x-aer-idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let mut c = calls.lock().unwrap();
            c.resets.push((auth, user.clone()));
            c.reset_keys.push(key);
            drop(c);
            if user == "W0OWNER" {
                return Json(
                    serde_json::json!({"ok": false, "error": "cannot_reset_primary_owner"}),
                )
                .into_response();
            }
            Json(serde_json::json!({"ok": true})).into_response()
        }
        async fn post_message(
            State((calls, _, _)): State<Shared>,
            headers: HeaderMap,
            Json(body): Json<serde_json::Value>,
        ) -> Json<serde_json::Value> {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let missing = body["channel"] == "C0MISSING";
            calls.lock().unwrap().posts.push((auth, body));
            Json(if missing {
                serde_json::json!({"ok": false, "error": "channel_not_found"})
            } else {
                serde_json::json!({"ok": true, "ts": "1794000000.000100"})
            })
        }
        async fn ladder(
            State((calls, _, _)): State<Shared>,
            Path(method): Path<String>,
            Json(body): Json<serde_json::Value>,
        ) -> Json<serde_json::Value> {
            let error = ladder_error(&method, &body);
            calls.lock().unwrap().admin.push((method, body));
            Json(match error {
                Some(e) => serde_json::json!({"ok": false, "error": e}),
                None => serde_json::json!({"ok": true}),
            })
        }
        /// SCIM 1.1 `DELETE /Users/{id}`: 200 and an empty body, or Slack's SCIM error
        /// shape with 404 for `U0GONE`.
        async fn scim_delete(
            State((calls, _, _)): State<Shared>,
            Path(id): Path<String>,
        ) -> axum::response::Response {
            calls
                .lock()
                .unwrap()
                .admin
                .push(("scim.Users.delete".into(), serde_json::json!({"id": id})));
            if id == "U0GONE" {
                return (
                    StatusCode::NOT_FOUND,
                    Json(serde_json::json!({"Errors": {"description": "User not found", "code": 404}})),
                )
                    .into_response();
            }
            StatusCode::OK.into_response()
        }
        async fn hook(
            State((calls, _, _)): State<Shared>,
            Path(_channel): Path<String>,
            Json(body): Json<serde_json::Value>,
        ) -> StatusCode {
            calls.lock().unwrap().webhooks.push(body);
            StatusCode::OK
        }

        let calls = Arc::new(std::sync::Mutex::new(SlackCalls::default()));
        let state: Shared = (
            calls.clone(),
            Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            rate_limit_first,
        );
        let app = axum::Router::new()
            .route("/api/admin.users.session.reset", axum::routing::post(reset))
            .route("/api/chat.postMessage", axum::routing::post(post_message))
            .route("/api/{method}", axum::routing::post(ladder))
            .route("/scim/v1/Users/{id}", axum::routing::delete(scim_delete))
            .route("/hooks/{channel}", axum::routing::post(hook))
            .route(
                "/hooks-moved/{channel}",
                axum::routing::post(|Path(channel): Path<String>| async move {
                    axum::response::Redirect::temporary(&format!("/hooks/{channel}"))
                }),
            )
            .with_state(state);
        let served = Served::start(app);
        MockSlack {
            base: served.base.clone(),
            calls,
            _served: served,
        }
    }

    /// Everything received so far.
    pub fn calls(&self) -> SlackCalls {
        self.calls.lock().unwrap().clone()
    }
}

/// Send an HTTP request to `base`; the status and the JSON body (or the text as a JSON
/// string, `null` when empty), or the transport error.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, serde_json::Value), ureq::Error> {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    http_with_headers(base, method, path, token, &headers, body)
}

/// [`http`] with any request headers (a body is sent with POST and PUT).
pub fn http_with_headers(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, serde_json::Value), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = match method {
        "GET" | "DELETE" => {
            let mut r = if method == "GET" {
                agent.get(&url)
            } else {
                agent.delete(&url)
            };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => {
            let mut r = match method {
                "POST" => agent.post(&url),
                "PUT" => agent.put(&url),
                other => panic!("method {other}"),
            };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            for (name, value) in headers {
                r = r.header(*name, *value);
            }
            r.send(&body[..])
        }
    };
    let mut resp = result?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    Ok((status, json))
}

/// Retry opening something backed by sled for up to 10 s. sled's background I/O
/// threads can hold the previous handle's file lock for a moment after it is dropped,
/// so an in-process restart may find the database still locked; a new process never
/// does.
pub fn retry_locked<T, E: std::fmt::Debug>(mut open: impl FnMut() -> Result<T, E>) -> T {
    let start = std::time::Instant::now();
    loop {
        match open() {
            Ok(v) => return v,
            Err(e)
                if start.elapsed() < std::time::Duration::from_secs(10)
                    && format!("{e:?}").contains("lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open: {e:?}"),
        }
    }
}

/// A router served on a loopback port from a thread of its own, until dropped.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Serve `app`.
    pub fn start(app: axum::Router) -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serves");
            });
        });
        Served {
            base,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The ids and times of `tenant`'s inbox events, in inbox order.
pub fn inbox_events(daemon: &aer_host::daemon::Daemon, tenant: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let events = daemon.inbox.read(tenant, from, 10_000).expect("inbox read");
        let mut w = aer_wire::BatchWriter::new();
        let mut any = false;
        for (seq, bytes) in events.iter() {
            w.push_encoded(bytes);
            from = seq + 1;
            any = true;
        }
        if !any {
            return out;
        }
        let batch = w.finish();
        for e in aer_wire::decode_batch(&batch).expect("decodes") {
            out.push((e.id.to_owned(), e.time_ms));
        }
    }
}

/// The fields named by an error answer's `errors` (a policy, a configuration, a
/// source), in order.
pub fn error_fields(answer: &serde_json::Value) -> Vec<String> {
    answer["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {answer}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A real `nats-server` with JetStream on a loopback port, its store in a directory of
/// its own: the binary `AER_NATS_SERVER` names, else `nats-server` on the `PATH`
/// (`./test.sh` and `.ci/run` install the pinned release).
pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl NatsServer {
    /// Start one and wait until it takes connections.
    pub fn start() -> NatsServer {
        let store = tempfile::tempdir().expect("store dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
            child: None,
        };
        server.run();
        server
    }

    fn binary() -> String {
        std::env::var("AER_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned())
    }

    fn run(&mut self) {
        let child = std::process::Command::new(Self::binary())
            .args(["--jetstream", "--addr", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--store_dir")
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install nats-server (./test.sh does) or set AER_NATS_SERVER",
                    Self::binary()
                )
            });
        self.child = Some(child);
        eventually("nats-server to take connections", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()
        });
    }

    /// CPU time the server has used so far (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .map_or(0.0, |c| process_cpu_seconds(c.id()))
    }

    /// Stop it (SIGKILL: nothing it has acknowledged may be lost) and start it again on
    /// the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real `aer serve` process (`binary`) on a loopback port, killed if dropped.
pub struct ServeProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServeProcess {
    /// Start `binary serve` on data directory `dir` with `config` (written beside the
    /// directory), the admin token [`ADMIN`]; returns once it prints its address.
    /// `CRASH_LOG=FILE` appends its log to FILE (at `CRASH_LOG_LEVEL`, else `warn`).
    pub fn spawn(
        binary: &std::path::Path,
        dir: &std::path::Path,
        config: &aer_host::config::ServeConfig,
    ) -> ServeProcess {
        use std::io::BufRead as _;
        let path = dir.with_extension("toml");
        std::fs::write(&path, config.to_toml()).expect("config written");
        let level = std::env::var("CRASH_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
        let mut child = std::process::Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir)
            .env("AER_ADMIN_TOKEN", ADMIN)
            .env("AER_LOG", level)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("daemon prints its address")
                .expect("stderr line");
            if let Some(addr) = line.strip_prefix("aer: listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stderr so the daemon never blocks on it.
        let log = std::env::var("CRASH_LOG").ok();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut f = log.map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("log file")
            });
            for l in lines.map_while(Result::ok) {
                if let Some(f) = f.as_mut() {
                    let _ = writeln!(f, "{l}");
                }
            }
        });
        ServeProcess { child, base }
    }

    /// CPU time the process has used so far (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }

    /// Stop it gracefully (SIGTERM) and wait.
    pub fn terminate(mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("reaped");
    }

    /// Kill it (SIGKILL) and wait.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServeProcess {
    /// A failing test must not leave its daemon running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `events` generic NDJSON lines in time order: 1,000 users downloading and logging in
/// over two days, and `attackers` of them downloading 60 files in four minutes once.
pub fn download_org(events: usize, attackers: usize) -> Vec<String> {
    let start: i64 = 1_767_603_600_000;
    let mut out = Vec::with_capacity(events);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for a in 0..attackers {
        let t0 = start + (a as i64) * 3_600_000;
        for i in 0..60 {
            out.push((
                t0 + i * 4_000,
                format!("U{:03}", a * 25),
                "file_downloaded",
                format!("atk-{a}-{i}"),
            ));
        }
    }
    let mut i = 0;
    while out.len() < events {
        let user = format!("U{:03}", next() % 1000);
        let t = start + (next() % (48 * 3_600_000)) as i64;
        let action = if next() % 3 == 0 {
            "user_login"
        } else {
            "file_downloaded"
        };
        out.push((t, user, action, format!("bg-{i}")));
        i += 1;
    }
    out.sort();
    out.into_iter()
        .map(|(t, user, action, id)| {
            format!(
                "{{\"id\":\"{id}\",\"time\":{t},\"action\":\"{action}\",\"actor\":\"{user}\"}}\n"
            )
        })
        .collect()
}

/// Create tenant `name` on the daemon at `base` (with the admin token); its token.
pub fn create_tenant(base: &str, name: &str) -> String {
    let (s, t) = http(
        base,
        "POST",
        "/v1/tenants",
        Some(ADMIN),
        Some("application/json"),
        serde_json::json!({"name": name}).to_string().into_bytes(),
    )
    .expect("tenant created");
    assert_eq!(s, 201, "{t}");
    t["token"].as_str().expect("token").to_owned()
}

/// Plugin `plugin`'s record (status, cursor, lag...) as the tenant of `token` reads it.
pub fn plugin_record(
    base: &str,
    token: &str,
    plugin: &str,
) -> Result<serde_json::Value, ureq::Error> {
    http(
        base,
        "GET",
        &format!("/v1/plugins/{plugin}"),
        Some(token),
        None,
        vec![],
    )
    .map(|(_, v)| v)
}

/// A benchmark's numeric argument `name` (`--name N`), else `default`.
pub fn bench_arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Create tenant `name` on the daemon at `base`, install and enable
/// `excessive-downloads` and `slack-session-reset`, and set an enforcing policy whose
/// Slack API is the mock at `slack_base`; the tenant's token.
pub fn set_up_responding_tenant(base: &str, name: &str, slack_base: &str) -> String {
    const JSON: Option<&str> = Some("application/json");
    let token = create_tenant(base, name);
    for path in [plugins::EXCESSIVE_DOWNLOADS, plugins::SLACK_SESSION_RESET] {
        let bytes = std::fs::read(path).expect("component");
        let (s, rec) =
            http(base, "POST", "/v1/plugins", Some(&token), None, bytes).expect("uploaded");
        assert_eq!(s, 201, "{rec}");
        let name = rec["name"].as_str().expect("name");
        let enable = format!("/v1/plugins/{name}/enable");
        let (s, body) = http(base, "POST", &enable, Some(&token), None, vec![]).expect("enabled");
        assert_eq!(s, 200, "{body}");
    }
    let policy = serde_json::json!({
        "mode": "enforce",
        "max_responses_per_hour": 1000,
        "responses": {"slack_api_url": format!("{slack_base}/api"), "slack_token": "xoxp-crash"}
    });
    let (s, body) = http(
        base,
        "PUT",
        "/v1/policy",
        Some(&token),
        JSON,
        policy.to_string().into_bytes(),
    )
    .expect("policy set");
    assert_eq!(s, 200, "{body}");
    token
}

/// CPU time process `pid` has used (user and system), in seconds (0 if unreadable).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (in parentheses, which may hold spaces).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
