//! `aer demo`: the whole service on this machine. A daemon on a temporary data directory
//! and a loopback port, a mock Slack API beside it, a tenant, the built-in plugins
//! uploaded and enabled, the bundled sample audit log streamed in, and the path from
//! detection to decision to session reset shown with its measured latency; then a
//! second tenant has the daemon pull the same history, with a malicious OAuth app in
//! it, from a mock Slack Audit Logs API: the app's restriction waits for a person's
//! approval, is approved over the API, and is performed at the mock Slack API.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::{Value, json};

use super::{EXIT_OK, Io};
use crate::config::ServeConfig;
use crate::loopback::Loopback;

const SAMPLE: &str = include_str!("../../../examples/data/sample-audit-log.json");

/// Arguments of `aer demo`.
#[derive(Debug, Args)]
pub struct DemoCommand {
    /// Directory of the built plugin components (`./run.sh demo` builds them there).
    #[arg(long, default_value = "target/wasm-plugins/wasm32-wasip2/plugin")]
    pub plugins: PathBuf,
    /// Events per ingest request while streaming.
    #[arg(long, default_value_t = 10)]
    pub chunk: usize,
    /// Stop the daemon when the demo is done. Without it, on a terminal, the daemon
    /// stays up for the console until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

impl DemoCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let files = [
            "excessive_downloads",
            "slack_session_reset",
            "notify",
            "risky_app",
            "slack_app_restrict",
        ]
        .map(|n| self.plugins.join(format!("{n}.wasm")));
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            bail!(
                "{} not found: build the plugins first (`./run.sh demo` does)",
                missing.display()
            );
        }
        // The mock Slack API is on this machine: its audit log may be read fast.
        let mut config = ServeConfig::default();
        config.sources.max_calls_per_minute = 6_000;
        let service = Loopback::start(config, true)?;
        let (base, slack) = (&service.base, &service.slack);
        writeln!(
            io.out,
            "AER demo: daemon on {base} (data in {}), mock Slack API on {slack}",
            service.data_dir().display()
        )?;
        let api = service.tenant("acme")?;
        for (file, config) in files[..3].iter().zip([
            "",
            r#"{"notify_channel": "security"}"#,
            r#"{"channel": "security"}"#,
        ]) {
            let rec = api.install(std::fs::read(file)?, config, true)?;
            writeln!(
                io.out,
                "uploaded and enabled {} {} ({})",
                rec["name"].as_str().unwrap_or(""),
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
        api.put_policy(&policy)?;
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
        let got = service
            .resets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
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
        for text in service
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            writeln!(
                io.out,
                "webhook security: {}",
                text.lines().next().unwrap_or("")
            )?;
        }
        let globex = pull(io, &service, &files, &stream)?;
        console(io, &service, &api, &globex)?;
        if !self.exit && io.out_is_terminal && std::io::stdin().is_terminal() {
            writeln!(
                io.out,
                "the daemon stays up for the console: Ctrl-C stops it (`aer demo --exit` does not wait)"
            )?;
            io.out.flush()?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(tokio::signal::ctrl_c())?;
        }
        service.stop()?;
        Ok(EXIT_OK)
    }
}

/// A second tenant has the daemon pull the same history, plus a malicious OAuth app's
/// install and downloads, from the mock Slack Audit Logs API: the source walks it page
/// by page and the same decisions follow; the app's restriction waits in a review until
/// it is approved over the API, and is then performed at the mock Slack API.
fn pull(
    io: &mut Io<'_>,
    service: &Loopback,
    files: &[PathBuf; 5],
    stream: &[(i64, String, String)],
) -> anyhow::Result<crate::loopback::Api> {
    let api = service.tenant("globex")?;
    for (file, config) in [
        (&files[0], ""),
        (&files[3], ""),
        (&files[4], r#"{"uninstall": false}"#),
    ] {
        api.install(std::fs::read(file)?, config, true)?;
    }
    api.put_policy(&json!({
        "mode": "enforce",
        "allowlist": {"users": ["W04DAVE"]},
        "internal_domains": ["acme.example"],
        "responses": {
            "slack_api_url": format!("{}/api", service.slack),
            "slack_token": "xoxp-demo-token",
            "slack_org_id": "E0GLOBEX",
            "webhooks": {"security": format!("{}/hooks/security", service.slack)}
        }
    }))?;
    let mut entries = Vec::with_capacity(stream.len());
    for (_, _, line) in stream {
        entries.push(serde_json::from_str::<Value>(line)?);
    }
    entries.extend(app_exfiltration());
    service.audit.add(entries);
    let start = stream.first().map_or(0, |(t, _, _)| t.div_euclid(1_000));
    let source = json!({
        "url": format!("{}/audit/v1", service.slack),
        "token": crate::loopback::AUDIT_TOKEN,
        "start": start,
        "page_size": 200,
        "calls_per_minute": 6_000,
    });
    writeln!(io.out)?;
    writeln!(
        io.out,
        "globex has the daemon pull its audit log: PUT /v1/sources/slack-audit (start {})",
        chrono::DateTime::from_timestamp(start, 0).map_or(String::new(), |t| t.to_rfc3339())
    )?;
    api.call(
        "PUT",
        "/v1/sources/slack-audit",
        "application/json",
        source.to_string().into_bytes(),
    )?;
    let begun = Instant::now();
    let (status, decisions) = loop {
        let s = api.call("GET", "/v1/sources/slack-audit", "", vec![])?;
        let f = api.call("GET", "/v1/findings", "", vec![])?;
        let d = api.call("GET", "/v1/decisions", "", vec![])?;
        let (f, d) = (arr(&f["items"]), arr(&d["items"]));
        if s["status"]["state"] == "caught_up" && !f.is_empty() && d.len() == f.len() {
            break (s, d);
        }
        if begun.elapsed() > Duration::from_secs(60) {
            bail!("the audit log source did not catch up within 60 s: {s}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let calls = service.audit.calls();
    writeln!(
        io.out,
        "pulled {} entries in {} calls to the mock Audit Logs API (newest-first pages, oldest/latest on every page, {} with a cursor); watermark {}, caught up",
        status["status"]["entries"],
        calls.len(),
        calls
            .iter()
            .filter(|c| c.query.contains_key("cursor"))
            .count(),
        status["watermark_time"].as_str().unwrap_or("")
    )?;
    for d in &decisions {
        writeln!(
            io.out,
            "globex decision {} {}: {}",
            d["subject"].as_str().unwrap_or(""),
            d["outcome"].as_str().unwrap_or(""),
            d["reason"].as_str().unwrap_or("")
        )?;
    }
    approve(io, service, &api)?;
    Ok(api)
}

/// Where the console is, and the tokens to sign in to it with; globex's second app
/// waits for approval there.
fn console(
    io: &mut Io<'_>,
    service: &Loopback,
    acme: &crate::loopback::Api,
    globex: &crate::loopback::Api,
) -> anyhow::Result<()> {
    let begun = Instant::now();
    let waiting = loop {
        let r = globex.call(
            "GET",
            "/v1/reviews?state=open&subject=A0NOTESYNC",
            "",
            vec![],
        )?;
        if let Some(id) = arr(&r["items"]).first().and_then(|r| r["id"].as_u64()) {
            break id;
        }
        if begun.elapsed() > Duration::from_secs(30) {
            bail!("no review opened for A0NOTESYNC within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writeln!(io.out)?;
    writeln!(io.out, "console: {}/console", service.base)?;
    writeln!(
        io.out,
        "  sign in as acme with its token:   {}",
        acme.token()
    )?;
    writeln!(
        io.out,
        "  sign in as globex with its token: {} (review {waiting} for app A0NOTESYNC waits for approval there)",
        globex.token()
    )?;
    Ok(())
}

/// Show the review the app's restriction waits in, approve it over the API, and show
/// the restriction at the mock Slack API.
fn approve(io: &mut Io<'_>, service: &Loopback, api: &crate::loopback::Api) -> anyhow::Result<()> {
    let begun = Instant::now();
    let review = loop {
        let r = api.call("GET", "/v1/reviews?state=open", "", vec![])?;
        if let Some(r) = arr(&r["items"]).into_iter().find(|r| {
            r["subject"] == "A0PDFHELPER"
                && arr(&r["effects"])
                    .iter()
                    .any(|e| e["action"] == "restrict-app")
        }) {
            break r;
        }
        if begun.elapsed() > Duration::from_secs(30) {
            bail!("no review opened for the app within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = review["id"].as_u64().unwrap_or(0);
    let held: Vec<String> = arr(&review["effects"])
        .iter()
        .filter(|e| e["status"] == "awaiting_approval")
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or("")
            )
        })
        .collect();
    let restricted = |calls: &crate::loopback::Calls| {
        calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(m, _, _)| m == "admin.apps.restrict")
            .map(|(_, b, _)| b.clone())
            .collect::<Vec<_>>()
    };
    writeln!(io.out)?;
    writeln!(
        io.out,
        "review {id} ({}) for {}: {}; waiting for approval: {} (calls to admin.apps.restrict so far: {})",
        review["kind"].as_str().unwrap_or(""),
        review["subject"].as_str().unwrap_or(""),
        review["reason"].as_str().unwrap_or(""),
        held.join(", "),
        restricted(&service.calls).len()
    )?;
    let approved = api.call(
        "POST",
        &format!("/v1/reviews/{id}/approve"),
        "application/json",
        json!({"by": "demo-analyst"}).to_string().into_bytes(),
    )?;
    writeln!(
        io.out,
        "POST /v1/reviews/{id}/approve by demo-analyst: {}",
        approved["state"].as_str().unwrap_or("")
    )?;
    let begun = Instant::now();
    let body = loop {
        if let Some(b) = restricted(&service.calls).first() {
            break b.clone();
        }
        if begun.elapsed() > Duration::from_secs(30) {
            bail!("the approved restriction did not reach the mock Slack API within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writeln!(io.out, "Slack API admin.apps.restrict {body}")?;
    Ok(())
}

/// An unapproved app installed with broad scopes by a user, then downloading files
/// through the user's grant (after the sample's working day); and a second unapproved
/// app, whose review is left for the console.
fn app_exfiltration() -> Vec<Value> {
    let t0: i64 = 1_767_639_600; // 2026-01-05T19:00:00Z
    let actor = json!({"type": "user", "user": {"id": "W07ERIN", "name": "erin",
                       "email": "erin@acme.example", "team": "T0ACME"}});
    let mut out = vec![json!({
        "id": "demo-app-install", "date_create": t0, "action": "app_installed", "actor": actor,
        "entity": {"type": "app", "app": {"id": "A0PDFHELPER", "name": "PDF Helper",
                   "is_directory_approved": false, "scopes": ["files:read", "chat:write"]}},
        "context": {"ua": "Mozilla/5.0", "ip_address": "198.51.100.77", "session_id": 7007,
                    "location": {"type": "enterprise", "id": "E0ACME", "name": "Acme", "domain": "acme"}},
    })];
    out.push(json!({
        "id": "demo-app-install-2", "date_create": t0 + 600, "action": "app_installed",
        "actor": {"type": "user", "user": {"id": "W03CAROL", "name": "carol",
                  "email": "carol@acme.example", "team": "T0ACME"}},
        "entity": {"type": "app", "app": {"id": "A0NOTESYNC", "name": "Notes Sync",
                   "is_directory_approved": false, "scopes": ["files:read", "channels:history"]}},
        "context": {"ua": "Mozilla/5.0", "ip_address": "198.51.100.78", "session_id": 7008,
                    "location": {"type": "enterprise", "id": "E0ACME", "name": "Acme", "domain": "acme"}},
    }));
    for i in 0..40 {
        out.push(json!({
            "id": format!("demo-app-dl-{i:02}"), "date_create": t0 + 60 + i, "action": "file_downloaded",
            "actor": actor,
            "entity": {"type": "file", "file": {"id": format!("F0{i:04}"), "name": "board-minutes.pdf"}},
            "context": {"ua": "", "ip_address": "203.0.113.50", "session_id": null,
                        "app": {"id": "A0PDFHELPER", "name": "PDF Helper"},
                        "location": {"type": "enterprise", "id": "E0ACME", "name": "Acme", "domain": "acme"}},
        }));
    }
    out
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
