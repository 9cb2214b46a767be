//! `aer demo`: the whole service on this machine. A daemon on a temporary data directory
//! and a loopback port, a mock Slack API beside it, a tenant, the built-in plugins
//! uploaded and enabled, the bundled sample audit log streamed in, and the path from
//! detection to decision to session reset shown with its measured latency.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use super::{EXIT_OK, Io};
use crate::config::ServeConfig;
use crate::daemon::Daemon;

const SAMPLE: &str = include_str!("../../../examples/data/sample-audit-log.json");
const ADMIN: &str = "demo-admin-token-not-secret";

/// Arguments of `aer demo`.
#[derive(Debug, Args)]
pub struct DemoCommand {
    /// Directory of the built plugin components (`./run.sh demo` builds them there).
    #[arg(long, default_value = "target/wasm-plugins/wasm32-wasip2/plugin")]
    pub plugins: PathBuf,
    /// Events per ingest request while streaming.
    #[arg(long, default_value_t = 10)]
    pub chunk: usize,
}

/// What the mock Slack API received: (user id, when).
type Resets = Arc<Mutex<Vec<(String, Instant)>>>;
type Hooks = Arc<Mutex<Vec<String>>>;

fn mock_slack(resets: Resets, hooks: Hooks) -> axum::Router {
    use axum::Json;
    use axum::routing::post;
    axum::Router::new()
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

struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    fn call(&self, method: &str, path: &str, ct: &str, body: Vec<u8>) -> anyhow::Result<Value> {
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
}

impl DemoCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let files = ["excessive_downloads", "slack_session_reset", "notify"]
            .map(|n| self.plugins.join(format!("{n}.wasm")));
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            bail!(
                "{} not found: build the plugins first (`./run.sh demo` does)",
                missing.display()
            );
        }
        let data = std::env::temp_dir().join(format!("aer-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let config = ServeConfig {
            data_dir: data.clone(),
            ..ServeConfig::default()
        };
        let daemon = Daemon::open(config, ADMIN.into())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let slack_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let base = format!("http://{}", listener.local_addr()?);
        let slack = format!("http://{}", slack_listener.local_addr()?);
        let resets: Resets = Arc::default();
        let hooks: Hooks = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = daemon.clone();
        let server = runtime.spawn(async move {
            crate::api::serve(served, listener, async {
                let _ = stop_rx.await;
            })
            .await
        });
        runtime.spawn(
            axum::serve(slack_listener, mock_slack(resets.clone(), hooks.clone())).into_future(),
        );

        writeln!(
            io.out,
            "AER demo: daemon on {base} (data in {}), mock Slack API on {slack}",
            data.display()
        )?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let admin = Api {
            base: base.clone(),
            token: ADMIN.into(),
            agent: agent.clone(),
        };
        let created = admin.call(
            "POST",
            "/v1/tenants",
            "application/json",
            br#"{"name": "acme"}"#.to_vec(),
        )?;
        let api = Api {
            base: base.clone(),
            token: created["token"].as_str().unwrap_or("").to_owned(),
            agent,
        };
        for (file, config) in files.iter().zip([
            "",
            r#"{"notify_channel": "security"}"#,
            r#"{"channel": "security"}"#,
        ]) {
            let rec = api.call(
                "POST",
                "/v1/plugins",
                "application/wasm",
                std::fs::read(file)?,
            )?;
            let name = rec["name"].as_str().unwrap_or("").to_owned();
            if !config.is_empty() {
                api.call(
                    "PUT",
                    &format!("/v1/plugins/{name}/config"),
                    "application/json",
                    config.as_bytes().to_vec(),
                )?;
            }
            api.call(
                "POST",
                &format!("/v1/plugins/{name}/enable"),
                "application/json",
                vec![],
            )?;
            writeln!(
                io.out,
                "uploaded and enabled {name} {} ({})",
                rec["active"].as_str().unwrap_or(""),
                rec["kind"].as_str().unwrap_or("")
            )?;
        }
        let policy = json!({
            "mode": "enforce",
            "allowlist": {"users": ["W04DAVE"]},
            "internal_domains": ["acme.example"],
            "responses": {
                "slack_api_url": format!("{slack}/api"),
                "slack_token": "xoxp-demo-token",
                "webhooks": {"security": format!("{slack}/hooks/security")}
            }
        });
        api.call(
            "PUT",
            "/v1/policy",
            "application/json",
            policy.to_string().into_bytes(),
        )?;
        writeln!(
            io.out,
            "policy: enforce; W04DAVE allowlisted; acme.example is internal; resets go to the mock Slack API"
        )?;

        // Generated background traffic plus the sample (which holds the attack), streamed
        // in event-time order; remember when each event was acknowledged.
        let mut stream: Vec<(i64, String, String)> = Vec::new();
        let sample: Value = serde_json::from_str(SAMPLE)?;
        for e in sample["entries"].as_array().into_iter().flatten() {
            let parsed = crate::ingest::parse_value(e.clone())
                .map_err(|r| anyhow::anyhow!("bundled sample: {r}"))?;
            stream.push((parsed.time_ms, parsed.id, e.to_string()));
        }
        let generated = background_traffic(2_000);
        let n_generated = generated.len();
        stream.extend(generated);
        stream.sort();
        writeln!(
            io.out,
            "streaming {} events ({} generated for 60 ordinary users, {} from the bundled sample with the attack), {} per request ...",
            stream.len(),
            n_generated,
            stream.len() - n_generated,
            self.chunk
        )?;
        let mut acked: std::collections::HashMap<String, Instant> =
            std::collections::HashMap::new();
        for chunk in stream.chunks(self.chunk.max(1)) {
            let body: String = chunk
                .iter()
                .map(|(_, _, line)| format!("{line}\n"))
                .collect();
            api.call(
                "POST",
                "/v1/events",
                "application/x-ndjson",
                body.into_bytes(),
            )?;
            let now = Instant::now();
            for (_, id, _) in chunk {
                acked.insert(id.clone(), now);
            }
            std::thread::sleep(Duration::from_millis(2));
        }

        // Wait for the decisions and their responses.
        let start = Instant::now();
        let (findings, decisions) = loop {
            let f = api.call("GET", "/v1/findings", "", vec![])?;
            let d = api.call("GET", "/v1/decisions", "", vec![])?;
            let a = api.call("GET", "/v1/actions", "", vec![])?;
            let (f, d, a) = (arr(&f["items"]), arr(&d["items"]), arr(&a["items"]));
            let responds = d.iter().filter(|x| x["outcome"] == "respond").count();
            let done = !f.is_empty()
                && d.len() == f.len()
                && a.len() >= 3 * responds
                && a.iter().all(|x| x["status"] != "pending");
            if done {
                break (f, d);
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the pipeline did not finish within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        writeln!(io.out)?;
        for f in &findings {
            writeln!(
                io.out,
                "finding   {} {} {}: {}",
                f["time"].as_str().unwrap_or(""),
                f["rule"].as_str().unwrap_or(""),
                f["output_fields"]["subject"].as_str().unwrap_or(""),
                f["output"].as_str().unwrap_or("")
            )?;
        }
        for d in &decisions {
            writeln!(
                io.out,
                "decision  {} {}: {}",
                d["subject"].as_str().unwrap_or(""),
                d["outcome"].as_str().unwrap_or(""),
                d["reason"].as_str().unwrap_or("")
            )?;
        }
        let got = resets.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (user, at) in &got {
            writeln!(io.out, "Slack API admin.users.session.reset user_id={user}")?;
            let evidence = findings
                .iter()
                .find(|f| f["output_fields"]["subject"] == user.as_str())
                .and_then(|f| f["event_ids"][0].as_str().map(str::to_owned));
            if let Some(ack) = evidence.and_then(|id| acked.get(&id).copied()) {
                writeln!(
                    io.out,
                    "detection to response: {:.1} ms from the triggering event's acknowledgement to the session reset at Slack",
                    at.saturating_duration_since(ack).as_secs_f64() * 1e3
                )?;
            }
        }
        for text in hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            writeln!(
                io.out,
                "webhook security: {}",
                text.lines().next().unwrap_or("")
            )?;
        }
        let _ = stop_tx.send(());
        runtime.block_on(server)??;
        drop(daemon);
        let _ = std::fs::remove_dir_all(&data);
        Ok(EXIT_OK)
    }
}

/// `n` ordinary Slack audit entries: 60 users logging in and downloading a file now and
/// then over the sample's day (seeded, so every demo streams the same traffic).
fn background_traffic(n: usize) -> Vec<(i64, String, String)> {
    let day_start: i64 = 1_767_603_600; // 2026-01-05T09:00:00Z
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let user = next() % 60;
            let t = day_start + (next() % (9 * 3_600)) as i64;
            let action = if next() % 4 == 0 { "user_login" } else { "file_downloaded" };
            let id = format!("gen-{i:05}");
            let entry = json!({
                "id": id,
                "date_create": t,
                "action": action,
                "actor": {"type": "user", "user": {
                    "id": format!("W1{user:04}"), "name": format!("user{user}"),
                    "email": format!("user{user}@acme.example"), "team": "T0ACME"}},
                "context": {"ua": "Mozilla/5.0 Slack/4.36", "ip_address": format!("198.51.100.{}", 20 + user),
                            "session_id": 2_000 + user,
                            "location": {"type": "enterprise", "id": "E0ACME", "name": "Acme", "domain": "acme"}},
            });
            (t * 1000, id, entry.to_string())
        })
        .collect()
}

fn arr(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}
