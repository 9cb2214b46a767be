//! Per-call bounds from configuration: the epoch deadline, the memory cap, the stack,
//! guest panics and errors. A faulted store is dropped and rebuilt, and the failed
//! call's state writes are discarded.

use std::sync::Arc;

use aer_host::limits::Limits;
use aer_host::plugin::{DetectorInstance, FaultKind};
use aer_host::store::{MemoryStore, Scope, StateStore};
use aer_tests::{detector, engine_with, event, plugins};
use aer_wire::BatchWriter;

fn batch(actions: &[&str]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for (i, a) in actions.iter().enumerate() {
        w.push(&event(format!("e{i}"), a, "U1", i as i64));
    }
    w.finish()
}

fn hostile(mode: &str, limits: Limits) -> (DetectorInstance, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let engine = engine_with(limits);
    let config = format!(r#"{{"mode": "{mode}"}}"#);
    let d = detector(&engine, plugins::HOSTILE, &config, store.clone()).expect("instantiates");
    (d, store)
}

fn seen(store: &MemoryStore) -> i64 {
    store
        .get(&Scope::new("t1", "hostile"), "seen")
        .unwrap()
        .map(|v| i64::from_le_bytes(v.try_into().unwrap()))
        .unwrap_or(0)
}

/// Run a good batch, then a hostile one, then a good one again; return the fault.
fn fault_then_recover(mode: &str, limits: Limits) -> aer_host::plugin::Fault {
    let (mut d, store) = hostile(mode, limits);
    let ok = d.on_events(&batch(&["a", "b"])).expect("good batch");
    assert_eq!(ok.value.len(), 2);
    d.commit(&ok.writes).unwrap();
    assert_eq!(seen(&store), 2);
    let before = d.instantiations();

    let fault = d
        .on_events(&batch(&["a", "hostile"]))
        .expect_err("hostile batch faults");
    assert_eq!(fault.plugin.plugin, "hostile");
    assert_eq!(fault.plugin.tenant, "t1");
    assert_eq!(seen(&store), 2, "writes of the failed call are discarded");

    let again = d
        .on_events(&batch(&["c"]))
        .expect("a fresh store serves the next call");
    d.commit(&again.writes).unwrap();
    assert_eq!(again.value.len(), 1);
    assert_eq!(seen(&store), 3);
    assert_eq!(
        d.instantiations(),
        before + 1,
        "the dead store was replaced once"
    );
    fault
}

#[test]
fn infinite_loop_is_interrupted_at_the_deadline() {
    let fault = fault_then_recover(
        "loop",
        Limits {
            deadline_ms: 50,
            ..Limits::default()
        },
    );
    assert_eq!(fault.kind, FaultKind::Timeout, "{fault}");
    assert!(fault.message.contains("50 ms"), "{fault}");
}

#[test]
fn memory_bomb_stops_at_the_cap() {
    let fault = fault_then_recover(
        "alloc",
        Limits {
            memory_bytes: 32 << 20,
            deadline_ms: 5_000,
            ..Limits::default()
        },
    );
    assert_eq!(fault.kind, FaultKind::MemoryLimit, "{fault}");
    assert!(
        fault.message.contains(&format!("{} bytes", 32 << 20)),
        "{fault}"
    );
}

#[test]
fn deep_recursion_hits_the_stack_limit() {
    let fault = fault_then_recover(
        "recurse",
        Limits {
            stack_bytes: 256 << 10,
            deadline_ms: 5_000,
            ..Limits::default()
        },
    );
    assert_eq!(fault.kind, FaultKind::StackOverflow, "{fault}");
}

#[test]
fn panic_message_reaches_the_fault() {
    let fault = fault_then_recover("panic", Limits::default());
    assert_eq!(fault.kind, FaultKind::Panic, "{fault}");
    assert!(
        fault.message.contains("panicked on purpose at event e1"),
        "{fault}"
    );
}

#[test]
fn a_panic_message_of_several_lines_reaches_the_fault_whole() {
    let fault = fault_then_recover("panic-lines", Limits::default());
    assert_eq!(fault.kind, FaultKind::Panic, "{fault}");
    for part in [
        "the reason, first line",
        "second line names event e1",
        "third line",
    ] {
        assert!(
            fault.message.contains(part),
            "{part:?} missing from {fault}"
        );
    }
    assert!(!fault.message.contains("RUST_BACKTRACE"), "{fault}");
}

#[test]
fn returned_error_fails_the_call_without_a_restart() {
    let (mut d, store) = hostile("error", Limits::default());
    let fault = d.on_events(&batch(&["a", "hostile"])).expect_err("faults");
    assert_eq!(fault.kind, FaultKind::PluginError);
    assert!(
        fault.message.contains("returned an error on purpose"),
        "{fault}"
    );
    assert_eq!(seen(&store), 0);
    let ok = d.on_events(&batch(&["a"])).expect("still serves");
    assert_eq!(ok.value.len(), 1);
    assert_eq!(d.instantiations(), 1);
}

#[test]
fn bad_configuration_is_refused_with_the_field() {
    let engine = engine_with(Limits::default());
    let err = detector(
        &engine,
        plugins::HOSTILE,
        r#"{"mood": "loop"}"#,
        Arc::new(MemoryStore::default()),
    )
    .err()
    .expect("refused");
    assert_eq!(err.kind, FaultKind::Config);
    assert!(err.message.contains("mood"), "{err}");
}

fn run_hostile(
    mode: &str,
    limits: Limits,
) -> (
    Result<aer_host::plugin::CallOutput<Vec<aer_host::bindings::Finding>>, aer_host::plugin::Fault>,
    DetectorInstance,
) {
    let (mut d, _) = hostile(mode, limits);
    let r = d.on_events(&batch(&["hostile"]));
    (r, d)
}

fn attr<'a>(f: &'a aer_host::bindings::Finding, key: &str) -> &'a str {
    f.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn a_million_findings_are_refused() {
    // Enough guest memory to build them: the host's cap, not the guest's, must refuse.
    let limits = Limits {
        deadline_ms: 10_000,
        memory_bytes: 1 << 30,
        ..Limits::default()
    };
    let (r, mut d) = run_hostile("findings-flood", limits);
    let fault = r.expect_err("refused");
    assert_eq!(fault.kind, FaultKind::OutputLimit, "{fault}");
    // The per-call copy budget stops the lifting of the result before it is all in
    // host memory.
    assert!(fault.message.contains("too much data"), "{fault}");
    assert!(
        d.on_events(&batch(&["a"])).is_ok(),
        "the plugin keeps serving"
    );
}

#[test]
fn findings_over_the_per_call_cap_are_refused() {
    let (mut d, _) = hostile(
        "",
        Limits {
            findings_per_call: 10,
            ..Limits::default()
        },
    );
    let fault = d.on_events(&batch(&["a"; 20])).expect_err("refused");
    assert_eq!(fault.kind, FaultKind::OutputLimit, "{fault}");
    assert!(
        fault
            .message
            .contains("returned 20 findings, more than the 10 allowed"),
        "{fault}"
    );
    assert_eq!(
        d.on_events(&batch(&["a"; 10]))
            .expect("within the cap")
            .value
            .len(),
        10
    );
}

#[test]
fn a_huge_string_is_refused() {
    let (r, _) = run_hostile(
        "big-string",
        Limits {
            deadline_ms: 10_000,
            ..Limits::default()
        },
    );
    let fault = r.expect_err("refused");
    assert_eq!(fault.kind, FaultKind::OutputLimit, "{fault}");
    assert!(
        fault.message.contains(&format!("{}-byte string", 4 << 20)),
        "{fault}"
    );
}

#[test]
fn a_state_write_flood_exhausts_the_call_budget() {
    let limits = Limits {
        deadline_ms: 20_000,
        state_ops_per_call: 100_000,
        memory_bytes: 256 << 20,
        ..Limits::default()
    };
    let (r, _) = run_hostile("state-flood", limits);
    let fault = r.expect_err("refused");
    assert_eq!(fault.kind, FaultKind::PluginError, "{fault}");
    assert!(fault.message.contains("budget"), "{fault}");
}

#[test]
fn a_log_flood_is_capped() {
    let limits = Limits {
        deadline_ms: 20_000,
        log_messages_per_call: 50,
        ..Limits::default()
    };
    let (r, _) = run_hostile("log-flood", limits);
    let out = r.expect("logging too much is not a fault");
    assert_eq!(out.logs.len(), 50);
    assert_eq!(out.logs[0].message, "flood 0");
}

#[test]
fn oversized_keys_and_values_are_refused_with_an_error_the_plugin_sees() {
    for (mode, needle) in [
        ("big-key", "state key larger than 1024 bytes"),
        ("big-value", "state value larger than 1048576 bytes"),
    ] {
        let (r, _) = run_hostile(mode, Limits::default());
        let out = r.expect("the plugin handles the refusal");
        assert_eq!(out.value.len(), 1);
        assert_eq!(out.value[0].summary, needle, "{mode}");
        assert!(out.writes.is_empty(), "{mode}: nothing was written");
    }
}

#[test]
fn capability_probes_get_nothing_useful() {
    let probe = |_: ()| {
        let (r, _) = run_hostile(
            "probe",
            Limits {
                deadline_ms: 5_000,
                ..Limits::default()
            },
        );
        r.expect("probe runs").value.remove(0)
    };
    let f = probe(());
    for key in ["fs_root", "passwd", "create_file"] {
        assert!(
            attr(&f, key).starts_with("denied"),
            "{key}: {}",
            attr(&f, key)
        );
    }
    assert_eq!(attr(&f, "env_vars"), "0");
    assert_eq!(attr(&f, "args"), "0");
    assert_eq!(attr(&f, "home"), "unset");
    assert_eq!(
        attr(&f, "wall_ms"),
        "0",
        "the wall clock is frozen at the epoch"
    );
    assert_eq!(
        attr(&f, "elapsed_ns"),
        "0",
        "the monotonic clock does not advance"
    );
    // Seeded randomness: a fresh instance hashes the same way.
    assert_eq!(attr(&f, "hash"), attr(&probe(()), "hash"));
}
