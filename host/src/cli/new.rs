//! `aer new detector|responder NAME`: scaffold a standalone plugin crate that builds
//! with `cargo build --target wasm32-wasip2 --release` and tests with `cargo test`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use super::{EXIT_OK, Io};

/// What kind of plugin to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Events in, findings out.
    Detector,
    /// Decisions in, effects out.
    Responder,
}

/// Arguments of `aer new`.
#[derive(Debug, Args)]
pub struct NewCommand {
    /// Plugin kind.
    pub kind: Kind,
    /// Crate name (lowercase letters, digits, `-` and `_`, starting with a letter).
    pub name: String,
    /// Directory to create (default: ./NAME).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Path of the aer-sdk crate (default: the SDK next to this build of `aer`).
    #[arg(long, env = "AER_SDK_PATH")]
    pub sdk: Option<PathBuf>,
}

const CARGO_TOML: &str = include_str!("../../templates/Cargo.toml.tmpl");
const GITIGNORE: &str = include_str!("../../templates/gitignore.tmpl");
const DETECTOR_README: &str = include_str!("../../templates/detector/README.md.tmpl");
const RESPONDER_README: &str = include_str!("../../templates/responder/README.md.tmpl");
const EVENTS: &str = include_str!("../../templates/events.ndjson.tmpl");
const DETECTOR_LIB: &str = include_str!("../../templates/detector/lib.rs.tmpl");
const RESPONDER_LIB: &str = include_str!("../../templates/responder/lib.rs.tmpl");

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

impl NewCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        if !valid_name(&self.name) {
            bail!(
                "invalid plugin name {:?}: use lowercase letters, digits, `-` and `_`, starting with a letter",
                self.name
            );
        }
        let dir = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(&self.name));
        if dir.exists() {
            bail!("{} already exists", dir.display());
        }
        let sdk = match &self.sdk {
            Some(p) => p.clone(),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"),
        };
        let sdk = sdk
            .canonicalize()
            .with_context(|| format!("aer-sdk not found at {} (pass --sdk PATH)", sdk.display()))?;
        if !sdk.join("Cargo.toml").is_file() {
            bail!(
                "{} has no Cargo.toml; pass --sdk with the aer-sdk crate's directory",
                sdk.display()
            );
        }
        let kind = match self.kind {
            Kind::Detector => "detector",
            Kind::Responder => "responder",
        };
        let fill = |t: &str| {
            t.replace("{{name}}", &self.name)
                .replace("{{crate}}", &self.name.replace('-', "_"))
                .replace("{{type}}", &type_name(&self.name))
                .replace("{{kind}}", kind)
                .replace("{{sdk}}", &sdk.display().to_string().replace('\\', "/"))
        };
        let (lib, readme) = match self.kind {
            Kind::Detector => (DETECTOR_LIB, DETECTOR_README),
            Kind::Responder => (RESPONDER_LIB, RESPONDER_README),
        };
        std::fs::create_dir_all(dir.join("src"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut files = vec![
            ("Cargo.toml", fill(CARGO_TOML)),
            (".gitignore", fill(GITIGNORE)),
            ("README.md", fill(readme)),
            ("src/lib.rs", fill(lib)),
        ];
        if self.kind == Kind::Detector {
            files.push(("events.ndjson", fill(EVENTS)));
        }
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        writeln!(
            io.out,
            "created {kind} plugin `{}` in {}",
            self.name,
            dir.display()
        )?;
        writeln!(
            io.out,
            "next: cd {} && cargo test && cargo build --target wasm32-wasip2 --release",
            dir.display()
        )?;
        Ok(EXIT_OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("foo-bar_2"));
        assert!(!valid_name("Foo"));
        assert!(!valid_name("2foo"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        assert_eq!(type_name("foo-bar_baz"), "FooBarBaz");
    }
}
