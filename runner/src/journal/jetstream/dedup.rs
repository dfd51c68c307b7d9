//! Dedup claims on the cluster, as sled's `dedup` tree holds them: a key
//! per claimed dedup key (its SHA-256, so any key fits a bucket key), the
//! claiming run id as its value, written by compare-and-set so exactly one
//! run of any node claims a key.

use super::cas;
use super::ClusterError;
use crate::journal::canonical::sha256_hex;
use async_nats::jetstream::kv::Store;
use async_nats::jetstream::Context;
use bytes::Bytes;

/// Compare-and-set rounds before a claim gives up (a storm of claimers).
const MAX_ROUNDS: usize = 100;

/// The dedup claims of one tenant.
#[derive(Clone)]
pub struct Dedup {
    js: Context,
    kv: Store,
    /// How long a claim whose run has no record yet is taken as alive.
    grace: std::time::Duration,
}

impl Dedup {
    pub(super) fn new(js: Context, kv: Store, grace: std::time::Duration) -> Dedup {
        Dedup { js, kv, grace }
    }

    /// Claims `key` for `run_id`: `Some(holder)` when another run holds it.
    /// Claiming again for the same run returns `None`.
    pub async fn claim(&self, key: &str, run_id: &str) -> Result<Option<String>, ClusterError> {
        self.swap(key, None, run_id).await
    }

    /// Moves `key` from `stale` (a run that never journaled its start) to
    /// `run_id`; `Some(holder)` when a third run took it meanwhile. On a
    /// cluster, "never journaled its start" may also be "another node is
    /// starting it right now": a claim younger than one lease TTL is left
    /// alone (`Some(stale)`), so two nodes never both start a run for one
    /// alert; the caller's merge into it fails until it started, and the
    /// sender delivers again.
    pub async fn reclaim(
        &self,
        key: &str,
        stale: &str,
        run_id: &str,
    ) -> Result<Option<String>, ClusterError> {
        let slot = sha256_hex(key.as_bytes());
        let entry = super::patiently(|| self.kv.entry(&slot))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if let Some(e) = entry.filter(|e| e.value.as_ref() == stale.as_bytes()) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128);
            let age = now.saturating_sub(e.created.unix_timestamp_nanos());
            if age < self.grace.as_nanos() as i128 {
                return Ok(Some(stale.to_string()));
            }
        }
        self.swap(key, Some(stale), run_id).await
    }

    async fn swap(
        &self,
        key: &str,
        from: Option<&str>,
        run_id: &str,
    ) -> Result<Option<String>, ClusterError> {
        let slot = sha256_hex(key.as_bytes());
        for _ in 0..MAX_ROUNDS {
            let (held, revision) = cas::read(&self.kv, &slot).await.map_err(unavailable)?;
            let holder = held.map(|b| String::from_utf8_lossy(&b).into_owned());
            match holder.as_deref() {
                Some(h) if h == run_id => return Ok(None),
                Some(h) if Some(h) != from => return Ok(Some(h.to_string())),
                _ => {}
            }
            let value = Bytes::from(run_id.to_string());
            let written = cas::cas(&self.js, &self.kv, &slot, value, revision)
                .await
                .map_err(unavailable)?;
            if written.is_some() {
                return Ok(None);
            }
        }
        Err(ClusterError::Unavailable(format!(
            "dedup key claim: {MAX_ROUNDS} rounds of compare-and-set lost to other writers"
        )))
    }
}

fn unavailable(e: String) -> ClusterError {
    ClusterError::Unavailable(format!("the dedup bucket: {e}"))
}
