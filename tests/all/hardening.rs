//! The hostile tenant's side (THREATS.md): plugins written against the WIT to break the
//! host's bounds, and what the host does instead. Each test names the threat it pins;
//! docs/threats.md lists them with their bounds.

use std::sync::Arc;

use aer_host::engine::{AerEngine, EngineConfig};
use aer_host::host_api::DryRunActions;
use aer_host::limits::Limits;
use aer_host::plugin::instance::InstanceSpec;
use aer_host::plugin::{DetectorInstance, FaultKind, Rejection};
use aer_host::store::{MemoryStore, Scope, StateStore};
use aer_tests::{detector, engine, engine_with, event, load, plugins};
use aer_wire::BatchWriter;

const T0: i64 = 1_767_600_000_000;

fn batch(actions: &[&str]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for (i, a) in actions.iter().enumerate() {
        w.push(&event(format!("e{i}"), a, "U1", T0 + i as i64 * 1_000));
    }
    w.finish()
}

fn hostile(mode: &str) -> DetectorInstance {
    hostile_with(mode, Limits::default())
}

fn hostile_with(mode: &str, limits: Limits) -> DetectorInstance {
    let config = format!(r#"{{"mode": "{mode}"}}"#);
    detector(
        &engine_with(limits),
        plugins::HOSTILE,
        &config,
        Arc::new(MemoryStore::default()),
    )
    .expect("instantiates")
}

// Threat: numbers from outside. A NaN score passed `min_score`, was stored as `null`
// and broke `GET /v1/findings` and the tenant's decision stage forever; 7.5 was
// accepted.
#[test]
fn scores_outside_0_to_1_fault_the_call() {
    for mode in ["nan-score", "big-score"] {
        let mut d = hostile(mode);
        let fault = d.on_events(&batch(&["a", "hostile"])).unwrap_err();
        assert_eq!(fault.kind, FaultKind::InvalidOutput, "{mode}: {fault}");
        assert!(
            fault.message.contains("not a number from 0 to 1"),
            "{fault}"
        );
    }
}

// Threat: numbers from outside. A finding dated 2100 suppressed every later finding
// of the tenant (the hourly cap) and poisoned cooldowns; one at i64::MIN overflowed.
#[test]
fn a_findings_time_is_the_hosts_from_the_batch_not_the_guests() {
    let mut d = hostile("far-future");
    let out = d.on_events(&batch(&["a", "hostile", "b"])).unwrap();
    let time = |rule: &str| {
        out.value
            .iter()
            .find(|f| f.rule == rule)
            .unwrap_or_else(|| panic!("no {rule} finding"))
            .time_ms
    };
    // Dated by its evidence (event e1), not the year 2100 it claimed.
    assert_eq!(time("far-future"), T0 + 1_000);
    // No evidence in the batch: the batch's latest event time, not i64::MIN.
    assert_eq!(time("far-past"), T0 + 2_000);
    // Tick findings are dated at the tick.
    assert!(out.value.iter().all(|f| f.time_ms <= T0 + 2_000));
}

// Threat: numbers from outside. `baseline.observe` at i64::MIN/MAX panicked the
// pipeline threads in debug builds (every tenant stopped) and wrapped in release.
#[test]
fn baselines_at_the_i64_limits_neither_panic_nor_wrap() {
    let mut d = hostile("extreme-baseline");
    let out = d.on_events(&batch(&["hostile"])).unwrap();
    assert!(
        out.value.iter().any(|f| f.rule == "baseline-ok"),
        "{:?}",
        out.value
    );
}

// Threat: reads amplify memory. `get-many` of one 1 MiB key 3,000 times grew the
// daemon by 3 GB (the budget counted operations, not bytes).
#[test]
fn state_reads_are_bounded_in_bytes_before_they_are_copied() {
    let limits = Limits {
        read_bytes_per_call: 16 << 20,
        copy_bytes_per_call: 1 << 30,
        deadline_ms: 10_000,
        ..Limits::default()
    };
    let mut d = hostile_with("read-amplify", limits);
    let fault = d.on_events(&batch(&["hostile"])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::ReadLimit, "{fault}");
    assert!(
        fault.message.contains(&format!("{} bytes", 16 << 20)),
        "{fault}"
    );
}

// Threat: a plugin copies unbounded text out of the host through `geo.lookup` (the
// answers are charged to the call's read budget like state reads).
#[test]
fn geo_answers_count_towards_the_read_budget() {
    use aer_host::geo::write::{Entry, database};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.mmdb");
    let entry = Entry::place("DE", 52.5, 13.4).network(64_500, &"x".repeat(120));
    let net: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
    std::fs::write(&path, database([(net, &entry)]).unwrap()).unwrap();
    let geo = aer_host::geo::Geo::open(&[path], []).unwrap();
    let limits = Limits {
        read_bytes_per_call: 1 << 20,
        deadline_ms: 60_000,
        ..Limits::default()
    };
    let engine = AerEngine::new(EngineConfig {
        limits,
        geo: Arc::new(geo),
        max_instances: 4,
        ..Default::default()
    })
    .unwrap();
    let mut d = detector(
        &engine,
        plugins::HOSTILE,
        r#"{"mode": "geo-flood"}"#,
        Arc::new(MemoryStore::default()),
    )
    .expect("instantiates");
    let fault = d.on_events(&batch(&["hostile"])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::ReadLimit, "{fault}");
}

// Threat: smaller holes. A component exporting both worlds was accepted.
#[test]
fn a_component_of_both_worlds_is_refused() {
    let bytes = std::fs::read(plugins::BOTH_WORLDS).unwrap();
    let err = aer_tests::try_load(&engine(), &bytes)
        .err()
        .expect("refused");
    assert!(matches!(err, Rejection::BothWorlds), "{err}");
}

// Threat: smaller holes. `info` output was unbounded, and matching an event cost a
// comparison per subscribed action.
#[test]
fn an_oversized_self_description_faults_the_instance() {
    let err = detector(
        &engine(),
        plugins::HOSTILE,
        r#"{"mode": "big-info"}"#,
        Arc::new(MemoryStore::default()),
    )
    .err()
    .expect("refused");
    assert_eq!(err.kind, FaultKind::OutputLimit, "{err}");
    assert!(err.message.contains("plugin info"), "{err}");
}

/// The `hash` a `probe` of the hostile detector reports (from its WASI randomness),
/// for tenant `tenant`'s plugin `name` under an engine with `secret`.
fn random_hash(secret: [u8; 32], tenant: &str, name: &str) -> String {
    let engine = AerEngine::new(EngineConfig {
        random_secret: secret,
        max_instances: 4,
        ..Default::default()
    })
    .unwrap();
    let plugin = load(&engine, plugins::HOSTILE);
    let mut d = DetectorInstance::new(
        &engine,
        &plugin,
        InstanceSpec {
            tenant: tenant.into(),
            name: Some((name.into(), "1".into())),
            config: r#"{"mode": "probe"}"#.into(),
            state: Arc::new(MemoryStore::default()),
            actions: Arc::new(DryRunActions::default()),
        },
    )
    .unwrap();
    let out = d.on_events(&batch(&["hostile"])).unwrap();
    let probe = out.value.iter().find(|f| f.rule == "probe").unwrap();
    probe
        .attributes
        .iter()
        .find(|a| a.key == "hash")
        .unwrap()
        .value
        .clone()
}

// Threat: smaller holes. Every tenant's WASI random seed was the same constant.
#[test]
fn each_plugin_is_seeded_from_the_host_secret_its_tenant_and_name() {
    let secret = [7; 32];
    let a = random_hash(secret, "t1", "p");
    assert_eq!(
        a,
        random_hash(secret, "t1", "p"),
        "a replay is deterministic"
    );
    assert_ne!(a, random_hash(secret, "t2", "p"), "another tenant differs");
    assert_ne!(a, random_hash(secret, "t1", "q"), "another plugin differs");
    assert_ne!(a, random_hash([8; 32], "t1", "p"), "another host differs");
}

// Threat: identity is what the component says. The same bytes under two upload names
// shared state, and findings followed the declared name.
#[test]
fn state_and_findings_are_keyed_by_the_upload_name_not_the_components() {
    let store = Arc::new(MemoryStore::default());
    let engine = engine();
    let plugin = load(&engine, plugins::HOSTILE);
    let mut runs = Vec::new();
    for name in ["s1", "s2"] {
        let mut d = DetectorInstance::new(
            &engine,
            &plugin,
            InstanceSpec {
                tenant: "t1".into(),
                name: Some((name.into(), "1".into())),
                config: String::new(),
                state: store.clone(),
                actions: Arc::new(DryRunActions::default()),
            },
        )
        .unwrap();
        let out = d.on_events(&batch(&["a", "b"])).unwrap();
        d.commit(&out.writes).unwrap();
        assert_eq!(d.id().plugin, name);
        runs.push(out.value.len());
    }
    let seen = |plugin: &str| {
        store
            .get(&Scope::new("t1", plugin), "seen")
            .unwrap()
            .map(|v| i64::from_le_bytes(v.try_into().unwrap()))
    };
    assert_eq!(
        (seen("s1"), seen("s2")),
        (Some(2), Some(2)),
        "separate counters"
    );
    assert_eq!(seen("hostile"), None, "nothing under the declared name");
}
