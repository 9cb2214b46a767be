//! The whole service inside this process: a daemon on a loopback port (real HTTP, a
//! real sled database in a temporary directory) with a mock Slack Web API and Audit
//! Logs API ([`audit_log`]) beside it.
//! `aer demo` shows detection to response with it; `aer bench` measures the daemon
//! with it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

pub mod audit_log;

use crate::config::ServeConfig;
use crate::daemon::Daemon;
use crate::daemon::worker::Pipeline;

/// The token the mock Slack Audit Logs API answers.
pub const AUDIT_TOKEN: &str = "xoxp-demo-audit-token";

/// What the mock Slack API received: (user id, when), in arrival order.
pub type Resets = Arc<Mutex<Vec<(String, Instant)>>>;
/// Texts the mock Slack webhook `security` received.
pub type Hooks = Arc<Mutex<Vec<String>>>;
/// The other Web API calls the mock received: (method, JSON body, when).
pub type Calls = Arc<Mutex<Vec<(String, Value, Instant)>>>;

/// A mock Slack Web API: `admin.users.session.reset`, the other methods of the
/// response ladder (`admin.apps.restrict`, ...) and the `security` webhook, all
/// answering `ok` and recording what they got.
pub fn mock_slack(resets: Resets, hooks: Hooks, calls: Calls) -> axum::Router {
    use axum::Json;
    use axum::extract::Path;
    use axum::routing::post;
    axum::Router::new()
        .route(
            "/api/{method}",
            post(move |Path(method): Path<String>, Json(body): Json<Value>| {
                let calls = calls.clone();
                async move {
                    calls.lock().unwrap_or_else(|e| e.into_inner()).push((
                        method,
                        body,
                        Instant::now(),
                    ));
                    Json(json!({"ok": true}))
                }
            }),
        )
        .route(
            "/api/admin.users.session.reset",
            post(move |Json(body): Json<Value>| {
                let resets = resets.clone();
                async move {
                    let user = body["user_id"].as_str().unwrap_or("").to_owned();
                    resets
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((user, Instant::now()));
                    Json(json!({"ok": true}))
                }
            }),
        )
        .route(
            "/hooks/security",
            post(move |Json(body): Json<Value>| {
                let hooks = hooks.clone();
                async move {
                    let text = body["text"].as_str().unwrap_or("").to_owned();
                    hooks.lock().unwrap_or_else(|e| e.into_inner()).push(text);
                    Json(json!({"ok": true}))
                }
            }),
        )
}

/// A client of the daemon's API with one token.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    /// The token it calls with.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Call `method path` with `body` of content type `ct`; the answer's JSON (null when
    /// it has none). A status outside 2xx is an error naming the call.
    pub fn call(&self, method: &str, path: &str, ct: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let mut resp = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            "PUT" => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", ct)
                .send(&body[..]),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", ct)
                .send(&body[..]),
        }
        .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            bail!("{method} {path}: HTTP {status}: {v}");
        }
        Ok(v)
    }

    /// Upload a component, configure it (unless `config` is empty) and enable it
    /// (unless `enable` is false); returns its record.
    pub fn install(&self, component: Vec<u8>, config: &str, enable: bool) -> anyhow::Result<Value> {
        let rec = self.call("POST", "/v1/plugins", "application/wasm", component)?;
        let name = rec["name"].as_str().unwrap_or("").to_owned();
        if !config.is_empty() {
            self.call(
                "PUT",
                &format!("/v1/plugins/{name}/config"),
                "application/json",
                config.as_bytes().to_vec(),
            )?;
        }
        if enable {
            self.call(
                "POST",
                &format!("/v1/plugins/{name}/enable"),
                "application/json",
                vec![],
            )?;
        }
        Ok(rec)
    }

    /// Replace the tenant's decision policy.
    pub fn put_policy(&self, policy: &Value) -> anyhow::Result<Value> {
        self.call(
            "PUT",
            "/v1/policy",
            "application/json",
            policy.to_string().into_bytes(),
        )
    }

    /// Send NDJSON lines as one ingest request; returns the acknowledgement.
    pub fn ingest(&self, lines: &[String]) -> anyhow::Result<Value> {
        let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            body.push_str(l);
            body.push('\n');
        }
        self.call(
            "POST",
            "/v1/events",
            "application/x-ndjson",
            body.into_bytes(),
        )
    }
}

/// A daemon and a mock Slack API on loopback ports, served by a runtime of their own.
pub struct Loopback {
    /// The daemon.
    pub daemon: Arc<Daemon>,
    /// Base URL of the daemon's API.
    pub base: String,
    /// Base URL of the mock Slack API (`{slack}/api` is the Web API).
    pub slack: String,
    /// Session resets the mock Slack API received.
    pub resets: Resets,
    /// The mock Slack Audit Logs API (`{slack}/audit/v1`; token
    /// [`AUDIT_TOKEN`]).
    pub audit: audit_log::AuditLog,
    /// Webhook texts the mock Slack API received.
    pub hooks: Hooks,
    /// The other Web API calls it received (the response ladder's methods).
    pub calls: Calls,
    admin: String,
    agent: ureq::Agent,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    slack_stop: Option<tokio::sync::oneshot::Sender<()>>,
    slack_thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pipeline: Option<Pipeline>,
    data: PathBuf,
    config: ServeConfig,
    /// Leave the data directory when stopping (to start again on it).
    keep_data: bool,
}

/// A stopped [`Loopback`]'s data directory and settings, to start again on
/// ([`Stopped::start`]); the directory is removed when this is dropped unstarted.
pub struct Stopped {
    config: ServeConfig,
    admin: String,
    data: Option<PathBuf>,
}

impl Stopped {
    /// Where the daemon kept its data.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data.as_deref()
    }

    /// Open the daemon again on the same data directory (tenants, plugins, inbox and
    /// compiled-code cache as they were left), on new ports.
    pub fn start(mut self, pipeline: bool) -> anyhow::Result<Loopback> {
        let data = self.data.take().context("the data directory is gone")?;
        Loopback::open(self.config.clone(), data, self.admin.clone(), pipeline)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

impl Loopback {
    /// Start on a fresh data directory under the system's temporary directory, with
    /// `config` (its data directory replaced). With `pipeline`, the daemon runs its
    /// pipeline as `aer serve` does; without, only the API answers until
    /// [`Loopback::start_pipeline`] (so a backlog can be measured from its start).
    pub fn start(config: ServeConfig, pipeline: bool) -> anyhow::Result<Loopback> {
        let data = std::env::temp_dir().join(format!(
            "aer-loopback-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let admin = format!("loopback-admin-{:032x}", rand::random::<u128>());
        Loopback::open(config, data, admin, pipeline)
    }

    fn open(
        mut config: ServeConfig,
        data: PathBuf,
        admin: String,
        pipeline: bool,
    ) -> anyhow::Result<Loopback> {
        config.data_dir = data.clone();
        // Its mock Slack API and webhook receiver listen on loopback.
        config.outbound = crate::config::OutboundConfig::loopback();
        let daemon = Daemon::open(config.clone(), admin.clone())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let base = format!("http://{}", listener.local_addr()?);
        let resets: Resets = Arc::default();
        let hooks: Hooks = Arc::default();
        let calls: Calls = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = daemon.clone();
        let server = if pipeline {
            runtime.spawn(async move {
                crate::api::serve(served, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        } else {
            runtime.spawn(async move {
                axum::serve(listener, crate::api::router(served))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        // The mock Slack API stands for another machine: its own thread and runtime, so
        // when it answers (and what it records) does not wait on the daemon's threads.
        let slack_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        slack_listener.set_nonblocking(true)?;
        let slack = format!("http://{}", slack_listener.local_addr()?);
        let audit = audit_log::AuditLog::new(AUDIT_TOKEN);
        let app = mock_slack(resets.clone(), hooks.clone(), calls.clone()).merge(audit.router());
        let (slack_stop, slack_stopped) = tokio::sync::oneshot::channel::<()>();
        let slack_thread = std::thread::Builder::new()
            .name("mock-slack".into())
            .spawn(move || -> std::io::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(slack_listener)?;
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = slack_stopped.await;
                        })
                        .await
                })
            })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Loopback {
            daemon,
            base,
            slack,
            resets,
            audit,
            hooks,
            calls,
            admin,
            agent,
            runtime,
            stop: Some(stop),
            slack_stop: Some(slack_stop),
            slack_thread: Some(slack_thread),
            server: Some(server),
            pipeline: None,
            data,
            config,
            keep_data: false,
        })
    }

    /// Where the daemon keeps its data.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data
    }

    /// Start the pipeline of a daemon started without one.
    pub fn start_pipeline(&mut self) {
        if self.pipeline.is_none() {
            self.pipeline = Some(Pipeline::start(self.daemon.clone()));
        }
    }

    /// A client with the admin token.
    pub fn admin(&self) -> Api {
        self.client(&self.admin)
    }

    /// A client with `token`.
    pub fn client(&self, token: &str) -> Api {
        Api {
            base: self.base.clone(),
            token: token.to_owned(),
            agent: self.agent.clone(),
        }
    }

    /// Create a tenant; a client with its token.
    pub fn tenant(&self, name: &str) -> anyhow::Result<Api> {
        let created = self.admin().call(
            "POST",
            "/v1/tenants",
            "application/json",
            json!({ "name": name }).to_string().into_bytes(),
        )?;
        let token = created["token"]
            .as_str()
            .context("the tenant's token in the answer")?;
        Ok(self.client(token))
    }

    /// Stop serving (drain, let the pipeline finish its batch, flush) and remove the
    /// data directory.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.halt()
    }

    /// Stop serving as [`Loopback::stop`] does, keeping the data directory to start
    /// again on.
    pub fn stop_keeping_data(mut self) -> anyhow::Result<Stopped> {
        self.keep_data = true;
        self.halt()?;
        Ok(Stopped {
            config: self.config.clone(),
            admin: self.admin.clone(),
            data: Some(self.data.clone()),
        })
    }

    fn halt(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.server.take() {
            Some(server) => self.runtime.block_on(server).map_err(anyhow::Error::from),
            None => Ok(Ok(())),
        };
        self.pipeline.take();
        if let Some(stop) = self.slack_stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.slack_thread.take() {
            let _ = t.join();
        }
        let flushed = self.daemon.flush();
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
        result??;
        flushed?;
        Ok(())
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_service_starts_again_on_its_data_and_forgets_it_when_dropped() {
        let service = Loopback::start(ServeConfig::default(), false).expect("starts");
        let api = service.tenant("acme").expect("tenant");
        let token = api.token().to_owned();
        api.ingest(&[r#"{"id":"e1","time_ms":1,"action":"a","actor":"U1"}"#.to_owned()])
            .expect("ingests");
        let stopped = service.stop_keeping_data().expect("stops");
        let data = stopped.data_dir().expect("kept").to_owned();
        assert!(data.is_dir());

        let again = stopped.start(false).expect("starts again");
        // The tenant, its token and its inbox are as they were left.
        assert!(
            again
                .client(&token)
                .call("GET", "/v1/plugins", "", Vec::new())
                .is_ok()
        );
        assert_eq!(again.daemon.inbox.next_seq("acme").expect("reads"), 1);
        assert!(
            again
                .client("not-a-token")
                .call("GET", "/v1/plugins", "", Vec::new())
                .is_err()
        );

        // Dropped unstarted, a stopped service removes its data.
        let stopped = again.stop_keeping_data().expect("stops");
        drop(stopped);
        assert!(!data.exists());
    }
}
