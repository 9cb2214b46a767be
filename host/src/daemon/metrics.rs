//! Prometheus metrics of the daemon (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn call_buckets() -> Histogram {
    // 50 us .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

fn response_buckets() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    events_in: Family<Labels, Counter>,
    events_processed: Family<Labels, Counter>,
    findings: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    reviews: Family<Labels, Counter>,
    faults: Family<Labels, Counter>,
    stage_faults: Family<Labels, Counter>,
    pipeline_restarts: Counter,
    auth_failures: Counter,
    connections_refused: Counter,
    dead_letters: Family<Labels, Counter>,
    lag: Family<Labels, Gauge>,
    throttled: Family<Labels, Counter>,
    inbox_trimmed: Family<Labels, Counter>,
    instantiations: Family<Labels, Counter>,
    call_seconds: HistogramFamily,
    detection_to_response: HistogramFamily,
    decision_wait: HistogramFamily,
    source_calls: Family<Labels, Counter>,
    source_lag: Family<Labels, Gauge>,
    state_folds: Counter,
    state_fold_keys: Counter,
    state_fold_seconds: Histogram,
    partition_owned: Family<Labels, Gauge>,
    partition_let_in: Family<Labels, Gauge>,
    partition_lag: Family<Labels, Gauge>,
    partition_checkpoint: Family<Labels, Gauge>,
    partition_checkpoint_time: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aer");
        let m = Metrics {
            events_in: Family::default(),
            events_processed: Family::default(),
            findings: Family::default(),
            decisions: Family::default(),
            actions: Family::default(),
            reviews: Family::default(),
            faults: Family::default(),
            stage_faults: Family::default(),
            pipeline_restarts: Counter::default(),
            auth_failures: Counter::default(),
            connections_refused: Counter::default(),
            dead_letters: Family::default(),
            lag: Family::default(),
            throttled: Family::default(),
            inbox_trimmed: Family::default(),
            instantiations: Family::default(),
            call_seconds: Family::new_with_constructor(call_buckets),
            detection_to_response: Family::new_with_constructor(response_buckets),
            decision_wait: Family::new_with_constructor(response_buckets),
            source_calls: Family::default(),
            source_lag: Family::default(),
            partition_owned: Family::default(),
            partition_let_in: Family::default(),
            partition_lag: Family::default(),
            partition_checkpoint: Family::default(),
            partition_checkpoint_time: Family::default(),
            state_folds: Counter::default(),
            state_fold_keys: Counter::default(),
            state_fold_seconds: call_buckets(),
            registry: Registry::default(),
        };
        registry.register(
            "events_ingested",
            "Events accepted into the inbox",
            m.events_in.clone(),
        );
        registry.register(
            "events_processed",
            "Events a detector has processed",
            m.events_processed.clone(),
        );
        registry.register("findings", "Findings committed", m.findings.clone());
        registry.register("decisions", "Decisions by outcome", m.decisions.clone());
        registry.register(
            "actions",
            "Responder effects by action and result",
            m.actions.clone(),
        );
        registry.register(
            "reviews",
            "Reviews opened, approved and dismissed, by kind",
            m.reviews.clone(),
        );
        registry.register("plugin_faults", "Plugin faults by kind", m.faults.clone());
        registry.register(
            "stage_faults",
            "Panics caught in a tenant's pipeline stage (the stage is retried after a backoff)",
            m.stage_faults.clone(),
        );
        registry.register(
            "dead_letters",
            "Events moved to the dead letters (a detector faulted on them alone, repeatedly)",
            m.dead_letters.clone(),
        );
        registry.register(
            "http_auth_failures",
            "Requests refused for a missing or wrong token",
            m.auth_failures.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections answered 503 because `http.max_connections` were open",
            m.connections_refused.clone(),
        );
        registry.register(
            "pipeline_thread_restarts",
            "Pipeline threads restarted after a panic outside any tenant's stage",
            m.pipeline_restarts.clone(),
        );
        registry.register(
            "tenant_throttled",
            "Pipeline turns a tenant skipped because its time quota was spent",
            m.throttled.clone(),
        );
        registry.register(
            "inbox_trimmed_events",
            "Processed events removed from a tenant's inbox past its retention",
            m.inbox_trimmed.clone(),
        );
        registry.register(
            "plugin_instantiations",
            "Plugin instances a pipeline worker built (first use, a new version or \
             configuration, or again after its instance was dropped for room)",
            m.instantiations.clone(),
        );
        registry.register(
            "plugin_lag_events",
            "Inbox events a detector has not processed yet",
            m.lag.clone(),
        );
        registry.register(
            "plugin_call_seconds",
            "Duration of detector calls",
            m.call_seconds.clone(),
        );
        registry.register(
            "detection_to_response_seconds",
            "From a finding's commit to its responders' completion",
            m.detection_to_response.clone(),
        );
        registry.register(
            "decision_wait_seconds",
            "From a finding's commit to its decision (the wait for the detectors keeping \
             pace to pass its position)",
            m.decision_wait.clone(),
        );
        registry.register(
            "cluster_partition_owned",
            "1 for each cluster partition this node owns and serves, 0 for one it does not",
            m.partition_owned.clone(),
        );
        registry.register(
            "cluster_partition_stream_seq",
            "The stream sequence of the last message of a partition this node let in",
            m.partition_let_in.clone(),
        );
        registry.register(
            "cluster_partition_lag_messages",
            "Messages of a partition in the stream that this node, its owner, has not let in yet",
            m.partition_lag.clone(),
        );
        registry.register(
            "cluster_partition_checkpoint_seq",
            "The stream sequence a partition's last checkpoint (written or restored here) covers",
            m.partition_checkpoint.clone(),
        );
        registry.register(
            "cluster_partition_checkpoint_time_seconds",
            "When a partition's last checkpoint was written or restored here (Unix time)",
            m.partition_checkpoint_time.clone(),
        );
        registry.register(
            "source_calls",
            "Calls to tenants' pull sources by result (`ok` or an error code)",
            m.source_calls.clone(),
        );
        registry.register(
            "source_lag_seconds",
            "How far behind the present a tenant's pull source has been read",
            m.source_lag.clone(),
        );
        registry.register(
            "state_folds",
            "Folds of the plugin-state journal into its keys",
            m.state_folds.clone(),
        );
        registry.register(
            "state_fold_keys",
            "State keys written by folds (each key's latest value once per fold)",
            m.state_fold_keys.clone(),
        );
        registry.register(
            "state_fold_seconds",
            "Duration of state journal folds",
            m.state_fold_seconds.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Events accepted for `tenant`.
    pub fn ingested(&self, tenant: &str, n: usize) {
        self.events_in
            .get_or_create(&labels(&[("tenant", tenant)]))
            .inc_by(n as u64);
    }

    /// A detector call: events processed, findings, duration, lag after it.
    pub fn detector_call(
        &self,
        tenant: &str,
        plugin: &str,
        events: usize,
        findings: usize,
        seconds: f64,
        lag: u64,
    ) {
        let l = labels(&[("tenant", tenant), ("plugin", plugin)]);
        self.events_processed
            .get_or_create(&l)
            .inc_by(events as u64);
        self.findings.get_or_create(&l).inc_by(findings as u64);
        self.call_seconds.get_or_create(&l).observe(seconds);
        self.lag
            .get_or_create(&l)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// A pipeline worker built an instance of a tenant's plugin.
    pub fn instantiated(&self, tenant: &str, plugin: &str) {
        self.instantiations
            .get_or_create(&labels(&[("tenant", tenant), ("plugin", plugin)]))
            .inc();
    }

    /// A tenant skipped its pipeline turn (time quota spent).
    pub fn throttled(&self, tenant: &str) {
        self.throttled
            .get_or_create(&labels(&[("tenant", tenant)]))
            .inc();
    }

    /// `events` of `tenant` removed from its inbox (retention).
    pub fn inbox_trimmed(&self, tenant: &str, events: u64) {
        self.inbox_trimmed
            .get_or_create(&labels(&[("tenant", tenant)]))
            .inc_by(events);
    }

    /// A panic caught in `tenant`'s pipeline stage.
    pub fn stage_fault(&self, tenant: &str) {
        self.stage_faults
            .get_or_create(&labels(&[("tenant", tenant)]))
            .inc();
    }

    /// `tenant`'s detector `plugin` faulted on an event alone: a dead letter.
    pub fn dead_letter(&self, tenant: &str, plugin: &str) {
        self.dead_letters
            .get_or_create(&labels(&[("tenant", tenant), ("plugin", plugin)]))
            .inc();
    }

    /// A request failed authentication.
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// A connection was refused past the connection cap.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// A pipeline thread restarted after a panic.
    pub fn pipeline_restart(&self) {
        self.pipeline_restarts.inc();
    }

    /// A plugin fault of `kind`.
    pub fn fault(&self, tenant: &str, plugin: &str, kind: &str) {
        self.faults
            .get_or_create(&labels(&[
                ("tenant", tenant),
                ("plugin", plugin),
                ("kind", kind),
            ]))
            .inc();
    }

    /// A decision.
    pub fn decision(&self, tenant: &str, outcome: &str) {
        self.decisions
            .get_or_create(&labels(&[("tenant", tenant), ("outcome", outcome)]))
            .inc();
    }

    /// A call to `tenant`'s pull source `source` that ended in `result`.
    pub fn source_call(&self, tenant: &str, source: &str, result: &str) {
        self.source_calls
            .get_or_create(&labels(&[
                ("tenant", tenant),
                ("source", source),
                ("result", result),
            ]))
            .inc();
    }

    /// How far behind the present `tenant`'s pull source `source` has been read.
    pub fn source_lag(&self, tenant: &str, source: &str, seconds: i64) {
        self.source_lag
            .get_or_create(&labels(&[("tenant", tenant), ("source", source)]))
            .set(seconds);
    }

    /// Whether this node owns and serves cluster partition `partition`.
    pub fn partition_owned(&self, partition: u32, owned: bool) {
        self.partition_owned
            .get_or_create(&labels(&[("partition", &partition.to_string())]))
            .set(i64::from(owned));
    }

    /// A message of `partition` let in at stream sequence `seq`, `pending` more of the
    /// partition's after it in the stream.
    pub fn partition_let_in(&self, partition: u32, seq: u64, pending: u64) {
        let l = labels(&[("partition", &partition.to_string())]);
        self.partition_let_in
            .get_or_create(&l)
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
        self.partition_lag
            .get_or_create(&l)
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// `partition`'s checkpoint covering stream sequence `seq`, written or restored at
    /// `at_ms`.
    pub fn partition_checkpoint(&self, partition: u32, seq: u64, at_ms: i64) {
        let l = labels(&[("partition", &partition.to_string())]);
        self.partition_checkpoint
            .get_or_create(&l)
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
        self.partition_checkpoint_time
            .get_or_create(&l)
            .set(at_ms / 1000);
    }

    /// A finding decided `seconds` after its commit.
    pub fn decision_wait(&self, tenant: &str, seconds: f64) {
        self.decision_wait
            .get_or_create(&labels(&[("tenant", tenant)]))
            .observe(seconds);
    }

    /// A responder effect.
    pub fn action(&self, tenant: &str, action: &str, status: &str) {
        self.actions
            .get_or_create(&labels(&[
                ("tenant", tenant),
                ("action", action),
                ("status", status),
            ]))
            .inc();
    }

    /// A review of `kind` was opened, approved or dismissed (`state`).
    pub fn review(
        &self,
        tenant: &str,
        kind: crate::ledger::ReviewKind,
        state: crate::ledger::ReviewState,
    ) {
        self.reviews
            .get_or_create(&labels(&[
                ("tenant", tenant),
                ("kind", kind.as_str()),
                ("state", state.as_str()),
            ]))
            .inc();
    }

    /// Time from a finding's commit to the end of its responses.
    pub fn detection_to_response(&self, tenant: &str, seconds: f64) {
        self.detection_to_response
            .get_or_create(&labels(&[("tenant", tenant)]))
            .observe(seconds);
    }

    /// A fold of the state journal that wrote `keys` keys.
    pub fn state_fold(&self, keys: usize, seconds: f64) {
        self.state_folds.inc();
        self.state_fold_keys.inc_by(keys as u64);
        self.state_fold_seconds.observe(seconds);
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}
