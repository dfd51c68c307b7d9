//! The run journal: an append-only, hash-chained event log per run in sled.
//! The scheduler appends an [`Event`] before and after every effect and
//! rebuilds a run from [`Journal::read`] alone; [`Journal::verify`] proves the
//! log was not edited. Layout in `store.rs`, durability in `flusher.rs`.

mod audit;
pub mod bundle;
mod canonical;
mod checkpoint;
mod cluster;
mod derived;
mod event;
mod flusher;
pub mod jetstream;
mod live;
mod prune;
mod security;
mod store;
mod time;
mod verify;
mod watch;

#[cfg(test)]
mod tests;

pub use checkpoint::{
    key_id, public_key_from_hex, signing_key_from_hex, Acceptance, Checkpoint, JournalKeys,
    StartKind, Tombstone, TrustStart,
};
pub use derived::Derived;
pub use event::{
    ApprovalBinding, AttemptOutcome, Decision, Event, ParseRunStatusError, Resolution, RunStatus,
    Vote,
};
pub use security::{SecurityEvent, SecurityKind, SecurityRecord};
pub use time::{format_rfc3339_millis, format_unix_millis, now_unix_millis, parse_unix_millis};

use canonical::{record_hash, GENESIS_HASH};
pub(crate) use cluster::wait_on;
use flusher::GroupCommit;
pub use flusher::{ActiveRun, Idle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use store::{storage, Head, StoredRecordRef};

/// How a drive of a run ended, for [`Journal::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveEnd {
    /// It paused or finished in this status.
    Status(RunStatus),
    /// It failed on something another node may not meet (the cluster
    /// unavailable for a while, or another node owning the run): the run
    /// stays listed as driven, so a takeover scan picks it up.
    Interrupted,
    /// It failed on something any node would meet again (a changed
    /// playbook, a record that does not verify): the run is parked until a
    /// node restarts or an operator runs `soar resume`, instead of being
    /// taken over (and journaled as such) again and again.
    Failed,
}

/// How much a completed [`Journal::append`] survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The record is in the OS page cache: it survives the soar process being
    /// killed, not a power cut. sled's flush (`sync_file_range`) only.
    Process,
    /// Additionally `fdatasync`ed: survives a power cut. Costs a device
    /// cache flush per group commit.
    PowerLoss,
}

/// One journaled event with its place in the run's hash chain. Serializes as
/// `{"seq", "at", "prev_hash", "hash", "type", ...event fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the run, from 1, without gaps.
    pub seq: u64,
    /// When it was appended, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// `hash` of the previous record (64 zeros for seq 1).
    pub prev_hash: String,
    /// `hex(sha256(prev_hash || "\n" || canonical JSON of {seq, at, event}))`,
    /// over the stored event (large values as `{"$blob": ..}` references).
    pub hash: String,
    /// What happened (large values inlined back).
    #[serde(flatten)]
    pub event: Event,
}

/// A run at a glance, derived from its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Playbook name.
    pub playbook: String,
    /// Where it stands (see [`Journal::summary`]).
    pub status: RunStatus,
    /// `at` of its first record.
    pub started_at: String,
    /// `at` of its last record.
    pub updated_at: String,
    /// Who or what started it.
    pub started_by: String,
    /// Its dedup key, if it claimed one.
    pub dedup_key: Option<String>,
}

/// The result of [`Journal::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Run id.
    pub run_id: String,
    /// Records found (decodable or not).
    pub records: u64,
    /// One human line per problem, e.g. `seq 3: hash mismatch (record
    /// edited)`; empty when the log is intact.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`Journal::verify_signed`] found: whether the journal is keyed,
/// and every run that no longer matches what a checkpoint signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReport {
    /// The journal has signed checkpoints (unkeyed: anyone who can write
    /// the data dir can re-chain it undetected).
    pub keyed: bool,
    /// Checkpoints found.
    pub checkpoints: u64,
    /// Keys that signed them.
    pub key_ids: Vec<String>,
    /// Where trust started: checkpoint 1's hash, when, and how (a new
    /// journal, or adopted and by whom). Keep it outside the data dir.
    #[serde(default)]
    pub trust_start: Option<String>,
    /// One line per problem, naming the run (or checkpoint).
    pub problems: Vec<String>,
    /// What is odd but not a sign of tampering (a prune a crash
    /// interrupted), one line each.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The runs are on a cluster journal (`journal.backend: nats`), which
    /// keeps no signed checkpoints yet: a signing key is no remedy there.
    #[serde(default)]
    pub cluster: bool,
    /// Every run the store walk found ([`Journal::stored_run_ids`]), so a
    /// caller checking each run's chain need not walk again.
    #[serde(skip)]
    pub stored_runs: Vec<String>,
}

/// Checkpoint 1 in one line, for the operator to keep outside the data dir.
fn describe_start(genesis: &(String, String, Option<checkpoint::TrustStart>)) -> String {
    let (hash, at, start) = genesis;
    let how = match start {
        None => "keyed before checkpoints recorded how".to_string(),
        Some(s) => match s.kind {
            checkpoint::StartKind::Adopted => format!(
                "adopted with {} existing run(s) by {}",
                s.runs,
                s.by.as_deref().unwrap_or("?")
            ),
            checkpoint::StartKind::New => "a new journal".to_string(),
        },
    };
    format!("checkpoint 1 ({hash}) at {at}: {how}")
}

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// sled or the file system failed (disk full, lock held by another
    /// process, flush error...).
    #[error("journal storage: {0}")]
    Storage(String),
    /// A stored record (or the head, seq 0) cannot be used as it is.
    #[error("journal of run `{run_id}` is corrupt at seq {seq}: {reason}")]
    Corrupt {
        /// Run id.
        run_id: String,
        /// The record's seq (0: the run's head).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// No record and no head for this run id.
    #[error("no run `{0}` in the journal")]
    UnknownRun(String),
    /// The event cannot be journaled as given (bad run id, serialization,
    /// a run not starting with `run_started`).
    #[error("cannot journal this event: {0}")]
    Encode(String),
    /// The journal will not do this: it would sign, prune or export what
    /// it cannot vouch for (trust broken, a run failing verification).
    #[error("refused: {0}")]
    Refused(String),
    /// On a cluster: another node drives this run now (it took the run
    /// over, or holds it). This node must stop driving it at once.
    #[error("{0}")]
    NotOwner(String),
}

/// The append-only journal of every run. Cheap to clone; all clones share
/// one sled database and one flusher thread, which stops (after a last
/// flush) when the last clone is dropped, releasing the directory.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
    /// On a cluster (`journal.backend: nats`): where the runs are. The
    /// sled store in `inner` then holds only what is the node's own (its
    /// security log, derived caches); every run record, index, dedup
    /// claim and state table is on the cluster.
    cluster: Option<cluster::ClusterRuns>,
}

struct Inner {
    dir: PathBuf,
    durability: Durability,
    records: sled::Tree,
    heads: sled::Tree,
    dedup: sled::Tree,
    blobs: sled::Tree,
    runs: sled::Tree,
    /// Signed checkpoints (see `checkpoint.rs`).
    checkpoints: sled::Tree,
    /// What is left of pruned runs, by run id.
    tombstones: sled::Tree,
    /// Run id -> the last checkpoint that signed its head (a hint, checked).
    signed_at: sled::Tree,
    /// Unfinished run ids (see `live.rs`).
    live: sled::Tree,
    /// Fault injection for the crash tests (`SOAR_TEST_HANG_BEFORE_UNLIST`,
    /// a marker path): after a run's final record is durable, write the
    /// marker and hang before unlisting the run, as if the process died
    /// there.
    hang_before_unlist: Option<PathBuf>,
    /// Readers waiting for a run's next record (see `watch.rs`).
    watchers: watch::Watchers,
    /// Signs them, in a process with the signing key.
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    /// Why this keyed journal's trust cannot go on (runs but no
    /// checkpoint): appends are refused and verify fails until adopted.
    broken: Option<String>,
    /// The keys checkpoints are verified with.
    keys: JournalKeys,
    /// One mutex per run with an append in progress, so seq numbers are
    /// assigned one at a time per run while different runs proceed in
    /// parallel. Entries are removed when no appender holds them.
    run_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// (seq, hash) of the last record this process wrote per run: only this
    /// handle writes the trees while it holds sled's lock, so it saves the
    /// look-ups of [`Inner::next_position`] on the hot path. Bounded by
    /// clearing: a miss only costs those look-ups.
    tails: Mutex<HashMap<String, (u64, String)>>,
    /// Set once a test touched the trees behind the journal's back.
    #[cfg(test)]
    tampered: std::sync::atomic::AtomicBool,
    commit: GroupCommit,
    /// For run-index ids (and tests that edit the trees behind its back).
    db: sled::Db,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal stored in `dir`. Only one
    /// process (and one `Journal`, with its clones) may hold it at a time.
    pub fn open(dir: &Path, durability: Durability) -> Result<Journal, JournalError> {
        Self::open_keyed(dir, durability, JournalKeys::default())
    }

    /// [`Journal::open`] with keys: with a signing key, every group commit
    /// also signs a checkpoint of the heads it covers; the public keys are
    /// what [`Journal::verify_signed`] checks checkpoints with.
    pub fn open_keyed(
        dir: &Path,
        durability: Durability,
        keys: JournalKeys,
    ) -> Result<Journal, JournalError> {
        Self::open_with(dir, durability, flusher::COMMIT_WINDOW, keys, None)
    }

    /// [`Journal::open`] with another group-commit window (tests).
    #[cfg(test)]
    pub(crate) fn open_with_window(
        dir: &Path,
        durability: Durability,
        window: std::time::Duration,
    ) -> Result<Journal, JournalError> {
        Self::open_with(dir, durability, window, JournalKeys::default(), None)
    }

    /// Adopts an existing unkeyed journal: signs every run head and
    /// tombstone as it is now into checkpoint 1 (`start: adopted`, `by`),
    /// the explicit, signed moment trust starts. Refused when the journal
    /// already has checkpoints or no signing key is given.
    pub fn adopt(
        dir: &Path,
        durability: Durability,
        keys: JournalKeys,
        by: &str,
    ) -> Result<Journal, JournalError> {
        let journal = Self::open_with(dir, durability, flusher::COMMIT_WINDOW, keys, Some(by))?;
        journal.sync()?;
        Ok(journal)
    }

    fn open_with(
        dir: &Path,
        durability: Durability,
        window: std::time::Duration,
        keys: JournalKeys,
        adopt: Option<&str>,
    ) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            JournalError::Storage(format!(
                "cannot create the journal directory `{}`: {e}",
                dir.display()
            ))
        })?;
        // sled's page cache defaults to 1 GiB and grows with the journal; a
        // runner holding 10,000 paused runs must not (runs are read rarely:
        // on resume, status and approval commands).
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| {
                JournalError::Storage(format!(
                    "cannot open the journal at `{}`: {e}",
                    dir.display()
                ))
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let heads = tree(store::HEADS)?;
        let checkpoints = tree(checkpoint::CHECKPOINTS)?;
        let records = tree(store::RECORDS)?;
        let runs = tree(store::RUNS)?;
        let tombstones = tree(TOMBSTONES)?;
        let signed_at = tree(SIGNED_AT)?;
        let live = tree(live::LIVE)?;
        live::build_if_missing(&live, &runs, &records)?;
        let (checkpointer, broken) = match &keys.signing {
            Some(_) => {
                // What the journal holds matters only before its first
                // checkpoint (a new journal, an adoption, or trust broken).
                let existing = if checkpoints.is_empty() {
                    checkpoint::Existing::read(&heads, &tombstones, &[&records, &runs])?
                } else {
                    checkpoint::Existing::default()
                };
                match checkpoint::Checkpointer::open(
                    checkpoints.clone(),
                    signed_at.clone(),
                    &existing,
                    &keys,
                    adopt,
                )? {
                    checkpoint::Opened::Ready(cp) => (Some(cp), None),
                    checkpoint::Opened::Broken(why) => (None, Some(why)),
                }
            }
            None if adopt.is_some() => {
                return Err(JournalError::Refused(
                    "adopting a journal needs its signing key (journal.signing_key)".into(),
                ))
            }
            None => (None, None),
        };
        let inner = Inner {
            dir: dir.to_path_buf(),
            durability,
            records,
            heads,
            dedup: tree(store::DEDUP)?,
            blobs: tree(store::BLOBS)?,
            runs,
            checkpoints,
            signed_at,
            live,
            watchers: Default::default(),
            hang_before_unlist: std::env::var_os("SOAR_TEST_HANG_BEFORE_UNLIST").map(PathBuf::from),
            tombstones,
            checkpointer: checkpointer.clone(),
            broken,
            keys,
            run_locks: Mutex::new(HashMap::new()),
            tails: Mutex::new(HashMap::new()),
            #[cfg(test)]
            tampered: std::sync::atomic::AtomicBool::new(false),
            commit: GroupCommit::start(
                db.clone(),
                dir.to_path_buf(),
                durability,
                window,
                checkpointer,
            )?,
            db,
        };
        tracing::debug!(dir = %dir.display(), ?durability, "journal opened");
        Ok(Journal {
            inner: Arc::new(inner),
            cluster: None,
        })
    }

    /// A node's journal on a cluster (`journal.backend: nats`), checked by
    /// [`jetstream::connect`]: runs are read and appended there; `dir`
    /// keeps this node's own records (its security log). Call on the
    /// runtime that drives the runs: leases are renewed on it.
    pub fn on_cluster(
        dir: &Path,
        cluster: jetstream::Cluster,
        lease_ttl: std::time::Duration,
    ) -> Result<Journal, JournalError> {
        let mut journal = Self::open(dir, Durability::Process)?;
        journal.cluster = Some(cluster::ClusterRuns::start(cluster, lease_ttl));
        Ok(journal)
    }

    /// Whether runs live on a cluster, and this node's name there.
    pub fn cluster_node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node())
    }

    /// Whether [`Journal::append_buffered`] may be used: on a cluster every
    /// append is a replicated write that is durable when it returns.
    pub fn buffers(&self) -> bool {
        self.cluster.is_none()
    }

    /// Claims `run_id` for this process to drive (a resume): on a cluster,
    /// its lease, refused with [`JournalError::NotOwner`] while another
    /// node drives it. On sled, one process holds the whole journal.
    pub async fn claim(&self, run_id: &str) -> Result<(), JournalError> {
        match &self.cluster {
            Some(c) => c.claim(run_id).await,
            None => Ok(()),
        }
    }

    /// [`Journal::claim`], waiting while another node holds the run, up to
    /// twice the lease TTL: what `soar resume` does after a crash, whose
    /// lease outlives the process by up to one TTL (as sled's lock makes
    /// a command wait for the process holding the journal).
    pub async fn claim_patiently(&self, run_id: &str) -> Result<(), JournalError> {
        let Some(c) = &self.cluster else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + c.lease_ttl() * 2;
        loop {
            match c.claim(run_id).await {
                Err(JournalError::NotOwner(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// On a cluster: claims the runs being driven whose node died (their
    /// lease expired), for this node to resume. Empty on sled.
    pub async fn take_over(&self) -> Result<Vec<String>, JournalError> {
        match &self.cluster {
            Some(c) => c.take_over().await,
            None => Ok(Vec::new()),
        }
    }

    /// A drive of `run_id` ended: on a cluster, the run's lease is given up
    /// and the live index says whether it waits (paused, or parked after a
    /// failure another node would meet again) or is gone (finished).
    pub async fn settle(&self, run_id: &str, end: DriveEnd) {
        if let Some(c) = &self.cluster {
            c.settle(run_id, end).await;
        }
    }

    /// On a cluster: stops renewing this node's leases (a graceful stop),
    /// so other nodes take its unfinished runs over.
    pub fn leave_cluster(&self) {
        if let Some(c) = &self.cluster {
            c.stop();
        }
    }

    /// Refuses what the cluster journal does not do yet, naming it.
    fn local_only(&self, what: &str) -> Result<(), JournalError> {
        match &self.cluster {
            Some(_) => Err(JournalError::Refused(format!(
                "{what} is not available on a cluster journal (`journal.backend: nats`) yet; see docs/cluster.md"
            ))),
            None => Ok(()),
        }
    }

    /// Makes every record written so far durable, buffered ones included
    /// (a graceful stop's last word).
    pub fn sync(&self) -> Result<(), JournalError> {
        // On a cluster, every append was replicated and synced before it
        // returned; the node's own store is flushed below.
        if let Some(cp) = &self.inner.checkpointer {
            cp.write().map_err(JournalError::Storage)?;
        }
        self.inner.db.flush().map(|_| ()).map_err(storage)
    }

    /// The directory the journal lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends one event to the run's log and returns only once it is
    /// durable (group commit: concurrent appends from many tasks share one
    /// flush).
    ///
    /// A run's first event must be [`Event::RunStarted`], and only the first.
    /// The record and the run's head are written in one sled transaction, so
    /// a crash leaves both or neither.
    pub async fn append(&self, run_id: &str, event: Event) -> Result<Record, JournalError> {
        if let Some(c) = &self.cluster {
            store::check_run_id(run_id)?;
            let record = c.append(run_id, event).await?;
            self.inner.watchers.wrote(run_id, record.seq);
            return Ok(record);
        }
        let record = self.write(run_id, event)?;
        // The run lock is released before waiting: the next record of this
        // run may be written meanwhile (sled's log is ordered, so it cannot
        // become durable before this one) and shares the same flush.
        self.inner.commit.wait_durable().await?;
        Ok(record)
    }

    /// Appends without waiting for a flush. The record becomes durable with
    /// the next flush, and no later than the next [`Journal::append`] of any
    /// run returns (sled's log is ordered). For records whose loss in a
    /// crash the scheduler can recover from by itself: a crash then looks
    /// as if it happened just before this record.
    pub fn append_buffered(&self, run_id: &str, event: Event) -> Result<Record, JournalError> {
        self.local_only("a buffered append (check `Journal::buffers`)")?;
        self.write(run_id, event)
    }

    fn write(&self, run_id: &str, event: Event) -> Result<Record, JournalError> {
        if let Some(why) = &self.inner.broken {
            return Err(JournalError::Refused(why.clone()));
        }
        store::check_run_id(run_id)?;
        let prepared = store::prepare(&event)?;
        let (seq, at, prev_hash, hash) = self.with_run_lock(run_id, || {
            self.inner.commit_record(run_id, &event, &prepared)
        })?;
        if let Event::RunFinished { status, .. } = &event {
            // The record is written: a failed unlisting leaves a stale
            // entry, which the next listing drops, not a failed append.
            if let Err(e) = status
                .is_final()
                .then(|| self.inner.unlist(run_id))
                .transpose()
            {
                tracing::warn!(run_id, error = %e, "cannot drop a finished run from the unfinished-run index");
            }
        }
        self.inner.watchers.wrote(run_id, seq);
        Ok(Record {
            seq,
            at,
            prev_hash,
            hash,
            event,
        })
    }

    /// The run's records in seq order, large values inlined back. A record
    /// that fails to decode (or whose blob is missing or altered) is an
    /// error naming its seq, never skipped. Does not check the hash chain:
    /// that is [`Journal::verify`]. Records whose `append` has not returned
    /// yet (written, not yet flushed) may be included.
    pub fn read(&self, run_id: &str) -> Result<Vec<Record>, JournalError> {
        self.read_records(run_id, true)
    }

    /// Checks the run's log: every hash, seq continuity from 1, `prev_hash`
    /// links, the head, and referenced blobs.
    pub fn verify(&self, run_id: &str) -> Result<VerifyReport, JournalError> {
        known_shape(run_id)?;
        if let Some(c) = &self.cluster {
            return c.verify(run_id);
        }
        verify::verify(
            &self.inner.records,
            &self.inner.heads,
            &self.inner.blobs,
            run_id,
        )
    }

    /// A bundle of `run_id`: its records and blobs as stored, and the
    /// checkpoints that signed it (the current head is signed first). The
    /// caller adds the playbook text and what plugins it was bound to, then
    /// [`Journal::sign_bundle`].
    pub fn export(&self, run_id: &str) -> Result<bundle::Bundle, JournalError> {
        known_shape(run_id)?;
        if let Some(c) = &self.cluster {
            return c.export(run_id);
        }
        if let Some(cp) = &self.inner.checkpointer {
            cp.write().map_err(JournalError::Storage)?;
        }
        let prefix = store::run_prefix(run_id);
        let mut records = Vec::new();
        let mut blobs = std::collections::BTreeMap::new();
        for item in self.inner.records.scan_prefix(&prefix) {
            let (_, bytes) = item.map_err(storage)?;
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| JournalError::Corrupt {
                run_id: run_id.to_string(),
                seq: 0,
                reason: "a record is not UTF-8".into(),
            })?;
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some((digest, _)) = store::large_slot(&value["event"]).and_then(store::blob_ref)
            {
                if let Some(blob) = self.inner.blobs.get(digest.as_bytes()).map_err(storage)? {
                    blobs.insert(
                        digest.to_string(),
                        String::from_utf8_lossy(&blob).into_owned(),
                    );
                }
            }
            records.push(text);
        }
        if records.is_empty() {
            return Err(JournalError::UnknownRun(run_id.to_string()));
        }
        Ok(bundle::Bundle::unsigned(
            run_id,
            records,
            blobs,
            bundle::checkpoints_of(&self.inner.checkpoints, run_id)?,
        ))
    }

    /// Checkpoint `n`, if the journal has it (and it decodes).
    pub fn checkpoint(&self, n: u64) -> Result<Option<Checkpoint>, JournalError> {
        Ok(self
            .inner
            .checkpoints
            .get(n.to_be_bytes())
            .map_err(storage)?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Signs what this process wrote since the last checkpoint (a process
    /// with the signing key), so a check that follows sees it signed.
    fn sign_pending(&self) -> Result<(), JournalError> {
        match &self.inner.checkpointer {
            Some(cp) => cp.write().map_err(JournalError::Storage),
            None => Ok(()),
        }
    }

    /// Runs `f` holding `run_id`'s append lock.
    fn with_run_lock<T>(&self, run_id: &str, f: impl FnOnce() -> T) -> T {
        let lock = self.inner.run_lock(run_id);
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f();
        drop(guard);
        self.inner.release_run_lock(run_id, lock);
        out
    }

    /// Signs the records of `run_id` past its last signed head, after an
    /// operator (`by`) checked them: written just before a process died, or
    /// behind the journal's back. The run's own chain must verify. Returns
    /// the seqs accepted; the checkpoint that signs them names `by`.
    pub fn accept_tail(&self, run_id: &str, by: &str) -> Result<(u64, u64), JournalError> {
        known_shape(run_id)?;
        self.local_only("accepting records into a checkpoint")?;
        let Some(cp) = &self.inner.checkpointer else {
            return Err(JournalError::Refused(
                "accepting records signs them: it needs journal.signing_key".into(),
            ));
        };
        self.with_run_lock(run_id, || {
            if let Some(p) = self.verify(run_id)?.problems.first() {
                return Err(JournalError::Refused(format!(
                    "run `{run_id}` fails verification ({p}): nothing is accepted"
                )));
            }
            let last = verify::last_link(&self.inner.records, run_id)?
                .ok_or_else(|| JournalError::UnknownRun(run_id.to_string()))?;
            let keys = self.inner.keys.verifiers();
            let signed = checkpoint::last_signed(
                &self.inner.checkpoints,
                &self.inner.signed_at,
                run_id,
                &keys,
            )?;
            if signed.as_ref() == Some(&last) {
                return Err(JournalError::Refused(format!(
                    "run `{run_id}`: every record is signed already"
                )));
            }
            let from_seq = signed.map_or(1, |(s, _)| s + 1);
            let acceptance = checkpoint::Acceptance {
                by: by.to_string(),
                from_seq,
            };
            cp.accept(run_id, last.clone(), acceptance)
                .map_err(JournalError::Storage)?;
            Ok((from_seq, last.0))
        })
        .and_then(|range| self.sync().map(|()| range))
    }

    /// Forgets the tail this process remembers for `run_id`.
    fn forget_tail(&self, run_id: &str) {
        self.inner
            .tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
    }

    /// Why this keyed journal refuses to sign and append, if it does.
    pub fn trust_broken(&self) -> Option<&str> {
        self.inner.broken.as_deref()
    }

    /// Bytes of the stored checkpoints (their keys and values), to size
    /// what signing adds to a journal.
    pub fn checkpoint_bytes(&self) -> Result<u64, JournalError> {
        let mut n = 0u64;
        for item in self.inner.checkpoints.iter() {
            let (k, v) = item.map_err(storage)?;
            n += (k.len() + v.len()) as u64;
        }
        Ok(n)
    }

    /// The newest checkpoint: `(n, hash, key id)`; what a SIEM export
    /// anchors outside the data dir.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, String, String)>, JournalError> {
        match self.inner.checkpoints.last().map_err(storage)? {
            Some((_, bytes)) => Ok(serde_json::from_slice::<Checkpoint>(&bytes)
                .ok()
                .map(|cp| (cp.n, cp.hash(), cp.key_id))),
            None => Ok(None),
        }
    }

    /// The hash of checkpoint `n`, if the journal still has it.
    pub fn checkpoint_hash(&self, n: u64) -> Result<Option<String>, JournalError> {
        Ok(self.checkpoint(n)?.map(|cp| cp.hash()))
    }

    /// The seq of the run's head, if it has one.
    pub fn head_seq(&self, run_id: &str) -> Result<Option<u64>, JournalError> {
        known_shape(run_id)?;
        if let Some(c) = &self.cluster {
            return c.head_seq(run_id);
        }
        match self.inner.heads.get(run_id.as_bytes()).map_err(storage)? {
            Some(bytes) => Ok(Head::decode(&bytes).ok().map(|h| h.seq)),
            None => Ok(None),
        }
    }

    /// Every tombstone, by run id.
    pub fn tombstones(&self) -> Result<Vec<(String, Tombstone)>, JournalError> {
        let mut out = Vec::new();
        for item in self.inner.tombstones.iter() {
            let (k, v) = item.map_err(storage)?;
            if let Ok(t) = serde_json::from_slice(&v) {
                out.push((String::from_utf8_lossy(&k).into_owned(), t));
            }
        }
        Ok(out)
    }

    /// Signs `bundle` with the journal's signing key; false without one.
    pub fn sign_bundle(&self, bundle: &mut bundle::Bundle) -> bool {
        match &self.inner.keys.signing {
            Some(key) => {
                bundle.sign(key);
                true
            }
            None => false,
        }
    }

    /// Every run id, oldest first (in order of their first append). A run
    /// is indexed just before its first record is written, so an entry a
    /// crash left without its record (a run that never started) is skipped.
    pub fn run_ids(&self) -> Result<Vec<String>, JournalError> {
        if let Some(c) = &self.cluster {
            return c.run_ids();
        }
        let mut out = Vec::new();
        for value in self.inner.runs.iter().values() {
            let value = value.map_err(storage)?;
            // No run id the journal writes is anything but UTF-8: such an
            // entry was written behind its back (verify names it), and must
            // not stop listings and retention for every other run.
            let Ok(run_id) = String::from_utf8(value.to_vec()) else {
                tracing::warn!("the run index holds a non-UTF-8 run id: skipped");
                continue;
            };
            let started = self
                .inner
                .records
                .scan_prefix(store::run_prefix(&run_id))
                .next()
                .is_some()
                || self
                    .inner
                    .heads
                    .contains_key(run_id.as_bytes())
                    .map_err(storage)?;
            if started {
                out.push(run_id);
            }
        }
        Ok(out)
    }

    /// The run at a glance. Its status is that of the latest `run_paused` or
    /// `run_finished` record (`running` if none); step activity recorded after
    /// a pause means the run was resumed, so it is `running` again.
    pub fn summary(&self, run_id: &str) -> Result<RunSummary, JournalError> {
        let records = self.read_records(run_id, false)?;
        summarize(run_id, &records)
    }

    /// Moves dedup key `key` from `stale` (a run that never journaled its
    /// start: the process died between claiming and starting) to `run_id`.
    /// Returns the holder if someone else took it meanwhile.
    pub fn reclaim_dedup(
        &self,
        key: &str,
        stale: &str,
        run_id: &str,
    ) -> Result<Option<String>, JournalError> {
        if let Some(c) = &self.cluster {
            return c.reclaim_dedup(key, stale, run_id);
        }
        let swapped = self
            .inner
            .dedup
            .compare_and_swap(
                key.as_bytes(),
                Some(stale.as_bytes()),
                Some(run_id.as_bytes()),
            )
            .map_err(storage)?;
        match swapped {
            Ok(()) => Ok(None),
            Err(e) => match e.current {
                Some(holder) => Ok(Some(String::from_utf8_lossy(&holder).into_owned())),
                None => self.claim_dedup(key, run_id),
            },
        }
    }

    /// Atomically claims dedup key `key` for `run_id`; returns
    /// `Some(existing_run_id)` if another run already holds it
    /// (compare-and-swap in sled).
    ///
    /// Claiming again for the same run returns `None`. The claim is made
    /// durable by the next flush, at the latest with the run's first append:
    /// sled's log is ordered, so a durable `run_started` implies its claim.
    pub fn claim_dedup(&self, key: &str, run_id: &str) -> Result<Option<String>, JournalError> {
        if let Some(c) = &self.cluster {
            return c.claim_dedup(key, run_id);
        }
        loop {
            let swapped = self
                .inner
                .dedup
                .compare_and_swap(key.as_bytes(), None::<&[u8]>, Some(run_id.as_bytes()))
                .map_err(storage)?;
            match swapped {
                Ok(()) => return Ok(None),
                Err(e) => match e.current {
                    Some(holder) => {
                        let holder = String::from_utf8_lossy(&holder).into_owned();
                        return Ok((holder != run_id).then_some(holder));
                    }
                    // Removed between the compare and our look: claim again.
                    None => continue,
                },
            }
        }
    }

    /// Counts a run as being driven by this process until the guard drops,
    /// so group commit knows how many appenders may join a flush (see
    /// `flusher.rs`). Hold one per run for as long as it is driven.
    pub fn active_run(&self) -> ActiveRun {
        self.inner.commit.active_run()
    }

    /// Marks a step of an active run as waiting on something slow (a vendor
    /// call, a retry delay) until the guard drops: group commit does not
    /// hold flushes for it.
    pub fn idle(&self) -> Idle {
        self.inner.commit.idle()
    }

    /// Number of physical flushes done so far (for benchmarks/tests of group
    /// commit).
    pub fn flush_count(&self) -> u64 {
        self.inner.commit.flush_count()
    }

    fn read_records(&self, run_id: &str, inline: bool) -> Result<Vec<Record>, JournalError> {
        known_shape(run_id)?;
        if let Some(c) = &self.cluster {
            return c.read(run_id);
        }
        let prefix = store::run_prefix(run_id);
        let mut out = Vec::new();
        for item in self.inner.records.scan_prefix(&prefix) {
            let (key, value) = item.map_err(storage)?;
            let seq = store::key_seq(&prefix, &key).ok_or_else(|| JournalError::Corrupt {
                run_id: run_id.to_string(),
                seq: 0,
                reason: format!("a key of {} bytes is not a record key", key.len()),
            })?;
            out.push(store::decode(
                &self.inner.blobs,
                run_id,
                seq,
                &value,
                inline,
            )?);
        }
        if out.is_empty()
            && !self
                .inner
                .heads
                .contains_key(run_id.as_bytes())
                .map_err(storage)?
        {
            return Err(JournalError::UnknownRun(run_id.to_string()));
        }
        Ok(out)
    }

    /// The state tables kept in this journal's store (their own trees),
    /// so one flush covers a state write and the record that follows it.
    pub fn state(&self) -> crate::state::StateStore {
        let db = self.inner.db.clone();
        match &self.cluster {
            Some(c) => {
                let (state, handle) = c.state();
                crate::state::StateStore::on_cluster(db, state, handle)
            }
            None => crate::state::StateStore::from_db(db),
        }
    }

    /// The sled database, for tests that tamper with it (which turns the
    /// tail cache off: the trees may no longer be what this handle wrote).
    #[cfg(test)]
    pub(crate) fn db(&self) -> &sled::Db {
        self.inner
            .tampered
            .store(true, std::sync::atomic::Ordering::SeqCst);
        &self.inner.db
    }
}

impl Inner {
    fn run_lock(&self, run_id: &str) -> Arc<Mutex<()>> {
        let mut locks = self
            .run_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(run_id.to_string()).or_default())
    }

    fn release_run_lock(&self, run_id: &str, lock: Arc<Mutex<()>>) {
        let mut locks = self
            .run_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock, so the count is stable here:
        // 2 means the map and us, nobody else is waiting on this run.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(run_id);
        }
    }

    /// Writes the next record of `run_id`, then its head. Returns (seq, at,
    /// prev_hash, hash). The caller holds the run's lock.
    ///
    /// Every write is a single-key sled insert, never a sled transaction or
    /// batch: sled 0.34 writes out and syncs its log buffer twice for each
    /// of those, which cost more than everything else an append does. sled's
    /// log is ordered, so a crash keeps a prefix of these inserts: at worst
    /// the newest record without its head, which `next_position` and
    /// `verify` recognise by its link to the head.
    fn commit_record(
        &self,
        run_id: &str,
        event: &Event,
        prepared: &store::Prepared,
    ) -> Result<(u64, String, String, String), JournalError> {
        let at = time::now();
        let (seq, prev_hash) = self.next_position(run_id)?;
        let is_start = matches!(event, Event::RunStarted { .. });
        if is_start != (seq == 1) {
            return Err(JournalError::Encode(if is_start {
                format!("run `{run_id}` already started ({} records)", seq - 1)
            } else {
                format!(
                    "the first event of run `{run_id}` must be run_started, not {}",
                    event.kind()
                )
            }));
        }
        let hash = record_hash(&prev_hash, seq, &at, &prepared.canonical);
        let stored = serde_json::to_vec(&StoredRecordRef {
            seq,
            at: &at,
            prev_hash: &prev_hash,
            hash: &hash,
            event: &prepared.stored_event,
        })
        .map_err(|e| JournalError::Encode(e.to_string()))?;
        let head = serde_json::to_vec(&Head {
            seq,
            hash: hash.clone(),
        })
        .map_err(|e| JournalError::Encode(e.to_string()))?;
        if let Err(e) = self.write_record(run_id, seq, prepared, stored, head) {
            // Part of it may be written: the next append looks it up.
            self.tails
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(run_id);
            return Err(e);
        }
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        if tails.len() >= TAIL_CACHE_RUNS {
            tails.clear();
        }
        tails.insert(run_id.to_string(), (seq, hash.clone()));
        drop(tails);
        if let Some(cp) = &self.checkpointer {
            cp.note(run_id, seq, &hash);
        }
        Ok((seq, at, prev_hash, hash))
    }

    /// Writes a prepared record and its head, in crash-safe order.
    fn write_record(
        &self,
        run_id: &str,
        seq: u64,
        prepared: &store::Prepared,
        stored: Vec<u8>,
        head: Vec<u8>,
    ) -> Result<(), JournalError> {
        // Order matters (a crash keeps a prefix): what a record refers to
        // (its blob; for a first record, the run index that lists it) goes
        // before it, and the head after it.
        for (digest, bytes) in &prepared.blobs {
            // Content-addressed: an existing blob is the same value.
            if !self
                .blobs
                .contains_key(digest.as_bytes())
                .map_err(storage)?
            {
                self.blobs
                    .insert(digest.as_bytes(), bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        if seq == 1 {
            let order = self.db.generate_id().map_err(storage)?;
            self.runs
                .insert(order.to_be_bytes(), run_id.as_bytes())
                .map_err(storage)?;
            self.live.insert(run_id.as_bytes(), &[]).map_err(storage)?;
        }
        self.records
            .insert(store::record_key(run_id, seq), stored)
            .map_err(storage)?;
        self.heads
            .insert(run_id.as_bytes(), head)
            .map_err(storage)?;
        Ok(())
    }

    /// Drops a run from the unfinished-run index, after its final record
    /// (sled's log is ordered: a crash cannot keep this without that).
    fn unlist(&self, run_id: &str) -> Result<(), JournalError> {
        if let Some(marker) = &self.hang_before_unlist {
            let _ = self.db.flush();
            let _ = std::fs::write(marker, run_id);
            tracing::warn!(run_id, "SOAR_TEST_HANG_BEFORE_UNLIST: hanging");
            loop {
                std::thread::park();
            }
        }
        self.live.remove(run_id.as_bytes()).map_err(storage)?;
        Ok(())
    }

    /// The seq and prev_hash of `run_id`'s next record: one past its head,
    /// or past the one record a crash left written without its head. Any
    /// other record past the head means the head was damaged, and appending
    /// would destroy evidence: refused.
    fn next_position(&self, run_id: &str) -> Result<(u64, String), JournalError> {
        #[cfg(test)]
        let cached = !self.tampered.load(std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(test))]
        let cached = true;
        if cached {
            let tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((seq, hash)) = tails.get(run_id) {
                return Ok((seq + 1, hash.clone()));
            }
        }
        let (next, prev) = self.stored_position(run_id)?;
        self.check_signed_tail(run_id, next - 1, &prev)?;
        Ok((next, prev))
    }

    /// In a process that signs: the run's last record must be one this
    /// process wrote, or one a valid checkpoint signed. Otherwise the next
    /// checkpoint would sign records someone slipped in behind the
    /// journal's back (a forged vote, say), so nothing is appended until an
    /// operator checks them and accepts them (`soar journal adopt --run`).
    fn check_signed_tail(&self, run_id: &str, seq: u64, hash: &str) -> Result<(), JournalError> {
        let Some(cp) = &self.checkpointer else {
            return Ok(());
        };
        if seq == 0 || cp.noted(run_id).is_some_and(|(s, h)| s == seq && h == hash) {
            return Ok(());
        }
        let keys = self.keys.verifiers();
        let signed = checkpoint::last_signed(&self.checkpoints, &self.signed_at, run_id, &keys)?;
        if signed.as_ref().is_some_and(|(s, h)| *s == seq && h == hash) {
            return Ok(());
        }
        let from = signed.map_or(1, |(s, _)| s + 1);
        Err(JournalError::Refused(format!(
            "run `{run_id}`: seq {from}..={seq} are not signed by any checkpoint (written just before a process died, or behind the journal's back), and appending would sign them; check them with `soar journal {run_id}` and `soar journal verify {run_id}`, then accept them with `soar journal adopt --run {run_id} --as NAME` if they are genuine"
        )))
    }

    /// The next position as the trees say (see [`Inner::next_position`]).
    fn stored_position(&self, run_id: &str) -> Result<(u64, String), JournalError> {
        let corrupt = |seq: u64, reason: String| JournalError::Corrupt {
            run_id: run_id.to_string(),
            seq,
            reason,
        };
        let (head_seq, head_hash) = match self.heads.get(run_id.as_bytes()).map_err(storage)? {
            Some(bytes) => {
                let head = Head::decode(&bytes).map_err(|e| corrupt(0, e))?;
                (head.seq, head.hash)
            }
            None => (0, GENESIS_HASH.to_string()),
        };
        // The run's last record, if any (keys sort by run, then seq).
        let prefix = store::run_prefix(run_id);
        let last = self
            .records
            .get_lt(store::record_key(run_id, u64::MAX))
            .map_err(storage)?
            .filter(|(key, _)| key.starts_with(&prefix));
        let seq = head_seq + 1;
        let Some((key, bytes)) = last else {
            return Ok((seq, head_hash));
        };
        match store::key_seq(&prefix, &key) {
            Some(last_seq) if last_seq <= head_seq => Ok((seq, head_hash)),
            Some(last_seq) if last_seq == seq => {
                let link = store::decode_link(&bytes)
                    .map_err(|e| corrupt(seq, format!("undecodable record: {e}")))?;
                if link.seq == seq && link.prev_hash == head_hash {
                    Ok((seq + 1, link.hash))
                } else {
                    Err(corrupt(
                        seq,
                        "the record past the run's head does not link to it".into(),
                    ))
                }
            }
            _ => Err(corrupt(
                seq,
                "a record already exists past the run's head".into(),
            )),
        }
    }
}

/// A run id that could never have been appended is simply unknown (and must
/// not reach a prefix scan, where a NUL would match another run's keys).
fn known_shape(run_id: &str) -> Result<(), JournalError> {
    store::check_run_id(run_id).map_err(|_| JournalError::UnknownRun(run_id.to_string()))
}

/// Tree of tombstones of pruned runs, by run id.
const TOMBSTONES: &str = "tombstones";
/// Tree of run id -> number of the last checkpoint that signed its head.
const SIGNED_AT: &str = "signed_at";

/// sled page cache size.
const CACHE_BYTES: u64 = 32 << 20;

/// Runs whose tail the journal remembers (about 150 bytes each).
const TAIL_CACHE_RUNS: usize = 4096;

/// Derives a [`RunSummary`] from a run's records (see [`Journal::summary`]).
fn summarize(run_id: &str, records: &[Record]) -> Result<RunSummary, JournalError> {
    let corrupt = |seq: u64, reason: String| JournalError::Corrupt {
        run_id: run_id.to_string(),
        seq,
        reason,
    };
    let (first, last) = match (records.first(), records.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Err(corrupt(1, "the run has a head but no records".into())),
    };
    let Event::RunStarted {
        playbook,
        started_by,
        dedup_key,
        ..
    } = &first.event
    else {
        return Err(corrupt(
            first.seq,
            format!(
                "the first record is {}, not run_started",
                first.event.kind()
            ),
        ));
    };
    let mut status = RunStatus::Running;
    for record in &records[1..] {
        match &record.event {
            Event::RunPaused { status: s, .. } | Event::RunFinished { status: s, .. } => {
                status = *s;
            }
            // Only the executor appends step activity, and it only runs an
            // unpaused run: a paused run with later activity was resumed.
            // Operator commands (votes, refusals) land while it is paused.
            e if e.is_step_activity() && !status.is_terminal() => status = RunStatus::Running,
            _ => {}
        }
    }
    Ok(RunSummary {
        run_id: run_id.to_string(),
        playbook: playbook.clone(),
        status,
        started_at: first.at.clone(),
        updated_at: last.at.clone(),
        started_by: started_by.clone(),
        dedup_key: dedup_key.clone(),
    })
}
