//! Group commit: one thread makes writes durable for everyone. An appender
//! commits its record, then waits for a flush that *started after* its write;
//! all appenders that arrive during one flush share the next one. While other
//! runs are being driven, a flush waits a moment for them to join it.

use super::{Durability, JournalError};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Flush generations requested and started, guarded by one mutex so an
/// appender's "which flush covers me" decision is ordered with flush starts.
#[derive(Default)]
struct Requests {
    /// Generation of the last flush that started (0: none yet).
    started: u64,
    /// Someone is waiting for a flush that has not started yet.
    pending: bool,
    /// How many appenders wait for the flush that has not started yet.
    waiting: usize,
    /// The journal is being dropped: serve what is pending, then exit.
    shutdown: bool,
}

/// The outcome of the latest completed flush, broadcast to waiting appenders.
#[derive(Clone, Default)]
struct Done {
    generation: u64,
    error: Option<String>,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    done: watch::Sender<Done>,
    flushes: AtomicU64,
    /// Runs being driven now (see [`GroupCommit::active_run`]).
    active: AtomicUsize,
    /// Of those, steps waiting on something slow (a vendor call, a retry
    /// delay) that will not append soon (see [`GroupCommit::idle`]). Kept
    /// apart and subtracted saturating, so an over-count only makes a flush
    /// start sooner.
    idle: AtomicUsize,
    /// How long a flush may wait for active runs to join it.
    window: Duration,
}

/// How long a flush waits for other active runs to join it. Each sled flush
/// costs a write, a `sync_file_range` and a round of wake-ups in sled's IO
/// pool; under load, sharing it between many runs is what makes throughput.
/// Small next to a vendor call (tens of ms), and never paid by a lone run.
pub(crate) const COMMIT_WINDOW: Duration = Duration::from_micros(300);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Requests> {
        // A panic elsewhere cannot leave `Requests` inconsistent (plain
        // counters), so a poisoned lock is still usable.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs that may ask for a flush soon.
    fn busy(&self) -> usize {
        self.active
            .load(Ordering::SeqCst)
            .saturating_sub(self.idle.load(Ordering::SeqCst))
    }
}

/// Handle on the flusher thread; dropping it flushes what is pending and
/// joins the thread (which releases its `sled::Db` handle).
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher for `db`, stored in `dir`.
    pub(crate) fn start(
        db: sled::Db,
        dir: PathBuf,
        durability: Durability,
        window: Duration,
        checkpointer: Option<Arc<super::checkpoint::Checkpointer>>,
    ) -> Result<GroupCommit, JournalError> {
        let (done, _) = watch::channel(Done::default());
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            done,
            flushes: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            window,
        });
        let syncer = match durability {
            Durability::Process => None,
            Durability::PowerLoss => Some(FileSyncer::new(dir)),
        };
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("soar-journal-flush".into())
            .spawn(move || flusher_loop(&for_thread, &db, syncer, checkpointer))
            .map_err(|e| JournalError::Storage(format!("cannot start the journal flusher: {e}")))?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Waits until everything written before this call is durable.
    pub(crate) async fn wait_durable(&self) -> Result<(), JournalError> {
        let target = {
            let mut req = self.shared.lock();
            req.pending = true;
            req.waiting += 1;
            // Flush `started` may have begun before our write; only a later
            // one is guaranteed to include it.
            req.started + 1
        };
        self.shared.wake.notify_one();
        let mut rx = self.shared.done.subscribe();
        let done = rx
            .wait_for(|d| d.generation >= target)
            .await
            .map_err(|_| JournalError::Storage("the journal flusher stopped".into()))?;
        // A later successful flush also covers us, so the latest outcome is
        // the one that counts.
        match &done.error {
            Some(e) => Err(JournalError::Storage(format!("flush failed: {e}"))),
            None => Ok(()),
        }
    }

    /// Physical flushes completed so far.
    pub(crate) fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Counts a run as being driven until the guard is dropped. While more
    /// runs are active than appenders wait, a flush holds for up to the
    /// window ([`COMMIT_WINDOW`]) so the others can share it; a lone run
    /// never waits.
    pub(crate) fn active_run(&self) -> ActiveRun {
        self.shared.active.fetch_add(1, Ordering::SeqCst);
        ActiveRun {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Marks a step of an active run as waiting on something slow until the
    /// guard drops, so flushes do not hold for it.
    pub(crate) fn idle(&self) -> Idle {
        self.shared.idle.fetch_add(1, Ordering::SeqCst);
        self.shared.wake.notify_one();
        Idle {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// See [`GroupCommit::idle`].
pub struct Idle {
    shared: Arc<Shared>,
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.shared.idle.fetch_sub(1, Ordering::SeqCst);
    }
}

impl fmt::Debug for Idle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Idle")
    }
}

/// See [`GroupCommit::active_run`].
pub struct ActiveRun {
    shared: Arc<Shared>,
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
        // The flusher may be holding a flush for this run.
        self.shared.wake.notify_one();
    }
}

impl fmt::Debug for ActiveRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActiveRun")
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the journal flusher thread panicked");
            }
        }
    }
}

/// Fails every current and future waiter if the flusher thread panics, so
/// appenders get an error instead of waiting forever.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.done.send_modify(|d| {
                d.generation = u64::MAX;
                d.error = Some("the journal flusher thread panicked".into());
            });
        }
    }
}

fn flusher_loop(
    shared: &Shared,
    db: &sled::Db,
    mut syncer: Option<FileSyncer>,
    checkpointer: Option<Arc<super::checkpoint::Checkpointer>>,
) {
    let _guard = PanicGuard(shared);
    loop {
        let generation = {
            let mut req = shared.lock();
            while !req.pending && !req.shutdown {
                req = shared
                    .wake
                    .wait(req)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !req.pending {
                return;
            }
            // Group commit window: other runs are busy and will want a flush
            // shortly; let them join this one instead of paying for their own.
            let deadline = Instant::now() + shared.window;
            while !req.shutdown && req.waiting < shared.busy() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                req = shared
                    .wake
                    .wait_timeout(req, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            req.pending = false;
            req.waiting = 0;
            req.started += 1;
            req.started
        };
        let began = Instant::now();
        // One signature per flush, durable with the records it covers:
        // every record an appender waits for was written before this point.
        let signed = match &checkpointer {
            Some(cp) => cp.write(),
            None => Ok(()),
        };
        let result = signed.and_then(|()| flush_once(db, syncer.as_mut()));
        crate::observe::journal_flush(began.elapsed());
        if let Err(e) = &result {
            tracing::error!(error = %e, "journal flush failed");
        }
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        shared.done.send_modify(|d| {
            d.generation = generation;
            d.error = result.err();
        });
    }
}

fn flush_once(db: &sled::Db, syncer: Option<&mut FileSyncer>) -> Result<(), String> {
    // sled 0.34 writes its log buffers and `sync_file_range`s them: enough to
    // survive a killed process, not a power cut (no metadata, no disk cache).
    db.flush().map_err(|e| e.to_string())?;
    if let Some(syncer) = syncer {
        syncer.sync().map_err(|e| format!("fdatasync: {e}"))?;
    }
    Ok(())
}

/// `fdatasync`s sled's files for [`Durability::PowerLoss`]: `db` (the log,
/// rewritten in place) at every flush; `conf`, `snap.*` and the large-value
/// files sled keeps in `blobs/` when first seen or grown. sled writes those
/// once and never modifies them, and does not sync `blobs/` files itself.
struct FileSyncer {
    dir: PathBuf,
    /// Length of each file when last synced, for the top directory and
    /// `blobs/`; a new or removed name also means syncing the directory, so
    /// the name itself survives.
    top: HashMap<OsString, u64>,
    blobs: HashMap<OsString, u64>,
}

impl FileSyncer {
    fn new(dir: PathBuf) -> FileSyncer {
        FileSyncer {
            dir,
            top: HashMap::new(),
            blobs: HashMap::new(),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_files(&self.dir, &mut self.top, |name| name == "db")?;
        let blob_dir = self.dir.join("blobs");
        match std::fs::metadata(&blob_dir) {
            Ok(_) => sync_files(&blob_dir, &mut self.blobs, |_| false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Syncs the regular files of `dir` that are new, have grown, or match
/// `always`; then `dir` itself if its set of names changed. `synced` holds
/// the lengths as of the previous call.
fn sync_files(
    dir: &Path,
    synced: &mut HashMap<OsString, u64>,
    always: impl Fn(&std::ffi::OsStr) -> bool,
) -> io::Result<()> {
    let mut now = HashMap::new();
    let mut names_changed = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            // Replaced or collected by sled since `read_dir`.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match synced.get(&name) {
            Some(&len) if len == meta.len() && !always(&name) => {}
            previous => {
                names_changed |= previous.is_none();
                sync_file(&entry.path())?;
            }
        }
        now.insert(name, meta.len());
    }
    if names_changed || now.len() != synced.len() {
        sync_dir(dir)?;
    }
    *synced = now;
    Ok(())
}

fn sync_file(path: &Path) -> io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        // sled replaces snapshots and collects blobs concurrently.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes new or removed directory entries durable (POSIX needs an fsync of
/// the directory itself for that).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files everywhere; their entries
        // are made durable by the file system itself there.
        let _ = path;
        Ok(())
    }
}
