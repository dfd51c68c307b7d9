//! One case through the real engine: a journal of its own in a temp dir,
//! the config's policy (approvers, protected assets, blast radius), real
//! templates and guard, the canned answers in place of the connectors, and
//! the case's approvals given as the run asks for them.

use super::canned::{Call, Canned, Switch};
use super::case::{Approval, Case};
use super::check::{self, Mismatch};
use crate::config::Policy;
use crate::journal::{Durability, Journal, Vote};
use crate::operations::{self, OpError};
use crate::playbook::Playbook;
use crate::plugin_host::PluginHost;
use crate::scheduler::{Begun, Engine, NewRun, RunReport};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// What one case came to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// `PLAYBOOK::CASE`.
    pub name: String,
    /// Passed: no mismatch and no problem.
    pub passed: bool,
    /// Differences from the expectations.
    pub mismatches: Vec<Mismatch>,
    /// Why the case could not be run as written (bad alert, an approval the
    /// run never asked for, a call without an answer...).
    pub problems: Vec<String>,
    /// The run as it ended.
    pub status: Option<String>,
    /// Its id in the case's journal.
    pub run_id: Option<String>,
    /// Wall time, milliseconds.
    pub millis: u64,
}

/// Everything the cases of one playbook share.
pub struct Bench<'a> {
    /// The host with the switch's answers.
    pub host: Arc<PluginHost>,
    /// Routes the host's calls to the running case.
    pub switch: Arc<Switch>,
    /// The config's policy.
    pub policy: &'a Policy,
    /// The playbook under test.
    pub playbook: Arc<Playbook>,
}

/// Runs `case` (its alert already read) and checks it.
pub async fn run_case(bench: &Bench<'_>, case: &Case, alert: Value) -> CaseResult {
    let started = std::time::Instant::now();
    let name = format!("{}::{}", bench.playbook.name, case.name);
    let gates = bench
        .playbook
        .steps
        .iter()
        .filter(|s| s.approval.is_some())
        .map(|s| s.id.clone())
        .collect();
    let canned = Arc::new(Canned::new(case, gates));
    bench.switch.set(canned.clone());
    let mut problems = Vec::new();
    let outcome = drive(bench, case, alert, &mut problems).await;
    let calls: Vec<Call> = canned.calls();
    for what in canned.unanswered() {
        problems.push(format!(
            "no canned answer for {what}: add one under `answers`"
        ));
    }
    let (mismatches, status, run_id) = match outcome {
        Some(report) => (
            check::compare(&case.expect, &report, &calls),
            Some(report.status.to_string()),
            Some(report.run_id.clone()),
        ),
        None => (Vec::new(), None, None),
    };
    CaseResult {
        name,
        passed: mismatches.is_empty() && problems.is_empty(),
        mismatches,
        problems,
        status,
        run_id,
        millis: started.elapsed().as_millis() as u64,
    }
}

/// Starts the run and gives the approvals as it waits; its last report.
async fn drive(
    bench: &Bench<'_>,
    case: &Case,
    alert: Value,
    problems: &mut Vec<String>,
) -> Option<RunReport> {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("cannot make a temp dir: {e}"));
            return None;
        }
    };
    let journal = match Journal::open(&dir.path().join("journal"), Durability::Process) {
        Ok(j) => j,
        Err(e) => {
            problems.push(format!("cannot open a journal: {e}"));
            return None;
        }
    };
    if let Err(e) = seed_state(bench, &journal, case) {
        problems.push(e);
        return None;
    }
    let engine = Engine::new(bench.host.clone(), journal.clone())
        .with_policy(bench.policy.clone())
        .with_instant_retries();
    let pb = bench.playbook.clone();
    let mut report = match engine.start(pb.clone(), alert, &case.started_by).await {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("the run did not start: {e}"));
            return None;
        }
    };
    for (n, alert) in case.grouped_alerts.iter().enumerate() {
        let later = NewRun::manual(alert.clone(), &case.started_by);
        match engine.begin(pb.clone(), later).await {
            Ok(Begun::Existing(r)) if r.grouped && r.run_id == report.run_id => {}
            Ok(Begun::Existing(r)) => problems.push(format!(
                "grouped_alerts[{n}] did not join the run: it matched run {} as a repeat",
                r.run_id
            )),
            Ok(Begun::New { run_id, .. }) => problems.push(format!(
                "grouped_alerts[{n}] did not join the run: it started run {run_id} (does the playbook have `group:`, and does the alert give the same key?)"
            )),
            Err(e) => problems.push(format!("grouped_alerts[{n}]: {e}")),
        }
    }
    for approval in &case.approvals {
        if report.status.is_final() {
            problems.push(format!(
                "approval of `{}` given, but the run had ended ({})",
                approval.step, report.status
            ));
            break;
        }
        let asked = report
            .pending_approvals
            .iter()
            .any(|p| p["step"] == approval.step.as_str());
        if !asked {
            problems.push(format!(
                "approval of `{}` given, but the run is not waiting for it (status {})",
                approval.step, report.status
            ));
            continue;
        }
        match decide(&journal, bench.policy, &report.run_id, approval).await {
            Ok(true) => match engine.resume(&report.run_id, pb.clone()).await {
                Ok(r) => report = r,
                Err(e) => {
                    problems.push(format!("the run did not continue: {e}"));
                    break;
                }
            },
            Ok(false) => {}
            Err(p) => problems.push(p),
        }
    }
    Some(report)
}

/// Gives one approval; `Ok(true)` when the gate is now decided.
async fn decide(
    journal: &Journal,
    policy: &Policy,
    run_id: &str,
    approval: &Approval,
) -> Result<bool, String> {
    let step = &approval.step;
    if approval.expires {
        return operations::expire_gates(journal, run_id, u64::MAX)
            .await
            .map(|n| n > 0)
            .map_err(|e| format!("expiring `{step}`: {e}"));
    }
    let by = approval.by.as_deref().unwrap_or_default();
    let who = crate::names::normalise(by)
        .ok()
        .and_then(|n| policy.approvers.get(&n))
        .ok_or_else(|| format!("approval of `{step}`: `{by}` is not a principal of the config"))?;
    let vote = match approval.vote.as_deref() {
        Some("approve") => Vote::Approve,
        Some("deny") => Vote::Deny,
        other => {
            return Err(format!(
                "approval of `{step}`: `vote` must be `approve` or `deny`, got {other:?}"
            ))
        }
    };
    let reason = if approval.reason.is_empty() && vote == Vote::Deny {
        "denied in a soar test case"
    } else {
        &approval.reason
    };
    let result = operations::vote(journal, policy, run_id, step, who, vote, reason).await;
    match (result, &approval.refused) {
        (Ok(operations::VoteResult::Decided { .. }), None) => Ok(true),
        (Ok(operations::VoteResult::Recorded { .. }), None) => Ok(false),
        (Ok(_), Some(kind)) => Err(format!(
            "the vote of `{by}` on `{step}` was counted, but the case expects it refused ({kind})"
        )),
        (Err(OpError::Refused(r)), Some(kind)) if r.kind() == kind => Ok(false),
        (Err(e), _) => Err(format!("the vote of `{by}` on `{step}` failed: {e}")),
    }
}

/// Reads a case's alert: inline, or the file relative to `base`.
pub fn alert_of(case: &Case, base: &Path) -> Result<Value, String> {
    if let Some(alert) = &case.alert {
        return Ok(alert.clone());
    }
    let path = base.join(case.alert_file.as_deref().unwrap_or(Path::new("")));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("alert file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("alert file {}: {e}", path.display()))
}

/// Puts the case's `state:` in the run's tables before it starts; a table
/// the config does not declare, or a value its schema refuses, is the
/// case's error.
fn seed_state(bench: &Bench<'_>, journal: &Journal, case: &Case) -> Result<(), String> {
    let store = journal.state();
    let tables = bench.host.tables();
    let actor = crate::state::Actor {
        by: "soar-test",
        now_ms: crate::journal::now_unix_millis(),
        op_key: None,
        reason: Some("the test case's state"),
    };
    for (table, entries) in &case.state {
        let spec = tables.get(table).ok_or_else(|| {
            format!("`state.{table}`: the config declares no such table in `state.tables`")
        })?;
        for (key, value) in entries {
            let at = format!("`state.{table}.{key}`");
            spec.check_value(value).map_err(|e| format!("{at}: {e}"))?;
            store
                .put(table, key, value.clone(), None, &actor)
                .map_err(|e| format!("{at}: {e}"))?;
        }
    }
    Ok(())
}
