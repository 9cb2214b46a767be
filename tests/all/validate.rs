//! `aer validate`: accepts real components, rejects everything else with exit code 4
//! and a one-line reason naming what is wrong.

use aer_host::plugin::Loader;
use aer_tests::{aer, plugins};
use sha2::{Digest, Sha256};

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), bytes).expect("write");
    f
}

/// Assert a rejection: exit 4, and exactly one line on stderr containing `needle`.
fn assert_rejected(path: &str, needle: &str) {
    let run = aer(&["validate", path]);
    assert_eq!(run.code, 4, "stdout: {}\nstderr: {}", run.out, run.err);
    assert_eq!(run.err.lines().count(), 1, "one line: {:?}", run.err);
    assert!(run.err.starts_with("aer: rejected "), "{}", run.err);
    assert!(
        run.err.contains(needle),
        "expected {needle:?} in {:?}",
        run.err
    );
    assert!(run.out.is_empty(), "{}", run.out);
}

/// The core module inside a component (its first core-module section), so the test
/// uses a real core module produced by the toolchain rather than a hand-made one.
fn core_module_of(component: &[u8]) -> Vec<u8> {
    fn leb(bytes: &[u8], pos: &mut usize) -> usize {
        let (mut result, mut shift) = (0usize, 0);
        loop {
            let b = bytes[*pos];
            *pos += 1;
            result |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return result;
            }
            shift += 7;
        }
    }
    let mut pos = 8;
    while pos < component.len() {
        let id = component[pos];
        pos += 1;
        let size = leb(component, &mut pos);
        if id == 1 {
            return component[pos..pos + size].to_vec();
        }
        pos += size;
    }
    panic!("no core module section found");
}

#[test]
fn accepts_the_excessive_downloads_detector() {
    let run = aer(&["validate", plugins::EXCESSIVE_DOWNLOADS]);
    assert_eq!(run.code, 0, "{}", run.err);
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    for needle in [
        "world:   detector",
        "wit:     aer:plugin@0.1.2",
        &format!("size:    {} bytes", bytes.len()),
        &format!("sha256:  {sha}"),
        "aer:plugin/state@0.1.2",
        "aer:plugin/detection@0.1.2",
        "actions: file_downloaded",
    ] {
        assert!(
            run.out.contains(needle),
            "missing {needle:?} in\n{}",
            run.out
        );
    }
}

#[test]
fn json_output_has_every_fact() {
    let run = aer(&["validate", "--json", plugins::MINIMAL_DETECTOR]);
    assert_eq!(run.code, 0, "{}", run.err);
    let v: serde_json::Value = serde_json::from_str(&run.out).expect("JSON");
    assert_eq!(v["world"], "detector");
    assert_eq!(v["wit"], "aer:plugin@0.1.2");
    assert_eq!(v["plugin"]["name"], "minimal-detector");
    assert_eq!(v["plugin"]["actions"][0], "user_login_failed");
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "aer:plugin/log@0.1.2")
    );
}

#[test]
fn rejects_a_core_module() {
    let component = std::fs::read(plugins::MINIMAL_DETECTOR).unwrap();
    let core = core_module_of(&component);
    assert_eq!(&core[..8], b"\0asm\x01\0\0\0", "extracted a core module");
    let f = write_temp(&core);
    assert_rejected(
        f.path().to_str().unwrap(),
        "core WebAssembly module, not a component",
    );
}

#[test]
fn rejects_a_random_file() {
    // Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let f = write_temp(&bytes);
    assert_rejected(f.path().to_str().unwrap(), "not a WebAssembly binary");
}

#[test]
fn rejects_a_truncated_component() {
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    let f = write_temp(&bytes[..bytes.len() / 2]);
    assert_rejected(f.path().to_str().unwrap(), "invalid component");
}

#[test]
fn rejects_an_unknown_import() {
    assert_rejected(plugins::EVIL_IMPORT, "imports `acme:evil/x");
}

#[test]
fn rejects_a_component_that_uses_sockets() {
    assert_rejected(plugins::SOCKET_USER, "imports `wasi:sockets/");
}

#[test]
fn missing_file_is_an_error_not_a_rejection() {
    let run = aer(&["validate", "/nonexistent/plugin.wasm"]);
    assert_eq!(run.code, 2, "{}", run.err);
    assert!(
        run.err.contains("cannot read /nonexistent/plugin.wasm"),
        "{}",
        run.err
    );
}

#[test]
fn rejects_a_precompiled_artifact_posing_as_a_component() {
    // Bytes wasmtime itself precompiled from a real component: loading them would mean
    // `Component::deserialize` on tenant bytes, which the host never does.
    let component = std::fs::read(plugins::MINIMAL_DETECTOR).unwrap();
    let engine = aer_tests::engine();
    let artifact = engine
        .engine()
        .precompile_component(&component)
        .expect("precompiles");
    let f = write_temp(&artifact);
    assert_rejected(f.path().to_str().unwrap(), "not a WebAssembly binary");
    let named = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(named.path(), &artifact).unwrap();
    assert_rejected(named.path().to_str().unwrap(), "not a WebAssembly binary");
}

#[test]
fn rejects_a_compile_bomb_before_compiling_it() {
    assert_rejected(plugins::COMPILE_BOMB, "code too large to compile: 25");
    assert_rejected(
        plugins::COMPILE_BOMB,
        "functions, more than the limit of 20000",
    );
}

#[test]
fn the_compile_bomb_is_a_real_component_that_only_the_code_bound_stops() {
    // With the function bound removed, the same bytes compile and load: the bound,
    // not some other defect, is what refuses the bomb.
    let engine = aer_tests::engine_with(aer_host::limits::Limits {
        code_functions: u32::MAX,
        ..Default::default()
    });
    let bytes = std::fs::read(plugins::COMPILE_BOMB).unwrap();
    let plugin = Loader::new(engine)
        .load(&bytes)
        .expect("loads without the bound");
    assert_eq!(plugin.info().name, "compile-bomb");
    let stats = aer_host::plugin::code::code_stats(&bytes).unwrap();
    assert!(stats.functions > 25_000, "{stats:?}");
}

#[test]
fn compilation_is_bounded_in_time_and_in_concurrency() {
    let engine = aer_tests::engine_with(aer_host::limits::Limits {
        compile_timeout_ms: 1,
        compile_concurrency: 1,
        ..Default::default()
    });
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    let loader = Loader::new(engine);
    let err = loader
        .load(&bytes)
        .err()
        .expect("a 1 ms compile budget is too short");
    assert_eq!(err.to_string(), "compilation took longer than 1 ms");
    // The abandoned compilation still holds the only compiler slot.
    let err = loader.load(&bytes).err().expect("the compiler is busy");
    assert!(
        err.to_string().contains("compilations are already running"),
        "{err}"
    );
}

#[test]
fn threads_loading_the_same_component_at_once_compile_it_once() {
    let engine = aer_tests::engine_with(aer_host::limits::Limits::default());
    let bytes = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();
    let other = std::fs::read(plugins::MESSAGE_VOLUME).unwrap();
    let before = engine.compilations();
    let loader = Loader::new(engine.clone());
    let loaded: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (loader, bytes) = (&loader, if i == 3 { &other } else { &bytes });
                s.spawn(move || loader.load(bytes).expect("loads"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Three callers of the same bytes share one compilation; the fourth had its own.
    assert_eq!(engine.compilations() - before, 2);
    assert!(std::sync::Arc::ptr_eq(&loaded[0], &loaded[1]));
    assert!(std::sync::Arc::ptr_eq(&loaded[0], &loaded[2]));
    // A failed load is not remembered as loading: the next caller gets its own answer.
    assert!(loader.load(b"not a component").is_err());
    assert!(loader.load(b"not a component").is_err());
    assert!(loader.load(&bytes).is_ok());
}
