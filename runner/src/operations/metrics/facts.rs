//! What one run contributes to the figures, read from its records once.
//! A finished run's facts never change, so `cache.rs` keeps them beside
//! the journal; they hold every enrichment time so any `enriched_steps`
//! can be answered from them.

use crate::journal::{parse_unix_millis, Decision, Event, Record, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Longest closure reason kept (a playbook's output, so outside input).
pub(super) const MAX_REASON_LEN: usize = 64;
/// Most enrichment steps a query may ask for (`enriched_steps`), and so
/// the most enrichment times a run's facts keep.
pub const MAX_ENRICHED_STEPS: usize = 100;

/// What one run contributes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RunFacts {
    pub playbook: String,
    pub source: String,
    pub started_ms: u64,
    /// When each enrichment (vendor) step succeeded, in ms after the
    /// start, in order; at most [`MAX_ENRICHED_STEPS`].
    pub enriched_ms: Vec<u64>,
    /// (requested, decided, decision) per gate.
    pub gates: Vec<(u64, Option<(u64, Decision)>)>,
    pub human: bool,
    pub repeats: u64,
    pub status: Option<RunStatus>,
    pub closure: Option<String>,
    pub authorized: BTreeMap<String, bool>,
    pub blocked: u64,
}

impl RunFacts {
    /// When the run counted as enriched: its `n`-th enrichment step's
    /// success.
    pub fn enriched_after(&self, n: usize) -> Option<u64> {
        self.enriched_ms.get(n.max(1) - 1).copied()
    }

    /// Whether these facts can no longer change (the run ended for good).
    pub fn is_final(&self) -> bool {
        self.status.is_some_and(RunStatus::is_final)
    }
}

/// The closure reason of a finished run: its `closure` or `outcome` output
/// when the playbook gives one, else what its status says.
pub fn closure(status: RunStatus, outputs: &Value) -> String {
    let given = ["closure", "outcome"]
        .iter()
        .filter_map(|k| outputs[*k].as_str())
        .map(str::trim)
        .find(|s| !s.is_empty());
    match given {
        Some(s) => s.chars().take(MAX_REASON_LEN).collect(),
        None => match status {
            RunStatus::Succeeded => "closed".into(),
            other => other.as_str().into(),
        },
    }
}

/// The facts of one run, or `None` when it has no start record.
pub(super) fn facts(records: &[Record]) -> Option<RunFacts> {
    let at = |r: &Record| parse_unix_millis(&r.at).unwrap_or(0);
    let mut f = RunFacts::default();
    let mut vendor_steps: BTreeMap<String, bool> = BTreeMap::new();
    let mut gate_ix: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        match &r.event {
            Event::RunStarted {
                playbook,
                started_by,
                ..
            } => {
                f.playbook = playbook.clone();
                f.source = started_by.clone();
                f.started_ms = at(r);
            }
            Event::AlertMerged { .. } | Event::AlertGrouped { .. } => f.repeats += 1,
            Event::AttemptStarted {
                step,
                plugin,
                dry_run: false,
                ..
            } if plugin != "state" => {
                vendor_steps.entry(step.clone()).or_insert(true);
            }
            Event::ActionAuthorized { step, .. } => {
                vendor_steps.insert(step.clone(), false);
                f.authorized.insert(step.clone(), false);
            }
            Event::ApprovalRequested { step, .. } => {
                gate_ix.insert(step.clone(), f.gates.len());
                f.gates.push((at(r), None));
            }
            Event::ApprovalDecided { step, decision, .. } => {
                if let Some(g) = gate_ix.get(step).and_then(|i| f.gates.get_mut(*i)) {
                    g.1.get_or_insert((at(r), *decision));
                }
            }
            Event::ApprovalVoted { .. }
            | Event::OperatorResolved { .. }
            | Event::RunCancelled { .. } => f.human = true,
            Event::StepFinished { step, status, .. } => {
                if status == "succeeded"
                    && vendor_steps.get(step) == Some(&true)
                    && f.enriched_ms.len() < MAX_ENRICHED_STEPS
                {
                    f.enriched_ms.push(at(r).saturating_sub(f.started_ms));
                }
                if let Some(ok) = f.authorized.get_mut(step) {
                    *ok = status == "succeeded";
                }
                if status == "blocked" {
                    f.blocked += 1;
                }
            }
            Event::RunPaused { status, .. } => f.status = Some(*status),
            Event::RunFinished {
                status, outputs, ..
            } => {
                f.status = Some(*status);
                f.closure = Some(closure(*status, outputs));
            }
            _ => {}
        }
    }
    (!f.playbook.is_empty()).then_some(f)
}
