//! The workers' instance cache under `max_instances`: more live plugins than a worker
//! may keep means the least recently used instances are dropped and instantiated again
//! when their plugin next has work, with no fault and the same findings (plugin state
//! lives in the database, not in the instance).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aer_host::config::ServeConfig;
use aer_host::synth::{GenConfig, generate, to_json};
use aer_tests::{TestDaemon, plugins};

const DETECTORS: [&str; 3] = [
    plugins::EXCESSIVE_DOWNLOADS,
    plugins::SESSION_FINGERPRINT,
    plugins::NEW_NETWORK_ORIGIN,
];

/// A tenant's findings (rule, subject, time) and its plugins' statuses.
type TenantOutcome = (BTreeSet<String>, Vec<String>);

/// Feed every tenant the same events in chunks, tenant after tenant, waiting for each
/// chunk to be processed; returns each tenant's findings (rule, subject, time) and its
/// plugins' statuses, and how many instances the workers built.
fn run(config: ServeConfig, tenants: usize, lines: &[String]) -> (Vec<TenantOutcome>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), config);
    let mut all = Vec::new();
    for i in 0..tenants {
        let token = d.tenant(&format!("t{i}"));
        let names: Vec<String> = DETECTORS.iter().map(|p| d.install(&token, p, "")).collect();
        all.push((format!("t{i}"), token, names));
    }
    let mut sent = 0u64;
    for chunk in lines.chunks(400) {
        sent += chunk.len() as u64;
        for (tenant, token, names) in &all {
            let (status, ack) = d.request(
                "POST",
                "/v1/events",
                Some(token),
                Some("application/x-ndjson"),
                chunk.join("\n").into_bytes(),
            );
            assert_eq!(status, 200, "{ack}");
            let started = Instant::now();
            while names
                .iter()
                .any(|n| d.daemon.detector_cursor(tenant, n).unwrap() < sent)
            {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{tenant} stalled"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let per_tenant = all
        .iter()
        .map(|(_, token, names)| {
            let (status, body) =
                d.request("GET", "/v1/findings?limit=1000", Some(token), None, vec![]);
            assert_eq!(status, 200, "{body}");
            let findings = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{} {} {}",
                        f["rule"], f["output_fields"]["subject"], f["time"]
                    )
                })
                .collect();
            let statuses = names
                .iter()
                .map(|n| {
                    let (_, rec) = d.request(
                        "GET",
                        &format!("/v1/plugins/{n}"),
                        Some(token),
                        None,
                        vec![],
                    );
                    rec["status"].as_str().unwrap_or("").to_owned()
                })
                .collect();
            (findings, statuses)
        })
        .collect();
    let (status, metrics) = d.request("GET", "/metrics", Some(aer_tests::ADMIN), None, vec![]);
    assert_eq!(status, 200);
    let built = metrics
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("aer_plugin_instantiations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    (per_tenant, built)
}

#[test]
fn more_live_plugins_than_instances_evicts_and_finds_the_same() {
    let data = generate(&GenConfig {
        users: 20,
        days: 10,
        messages_per_day: 0.0,
        ..GenConfig::default()
    });
    let lines: Vec<String> = data.events.iter().map(to_json).collect();
    // One worker keeping at most 4 instances, for 3 tenants x 3 detectors.
    let small = ServeConfig {
        max_instances: 36,
        pipeline_threads: 1,
        ..ServeConfig::default()
    };
    let (squeezed, rebuilt) = run(small, 3, &lines);
    let (reference, built) = run(
        ServeConfig {
            pipeline_threads: 1,
            ..ServeConfig::default()
        },
        1,
        &lines,
    );
    assert_eq!(built, 3, "with room, each plugin is instantiated once");
    assert!(
        rebuilt > 9 * 10,
        "without room, instances are dropped and built again: {rebuilt}"
    );
    let (want, _) = &reference[0];
    assert!(
        want.len() >= 3,
        "the events hold attacks the detectors find: {want:?}"
    );
    for (findings, statuses) in &squeezed {
        assert!(statuses.iter().all(|s| s == "enabled"), "{statuses:?}");
        assert_eq!(findings, want);
    }
}
