//! Integrity check of one run: recomputes every hash from the stored text,
//! follows the `prev_hash` links and seq numbers from 1, compares the last
//! record with the head, and checks referenced blobs. Reports, never repairs.
//! The head is written just after its record, so a crash may leave the last
//! record one past the head, linked to it: that alone is not a problem.

use super::canonical::{record_hash, Json, GENESIS_HASH};
use super::store::{self, blob_ref, check_blob, key_seq, large_slot, storage, Head};
use super::{Event, JournalError, VerifyReport};

/// What one stored record says about itself.
struct Checked {
    seq: u64,
    prev_hash: String,
    hash: String,
}

/// Verifies `run_id` in the given trees.
pub(crate) fn verify(
    records: &sled::Tree,
    heads: &sled::Tree,
    blobs: &sled::Tree,
    run_id: &str,
) -> Result<VerifyReport, JournalError> {
    let prefix = store::run_prefix(run_id);
    let mut problems = Vec::new();
    let mut count = 0u64;
    let mut expected = 1u64;
    // Hash of the previous record when it is known to be trustworthy enough
    // to check a link against (not after a gap or an undecodable record).
    let mut prev: Option<String> = Some(GENESIS_HASH.to_string());
    // Key seq of the last record, and its stored (prev_hash, hash) if it
    // decoded.
    let mut last: Option<(u64, Option<(String, String)>)> = None;

    for item in records.scan_prefix(&prefix) {
        let (key, value) = item.map_err(storage)?;
        count += 1;
        let Some(seq) = key_seq(&prefix, &key) else {
            problems.push(format!(
                "a key of {} bytes under this run is not a record key",
                key.len()
            ));
            prev = None;
            continue;
        };
        if seq > expected {
            problems.push(if seq - expected == 1 {
                format!("seq {expected} missing (record deleted)")
            } else {
                format!("seq {expected}-{} missing (records deleted)", seq - 1)
            });
            // The gap already explains the broken link of this record.
            prev = None;
        }
        expected = seq.saturating_add(1);

        match check_record(blobs, seq, &value, &mut problems)? {
            Some(checked) => {
                // A record out of place is already reported; its link adds nothing.
                if checked.seq == seq {
                    if let Some(p) = &prev {
                        if *p != checked.prev_hash {
                            problems.push(format!(
                                "seq {seq}: prev_hash does not match the hash of seq {} (chain broken: a record replaced or inserted)",
                                seq - 1
                            ));
                        }
                    }
                }
                // After a record out of place, links to it say nothing new.
                prev = (checked.seq == seq).then(|| checked.hash.clone());
                last = Some((seq, Some((checked.prev_hash, checked.hash))));
            }
            None => {
                prev = None;
                last = Some((seq, None));
            }
        }
    }

    let head = match heads.get(run_id.as_bytes()).map_err(storage)? {
        None if count == 0 => return Err(JournalError::UnknownRun(run_id.to_string())),
        // A first record whose head a crash lost is checked against the
        // genesis below, like any record one past its head.
        None => Some((0, GENESIS_HASH.to_string())),
        Some(bytes) => match Head::decode(&bytes) {
            Err(e) => {
                problems.push(format!("head: {e}"));
                None
            }
            Ok(head) => Some((head.seq, head.hash)),
        },
    };
    if let Some((head_seq, head_hash)) = head {
        let (last_seq, last_link) = last.unwrap_or((0, None));
        let unheaded_crash_tail = last_seq == head_seq + 1
            && last_link
                .as_ref()
                .is_some_and(|(prev_hash, _)| *prev_hash == head_hash);
        if last_seq < head_seq {
            problems.push(format!(
                "head says {head_seq} records, found {last_seq} (tail truncated)"
            ));
        } else if unheaded_crash_tail {
            // Written, and its head lost in a crash: intact.
        } else if head_seq == 0 {
            problems.push("head missing (run index damaged)".to_string());
        } else if last_seq > head_seq {
            problems.push(format!(
                "head says {head_seq} records, found {last_seq} (records added outside the journal)"
            ));
        } else if last_link.is_some_and(|(_, h)| h != head_hash) {
            problems.push(format!(
                "seq {last_seq}: hash differs from the head's (last record replaced)"
            ));
        }
    }

    Ok(VerifyReport {
        run_id: run_id.to_string(),
        records: count,
        problems,
    })
}

/// Checks one record against itself and its blob; `None` if it cannot even
/// be decoded (the problem is pushed either way).
fn check_record(
    blobs: &sled::Tree,
    key_seq: u64,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> Result<Option<Checked>, JournalError> {
    let fields = std::str::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(Json::parse)
        .and_then(|doc| {
            let field = |name: &str| doc.get(name).ok_or(format!("no `{name}`"));
            let text = |name: &str| {
                field(name)?
                    .as_str()
                    .map(str::to_string)
                    .ok_or(format!("`{name}` is not a string"))
            };
            let seq = field("seq")?
                .as_u64()
                .ok_or("`seq` is not an integer".to_string())?;
            Ok((
                seq,
                text("at")?,
                text("prev_hash")?,
                text("hash")?,
                field("event")?.canonical(),
            ))
        });
    let (seq, at, prev_hash, hash, event) = match fields {
        Ok(fields) => fields,
        Err(reason) => {
            problems.push(format!("seq {key_seq}: undecodable record ({reason})"));
            return Ok(None);
        }
    };

    if seq != key_seq {
        problems.push(format!(
            "seq {key_seq}: holds the record of seq {seq} (records reordered)"
        ));
    }
    if record_hash(&prev_hash, seq, &at, &event) != hash {
        problems.push(format!("seq {key_seq}: hash mismatch (record edited)"));
    }
    // The canonical text is plain JSON, so serde_json reads it back.
    match serde_json::from_str::<serde_json::Value>(&event) {
        Ok(value) => {
            if let Err(e) = serde_json::from_value::<Event>(value.clone()) {
                problems.push(format!("seq {key_seq}: not a journal event ({e})"));
            }
            if let Some((digest, size)) = large_slot(&value).and_then(blob_ref) {
                if let Err(problem) = check_blob(blobs, digest, size)? {
                    problems.push(format!("seq {key_seq}: {problem}"));
                }
            }
        }
        Err(e) => problems.push(format!("seq {key_seq}: undecodable event ({e})")),
    }
    Ok(Some(Checked {
        seq,
        prev_hash,
        hash,
    }))
}

/// Checks one run against the heads checkpoints signed for it (oldest
/// first): each signed `(seq, hash)` must still be the record at that seq,
/// and nothing may follow the last one unsigned.
pub(crate) fn signed_run(
    records: &sled::Tree,
    heads: &sled::Tree,
    run_id: &str,
    points: &[(u64, String, u64)],
    problems: &mut Vec<String>,
) -> Result<(), JournalError> {
    let prefix = store::run_prefix(run_id);
    let last_seq = records
        .get_lt(store::record_key(run_id, u64::MAX))
        .map_err(storage)?
        .filter(|(key, _)| key.starts_with(&prefix))
        .and_then(|(key, _)| key_seq(&prefix, &key));
    let Some((signed_seq, _, signed_at)) = points.last() else {
        return Ok(());
    };
    let Some(last_seq) = last_seq else {
        let head = heads.contains_key(run_id.as_bytes()).map_err(storage)?;
        problems.push(format!(
            "run {run_id}: deleted{} (checkpoint {signed_at} signed it at seq {signed_seq})",
            if head {
                " (its records are gone, its head is left)"
            } else {
                ""
            }
        ));
        return Ok(());
    };
    let mut good = 0u64;
    for (seq, hash, n) in points {
        let Some(bytes) = records
            .get(store::record_key(run_id, *seq))
            .map_err(storage)?
        else {
            problems.push(format!(
                "run {run_id}: truncated or rolled back: checkpoint {n} signed seq {seq}, and the run now ends at seq {last_seq}"
            ));
            return Ok(());
        };
        let stored = store::decode_link(&bytes)
            .map(|l| l.hash)
            .unwrap_or_default();
        if stored != *hash {
            problems.push(format!(
                "run {run_id}: rewritten: the record at seq {seq} is not the one checkpoint {n} signed, so a record in seq {}..={seq} was changed (and the chain recomputed after it)",
                good + 1
            ));
            return Ok(());
        }
        good = *seq;
    }
    if last_seq > *signed_seq {
        problems.push(format!(
            "run {run_id}: seq {}..={last_seq} are not signed by any checkpoint (appended behind the journal's back, or written just before a process died)",
            signed_seq + 1
        ));
    }
    Ok(())
}

/// Everything the store holds, walked tree by tree rather than through the
/// run index, so a run written behind the index's back is still seen.
/// Linear: one pass over heads, index and tombstones, and one seek per run
/// (not per record) in `records`.
#[derive(Default)]
pub(crate) struct StoreWalk {
    /// Runs with records or a head.
    pub runs: std::collections::BTreeSet<String>,
    /// Runs the index lists.
    pub indexed: std::collections::BTreeSet<String>,
    /// Tombstones in the `tombstones` tree.
    pub tombstones: std::collections::BTreeMap<String, super::Tombstone>,
    /// Keys or values that cannot belong to any run.
    pub problems: Vec<String>,
}

impl StoreWalk {
    /// Whether the journal holds anything at all.
    pub fn has_history(&self) -> bool {
        !self.runs.is_empty() || !self.indexed.is_empty() || !self.tombstones.is_empty()
    }
}

/// Walks the trees (see [`StoreWalk`]).
pub(crate) fn walk(
    records: &sled::Tree,
    heads: &sled::Tree,
    index: &sled::Tree,
    tombstones: &sled::Tree,
) -> Result<StoreWalk, JournalError> {
    let mut out = StoreWalk::default();
    let mut next: Option<sled::IVec> = None;
    loop {
        let item = match &next {
            None => records.first(),
            Some(from) => records.range(from.as_ref()..).next().transpose(),
        };
        let Some((key, _)) = item.map_err(storage)? else {
            break;
        };
        // `run ++ 0x00 ++ seq(8)`: everything of this run sorts below
        // `run ++ 0x01`, where the next run starts.
        let run_len = key.len().checked_sub(9).filter(|&n| n > 0 && key[n] == 0);
        let Some(n) = run_len else {
            out.problems.push(format!(
                "records: a key of {} bytes belongs to no run (written outside the journal)",
                key.len()
            ));
            let mut after = key.to_vec();
            after.push(0);
            next = Some(after.into());
            continue;
        };
        out.runs
            .insert(String::from_utf8_lossy(&key[..n]).into_owned());
        let mut after = key[..n].to_vec();
        after.push(1);
        next = Some(after.into());
    }
    for key in heads.iter().keys() {
        out.runs
            .insert(String::from_utf8_lossy(&key.map_err(storage)?).into_owned());
    }
    for value in index.iter().values() {
        out.indexed
            .insert(String::from_utf8_lossy(&value.map_err(storage)?).into_owned());
    }
    for item in tombstones.iter() {
        let (key, value) = item.map_err(storage)?;
        let run = String::from_utf8_lossy(&key).into_owned();
        match serde_json::from_slice(&value) {
            Ok(t) => {
                out.tombstones.insert(run, t);
            }
            Err(e) => out
                .problems
                .push(format!("run {run}: its tombstone is unreadable ({e})")),
        }
    }
    Ok(out)
}

/// The tombstone a run is judged by: one that excuses its absence (signed
/// by a checkpoint; in an unkeyed journal, the tree's, as nothing better
/// exists), or only one in the tree that no checkpoint signed, which
/// excuses nothing (anyone who can write the data dir can add one).
#[derive(Clone, Copy)]
pub(crate) enum Pruned<'t> {
    /// Not pruned.
    No,
    /// Pruned, as signed (or unkeyed).
    Yes(&'t super::Tombstone),
    /// A tombstone in the tree only: the run is checked as a live one.
    Unsigned(&'t super::Tombstone),
}

/// What the store says about one run beyond its own chain: listed by the
/// index, and not pruned, or what a prune left of it, exactly as it was.
pub(crate) struct Placement<'a> {
    /// The `records` tree.
    pub records: &'a sled::Tree,
    /// The `blobs` tree.
    pub blobs: &'a sled::Tree,
    /// Problems and warnings found, one line each.
    pub problems: &'a mut Vec<String>,
    /// See [`Placement::problems`].
    pub warnings: &'a mut Vec<String>,
}

impl Placement<'_> {
    /// Checks `run_id` (which has records or a head when `stored`, and an
    /// index entry when `indexed`).
    pub fn check(
        &mut self,
        run_id: &str,
        stored: bool,
        indexed: bool,
        pruned: Pruned<'_>,
    ) -> Result<(), JournalError> {
        match pruned {
            Pruned::Yes(t) => {
                if leftover_intact(self.records, self.blobs, run_id, t)? {
                    self.warnings.push(format!(
                        "run {run_id}: pruned by rule `{}`, and what is left of it is exactly as it was: the prune was interrupted; `soar journal prune` finishes it",
                        t.rule
                    ));
                } else {
                    self.problems.push(format!(
                        "run {run_id}: pruned at seq {} (rule `{}`, {}), yet records are here again that are not what it left: resurrected behind the journal's back",
                        t.final_seq, t.rule, t.pruned_at
                    ));
                }
                return Ok(());
            }
            Pruned::Unsigned(t) => self.warnings.push(format!(
                "run {run_id}: a tombstone (rule `{}`, seq {}) that no checkpoint signed (a prune interrupted before it was signed, or one written behind the journal's back): checked as a live run",
                t.rule, t.final_seq
            )),
            Pruned::No => {}
        }
        match (stored, indexed) {
            (true, false) => self.problems.push(format!(
                "run {run_id}: has records but no run-index entry, so listings never show it: written behind the journal's back"
            )),
            (false, true) => self.problems.push(format!(
                "run {run_id}: listed in the run index but has no record and no head: its records were deleted (or a crash fell between indexing it and its first record)"
            )),
            _ => {}
        }
        Ok(())
    }
}

/// Whether what is left of a pruned run is what its prune leaves: none of
/// it, or records that each hash as stored and link where they follow each
/// other (from the genesis at seq 1), the last of them the tombstone's
/// final record. A prune removes the final record last, so any state it is
/// interrupted in passes; records written back do not.
pub(crate) fn leftover_intact(
    records: &sled::Tree,
    blobs: &sled::Tree,
    run_id: &str,
    t: &super::Tombstone,
) -> Result<bool, JournalError> {
    let prefix = store::run_prefix(run_id);
    let mut problems = Vec::new();
    let mut prev: Option<(u64, String)> = None;
    for item in records.scan_prefix(&prefix) {
        let (key, value) = item.map_err(storage)?;
        let Some(seq) = key_seq(&prefix, &key) else {
            return Ok(false);
        };
        let Some(c) = check_record(blobs, seq, &value, &mut problems)? else {
            return Ok(false);
        };
        let linked = match &prev {
            _ if seq == 1 => c.prev_hash == GENESIS_HASH,
            Some((p, hash)) if *p + 1 == seq => c.prev_hash == *hash,
            _ => true, // A gap: the records between were removed.
        };
        if c.seq != seq || !linked || !problems.is_empty() {
            return Ok(false);
        }
        prev = Some((seq, c.hash));
    }
    Ok(prev.is_none_or(|last| last == (t.final_seq, t.final_hash.clone())))
}

/// `(seq, hash)` of the run's last stored record, if it decodes.
pub(crate) fn last_link(
    records: &sled::Tree,
    run_id: &str,
) -> Result<Option<(u64, String)>, JournalError> {
    let prefix = store::run_prefix(run_id);
    Ok(records
        .get_lt(store::record_key(run_id, u64::MAX))
        .map_err(storage)?
        .filter(|(key, _)| key.starts_with(&prefix))
        .and_then(|(_, bytes)| store::decode_link(&bytes).ok())
        .map(|l| (l.seq, l.hash)))
}
