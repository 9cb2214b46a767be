//! The excessive-downloads detector as a component in the real host.

use std::sync::Arc;

use aer_host::runner::run_detector;
use aer_host::store::{MemoryStore, SledStore, StateStore};
use aer_tests::{MIN, detector, engine, event, plugins};
use aer_wire::Event;

const CONFIG: &str = r#"{"threshold": 50, "window_minutes": 10}"#;

/// A working day of ordinary activity: 40 users, each a download every 7 to 20
/// minutes and some logins and other actions in between.
fn benign_day(start: i64) -> Vec<Event> {
    let mut events = Vec::new();
    for u in 0..40 {
        let user = format!("U{u:03}");
        let step = (7 + u % 14) * MIN;
        let mut t = start + u * 1_000;
        let mut i = 0;
        while t < start + 8 * 60 * MIN {
            events.push(event(format!("{user}-d{i}"), "file_downloaded", &user, t));
            events.push(event(
                format!("{user}-l{i}"),
                "user_login",
                &user,
                t + 30_000,
            ));
            t += step;
            i += 1;
        }
    }
    events.sort_by_key(|e| e.time_ms);
    events
}

fn burst(user: &str, n: i64, start: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            event(
                format!("{user}-burst{i}"),
                "file_downloaded",
                user,
                start + i * 4_000,
            )
        })
        .collect()
}

fn findings_for(
    events: &[Event],
    state: Arc<dyn StateStore>,
) -> Vec<aer_host::records::FindingRecord> {
    let engine = engine();
    let mut d =
        detector(&engine, plugins::EXCESSIVE_DOWNLOADS, CONFIG, state).expect("instantiates");
    run_detector(&mut d, events, 256).expect("runs").findings
}

#[test]
fn finds_the_burst_in_a_crafted_stream() {
    let start = 1_767_603_600_000;
    let mut events = benign_day(start);
    events.extend(burst("U007", 70, start + 3 * 60 * MIN));
    events.sort_by_key(|e| e.time_ms);
    let findings = findings_for(&events, Arc::new(MemoryStore::default()));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(
        (f.rule.as_str(), f.subject.as_str()),
        ("excessive-downloads", "U007")
    );
    assert_eq!(f.plugin, "excessive-downloads");
    // U007's own downloads (one every 14 minutes) do not reach 50 in 10 minutes alone:
    // the 50th burst download does, at most 49 after the burst began.
    let burst_start = start + 3 * 60 * MIN;
    assert!(
        f.time_ms >= burst_start && f.time_ms <= burst_start + 49 * 4_000,
        "{}",
        f.time_ms
    );
    assert_eq!(
        f.attributes.get("threshold").map(String::as_str),
        Some("50")
    );
}

#[test]
fn benign_stream_gives_nothing() {
    let events = benign_day(1_767_603_600_000);
    assert!(events.len() > 1_000, "{}", events.len());
    let findings = findings_for(&events, Arc::new(MemoryStore::default()));
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn state_survives_a_host_restart_on_the_same_sled_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = burst("U1", 60, 1_767_603_600_000);
    let (first, second) = events.split_at(30);
    {
        let store: Arc<dyn StateStore> = Arc::new(SledStore::open(dir.path()).expect("sled"));
        let found = findings_for(first, store.clone());
        assert!(
            found.is_empty(),
            "30 downloads are under the threshold: {found:?}"
        );
        store.flush().expect("flush");
    } // engine instance and database closed here
    let store: Arc<dyn StateStore> =
        Arc::new(aer_tests::retry_locked(|| SledStore::open(dir.path())));
    let found = findings_for(second, store);
    assert_eq!(
        found.len(),
        1,
        "the count carried over the restart: {found:?}"
    );
    assert_eq!(found[0].evidence, vec!["U1-burst49".to_string()]);

    // Control: the second half alone, on fresh state, finds nothing.
    let fresh = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn StateStore> = Arc::new(SledStore::open(fresh.path()).expect("sled"));
    assert!(findings_for(second, store).is_empty());
}

#[test]
fn batch_size_does_not_change_findings() {
    let start = 1_767_603_600_000;
    let mut events = benign_day(start);
    events.extend(burst("U003", 120, start + 60 * MIN));
    events.extend(burst("U011", 55, start + 5 * 60 * MIN));
    events.sort_by_key(|e| e.time_ms);
    let engine = engine();
    let mut results = Vec::new();
    for batch in [1, 7, 256, 5_000] {
        let mut d = detector(
            &engine,
            plugins::EXCESSIVE_DOWNLOADS,
            CONFIG,
            Arc::new(MemoryStore::default()),
        )
        .unwrap();
        results.push(run_detector(&mut d, &events, batch).unwrap().findings);
    }
    assert_eq!(results[0].len(), 2, "{:#?}", results[0]);
    for r in &results[1..] {
        assert_eq!(r, &results[0]);
    }
}

#[test]
fn host_baseline_service_calibrates_per_user() {
    // Through the real host's `baseline` import: U1's norm is 3 downloads an hour, U2's
    // is 60; an hour of 40 is unusual for U1 only.
    let hour = 60 * MIN;
    let mut events = Vec::new();
    for h in 0..48 {
        for (user, n, step) in [("U1", 3, MIN), ("U2", 60, 30_000)] {
            for i in 0..n {
                events.push(event(
                    format!("{user}-{h}-{i}"),
                    "file_downloaded",
                    user,
                    h * hour + i * step,
                ));
            }
        }
    }
    for user in ["U1", "U2"] {
        for i in 0..40 {
            events.push(event(
                format!("{user}-spike-{i}"),
                "file_downloaded",
                user,
                48 * hour + i * 60_000,
            ));
        }
    }
    events.sort_by_key(|e| e.time_ms);
    let config = r#"{"threshold": 1000, "baseline": {"k_sigma": 4, "floor": 20, "min_hours": 24}}"#;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = engine();
    let mut d = detector(&engine, plugins::EXCESSIVE_DOWNLOADS, config, store).unwrap();
    let findings = run_detector(&mut d, &events, 100).unwrap().findings;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].subject, "U1");
    assert_eq!(
        findings[0].attributes.get("basis").map(String::as_str),
        Some("baseline")
    );
    assert_eq!(findings[0].evidence, vec!["U1-spike-20".to_string()]);
}
