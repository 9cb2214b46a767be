//! Client verbs that talk to a running daemon: `aer tenant`, `aer plugin`, `aer policy`,
//! `aer source`,
//! `aer events send`, and `aer findings|decisions|actions [--follow]`. The server and
//! token come from `--server`/`AER_SERVER` and `--token`/`AER_TOKEN`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use super::{EXIT_OK, Io, read, read_text, text_or_file};

/// Where the daemon is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The daemon's address.
    #[arg(
        long,
        env = "AER_SERVER",
        default_value = "http://127.0.0.1:7878",
        global = true
    )]
    pub server: String,
    /// A tenant token (or the admin token for `aer tenant create`).
    #[arg(long, env = "AER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

pub(super) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(super) fn new(args: &ClientArgs) -> Self {
        Client {
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into(),
        }
    }

    /// Call the API; a non-2xx answer becomes an error with the server's message.
    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET" | "DELETE", _) => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                let (ct, bytes) = body.unwrap_or(("application/json", Vec::new()));
                r.header("Content-Type", ct).send(&bytes[..])
            }
        };
        let mut resp = result.with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !(200..300).contains(&status) {
            let msg = value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            let details = match &value["errors"] {
                Value::Array(e) if !e.is_empty() => format!(" {}", Value::Array(e.clone())),
                _ => String::new(),
            };
            bail!("HTTP {status}: {msg}{details}");
        }
        Ok(value)
    }
}

pub(super) fn pretty(io: &mut Io<'_>, v: &Value) -> anyhow::Result<u8> {
    writeln!(io.out, "{}", serde_json::to_string_pretty(v)?)?;
    Ok(EXIT_OK)
}

/// `aer tenant ...`
#[derive(Debug, Args)]
pub struct TenantCommand {
    #[command(subcommand)]
    action: TenantAction,
    #[command(flatten)]
    client: ClientArgs,
}

/// The operator's tenant verbs; each needs the admin token.
#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Create a tenant and print its token, shown only once.
    Create {
        /// Tenant name.
        name: String,
    },
    /// List the tenants (plugins, events, state size, suspended or not).
    List,
    /// Give a tenant a new token (printed once); the old one stops at once.
    Rotate {
        /// Tenant name.
        name: String,
    },
    /// Suspend a tenant: its token is refused and its pipeline stops; nothing is deleted.
    Suspend {
        /// Tenant name.
        name: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// Tenant name.
        name: String,
    },
    /// Delete a tenant with all its data (plugins, state, events, findings, actions).
    Delete {
        /// Tenant name.
        name: String,
    },
}

impl TenantCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let path = |name: &str, what: &str| format!("/v1/admin/tenants/{}{what}", segment(name));
        let answer = match self.action {
            TenantAction::Create { name } => {
                let body = serde_json::to_vec(&serde_json::json!({ "name": name }))?;
                c.call(
                    "POST",
                    "/v1/admin/tenants",
                    Some(("application/json", body)),
                )?
            }
            TenantAction::List => c.call("GET", "/v1/admin/tenants", None)?,
            TenantAction::Rotate { name } => c.call("POST", &path(&name, "/token"), None)?,
            TenantAction::Suspend { name } => c.call("POST", &path(&name, "/suspend"), None)?,
            TenantAction::Resume { name } => c.call("POST", &path(&name, "/resume"), None)?,
            TenantAction::Delete { name } => {
                c.call("DELETE", &path(&name, ""), None)?;
                serde_json::json!({"deleted": name})
            }
        };
        pretty(io, &answer)
    }
}

/// A name as one URL path segment (tenant and plugin names are lowercase letters,
/// digits and `-`; anything else is percent-encoded so it cannot change the path).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `aer plugin ...`
#[derive(Debug, Args)]
pub struct PluginCommand {
    #[command(subcommand)]
    action: PluginAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum PluginAction {
    /// Upload a component as a new version.
    Upload {
        /// The component file.
        file: PathBuf,
        /// Plugin name (default: the plugin's own).
        #[arg(long)]
        name: Option<String>,
        /// Version (default: the plugin's own).
        #[arg(long)]
        version: Option<String>,
    },
    /// List plugins.
    List,
    /// Show one plugin (versions, status, faults, lag).
    Show {
        /// Plugin name.
        name: String,
    },
    /// Enable a plugin.
    Enable {
        /// Plugin name.
        name: String,
    },
    /// Disable a plugin.
    Disable {
        /// Plugin name.
        name: String,
    },
    /// Make an earlier version active.
    Rollback {
        /// Plugin name.
        name: String,
        /// The version (default: the one before the active one).
        #[arg(long)]
        version: Option<String>,
    },
    /// Set the configuration: JSON text or @FILE.
    Config {
        /// Plugin name.
        name: String,
        /// JSON, or @FILE.
        config: String,
    },
    /// Delete a plugin.
    Delete {
        /// Plugin name.
        name: String,
    },
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", v.replace(['&', '=', '#', ' '], ""))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

impl PluginCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let v = match self.action {
            PluginAction::Upload {
                file,
                name,
                version,
            } => {
                let path = format!(
                    "/v1/plugins{}",
                    query(&[("name", name.as_deref()), ("version", version.as_deref())])
                );
                c.call("POST", &path, Some(("application/wasm", read(&file)?)))?
            }
            PluginAction::List => {
                let list = c.call("GET", "/v1/plugins", None)?;
                if io.out_is_terminal {
                    let mut t = Table::new();
                    t.load_preset(UTF8_FULL_CONDENSED)
                        .set_content_arrangement(ContentArrangement::Disabled)
                        .set_header(["plugin", "kind", "active", "status", "faults", "versions"]);
                    for p in list.as_array().into_iter().flatten() {
                        t.add_row(super::row([
                            p["name"].as_str().unwrap_or("").to_owned(),
                            p["kind"].as_str().unwrap_or("").to_owned(),
                            p["active"].as_str().unwrap_or("").to_owned(),
                            p["status"].as_str().unwrap_or("").to_owned(),
                            p["faults"].to_string(),
                            p["versions"].as_array().map_or(0, Vec::len).to_string(),
                        ]));
                    }
                    writeln!(io.out, "{t}")?;
                    return Ok(EXIT_OK);
                }
                for p in list.as_array().into_iter().flatten() {
                    writeln!(io.out, "{p}")?;
                }
                return Ok(EXIT_OK);
            }
            PluginAction::Show { name } => c.call("GET", &format!("/v1/plugins/{name}"), None)?,
            PluginAction::Enable { name } => {
                c.call("POST", &format!("/v1/plugins/{name}/enable"), None)?
            }
            PluginAction::Disable { name } => {
                c.call("POST", &format!("/v1/plugins/{name}/disable"), None)?
            }
            PluginAction::Rollback { name, version } => c.call(
                "POST",
                &format!(
                    "/v1/plugins/{name}/rollback{}",
                    query(&[("version", version.as_deref())])
                ),
                None,
            )?,
            PluginAction::Config { name, config } => {
                let body = text_or_file(&config)?.into_bytes();
                c.call(
                    "PUT",
                    &format!("/v1/plugins/{name}/config"),
                    Some(("application/json", body)),
                )?
            }
            PluginAction::Delete { name } => {
                c.call("DELETE", &format!("/v1/plugins/{name}"), None)?;
                writeln!(io.out, "deleted {name}")?;
                return Ok(EXIT_OK);
            }
        };
        pretty(io, &v)
    }
}

/// `aer policy get|set`
#[derive(Debug, Args)]
pub struct PolicyCommand {
    #[command(subcommand)]
    action: PolicyAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// Print the tenant's decision policy.
    Get,
    /// Replace it with a JSON file (field-level errors if invalid).
    Set {
        /// The policy file.
        file: PathBuf,
    },
}

impl PolicyCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let v = match self.action {
            PolicyAction::Get => c.call("GET", "/v1/policy", None)?,
            PolicyAction::Set { file } => c.call(
                "PUT",
                "/v1/policy",
                Some(("application/json", read(&file)?)),
            )?,
        };
        pretty(io, &v)
    }
}

/// `aer source show|set|remove`: the tenant's Slack Audit Logs source.
#[derive(Debug, Args)]
pub struct SourceCommand {
    #[command(subcommand)]
    action: SourceAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum SourceAction {
    /// Print its settings (token hidden), watermark, lag and status.
    Show,
    /// Create or change it; settings not given keep their stored values.
    Set(SourceSettings),
    /// Remove it (events already let in stay).
    Remove,
}

/// Settings of `aer source set`.
#[derive(Debug, Args)]
struct SourceSettings {
    /// The Audit Logs API base URL (among the operator's).
    #[arg(long)]
    url: Option<String>,
    /// A file holding the token (scope `auditlogs:read`); or set
    /// `AER_SLACK_AUDIT_TOKEN`. Required the first time.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where the first walk begins: seconds since the epoch or an RFC 3339 time
    /// (default: now).
    #[arg(long)]
    start: Option<String>,
    /// Entries per page (1..=9999).
    #[arg(long)]
    page_size: Option<u32>,
    /// Seconds between walks once caught up.
    #[arg(long)]
    interval_seconds: Option<u32>,
    /// Seconds below the watermark read again on every walk.
    #[arg(long)]
    overlap_seconds: Option<u32>,
    /// Most calls a minute.
    #[arg(long)]
    calls_per_minute: Option<u32>,
    /// Poll it (`true`) or pause it (`false`).
    #[arg(long)]
    enabled: Option<bool>,
}

impl SourceSettings {
    /// The request body: only the settings given.
    fn body(self) -> anyhow::Result<Value> {
        let mut body = serde_json::Map::new();
        let token = match self.token_file {
            Some(path) => Some(read_text(&path)?.trim().to_owned()),
            None => std::env::var("AER_SLACK_AUDIT_TOKEN").ok(),
        };
        let start = self.start.map(|s| match s.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(s),
        });
        let fields = [
            ("url", self.url.map(Value::from)),
            ("token", token.map(Value::from)),
            ("start", start),
            ("page_size", self.page_size.map(Value::from)),
            ("interval_seconds", self.interval_seconds.map(Value::from)),
            ("overlap_seconds", self.overlap_seconds.map(Value::from)),
            ("calls_per_minute", self.calls_per_minute.map(Value::from)),
            ("enabled", self.enabled.map(Value::from)),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        }
        Ok(Value::Object(body))
    }
}

impl SourceCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        const PATH: &str = "/v1/sources/slack-audit";
        let c = Client::new(&self.client);
        let v = match self.action {
            SourceAction::Show => c.call("GET", PATH, None)?,
            SourceAction::Set(settings) => {
                let body = serde_json::to_vec(&settings.body()?)?;
                c.call("PUT", PATH, Some(("application/json", body)))?
            }
            SourceAction::Remove => {
                c.call("DELETE", PATH, None)?;
                serde_json::json!({"removed": "slack-audit"})
            }
        };
        pretty(io, &v)
    }
}

/// `aer events send FILE`
#[derive(Debug, Args)]
pub struct EventsCommand {
    #[command(subcommand)]
    action: EventsAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum EventsAction {
    /// Send a Slack envelope or NDJSON file in requests of `--batch` events.
    Send {
        /// The file.
        file: PathBuf,
        /// Events per request.
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
    },
}

/// The file's events as NDJSON lines in event-time order (Slack's envelope lists the
/// newest first, and detectors should see history in order across requests). Lines
/// that do not parse keep their place at the front; the daemon reports them.
fn lines_of(text: &str) -> anyhow::Result<Vec<String>> {
    let mut keyed: Vec<(i64, String)> = raw_lines(text)?
        .into_iter()
        .map(|l| {
            let t = serde_json::from_str::<Value>(&l)
                .ok()
                .and_then(|v| crate::ingest::parse_value(v).ok())
                .map_or(i64::MIN, |e| e.time_ms);
            (t, l)
        })
        .collect();
    keyed.sort_by_key(|(t, _)| *t);
    Ok(keyed.into_iter().map(|(_, l)| l).collect())
}

/// The file's events as NDJSON lines (entries of an envelope or array, or its lines).
fn raw_lines(text: &str) -> anyhow::Result<Vec<String>> {
    let trimmed = text.trim_start();
    let doc = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        serde_json::from_str::<Value>(text).ok()
    } else {
        None
    };
    let entries = match doc {
        Some(Value::Object(mut o)) if o.contains_key("entries") => o.remove("entries"),
        Some(v @ Value::Array(_)) => Some(v),
        _ => None,
    };
    if let Some(Value::Array(entries)) = entries {
        return Ok(entries.iter().map(Value::to_string).collect());
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

impl EventsCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let EventsAction::Send { file, batch } = self.action;
        let lines = lines_of(&read_text(&file)?)?;
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(lines.len() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        let (mut accepted, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
        for (n, chunk) in lines.chunks(batch.max(1)).enumerate() {
            let body = chunk.join("\n").into_bytes();
            let r = c
                .call("POST", "/v1/events", Some(("application/x-ndjson", body)))
                .with_context(|| format!("request {} (events {}..)", n + 1, n * batch + 1))?;
            accepted += r["accepted"].as_u64().unwrap_or(0);
            duplicates += r["duplicates"].as_u64().unwrap_or(0);
            rejected += r["rejected"].as_u64().unwrap_or(0);
            for e in r["errors"].as_array().into_iter().flatten() {
                let line = e["position"]["number"].as_u64().unwrap_or(0) + (n * batch) as u64;
                writeln!(
                    io.err,
                    "{}: event {line}: {}",
                    file.display(),
                    e["reason"].as_str().unwrap_or("")
                )?;
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        writeln!(
            io.out,
            "sent {} events: {accepted} accepted, {duplicates} duplicates, {rejected} rejected",
            lines.len()
        )?;
        Ok(EXIT_OK)
    }
}

/// `aer findings|decisions|actions`
#[derive(Debug, Args)]
pub struct QueryCommand {
    /// Only about this subject (user id; for actions: the target).
    #[arg(long)]
    subject: Option<String>,
    /// Only from this plugin.
    #[arg(long)]
    plugin: Option<String>,
    /// Keep printing new records as they come.
    #[arg(long)]
    follow: bool,
    /// NDJSON even on a terminal.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

impl QueryCommand {
    /// Run it for `what` (`findings`, `decisions` or `actions`): every page from the
    /// start, then (with `--follow`) what comes after, once a second. Action log entries
    /// change in place, so each is printed again when its status changes.
    pub fn run(self, what: &str, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let mut after: Option<String> = None;
        let mut printed: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            let (subject_key, subject) = if what == "actions" {
                ("target", self.subject.as_deref())
            } else {
                ("subject", self.subject.as_deref())
            };
            let plugin = (what != "actions")
                .then_some(self.plugin.as_deref())
                .flatten();
            let path = format!(
                "/v1/{what}{}",
                query(&[
                    (subject_key, subject),
                    ("plugin", plugin),
                    ("after", after.as_deref()),
                    ("limit", Some("1000")),
                ])
            );
            let page = c.call("GET", &path, None)?;
            let items = page["items"]
                .as_array()
                .cloned()
                .ok_or_else(|| anyhow!("unexpected answer: {page}"))?;
            for item in &items {
                if what == "actions" && !printed.insert(item.to_string()) {
                    continue;
                }
                if self.json || !io.out_is_terminal {
                    writeln!(io.out, "{item}")?;
                } else {
                    writeln!(io.out, "{}", one_line(what, item))?;
                }
            }
            io.out.flush()?;
            let next = match &page["next"] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            match next {
                Some(n) => after = Some(n),
                None if !self.follow => return Ok(EXIT_OK),
                None => {
                    // The log is read from its start on every round: its entries are
                    // keyed by decision, not by time.
                    if what == "actions" {
                        after = None;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

fn one_line(what: &str, v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    match what {
        "findings" => format!(
            "{} {} {} {} {}",
            s("time"),
            s("priority"),
            s("rule"),
            v["output_fields"]["subject"].as_str().unwrap_or(""),
            s("output")
        ),
        "decisions" => format!(
            "{} {} {}: {}",
            v["time_ms"],
            s("subject"),
            s("outcome"),
            s("reason")
        ),
        _ => format!(
            "{} {} {} {} {} ({})",
            v["time_ms"],
            s("responder"),
            s("action"),
            s("target"),
            s("status"),
            s("detail")
        ),
    }
}
