//! Tenants' plugins: uploaded versions (artifacts stored by content hash under the data
//! directory), the active version, enabled or not, configuration; and tenants' decision
//! policies.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{Daemon, DaemonError, now_ms};
use crate::host_api::DryRunActions;
use crate::pipeline::policy::{FieldError, Policy};
use crate::plugin::instance::InstanceSpec;
use crate::plugin::{DetectorInstance, LoadedPlugin, PluginKind, Rejection, ResponderInstance};
use crate::store::{MemoryStore, Scope, StateStore, WriteSet};

/// One uploaded version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    /// Version.
    pub version: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// Upload time (ms since the epoch).
    pub uploaded_ms: i64,
    /// Subscribed actions (empty: all).
    pub actions: Vec<String>,
}

/// Whether a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    /// Runs.
    Enabled,
    /// Does not run (its cursor waits).
    Disabled,
    /// Stopped after repeated faults; enable it again to resume where it stopped.
    Quarantined,
}

/// A tenant's plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Plugin name.
    pub name: String,
    /// Detector or responder.
    pub kind: PluginKind,
    /// Uploaded versions, oldest first.
    pub versions: Vec<PluginVersion>,
    /// The version that runs.
    pub active: String,
    /// Runs or not.
    pub status: PluginStatus,
    /// JSON configuration passed to `configure`.
    pub config: String,
    /// Faults so far.
    pub faults: u64,
    /// The last fault's message.
    pub last_fault: Option<String>,
}

impl PluginRecord {
    /// The active version's entry.
    pub fn active_version(&self) -> Option<&PluginVersion> {
        self.versions.iter().find(|v| v.version == self.active)
    }
}

/// Why a plugin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component failed validation.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// No such plugin (or version) for this tenant.
    #[error("no plugin {0:?}")]
    NotFound(String),
    /// The version exists with other bytes.
    #[error(
        "plugin {name} version {version} already exists with a different hash; bump the version"
    )]
    VersionExists {
        /// Plugin.
        name: String,
        /// Version.
        version: String,
    },
    /// Upload of another kind under an existing name.
    #[error("plugin {name} is a {existing}, the upload is a {uploaded}")]
    KindMismatch {
        /// Plugin.
        name: String,
        /// Stored kind.
        existing: PluginKind,
        /// Uploaded kind.
        uploaded: PluginKind,
    },
    /// Bad name or version.
    #[error("invalid {0}")]
    Invalid(String),
    /// The plugin refused the configuration.
    #[error("configuration refused: {0}")]
    Config(String),
    /// No earlier version to roll back to.
    #[error("plugin {0} has no earlier version")]
    NoEarlierVersion(String),
    /// A tenant quota would be passed.
    #[error("quota: {0}")]
    Quota(String),
    /// Storage failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

/// The tenants' plugin records as last read from sled, so a pipeline worker's every
/// step does not read and parse them again (that was 4-5% of a worker's host-side time
/// with 100 tenants). Every write of a record empties it.
#[derive(Default)]
pub(crate) struct RecordCache {
    inner: Mutex<Records>,
}

/// Writes seen so far, and each tenant's records as read since the last.
type Records = (u64, HashMap<String, Arc<Vec<PluginRecord>>>);

impl RecordCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's records, or the generation to pass to [`RecordCache::fill`] after
    /// reading them.
    fn get(&self, tenant: &str) -> Result<Arc<Vec<PluginRecord>>, u64> {
        let inner = self.lock();
        inner.1.get(tenant).cloned().ok_or(inner.0)
    }

    /// Keep `records`, read after [`RecordCache::get`] returned `generation`, unless a
    /// record was written since (the read may predate it).
    fn fill(&self, tenant: &str, generation: u64, records: Arc<Vec<PluginRecord>>) {
        let mut inner = self.lock();
        if inner.0 == generation {
            inner.1.insert(tenant.to_owned(), records);
        }
    }

    /// Records written so far (since start).
    fn generation(&self) -> u64 {
        self.lock().0
    }

    /// A record was written (call after the write).
    fn changed(&self) {
        let mut inner = self.lock();
        inner.0 += 1;
        inner.1.clear();
    }
}

impl Daemon {
    /// Plugin records were replaced from outside this module (a cluster node taking
    /// another node's): what was read of them before is stale.
    pub(crate) fn plugin_records_changed(&self) {
        self.plugin_records.changed();
    }

    /// Plugin records written since start: unchanged, a list of records read before is
    /// still every tenant's current one.
    pub(crate) fn plugin_generation(&self) -> u64 {
        self.plugin_records.generation()
    }

    /// A tenant's plugin record.
    pub fn plugin(&self, tenant: &str, name: &str) -> Result<PluginRecord, PluginError> {
        self.ledger
            .plugin_record(tenant, name)
            .map_err(DaemonError::from)?
            .ok_or_else(|| PluginError::NotFound(name.to_owned()))
    }

    /// Store a plugin record as it is (the pipeline's fault bookkeeping).
    pub(crate) fn put_plugin_record(
        &self,
        tenant: &str,
        rec: &PluginRecord,
    ) -> Result<(), DaemonError> {
        self.put_plugin(tenant, rec).map_err(DaemonError::from)
    }

    fn put_plugin(&self, tenant: &str, rec: &PluginRecord) -> Result<(), PluginError> {
        let written = self.ledger.put_plugin_record(tenant, &rec.name, rec);
        self.plugin_records.changed();
        written.map_err(DaemonError::from)?;
        self.ledger.flush().map_err(DaemonError::from)?;
        Ok(())
    }

    /// Every plugin of a tenant.
    pub fn plugins(&self, tenant: &str) -> Result<Vec<PluginRecord>, PluginError> {
        let generation = match self.plugin_records.get(tenant) {
            Ok(records) => return Ok(records.to_vec()),
            Err(generation) => generation,
        };
        let out: Vec<PluginRecord> = self
            .ledger
            .plugin_records(tenant)
            .map_err(DaemonError::from)?;
        let out = Arc::new(out);
        self.plugin_records.fill(tenant, generation, out.clone());
        Ok(out.to_vec())
    }

    /// Load a stored artifact (compiled once per content hash by the engine's cache,
    /// which is asked first: reading and hashing the file again cost a worker about
    /// 0.3 ms per instance it built, most of the work of a 100-tenant backlog).
    pub fn load_artifact(&self, sha256: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PluginError::Invalid(format!("artifact hash {sha256:?}")));
        }
        if let Some(loaded) = self.loader.cached(sha256) {
            return Ok(loaded);
        }
        let bytes = self
            .artifacts
            .read(format!("{sha256}.wasm"))
            .map_err(|source| DaemonError::Artifact {
                file: format!("{sha256}.wasm"),
                source,
            })?;
        Ok(self.loader.load(&bytes)?)
    }

    /// Validate, compile and store an uploaded component as a new version. Blocking:
    /// call from a blocking thread. A new plugin starts disabled; a new version of an
    /// existing plugin becomes active and keeps its status and configuration.
    pub fn upload_plugin(
        &self,
        tenant: &str,
        bytes: &[u8],
        name: Option<&str>,
        version: Option<&str>,
    ) -> Result<PluginRecord, PluginError> {
        let loaded = self.loader.load(bytes)?;
        let info = loaded.info();
        let name = name.unwrap_or(&info.name).to_owned();
        let version = version.unwrap_or(&info.version).to_owned();
        if !super::tenants::valid_name(&name) {
            return Err(PluginError::Invalid(format!(
                "plugin name {name:?}: use 1 to 64 lowercase letters, digits and `-`"
            )));
        }
        if !valid_version(&version) {
            return Err(PluginError::Invalid(format!("version {version:?}")));
        }
        let sha = loaded.meta.sha256.clone();
        let entry = PluginVersion {
            version: version.clone(),
            sha256: sha.clone(),
            size: bytes.len(),
            uploaded_ms: now_ms(),
            actions: info.actions.clone(),
        };
        let mut fresh = false;
        let rec = match self.plugin(tenant, &name) {
            Ok(mut rec) => {
                if rec.kind != loaded.meta.kind {
                    return Err(PluginError::KindMismatch {
                        name,
                        existing: rec.kind,
                        uploaded: loaded.meta.kind,
                    });
                }
                match rec.versions.iter().find(|v| v.version == version) {
                    Some(v) if v.sha256 != sha => {
                        return Err(PluginError::VersionExists { name, version });
                    }
                    Some(_) => {}
                    None => rec.versions.push(entry),
                }
                rec.active = version;
                rec
            }
            Err(PluginError::NotFound(_)) => {
                let max = self.config.quota(tenant).max_plugins;
                let have = self.plugins(tenant)?.len();
                if have >= max as usize {
                    return Err(PluginError::Quota(format!(
                        "the tenant has {have} plugins, its limit is {max}"
                    )));
                }
                fresh = true;
                PluginRecord {
                    name,
                    kind: loaded.meta.kind,
                    versions: vec![entry],
                    active: version,
                    status: PluginStatus::Disabled,
                    config: String::new(),
                    faults: 0,
                    last_fault: None,
                }
            }
            Err(e) => return Err(e),
        };
        let mut rec = rec;
        let pruned = self.within_artifact_quota(tenant, &mut rec)?;
        self.write_artifact(&sha, bytes)?;
        if fresh {
            // A new plugin: nothing of an earlier one by its name may be left (a
            // deletion a crash cut short, or one by a version that kept its state).
            self.clear_plugin_data(tenant, &rec.name, rec.kind)?;
        }
        self.put_plugin(tenant, &rec)?;
        self.remove_unused_artifacts(pruned.iter().map(|v| v.sha256.as_str()))?;
        Ok(rec)
    }

    /// Keep `rec` within the tenant's artifact quotas: its oldest versions past
    /// `quotas.max_versions` are pruned (never the active one; returned, for their files
    /// to go), and the tenant's versions together may weigh at most
    /// `quotas.max_artifact_bytes`.
    fn within_artifact_quota(
        &self,
        tenant: &str,
        rec: &mut PluginRecord,
    ) -> Result<Vec<PluginVersion>, PluginError> {
        let quota = self.config.quota(tenant);
        let mut pruned = Vec::new();
        while rec.versions.len() > quota.max_versions as usize {
            let Some(oldest) = rec.versions.iter().position(|v| v.version != rec.active) else {
                break;
            };
            pruned.push(rec.versions.remove(oldest));
        }
        let others: usize = self
            .plugins(tenant)?
            .iter()
            .filter(|p| p.name != rec.name)
            .flat_map(|p| &p.versions)
            .map(|v| v.size)
            .sum();
        let total = others + rec.versions.iter().map(|v| v.size).sum::<usize>();
        if total as u64 > quota.max_artifact_bytes {
            return Err(PluginError::Quota(format!(
                "the tenant's plugin versions would weigh {total} bytes, its limit is {}",
                quota.max_artifact_bytes
            )));
        }
        Ok(pruned)
    }

    /// Store an artifact under its hash (once; under a temporary name first, so a crash
    /// leaves no half artifact).
    pub(crate) fn write_artifact(&self, sha: &str, bytes: &[u8]) -> Result<(), DaemonError> {
        let file = format!("{sha}.wasm");
        if self.artifacts.exists(&file) {
            return Ok(());
        }
        let tmp = format!("{sha}.tmp");
        let io = |source| DaemonError::Artifact {
            file: file.clone(),
            source,
        };
        let mut f = self.artifacts.create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        self.artifacts
            .rename(&tmp, &self.artifacts, &file)
            .map_err(io)
    }

    /// Remove the artifact files of `hashes` that no plugin version of any tenant uses
    /// any more.
    pub(crate) fn remove_unused_artifacts<'h>(
        &self,
        hashes: impl IntoIterator<Item = &'h str>,
    ) -> Result<(), DaemonError> {
        let mut gone: std::collections::BTreeSet<&str> = hashes.into_iter().collect();
        if gone.is_empty() {
            return Ok(());
        }
        for rec in self.ledger.all_plugin_records::<PluginRecord>()? {
            for v in &rec.versions {
                gone.remove(v.sha256.as_str());
            }
        }
        for sha in gone {
            match self.artifacts.remove_file(format!("{sha}.wasm")) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DaemonError::Artifact {
                        file: format!("{sha}.wasm"),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Enable, disable (or, for the pipeline, quarantine) a plugin.
    pub fn set_plugin_status(
        &self,
        tenant: &str,
        name: &str,
        status: PluginStatus,
    ) -> Result<PluginRecord, PluginError> {
        let mut rec = self.plugin(tenant, name)?;
        rec.status = status;
        self.put_plugin(tenant, &rec)?;
        Ok(rec)
    }

    /// Set a plugin's configuration after the plugin itself accepted it. Blocking.
    pub fn configure_plugin(
        &self,
        tenant: &str,
        name: &str,
        config: &str,
    ) -> Result<PluginRecord, PluginError> {
        let mut rec = self.plugin(tenant, name)?;
        let sha = rec
            .active_version()
            .map(|v| v.sha256.clone())
            .ok_or_else(|| PluginError::NotFound(format!("{name}@{}", rec.active)))?;
        let loaded = self.load_artifact(&sha)?;
        // Let the plugin judge its configuration, with throwaway state.
        let spec = InstanceSpec {
            tenant: tenant.to_owned(),
            name: Some((rec.name.clone(), rec.active.clone())),
            config: config.to_owned(),
            state: Arc::new(MemoryStore::default()),
            actions: Arc::new(DryRunActions::default()),
        };
        let checked = match rec.kind {
            PluginKind::Detector => DetectorInstance::new(&self.engine, &loaded, spec).map(|_| ()),
            PluginKind::Responder => {
                ResponderInstance::new(&self.engine, &loaded, spec).map(|_| ())
            }
        };
        checked.map_err(|f| PluginError::Config(f.message))?;
        rec.config = config.to_owned();
        self.put_plugin(tenant, &rec)?;
        Ok(rec)
    }

    /// Make `version` (default: the one uploaded before the active one) active again.
    pub fn rollback_plugin(
        &self,
        tenant: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<PluginRecord, PluginError> {
        let mut rec = self.plugin(tenant, name)?;
        let target = match version {
            Some(v) => rec
                .versions
                .iter()
                .find(|x| x.version == v)
                .ok_or_else(|| PluginError::NotFound(format!("{name}@{v}")))?
                .version
                .clone(),
            None => {
                let pos = rec
                    .versions
                    .iter()
                    .position(|v| v.version == rec.active)
                    .unwrap_or(0);
                if pos == 0 {
                    return Err(PluginError::NoEarlierVersion(name.to_owned()));
                }
                rec.versions[pos - 1].version.clone()
            }
        };
        rec.active = target;
        self.put_plugin(tenant, &rec)?;
        Ok(rec)
    }

    /// Delete a plugin with its state (taken off the tenant's state quota) and, for a
    /// detector, its cursor: a plugin uploaded later under the name starts afresh. Its
    /// findings, decisions and actions stay, as do its artifacts (other tenants may
    /// share them). The plugin is disabled first, so a crash part-way leaves it
    /// disabled, to delete again.
    pub fn delete_plugin(&self, tenant: &str, name: &str) -> Result<(), PluginError> {
        let mut rec = self.plugin(tenant, name)?;
        if rec.status != PluginStatus::Disabled {
            rec.status = PluginStatus::Disabled;
            self.put_plugin(tenant, &rec)?;
        }
        self.clear_plugin_data(tenant, name, rec.kind)?;
        self.plugin_logs.forget(tenant, name);
        let removed = self.ledger.remove_plugin_record(tenant, name);
        self.plugin_records.changed();
        removed.map_err(DaemonError::from)?;
        self.ledger.flush().map_err(DaemonError::from)?;
        self.remove_unused_artifacts(rec.versions.iter().map(|v| v.sha256.as_str()))?;
        Ok(())
    }

    /// Remove what the pipeline keeps for plugin `name` of `tenant`: every key of its
    /// state (committed as one batch of deletions, with the tenant's state size brought
    /// down by what they weighed) and a detector's cursor, in one atomic sled batch.
    /// Holds the plugin's part of the pipeline meanwhile, so none of its batches runs
    /// beside it (a worker holding the part reads the plugin's record again if any
    /// record was written since it listed them).
    fn clear_plugin_data(
        &self,
        tenant: &str,
        name: &str,
        kind: PluginKind,
    ) -> Result<(), DaemonError> {
        let _held = self.claims.hold(tenant, name, kind);
        let commit = self.commit_lock();
        let store = self.state_store();
        let scope = Scope::new(tenant, name);
        let entries = store.scan(&scope, "", usize::MAX)?;
        let freed: u64 = entries
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        let mut writes = WriteSet::default();
        for (key, _) in entries {
            writes.put(key, None);
        }
        let mut commit_writes = crate::ledger::Commit::default();
        let staged = store.stage(&scope, &writes, commit_writes.state_batch());
        let size = self.state_bytes(tenant)?.saturating_sub(freed);
        commit_writes.set_state_bytes(tenant, size);
        commit_writes.remove_plugin_state_bytes(tenant, name);
        commit_writes.remove_detector_cursor(tenant, name);
        self.ledger.commit(commit_writes)?;
        store.applied(staged, &scope, &writes);
        drop(commit);
        self.fault_memory()
            .remove(&(tenant.to_owned(), name.to_owned()));
        self.fold_state_if_due();
        Ok(())
    }

    /// A tenant's policy (the default if none was set).
    pub fn policy(&self, tenant: &str) -> Result<Policy, DaemonError> {
        Ok(self.ledger.policy_record(tenant)?.unwrap_or_default())
    }

    /// Replace a tenant's policy; a bad one is refused with field-level errors. A Slack
    /// token of `********` (what reading the policy back shows) keeps the stored one,
    /// so a policy read, edited and set again keeps its secret.
    pub fn set_policy(
        &self,
        tenant: &str,
        json: &str,
    ) -> Result<Result<Policy, Vec<FieldError>>, DaemonError> {
        let mut policy = match Policy::from_json(json) {
            Ok(p) => p,
            Err(errors) => return Ok(Err(errors)),
        };
        if policy.responses.slack_token.as_deref() == Some(crate::pipeline::policy::REDACTED) {
            policy.responses.slack_token = self.policy(tenant)?.responses.slack_token;
        }
        let errors = self.outbound.check_policy(&policy);
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        self.ledger.put_policy_record(tenant, &policy)?;
        self.ledger.flush()?;
        Ok(Ok(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> PluginRecord {
        PluginRecord {
            name: name.into(),
            kind: PluginKind::Detector,
            versions: Vec::new(),
            active: "1.0.0".into(),
            status: PluginStatus::Enabled,
            config: String::new(),
            faults: 0,
            last_fault: None,
        }
    }

    #[test]
    fn the_record_cache_never_keeps_a_read_that_a_write_may_have_overtaken() {
        let cache = RecordCache::default();
        let before = cache.get("t").expect_err("empty");
        cache.fill("t", before, Arc::new(vec![record("a")]));
        assert_eq!(cache.get("t").expect("kept")[0].name, "a");
        // A write empties it; a read that began before the write is not kept.
        let stale = cache.get("u").expect_err("not read yet");
        cache.changed();
        assert!(cache.get("t").is_err(), "emptied by the write");
        cache.fill("u", stale, Arc::new(vec![record("old")]));
        assert!(cache.get("u").is_err(), "read before the write: refused");
        let fresh = cache.get("u").expect_err("still empty");
        cache.fill("u", fresh, Arc::new(vec![record("new")]));
        assert_eq!(cache.get("u").expect("kept")[0].name, "new");
    }
}
