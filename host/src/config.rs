//! `aer serve`'s configuration: one TOML file, every setting with a default
//! (`aer serve --print-config` prints them all; `examples/aer.toml` is a commented copy).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory of the sled database and the plugin artifacts (created if missing).
    pub data_dir: PathBuf,
    /// The operator's admin token (creates tenants). `AER_ADMIN_TOKEN` overrides it;
    /// the daemon refuses to start with neither.
    pub admin_token: Option<String>,
    /// Log lines as JSON instead of text.
    pub log_json: bool,
    /// HTTP limits.
    pub http: HttpConfig,
    /// Ingest limits.
    pub ingest: IngestConfig,
    /// Limits applied to every plugin call.
    pub limits: Limits,
    /// Per-tenant quotas.
    pub quotas: QuotaConfig,
    /// Where responders' effects may go.
    pub outbound: OutboundConfig,
    /// Pull sources (Slack's Audit Logs API).
    pub sources: SourcesConfig,
    /// Geolocation databases for the plugins' `geo` service.
    pub geo: GeoConfig,
    /// The console (`/console`).
    pub console: ConsoleConfig,
    /// Cluster mode: several nodes sharing tenants through NATS JetStream (off: this
    /// node alone, with nothing but its data directory).
    pub cluster: ClusterConfig,
    /// Pipeline worker threads (0: one per available core). Each detector is run by
    /// one worker at a time; a second worker joins a tenant only when no other tenant
    /// with work is waiting, so one tenant's slow plugin never holds up the others.
    pub pipeline_threads: usize,
    /// Plugin instances alive at once, all tenants together (sizes the pooling
    /// allocator; instances are reserved address space, resident memory only where a
    /// plugin touches it). Each worker keeps its most recently used instances, up to
    /// its share; a plugin whose instance was dropped is instantiated again when it
    /// next has work (its state is in the database, not the instance).
    pub max_instances: u32,
    /// Bytes of plugin state kept in memory in front of the database (recently read or
    /// written values, shared by all tenants), so a detector's next batch need not read
    /// its state from disk.
    pub state_cache_bytes: u64,
}

/// Per-tenant quotas: defaults for every tenant, and overrides by tenant name
/// (`[quotas.tenants.acme]`). The events-per-second default is
/// `ingest.max_events_per_second`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Plugins (detectors and responders) a tenant may have.
    pub max_plugins: u32,
    /// Versions kept per plugin: uploading one more prunes the oldest (never the
    /// active one) and its file.
    pub max_versions: u32,
    /// Bytes of uploaded components (every kept version of every plugin) a tenant may
    /// keep.
    pub max_artifact_bytes: u64,
    /// Bytes of plugin state (keys and values, all its plugins) a tenant may keep; a
    /// batch that would pass it faults, like any other plugin fault.
    pub max_state_bytes: u64,
    /// Bytes of state one plugin may keep: a plugin that grows past it faults before
    /// it can fill its tenant's quota and fault its siblings.
    pub max_plugin_state_bytes: u64,
    /// Entries a tenant's action log may hold; past it, further effects fail with
    /// `action_log_full` (each decision's effects are capped besides, by
    /// `limits.effects_per_decision`).
    pub max_action_log_entries: u64,
    /// Milliseconds of pipeline time per second a tenant may use (a bucket holding one
    /// second's worth). Past it, the tenant gives way to tenants that have work and
    /// time left (its events wait in the inbox); a tenant alone carries on.
    pub cpu_ms_per_second: u32,
    /// Overrides by tenant name.
    pub tenants: std::collections::BTreeMap<String, TenantQuota>,
}

/// One tenant's overrides of the quota defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantQuota {
    /// See [`QuotaConfig::max_plugins`].
    pub max_plugins: Option<u32>,
    /// See [`QuotaConfig::max_artifact_bytes`].
    pub max_artifact_bytes: Option<u64>,
    /// See [`QuotaConfig::max_plugin_state_bytes`].
    pub max_plugin_state_bytes: Option<u64>,
    /// See [`QuotaConfig::max_state_bytes`].
    pub max_state_bytes: Option<u64>,
    /// Events per second the tenant may send.
    pub max_events_per_second: Option<u32>,
    /// See [`QuotaConfig::cpu_ms_per_second`].
    pub cpu_ms_per_second: Option<u32>,
}

/// The quotas in force for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Plugins it may have.
    pub max_plugins: u32,
    /// Versions kept per plugin.
    pub max_versions: u32,
    /// Component bytes it may keep.
    pub max_artifact_bytes: u64,
    /// State bytes it may keep.
    pub max_state_bytes: u64,
    /// State bytes each of its plugins may keep.
    pub max_plugin_state_bytes: u64,
    /// Action log entries it may keep.
    pub max_action_log_entries: u64,
    /// Events per second it may send.
    pub max_events_per_second: u32,
    /// Pipeline milliseconds per second its plugins may use.
    pub cpu_ms_per_second: u32,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            max_plugins: 32,
            max_versions: 5,
            max_artifact_bytes: 256 << 20,
            max_state_bytes: 1 << 30,
            max_plugin_state_bytes: 256 << 20,
            max_action_log_entries: 1_000_000,
            cpu_ms_per_second: 500,
            tenants: Default::default(),
        }
    }
}

impl ServeConfig {
    /// The quotas in force for `tenant`.
    pub fn quota(&self, tenant: &str) -> Quota {
        let q = &self.quotas;
        let o = q.tenants.get(tenant).cloned().unwrap_or_default();
        Quota {
            max_plugins: o.max_plugins.unwrap_or(q.max_plugins),
            max_versions: q.max_versions,
            max_artifact_bytes: o.max_artifact_bytes.unwrap_or(q.max_artifact_bytes),
            max_state_bytes: o.max_state_bytes.unwrap_or(q.max_state_bytes),
            max_plugin_state_bytes: o.max_plugin_state_bytes.unwrap_or(q.max_plugin_state_bytes),
            max_action_log_entries: q.max_action_log_entries,
            max_events_per_second: o
                .max_events_per_second
                .unwrap_or(self.ingest.max_events_per_second),
            cpu_ms_per_second: o.cpu_ms_per_second.unwrap_or(q.cpu_ms_per_second),
        }
    }
}

/// The error code of an outbound request refused for where it would go.
pub const NOT_ALLOWED: &str = "destination_not_allowed";

/// Where responders' effects may go: the operator's choice, not a tenant's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Slack Web API and SCIM API base URLs a tenant's policy may name
    /// (`responses.slack_api_url`, `responses.scim_api_url`). An entry matches a URL of
    /// its scheme and host (any port if the entry names none) whose path starts with the
    /// entry's.
    pub slack_api_urls: Vec<String>,
    /// Slack Audit Logs API base URLs a tenant's source may name (matched the same
    /// way).
    pub slack_audit_urls: Vec<String>,
    /// Whether webhooks may be plain `http://` (else `https://` only).
    pub allow_http_webhooks: bool,
    /// Address ranges effects may reach although they are loopback, private,
    /// link-local or otherwise internal (all of which are refused by default), e.g. a
    /// receiver on the operator's own network.
    pub allow_ranges: Vec<ipnet::IpNet>,
    /// Largest answer read from Slack or a webhook, in bytes.
    pub max_response_bytes: u64,
    /// Longest one outbound request may take, in milliseconds.
    pub timeout_ms: u64,
    /// Threads performing effects (off the pipeline workers); a tenant's effects run
    /// on one of them at a time, in order.
    pub threads: usize,
    /// Longest an effect is retried after Slack answers 429 (waiting its
    /// `Retry-After`), counted from when it was queued, in milliseconds.
    pub max_retry_ms: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            slack_api_urls: vec![
                "https://slack.com/api".into(),
                "https://api.slack.com/scim".into(),
            ],
            slack_audit_urls: vec!["https://api.slack.com/audit/v1".into()],
            allow_http_webhooks: false,
            allow_ranges: Vec::new(),
            max_response_bytes: 64 << 10,
            timeout_ms: 10_000,
            threads: 4,
            max_retry_ms: 120_000,
        }
    }
}

impl OutboundConfig {
    /// Rules for a daemon whose receivers run on this machine (`aer demo`, the
    /// benchmarks, tests): Slack API and webhooks over http on loopback.
    pub fn loopback() -> Self {
        OutboundConfig {
            slack_api_urls: vec![
                "https://slack.com/api".into(),
                "https://api.slack.com/scim".into(),
                "http://127.0.0.1".into(),
            ],
            slack_audit_urls: vec![
                "https://api.slack.com/audit/v1".into(),
                "http://127.0.0.1".into(),
            ],
            allow_http_webhooks: true,
            allow_ranges: vec![ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                std::net::Ipv4Addr::LOCALHOST,
                8,
            ))],
            ..OutboundConfig::default()
        }
    }
}

/// Pull sources: the threads that poll them and the bounds on what they read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// Threads polling tenants' sources; a tenant's source is polled by one at a time,
    /// one page a turn, so a slow or hanging source holds one thread for at most
    /// `outbound.timeout_ms`.
    pub threads: usize,
    /// Most calls a minute a tenant's source may be set to make (Slack allows about 50
    /// per organisation).
    pub max_calls_per_minute: u32,
    /// Largest page answer read, in bytes.
    pub max_page_bytes: u64,
    /// Most entries one time slice gathers in memory before it is walked again at
    /// half the span.
    pub max_slice_entries: usize,
    /// Most entry ids a source remembers from its overlap window.
    pub max_seen_ids: usize,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            threads: 2,
            max_calls_per_minute: 50,
            max_page_bytes: 32 << 20,
            max_slice_entries: 50_000,
            max_seen_ids: 100_000,
        }
    }
}

/// The operator's geolocation databases (MaxMind format: GeoLite2/GeoIP2 City or
/// Country, ASN, Anonymous IP), read at start; a file that is not a database stops the
/// start. None: every address is unknown to plugins (they judge nothing by place).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// Database files, asked in order; a later one fills what an earlier one lacks.
    pub databases: Vec<PathBuf>,
    /// Autonomous systems whose addresses are hosting networks (besides those a
    /// database marks so); default: large cloud and hosting providers.
    pub hosting_asns: Vec<u32>,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            databases: Vec::new(),
            hosting_asns: crate::geo::DEFAULT_HOSTING_ASNS.to_vec(),
        }
    }
}

/// HTTP limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body, in bytes (after decompression for gzip ingest).
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request's headers, and longest an idle
    /// keep-alive connection stays open, in milliseconds.
    pub header_timeout_ms: u64,
    /// Longest a client may take to send a request's whole body, in milliseconds
    /// (a trickled body is answered 408 and the connection closed).
    pub body_timeout_ms: u64,
    /// Connections open at once; beyond it a new connection is answered 503 and
    /// closed.
    pub max_connections: usize,
    /// On SIGTERM, longest the daemon waits for open requests and the pipeline's
    /// current batches before it exits (effects not done stay durable as pending and
    /// run after the restart), in milliseconds.
    pub shutdown_deadline_ms: u64,
    /// Failed authentications one client address may make per minute; past it the
    /// address is answered 429 until the minute is over.
    pub auth_failures_per_minute: u32,
    /// The token `GET /metrics` asks for; without it, the admin token.
    pub metrics_token: Option<String>,
    /// The daemon's address as people reach it (e.g. `https://aer.example.com`): links
    /// to reviews in notifications start with it; without it they are paths.
    pub public_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 32 << 20,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 512,
            shutdown_deadline_ms: 10_000,
            auth_failures_per_minute: 20,
            metrics_token: None,
            public_url: None,
        }
    }
}

/// The console: pages a tenant's analysts (and the operator) sign in to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve `/console` (off: every console path answers 404).
    pub enabled: bool,
    /// How long a sign-in lasts, in minutes (then the person signs in again).
    pub session_minutes: u64,
    /// Sessions one tenant (or the operator) keeps at once; a sign-in past it ends the
    /// oldest.
    pub max_sessions: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_minutes: 8 * 60,
            max_sessions: 32,
        }
    }
}

/// Cluster mode (docs/cluster.md): events accepted on any node go through a JetStream
/// stream to the one node that owns their tenant's partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Run as a node of a cluster.
    pub enabled: bool,
    /// The NATS server (with JetStream) the nodes share.
    pub nats_url: String,
    /// This node's name, unique in the cluster (lowercase letters, digits, `-`).
    pub node_id: String,
    /// The HTTP address other nodes reach this one at (requests for tenants this node
    /// owns are forwarded to it); empty: `http://` and the listening address.
    pub advertise_url: String,
    /// Tenant partitions: a tenant belongs to one, and each has one owner at a time.
    /// Every node of a cluster must name the same number (the first node records it).
    pub partitions: u32,
    /// How long a node holds a partition without renewing its lease, in
    /// milliseconds; a node that stops is replaced this long after its last renewal.
    pub lease_ms: u64,
    /// How often the owner of a partition checkpoints it to the object store, in
    /// milliseconds: a node taking the partition over replays the stream from the last
    /// checkpoint.
    pub checkpoint_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            node_id: String::new(),
            advertise_url: String::new(),
            partitions: 16,
            lease_ms: 6_000,
            checkpoint_ms: 10_000,
        }
    }
}

/// Ingest limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Events a tenant may have waiting in its inbox before ingest answers 429.
    pub max_inbox_events: u64,
    /// Events per second a tenant may send (burst: one second's worth).
    pub max_events_per_second: u32,
    /// Most events in one request.
    pub max_events_per_request: usize,
    /// A re-sent event (an id the tenant already sent) is recognised and skipped when
    /// it is among the tenant's latest this many events (about 40 bytes of memory
    /// each, per tenant; rebuilt from the stored events on start).
    pub dedupe_window_events: usize,
    /// Events every enabled and quarantined detector of a tenant has processed are
    /// removed from its inbox once this many newer ones are stored (at least 1), so the
    /// inbox stays bounded. A detector uploaded later starts at the oldest kept event,
    /// as does a disabled one whose cursor fell behind it.
    pub retain_events: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_inbox_events: 1_000_000,
            max_events_per_second: 50_000,
            max_events_per_request: 100_000,
            dedupe_window_events: 200_000,
            retain_events: 1_000_000,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from("aer-data"),
            admin_token: None,
            log_json: false,
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            limits: Limits::default(),
            quotas: QuotaConfig::default(),
            outbound: OutboundConfig::default(),
            sources: SourcesConfig::default(),
            geo: GeoConfig::default(),
            console: ConsoleConfig::default(),
            cluster: ClusterConfig::default(),
            pipeline_threads: 0,
            max_instances: 1024,
            state_cache_bytes: 64 << 20,
        }
    }
}

/// Ranges of the quotas a tenant's override may set too (checked the same both ways).
const PLUGINS: std::ops::RangeInclusive<u64> = 1..=10_000;
const ARTIFACT_BYTES: std::ops::RangeInclusive<u64> = 1..=1 << 40;
const STATE_BYTES: std::ops::RangeInclusive<u64> = 1..=1 << 50;
const EVENTS_PER_SECOND: std::ops::RangeInclusive<u64> = 1..=10_000_000;
const CPU_MS_PER_SECOND: std::ops::RangeInclusive<u64> = 1..=1_000_000;

/// Fewest characters of the operator's admin (and metrics) token.
pub const MIN_ADMIN_TOKEN: usize = 32;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("invalid configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// No admin token in the file or the environment.
    #[error("no admin token: set `admin_token` in the configuration or AER_ADMIN_TOKEN")]
    NoAdminToken,
    /// The admin token is too short to be safe.
    #[error("the admin token must be at least {MIN_ADMIN_TOKEN} characters")]
    WeakAdminToken,
}

/// Whether `id` can name a cluster node (it appears in NATS keys and subjects).
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ServeConfig {
    /// Read a configuration file (absent fields take their defaults).
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parse TOML text and check every value ([`ServeConfig::validate`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: ServeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|errors| errors.join("; "))?;
        Ok(config)
    }

    /// Check every number against the range in which it can work: a bound or rate of
    /// 0 would stop the daemon or a tenant, and a huge one would overflow or exhaust the
    /// machine. Each error names its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let mut check = |key: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            if !range.contains(&value) {
                errors.push(format!(
                    "`{key}` = {value} must be from {} to {}",
                    range.start(),
                    range.end()
                ));
            }
        };
        let u = |v: usize| v as u64;
        check("pipeline_threads", u(self.pipeline_threads), 0..=256);
        check("max_instances", u64::from(self.max_instances), 1..=10_000);
        let h = &self.http;
        check("http.max_body_bytes", u(h.max_body_bytes), 1..=1 << 30);
        check("http.header_timeout_ms", h.header_timeout_ms, 1..=3_600_000);
        check("http.body_timeout_ms", h.body_timeout_ms, 1..=3_600_000);
        check("http.max_connections", u(h.max_connections), 1..=1_000_000);
        check(
            "http.shutdown_deadline_ms",
            h.shutdown_deadline_ms,
            1..=3_600_000,
        );
        check(
            "http.auth_failures_per_minute",
            u64::from(h.auth_failures_per_minute),
            1..=1_000_000,
        );
        let metrics_token = h
            .metrics_token
            .as_ref()
            .map_or(MIN_ADMIN_TOKEN, |t| t.chars().count());
        let o = &self.outbound;
        check(
            "outbound.max_response_bytes",
            o.max_response_bytes,
            1..=1 << 30,
        );
        check("outbound.timeout_ms", o.timeout_ms, 1..=600_000);
        check("outbound.threads", u(o.threads), 1..=256);
        check("outbound.max_retry_ms", o.max_retry_ms, 0..=86_400_000);
        let src = &self.sources;
        check("sources.threads", u(src.threads), 1..=256);
        check(
            "sources.max_calls_per_minute",
            u64::from(src.max_calls_per_minute),
            1..=60_000,
        );
        check(
            "sources.max_page_bytes",
            src.max_page_bytes,
            1 << 10..=1 << 30,
        );
        check(
            "sources.max_slice_entries",
            u(src.max_slice_entries),
            1..=10_000_000,
        );
        check("sources.max_seen_ids", u(src.max_seen_ids), 1..=10_000_000);
        let i = &self.ingest;
        check("ingest.max_inbox_events", i.max_inbox_events, 1..=1 << 40);
        check(
            "ingest.max_events_per_second",
            u64::from(i.max_events_per_second),
            EVENTS_PER_SECOND,
        );
        check(
            "ingest.max_events_per_request",
            u(i.max_events_per_request),
            1..=10_000_000,
        );
        check(
            "ingest.dedupe_window_events",
            u(i.dedupe_window_events),
            0..=100_000_000,
        );
        check("ingest.retain_events", i.retain_events, 1..=1 << 40);
        let l = &self.limits;
        check("limits.deadline_ms", l.deadline_ms, 1..=600_000);
        check("limits.host_wait_ms", l.host_wait_ms, 0..=3_600_000);
        check("limits.memory_bytes", u(l.memory_bytes), 1 << 20..=4 << 30);
        check("limits.stack_bytes", u(l.stack_bytes), 64 << 10..=64 << 20);
        check("limits.component_bytes", u(l.component_bytes), 1..=1 << 30);
        check(
            "limits.findings_per_call",
            u(l.findings_per_call),
            1..=1_000_000,
        );
        check("limits.string_bytes", u(l.string_bytes), 1..=16 << 20);
        check(
            "limits.copy_bytes_per_call",
            u(l.copy_bytes_per_call),
            1..=4 << 30,
        );
        check(
            "limits.read_bytes_per_call",
            l.read_bytes_per_call,
            1..=4 << 30,
        );
        check(
            "limits.effects_per_decision",
            u64::from(l.effects_per_decision),
            1..=1_000,
        );
        check(
            "limits.state_key_bytes",
            u64::from(l.state_key_bytes),
            1..=1 << 20,
        );
        check(
            "limits.state_value_bytes",
            u64::from(l.state_value_bytes),
            1..=1 << 30,
        );
        check(
            "limits.state_ops_per_call",
            u64::from(l.state_ops_per_call),
            1..=u64::from(u32::MAX),
        );
        check(
            "limits.state_write_bytes_per_call",
            l.state_write_bytes_per_call,
            1..=4 << 30,
        );
        check(
            "limits.log_message_bytes",
            u(l.log_message_bytes),
            1..=1 << 20,
        );
        check(
            "limits.code_functions",
            u64::from(l.code_functions),
            1..=1_000_000,
        );
        check(
            "limits.code_function_bytes",
            l.code_function_bytes,
            1..=1 << 30,
        );
        check("limits.code_locals", l.code_locals, 1..=1 << 30);
        check(
            "limits.compile_timeout_ms",
            l.compile_timeout_ms,
            1..=600_000,
        );
        check(
            "limits.compile_concurrency",
            u64::from(l.compile_concurrency),
            1..=256,
        );
        let q = &self.quotas;
        check("quotas.max_plugins", u64::from(q.max_plugins), PLUGINS);
        check("quotas.max_versions", u64::from(q.max_versions), 1..=1_000);
        check(
            "quotas.max_artifact_bytes",
            q.max_artifact_bytes,
            ARTIFACT_BYTES,
        );
        check("quotas.max_state_bytes", q.max_state_bytes, STATE_BYTES);
        check(
            "quotas.max_plugin_state_bytes",
            q.max_plugin_state_bytes,
            STATE_BYTES,
        );
        check(
            "quotas.max_action_log_entries",
            q.max_action_log_entries,
            1..=1 << 40,
        );
        check(
            "quotas.cpu_ms_per_second",
            u64::from(q.cpu_ms_per_second),
            CPU_MS_PER_SECOND,
        );
        for (name, t) in &q.tenants {
            let key = |field: &str| format!("quotas.tenants.{name}.{field}");
            if let Some(v) = t.max_plugins {
                check(&key("max_plugins"), u64::from(v), PLUGINS);
            }
            if let Some(v) = t.max_artifact_bytes {
                check(&key("max_artifact_bytes"), v, ARTIFACT_BYTES);
            }
            if let Some(v) = t.max_state_bytes {
                check(&key("max_state_bytes"), v, STATE_BYTES);
            }
            if let Some(v) = t.max_plugin_state_bytes {
                check(&key("max_plugin_state_bytes"), v, STATE_BYTES);
            }
            if let Some(v) = t.max_events_per_second {
                check(
                    &key("max_events_per_second"),
                    u64::from(v),
                    EVENTS_PER_SECOND,
                );
            }
            if let Some(v) = t.cpu_ms_per_second {
                check(&key("cpu_ms_per_second"), u64::from(v), CPU_MS_PER_SECOND);
            }
        }
        check(
            "console.session_minutes",
            self.console.session_minutes,
            1..=7 * 24 * 60,
        );
        check(
            "console.max_sessions",
            u64::from(self.console.max_sessions),
            1..=10_000,
        );
        let c = &self.cluster;
        check("cluster.partitions", u64::from(c.partitions), 1..=4_096);
        check("cluster.lease_ms", c.lease_ms, 1_000..=600_000);
        check("cluster.checkpoint_ms", c.checkpoint_ms, 100..=3_600_000);
        if c.enabled {
            if !crate::config::valid_node_id(&c.node_id) {
                errors.push(
                    "`cluster.node_id` must be 1 to 64 lowercase letters, digits or `-`".to_owned(),
                );
            }
            if !c.nats_url.starts_with("nats://") && !c.nats_url.starts_with("tls://") {
                errors.push("`cluster.nats_url` must be a nats:// or tls:// URL".to_owned());
            }
            if !c.advertise_url.is_empty()
                && !c.advertise_url.starts_with("http://")
                && !c.advertise_url.starts_with("https://")
            {
                errors.push("`cluster.advertise_url` must be an http(s) URL".to_owned());
            }
        }
        if metrics_token < MIN_ADMIN_TOKEN {
            errors.push(format!(
                "`http.metrics_token` must be at least {MIN_ADMIN_TOKEN} characters"
            ));
        }
        if let Some(url) = &self.http.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            errors.push("`http.public_url` must be an http(s) URL".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The admin token: `AER_ADMIN_TOKEN` if set, else the file's.
    pub fn resolve_admin_token(&self) -> Result<String, ConfigError> {
        let token = std::env::var("AER_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.admin_token.clone())
            .ok_or(ConfigError::NoAdminToken)?;
        if token.chars().count() < MIN_ADMIN_TOKEN {
            return Err(ConfigError::WeakAdminToken);
        }
        Ok(token)
    }

    /// Every setting as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = ServeConfig::default();
        assert_eq!(ServeConfig::parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn partial_files_take_defaults_and_typos_are_named() {
        let c = ServeConfig::parse("listen = \"127.0.0.1:9000\"\n[limits]\ndeadline_ms = 50\n")
            .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.deadline_ms, 50);
        assert_eq!(c.limits.memory_bytes, Limits::default().memory_bytes);
        let err = ServeConfig::parse("[limits]\ndeadline = 50\n").unwrap_err();
        assert!(err.contains("unknown field `deadline`"), "{err}");
        let err = ServeConfig::parse("listen = 5\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
    }

    // Regression: `pipeline_threads = 100000` and rates or bounds of 0 were accepted,
    // and the daemon then failed (or stalled a tenant) after it had started.
    #[test]
    fn values_that_cannot_work_are_refused_by_key() {
        for (toml, key) in [
            ("pipeline_threads = 100000", "`pipeline_threads` = 100000"),
            ("max_instances = 0", "`max_instances` = 0"),
            (
                "[ingest]\nmax_events_per_second = 0",
                "`ingest.max_events_per_second` = 0",
            ),
            ("[ingest]\nretain_events = 0", "`ingest.retain_events` = 0"),
            ("[limits]\ndeadline_ms = 0", "`limits.deadline_ms` = 0"),
            (
                "[limits]\nread_bytes_per_call = 0",
                "`limits.read_bytes_per_call` = 0",
            ),
            (
                "[quotas]\ncpu_ms_per_second = 0",
                "`quotas.cpu_ms_per_second` = 0",
            ),
            (
                "[quotas.tenants.acme]\nmax_events_per_second = 0",
                "`quotas.tenants.acme.max_events_per_second` = 0",
            ),
            (
                "[quotas.tenants.acme]\nmax_plugin_state_bytes = 0",
                "`quotas.tenants.acme.max_plugin_state_bytes` = 0",
            ),
        ] {
            let err = ServeConfig::parse(toml).unwrap_err();
            assert!(err.contains(key), "{toml}: {err}");
        }
        assert!(ServeConfig::default().validate().is_ok());
    }
}
