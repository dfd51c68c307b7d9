//! The facts of finished runs, kept beside the journal (`derived:metrics`)
//! so a summary over 100,000 runs reads one small entry per run instead of
//! every record. Each entry names the run's last seq it was derived at and
//! is used only while that is still the run's head; anything else (a run
//! not finished, an entry missing, stale or unreadable) is read from the
//! journal. `journal verify --all` recomputes every entry ([`check`]).

use super::facts::{facts, RunFacts};
use crate::journal::{Derived, Journal, JournalError};
use crate::operations::derived::{self, Entry};
use std::cmp::Ordering;
use std::iter::Peekable;

/// The derived tree's name.
const NAME: &str = "metrics";

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
            Some(entry) => Some(entry.value),
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
) -> Result<Option<Entry<RunFacts>>, JournalError>
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
        derived::put(cache, run_id, last.seq, &f);
    }
    Some(f)
}

/// Recomputes every cached entry from its run's records (see
/// [`derived::check`]).
pub fn check(journal: &Journal) -> Result<Vec<String>, JournalError> {
    derived::check(journal, NAME, |_, records| facts(records))
}
