//! Retention's removal of finished runs, checked before anything goes. A
//! pass reads the checkpoints once; each run must be finished, its chain
//! intact and, in a keyed journal, its final record the one a valid
//! checkpoint signed. Its tombstone is written and **signed and flushed
//! before** any of its records is removed, so a crash leaves a signed
//! tombstone and what is left of the run exactly as it was (which the next
//! pass finishes), never a run gone with nothing signed to say why.

use super::checkpoint::{self, Tombstone};
use super::store::{self, storage};
use super::verify::leftover_intact;
use super::{known_shape, summarize, time, Event, Journal, JournalError};
use std::collections::{BTreeMap, HashMap};

/// What a prune pass reads once: in a keyed journal, each run's last
/// signed head and every signed tombstone (`None`: unkeyed).
struct Signed {
    ends: HashMap<String, (u64, String)>,
    pruned: BTreeMap<String, Tombstone>,
}

/// Per run id, the `(tree, key)` of its run-index entry and dedup claims.
type Pointers = HashMap<Vec<u8>, Vec<(sled::Tree, sled::IVec)>>;

impl Journal {
    /// Removes a finished run (records, head, index, dedup claims) and
    /// leaves a tombstone: its final head, when and by which `rule`, signed
    /// by a checkpoint before anything is removed, so verification tells
    /// pruning from deletion. Refused (nothing removed) for a run that is
    /// not finished, whose chain fails verification, or, in a keyed
    /// journal, whose final record no valid checkpoint signed (a forged
    /// end). Blobs are shared by content and stay.
    pub fn prune(&self, run_id: &str, rule: &str) -> Result<Tombstone, JournalError> {
        self.prune_many(&[(run_id.to_string(), rule.to_string())])
            .pop()
            .unwrap_or_else(|| Err(JournalError::UnknownRun(run_id.to_string())))
    }

    /// [`Journal::prune`] for many runs, reading and checking the chain of
    /// checkpoints once: if it fails verification, nothing is pruned.
    pub fn prune_many(&self, runs: &[(String, String)]) -> Vec<Result<Tombstone, JournalError>> {
        if runs.is_empty() {
            return Vec::new();
        }
        if let Err(e) = self.local_only("retention (pruning runs)") {
            let why = e.to_string();
            return runs
                .iter()
                .map(|_| Err(JournalError::Refused(why.clone())))
                .collect();
        }
        let refuse_all = |e: JournalError| {
            let why = e.to_string();
            runs.iter()
                .map(|_| Err(JournalError::Refused(why.clone())))
                .collect()
        };
        let (signed, pointers) = match self.signed().and_then(|s| Ok((s, self.pointers()?))) {
            Ok(both) => both,
            Err(e) => return refuse_all(e),
        };
        if signed.is_some() && self.inner.checkpointer.is_none() {
            // An unsigned tombstone excuses nothing: each run would read as
            // deleted.
            return refuse_all(JournalError::Refused(
                "pruning a keyed journal signs each tombstone: it needs journal.signing_key".into(),
            ));
        }
        // 1. Check each run and write its tombstone.
        let mut out: Vec<Result<Tombstone, JournalError>> = runs
            .iter()
            .map(|(run, rule)| {
                known_shape(run)?;
                self.with_run_lock(run, || self.tombstone_for(run, rule, signed.as_ref()))
            })
            .collect();
        // 2. Every tombstone signed and durable before a record goes.
        if let Err(e) = self.sync() {
            return refuse_all(JournalError::Storage(format!(
                "the tombstones could not be signed and flushed, so nothing was removed: {e}"
            )));
        }
        // 3. Remove what was checked, if it is still what was checked.
        for ((run, _), result) in runs.iter().zip(out.iter_mut()) {
            if let Ok(t) = result {
                let removed = self.with_run_lock(run, || self.remove_as_checked(run, t, &pointers));
                if let Err(e) = removed {
                    *result = Err(e);
                }
            }
        }
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "prune: the final flush failed");
        }
        out
    }

    /// Runs that a prune a crash interrupted left behind, with their
    /// tombstone (signed, in a keyed journal): the next pass finishes them.
    pub fn interrupted_prunes(&self) -> Result<Vec<(String, Tombstone)>, JournalError> {
        if self.cluster.is_some() {
            return Ok(Vec::new()); // Nothing is pruned there.
        }
        let walk = self.walk()?;
        let signed = self.signed()?;
        let excusing = |run: &String| match &signed {
            Some(s) => s.pruned.get(run),
            None => walk.tombstones.get(run),
        };
        Ok(walk
            .runs
            .union(&walk.indexed)
            .filter_map(|run| excusing(run).map(|t| (run.clone(), t.clone())))
            .collect())
    }

    /// In a keyed journal, what the checkpoints signed (`None`: unkeyed).
    /// An error when trust is broken or the chain of checkpoints fails.
    fn signed(&self) -> Result<Option<Signed>, JournalError> {
        if let Some(why) = &self.inner.broken {
            return Err(JournalError::Refused(why.clone()));
        }
        let keys = self.inner.keys.verifiers();
        if keys.is_empty() {
            return Ok(None);
        }
        self.sign_pending()?;
        let chain = checkpoint::read_chain(&self.inner.checkpoints, &keys)?;
        if let Some(p) = chain.problems.first() {
            return Err(JournalError::Refused(format!(
                "the journal's checkpoints fail verification ({p}): nothing is pruned until `soar journal verify --all` passes"
            )));
        }
        if chain.count == 0 {
            return Err(JournalError::Refused(
                "the journal has keys but no checkpoint: nothing is pruned until it is adopted"
                    .into(),
            ));
        }
        let ends = chain
            .signed
            .into_iter()
            .filter_map(|(run, mut points)| points.pop().map(|(seq, hash, _)| (run, (seq, hash))))
            .collect();
        let pruned = chain
            .pruned
            .into_iter()
            .map(|(run, (t, _))| (run, t))
            .collect();
        Ok(Some(Signed { ends, pruned }))
    }

    /// The run's tombstone: the one already signed (or, unkeyed, written)
    /// if a prune was interrupted and what it left is as it left it;
    /// otherwise, once every check passes, a new one, written to the tree
    /// and noted for the next checkpoint.
    fn tombstone_for(
        &self,
        run_id: &str,
        rule: &str,
        signed: Option<&Signed>,
    ) -> Result<Tombstone, JournalError> {
        let earlier = match signed {
            Some(s) => s.pruned.get(run_id).cloned(),
            None => self.tombstone(run_id)?,
        };
        if let Some(t) = earlier {
            return self.as_left(run_id, t);
        }
        let tombstone = self.checked_end(run_id, rule, signed)?;
        let bytes =
            serde_json::to_vec(&tombstone).map_err(|e| JournalError::Encode(e.to_string()))?;
        self.inner
            .tombstones
            .insert(run_id.as_bytes(), bytes)
            .map_err(storage)?;
        if let Some(cp) = &self.inner.checkpointer {
            cp.note_pruned(run_id, tombstone.clone());
        }
        Ok(tombstone)
    }

    /// The tombstone of a run that passes every check before pruning.
    fn checked_end(
        &self,
        run_id: &str,
        rule: &str,
        signed: Option<&Signed>,
    ) -> Result<Tombstone, JournalError> {
        let records = self.read_records(run_id, false)?;
        let summary = summarize(run_id, &records)?;
        let last = records
            .last()
            .ok_or_else(|| JournalError::UnknownRun(run_id.into()))?;
        // A refusal journaled after the end (a late click) does not keep a
        // finished run forever.
        let finished = records
            .iter()
            .any(|r| matches!(r.event, Event::RunFinished { .. }));
        if !summary.status.is_final() || !finished {
            return Err(JournalError::Encode(format!(
                "run `{run_id}` is {}: only finished runs are pruned",
                summary.status
            )));
        }
        if let Some(p) = self.verify(run_id)?.problems.first() {
            return Err(JournalError::Refused(format!(
                "run `{run_id}` fails verification ({p}): pruning it would destroy the evidence"
            )));
        }
        if let Some(s) = signed {
            if s.ends.get(run_id) != Some(&(last.seq, last.hash.clone())) {
                return Err(JournalError::Refused(format!(
                    "run `{run_id}`: its final record (seq {}) is not the one a signed checkpoint covers: an end appended behind the journal's back is never pruned on",
                    last.seq
                )));
            }
        }
        Ok(Tombstone {
            playbook: summary.playbook,
            status: summary.status.to_string(),
            final_seq: last.seq,
            final_hash: last.hash.clone(),
            ended_at: last.at.clone(),
            pruned_at: time::now(),
            rule: rule.to_string(),
        })
    }

    /// `t` again if what is left of the run is exactly what a prune leaves;
    /// anything else is a resurrection, kept as evidence.
    fn as_left(&self, run_id: &str, t: Tombstone) -> Result<Tombstone, JournalError> {
        if leftover_intact(&self.inner.records, &self.inner.blobs, run_id, &t)? {
            return Ok(t);
        }
        Err(JournalError::Refused(format!(
            "run `{run_id}` was pruned at seq {}, yet records are here that are not what it left: resurrected behind the journal's back; kept as evidence",
            t.final_seq
        )))
    }

    /// Removes the run if it still ends where `t` says: it was checked
    /// whole a moment ago, and only this process can write the journal, so
    /// its last record tells whether anything was appended since.
    fn remove_as_checked(
        &self,
        run_id: &str,
        t: &Tombstone,
        pointers: &Pointers,
    ) -> Result<(), JournalError> {
        let last = super::verify::last_link(&self.inner.records, run_id)?;
        if last.is_some_and(|l| l != (t.final_seq, t.final_hash.clone())) {
            return Err(JournalError::Refused(format!(
                "run `{run_id}` changed while it was being pruned: kept"
            )));
        }
        self.remove_run(run_id, pointers)
    }

    /// Which keys of the run index and of the dedup claims name each run:
    /// both are keyed by something else (creation order, dedup key), so one
    /// pass over each serves a whole prune instead of one pass per run.
    fn pointers(&self) -> Result<Pointers, JournalError> {
        let mut out = Pointers::new();
        for tree in [&self.inner.runs, &self.inner.dedup] {
            for item in tree.iter() {
                let (k, v) = item.map_err(storage)?;
                out.entry(v.to_vec()).or_default().push((tree.clone(), k));
            }
        }
        Ok(out)
    }

    /// Removes a run's head, index entry, dedup claims and records, the
    /// last record last, so what a crash leaves still ends where the
    /// tombstone says.
    fn remove_run(&self, run_id: &str, pointers: &Pointers) -> Result<(), JournalError> {
        let keys: Vec<sled::IVec> = self
            .inner
            .records
            .scan_prefix(store::run_prefix(run_id))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        self.inner
            .heads
            .remove(run_id.as_bytes())
            .map_err(storage)?;
        for (tree, key) in pointers.get(run_id.as_bytes()).into_iter().flatten() {
            tree.remove(key).map_err(storage)?;
        }
        // What its state steps wrote stays; the memory of which of its
        // operations were applied (for resumes) goes with the run.
        self.state()
            .forget_run(run_id)
            .map_err(|e| JournalError::Storage(e.to_string()))?;
        self.forget_derived(run_id)?;
        for key in keys.iter().rev().skip(1).chain(keys.last()) {
            self.inner.records.remove(key).map_err(storage)?;
        }
        self.forget_tail(run_id);
        Ok(())
    }

    /// The run's tombstone in the tree, if it has one.
    pub(super) fn tombstone(&self, run_id: &str) -> Result<Option<Tombstone>, JournalError> {
        match self
            .inner
            .tombstones
            .get(run_id.as_bytes())
            .map_err(storage)?
        {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| JournalError::Corrupt {
                    run_id: run_id.to_string(),
                    seq: 0,
                    reason: format!("unreadable tombstone: {e}"),
                }),
            None => Ok(None),
        }
    }
}
