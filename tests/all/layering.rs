//! The host's layering (docs/architecture.md, "What may import what"): every top-level
//! module of `host/src` sits in a layer and names only modules of lower layers, so
//! there is no import circle; the decision stage names no wasm type; the daemon names
//! no local tool; and the shipping `aer` links no plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first: a module may name only modules of lower
/// layers.
const LAYERS: &[&[&str]] = &[
    &["bindings", "limits", "panic", "text", "records", "geo"],
    &["store", "config", "labels", "ingest"],
    &["host_api", "synth"],
    &["engine"],
    &["plugin"],
    &["pipeline"],
    &["sources"],
    &["ledger", "replay", "runner"],
    &["daemon"],
    &["cluster"],
    &["web"],
    &["console"],
    &["api"],
    &["loopback"],
    &["bench"],
    &["cli"],
];

/// Files that must not name these modules (`crate::X`) or crates (`X::`).
const NEVER: &[(&str, &[&str])] = &[
    // The decision stage takes and gives records, never wasm types.
    (
        "pipeline/decide.rs",
        &["crate::bindings", "crate::plugin", "wasmtime"],
    ),
    (
        "pipeline/policy.rs",
        &["crate::bindings", "crate::plugin", "wasmtime"],
    ),
    // The engine knows neither tenants nor HTTP.
    (
        "engine.rs",
        &["crate::daemon", "crate::api", "crate::ledger", "axum"],
    ),
    // The state store knows nothing of wasm.
    (
        "store.rs",
        &["wasmtime", "crate::bindings", "crate::plugin"],
    ),
];

fn host_src() -> PathBuf {
    aer_tests::repo_root().join("host").join("src")
}

/// Every `.rs` file under `dir`, as (path relative to `host/src`, text).
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(host_src()).unwrap();
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files compiled only into the unit tests (`#[cfg(test)] mod name;`).
fn test_only(files: &[(String, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (rel, text) in files {
        let dir = rel.trim_end_matches(".rs");
        for part in text.split("#[cfg(test)]\nmod ").skip(1) {
            if let Some(name) = part.split(';').next().filter(|n| !n.contains(' ')) {
                out.insert(format!("{dir}/{name}.rs"));
            }
        }
    }
    out
}

fn module_of(rel: &str) -> &str {
    rel.split('/').next().unwrap().trim_end_matches(".rs")
}

#[test]
fn every_module_names_only_modules_below_it() {
    let mut files = Vec::new();
    sources(&host_src(), &mut files);
    let skip = test_only(&files);
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (*m, i)))
        .collect();
    let mut wrong = Vec::new();
    for (rel, text) in files.iter().filter(|(rel, _)| !skip.contains(rel)) {
        let from = module_of(rel);
        if matches!(from, "lib" | "main") {
            continue;
        }
        let Some(&own) = layer.get(from) else {
            wrong.push(format!("{rel}: module {from} has no layer"));
            continue;
        };
        let code = code(text);
        for part in code.split("crate::").skip(1) {
            let to: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if to.is_empty() || to == from {
                continue;
            }
            match layer.get(to.as_str()) {
                Some(&theirs) if theirs < own => {}
                Some(_) => wrong.push(format!("{rel}: {from} names {to}, not below it")),
                None => wrong.push(format!("{rel}: names {to}, which has no layer")),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_decision_stage_the_engine_and_the_store_keep_to_themselves() {
    for (file, never) in NEVER {
        let code = code(&std::fs::read_to_string(host_src().join(file)).unwrap());
        for name in *never {
            assert!(!code.contains(name), "{file} names {name}");
        }
    }
}

#[test]
fn the_shipping_aer_links_no_plugin() {
    let text = std::fs::read_to_string(aer_tests::repo_root().join("host/Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    let plugins: Vec<String> = std::fs::read_dir(aer_tests::repo_root().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(plugins.len() >= 8, "{plugins:?}");
    let features = manifest["features"].as_table().unwrap();
    let default = features["default"].as_array().unwrap();
    for (name, dep) in deps {
        if plugins.contains(name) || name == "aer-sdk" {
            assert_eq!(
                dep.get("optional").and_then(|o| o.as_bool()),
                Some(true),
                "{name} is linked into every aer"
            );
            assert!(
                !default.iter().any(|f| f.as_str() == Some("bench")),
                "the bench feature is on by default"
            );
        }
    }
}
