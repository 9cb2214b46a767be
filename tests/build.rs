//! Builds every plugin crate under `plugins/`, `examples/` and `tests/fixtures/` to a
//! `wasm32-wasip2` component (profile `plugin`, separate target dir) and writes their
//! paths as constants to `$OUT_DIR/plugins.rs`, one per crate (`EXCESSIVE_DOWNLOADS`).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf();
    let mut crates = Vec::new();
    for dir in ["plugins", "examples", "tests/fixtures"] {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        crates.extend(discover(&dir));
    }
    for dep in ["sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dep).display());
    }
    check_target();

    let target_dir = root.join("target").join("wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            "plugin",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (name, _) in &crates {
        cmd.args(["-p", name]);
    }
    // The outer build's settings must not leak into the nested wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("can run cargo");
    if !out.status.success() {
        panic!(
            "building the wasm plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut consts = String::new();
    for (name, _) in &crates {
        let file = target_dir
            .join(TARGET)
            .join("plugin")
            .join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.is_file(), "{} was not built", file.display());
        consts.push_str(&format!(
            "/// The `{name}` component.\npub const {}: &str = {:?};\n",
            name.to_uppercase().replace('-', "_"),
            file.display().to_string()
        ));
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("plugins.rs"), consts).expect("OUT_DIR is writable");
}

/// (package name, dir) of every crate directly under `dir`.
fn discover(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| {
            let text = std::fs::read_to_string(p.join("Cargo.toml")).expect("readable Cargo.toml");
            let doc: toml::Table = text.parse().expect("valid Cargo.toml");
            let name = doc["package"]["name"]
                .as_str()
                .expect("package.name")
                .to_owned();
            (name, p)
        })
        .collect();
    found.sort();
    found
}

fn check_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let installed =
        sysroot.is_some_and(|s| Path::new(&s).join("lib/rustlib").join(TARGET).is_dir());
    if !installed {
        panic!(
            "the {TARGET} target is not installed, so the test plugins cannot be built.\n\
             Install it with: rustup target add {TARGET}"
        );
    }
}
