//! The journal checked as a whole and one run beyond its own chain: the
//! store walked tree by tree against the run index, the tombstones and the
//! signed checkpoints ([`Journal::verify_signed`]), and the cheap one-run
//! form that `status`, `journal`, `export` and the API use
//! ([`Journal::check_run`], [`Journal::run_report`]).

use super::checkpoint::{self, Tombstone};
use super::store::storage;
use super::verify::{self, Placement, Pruned};
use super::{describe_start, key_id, Journal, JournalError, SignedReport};

/// How a run's tombstones weigh. In a journal with checkpoints to check
/// them by, only a signed tombstone excuses a run's absence (anyone who can
/// write the data dir can add one to the tree); unkeyed, the tree's is all
/// there is.
pub(super) fn judge<'t>(
    signed_journal: bool,
    signed: Option<&'t Tombstone>,
    tree: Option<&'t Tombstone>,
) -> Pruned<'t> {
    match (signed_journal, signed, tree) {
        (true, Some(t), _) => Pruned::Yes(t),
        (true, None, Some(t)) => Pruned::Unsigned(t),
        (false, _, Some(t)) => Pruned::Yes(t),
        _ => Pruned::No,
    }
}

impl Journal {
    /// Checks the journal as a whole against its signed checkpoints: the
    /// chain of checkpoints (numbering, links, key, signature, where trust
    /// started), and every run the store holds, walked tree by tree (not
    /// through the index), against the heads they signed: a deleted,
    /// truncated, rolled-back, re-chained, hidden or resurrected run, or one
    /// no checkpoint covers. A journal with no checkpoint is unkeyed only
    /// when no key is configured either; with keys, or with checkpoints and
    /// no key to check them, it fails.
    pub fn verify_signed(&self) -> Result<SignedReport, JournalError> {
        if let Some(c) = &self.cluster {
            return self.verify_cluster(c);
        }
        self.sign_pending()?;
        let keys = self.inner.keys.verifiers();
        let chain = checkpoint::read_chain(&self.inner.checkpoints, &keys)?;
        let walk = self.walk()?;
        let signed_journal = chain.count > 0 && !keys.is_empty();
        let pruned = |run: &str| {
            judge(
                signed_journal,
                chain.pruned.get(run).map(|(t, _)| t),
                walk.tombstones.get(run),
            )
        };
        let all = || walk.runs.union(&walk.indexed);
        let mut report = SignedReport {
            keyed: chain.count > 0 || !keys.is_empty(),
            checkpoints: chain.count,
            key_ids: chain.key_ids.iter().cloned().collect(),
            trust_start: chain.genesis.as_ref().map(describe_start),
            problems: walk.problems.clone(),
            warnings: Vec::new(),
            cluster: false,
            stored_runs: all()
                .filter(|r| !matches!(pruned(r), Pruned::Yes(_)))
                .cloned()
                .collect(),
        };
        report.problems.extend(self.inner.broken.iter().cloned());
        report.problems.extend(chain.problems.iter().cloned());
        report.problems.extend(self.verify_security()?);
        if chain.count > 0 && keys.is_empty() {
            report.problems.insert(
                0,
                format!(
                    "the journal is signed (key {}) but no public key was given (`journal.public_keys`, or --public-key): it cannot be verified",
                    report.key_ids.join(", ")
                ),
            );
        }
        if chain.count == 0 && !keys.is_empty() && walk.has_history() && self.inner.broken.is_none()
        {
            report.problems.push(checkpoint::no_checkpoint_over(
                (walk.runs.len() + walk.tombstones.len()) as u64,
            ));
        }
        let mut place = Placement {
            records: &self.inner.records,
            blobs: &self.inner.blobs,
            problems: &mut report.problems,
            warnings: &mut report.warnings,
        };
        for run in all() {
            let (stored, indexed) = (walk.runs.contains(run), walk.indexed.contains(run));
            place.check(run, stored, indexed, pruned(run))?;
        }
        let unpruned = walk
            .runs
            .iter()
            .filter(|r| !matches!(pruned(r), Pruned::Yes(_)))
            .cloned()
            .collect();
        self.check_live(&unpruned, &mut report.problems, &mut report.warnings)?;
        pruned_where_signed(&chain, &mut report.problems);
        for (run, a, seq, n) in &chain.accepted {
            report.warnings.push(format!(
                "run {run}: seq {}..={seq} were accepted by {} at checkpoint {n} (no checkpoint had signed them when they were written)",
                a.from_seq, a.by
            ));
        }
        if !signed_journal {
            return Ok(report);
        }
        for (run, points) in &chain.signed {
            if chain.pruned.contains_key(run) {
                continue; // Its leftovers were judged by `place`.
            }
            verify::signed_run(
                &self.inner.records,
                &self.inner.heads,
                run,
                points,
                &mut report.problems,
            )?;
        }
        for run in &walk.runs {
            if !matches!(pruned(run), Pruned::Yes(_)) && !chain.signed.contains_key(run) {
                report.problems.push(format!(
                    "run {run}: no signed checkpoint covers it (inserted behind the journal's back, or all of it written after the last checkpoint by a process that died)"
                ));
            }
        }
        Ok(report)
    }

    /// [`Journal::verify_signed`] on a cluster: unsigned (checkpoints are
    /// not kept there yet), so every run's chain is checked instead, and
    /// this node's security log.
    fn verify_cluster(
        &self,
        c: &super::cluster::ClusterRuns,
    ) -> Result<SignedReport, JournalError> {
        let runs = c.run_ids()?;
        let mut problems = self.verify_security()?;
        let mut warnings = Vec::new();
        let listed: std::collections::BTreeSet<String> = c.listed()?.into_iter().collect();
        for run in &runs {
            problems.extend(c.verify(run)?.problems);
            let standing = c.standing(run)?;
            if standing == super::cluster::Standing::Open && !listed.contains(run) {
                problems.push(format!("run {run}: unfinished but missing from the unfinished-run index (bucket `_live`): no node would take it over or resume it (removed behind the journal's back?)"));
            }
        }
        for run in &listed {
            match c.standing(run)? {
                super::cluster::Standing::Finished => warnings.push(format!(
                    "run {run}: finished but still in the unfinished-run index (a node died between its end and the index update); the next listing drops it"
                )),
                super::cluster::Standing::Absent => warnings.push(format!(
                    "run {run}: in the unfinished-run index with no record (a start a crash cut short)"
                )),
                super::cluster::Standing::Open => {}
            }
        }
        Ok(SignedReport {
            keyed: false,
            checkpoints: 0,
            key_ids: Vec::new(),
            trust_start: None,
            problems,
            warnings,
            cluster: true,
            stored_runs: runs,
        })
    }

    /// The store walked tree by tree ([`verify::walk`]).
    pub(super) fn walk(&self) -> Result<verify::StoreWalk, JournalError> {
        verify::walk(
            &self.inner.records,
            &self.inner.heads,
            &self.inner.runs,
            &self.inner.tombstones,
        )
    }

    /// Every run id the store holds records, a head or an index entry for
    /// and that was not pruned, found by walking the trees rather than the
    /// index (what `verify --all` checks the chain of), sorted.
    pub fn stored_run_ids(&self) -> Result<Vec<String>, JournalError> {
        Ok(self.verify_signed()?.stored_runs)
    }

    /// Every problem with one run: its chain, its place in the store (in
    /// the index, not pruned), and in a keyed journal the checkpoints that
    /// name it. Empty when it is intact. What `status`, `journal` and
    /// `export` check before they show or vouch for a run.
    pub fn check_run(&self, run_id: &str) -> Result<Vec<String>, JournalError> {
        let mut problems = self.verify(run_id)?.problems;
        problems.extend(self.run_standing(run_id)?.0);
        Ok(problems)
    }

    /// [`Journal::verify_signed`] for one run, without reading the whole
    /// journal: the run's place in the store and the checkpoints that name
    /// it (its own chain is [`Journal::verify`]'s), with where trust starts.
    /// What the API answers for `journal verify RUN`, `status` and
    /// `journal RUN` through a server.
    pub fn run_report(&self, run_id: &str) -> Result<SignedReport, JournalError> {
        let keys = self.inner.keys.verifiers();
        let checkpoints = self.inner.checkpoints.len() as u64;
        let genesis = self.checkpoint(1)?.map(|cp| (cp.hash(), cp.at, cp.start));
        let (problems, warnings) = self.run_standing(run_id)?;
        Ok(SignedReport {
            keyed: checkpoints > 0 || !keys.is_empty(),
            checkpoints,
            key_ids: keys.iter().map(key_id).collect(),
            trust_start: genesis.as_ref().map(describe_start),
            problems,
            warnings,
            cluster: self.cluster.is_some(),
            stored_runs: Vec::new(),
        })
    }

    /// One run's problems and warnings beyond its own chain (see
    /// [`Journal::check_run`]).
    fn run_standing(&self, run_id: &str) -> Result<(Vec<String>, Vec<String>), JournalError> {
        if self.cluster.is_some() {
            // Unsigned, and not pruned: the run's chain is all there is.
            return Ok((Vec::new(), Vec::new()));
        }
        let mut problems: Vec<String> = self.inner.broken.iter().cloned().collect();
        let mut warnings = Vec::new();
        let stored = verify::last_link(&self.inner.records, run_id)?.is_some()
            || self
                .inner
                .heads
                .contains_key(run_id.as_bytes())
                .map_err(storage)?;
        let indexed = self.index_has(run_id)?;
        let keys = self.inner.keys.verifiers();
        self.sign_pending()?;
        let signed = checkpoint::read_run(&self.inner.checkpoints, run_id, &keys)?;
        problems.extend(signed.problems.iter().cloned());
        let tree = match self.tombstone(run_id) {
            Ok(t) => t,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let signed_journal = !keys.is_empty() && !self.inner.checkpoints.is_empty();
        let pruned = judge(signed_journal, signed.pruned.as_ref(), tree.as_ref());
        Placement {
            records: &self.inner.records,
            blobs: &self.inner.blobs,
            problems: &mut problems,
            warnings: &mut warnings,
        }
        .check(run_id, stored, indexed, pruned)?;
        if matches!(pruned, Pruned::Yes(_)) || keys.is_empty() {
            return Ok((problems, warnings));
        }
        if signed.points.is_empty() {
            problems.push(format!(
                "run {run_id}: no signed checkpoint covers it (inserted behind the journal's back, or written after the last checkpoint by a process that died)"
            ));
        } else {
            verify::signed_run(
                &self.inner.records,
                &self.inner.heads,
                run_id,
                &signed.points,
                &mut problems,
            )?;
        }
        Ok((problems, warnings))
    }

    /// Whether the run index lists `run_id` (a scan: the index is keyed by
    /// creation order).
    fn index_has(&self, run_id: &str) -> Result<bool, JournalError> {
        for value in self.inner.runs.iter().values() {
            if value.map_err(storage)?.as_ref() == run_id.as_bytes() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A signed pruning must be of the head last signed for that run.
fn pruned_where_signed(chain: &checkpoint::Chain, problems: &mut Vec<String>) {
    for (run, (t, n)) in &chain.pruned {
        let signed_end = chain.signed.get(run).and_then(|p| p.last());
        if signed_end.is_some_and(|(seq, hash, _)| (*seq, hash) != (t.final_seq, &t.final_hash)) {
            problems.push(format!(
                "run {run}: checkpoint {n} signed its pruning at seq {}, but its last signed head is another",
                t.final_seq
            ));
        }
    }
}
