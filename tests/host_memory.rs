//! Huge plugin outputs leave the host's own memory bounded, measured: the process's
//! resident set while a plugin returns a 100 MiB string or a million findings, minus
//! what the guest's linear memory itself took, with the host's output bounds and with
//! them removed. A binary of its own, so nothing else runs in the process.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use aer_host::limits::Limits;
use aer_host::plugin::FaultKind;
use aer_host::store::MemoryStore;
use aer_tests::{detector, engine_with, event, plugins};
use aer_wire::BatchWriter;

const MIB: i64 = 1 << 20;

/// (resident, peak resident) of this process, in bytes.
fn rss() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> i64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Run `mode` once under `limits`, after a warm-up batch (so compiling and
/// instantiating are done); returns (how it ended, the host's own peak growth during
/// the hostile call: peak resident growth minus the guest's linear-memory growth).
fn host_growth(mode: &str, limits: Limits) -> (Result<usize, FaultKind>, i64) {
    let engine = engine_with(limits);
    let config = format!(r#"{{"mode": "{mode}"}}"#);
    let mut d = detector(
        &engine,
        plugins::HOSTILE,
        &config,
        Arc::new(MemoryStore::default()),
    )
    .unwrap();
    let batch = |action: &str| {
        let mut w = BatchWriter::new();
        w.push(&event("e1", action, "U1", 1));
        w.finish()
    };
    d.on_events(&batch("warm-up")).unwrap();
    let guest_before = d.peak_memory() as i64;
    // Start the peak over (Linux: writing 5 to clear_refs resets VmHWM).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = rss();
    let result = d
        .on_events(&batch("hostile"))
        .map(|out| out.value.len())
        .map_err(|f| f.kind);
    let (_, peak) = rss();
    let guest = d.peak_memory() as i64 - guest_before;
    (result, peak - before - guest)
}

fn generous() -> Limits {
    Limits {
        deadline_ms: 30_000,
        memory_bytes: 1 << 30,
        ..Limits::default()
    }
}

#[test]
fn huge_outputs_leave_host_memory_bounded_and_the_bounds_are_what_keeps_it() {
    // Bounded (the default output caps), a 100 MiB string: refused; the host itself
    // grows by a few MiB at most.
    let (result, grown) = host_growth("huge-string", generous());
    assert_eq!(result, Err(FaultKind::OutputLimit));
    println!("100 MiB string, bounded: host grew {} MiB", grown / MIB);
    assert!(grown < 16 * MIB, "host grew {} MiB", grown / MIB);

    // A million findings: refused, host bounded.
    let (result, grown_flood) = host_growth("findings-flood", generous());
    assert_eq!(result, Err(FaultKind::OutputLimit));
    println!(
        "a million findings, bounded: host grew {} MiB",
        grown_flood / MIB
    );
    assert!(
        grown_flood < 16 * MIB,
        "host grew {} MiB",
        grown_flood / MIB
    );

    // The same string with the output bounds removed: the host lifts it, and its own
    // memory grows by about the string's size (measured: 99 MiB). The bounds are what
    // kept it small.
    let unbounded = Limits {
        string_bytes: usize::MAX,
        copy_bytes_per_call: usize::MAX,
        ..generous()
    };
    let (result, grown_unbounded) = host_growth("huge-string", unbounded);
    assert_eq!(result, Ok(1), "without the bounds the finding is returned");
    println!(
        "100 MiB string, unbounded: host grew {} MiB",
        grown_unbounded / MIB
    );
    assert!(
        grown_unbounded >= 90 * MIB,
        "host grew {} MiB",
        grown_unbounded / MIB
    );
}
