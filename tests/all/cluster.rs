//! Cluster mode on real processes: a real `nats-server` with JetStream on loopback and
//! three `aer serve` nodes. A tenant set up through one node, its events sent through
//! all three in turn, ends with the findings, decisions, detector state and session
//! resets at the mock Slack API of one node over the same events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aer_host::config::{ClusterConfig, ServeConfig};
use aer_tests::{ADMIN, MockSlack, NatsServer, TestDaemon, http};
use serde_json::Value;

use crate::crash::{
    ATTACKERS, EVENTS, Proc, chunks, events, plugin_state, send, setup, spawn_with, summary_d,
    summary_f, terminate, wait_done,
};

const PARTITIONS: u32 = 8;

fn node_config(nats: &NatsServer, id: &str) -> ServeConfig {
    ServeConfig {
        cluster: ClusterConfig {
            enabled: true,
            nats_url: nats.url.clone(),
            node_id: id.to_owned(),
            partitions: PARTITIONS,
            lease_ms: 3_000,
            ..ClusterConfig::default()
        },
        ..ServeConfig::default()
    }
}

fn status(base: &str) -> Value {
    http(base, "GET", "/v1/admin/cluster", Some(ADMIN), None, vec![])
        .map(|(_, v)| v)
        .unwrap_or(Value::Null)
}

/// Wait until every partition has one owner and every node agrees who it is; each
/// node's status.
fn wait_owned(nodes: &[&Proc]) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let views: Vec<Value> = nodes.iter().map(|n| status(&n.base)).collect();
        let owned: Vec<u32> = views
            .iter()
            .flat_map(|v| v["owned"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_u64().map(|p| p as u32))
            .collect();
        let distinct: BTreeSet<u32> = owned.iter().copied().collect();
        let agreed = views.windows(2).all(|w| w[0]["owners"] == w[1]["owners"]);
        if owned.len() == PARTITIONS as usize && distinct.len() == owned.len() && agreed {
            return views;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "partitions not owned: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_nodes_take_events_on_any_node_and_decide_as_one_node_does() {
    let lines = events();
    assert_eq!(lines.len(), EVENTS);
    let chunks = chunks(&lines);

    // One node, in-process, over the same events.
    let single_slack = MockSlack::start(0);
    let single_dir = tempfile::tempdir().unwrap();
    let (single_findings, single_decisions) = {
        let d = TestDaemon::start(single_dir.path(), ServeConfig::default());
        let token = setup(&d.base, &single_slack);
        for c in &chunks {
            let (s, r) = send(&d.base, &token, c).unwrap();
            assert_eq!(s, 200, "{r}");
        }
        wait_done(&d.base, &token)
    };
    let single_state = plugin_state(single_dir.path());
    assert_eq!(single_findings.len(), ATTACKERS);

    // Three nodes on one NATS server.
    let nats = NatsServer::start();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<Proc> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| spawn_with(d.path(), node_config(&nats, &format!("node-{i}"))))
        .collect();
    let views = wait_owned(&nodes.iter().collect::<Vec<_>>());
    let slack = MockSlack::start(0);
    // Set up through the first node (forwarded to the owner of the tenant's partition).
    let token = setup(&nodes[0].base, &slack);
    for (i, c) in chunks.iter().enumerate() {
        let base = &nodes[i % nodes.len()].base;
        let (s, r) = send(base, &token, c).unwrap();
        assert_eq!(s, 200, "chunk {i} through node {}: {r}", i % nodes.len());
        assert!(r["stream"]["last_seq"].as_u64().is_some(), "{r}");
    }
    // Any node answers for the tenant.
    let (findings, decisions) = wait_done(&nodes[1].base, &token);
    assert_eq!(summary_f(&findings), summary_f(&single_findings));
    assert_eq!(summary_d(&decisions), summary_d(&single_decisions));
    let (_, f2) = http(&nodes[2].base, "GET", "/v1/findings?limit=1000", Some(&token), None, vec![]).unwrap();
    assert_eq!(f2["items"].as_array().map(Vec::len), Some(ATTACKERS), "{f2}");

    // The detector's state lives on the node owning the tenant's partition.
    let partition = aer_host::daemon::partitions::partition_of("acme", PARTITIONS);
    let owner = views
        .iter()
        .position(|v| {
            v["owned"]
                .as_array()
                .is_some_and(|o| o.iter().any(|p| p.as_u64() == Some(u64::from(partition))))
        })
        .expect("an owner");
    for n in nodes {
        terminate(n);
    }
    assert_eq!(
        plugin_state(dirs[owner].path()),
        single_state,
        "the detector's state equals one node's"
    );
    let calls = slack.calls();
    let users: BTreeSet<&String> = calls.resets.iter().map(|(_, u)| u).collect();
    assert_eq!(users.len(), ATTACKERS);
    assert_eq!(
        calls.resets.len(),
        single_slack.calls().resets.len(),
        "each reset once, as on one node"
    );
}
