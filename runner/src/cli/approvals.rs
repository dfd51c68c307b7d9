//! `soar approve | deny | pending | resolve | cancel`: the operator commands.
//! Each authenticates an approver by token (never stored, only its hash in
//! the config), journals a refusal as carefully as a decision, and continues
//! the run in this process once there is something to continue.

use super::runs::{continue_runs, engine, host, journal, read_run};
use super::{exit, Exit, Globals};
use crate::approvals::{self, Refusal};
use crate::config::{Approver, Policy};
use crate::journal::{now_unix_millis as now_ms, Event, Journal, Resolution, RunStatus, Vote};
use crate::scheduler::{ItemState, RunState};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Who asks what of which run: the part every operator command shares.
pub struct Operator {
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step: String,
    /// Claimed approver name (`--as`).
    pub who: String,
    /// Their token.
    pub token: TokenSource,
    /// The continued run's report as JSON.
    pub json: bool,
}

/// Where the approver's token comes from.
pub struct TokenSource {
    /// `--token-file`.
    pub file: Option<PathBuf>,
    /// Given directly (the demo's throwaway token).
    pub value: Option<String>,
}

impl TokenSource {
    pub(super) fn read(&self) -> Result<Option<String>, Exit> {
        if let Some(v) = &self.value {
            return Ok(Some(v.clone()));
        }
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path).map(Some).map_err(|e| {
                Exit::invalid(format!(
                    "error: cannot read --token-file {}: {e}",
                    path.display()
                ))
            });
        }
        Ok(std::env::var("SOAR_TOKEN").ok())
    }
}

fn policy(globals: &Globals) -> Result<Policy, Exit> {
    globals
        .config()
        .map(|c| c.policy)
        .map_err(|e| Exit::invalid(format!("error: {e}")))
}

/// Journals the refusal in the run and exits with [`exit::REFUSED`].
async fn refuse(
    journal: &Journal,
    run_id: &str,
    command: &str,
    step: Option<&str>,
    who: &str,
    refusal: Refusal,
) -> Exit {
    // `who` is unauthenticated text: keep it short (a token pasted into
    // `--as` by mistake must not end up whole in the journal).
    let by: String = who.chars().take(32).collect();
    let event = Event::CommandRefused {
        command: command.to_string(),
        step: step.map(str::to_string),
        by,
        reason: refusal.to_string(),
    };
    if let Err(e) = journal.append(run_id, event).await {
        eprintln!("error: could not journal the refusal: {e}");
    }
    Exit {
        code: exit::REFUSED,
        message: Some(format!("refused: {refusal} (journaled)")),
    }
}

/// Common start of every operator command: the run, its state, and the
/// authenticated approver (or a journaled refusal).
async fn authenticated(
    globals: &Globals,
    journal: &Journal,
    run_id: &str,
    command: &str,
    step: Option<&str>,
    who: &str,
    token: &TokenSource,
) -> Result<(Policy, RunState, Approver), Exit> {
    let policy = policy(globals)?;
    let records = read_run(journal, run_id)?;
    let state = RunState::from_records(&records);
    let token = token.read()?;
    match approvals::authenticate(&policy, who, token.as_deref()) {
        Ok(a) => {
            let a = a.clone();
            Ok((policy, state, a))
        }
        Err(r) => Err(refuse(journal, run_id, command, step, who, r).await),
    }
}

/// `soar approve` and `soar deny`.
pub async fn vote(globals: &Globals, op: Operator, vote: Vote, reason: Option<String>) -> Exit {
    let (run_id, step, who, token, json_out) = (
        op.run_id.as_str(),
        op.step.as_str(),
        op.who.as_str(),
        &op.token,
        op.json,
    );
    let command = match vote {
        Vote::Approve => "approve",
        Vote::Deny => "deny",
    };
    if vote == Vote::Deny && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Exit::invalid("error: `soar deny` needs --reason TEXT (it is journaled)");
    }
    let host = match host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let (policy, mut state, approver) =
        match authenticated(globals, &journal, run_id, command, Some(step), who, token).await {
            Ok(v) => v,
            Err(e) => return e,
        };
    let now = now_ms();
    let gate = match approvals::check_vote(&policy, &state, step, &approver, now) {
        Ok(g) => g.clone(),
        Err(refusal) => {
            let expired = matches!(refusal, Refusal::Expired(_));
            let exit = refuse(&journal, run_id, command, Some(step), who, refusal).await;
            if expired {
                // Settle it now: the run continues down its denial path.
                if let Ok(engine) = engine(globals, host, journal, !json_out) {
                    let _ = continue_runs(&engine, vec![run_id.to_string()], true, json_out).await;
                }
            }
            return exit;
        }
    };
    let reason = reason.unwrap_or_default();
    let voted = Event::ApprovalVoted {
        step: step.to_string(),
        by: approver.name.clone(),
        vote,
        reason: reason.clone(),
    };
    if let Err(e) = journal.append(run_id, voted).await {
        return Exit::failed(format!("error: {e}"));
    }
    let Some((decision, by)) = approvals::tally(&gate, &approver.name, vote) else {
        let have = gate.approved_by().len() + 1;
        println!(
            "vote recorded: {have} of {} approval(s) for `{step}`; waiting for more",
            gate.min_approvals
        );
        return Exit {
            code: exit::PAUSED,
            message: None,
        };
    };
    let decided = Event::ApprovalDecided {
        step: step.to_string(),
        decision,
        by: by.clone(),
        reason,
    };
    if let Err(e) = journal.append(run_id, decided).await {
        return Exit::failed(format!("error: {e}"));
    }
    state.paused = None;
    if !json_out {
        println!(
            "approval `{step}` {} by {}; continuing run {run_id}",
            decision.as_str(),
            by.join(", ")
        );
    }
    match engine(globals, host, journal, !json_out) {
        Ok(engine) => continue_runs(&engine, vec![run_id.to_string()], true, json_out).await,
        Err(e) => e,
    }
}

/// Human rendering of one entry of [`RunState::pending_approvals`].
pub fn print_pending(entry: &Value) {
    // Everything here may come from an alert, a connector or a vendor: one
    // field never spans lines or hides what follows it.
    let s = |v: &Value| {
        let text = match v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        crate::inert::line(&text).into_owned()
    };
    println!(
        "approval `{}` of run {} [{}], started by {}",
        s(&entry["step"]),
        s(&entry["run_id"]),
        s(&entry["playbook"]),
        s(&entry["started_by"])
    );
    println!(
        "  needs {} approval(s) from role(s) {}; has {}; asked {}s ago, expires {}{}",
        s(&entry["min_approvals"]),
        s(&entry["approvers"]),
        s(&entry["approved_by"]),
        s(&entry["age_seconds"]),
        s(&entry["expires_at"]),
        if entry["expired"] == json!(true) {
            " (EXPIRED: counts as denied)"
        } else {
            ""
        }
    );
    for field in [
        "summary",
        "why",
        "affected",
        "recommended_action",
        "uncertainties",
    ] {
        let v = &entry["handoff"][field];
        if !(v.is_null() || v == &json!("")) {
            println!("  {field:<19} {}", s(v));
        }
    }
    if let Some(plan) = entry["plan"].as_array() {
        for p in plan {
            let what = if p.get("plan").is_some() {
                s(&p["plan"])
            } else {
                format!("(no plan: {})", s(&p["error"]))
            };
            println!("  plan {:<14} {}", s(&p["step"]), what);
        }
    }
    println!("  approve: {}", s(&entry["approve"]));
    println!("  deny:    {}", s(&entry["deny"]));
}

/// `soar pending`.
pub fn pending(globals: &Globals, json_out: bool) -> Exit {
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let ids = match journal.run_ids() {
        Ok(ids) => ids,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let now = now_ms();
    let mut entries = Vec::new();
    for id in ids {
        match journal.summary(&id) {
            Ok(s) if s.status == RunStatus::WaitingApproval => {}
            Ok(_) => continue,
            Err(e) => {
                eprintln!("warning: run {id}: {e}");
                continue;
            }
        }
        let Ok(records) = journal.read(&id) else {
            continue;
        };
        let state = RunState::from_records(&records);
        entries.extend(state.pending_approvals(&id, now));
    }
    if json_out {
        println!("{}", json!({ "pending": entries }));
    } else if entries.is_empty() {
        println!("no approvals waiting");
    } else {
        for e in &entries {
            print_pending(e);
        }
    }
    Exit::ok()
}

/// `soar resolve`: settles an in-doubt step item.
pub async fn resolve(globals: &Globals, op: Operator, outcome: Resolution, reason: &str) -> Exit {
    let (run_id, step, who, token, json_out) = (
        op.run_id.as_str(),
        op.step.as_str(),
        op.who.as_str(),
        &op.token,
        op.json,
    );
    if reason.trim().is_empty() {
        return Exit::invalid("error: --reason must say what was checked (it is journaled)");
    }
    let host = match host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let (_, state, approver) =
        match authenticated(globals, &journal, run_id, "resolve", Some(step), who, token).await {
            Ok(v) => v,
            Err(e) => return e,
        };
    if let Some(status) = state.final_status {
        let r = Refusal::RunOver(status.to_string());
        return refuse(&journal, run_id, "resolve", Some(step), who, r).await;
    }
    let in_doubt: Vec<(Option<u32>, u32)> = state
        .items
        .iter()
        .filter_map(|((s, item), st)| match st {
            ItemState::InDoubt { attempt } if s == step => Some((*item, *attempt)),
            _ => None,
        })
        .collect();
    if in_doubt.is_empty() {
        let r = Refusal::NotWaiting(format!("step `{step}` is not in doubt"));
        return refuse(&journal, run_id, "resolve", Some(step), who, r).await;
    }
    for (item, attempt) in in_doubt {
        let event = Event::OperatorResolved {
            step: step.to_string(),
            item,
            attempt,
            by: approver.name.clone(),
            outcome,
            reason: reason.to_string(),
        };
        if let Err(e) = journal.append(run_id, event).await {
            return Exit::failed(format!("error: {e}"));
        }
    }
    match engine(globals, host, journal, !json_out) {
        Ok(engine) => continue_runs(&engine, vec![run_id.to_string()], true, json_out).await,
        Err(e) => e,
    }
}

/// `soar cancel`: nothing more starts; the run ends `cancelled`. If another
/// process is driving the run, it is asked to stop (see
/// [`crate::scheduler::cancel`]): its in-flight steps finish and are
/// journaled, then it journals the cancel and ends the run.
pub async fn cancel(
    globals: &Globals,
    run_id: &str,
    who: &str,
    reason: &str,
    token: &TokenSource,
) -> Exit {
    if reason.trim().is_empty() {
        return Exit::invalid("error: `soar cancel` needs --reason TEXT (it is journaled)");
    }
    let journal = match super::runs::journal_within(globals, std::time::Duration::from_secs(2)) {
        Ok(Some(j)) => j,
        Ok(None) => return cancel_running(globals, run_id, who, reason, token),
        Err(e) => return e,
    };
    let (_, state, approver) =
        match authenticated(globals, &journal, run_id, "cancel", None, who, token).await {
            Ok(v) => v,
            Err(e) => return e,
        };
    if let Some(status) = state.final_status {
        return refuse(
            &journal,
            run_id,
            "cancel",
            None,
            who,
            Refusal::RunOver(status.to_string()),
        )
        .await;
    }
    // This process holds the journal, so no executor is driving the run:
    // cancelling and finishing are one step.
    let events = [
        Event::RunCancelled {
            by: approver.name.clone(),
            reason: reason.to_string(),
        },
        Event::RunFinished {
            status: RunStatus::Cancelled,
            outputs: json!({}),
            error: Some(format!("cancelled by {}: {reason}", approver.name)),
        },
    ];
    for e in events {
        if let Err(e) = journal.append(run_id, e).await {
            return Exit::failed(format!("error: {e}"));
        }
    }
    println!("run {run_id} cancelled by {}", approver.name);
    Exit::ok()
}

/// The run is being driven by another process: authenticate from the
/// config alone and leave the request for that process to journal.
fn cancel_running(
    globals: &Globals,
    run_id: &str,
    who: &str,
    reason: &str,
    token: &TokenSource,
) -> Exit {
    let policy = match policy(globals) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let token = match token.read() {
        Ok(t) => t,
        Err(e) => return e,
    };
    let approver = match approvals::authenticate(&policy, who, token.as_deref()) {
        Ok(a) => a,
        Err(r) => {
            return Exit {
                code: exit::REFUSED,
                message: Some(format!(
                    "refused: {r} (not journaled: another process holds the journal)"
                )),
            }
        }
    };
    let journal_dir = globals.data_dir.join("journal");
    match crate::scheduler::cancel::request(&journal_dir, run_id, &approver.name, reason) {
        Ok(()) => {
            println!(
                "cancel of run {run_id} requested by {}: the process driving it starts nothing more, lets in-flight steps finish, and journals the cancel",
                approver.name
            );
            Exit::ok()
        }
        Err(e) => Exit::failed(format!("error: cannot leave the cancel request: {e}")),
    }
}
