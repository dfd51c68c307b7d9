//! Export of journal records to the SOC's log pipeline: JSON lines of OCSF
//! events ([`ocsf`]) to a file that rotates and to an HTTP collector, with a
//! durable cursor per sink ([`cursor`]), so a restart neither loses a record
//! nor writes one twice: the file is cut back to the length the cursor
//! recorded; an HTTP batch in flight at a crash is re-sent whole with the
//! same `Idempotency-Key`. Order is the journal's, per run.

mod cursor;
pub mod ocsf;
mod sink;

use crate::config::SiemConfig;
use crate::journal::{Event, Journal};
use cursor::{Cursor, Pending};
use std::path::Path;

/// Why an export pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// The cursor could not be read or written.
    #[error("cursor {path}: {reason}")]
    Cursor {
        /// The cursor file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The sink refused or failed (after its retries).
    #[error("{sink}: {reason}")]
    Sink {
        /// `file` or `http`.
        sink: &'static str,
        /// Why.
        reason: String,
    },
}

/// What one pass exported, per sink.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exported {
    /// Lines written to the file.
    pub file: u64,
    /// Events accepted by the HTTP collector.
    pub http: u64,
}

/// Exports every record not yet exported, to every configured sink.
pub async fn export(
    journal: &Journal,
    config: &SiemConfig,
    data_dir: &Path,
) -> Result<Exported, SiemError> {
    let dir = data_dir.join("siem");
    std::fs::create_dir_all(&dir).map_err(|e| SiemError::Cursor {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Exported::default();
    if let Some(file) = &config.file {
        let mut cursor = Cursor::load(&dir.join("file.cursor.json"))?;
        let mut sink = sink::FileSink::open(file, &mut cursor)?;
        out.file = drain(journal, config.batch, &mut cursor, |batch, cursor| {
            sink.write(batch, cursor)
        })
        .await?;
    }
    if let Some(http) = &config.http {
        let mut cursor = Cursor::load(&dir.join("http.cursor.json"))?;
        let sink = sink::HttpSink::new(http)?;
        if let Some(pending) = cursor.pending.clone() {
            // Sent, maybe received, not acknowledged: the same batch again.
            sink.send(&pending).await?;
            cursor.commit(&pending)?;
        }
        out.http = drain_http(journal, config.batch, &mut cursor, &sink).await?;
    }
    Ok(out)
}

/// Per sink (`file`, `http`), the last seq exported of each run.
pub type Exports = Vec<(&'static str, std::collections::BTreeMap<String, u64>)>;

/// How far each configured sink has exported each run: `(sink, last seq
/// per run)`, from the durable cursors (a batch in flight counts for
/// nothing until the collector acknowledged it). Retention reads it: a run
/// is pruned only once every sink has it.
pub fn exported(config: &SiemConfig, data_dir: &Path) -> Result<Exports, SiemError> {
    let dir = data_dir.join("siem");
    let mut out = Vec::new();
    if config.file.is_some() {
        out.push(("file", Cursor::load(&dir.join("file.cursor.json"))?.runs));
    }
    if config.http.is_some() {
        out.push(("http", Cursor::load(&dir.join("http.cursor.json"))?.runs));
    }
    Ok(out)
}

/// The next batch after `cursor`: up to `max` events, runs in the order
/// they were created, records in seq order; once none is left, an anchor of
/// the newest checkpoint if this sink was not sent it yet (a copy outside
/// the data dir, so deleting the newest checkpoints shows).
fn next_batch(journal: &Journal, cursor: &Cursor, max: usize) -> Result<Pending, SiemError> {
    let batch = next_records(journal, cursor, max)?;
    if !batch.lines.is_empty() {
        return Ok(batch);
    }
    match journal.last_checkpoint()? {
        Some((n, hash, key_id)) if cursor.anchored != Some(n) => {
            let genesis = journal.checkpoint_hash(1)?;
            let mut anchor = Pending::new(
                vec![ocsf::anchor(n, &hash, &key_id, genesis.as_deref()).to_string()],
                Vec::new(),
            );
            anchor.anchor = Some(n);
            Ok(anchor)
        }
        _ => Ok(batch),
    }
}

fn next_records(journal: &Journal, cursor: &Cursor, max: usize) -> Result<Pending, SiemError> {
    let mut lines = Vec::new();
    let mut upto = Vec::new();
    for run in journal.run_ids()? {
        if lines.len() >= max {
            break;
        }
        let done = cursor.runs.get(&run).copied().unwrap_or(0);
        if journal.head_seq(&run)?.is_some_and(|head| head <= done) {
            continue;
        }
        let records = journal.read(&run)?;
        let playbook = match records.first().map(|r| &r.event) {
            Some(Event::RunStarted { playbook, .. }) => playbook.clone(),
            _ => String::new(),
        };
        let mut last = done;
        for r in records.iter().filter(|r| r.seq > done) {
            if lines.len() >= max {
                break;
            }
            lines.push(ocsf::event(&run, &playbook, r).to_string());
            last = r.seq;
        }
        if last > done {
            upto.push((run, last));
        }
    }
    Ok(Pending::new(lines, upto))
}

async fn drain(
    journal: &Journal,
    max: usize,
    cursor: &mut Cursor,
    mut write: impl FnMut(&Pending, &mut Cursor) -> Result<(), SiemError>,
) -> Result<u64, SiemError> {
    let mut n = 0;
    loop {
        let batch = next_batch(journal, cursor, max)?;
        if batch.lines.is_empty() {
            return Ok(n);
        }
        write(&batch, cursor)?;
        n += batch.lines.len() as u64;
    }
}

async fn drain_http(
    journal: &Journal,
    max: usize,
    cursor: &mut Cursor,
    sink: &sink::HttpSink,
) -> Result<u64, SiemError> {
    let mut n = 0;
    loop {
        let batch = next_batch(journal, cursor, max)?;
        if batch.lines.is_empty() {
            return Ok(n);
        }
        // Durable before it is sent: a crash re-sends exactly this batch.
        cursor.pending = Some(batch.clone());
        cursor.save()?;
        sink.send(&batch).await?;
        cursor.commit(&batch)?;
        n += batch.lines.len() as u64;
    }
}
