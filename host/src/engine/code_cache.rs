//! The compiled-code cache: the host's own compilation output on disk, so a component
//! compiled once starts in milliseconds the next time (`aer test`, `aer replay`, a
//! daemon restart).
//!
//! An entry is named by SHA-256 of the component's bytes, the engine's configuration
//! (wasmtime's compatibility hash, which covers its version and every code-generation
//! setting) and AER's version. It holds wasmtime's serialised code behind an
//! HMAC-SHA256 under a key kept in the cache directory (created on first use, readable
//! by its owner only): an entry is deserialised only when its tag verifies, so only
//! bytes this host wrote ever reach `Component::deserialize`. Tenant bytes are only
//! ever compiled. An entry that fails to verify or to load is removed and the
//! component compiled again; a cache that cannot be opened or written is skipped with
//! a warning, never an error.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry.
const MAGIC: &[u8; 8] = b"AERCODE1";
/// Bytes of the key and of each entry's tag.
const KEY_BYTES: usize = 32;
/// Entries kept; past this the least recently written go.
pub const MAX_ENTRIES: usize = 1_024;

/// A cache directory for one engine configuration.
pub struct CodeCache {
    dir: PathBuf,
    key: [u8; KEY_BYTES],
    namespace: [u8; 32],
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CodeCacheError {
    /// The directory or its key could not be made or read.
    #[error("code cache {path}: {source}")]
    Io {
        /// What was being read or written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No randomness for a new key.
    #[error("code cache key: {0}")]
    Random(#[from] getrandom::Error),
}

impl CodeCache {
    /// Open the cache in `dir` (made if missing) for code compiled by `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<CodeCache, CodeCacheError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CodeCacheError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join("key");
        let key = match read_key(&key_path).map_err(io(&key_path))? {
            Some(key) => key,
            None => {
                let mut key = [0u8; KEY_BYTES];
                getrandom::fill(&mut key)?;
                // Written aside and linked into place: of two processes starting at
                // once, one key wins and both read it.
                let tmp = temp_path(dir);
                write_private(&tmp, &key).map_err(io(&tmp))?;
                let linked = std::fs::hard_link(&tmp, &key_path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => key,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        read_key(&key_path).map_err(io(&key_path))?.ok_or_else(|| {
                            io(&key_path)(std::io::Error::other("the key is not 32 bytes"))
                        })?
                    }
                    Err(e) => return Err(io(&key_path)(e)),
                }
            }
        };
        let mut h = ShaHasher(Sha256::new());
        b"aer code cache 1".hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CodeCache {
            dir: dir.to_owned(),
            key,
            namespace: h.0.finalize().into(),
        })
    }

    /// The component compiled from bytes whose SHA-256 is `digest`, if this host
    /// cached it and its entry verifies.
    pub fn get(&self, engine: &Engine, digest: &[u8; 32]) -> Option<Component> {
        let (name, path) = self.entry(digest);
        let bytes = std::fs::read(&path).ok()?;
        let artifact = bytes
            .strip_prefix(MAGIC)
            .filter(|rest| rest.len() > KEY_BYTES)
            .and_then(|rest| {
                let (tag, artifact) = rest.split_at(KEY_BYTES);
                self.mac(&name, artifact)
                    .verify_slice(tag)
                    .is_ok()
                    .then_some(artifact)
            });
        let Some(artifact) = artifact else {
            tracing::warn!(entry = %path.display(), "code cache entry does not verify; compiling again");
            let _ = std::fs::remove_file(&path);
            return None;
        };
        // SAFETY: the tag verifies under this cache's key, so these are the bytes
        // `put` wrote from `Component::serialize` of an engine with the same
        // compatibility hash (part of the entry's name and of the tagged text).
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(entry = %path.display(), "code cache entry does not load ({e:#}); compiling again");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keep `component`, compiled from bytes whose SHA-256 is `digest`.
    pub fn put(&self, digest: &[u8; 32], component: &Component) {
        let (name, path) = self.entry(digest);
        let written = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|artifact| {
                let tag = self.mac(&name, &artifact).finalize().into_bytes();
                let tmp = temp_path(&self.dir);
                let mut f = std::fs::File::create_new(&tmp)?;
                f.write_all(MAGIC)?;
                f.write_all(&tag)?;
                f.write_all(&artifact)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path).inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })
            });
        match written {
            Ok(()) => self.prune(),
            Err(e) => {
                tracing::warn!(entry = %path.display(), "cannot write to the code cache: {e}")
            }
        }
    }

    /// Entries in the cache.
    pub fn entries(&self) -> usize {
        self.listed().len()
    }

    /// Remove the least recently written entries past [`MAX_ENTRIES`].
    fn prune(&self) {
        let mut entries = self.listed();
        if entries.len() <= MAX_ENTRIES {
            return;
        }
        entries.sort();
        for (_, path) in &entries[..entries.len() - MAX_ENTRIES] {
            let _ = std::fs::remove_file(path);
        }
    }

    fn listed(&self) -> Vec<(std::time::SystemTime, PathBuf)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect()
    }

    /// The entry's name (what its tag covers) and path.
    fn entry(&self, digest: &[u8; 32]) -> (String, PathBuf) {
        let mut h = Sha256::new();
        h.update(self.namespace);
        h.update(digest);
        let name = hex::encode(h.finalize());
        let path = self.dir.join(format!("{name}.cwasm"));
        (name, path)
    }

    fn mac(&self, name: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        mac.update(artifact);
        mac
    }
}

/// The key in `path`, if it holds one.
fn read_key(path: &Path) -> std::io::Result<Option<[u8; KEY_BYTES]>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes.try_into().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A fresh name for a file being written in `dir`.
fn temp_path(dir: &Path) -> PathBuf {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    dir.join(format!(".tmp-{}-{}", std::process::id(), hex::encode(r)))
}

/// Feeds `Hash` output into SHA-256 (the same on every run, unlike `DefaultHasher`'s
/// use in collections).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}
