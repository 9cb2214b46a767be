//! Per-plugin state: the [`StateStore`] trait, its sled and in-memory implementations,
//! and the [`WriteSet`] a call builds up before it is committed.
//!
//! Keys are scoped by the host to a [`Scope`] (tenant, plugin); a plugin names only the
//! part after the scope, so it cannot reach another plugin's keys.

mod cache;
mod journal;
mod memory;
mod pages;
mod sled_store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Bound;

pub use cache::StateCache;
pub use journal::Staged;
pub use memory::MemoryStore;
pub use sled_store::{Folded, SledStore, StateLayout};

/// Size of the cache in front of a database opened with [`SledStore::open`].
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored key is not valid UTF-8 (written by something other than AER).
    #[error("state store: key under {0} is not UTF-8")]
    BadKey(String),
    /// A stored record is not in the layout this version writes.
    #[error("state store: malformed {0}")]
    Corrupt(String),
}

/// The (tenant, plugin) a state key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    prefix: Vec<u8>,
    label: String,
}

impl Scope {
    /// The scope of `plugin` in `tenant`. Names are length-prefixed in the key, so no
    /// choice of names can make two scopes overlap.
    pub fn new(tenant: &str, plugin: &str) -> Self {
        let mut prefix = Vec::with_capacity(tenant.len() + plugin.len() + 8);
        for part in [tenant, plugin] {
            prefix.extend_from_slice(&(part.len() as u32).to_be_bytes());
            prefix.extend_from_slice(part.as_bytes());
        }
        Scope {
            prefix,
            label: format!("{tenant}/{plugin}"),
        }
    }

    /// The full store key of a plugin key.
    pub fn key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn strip(&self, full: &[u8]) -> Result<String, StoreError> {
        String::from_utf8(full[self.prefix.len()..].to_vec())
            .map_err(|_| StoreError::BadKey(self.label.clone()))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// Writes made during one call, applied atomically by [`StateStore::commit`].
/// `None` deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl WriteSet {
    /// Record a write (the last write to a key wins).
    pub fn put(&mut self, key: String, value: Option<Vec<u8>>) {
        self.writes.insert(key, value);
    }

    /// What this set holds for `key`: `Some(None)` means deleted here.
    pub fn get(&self, key: &str) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|v| v.as_deref())
    }

    /// Entries under `prefix`, in key order.
    pub fn range_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Option<Vec<u8>>)> + 'a {
        self.writes
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Number of keys written.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// All writes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Option<Vec<u8>>)> {
        self.writes.iter()
    }
}

/// Where plugin state lives. Implementations must make `commit` atomic.
pub trait StateStore: Send + Sync {
    /// Committed value of `key`.
    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` committed entries whose key starts with `prefix`, in key order.
    fn scan(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_bounded(scope, prefix, limit, usize::MAX)
    }
    /// [`StateStore::scan`], stopping once the entries taken (keys and values) pass
    /// `max_bytes`: the entry that passes it is the last one read, so a caller can tell
    /// a budget was passed without more than one entry beyond it in memory.
    fn scan_bounded(
        &self,
        scope: &Scope,
        prefix: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Apply a write set atomically.
    fn commit(&self, scope: &Scope, writes: &WriteSet) -> Result<(), StoreError>;
    /// Make committed writes durable.
    fn flush(&self) -> Result<(), StoreError>;
}
