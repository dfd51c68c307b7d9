//! A node's ownership of the runs it drives: it claims a run's lease when it
//! starts or takes over the run, renews every lease it holds a few times
//! per `lease_ttl`, and reports a run it lost (taken over, or renewals
//! failing for a whole TTL) on a channel, so the driver stops at once. Only
//! runs being driven hold a lease; a paused run gives its lease up and is
//! claimed by whichever node resumes it.

use super::lease::{Lease, Leases};
use super::live::LiveRuns;
use super::ClusterError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Renewals per lease TTL: one lost or slow renewal leaves two more.
const RENEWALS_PER_TTL: u32 = 3;

/// A lease held, and when it was last renewed.
struct Held {
    lease: Lease,
    renewed: Instant,
}

/// The runs this node drives.
#[derive(Clone)]
pub struct Ownership {
    leases: Leases,
    held: Arc<Mutex<HashMap<String, Held>>>,
    lost: mpsc::UnboundedSender<String>,
    renewer: Arc<tokio::task::JoinHandle<()>>,
}

impl Ownership {
    /// Starts renewing; the receiver gets each run this node lost.
    pub fn start(leases: Leases, ttl: Duration) -> (Ownership, mpsc::UnboundedReceiver<String>) {
        let (lost, lost_rx) = mpsc::unbounded_channel();
        let held = Arc::new(Mutex::new(HashMap::new()));
        let renewer = tokio::spawn(renew_loop(leases.clone(), held.clone(), lost.clone(), ttl));
        let owner = Ownership {
            leases,
            held,
            lost,
            renewer: Arc::new(renewer),
        };
        (owner, lost_rx)
    }

    /// Claims `run_id` (a run this node starts or resumes).
    pub async fn claim(&self, run_id: &str) -> Result<(), ClusterError> {
        let lease = self.leases.acquire(run_id).await?;
        self.track(lease);
        Ok(())
    }

    /// Claims every unfinished run no node holds; the ones this node got
    /// (another node may win some of them).
    pub async fn take_over(&self, live: &LiveRuns) -> Result<Vec<String>, ClusterError> {
        let mut taken = Vec::new();
        for run_id in live.orphans(&self.leases).await? {
            match self.leases.acquire(&run_id).await {
                Ok(lease) => {
                    self.track(lease);
                    taken.push(run_id);
                }
                Err(ClusterError::Held { .. }) => {}
                // What was claimed is returned (and driven); the rest
                // waits for the next scan.
                Err(e) => {
                    tracing::warn!(run_id, error = %e, "the takeover scan stopped early");
                    break;
                }
            }
        }
        Ok(taken)
    }

    /// Whether this node holds `run_id`.
    pub fn owns(&self, run_id: &str) -> bool {
        self.lock().contains_key(run_id)
    }

    /// Gives `run_id` up: it finished or paused. A lease another node took
    /// meanwhile is left alone.
    pub async fn release(&self, run_id: &str) -> Result<(), ClusterError> {
        let held = self.lock().remove(run_id);
        match held {
            Some(h) => self.leases.release(h.lease).await,
            None => Ok(()),
        }
    }

    /// The fence refused an append to `run_id`: another node drives it
    /// now. Forgotten at once, and reported like a lost lease.
    pub fn fenced(&self, run_id: &str) {
        if self.lock().remove(run_id).is_some() {
            let _ = self.lost.send(run_id.to_string());
        }
    }

    fn track(&self, lease: Lease) {
        let held = Held {
            lease,
            renewed: Instant::now(),
        };
        self.lock().insert(held.lease.run_id.clone(), held);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops renewing (a node shutting down, or a test's paused node): its
    /// leases then expire and other nodes take its runs over.
    pub fn stop(&self) {
        self.renewer.abort();
    }
}

async fn renew_loop(
    leases: Leases,
    held: Arc<Mutex<HashMap<String, Held>>>,
    lost: mpsc::UnboundedSender<String>,
    ttl: Duration,
) {
    let mut tick = tokio::time::interval(ttl / RENEWALS_PER_TTL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let runs: Vec<(String, Lease)> = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, h)| (id.clone(), h.lease.clone()))
            .collect();
        for (run_id, mut lease) in runs {
            let before = lease.clone();
            let outcome = leases.renew(&mut lease).await;
            let mut map = held.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(entry) = map.get_mut(&run_id) else {
                continue; // released or fenced meanwhile
            };
            if entry.lease != before {
                continue; // released and claimed again meanwhile: a new lease
            }
            let gone = match outcome {
                Ok(()) => {
                    *entry = Held {
                        lease,
                        renewed: Instant::now(),
                    };
                    false
                }
                Err(ClusterError::Lost { .. }) => true,
                // Cut off from the cluster for a whole TTL: another node
                // may hold the run by now, so stop driving it.
                Err(e) => {
                    tracing::warn!(run_id, error = %e, "a lease renewal failed");
                    entry.renewed.elapsed() >= ttl
                }
            };
            if gone {
                map.remove(&run_id);
                let _ = lost.send(run_id);
            }
        }
    }
}
