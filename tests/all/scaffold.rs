//! `aer new detector NAME`: the scaffolded crate tests natively, builds to a component
//! that `aer validate` accepts, and runs under `aer test`.

use std::process::Command;

use aer_tests::{aer, repo_root};

fn cargo(dir: &std::path::Path, args: &[&str], target_dir: &std::path::Path) {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn new_detector_tests_builds_validates_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("foo");
    let run = aer(&[
        "new",
        "detector",
        "foo",
        "--path",
        plugin_dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.out.contains("created detector plugin `foo`"),
        "{}",
        run.out
    );

    // A target dir shared across runs keeps this test's rebuilds incremental.
    let target_dir = repo_root().join("target").join("scaffold-test");
    cargo(&plugin_dir, &["test", "--quiet"], &target_dir);
    cargo(
        &plugin_dir,
        &["build", "--target", "wasm32-wasip2", "--release", "--quiet"],
        &target_dir,
    );

    let wasm = target_dir.join("wasm32-wasip2/release/foo.wasm");
    let wasm = wasm.to_str().unwrap();
    let run = aer(&["validate", wasm]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("plugin:  foo 0.1.0"), "{}", run.out);

    let events = plugin_dir.join("events.ndjson");
    let run = aer(&["test", wasm, "--events", events.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        run.out.lines().count(),
        1,
        "one finding at the 5th failed login: {}",
        run.out
    );
    assert!(run.out.contains("\"subject\":\"U1\""), "{}", run.out);

    // Refuses to overwrite.
    let again = aer(&[
        "new",
        "detector",
        "foo",
        "--path",
        plugin_dir.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 2);
    assert!(again.err.contains("already exists"), "{}", again.err);
}

#[test]
fn new_responder_tests_natively() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("bar");
    let run = aer(&[
        "new",
        "responder",
        "bar",
        "--path",
        plugin_dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let target_dir = repo_root().join("target").join("scaffold-test");
    cargo(&plugin_dir, &["test", "--quiet"], &target_dir);
    cargo(
        &plugin_dir,
        &["build", "--target", "wasm32-wasip2", "--release", "--quiet"],
        &target_dir,
    );
    let run = aer(&[
        "validate",
        target_dir
            .join("wasm32-wasip2/release/bar.wasm")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("world:   responder"), "{}", run.out);
    // Its README tells what it generated and how a responder is tried (`aer test` runs
    // detectors; there is no events file for a responder).
    let readme = std::fs::read_to_string(plugin_dir.join("README.md")).unwrap();
    assert!(readme.contains("ends every session"), "{readme}");
    assert!(readme.contains("aer replay"), "{readme}");
    assert!(!readme.contains("events.ndjson"), "{readme}");
    assert!(!plugin_dir.join("events.ndjson").exists());
}
