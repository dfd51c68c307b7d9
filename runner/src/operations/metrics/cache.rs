//! The facts of finished runs, kept beside the journal (`derived:metrics`)
//! so a summary over 100,000 runs reads one small entry per run instead of
//! every record. Each entry names the run's last seq it was derived at and
//! is used only while that is still the run's head; anything else (a run
//! not finished, an entry missing, stale or unreadable) is read from the
//! journal. `journal verify --all` recomputes every entry ([`check`]).

use super::facts::{facts, RunFacts};
use crate::journal::{Derived, Journal, JournalError};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::iter::Peekable;

/// The derived tree's name.
const NAME: &str = "metrics";

/// One cached run.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// The run's last seq when these facts were read.
    seq: u64,
    facts: RunFacts,
}

/// Calls `each` with the facts of every run the journal holds, in run id
/// order; a run that cannot be read is logged and left out.
pub(super) fn for_each_run(
    journal: &Journal,
    mut each: impl FnMut(&RunFacts),
) -> Result<(), JournalError> {
    let cache = journal.derived(NAME)?;
    let mut cached = cache.iter().peekable();
    for head in journal.heads() {
        let (run_id, seq) = match head {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable run head left out of the summary");
                continue;
            }
        };
        let hit = take_entry(&cache, &mut cached, &run_id)?.filter(|e| e.seq == seq);
        let facts = match hit {
            Some(entry) => Some(entry.facts),
            None => read(journal, &cache, &run_id),
        };
        if let Some(f) = facts {
            each(&f);
        }
    }
    Ok(())
}

/// The cached entry of `run_id`, if any, advancing past (and removing)
/// entries of runs that are gone (pruned).
fn take_entry<I>(
    cache: &Derived,
    cached: &mut Peekable<I>,
    run_id: &str,
) -> Result<Option<Entry>, JournalError>
where
    I: Iterator<Item = Result<(String, Vec<u8>), JournalError>>,
{
    loop {
        let order = match cached.peek() {
            None => return Ok(None),
            Some(Err(_)) => {
                return match cached.next() {
                    Some(Err(e)) => Err(e),
                    _ => Ok(None),
                }
            }
            Some(Ok((key, _))) => key.as_str().cmp(run_id),
        };
        match order {
            Ordering::Greater => return Ok(None),
            Ordering::Less => {
                if let Some(Ok((gone, _))) = cached.next() {
                    cache.remove(&gone)?;
                }
            }
            Ordering::Equal => {
                let value = cached.next().and_then(Result::ok).map(|(_, v)| v);
                return Ok(value.and_then(|v| serde_json::from_slice(&v).ok()));
            }
        }
    }
}

/// A run's facts from its records, cached once the run is final.
fn read(journal: &Journal, cache: &Derived, run_id: &str) -> Option<RunFacts> {
    let records = match journal.read(run_id) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(run_id, error = %e, "unreadable run left out of the summary");
            return None;
        }
    };
    let f = facts(&records)?;
    if let (true, Some(last)) = (f.is_final(), records.last()) {
        let entry = Entry {
            seq: last.seq,
            facts: f.clone(),
        };
        let stored = serde_json::to_vec(&entry)
            .map_err(|e| e.to_string())
            .and_then(|bytes| cache.put(run_id, &bytes).map_err(|e| e.to_string()));
        if let Err(e) = stored {
            tracing::warn!(run_id, error = %e, "cannot cache a run's metrics facts");
        }
    }
    Some(f)
}

/// Recomputes every cached entry from its run's records: one problem per
/// entry that does not match (edited behind the journal's back); each such
/// entry, and every stale one, is dropped so the next summary reads the
/// journal again.
pub fn check(journal: &Journal) -> Result<Vec<String>, JournalError> {
    let cache = journal.derived(NAME)?;
    let mut problems = Vec::new();
    for item in cache.iter() {
        let (run_id, bytes) = item?;
        let entry: Option<Entry> = serde_json::from_slice(&bytes).ok();
        let records = journal.read(&run_id).unwrap_or_default();
        let current = records.last().map(|r| r.seq);
        let verdict = match entry {
            None => Some("is unreadable"),
            Some(e) if Some(e.seq) != current => None,
            Some(e) if facts(&records).as_ref() != Some(&e.facts) => {
                Some("does not match the run's records (edited behind the journal's back)")
            }
            Some(_) => continue,
        };
        if let Some(why) = verdict {
            problems.push(format!(
                "run {run_id}: its cached metrics facts (tree derived:metrics) {why}; dropped, `soar report` reads the run again"
            ));
        }
        cache.remove(&run_id)?;
    }
    Ok(problems)
}
