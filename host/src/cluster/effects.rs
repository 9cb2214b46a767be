//! Effects claimed across the cluster in the bucket `aer-effects`, by idempotency key:
//! a node creates the key (create-only) before it performs an effect and records the
//! outcome after, so a decision replayed on the new owner of a partition finds the
//! effect finished and records that instead of performing it again. An effect another
//! node began and never finished (it stopped mid-request) is performed again, with the
//! same idempotency key, once that node has been silent for longer than an attempt can
//! last: as a single node does after a crash.

use std::time::Duration;

use async_nats::jetstream::kv;

use super::boxed;
use crate::daemon::executor::{Begin, EffectClaims};

/// How long an effect's claim is kept (well past any replay).
pub(super) const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// An effect's claim.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claim {
    node: String,
    /// `started`, `done` or `failed`.
    state: String,
    #[serde(default)]
    detail: String,
    /// When it was begun (ms since the epoch, the claiming node's clock).
    at_ms: i64,
}

/// The bucket, used from the executor's threads (outside the async runtime).
pub(super) struct Claims {
    pub(super) bucket: kv::Store,
    pub(super) node: String,
    pub(super) runtime: tokio::runtime::Handle,
    /// How long an attempt can last: past it, another node's unfinished claim is
    /// taken over.
    pub(super) silent: Duration,
}

impl Claims {
    fn value(&self, state: &str, detail: &str) -> bytes::Bytes {
        let claim = Claim {
            node: self.node.clone(),
            state: state.to_owned(),
            detail: detail.to_owned(),
            at_ms: crate::daemon::now_ms(),
        };
        serde_json::to_vec(&claim).unwrap_or_default().into()
    }
}

impl EffectClaims for Claims {
    fn begin(&self, key: &str) -> Result<Begin, String> {
        self.runtime.block_on(async {
            let started = self.value("started", "");
            if self.bucket.create(key, started.clone()).await.is_ok() {
                return Ok(Begin::Perform);
            }
            let Some(entry) = self
                .bucket
                .entry(key)
                .await
                .map_err(|e| boxed(e).to_string())?
            else {
                return Ok(Begin::Later(Duration::from_millis(50)));
            };
            let claim: Claim = serde_json::from_slice(&entry.value)
                .map_err(|e| format!("an effect's claim: {e}"))?;
            match claim.state.as_str() {
                "done" | "failed" => Ok(Begin::Finished {
                    status: claim.state,
                    detail: claim.detail,
                }),
                _ if claim.node == self.node => Ok(Begin::Perform),
                _ => {
                    let age = crate::daemon::now_ms().saturating_sub(claim.at_ms);
                    let silent = i64::try_from(self.silent.as_millis()).unwrap_or(i64::MAX);
                    if age < silent {
                        let left = u64::try_from(silent - age).unwrap_or(0);
                        return Ok(Begin::Later(Duration::from_millis(left.clamp(50, 1_000))));
                    }
                    match self.bucket.update(key, started, entry.revision).await {
                        Ok(_) => Ok(Begin::Perform),
                        Err(_) => Ok(Begin::Later(Duration::from_millis(50))),
                    }
                }
            }
        })
    }

    fn finish(&self, key: &str, status: &str, detail: &str) -> Result<(), String> {
        self.runtime.block_on(async {
            self.bucket
                .put(key, self.value(status, detail))
                .await
                .map(|_| ())
                .map_err(|e| boxed(e).to_string())
        })
    }
}
