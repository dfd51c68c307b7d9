//! Run ownership: a node drives a run while it holds the run's lease, a key
//! in a replicated bucket whose entries expire `lease_ttl` after their last
//! write. Taking and renewing are compare-and-set on the key's revision, so
//! two nodes never both believe they renewed. A lease alone does not stop
//! a paused old owner: the run log's fence does (see `runlog.rs`).

use super::cas;
use super::names::token;
use super::ClusterError;
use async_nats::jetstream::kv::Store;
use async_nats::jetstream::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a lease key holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    /// The node holding the run.
    pub node: String,
}

/// A lease this node holds, at the revision it last wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run_id: String,
    revision: u64,
}

/// This node's view of the lease bucket.
#[derive(Clone)]
pub struct Leases {
    js: Context,
    kv: Store,
    node: String,
}

impl Leases {
    pub(super) fn new(js: Context, kv: Store, node: String) -> Leases {
        Leases { js, kv, node }
    }

    /// This node's name, as leases record it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes `run_id` if no live lease holds it (never held, released, or
    /// expired). [`ClusterError::Held`] names the holder otherwise.
    pub async fn acquire(&self, run_id: &str) -> Result<Lease, ClusterError> {
        let key = token(run_id);
        let (held, revision) = cas::read(&self.kv, &key)
            .await
            .map_err(|e| unavailable(run_id, &e))?;
        if held.is_none() {
            let written = cas::cas(&self.js, &self.kv, &key, self.value()?, revision)
                .await
                .map_err(|e| unavailable(run_id, &e))?;
            if let Some(revision) = written {
                return Ok(Lease {
                    run_id: run_id.to_string(),
                    revision,
                });
            }
        }
        // Held, or another node took it between the read and the write.
        let holder = self.holder(run_id).await?;
        Err(ClusterError::Held {
            run_id: run_id.to_string(),
            holder: holder.map_or_else(|| "(released just now)".into(), |h| h.node),
        })
    }

    /// Extends `lease`. [`ClusterError::Lost`] when it expired or another
    /// node took the run since: the caller must stop driving it at once.
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), ClusterError> {
        let written = cas::cas(
            &self.js,
            &self.kv,
            &token(&lease.run_id),
            self.value()?,
            lease.revision,
        )
        .await
        .map_err(|e| unavailable(&lease.run_id, &e))?;
        match written {
            Some(revision) => {
                lease.revision = revision;
                Ok(())
            }
            None => Err(ClusterError::Lost {
                run_id: lease.run_id.clone(),
            }),
        }
    }

    /// Gives the run up (its end, or a clean shutdown); a lease another
    /// node took meanwhile is left alone.
    pub async fn release(&self, lease: Lease) -> Result<(), ClusterError> {
        self.kv
            .delete_expect_revision(token(&lease.run_id), Some(lease.revision))
            .await
            .map_err(|e| unavailable(&lease.run_id, &e))
    }

    /// Removes `run_id`'s lease whoever holds it: an operator's forced
    /// release of a run whose node is known dead (the fence still stops
    /// that node's appends if it was not).
    pub async fn release_any(&self, run_id: &str) -> Result<(), ClusterError> {
        self.kv
            .delete(token(run_id))
            .await
            .map_err(|e| unavailable(run_id, &e))
    }

    /// Who holds `run_id` now, if anyone.
    pub async fn holder(&self, run_id: &str) -> Result<Option<Holder>, ClusterError> {
        let Some(bytes) = self
            .kv
            .get(token(run_id))
            .await
            .map_err(|e| unavailable(run_id, &e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ClusterError::Corrupt(format!("the lease of run `{run_id}` is unreadable: {e}"))
        })
    }

    fn value(&self) -> Result<Bytes, ClusterError> {
        let holder = Holder {
            node: self.node.clone(),
        };
        serde_json::to_vec(&holder)
            .map(Bytes::from)
            .map_err(|e| ClusterError::Corrupt(e.to_string()))
    }
}

fn unavailable(run_id: &str, e: &dyn std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(format!("the lease of run `{run_id}`: {e}"))
}
