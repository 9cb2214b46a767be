//! Turns the WIT package in `../wit` into macros that expand `wit_bindgen::generate!`
//! with the WIT inlined, inside the plugin crate.
//!
//! Why: a component's world comes from the type sections linked into it. Generating
//! both the detector and the responder worlds inside this library would link both
//! into every plugin (always under LTO), and a detector would then be asked to export
//! `response` as well. Generating the bindings in the plugin crate, for its one world,
//! avoids that; inlining the WIT text keeps the plugin crate free of WIT paths.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let wit_dir = Path::new(&manifest).join("../wit");
    println!("cargo:rerun-if-changed={}", wit_dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&wit_dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", wit_dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wit"))
        .collect();
    files.sort();
    let mut package = String::new();
    let mut body = String::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file).expect("WIT file is readable");
        for line in text.lines() {
            if line.trim_start().starts_with("package ") {
                package = line.trim().to_owned();
            } else {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(
        !package.is_empty(),
        "no `package` line in {}",
        wit_dir.display()
    );
    let wit = format!("{package}\n{body}");
    let mut out = String::new();
    for world in ["detector", "responder"] {
        writeln!(
            out,
            "/// Expands the wit-bindgen bindings of the `{world}` world in the calling crate.\n\
             #[doc(hidden)]\n\
             #[macro_export]\n\
             macro_rules! __aer_bindings_{world} {{\n    () => {{\n\
             $crate::__private::wit_bindgen::generate!({{\n\
             inline: {wit:?},\n\
             world: \"{world}\",\n\
             runtime_path: \"::aer_sdk::__private::wit_bindgen::rt\",\n\
             }});\n    }};\n}}\n"
        )
        .expect("writing to a String cannot fail");
    }
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("bindings_macros.rs"), out)
        .expect("OUT_DIR is writable");
    // The WIT text itself, for `aer validate` style introspection and docs.
    std::fs::write(Path::new(&out_dir).join("aer.wit"), wit).expect("OUT_DIR is writable");
}
