//! Values derived from a run's records and kept beside the journal
//! (`journal::Derived`), each under the run's last seq it was read at and
//! used only while that is still the run's head. Never evidence: `journal
//! verify --all` recomputes every entry ([`check`]) and names one that does
//! not match.

use crate::journal::{Derived, Journal, JournalError, Record};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One cached value.
#[derive(Serialize, Deserialize)]
pub(crate) struct Entry<T> {
    /// The run's last seq when the value was derived.
    pub seq: u64,
    pub value: T,
}

/// The value cached for `run_id` if it was derived at `seq`.
pub(crate) fn get<T: DeserializeOwned>(cache: &Derived, run_id: &str, seq: u64) -> Option<T> {
    let bytes = cache.get(run_id).ok()??;
    let entry: Entry<T> = serde_json::from_slice(&bytes).ok()?;
    (entry.seq == seq).then_some(entry.value)
}

/// Caches `value`, derived at `seq` (a failure only costs a recompute).
pub(crate) fn put<T: Serialize>(cache: &Derived, run_id: &str, seq: u64, value: &T) {
    let stored = serde_json::to_vec(&Entry { seq, value })
        .map_err(|e| e.to_string())
        .and_then(|bytes| cache.put(run_id, &bytes).map_err(|e| e.to_string()));
    if let Err(e) = stored {
        tracing::warn!(run_id, error = %e, "cannot cache a value derived from a run");
    }
}

/// Recomputes every entry of the derived tree `name` from its run's
/// records with `derive`: one problem per entry that does not match or
/// cannot be read; each such entry, and every stale one, is dropped.
pub(crate) fn check<T, F>(
    journal: &Journal,
    name: &str,
    derive: F,
) -> Result<Vec<String>, JournalError>
where
    T: DeserializeOwned + PartialEq,
    F: Fn(&str, &[Record]) -> Option<T>,
{
    let cache = journal.derived(name)?;
    let mut problems = Vec::new();
    for item in cache.iter() {
        let (run_id, bytes) = item?;
        let entry: Option<Entry<T>> = serde_json::from_slice(&bytes).ok();
        let records = journal.read(&run_id).unwrap_or_default();
        let current = records.last().map(|r| r.seq);
        let verdict = match entry {
            None => Some("is unreadable"),
            Some(e) if Some(e.seq) != current => None,
            Some(e) if derive(&run_id, &records).as_ref() != Some(&e.value) => {
                Some("does not match the run's records (edited behind the journal's back)")
            }
            Some(_) => continue,
        };
        if let Some(why) = verdict {
            problems.push(format!(
                "run {run_id}: its cached {name} (tree derived:{name}) {why}; dropped, it is read from the journal again"
            ));
        }
        cache.remove(&run_id)?;
    }
    Ok(problems)
}
