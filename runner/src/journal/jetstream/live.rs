//! The unfinished-run index on the cluster (as `journal/live.rs` is on
//! sled): a run is listed before its first record and unlisted after its
//! final one, so a node's start-up and a takeover scan read only live runs,
//! whatever the history. A listed run whose lease nobody holds is an orphan:
//! its owner died, and another node takes it over.

use super::lease::Leases;
use super::names::{token, untoken};
use super::ClusterError;
use async_nats::jetstream::kv::Store;
use futures_util::StreamExt;

/// Most live runs one scan lists (a larger index is refused, not cut).
pub const MAX_LIVE: usize = 1_000_000;

/// The value of a paused run's entry (a driven run's is empty).
const PAUSED: &[u8] = b"paused";
/// The value of a parked run's entry (its drive failed for good).
const PARKED: &[u8] = b"parked";

/// The unfinished runs of one tenant.
#[derive(Clone)]
pub struct LiveRuns {
    kv: Store,
}

impl LiveRuns {
    pub(super) fn new(kv: Store) -> LiveRuns {
        LiveRuns { kv }
    }

    /// Lists `run_id` as driven: call before its first record is appended,
    /// and when a node resumes it.
    pub async fn list(&self, run_id: &str) -> Result<(), ClusterError> {
        self.put(run_id, bytes::Bytes::new()).await
    }

    /// Marks `run_id` paused (waiting for an approval or an operator): a
    /// takeover scan leaves it alone, since no node has to drive it until
    /// someone answers, and the node that takes the answer resumes it.
    pub async fn paused(&self, run_id: &str) -> Result<(), ClusterError> {
        self.put(run_id, bytes::Bytes::from_static(PAUSED)).await
    }

    /// Marks `run_id` parked: its drive failed on something any node would
    /// meet again, so no takeover scan picks it up; a node's start-up
    /// (which resumes every listed run) or `soar resume` tries it again.
    pub async fn parked(&self, run_id: &str) -> Result<(), ClusterError> {
        self.put(run_id, bytes::Bytes::from_static(PARKED)).await
    }

    async fn put(&self, run_id: &str, value: bytes::Bytes) -> Result<(), ClusterError> {
        let key = token(run_id);
        let mut tries = 0;
        loop {
            // A put is idempotent: repeated while no server answers yet.
            match self.kv.put(&key, value.clone()).await {
                Ok(_) => return Ok(()),
                Err(_) if tries < super::runlog::NO_RESPONDERS_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(unavailable(run_id, &e)),
            }
        }
    }

    /// Unlists `run_id`: call after its final record is appended (a crash
    /// between the two leaves a finished run listed, which a takeover finds
    /// finished and unlists; never the reverse).
    pub async fn unlist(&self, run_id: &str) -> Result<(), ClusterError> {
        self.kv
            .purge(token(run_id))
            .await
            .map_err(|e| unavailable(run_id, &e))
    }

    /// Every listed run, in key order.
    pub async fn runs(&self) -> Result<Vec<String>, ClusterError> {
        let mut keys = super::patiently(|| self.kv.keys())
            .await
            .map_err(|e| ClusterError::Unavailable(format!("listing live runs: {e}")))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key =
                key.map_err(|e| ClusterError::Unavailable(format!("listing live runs: {e}")))?;
            if out.len() == MAX_LIVE {
                return Err(ClusterError::Corrupt(format!(
                    "more than {MAX_LIVE} live runs are listed on the cluster"
                )));
            }
            let run_id = untoken(&key).ok_or_else(|| {
                ClusterError::Corrupt(format!("live-run key `{key}` was not written by soar"))
            })?;
            out.push(run_id);
        }
        out.sort();
        Ok(out)
    }

    /// Listed runs being driven that no node holds a lease on: the ones to
    /// take over (paused runs wait for an answer, not for a node).
    pub async fn orphans(&self, leases: &Leases) -> Result<Vec<String>, ClusterError> {
        let mut out = Vec::new();
        for run_id in self.runs().await? {
            let value = super::patiently(|| self.kv.get(token(&run_id)))
                .await
                .map_err(|e| unavailable(&run_id, &e))?;
            let waiting = value.is_some_and(|v| v.as_ref() == PAUSED || v.as_ref() == PARKED);
            if !waiting && leases.holder(&run_id).await?.is_none() {
                out.push(run_id);
            }
        }
        Ok(out)
    }
}

fn unavailable(run_id: &str, e: &dyn std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(format!("the live-run index, run `{run_id}`: {e}"))
}
