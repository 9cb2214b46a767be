//! The daemon, measured through its HTTP API on loopback with durable ingest (the
//! in-process [`Loopback`] service): event-to-response latency at half its maximum
//! load, and one machine's throughput for 100 tenants against one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Figure;
use super::instances::quantile;
use crate::config::{IngestConfig, ServeConfig};
use crate::loopback::{Api, Loopback};

/// The components the daemon measurements install.
pub struct DaemonSetup<'a> {
    /// Detectors every tenant runs.
    pub detectors: &'a [Vec<u8>],
    /// A detector that flags every failed login (`minimal-detector`): the probe.
    pub probe: &'a [u8],
    /// A responder that resets the flagged user's sessions (`slack-session-reset`).
    pub responder: &'a [u8],
}

/// Tenants of the many-tenant measurement.
pub const TENANTS: usize = 100;

/// Limits out of the way: these measurements find the daemon's own limits.
fn config() -> ServeConfig {
    ServeConfig {
        ingest: IngestConfig {
            max_events_per_second: u32::MAX,
            max_inbox_events: u64::MAX,
            ..IngestConfig::default()
        },
        ..ServeConfig::default()
    }
}

/// CPU time this process has used (user and system), in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// When cursors reached their targets, counted from a start.
struct Reached {
    /// The first (tenant, plugin) cursor.
    first: Duration,
    /// The last.
    all: Duration,
}

/// Wait until every (tenant, plugin) cursor reaches its target; `None` once `limit`
/// has passed since `started`.
fn wait_cursors(
    service: &Loopback,
    targets: &[(String, String, u64)],
    started: Instant,
    limit: Duration,
) -> Option<Reached> {
    let mut left: Vec<&(String, String, u64)> = targets.iter().collect();
    let mut first = None;
    while !left.is_empty() {
        left.retain(|(t, p, n)| service.daemon.detector_cursor(t, p).unwrap_or(0) < *n);
        if left.len() < targets.len() {
            first.get_or_insert_with(|| started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Some(Reached {
        first: first.unwrap_or_else(|| started.elapsed()),
        all: started.elapsed(),
    })
}

/// Events per second for `tenants` tenants, each with every detector, sharing `lines`
/// (contiguous slices): the backlog is ingested over HTTP first, then the pipeline is
/// started and timed until every detector of every tenant has processed its slice and
/// the state journal is folded.
fn backlog_throughput(
    setup: &DaemonSetup<'_>,
    tenants: usize,
    lines: &[String],
) -> anyhow::Result<Backlog> {
    let mut service = Loopback::start(config(), false)?;
    let share = lines.len() / tenants;
    let mut targets = Vec::new();
    for t in 0..tenants {
        let name = format!("tenant{t:03}");
        let api = service.tenant(&name)?;
        for d in setup.detectors {
            let rec = api.install(d.clone(), "", true)?;
            targets.push((
                name.clone(),
                rec["name"].as_str().unwrap_or("").to_owned(),
                share as u64,
            ));
        }
        for chunk in lines[t * share..(t + 1) * share].chunks(5_000) {
            api.ingest(chunk)?;
        }
    }
    let started = Instant::now();
    service.start_pipeline();
    if wait_cursors(&service, &targets, started, Duration::from_secs(600)).is_none() {
        anyhow::bail!("{tenants} tenants: the pipeline did not finish within 600 s");
    }
    // What the run left in the state journal is part of its work.
    let folding = Instant::now();
    let state = service.daemon.state_store();
    state.fold()?;
    let fold = folding.elapsed();
    let eps = (share * tenants) as f64 / started.elapsed().as_secs_f64();
    let keys = state.paged_keys()?;
    service.stop()?;
    Ok(Backlog { eps, keys, fold })
}

/// What a backlog run measured.
struct Backlog {
    /// Events per second, the final fold of the state journal included.
    eps: f64,
    /// Plugin state keys at the end.
    keys: usize,
    /// Time of the final fold.
    fold: Duration,
}

/// 100 tenants x the detectors against one tenant with the same events in all,
/// interleaved, best round each.
pub fn measure_tenants(
    setup: &DaemonSetup<'_>,
    lines: &[String],
    rounds: usize,
    push: &mut dyn FnMut(Figure),
) -> anyhow::Result<()> {
    let best = |kept: Option<Backlog>, run: Backlog| match kept {
        Some(k) if k.eps >= run.eps => Some(k),
        _ => Some(run),
    };
    let (mut one, mut many) = (None, None);
    for _ in 0..rounds.max(1) {
        one = best(one, backlog_throughput(setup, 1, lines)?);
        many = best(many, backlog_throughput(setup, TENANTS, lines)?);
    }
    let (one, many) = one
        .zip(many)
        .ok_or_else(|| anyhow::anyhow!("no rounds run"))?;
    push(Figure::ratio(
        format!(
            "daemon: {TENANTS} tenants x {} detectors / 1 tenant, throughput ({:.0} / {:.0} events/s)",
            setup.detectors.len(),
            many.eps,
            one.eps
        ),
        many.eps / one.eps,
        Some((">=", 0.85)),
    ));
    push(Figure::info(
        format!("daemon: plugin state keys at the end, 1 tenant / {TENANTS}"),
        format!("{} / {}", one.keys, many.keys),
    ));
    push(Figure::info(
        format!("daemon: final state journal fold, 1 tenant / {TENANTS} (ms)"),
        format!(
            "{:.3} / {:.3}",
            one.fold.as_secs_f64() * 1e3,
            many.fold.as_secs_f64() * 1e3
        ),
    ));
    Ok(())
}

/// Start-up with [`TENANTS`] tenants, each with every detector and a backlog: the
/// daemon is stopped before its pipeline runs and opened again on its data directory,
/// timed from opening to the first batch any detector commits and to every detector's
/// first batch; with the compiled-code cache as the installs left it (warm), and
/// emptied (cold), interleaved. Each restart has a backlog of its own, ingested while
/// no pipeline runs.
pub fn measure_restart(
    setup: &DaemonSetup<'_>,
    lines: &[String],
    rounds: usize,
    push: &mut dyn FnMut(Figure),
) -> anyhow::Result<()> {
    let restarts = rounds.max(1) * 2;
    let share = lines.len() / (TENANTS * restarts);
    anyhow::ensure!(share > 0, "too few events for {restarts} restarts");
    let mut service = Loopback::start(config(), false)?;
    let mut tokens = Vec::new();
    let mut plugins = Vec::new();
    for t in 0..TENANTS {
        let name = format!("tenant{t:03}");
        let api = service.tenant(&name)?;
        for d in setup.detectors {
            let rec = api.install(d.clone(), "", true)?;
            plugins.push((name.clone(), rec["name"].as_str().unwrap_or("").to_owned()));
        }
        tokens.push(api.token().to_owned());
    }
    let (mut warm, mut cold) = (None::<Reached>, None::<Reached>);
    for round in 0..restarts {
        // This round's backlog: a slice of its own per tenant, later than the last.
        for (t, token) in tokens.iter().enumerate() {
            let from = (round * TENANTS + t) * share;
            service.client(token).ingest(&lines[from..from + share])?;
        }
        let stopped = service.stop_keeping_data()?;
        let with_cache = round % 2 == 0;
        if !with_cache && let Some(dir) = stopped.data_dir() {
            std::fs::remove_dir_all(dir.join("code-cache"))?;
        }
        let started = Instant::now();
        let mut running = stopped.start(false)?;
        // Every plugin's first batch: its cursor past where it stood at the opening.
        let targets: Vec<(String, String, u64)> = plugins
            .iter()
            .map(|(t, p)| {
                let at = running.daemon.detector_cursor(t, p).unwrap_or(0);
                (t.clone(), p.clone(), at + 1)
            })
            .collect();
        running.start_pipeline();
        let run = wait_cursors(&running, &targets, started, Duration::from_secs(600))
            .ok_or_else(|| anyhow::anyhow!("a plugin ran no batch within 600 s of a restart"))?;
        let kept = if with_cache { &mut warm } else { &mut cold };
        if kept.as_ref().is_none_or(|k| run.all < k.all) {
            *kept = Some(run);
        }
        // Back to a daemon without a pipeline for the next backlog.
        service = running.stop_keeping_data()?.start(false)?;
    }
    service.stop()?;
    let (warm, cold) = warm
        .zip(cold)
        .ok_or_else(|| anyhow::anyhow!("no rounds run"))?;
    let n = plugins.len();
    push(Figure {
        name: format!(
            "daemon restart, {n} plugins, compiled-code cache warm: every plugin's first batch (ms)"
        ),
        value: format!("{:.0}", warm.all.as_secs_f64() * 1e3),
        goal: "< 1000".into(),
        pass: Some(warm.all < Duration::from_secs(1)),
    });
    push(Figure::info(
        format!("daemon restart, {n} plugins: the first batch, warm / cold cache (ms)"),
        format!(
            "{:.0} / {:.0}",
            warm.first.as_secs_f64() * 1e3,
            cold.first.as_secs_f64() * 1e3
        ),
    ));
    push(Figure::info(
        format!("daemon restart, {n} plugins, cache cold: every plugin's first batch (ms)"),
        format!("{:.0}", cold.all.as_secs_f64() * 1e3),
    ));
    Ok(())
}

/// The latency tenant: the detectors, the probe and the responder, enforcing against
/// the mock Slack API, with nothing in the policy to hold a probe's response back.
fn latency_tenant(
    setup: &DaemonSetup<'_>,
    service: &Loopback,
) -> anyhow::Result<(Api, Vec<(String, String)>)> {
    let api = service.tenant("acme")?;
    let mut plugins = Vec::new();
    for d in setup.detectors.iter().chain([&setup.probe.to_vec()]) {
        let rec = api.install(d.clone(), "", true)?;
        plugins.push((
            "acme".to_owned(),
            rec["name"].as_str().unwrap_or("").to_owned(),
        ));
    }
    // The probe's findings are of low severity.
    api.install(setup.responder.to_vec(), r#"{"min_severity": "low"}"#, true)?;
    let policy = json!({
        "mode": "enforce",
        "min_score": 0.0,
        "cooldown_minutes": 0,
        "max_responses_per_hour": 1_000_000,
        "responses": {
            "slack_api_url": format!("{}/api", service.slack),
            "slack_token": "xoxp-bench-token",
        }
    });
    api.put_policy(&policy)?;
    Ok((api, plugins))
}

/// Event-to-response latency at half the maximum load: the maximum is measured first
/// (`warm` events sent as fast as one client can, until every detector has processed
/// them),
/// then a steady stream at half that rate runs for `seconds` while probes (single
/// failed logins, each for a new user) are sent every 20 ms; a probe's latency runs
/// from just before its request to the mock Slack API receiving its session reset.
pub fn measure_latency(
    setup: &DaemonSetup<'_>,
    lines: &[String],
    warm: usize,
    seconds: u64,
    push: &mut dyn FnMut(Figure),
) -> anyhow::Result<()> {
    let service = Loopback::start(config(), true)?;
    let (api, plugins) = latency_tenant(setup, &service)?;

    // The maximum load.
    let warm = warm.min(lines.len());
    let started = Instant::now();
    for chunk in lines[..warm].chunks(1_000) {
        api.ingest(chunk)?;
    }
    let targets: Vec<(String, String, u64)> = plugins
        .iter()
        .map(|(t, p)| (t.clone(), p.clone(), warm as u64))
        .collect();
    if wait_cursors(&service, &targets, Instant::now(), Duration::from_secs(600)).is_none() {
        anyhow::bail!("the maximum-load stream did not finish within 600 s");
    }
    let max_rate = warm as f64 / started.elapsed().as_secs_f64();
    let rate = max_rate / 2.0;

    // Half of it, steady: a request every 10 ms with the events due by then (a slow
    // answer makes the next request larger, not the rate lower); probes beside it.
    let stop = Arc::new(AtomicBool::new(false));
    let event_time = Arc::new(AtomicI64::new(
        lines[..warm]
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| {
                v["date_create"]
                    .as_i64()
                    .map(|s| s * 1000)
                    .or(v["time_ms"].as_i64())
            })
            .unwrap_or(0),
    ));
    let rest: Vec<String> = lines[warm..].to_vec();
    let loader = {
        let (api, stop) = (api.clone(), stop.clone());
        std::thread::spawn(move || -> anyhow::Result<(usize, Option<f64>)> {
            let started = Instant::now();
            let (mut sent, mut tick) = (0usize, 0u64);
            while !stop.load(Ordering::Relaxed) && sent < rest.len() {
                tick += 1;
                let due = (started.elapsed().as_secs_f64() * rate) as usize;
                let end = due.min(rest.len());
                if end > sent {
                    api.ingest(&rest[sent..end])?;
                    sent = end;
                }
                let next = started + Duration::from_millis(10 * tick);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            // Every event sent before the probes ended: the rest of the run had no load.
            let ran_out = (sent == rest.len() && !stop.load(Ordering::Relaxed))
                .then(|| started.elapsed().as_secs_f64());
            Ok((sent, ran_out))
        })
    };
    let cpu_before = cpu_seconds();
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut acks: Vec<f64> = Vec::new();
    let probes_started = Instant::now();
    let mut i = 0u64;
    while probes_started.elapsed() < Duration::from_secs(seconds) {
        i += 1;
        let user = format!("UPROBE{i:06}");
        let line = json!({
            "id": format!("probe-{i}"),
            "time_ms": event_time.load(Ordering::Relaxed),
            "action": "user_login_failed",
            "actor": user,
        })
        .to_string();
        let at = Instant::now();
        api.ingest(&[line])?;
        acks.push(at.elapsed().as_secs_f64() * 1e3);
        sent_at.insert(user, at);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (streamed, ran_out) = loader
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
    let phase = probes_started.elapsed().as_secs_f64();
    let achieved = streamed as f64 / phase;
    let cores_busy = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) => (b - a) / phase,
        _ => f64::NAN,
    };

    // Wait for the last probes' responses (a probe never answered counts as lost).
    let deadline = Instant::now() + Duration::from_secs(30);
    let resets = Arc::clone(&service.resets);
    let answered = |resets: &Mutex<Vec<(String, Instant)>>| {
        resets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(u, _)| sent_at.contains_key(u))
            .count()
    };
    while answered(&resets) < sent_at.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut latencies: Vec<f64> = resets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|(u, at)| {
            let sent = sent_at.get(u)?;
            Some(at.saturating_duration_since(*sent).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let lost = sent_at.len().saturating_sub(latencies.len());
    service.stop()?;

    let q = |p| quantile(&latencies, p).unwrap_or(f64::NAN);
    acks.sort_by(f64::total_cmp);
    let ack = |p| quantile(&acks, p).unwrap_or(f64::NAN);
    let ran_out = ran_out.map_or(String::new(), |at| {
        format!("; the stream ran out {at:.1} s into the {phase:.1} s")
    });
    push(Figure::info(
        format!("daemon: load, half of the maximum (events/s{ran_out})"),
        format!("{achieved:.0} of {max_rate:.0}"),
    ));
    push(Figure {
        name: format!(
            "daemon: event-to-response p99 over HTTP at half load (ms; {} probes, {lost} unanswered)",
            sent_at.len()
        ),
        value: format!("{:.2}", q(0.99)),
        goal: "<= 10".into(),
        pass: Some(q(0.99) <= 10.0 && lost == 0),
    });
    push(Figure::info(
        "daemon: event-to-response p50 / p999 / max (ms)",
        format!("{:.2} / {:.2} / {:.2}", q(0.5), q(0.999), q(1.0)),
    ));
    push(Figure::info(
        "daemon: durable ingest ack p50 / p99 / max (ms)",
        format!("{:.2} / {:.2} / {:.2}", ack(0.5), ack(0.99), ack(1.0)),
    ));
    push(Figure::info(
        "daemon: cores busy at half load (this process, clients included)",
        format!("{cores_busy:.2}"),
    ));
    Ok(())
}
