//! Upload validation: size cap, must be a component, must export a known world, may
//! import only what the host provides for that world (type-checked by
//! pre-instantiation), must compile. A rejection says why in one line.

use super::code::{code_stats, over_limits};

use crate::bindings::{self, detector::DetectorPre, responder::ResponderPre};
use crate::engine::AerEngine;
use crate::host_api::{HostState, wasi::GRANTED_WASI};

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Bigger than the configured cap.
    #[error("component is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// Not WebAssembly at all.
    #[error("not a WebAssembly binary (no \\0asm header)")]
    NotWasm,
    /// A core module rather than a component.
    #[error(
        "a core WebAssembly module, not a component: build the plugin with `--target wasm32-wasip2`"
    )]
    CoreModule,
    /// Does not parse or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// Exports neither AER world.
    #[error("exports no AER world (expected `{}@{}` or `{}@{}`); it exports: {}", bindings::DETECTOR_INTERFACE, bindings::WIT_VERSION, bindings::RESPONDER_INTERFACE, bindings::WIT_VERSION, list(.exports))]
    UnknownWorld {
        /// What it exports.
        exports: Vec<String>,
    },
    /// Exports both AER worlds: a plugin is a detector or a responder, never both.
    #[error(
        "exports both `{}` and `{}`: a plugin is a detector or a responder, not both",
        bindings::DETECTOR_INTERFACE,
        bindings::RESPONDER_INTERFACE
    )]
    BothWorlds,
    /// Built against a version of the WIT package this host does not run.
    #[error(
        "built against `aer:plugin@{version}`; this host implements `aer:plugin@{}` and runs components built against 0.1.0 to that version",
        bindings::WIT_VERSION
    )]
    UnsupportedWit {
        /// The version the component was built against.
        version: String,
    },
    /// Imports something the host does not provide.
    #[error("imports `{import}`, which the host does not provide to {kind} plugins")]
    UnsupportedImport {
        /// The import.
        import: String,
        /// The world it claimed.
        kind: PluginKind,
    },
    /// Imports or exports with the right names but the wrong types.
    #[error("does not match the host's interfaces: {0}")]
    Incompatible(String),
    /// Code over the static bounds (a compile bomb).
    #[error("code too large to compile: {0}")]
    CodeTooLarge(String),
    /// Compiling took longer than allowed.
    #[error("compilation took longer than {limit_ms} ms")]
    CompileTimeout {
        /// The bound.
        limit_ms: u64,
    },
    /// The compiler slots are all taken (by slow or timed-out compilations).
    #[error("{running} compilations are already running; try again later")]
    CompilerBusy {
        /// Compilations in progress.
        running: u32,
    },
    /// Traps or times out while starting or describing itself.
    #[error("fails to start: {0}")]
    FailsToStart(String),
}

impl From<crate::engine::CompileError> for Rejection {
    fn from(e: crate::engine::CompileError) -> Self {
        use crate::engine::CompileError;
        match e {
            CompileError::Invalid(why) => Rejection::Invalid(why),
            CompileError::Timeout { limit_ms } => Rejection::CompileTimeout { limit_ms },
            CompileError::Busy { running } => Rejection::CompilerBusy { running },
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Events in, findings out.
    Detector,
    /// Decisions in, effects out.
    Responder,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Detector => "detector",
            PluginKind::Responder => "responder",
        })
    }
}

/// Facts about a validated component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginMeta {
    /// Its world.
    pub kind: PluginKind,
    /// The AER WIT package version it was built against.
    pub wit_version: String,
    /// Its imports.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// Size in bytes.
    pub size: usize,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// What its code amounts to (checked against the code bounds before compiling).
    pub code: super::code::CodeStats,
}

pub(crate) enum WorldPre {
    Detector(DetectorPre<HostState>),
    Responder(ResponderPre<HostState>),
}

/// A validated, compiled component, ready to instantiate.
pub struct LoadedPlugin {
    /// Facts about it.
    pub meta: PluginMeta,
    pub(crate) pre: WorldPre,
    /// Its self-description with an empty configuration, read once at load time.
    pub(crate) info: std::sync::OnceLock<crate::bindings::PluginInfo>,
    /// Its self-description by configuration, as instances gave it: a description is a
    /// function of the configuration (the SDK's `info` sees nothing else), so an
    /// instance started again, or another tenant's with the same configuration, need
    /// not ask (deriving a configuration schema costs a guest some 150 us).
    described: std::sync::Mutex<std::collections::HashMap<String, crate::bindings::PluginInfo>>,
}

/// Configurations whose descriptions a plugin keeps (all are dropped when full).
const DESCRIBED: usize = 256;

impl LoadedPlugin {
    /// Its self-description with an empty configuration (name, version, actions).
    pub fn info(&self) -> &crate::bindings::PluginInfo {
        self.info
            .get()
            .expect("set by AerEngine::load before the plugin is handed out")
    }

    /// Its self-description under `config`, if an instance gave it before.
    pub(crate) fn described(&self, config: &str) -> Option<crate::bindings::PluginInfo> {
        self.described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(config)
            .cloned()
    }

    /// Remember the self-description an instance gave under `config`.
    pub(crate) fn remember(&self, config: &str, info: &crate::bindings::PluginInfo) {
        let mut described = self.described.lock().unwrap_or_else(|e| e.into_inner());
        if described.len() >= DESCRIBED {
            described.clear();
        }
        described.insert(config.to_owned(), info.clone());
    }
}

const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
const CORE_MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Validate and compile `bytes` (whose SHA-256 is `digest`).
pub(crate) fn load(
    engine: &AerEngine,
    bytes: &[u8],
    digest: [u8; 32],
) -> Result<LoadedPlugin, Rejection> {
    let limit = engine.limits().component_bytes;
    if bytes.len() > limit {
        return Err(Rejection::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Rejection::NotWasm);
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(Rejection::CoreModule);
    }
    if bytes[4..8] != COMPONENT_LAYER {
        return Err(Rejection::Invalid(format!(
            "unsupported WebAssembly version or layer {:02x?}",
            &bytes[4..8]
        )));
    }
    let stats = code_stats(bytes).map_err(Rejection::Invalid)?;
    if let Some(why) = over_limits(&stats, engine.limits()) {
        return Err(Rejection::CodeTooLarge(why));
    }
    let component = engine.compile(bytes, &digest)?;
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine.engine())
        .map(|(n, _)| n.to_owned())
        .collect();
    let imports: Vec<String> = ty
        .imports(engine.engine())
        .map(|(n, _)| n.to_owned())
        .collect();

    let world = |interface: &str| {
        exports.iter().find_map(|e| {
            bindings::split_export(e)
                .filter(|(i, _)| *i == interface)
                .map(|(_, v)| v.to_owned())
        })
    };
    let detector = world(bindings::DETECTOR_INTERFACE);
    let responder = world(bindings::RESPONDER_INTERFACE);
    let (kind, wit_version) = match (detector, responder) {
        (Some(_), Some(_)) => return Err(Rejection::BothWorlds),
        (Some(v), None) => (PluginKind::Detector, v),
        (None, Some(v)) => (PluginKind::Responder, v),
        (None, None) => return Err(Rejection::UnknownWorld { exports }),
    };
    if !bindings::runs(&wit_version) {
        return Err(Rejection::UnsupportedWit {
            version: wit_version,
        });
    }
    let aer_imports: &[&str] = match kind {
        PluginKind::Detector => &[
            "aer:plugin/types@",
            "aer:plugin/state@",
            "aer:plugin/baseline@",
            "aer:plugin/log@",
            "aer:plugin/geo@",
        ],
        PluginKind::Responder => &[
            "aer:plugin/types@",
            "aer:plugin/state@",
            "aer:plugin/baseline@",
            "aer:plugin/log@",
            "aer:plugin/geo@",
            "aer:plugin/actions@",
        ],
    };
    if let Some(bad) = imports.iter().find(|i| {
        !aer_imports
            .iter()
            .chain(GRANTED_WASI)
            .any(|p| i.starts_with(p))
    }) {
        return Err(Rejection::UnsupportedImport {
            import: bad.clone(),
            kind,
        });
    }
    let incompatible = |e: wasmtime::Error| Rejection::Incompatible(format!("{e:#}"));
    let pre = match kind {
        PluginKind::Detector => {
            let pre = engine
                .detector_linker
                .instantiate_pre(&component)
                .map_err(incompatible)?;
            WorldPre::Detector(DetectorPre::new(pre).map_err(incompatible)?)
        }
        PluginKind::Responder => {
            let pre = engine
                .responder_linker
                .instantiate_pre(&component)
                .map_err(incompatible)?;
            WorldPre::Responder(ResponderPre::new(pre).map_err(incompatible)?)
        }
    };
    Ok(LoadedPlugin {
        meta: PluginMeta {
            kind,
            wit_version,
            imports,
            exports,
            size: bytes.len(),
            sha256: hex::encode(digest),
            code: stats,
        },
        pre,
        info: std::sync::OnceLock::new(),
        described: Default::default(),
    })
}
