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
    ATTACKERS, EVENTS, Proc, chunks, events, kill9, plugin_state, send, setup, spawn_with,
    summary_d, summary_f, terminate, wait_done,
};

const PARTITIONS: u32 = 8;

fn node_config(nats: &NatsServer, id: &str) -> ServeConfig {
    node_config_with(nats, id, 300)
}

fn node_config_with(nats: &NatsServer, id: &str, checkpoint_ms: u64) -> ServeConfig {
    ServeConfig {
        cluster: ClusterConfig {
            enabled: true,
            nats_url: nats.url.clone(),
            node_id: id.to_owned(),
            partitions: PARTITIONS,
            lease_ms: 3_000,
            checkpoint_ms,
            ..ClusterConfig::default()
        },
        ..ServeConfig::default()
    }
}

/// `count` nodes on `nats`, each on a data directory of its own, checkpointing every
/// `checkpoint_ms`.
fn start_nodes(
    nats: &NatsServer,
    count: usize,
    checkpoint_ms: u64,
) -> (Vec<tempfile::TempDir>, Vec<Option<Proc>>) {
    let dirs: Vec<tempfile::TempDir> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let config = node_config_with(nats, &format!("node-{i}"), checkpoint_ms);
            Some(spawn_with(d.path(), config))
        })
        .collect();
    (dirs, nodes)
}

/// What one node makes of the events: findings, decisions, the detector's state, and
/// the idempotency keys of the session resets at Slack.
struct Reference {
    findings: Vec<Value>,
    decisions: Vec<Value>,
    state: std::collections::BTreeMap<String, Vec<u8>>,
    reset_keys: BTreeSet<String>,
}

fn one_node(chunks: &[Vec<u8>]) -> Reference {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let (findings, decisions) = {
        let d = TestDaemon::start(dir.path(), ServeConfig::default());
        let token = setup(&d.base, &slack);
        for c in chunks {
            let (s, r) = send(&d.base, &token, c).unwrap();
            assert_eq!(s, 200, "{r}");
        }
        wait_done(&d.base, &token)
    };
    assert_eq!(findings.len(), ATTACKERS);
    let calls = slack.calls();
    assert_eq!(calls.resets.len(), ATTACKERS);
    Reference {
        findings,
        decisions,
        state: plugin_state(dir.path()),
        reset_keys: calls.reset_keys.into_iter().collect(),
    }
}

/// Which of `nodes` (by index) owns `tenant`'s partition, as `view` says.
fn owner_index(view: &Value, nodes: &[Option<Proc>], tenant: &str) -> Option<usize> {
    let partition = aer_host::daemon::partitions::partition_of(tenant, PARTITIONS);
    let owner = view["owners"]
        .as_array()?
        .iter()
        .find(|o| o["partition"].as_u64() == Some(u64::from(partition)))?;
    let url = owner["url"].as_str()?;
    nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.base == url))
}

/// Wait until the tenant's detector has processed `events` events (its cursor), as
/// the node at `base` answers.
fn wait_processed(base: &str, token: &str, events: usize) {
    let start = Instant::now();
    loop {
        let rec = aer_tests::plugin_record(base, token, "excessive-downloads").unwrap_or_default();
        if rec["cursor"].as_u64() == Some(events as u64) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not every event processed: {rec}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send a chunk through node `first`, or the next live node while one does not answer.
fn send_any(nodes: &[Option<Proc>], first: usize, token: &str, body: &[u8]) -> Value {
    for k in 0..nodes.len() {
        let Some(n) = &nodes[(first + k) % nodes.len()] else {
            continue;
        };
        match send(&n.base, token, body) {
            Ok((200, r)) => return r,
            Ok((503, _)) | Err(_) => continue,
            Ok((s, r)) => panic!("{s}: {r}"),
        }
    }
    panic!("no node took the events");
}

fn status(base: &str) -> Value {
    http(base, "GET", "/v1/admin/cluster", Some(ADMIN), None, vec![])
        .map(|(_, v)| v)
        .unwrap_or(Value::Null)
}

/// Wait until every partition has one owner, every node agrees who it is, and no
/// partition has moved for two of the nodes' turns (a node that joined has taken its
/// share); each node's status.
fn wait_owned(nodes: &[&Proc]) -> Vec<Value> {
    let start = Instant::now();
    let mut before: Option<(Instant, Value)> = None;
    loop {
        let views = owned_views(nodes);
        match (&views, &before) {
            (Some(v), Some((at, b))) if v[0]["owners"] == b[0]["owners"] => {
                if at.elapsed() >= Duration::from_secs(2) {
                    return v.clone();
                }
            }
            (Some(v), _) => before = Some((Instant::now(), Value::Array(v.clone()))),
            (None, _) => before = None,
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "partitions not owned: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each node's status if every partition has one owner and every node agrees.
fn owned_views(nodes: &[&Proc]) -> Option<Vec<Value>> {
    {
        let views: Vec<Value> = nodes.iter().map(|n| status(&n.base)).collect();
        let owned: Vec<u32> = views
            .iter()
            .flat_map(|v| v["owned"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_u64().map(|p| p as u32))
            .collect();
        let distinct: BTreeSet<u32> = owned.iter().copied().collect();
        let agreed = views.windows(2).all(|w| w[0]["owners"] == w[1]["owners"]);
        (owned.len() == PARTITIONS as usize && distinct.len() == owned.len() && agreed)
            .then_some(views)
    }
}

#[test]
fn three_nodes_take_events_on_any_node_and_decide_as_one_node_does() {
    let lines = events();
    assert_eq!(lines.len(), EVENTS);
    let chunks = chunks(&lines);

    // One node, in-process, over the same events.
    let one = one_node(&chunks);

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
    wait_processed(&nodes[1].base, &token, EVENTS);
    let (findings, decisions) = wait_done(&nodes[1].base, &token);
    assert_eq!(summary_f(&findings), summary_f(&one.findings));
    assert_eq!(summary_d(&decisions), summary_d(&one.decisions));
    let (_, f2) = http(
        &nodes[2].base,
        "GET",
        "/v1/findings?limit=1000",
        Some(&token),
        None,
        vec![],
    )
    .unwrap();
    assert_eq!(
        f2["items"].as_array().map(Vec::len),
        Some(ATTACKERS),
        "{f2}"
    );

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
    // Every message is in a checkpoint now: the stream keeps none of them.
    let stream_messages = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let client = async_nats::connect(nats.url.as_str()).await.unwrap();
                let js = async_nats::jetstream::new(client);
                let mut stream = js.get_stream("AER_EVENTS").await.unwrap();
                stream.info().await.unwrap().state.messages
            })
    };
    let start = Instant::now();
    while stream_messages() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the stream is not trimmed behind the checkpoints: {} messages",
            stream_messages()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The owner says so in its metrics, with the checkpoints it wrote.
    let (_, metrics) = http(
        &nodes[owner].base,
        "GET",
        "/metrics",
        Some(ADMIN),
        None,
        vec![],
    )
    .unwrap();
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains(&format!(
            "aer_cluster_partition_owned{{partition=\"{partition}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "aer_cluster_partition_lag_messages{{partition=\"{partition}\"}} 0"
        )),
        "every message let in: {metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "aer_cluster_partition_checkpoint_seq{{partition=\"{partition}\"}}"
        )),
        "{metrics}"
    );
    for n in nodes {
        terminate(n);
    }
    assert_eq!(
        plugin_state(dirs[owner].path()),
        one.state,
        "the detector's state equals one node's"
    );
    let calls = slack.calls();
    let keys: BTreeSet<String> = calls.reset_keys.iter().cloned().collect();
    assert_eq!(keys, one.reset_keys, "the same resets as on one node");
    assert_eq!(calls.resets.len(), ATTACKERS, "each reset once");
}

#[test]
fn a_node_killed_mid_stream_is_replaced_and_nothing_is_lost_or_doubled() {
    let lines = events();
    let chunks = chunks(&lines);
    let one = one_node(&chunks);

    let nats = NatsServer::start();
    let (dirs, mut nodes) = start_nodes(&nats, 3, 300);
    wait_owned(&nodes.iter().flatten().collect::<Vec<_>>());
    let slack = MockSlack::start(0);
    let token = setup(&nodes[0].as_ref().unwrap().base, &slack);
    let view = status(&nodes[0].as_ref().unwrap().base);
    let victim = owner_index(&view, &nodes, "acme").expect("acme's partition has an owner");

    let mut killed_at = None;
    for (i, c) in chunks.iter().enumerate() {
        if i == chunks.len() / 2 {
            // The owner of the tenant's partition dies with half the events sent (and
            // findings, decisions and resets under way).
            kill9(nodes[victim].take().unwrap());
            killed_at = Some(Instant::now());
        }
        send_any(&nodes, i % nodes.len(), &token, c);
    }
    // Its partition is owned again, by a live node, within 15 s of the kill.
    let killed_at = killed_at.unwrap();
    let survivor = nodes.iter().flatten().next().unwrap().base.clone();
    let new_owner = loop {
        if let Some(o) = owner_index(&status(&survivor), &nodes, "acme") {
            break o;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "the partition was not taken over: {}",
            status(&survivor)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "partition owned again after {} ms",
        killed_at.elapsed().as_millis()
    );
    // Every event processed once: none lost, none twice.
    wait_processed(&survivor, &token, EVENTS);
    let (findings, decisions) = wait_done(&survivor, &token);
    assert_eq!(summary_f(&findings), summary_f(&one.findings));
    assert_eq!(summary_d(&decisions), summary_d(&one.decisions));
    let calls = slack.calls();
    let keys: BTreeSet<String> = calls.reset_keys.iter().cloned().collect();
    assert_eq!(
        keys, one.reset_keys,
        "every decided reset reached Slack, and no other"
    );
    // A reset the killed node had on the wire when it died is sent again (with its
    // idempotency key); none that finished is.
    assert!(
        calls.resets.len() <= ATTACKERS + 1,
        "{} reset calls for {ATTACKERS} decisions",
        calls.resets.len()
    );
    for n in nodes.iter_mut() {
        if let Some(n) = n.take() {
            terminate(n);
        }
    }
    assert_eq!(
        plugin_state(dirs[new_owner].path()),
        one.state,
        "the new owner's detector state equals one node's"
    );
}

/// Send a chunk, retrying every live node for up to 30 s (NATS restarting, a
/// partition moving).
fn send_patiently(nodes: &[Option<Proc>], first: usize, token: &str, body: &[u8]) -> Value {
    let start = Instant::now();
    loop {
        for k in 0..nodes.len() {
            let Some(n) = &nodes[(first + k) % nodes.len()] else {
                continue;
            };
            if let Ok((200, r)) = send(&n.base, token, body) {
                return r;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no node took the events"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_graceful_hand_off_a_joining_node_and_a_nats_restart_lose_nothing() {
    let lines = events();
    let chunks = chunks(&lines);
    let one = one_node(&chunks);

    let mut nats = NatsServer::start();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |i: usize, nats: &NatsServer| {
        Some(spawn_with(
            dirs[i].path(),
            node_config(nats, &format!("node-{i}")),
        ))
    };
    let mut nodes: Vec<Option<Proc>> = vec![start(0, &nats), start(1, &nats), None, None];
    wait_owned(&nodes.iter().flatten().collect::<Vec<_>>());
    let slack = MockSlack::start(0);
    let token = setup(&nodes[0].as_ref().unwrap().base, &slack);
    let third = chunks.len() / 3;
    for (i, c) in chunks.iter().enumerate() {
        if i == third {
            // SIGTERM to the owner: it checkpoints and releases its partitions, so
            // another node owns them well before a lease would have run out.
            let view = status(&nodes[0].as_ref().unwrap().base);
            let owner = owner_index(&view, &nodes, "acme").expect("an owner");
            nodes[2] = start(2, &nats);
            terminate(nodes[owner].take().unwrap());
            let stopped = Instant::now();
            let other = nodes.iter().flatten().next().unwrap().base.clone();
            while owner_index(&status(&other), &nodes, "acme").is_none() {
                assert!(
                    stopped.elapsed() < Duration::from_secs(15),
                    "not taken over"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("handed over in {} ms", stopped.elapsed().as_millis());
        }
        if i == 2 * third {
            // The NATS server itself restarts (SIGKILL) while the nodes run, and a
            // fourth node joins: partitions move to it.
            nats.restart();
            nodes[3] = start(3, &nats);
        }
        send_patiently(&nodes, i, &token, c);
    }
    let live = nodes.iter().flatten().next().unwrap().base.clone();
    wait_processed(&live, &token, EVENTS);
    let (findings, decisions) = wait_done(&live, &token);
    assert_eq!(summary_f(&findings), summary_f(&one.findings));
    assert_eq!(summary_d(&decisions), summary_d(&one.decisions));
    let views = wait_owned(&nodes.iter().flatten().collect::<Vec<_>>());
    assert!(
        views
            .iter()
            .all(|v| !v["owned"].as_array().unwrap().is_empty()),
        "every live node, the one that joined too, owns a share: {views:?}"
    );
    let calls = slack.calls();
    let keys: BTreeSet<String> = calls.reset_keys.iter().cloned().collect();
    assert_eq!(keys, one.reset_keys);
    assert_eq!(calls.resets.len(), ATTACKERS, "no reset twice");
}

#[test]
fn effects_done_before_a_failover_are_not_performed_again() {
    // No checkpoint while the events go in (an hour apart): the node taking over replays
    // every decision from the stream, and must find their effects done in `aer-effects`.
    let lines = events();
    let chunks = chunks(&lines);
    let nats = NatsServer::start();
    let (_dirs, mut nodes) = start_nodes(&nats, 3, 3_600_000);
    wait_owned(&nodes.iter().flatten().collect::<Vec<_>>());
    let slack = MockSlack::start(0);
    let token = setup(&nodes[0].as_ref().unwrap().base, &slack);
    let victim = owner_index(&status(&nodes[0].as_ref().unwrap().base), &nodes, "acme").unwrap();
    let half = chunks.len() / 2;
    for (i, c) in chunks[..half].iter().enumerate() {
        send_any(&nodes, i, &token, c);
    }
    // Every effect decided so far is done (none on the wire) when the owner dies.
    let (_, decisions) = wait_done(&nodes[victim].as_ref().unwrap().base, &token);
    let before = slack.calls().resets.len();
    assert!(
        before > 0 && before == decisions.len(),
        "{before} resets, {} decisions",
        decisions.len()
    );
    kill9(nodes[victim].take().unwrap());
    for (i, c) in chunks[half..].iter().enumerate() {
        send_any(&nodes, i, &token, c);
    }
    let survivor = nodes.iter().flatten().next().unwrap().base.clone();
    wait_processed(&survivor, &token, EVENTS);
    let (_, decisions) = wait_done(&survivor, &token);
    assert_eq!(decisions.len(), ATTACKERS);
    let calls = slack.calls();
    assert_eq!(
        calls.resets.len(),
        ATTACKERS,
        "the {before} resets done before the failover were not performed again"
    );
}
