//! Noisy neighbour: a steady tenant's throughput and event-to-finding latency through
//! the real daemon (HTTP on loopback, sled, real components), alone, while another
//! tenant's plugin loops on every batch at full event rate (re-enabled whenever it is
//! quarantined, so it never stops trying), and while two tenants respond to attack after
//! attack through a Slack API that answers every call 429 (their effects retried after
//! `Retry-After`). Solo and neighbour runs are interleaved and the ratios are taken run
//! by run, since this machine is shared.
//!
//! `cargo bench -p aer-tests --bench noisy_neighbour` (`-- --rounds N --users N`).
#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_host::synth::{GenConfig, generate, to_json};
use aer_tests::{TestDaemon, plugins};

const NDJSON: Option<&str> = Some("application/x-ndjson");
/// The steady tenant's detectors.
const STEADY: [&str; 4] = [
    plugins::EXCESSIVE_DOWNLOADS,
    plugins::MESSAGE_VOLUME,
    plugins::NEW_NETWORK_ORIGIN,
    plugins::SESSION_FINGERPRINT,
];

fn upload(d: &TestDaemon, token: &str, path: &str, config: &str) -> String {
    let (status, rec) = d.request(
        "POST",
        "/v1/plugins",
        Some(token),
        None,
        std::fs::read(path).unwrap(),
    );
    assert_eq!(status, 201, "{rec}");
    let name = rec["name"].as_str().unwrap().to_owned();
    if !config.is_empty() {
        let (status, body) = d.request(
            "PUT",
            &format!("/v1/plugins/{name}/config"),
            Some(token),
            Some("application/json"),
            config.as_bytes().to_vec(),
        );
        assert_eq!(status, 200, "{body}");
    }
    name
}

fn enable(d: &TestDaemon, token: &str, name: &str) {
    let (status, body) = d.request(
        "POST",
        &format!("/v1/plugins/{name}/enable"),
        Some(token),
        None,
        vec![],
    );
    assert_eq!(status, 200, "{body}");
}

fn cursor(d: &TestDaemon, token: &str, name: &str) -> u64 {
    let (_, rec) = d.request(
        "GET",
        &format!("/v1/plugins/{name}"),
        Some(token),
        None,
        vec![],
    );
    rec["cursor"].as_u64().unwrap_or(0)
}

fn send(d: &TestDaemon, token: &str, lines: &[String]) {
    for chunk in lines.chunks(5_000) {
        let body = chunk.join("\n").into_bytes();
        let (status, answer) = d.request("POST", "/v1/events", Some(token), NDJSON, body);
        assert_eq!(status, 200, "{answer}");
    }
}

struct Run {
    events_per_second: f64,
    latencies_ms: Vec<f64>,
}

/// Who shares the daemon with the steady tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Neighbour {
    None,
    /// A plugin looping on every batch.
    Looping,
    /// Two tenants whose responses meet a Slack that answers 429 to everything.
    SlowSlack,
}

/// `n` download bursts (60 downloads in ten minutes, each by another user): `n`
/// decisions that respond.
fn bursts(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|u| {
            (0..60).map(move |i| {
                format!(
                    r#"{{"id":"b{u}-{i}","time_ms":{},"action":"file_downloaded","actor":"UB{u}"}}"#,
                    1_767_600_000_000i64 + u as i64 * 3_600_000 + i as i64 * 10_000
                )
            })
        })
        .collect()
}

/// Two tenants responding to `n` attacks each through `slack`, which answers 429.
fn slow_slack_neighbours(d: &TestDaemon, slack: &aer_tests::MockSlack, n: usize) {
    for name in ["slow-a", "slow-b"] {
        let t = d.tenant(name);
        for (path, config) in [
            (plugins::EXCESSIVE_DOWNLOADS, ""),
            (plugins::SLACK_SESSION_RESET, ""),
        ] {
            let plugin = upload(d, &t, path, config);
            enable(d, &t, &plugin);
        }
        let policy = serde_json::json!({
            "mode": "enforce",
            "max_responses_per_hour": 1_000_000,
            "responses": {
                "slack_api_url": format!("{}/api", slack.base),
                "slack_token": "xoxp-slow",
                "max_attempts": 10
            }
        });
        let (status, body) = d.request(
            "PUT",
            "/v1/policy",
            Some(&t),
            Some("application/json"),
            policy.to_string().into_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        send(d, &t, &bursts(n));
    }
}

/// One run on a fresh daemon: the steady tenant's backlog of `lines`, then `probes`
/// single failed logins one at a time, with `neighbour` beside it.
fn run(lines: &[String], neighbour: Neighbour, probes: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        ingest: aer_host::config::IngestConfig {
            max_events_per_second: 10_000_000,
            ..Default::default()
        },
        ..ServeConfig::default()
    };
    let d = Arc::new(TestDaemon::start(dir.path(), config));
    let steady = d.tenant("steady");
    let names: Vec<String> = STEADY.iter().map(|p| upload(&d, &steady, p, "")).collect();
    let probe = upload(&d, &steady, plugins::MINIMAL_DETECTOR, "");

    let stop = Arc::new(AtomicBool::new(false));
    let mut keeper = None;
    let slack = aer_tests::MockSlack::start(usize::MAX);
    if neighbour == Neighbour::SlowSlack {
        slow_slack_neighbours(&d, &slack, 100);
        std::thread::sleep(Duration::from_millis(300));
    }
    if neighbour == Neighbour::Looping {
        let noisy_token = d.tenant("noisy");
        let name = upload(&d, &noisy_token, plugins::HOSTILE, r#"{"mode": "loop"}"#);
        enable(&d, &noisy_token, &name);
        let hostile: Vec<String> = (0..50_000)
            .map(|i| format!(r#"{{"id":"h{i}","time_ms":{i},"action":"hostile","actor":"X"}}"#))
            .collect();
        send(&d, &noisy_token, &hostile);
        // Keep it looping: re-enable it whenever it is quarantined.
        let (d2, stop2) = (d.clone(), stop.clone());
        keeper = Some(std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let (_, rec) = d2.request(
                    "GET",
                    &format!("/v1/plugins/{name}"),
                    Some(&noisy_token),
                    None,
                    vec![],
                );
                if rec["status"] == "quarantined" {
                    enable(&d2, &noisy_token, &name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
        std::thread::sleep(Duration::from_millis(300));
    }

    // Throughput: the backlog is in the inbox before the detectors are enabled.
    send(&d, &steady, lines);
    let n = lines.len() as u64;
    let started = Instant::now();
    for name in &names {
        enable(&d, &steady, name);
    }
    while names.iter().any(|name| cursor(&d, &steady, name) < n) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let events_per_second = n as f64 / started.elapsed().as_secs_f64();

    // Latency: one failed login at a time, from acknowledgement to committed finding.
    enable(&d, &steady, &probe);
    while cursor(&d, &steady, &probe) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut latencies_ms = Vec::with_capacity(probes);
    for i in 0..probes {
        let line = format!(
            r#"{{"id":"probe{i}","time_ms":{},"action":"user_login_failed","actor":"U1"}}"#,
            2_000_000_000_000i64 + i as i64
        );
        let (status, ack) = d.request(
            "POST",
            "/v1/events",
            Some(&steady),
            NDJSON,
            line.into_bytes(),
        );
        assert_eq!(status, 200, "{ack}");
        let acked = Instant::now();
        let want = ack["last_seq"].as_u64().unwrap() + 1;
        while cursor(&d, &steady, &probe) < want {
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies_ms.push(acked.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(k) = keeper {
        k.join().unwrap();
    }
    Run {
        events_per_second,
        latencies_ms,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rounds = aer_tests::bench_arg("--rounds", 5);
    let users = aer_tests::bench_arg("--users", 150);
    let probes = aer_tests::bench_arg("--probes", 200);
    let data = generate(&GenConfig {
        users,
        days: 7,
        messages_per_day: 60.0,
        ..GenConfig::default()
    });
    let lines: Vec<String> = data.events.iter().map(to_json).collect();
    println!(
        "noisy neighbour: steady tenant with {} detectors over {} events; neighbour loops on every batch (deadline {} ms), re-enabled whenever quarantined",
        STEADY.len(),
        lines.len(),
        aer_host::limits::Limits::default().deadline_ms
    );
    println!(
        "machine: {} cores; pipeline threads: one per core",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "slow-Slack neighbours: two tenants, 100 attacks each, every Slack call answered 429 (Retry-After: 1)"
    );
    let (mut ratios, mut slow_ratios) = (Vec::new(), Vec::new());
    let (mut solo_lat, mut noisy_lat, mut slow_lat) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "\n| round | solo events/s | looping neighbour events/s | ratio | slow-Slack neighbours events/s | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let solo = run(&lines, Neighbour::None, probes);
        let noisy = run(&lines, Neighbour::Looping, probes);
        let slow = run(&lines, Neighbour::SlowSlack, probes);
        let ratio = noisy.events_per_second / solo.events_per_second;
        let slow_ratio = slow.events_per_second / solo.events_per_second;
        println!(
            "| {round} | {:.0} | {:.0} | {ratio:.3} | {:.0} | {slow_ratio:.3} |",
            solo.events_per_second, noisy.events_per_second, slow.events_per_second
        );
        ratios.push(ratio);
        slow_ratios.push(slow_ratio);
        solo_lat.extend(solo.latencies_ms);
        noisy_lat.extend(noisy.latencies_ms);
        slow_lat.extend(slow.latencies_ms);
    }
    for v in [
        &mut ratios,
        &mut slow_ratios,
        &mut solo_lat,
        &mut noisy_lat,
        &mut slow_lat,
    ] {
        v.sort_by(f64::total_cmp);
    }
    println!("\n| figure | solo | looping neighbour | slow-Slack neighbours | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| throughput ratio (median of {rounds}) | 1 | {:.3} | {:.3} | >= 0.90 |",
        percentile(&ratios, 0.5),
        percentile(&slow_ratios, 0.5)
    );
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        println!(
            "| event-to-finding latency {name} (ms) | {:.2} | {:.2} | {:.2} | bounded |",
            percentile(&solo_lat, p),
            percentile(&noisy_lat, p),
            percentile(&slow_lat, p)
        );
    }
}
