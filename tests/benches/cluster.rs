//! Cluster mode against one node, on this machine: real `aer serve` processes, a real
//! `nats-server` (`AER_NATS_SERVER`, as for the tests), events over HTTP on loopback.
//! For one node alone and for clusters of 1, 2 and 3 nodes: events per second from the
//! first request to every tenant's detector having processed every event (the events
//! sent through every node in turn by three clients), each request's acknowledgement
//! time under that load (p50/p99), and event-to-response latency with the machine
//! otherwise idle (a burst of downloads in one request to the session reset at the mock
//! Slack API, p50/p99); then the failover time of a three-node cluster with the default
//! lease.
//!
//! `cargo bench -p aer-tests --bench cluster` (`-- --tenants N --events N --probes N`).
#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aer_host::config::{ClusterConfig, IngestConfig, OutboundConfig, ServeConfig};
use aer_tests::{ADMIN, MockSlack, NatsServer, ServeProcess, http};

const NDJSON: Option<&str> = Some("application/x-ndjson");

fn config(cluster: Option<(&NatsServer, usize)>, lease_ms: u64) -> ServeConfig {
    ServeConfig {
        outbound: OutboundConfig::loopback(),
        ingest: IngestConfig {
            max_events_per_second: 10_000_000,
            ..IngestConfig::default()
        },
        cluster: match cluster {
            Some((nats, i)) => ClusterConfig {
                enabled: true,
                nats_url: nats.url.clone(),
                node_id: format!("node-{i}"),
                partitions: 16,
                lease_ms,
                ..ClusterConfig::default()
            },
            None => ClusterConfig::default(),
        },
        ..ServeConfig::default()
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Every partition owned and agreed on by every node, and no move for three seconds
/// (the nodes have taken their shares).
fn wait_owned(nodes: &[ServeProcess]) {
    let start = Instant::now();
    let mut stable: Option<(Instant, serde_json::Value)> = None;
    loop {
        let views: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                http(
                    &n.base,
                    "GET",
                    "/v1/admin/cluster",
                    Some(ADMIN),
                    None,
                    vec![],
                )
                .map(|(_, v)| v)
                .unwrap_or_default()
            })
            .collect();
        let owned: usize = views
            .iter()
            .map(|v| v["owned"].as_array().map_or(0, Vec::len))
            .sum();
        let agreed = views.windows(2).all(|w| w[0]["owners"] == w[1]["owners"]);
        if views[0]["enabled"] == false {
            return;
        }
        if owned == 16 && agreed {
            match &stable {
                Some((at, before)) if *before == views[0]["owners"] => {
                    if at.elapsed() >= Duration::from_secs(3) {
                        return;
                    }
                }
                _ => stable = Some((Instant::now(), views[0]["owners"].clone())),
            }
        } else {
            stable = None;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not owned: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Run {
    events_per_second: f64,
    /// CPU of the AER processes and of the NATS server per event, in microseconds.
    node_us: f64,
    nats_us: f64,
    ack_ms: Vec<f64>,
    response_ms: Vec<f64>,
}

/// One mode: `nodes` processes (cluster nodes if `nats`), `tenants` tenants each sent
/// `events` events, then `probes` bursts.
fn run(
    binary: &Path,
    nats: Option<&NatsServer>,
    nodes: usize,
    (tenants, events, probes): (usize, usize, usize),
) -> Run {
    let dirs: Vec<tempfile::TempDir> = (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
    let procs: Vec<ServeProcess> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| ServeProcess::spawn(binary, d.path(), &config(nats.map(|n| (n, i)), 6_000)))
        .collect();
    wait_owned(&procs);
    let slack = MockSlack::start(0);
    let tokens: Vec<String> = (0..tenants)
        .map(|t| {
            aer_tests::set_up_responding_tenant(
                &procs[t % nodes].base,
                &format!("t{t}"),
                &slack.base,
            )
        })
        .collect();
    let lines = aer_tests::download_org(events, 10);
    let bodies: Vec<Vec<u8>> = lines
        .chunks(2_000)
        .map(|c| c.concat().into_bytes())
        .collect();
    // Work: (tenant, chunk), taken by three clients, sent to the nodes in turn.
    let work: Mutex<Vec<(usize, usize)>> = Mutex::new(
        (0..bodies.len())
            .flat_map(|c| (0..tenants).map(move |t| (t, c)))
            .rev()
            .collect(),
    );
    let acks = Mutex::new(Vec::new());
    let cpu = |procs: &[ServeProcess]| procs.iter().map(ServeProcess::cpu_seconds).sum::<f64>();
    let (node_cpu0, nats_cpu0) = (cpu(&procs), nats.map_or(0.0, NatsServer::cpu_seconds));
    let started = Instant::now();
    std::thread::scope(|s| {
        for client in 0..3 {
            let (work, acks, procs, tokens, bodies) = (&work, &acks, &procs, &tokens, &bodies);
            s.spawn(move || {
                let mut turn = client;
                loop {
                    let Some((t, c)) = work.lock().unwrap().pop() else {
                        return;
                    };
                    turn += 1;
                    let base = &procs[turn % procs.len()].base;
                    let sent = Instant::now();
                    let (status, r) = http(
                        base,
                        "POST",
                        "/v1/events",
                        Some(&tokens[t]),
                        NDJSON,
                        bodies[c].clone(),
                    )
                    .unwrap();
                    assert_eq!(status, 200, "{r}");
                    acks.lock()
                        .unwrap()
                        .push(sent.elapsed().as_secs_f64() * 1e3);
                }
            });
        }
    });
    // Every tenant's detector has processed every event.
    for token in &tokens {
        loop {
            let rec =
                aer_tests::plugin_record(&procs[0].base, token, "excessive-downloads").unwrap();
            if rec["cursor"].as_u64() == Some(events as u64) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "not processed: {rec}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let total = (tenants * events) as f64;
    let events_per_second = total / started.elapsed().as_secs_f64();
    let node_us = (cpu(&procs) - node_cpu0) / total * 1e6;
    let nats_us = (nats.map_or(0.0, NatsServer::cpu_seconds) - nats_cpu0) / total * 1e6;
    // Event to response: a burst of 60 downloads by a new user in one request, to the
    // reset at Slack; through the nodes in turn.
    let mut response_ms = Vec::new();
    let time0: i64 = 1_767_603_600_000 + 3 * 86_400_000;
    for p in 0..probes {
        let user = format!("U9{p:04}");
        let body: String = (0..60)
            .map(|i| {
                format!(
                    "{{\"id\":\"probe-{p}-{i}\",\"time\":{},\"action\":\"file_downloaded\",\"actor\":\"{user}\"}}\n",
                    time0 + (p as i64) * 3_600_000 + i * 1_000
                )
            })
            .collect();
        let base = &procs[p % nodes].base;
        let sent = Instant::now();
        let (status, r) = http(
            base,
            "POST",
            "/v1/events",
            Some(&tokens[0]),
            NDJSON,
            body.into_bytes(),
        )
        .unwrap();
        assert_eq!(status, 200, "{r}");
        loop {
            if slack.calls().resets.iter().any(|(_, u)| *u == user) {
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                let show = |path: &str| {
                    http(base, "GET", path, Some(&tokens[0]), None, vec![])
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default()
                };
                panic!(
                    "no reset for {user}: findings {} decisions {} actions {}",
                    show(&format!("/v1/findings?subject={user}")),
                    show(&format!("/v1/decisions?subject={user}")),
                    show(&format!("/v1/actions?target={user}"))
                );
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        response_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    for p in procs {
        p.terminate();
    }
    let mut ack_ms = acks.into_inner().unwrap();
    ack_ms.sort_by(f64::total_cmp);
    response_ms.sort_by(f64::total_cmp);
    Run {
        events_per_second,
        node_us,
        nats_us,
        ack_ms,
        response_ms,
    }
}

/// Seconds from SIGKILL of one of three nodes to every partition owned again.
fn failover(binary: &Path) -> f64 {
    let nats = NatsServer::start();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut procs: Vec<ServeProcess> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| ServeProcess::spawn(binary, d.path(), &config(Some((&nats, i)), 6_000)))
        .collect();
    wait_owned(&procs);
    let victim = procs.remove(0);
    let killed = Instant::now();
    victim.kill9();
    loop {
        let (_, v) = http(
            &procs[0].base,
            "GET",
            "/v1/admin/cluster",
            Some(ADMIN),
            None,
            vec![],
        )
        .unwrap();
        let alive: Vec<&str> = procs.iter().map(|p| p.base.as_str()).collect();
        let owners = v["owners"].as_array().cloned().unwrap_or_default();
        if owners.len() == 16
            && owners
                .iter()
                .all(|o| alive.contains(&o["url"].as_str().unwrap_or("")))
        {
            return killed.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_aer-under-test"));
    let shape = (
        aer_tests::bench_arg("--tenants", 6),
        aer_tests::bench_arg("--events", 50_000),
        aer_tests::bench_arg("--probes", 20),
    );
    println!(
        "cluster bench: {} tenants x {} events, {} probes, {}",
        shape.0,
        shape.1,
        shape.2,
        aer_host::bench::machine()
    );
    println!(
        "| mode | events/s | CPU per event: AER / NATS (us) | ack p50 / p99 (ms) | event to response p50 / p99 (ms) |"
    );
    println!("|---|---|---|---|---|");
    let modes: [(&str, Option<usize>); 4] = [
        ("one node, no NATS", None),
        ("cluster, 1 node", Some(1)),
        ("cluster, 2 nodes", Some(2)),
        ("cluster, 3 nodes", Some(3)),
    ];
    for (name, cluster) in modes {
        let nats = cluster.map(|_| NatsServer::start());
        let r = run(binary, nats.as_ref(), cluster.unwrap_or(1), shape);
        println!(
            "| {name} | {:.0} | {:.2} / {:.2} | {:.1} / {:.1} | {:.1} / {:.1} |",
            r.events_per_second,
            r.node_us,
            r.nats_us,
            quantile(&r.ack_ms, 0.5),
            quantile(&r.ack_ms, 0.99),
            quantile(&r.response_ms, 0.5),
            quantile(&r.response_ms, 0.99),
        );
    }
    println!(
        "failover, 3 nodes, lease 6 s: every partition owned again {:.1} s after SIGKILL",
        failover(binary)
    );
}
