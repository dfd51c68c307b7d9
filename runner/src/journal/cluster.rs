//! The runs of a journal kept on a NATS JetStream cluster
//! (`journal.backend: nats`): what [`super::Journal`] calls instead of its
//! sled trees for records, the run and live-run indexes, dedup claims and
//! run ownership. The cluster's calls are async on the server's runtime;
//! the journal's synchronous readers wait for them (see [`ClusterRuns::wait`]).

use super::jetstream::records::{self, Tail, MAX_RECORDS};
use super::jetstream::{Cluster, ClusterError, ClusterState, Dedup, LiveRuns, Ownership, RunLog};
use super::store::{self, blob_ref, large_slot};
use super::{bundle, DriveEnd, Event, JournalError, Record, RunStatus, VerifyReport};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Where a run stands, as the live-run index cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// It can still move.
    Open,
    /// Its last record is its final `run_finished`.
    Finished,
    /// It has no record (being started, or a start a crash cut short).
    Absent,
}

/// Most runs one listing returns (a larger history is refused, not cut).
const MAX_RUNS: usize = 1_000_000;

/// A node's handle on the cluster's runs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClusterRuns {
    shared: Arc<Shared>,
    handle: Handle,
}

struct Shared {
    runs: RunLog,
    live: LiveRuns,
    dedup: Dedup,
    state: ClusterState,
    owner: Ownership,
    node: String,
    lease_ttl: Duration,
    /// Where each run this node drives or appends to ends (its fence).
    tails: Mutex<HashMap<String, Tail>>,
    /// The runs this node claimed to drive, until their drive settles.
    driving: Mutex<HashSet<String>>,
    /// One lock per run with an append in progress.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ClusterRuns {
    /// A node's handle on `cluster` (checked by [`super::jetstream::connect`]),
    /// renewing what it owns on the current runtime.
    pub(crate) fn start(cluster: Cluster, lease_ttl: Duration) -> ClusterRuns {
        let node = cluster.leases.node().to_string();
        let (owner, mut lost) = Ownership::start(cluster.leases.clone(), lease_ttl);
        // The fence stops a lost run at its next append; this says why.
        tokio::spawn(async move {
            while let Some(run_id) = lost.recv().await {
                tracing::warn!(
                    run_id,
                    "this node lost the run's lease: another node drives it now"
                );
            }
        });
        let shared = Shared {
            runs: cluster.runs,
            live: cluster.live,
            dedup: cluster.dedup,
            state: cluster.state,
            owner,
            node,
            lease_ttl,
            tails: Mutex::new(HashMap::new()),
            driving: Mutex::new(HashSet::new()),
            locks: Mutex::new(HashMap::new()),
        };
        ClusterRuns {
            shared: Arc::new(shared),
            handle: Handle::current(),
        }
    }

    /// This node's name, as leases record it.
    pub(crate) fn node(&self) -> &str {
        &self.shared.node
    }

    /// How long a lease outlives its last renewal.
    pub(crate) fn lease_ttl(&self) -> Duration {
        self.shared.lease_ttl
    }

    /// The state tables on the cluster, and the runtime their calls run on.
    pub(crate) fn state(&self) -> (ClusterState, Handle) {
        (self.shared.state.clone(), self.handle.clone())
    }

    /// Runs `fut` on the cluster's runtime and waits for it: how the
    /// journal's synchronous readers reach the cluster. A runtime worker
    /// hands its other tasks off while it waits.
    pub(crate) fn wait<T>(
        &self,
        fut: impl Future<Output = Result<T, JournalError>>,
    ) -> Result<T, JournalError> {
        wait_on(&self.handle, fut).map_err(JournalError::Storage)?
    }

    /// Appends `event` to `run_id` (see [`Shared::append`]).
    pub(crate) async fn append(&self, run_id: &str, event: Event) -> Result<Record, JournalError> {
        let shared = Arc::clone(&self.shared);
        let run_id = run_id.to_string();
        // On the cluster's runtime: a caller on another one (a plugin
        // call's) must not carry the client's I/O.
        let task = self
            .handle
            .spawn(async move { shared.append(&run_id, event).await });
        task.await
            .unwrap_or_else(|e| Err(JournalError::Storage(format!("the append failed: {e}"))))
    }

    /// Claims `run_id` for this node to drive (a resume, a takeover):
    /// [`JournalError::NotOwner`] names the node holding it.
    pub(crate) async fn claim(&self, run_id: &str) -> Result<(), JournalError> {
        let shared = Arc::clone(&self.shared);
        let run_id = run_id.to_string();
        let task = self
            .handle
            .spawn(async move { shared.claim(&run_id).await });
        task.await
            .unwrap_or_else(|e| Err(JournalError::Storage(format!("the claim failed: {e}"))))
    }

    /// Claims every run being driven whose lease expired (its node died or
    /// was cut off): the runs this node now drives.
    pub(crate) async fn take_over(&self) -> Result<Vec<String>, JournalError> {
        let shared = Arc::clone(&self.shared);
        let task = self.handle.spawn(async move { shared.take_over().await });
        task.await
            .unwrap_or_else(|e| Err(JournalError::Storage(format!("the takeover failed: {e}"))))
    }

    /// A drive of `run_id` ended (see [`Shared::settle`]).
    pub(crate) async fn settle(&self, run_id: &str, end: DriveEnd) {
        let shared = Arc::clone(&self.shared);
        let id = run_id.to_string();
        let task = self
            .handle
            .spawn(async move { shared.settle(&id, end).await });
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(run_id, error = %e, "cannot update the live-run index"),
            Err(e) => tracing::warn!(run_id, error = %e, "settling the run failed"),
        }
    }

    /// Stops renewing this node's leases (it is stopping): other nodes take
    /// its unfinished runs over once they expire.
    pub(crate) fn stop(&self) {
        self.shared.owner.stop();
    }

    /// Every record of `run_id`, each link checked.
    pub(crate) fn read(&self, run_id: &str) -> Result<Vec<Record>, JournalError> {
        let (records, _) = self.read_with_tail(run_id)?;
        if records.is_empty() {
            return Err(JournalError::UnknownRun(run_id.to_string()));
        }
        Ok(records)
    }

    fn read_with_tail(&self, run_id: &str) -> Result<(Vec<Record>, Tail), JournalError> {
        let runs = self.shared.runs.clone();
        let id = run_id.to_string();
        self.wait(async move { records::read(&runs, &id).await.map_err(cluster) })
    }

    /// The seq of `run_id`'s last record.
    pub(crate) fn head_seq(&self, run_id: &str) -> Result<Option<u64>, JournalError> {
        let runs = self.shared.runs.clone();
        let id = run_id.to_string();
        let last = self.wait(async move { runs.last(&id).await.map_err(cluster) })?;
        last.map(|s| {
            store::decode_link(&s.payload)
                .map(|l| l.seq)
                .map_err(|e| corrupt(run_id, 0, format!("undecodable last record: {e}")))
        })
        .transpose()
    }

    /// Every run on the stream, sorted.
    pub(crate) fn run_ids(&self) -> Result<Vec<String>, JournalError> {
        let runs = self.shared.runs.clone();
        self.wait(async move { runs.run_ids(MAX_RUNS).await.map_err(cluster) })
    }

    /// Every unfinished run (driven or paused), from the live-run index.
    /// Every listed run that can still move, from the live-run index: a
    /// listed run whose last record is its end (a node died between the
    /// two) is unlisted here, one with no record yet is skipped.
    pub(crate) fn live_run_ids(&self) -> Result<Vec<String>, JournalError> {
        let mut out = Vec::new();
        for run_id in self.listed()? {
            match self.standing(&run_id)? {
                Standing::Open => out.push(run_id),
                Standing::Finished => {
                    let live = self.shared.live.clone();
                    self.wait(async move { live.unlist(&run_id).await.map_err(cluster) })?;
                }
                Standing::Absent => {}
            }
        }
        Ok(out)
    }

    /// Every run the live-run index lists, as it is.
    pub(crate) fn listed(&self) -> Result<Vec<String>, JournalError> {
        let live = self.shared.live.clone();
        self.wait(async move { live.runs().await.map_err(cluster) })
    }

    /// Where `run_id` stands, from its last record alone.
    pub(crate) fn standing(&self, run_id: &str) -> Result<Standing, JournalError> {
        let runs = self.shared.runs.clone();
        let id = run_id.to_string();
        let Some(last) = self.wait(async move { runs.last(&id).await.map_err(cluster) })? else {
            return Ok(Standing::Absent);
        };
        let record: store::StoredRecord = serde_json::from_slice(&last.payload)
            .map_err(|e| corrupt(run_id, 0, format!("undecodable last record: {e}")))?;
        let finished = record.event["type"] == "run_finished"
            && serde_json::from_value::<RunStatus>(record.event["status"].clone())
                .is_ok_and(|s| s.is_final());
        Ok(if finished {
            Standing::Finished
        } else {
            Standing::Open
        })
    }

    /// Claims dedup key `key` for `run_id` (see `Journal::claim_dedup`).
    pub(crate) fn claim_dedup(
        &self,
        key: &str,
        run_id: &str,
    ) -> Result<Option<String>, JournalError> {
        let (dedup, key, run_id) = (
            self.shared.dedup.clone(),
            key.to_string(),
            run_id.to_string(),
        );
        self.wait(async move { dedup.claim(&key, &run_id).await.map_err(cluster) })
    }

    /// Moves dedup key `key` from `stale` to `run_id`.
    pub(crate) fn reclaim_dedup(
        &self,
        key: &str,
        stale: &str,
        run_id: &str,
    ) -> Result<Option<String>, JournalError> {
        let dedup = self.shared.dedup.clone();
        let (key, stale, run_id) = (key.to_string(), stale.to_string(), run_id.to_string());
        self.wait(async move { dedup.reclaim(&key, &stale, &run_id).await.map_err(cluster) })
    }

    /// The run's chain checked link by link: one problem line at the first
    /// broken link (reading stops there), none when intact.
    pub(crate) fn verify(&self, run_id: &str) -> Result<VerifyReport, JournalError> {
        let stored = self.stored(run_id)?;
        let mut report = VerifyReport {
            run_id: run_id.to_string(),
            records: stored.len() as u64,
            problems: Vec::new(),
        };
        if stored.is_empty() {
            return Err(JournalError::UnknownRun(run_id.to_string()));
        }
        if let Err(e) = self.read_with_tail(run_id) {
            report.problems.push(e.to_string());
        }
        Ok(report)
    }

    /// A bundle of `run_id`'s records and blobs as stored (no checkpoints:
    /// the cluster journal is not signed yet).
    pub(crate) fn export(&self, run_id: &str) -> Result<bundle::Bundle, JournalError> {
        let stored = self.stored(run_id)?;
        if stored.is_empty() {
            return Err(JournalError::UnknownRun(run_id.to_string()));
        }
        let mut records = Vec::new();
        let mut blobs = BTreeMap::new();
        for payload in stored {
            let text = String::from_utf8(payload)
                .map_err(|_| corrupt(run_id, 0, "a record is not UTF-8".into()))?;
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some((digest, _)) = large_slot(&value["event"]).and_then(blob_ref) {
                let (runs, d) = (self.shared.runs.clone(), digest.to_string());
                if let Some(blob) =
                    self.wait(async move { runs.get_blob(&d).await.map_err(cluster) })?
                {
                    blobs.insert(
                        digest.to_string(),
                        String::from_utf8_lossy(&blob).into_owned(),
                    );
                }
            }
            records.push(text);
        }
        Ok(bundle::Bundle::unsigned(run_id, records, blobs, Vec::new()))
    }

    fn stored(&self, run_id: &str) -> Result<Vec<Vec<u8>>, JournalError> {
        let runs = self.shared.runs.clone();
        let id = run_id.to_string();
        self.wait(async move {
            let stored = runs.read(&id, MAX_RECORDS).await.map_err(cluster)?;
            Ok(stored.into_iter().map(|s| s.payload.to_vec()).collect())
        })
    }
}

impl Shared {
    /// Appends `event` to `run_id` behind the fence. A run's first record
    /// claims it for this node and lists it; a record to a run this node
    /// does not drive (an operator's vote on a paused run) claims it for
    /// that one append. Pausing or finishing gives the run up.
    async fn append(&self, run_id: &str, event: Event) -> Result<Record, JournalError> {
        let lock = self.run_lock(run_id);
        let guard = lock.lock().await;
        let result = self.append_locked(run_id, &event).await;
        drop(guard);
        self.release_run_lock(run_id, lock);
        result
    }

    /// Three cases: a run's first record (this node starts and drives
    /// it); a record of a run this node drives (only while it still owns
    /// it, after the tail it read when it claimed the run: the fence); any
    /// other record (an operator's command on a paused run) claims the run
    /// for that one append, after its tail as it is now.
    async fn append_locked(&self, run_id: &str, event: &Event) -> Result<Record, JournalError> {
        let is_start = matches!(event, Event::RunStarted { .. });
        let driven = self.is_driving(run_id);
        let transient = !is_start && !driven;
        if driven && !self.owner.owns(run_id) {
            return Err(self.lost(run_id, "its lease expired or was taken over"));
        }
        if transient && event.is_step_activity() {
            // Only a drive writes step activity, and this node drives the
            // run no more (it lost it): never through the operator's path.
            return Err(self.lost(run_id, "this node no longer drives it"));
        }
        if is_start || transient {
            self.claim_lease(run_id).await?;
        }
        if is_start {
            self.keep_tail(run_id, Tail::empty());
            self.set_driving(run_id, true);
        } else if transient {
            let (_, tail) = records::read(&self.runs, run_id).await.map_err(cluster)?;
            self.keep_tail(run_id, tail);
        }
        let result = self.append_owned(run_id, event, is_start).await;
        if let (Ok(_), Event::RunFinished { status, .. }) = (&result, event) {
            // Also when an operator ends a paused run (a cancel) with no
            // drive to settle it.
            if status.is_final() {
                self.hang_before_unlist(run_id).await;
                if let Err(e) = self.live.unlist(run_id).await {
                    // The record is written; a stale entry is dropped by
                    // the next listing.
                    tracing::warn!(run_id, error = %e, "cannot drop a finished run from the live-run index");
                }
            }
        }
        // A start that failed gives its lease up (a lost acknowledgement
        // of a stored start is found by a takeover: the run is listed).
        if transient || (is_start && result.is_err()) {
            self.release(run_id).await;
        }
        result
    }

    /// Stops driving `run_id`: another node may own it now.
    fn lost(&self, run_id: &str, why: &str) -> JournalError {
        self.forget_tail(run_id);
        self.set_driving(run_id, false);
        JournalError::NotOwner(format!(
            "run `{run_id}`: {why}: node `{}` stops driving it",
            self.node
        ))
    }

    /// Claims the orphans and journals each takeover (see
    /// [`ClusterRuns::take_over`]).
    async fn take_over(&self) -> Result<Vec<String>, JournalError> {
        let claimed = self.owner.take_over(&self.live).await.map_err(cluster)?;
        let mut taken = Vec::new();
        for run_id in claimed {
            self.forget_tail(&run_id);
            match self.journal_takeover(&run_id).await {
                Ok(true) => taken.push(run_id),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(run_id, error = %e, "cannot journal a takeover: the run is left for the next scan");
                    self.release(&run_id).await;
                }
            }
        }
        Ok(taken)
    }

    /// Journals that this node took `run_id` over (its lease is claimed):
    /// `false` when the run had in fact finished (a node died between its
    /// final record and the index update), which is then unlisted.
    async fn journal_takeover(&self, run_id: &str) -> Result<bool, JournalError> {
        let (records, tail) = records::read(&self.runs, run_id).await.map_err(cluster)?;
        self.keep_tail(run_id, tail);
        self.set_driving(run_id, true);
        let finished = records.last().and_then(|r| match &r.event {
            Event::RunFinished { status, .. } if status.is_final() => Some(*status),
            _ => None,
        });
        if finished.is_some() {
            let end = finished.map_or(DriveEnd::Interrupted, DriveEnd::Status);
            self.settle(run_id, end).await.map_err(cluster)?;
            return Ok(false);
        }
        let event = Event::RunTakenOver {
            node: self.node.clone(),
            reason: format!(
                "no node renewed the run's lease for {}: its node died, hung or lost the cluster",
                humantime::format_duration(self.lease_ttl)
            ),
        };
        self.append(run_id, event).await?;
        Ok(true)
    }

    /// A drive of `run_id` ended with `status` (`None`: it failed): a
    /// finished run leaves the live index, a paused one is marked paused
    /// (no node has to drive it until someone answers), and the lease is
    /// given up. A failed drive's run stays listed as driven, so a
    /// takeover scan retries it.
    async fn settle(&self, run_id: &str, end: DriveEnd) -> Result<(), ClusterError> {
        let lock = self.run_lock(run_id);
        let guard = lock.lock().await;
        // Only the owner says where the run stands: a node that failed to
        // resume a run another node drives must not park it.
        let owned = self.owner.owns(run_id);
        let marked = match end {
            _ if !owned => Ok(()),
            DriveEnd::Status(s) if s.is_final() => self.live.unlist(run_id).await,
            DriveEnd::Status(RunStatus::WaitingApproval | RunStatus::InDoubt) => {
                self.live.paused(run_id).await
            }
            DriveEnd::Failed => self.live.parked(run_id).await,
            DriveEnd::Status(_) | DriveEnd::Interrupted => Ok(()),
        };
        self.release(run_id).await;
        drop(guard);
        self.release_run_lock(run_id, lock);
        marked
    }

    /// Fault injection for the crash tests, as on sled
    /// (`SOAR_TEST_HANG_BEFORE_UNLIST`, a marker path): the run's final
    /// record is on the cluster, and the process hangs before unlisting it.
    async fn hang_before_unlist(&self, run_id: &str) {
        if let Some(marker) = std::env::var_os("SOAR_TEST_HANG_BEFORE_UNLIST") {
            let _ = std::fs::write(marker, run_id);
            tracing::warn!(run_id, "SOAR_TEST_HANG_BEFORE_UNLIST: hanging");
            std::future::pending::<()>().await;
        }
    }

    async fn release(&self, run_id: &str) {
        self.forget_tail(run_id);
        self.set_driving(run_id, false);
        if let Err(e) = self.owner.release(run_id).await {
            // It expires on its own within a TTL.
            tracing::warn!(run_id, error = %e, "cannot release the run's lease");
        }
    }

    async fn append_owned(
        &self,
        run_id: &str,
        event: &Event,
        is_start: bool,
    ) -> Result<Record, JournalError> {
        // Every path above kept the tail this append is fenced on; none
        // here means the run was given up meanwhile.
        let Some(mut tail) = self.cached_tail(run_id) else {
            return Err(self.lost(run_id, "it was given up"));
        };
        if is_start != (tail.seq == 0) {
            return Err(JournalError::Encode(if is_start {
                format!("run `{run_id}` already started ({} records)", tail.seq)
            } else {
                format!(
                    "the first event of run `{run_id}` must be run_started, not {}",
                    event.kind()
                )
            }));
        }
        if is_start {
            self.live.list(run_id).await.map_err(cluster)?;
        }
        match records::append(&self.runs, run_id, &mut tail, event).await {
            Ok(record) => {
                self.keep_tail(run_id, tail);
                Ok(record)
            }
            Err(e) => {
                self.forget_tail(run_id);
                if matches!(e, ClusterError::Fenced { .. }) {
                    self.owner.fenced(run_id);
                    return Err(self.lost(run_id, &e.to_string()));
                }
                Err(cluster(e))
            }
        }
    }

    /// Claims `run_id` to drive it, and fences every later append on the
    /// run's tail as read now: the caller decides what to do from a read
    /// that follows, so a node that took the run over since (while this
    /// one was frozen) makes those appends fail, never land after its own.
    async fn claim(&self, run_id: &str) -> Result<(), JournalError> {
        if !self.owner.owns(run_id) {
            self.claim_lease(run_id).await?;
        }
        let (_, tail) = match records::read(&self.runs, run_id).await {
            Ok(read) => read,
            Err(e) => {
                self.release(run_id).await;
                return Err(cluster(e));
            }
        };
        self.keep_tail(run_id, tail);
        self.set_driving(run_id, true);
        self.live.list(run_id).await.map_err(cluster)
    }

    fn is_driving(&self, run_id: &str) -> bool {
        self.driving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(run_id)
    }

    fn set_driving(&self, run_id: &str, on: bool) {
        let mut driving = self.driving.lock().unwrap_or_else(PoisonError::into_inner);
        if on {
            driving.insert(run_id.to_string());
        } else {
            driving.remove(run_id);
        }
    }

    async fn claim_lease(&self, run_id: &str) -> Result<(), JournalError> {
        match self.owner.claim(run_id).await {
            Ok(()) => Ok(()),
            Err(ClusterError::Held { holder, .. }) => Err(JournalError::NotOwner(format!(
                "run `{run_id}` is being driven by node `{holder}`: send the command to that node, or wait for it to pause the run"
            ))),
            Err(e) => Err(cluster(e)),
        }
    }

    fn cached_tail(&self, run_id: &str) -> Option<Tail> {
        self.tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .cloned()
    }

    /// Kept only for runs this node drives or appends to right now (both
    /// forgotten when they end), so never evicted: an evicted tail would
    /// be read again, after whatever another node appended meanwhile.
    fn keep_tail(&self, run_id: &str, tail: Tail) {
        self.tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.to_string(), tail);
    }

    fn forget_tail(&self, run_id: &str) {
        self.tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
    }

    fn run_lock(&self, run_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(run_id.to_string()).or_default())
    }

    fn release_run_lock(&self, run_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // 2: the map and us; nobody else waits on this run.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(run_id);
        }
    }
}

/// Runs `fut` on `handle` and blocks this thread until it is done: how
/// synchronous callers reach the cluster. A runtime worker hands its other
/// tasks off first (the call may need them). Refused on a single-threaded
/// runtime, which would deadlock.
pub(crate) fn wait_on<F: Future>(handle: &Handle, fut: F) -> Result<F::Output, String> {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
        }
        Ok(_) => Err("the cluster journal is reached from a multi-threaded runtime only".into()),
        Err(_) => Ok(handle.block_on(fut)),
    }
}

fn cluster(e: ClusterError) -> JournalError {
    match e {
        // A record that is not what soar wrote (its run and seq named).
        ClusterError::Corrupt(why) => {
            JournalError::Refused(format!("the cluster journal does not verify: {why}"))
        }
        // Refused on every try (a record too large): never a takeover's
        // to retry.
        ClusterError::Misconfigured(why) => JournalError::Refused(why),
        other => JournalError::Storage(other.to_string()),
    }
}

fn corrupt(run_id: &str, seq: u64, reason: String) -> JournalError {
    JournalError::Corrupt {
        run_id: run_id.to_string(),
        seq,
        reason,
    }
}
