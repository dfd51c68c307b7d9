//! The index of unfinished runs (tree `live`), so boot, `resume --all` and
//! the approval queue read the runs that can still move, not the history.
//! A run is listed just before its first record and unlisted just after its
//! final `run_finished`; sled's log keeps a prefix of writes across a
//! crash, so the index is always a superset of the unfinished runs. An
//! entry whose run has finished (a crash between the end and the unlisting)
//! is skipped and dropped; `verify_signed` names an unfinished run missing
//! from it.

use super::store::{self, storage};
use super::{Journal, JournalError, RunStatus};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Tree of unfinished run ids (values empty).
pub(crate) const LIVE: &str = "live";
/// Written once the index covers every run of the journal: run ids have no
/// NUL, so no run can have this key. A journal from before the index is
/// indexed at open until this is written.
const BUILT: &[u8] = b"\0built";

/// The type and status of a stored record, read without the rest.
#[derive(Deserialize)]
struct Ending {
    event: EndingEvent,
}

#[derive(Deserialize)]
struct EndingEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: Option<RunStatus>,
}

/// Where a run stands by its last stored record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// No record (never started, or pruned).
    Absent,
    /// Its last record is a final `run_finished`.
    Finished,
    /// Anything else: it can still move.
    Open,
}

/// The run's standing, from one look-up of its last record.
pub(crate) fn standing(records: &sled::Tree, run_id: &str) -> Result<Standing, JournalError> {
    let prefix = store::run_prefix(run_id);
    let last = records
        .get_lt(store::record_key(run_id, u64::MAX))
        .map_err(storage)?
        .filter(|(key, _)| key.starts_with(&prefix));
    let Some((_, bytes)) = last else {
        return Ok(Standing::Absent);
    };
    // An undecodable last record is not a finished run: it stays listed
    // (resuming it reports the damage; dropping it would hide the run).
    let finished = serde_json::from_slice::<Ending>(&bytes).is_ok_and(|e| {
        e.event.kind == "run_finished" && e.event.status.is_some_and(RunStatus::is_final)
    });
    Ok(if finished {
        Standing::Finished
    } else {
        Standing::Open
    })
}

/// Builds the index of a journal written before it existed (or whose
/// building a crash interrupted): one pass over the runs, then the marker.
pub(crate) fn build_if_missing(
    live: &sled::Tree,
    runs: &sled::Tree,
    records: &sled::Tree,
) -> Result<(), JournalError> {
    if live.contains_key(BUILT).map_err(storage)? {
        return Ok(());
    }
    let mut listed = 0u64;
    for value in runs.iter().values() {
        let value = value.map_err(storage)?;
        let Ok(run_id) = std::str::from_utf8(&value) else {
            continue;
        };
        if standing(records, run_id)? == Standing::Open {
            live.insert(run_id.as_bytes(), &[]).map_err(storage)?;
            listed += 1;
        }
    }
    live.insert(BUILT, &[]).map_err(storage)?;
    live.flush().map_err(storage)?;
    if listed > 0 {
        tracing::info!(listed, "indexed the journal's unfinished runs");
    }
    Ok(())
}

/// The listed run ids, marker excluded.
fn listed(live: &sled::Tree) -> impl Iterator<Item = Result<String, JournalError>> + '_ {
    live.iter().keys().filter_map(|key| match key {
        Ok(k) if k.as_ref() == BUILT => None,
        Ok(k) => Some(Ok(String::from_utf8_lossy(&k).into_owned())),
        Err(e) => Some(Err(storage(e))),
    })
}

impl Journal {
    /// Every run that can still move (running, paused, waiting for an
    /// approval or an operator), oldest first: read from the index, not the
    /// history. An entry left by a crash just after its run finished is
    /// dropped here; one whose run has no record yet (being started, or a
    /// start a crash cut short) is skipped.
    pub fn live_run_ids(&self) -> Result<Vec<String>, JournalError> {
        if let Some(c) = &self.cluster {
            return c.live_run_ids();
        }
        let mut out = Vec::new();
        for run_id in listed(&self.inner.live) {
            let run_id = run_id?;
            match standing(&self.inner.records, &run_id)? {
                Standing::Open => out.push(run_id),
                Standing::Finished => {
                    self.inner.live.remove(run_id.as_bytes()).map_err(storage)?;
                }
                Standing::Absent => {}
            }
        }
        Ok(out)
    }

    /// Whether the run's last record is its final `run_finished`.
    pub fn is_finished(&self, run_id: &str) -> Result<bool, JournalError> {
        store::check_run_id(run_id)?;
        if self.cluster.is_some() {
            let records = self.read(run_id)?;
            return Ok(records.last().is_some_and(|r| {
                matches!(&r.event, super::Event::RunFinished { status, .. } if status.is_final())
            }));
        }
        Ok(standing(&self.inner.records, run_id)? == Standing::Finished)
    }

    /// What `verify_signed` says of the index: an unfinished run missing
    /// from it is a problem (a restart would not resume it); a listed run
    /// that finished or has no record is a warning (what a crash leaves).
    pub(super) fn check_live(
        &self,
        stored: &BTreeSet<String>,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Result<(), JournalError> {
        let mut listed_ids = BTreeSet::new();
        for run_id in listed(&self.inner.live) {
            let run_id = run_id?;
            match standing(&self.inner.records, &run_id)? {
                Standing::Open => {}
                Standing::Finished => warnings.push(format!(
                    "run {run_id}: finished but still in the unfinished-run index (a crash between its end and the index update); the next boot drops it"
                )),
                Standing::Absent => warnings.push(format!(
                    "run {run_id}: in the unfinished-run index with no record (a start a crash cut short, or a pruned run)"
                )),
            }
            listed_ids.insert(run_id);
        }
        for run_id in stored {
            if !listed_ids.contains(run_id)
                && standing(&self.inner.records, run_id)? == Standing::Open
            {
                problems.push(format!(
                    "run {run_id}: unfinished but missing from the unfinished-run index (tree live): a restart would not resume it (removed behind the journal's back?)"
                ));
            }
        }
        Ok(())
    }
}
