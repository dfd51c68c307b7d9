//! Cancelling a run that another process is driving. sled lets one process
//! at a time hold the journal, so `soar cancel` leaves an authenticated
//! request beside it; the executor journals `run_cancelled` before it starts
//! anything more, and in-flight steps finish and are journaled as usual.

use crate::journal::Journal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How often the request directory is looked at: the executor asks before
/// every step, and a failed `openat` per step was a syscall per step for
/// nothing (a request is rare). A request is seen at most this much later.
const LOOK_EVERY_MS: u64 = 50;

/// When the directory may next be looked at (Unix ms), and whether it held
/// anything then. Process-wide: a request this process writes resets it.
static NEXT_LOOK_MS: AtomicU64 = AtomicU64::new(0);
static ANY_REQUEST: AtomicBool = AtomicBool::new(false);

/// Whether any request may be waiting beside `journal_dir`.
fn any_request(journal_dir: &std::path::Path) -> bool {
    let now = crate::journal::now_unix_millis();
    if now >= NEXT_LOOK_MS.load(Ordering::Relaxed) {
        NEXT_LOOK_MS.store(now + LOOK_EVERY_MS, Ordering::Relaxed);
        let dir = journal_dir.with_file_name("cancel");
        let any = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        ANY_REQUEST.store(any, Ordering::Relaxed);
    }
    ANY_REQUEST.load(Ordering::Relaxed)
}

fn path(journal_dir: &std::path::Path, run_id: &str) -> PathBuf {
    journal_dir.with_file_name("cancel").join(run_id)
}

/// Leaves a cancel request for `run_id` (`journal_dir` is the journal's
/// directory; the request sits next to it).
pub fn request(
    journal_dir: &std::path::Path,
    run_id: &str,
    by: &str,
    reason: &str,
) -> std::io::Result<()> {
    let p = path(journal_dir, run_id);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = serde_json::json!({"by": by, "reason": reason}).to_string();
    // Write then rename: the executor never reads half a request.
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(tmp, p)?;
    ANY_REQUEST.store(true, Ordering::Relaxed);
    NEXT_LOOK_MS.store(0, Ordering::Relaxed);
    Ok(())
}

/// The pending request for `run_id`, if any: (by, reason).
pub fn requested(journal: &Journal, run_id: &str) -> Option<(String, String)> {
    if !any_request(journal.dir()) {
        return None;
    }
    let text = std::fs::read_to_string(path(journal.dir(), run_id)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v["by"].as_str()?.to_string(),
        v["reason"].as_str()?.to_string(),
    ))
}

/// Removes a request once it is journaled.
pub fn clear(journal: &Journal, run_id: &str) {
    let _ = std::fs::remove_file(path(journal.dir(), run_id));
}
