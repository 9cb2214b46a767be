//! The compiled-code cache: a component compiled once loads from disk the next time
//! and runs the same; an entry that does not verify under the cache's key (tampered
//! with, or written under another key) is never deserialised but compiled again; a
//! different engine configuration gets its own entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aer_host::engine::{AerEngine, EngineConfig};
use aer_host::host_api::DryRunActions;
use aer_host::plugin::instance::InstanceSpec;
use aer_host::plugin::{DetectorInstance, Loader};
use aer_host::store::MemoryStore;
use aer_tests::plugins;

fn cached_engine(dir: &Path) -> Arc<AerEngine> {
    AerEngine::new(EngineConfig {
        code_cache: Some(dir.to_owned()),
        ..Default::default()
    })
    .unwrap()
}

/// Load the minimal detector on `engine` and run it over two failed logins: its
/// findings as JSON.
fn findings(engine: &Arc<AerEngine>) -> String {
    let bytes = std::fs::read(plugins::MINIMAL_DETECTOR).unwrap();
    let plugin = Loader::new(engine.clone()).load(&bytes).unwrap();
    let spec = InstanceSpec {
        tenant: "cache".into(),
        name: None,
        config: String::new(),
        state: Arc::new(MemoryStore::default()),
        actions: Arc::new(DryRunActions::default()),
    };
    let mut d = DetectorInstance::new(engine, &plugin, spec).unwrap();
    let events = [
        aer_tests::event("e1", "user_login_failed", "U1", 1_000),
        aer_tests::event("e2", "user_login_failed", "U2", 2_000),
    ];
    let report = aer_host::runner::run_detector(&mut d, &events, 16).unwrap();
    assert_eq!(report.findings.len(), 2);
    serde_json::to_string(&report.findings).unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_component_compiled_once_loads_from_the_cache_and_runs_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let first = cached_engine(dir.path());
    let compiled = findings(&first);
    assert_eq!(first.compilations(), 1);
    assert_eq!(entries(dir.path()).len(), 1);

    let second = cached_engine(dir.path());
    assert_eq!(findings(&second), compiled);
    assert_eq!(second.compilations(), 0, "loaded from the cache");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is its owner's only: {mode:o}");
    }

    // Another configuration (no epoch interruption changes the code) is another entry.
    let other = AerEngine::new(EngineConfig {
        code_cache: Some(dir.path().to_owned()),
        interruptible: false,
        ..Default::default()
    })
    .unwrap();
    findings(&other);
    assert_eq!(other.compilations(), 1);
    assert_eq!(entries(dir.path()).len(), 2);
}

#[test]
fn an_entry_that_does_not_verify_is_compiled_again_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let expected = findings(&cached_engine(dir.path()));
    let entry = entries(dir.path()).pop().unwrap();

    // One byte of the code changed (a tampered file: wasmtime itself would load it).
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&entry, &bytes).unwrap();
    let engine = cached_engine(dir.path());
    assert_eq!(findings(&engine), expected);
    assert_eq!(
        engine.compilations(),
        1,
        "the tampered entry was compiled again"
    );
    let engine = cached_engine(dir.path());
    findings(&engine);
    assert_eq!(engine.compilations(), 0, "and written again, verifying");

    // An entry written under another cache's key, put in place of this one's.
    let elsewhere = tempfile::tempdir().unwrap();
    findings(&cached_engine(elsewhere.path()));
    let foreign = entries(elsewhere.path()).pop().unwrap();
    assert_eq!(
        foreign.file_name(),
        entry.file_name(),
        "same name, other key"
    );
    std::fs::copy(&foreign, &entry).unwrap();
    let engine = cached_engine(dir.path());
    assert_eq!(findings(&engine), expected);
    assert_eq!(engine.compilations(), 1, "the foreign entry was not loaded");
}

#[test]
fn a_cache_that_cannot_be_made_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let engine = cached_engine(&file.join("code"));
    findings(&engine);
    assert!(engine.code_cache().is_none());
    assert_eq!(engine.compilations(), 1);
}
