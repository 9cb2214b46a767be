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
