//! Loading plugins: validate and compile a component once per content hash
//! ([`validate`](super::validate)), describe it (it is started once), and
//! keep the result for every later load of the same bytes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};

use sha2::{Digest, Sha256};

use super::validate::{LoadedPlugin, Rejection};
use crate::engine::AerEngine;

/// Loads plugins on an engine, caching them by content hash. One per process (the
/// daemon's, or a local tool's); cheap to share (`Arc`).
pub struct Loader {
    engine: Arc<AerEngine>,
    cache: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    /// Hashes being loaded now: a second caller for the same bytes waits for the first
    /// (`loaded` is notified as each load ends) instead of compiling them again.
    loading: Mutex<HashSet<String>>,
    loaded: Condvar,
}

impl Loader {
    /// A loader on `engine`, its cache empty.
    pub fn new(engine: Arc<AerEngine>) -> Self {
        Loader {
            engine,
            cache: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashSet::new()),
            loaded: Condvar::new(),
        }
    }

    /// The engine plugins are loaded on.
    pub fn engine(&self) -> &Arc<AerEngine> {
        &self.engine
    }

    /// The plugin compiled from bytes whose SHA-256 is `sha256` (lowercase hex), if it
    /// is cached.
    pub fn cached(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        self.cache_lock().get(sha256).cloned()
    }

    /// Validate and compile a component, or return the cached result for the same bytes.
    /// A call for bytes another thread is loading waits for that load and shares its
    /// result (or, if it failed, loads them itself).
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedPlugin>, Rejection> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let sha256 = hex::encode(digest);
        let mut loading = self.loading_lock();
        loop {
            // Checked under the loading lock: a load puts its result in the cache
            // before it leaves `loading`.
            if let Some(p) = self.cache_lock().get(&sha256) {
                return Ok(p.clone());
            }
            if loading.insert(sha256.clone()) {
                break;
            }
            loading = self
                .loaded
                .wait_while(loading, |l| l.contains(&sha256))
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(loading);
        let _done = LoadingDone {
            loader: self,
            sha256: &sha256,
        };
        let plugin = Arc::new(super::validate::load(&self.engine, bytes, digest)?);
        let info = super::instance::probe_info(&self.engine, &plugin)
            .map_err(|f| Rejection::FailsToStart(format!("{}: {}", f.kind, f.message)))?;
        let _ = plugin.info.set(info);
        self.cache_lock().insert(sha256.clone(), plugin.clone());
        Ok(plugin)
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedPlugin>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn loading_lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.loading.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends a load (however it ends): its hash leaves `loading` and waiters wake.
struct LoadingDone<'a> {
    loader: &'a Loader,
    sha256: &'a str,
}

impl Drop for LoadingDone<'_> {
    fn drop(&mut self) {
        self.loader.loading_lock().remove(self.sha256);
        self.loader.loaded.notify_all();
    }
}
