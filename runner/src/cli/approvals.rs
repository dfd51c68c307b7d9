//! `soar approve | deny | pending | resolve | cancel`: the operator commands.
//! Each authenticates an approver by token (never stored, only its hash in
//! the config), journals a refusal as carefully as a decision, and continues
//! the run in this process once there is something to continue.

use super::runs::{continue_runs, engine, host, journal, op_exit, read_run};
use super::{exit, Exit, Globals};
use crate::approvals::{self, Refusal};
use crate::config::{Approver, Policy};
use crate::journal::{now_unix_millis as now_ms, Journal, Resolution, Vote};
use crate::operations::{self as ops, OpError, VoteResult};
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

/// The authenticated principal of an operator command, or the refusal,
/// journaled in the run (which must exist).
async fn authenticated(
    globals: &Globals,
    journal: &Journal,
    run_id: &str,
    command: &str,
    step: Option<&str>,
    who: &str,
    token: &TokenSource,
) -> Result<(Policy, Approver), Exit> {
    let policy = policy(globals)?;
    read_run(journal, run_id)?;
    let token = token.read()?;
    match approvals::authenticate(&policy, who, token.as_deref()) {
        Ok(a) => {
            let a = a.clone();
            Ok((policy, a))
        }
        Err(r) => {
            // A token typed as the name must reach neither the journal
            // nor the SIEM, nor be echoed back.
            let recorded = ops::recordable_name(&policy, who);
            let r = ops::recordable_refusal(r, &recorded);
            Err(op_exit(
                ops::refuse(journal, run_id, command, step, &recorded, r).await,
            ))
        }
    }
}

/// `soar approve` and `soar deny`.
pub async fn vote(globals: &Globals, op: Operator, vote: Vote, reason: Option<String>) -> Exit {
    let (run_id, step, json_out) = (op.run_id.as_str(), op.step.as_str(), op.json);
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
    let (policy, approver) = match authenticated(
        globals,
        &journal,
        run_id,
        command,
        Some(step),
        &op.who,
        &op.token,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return e,
    };
    let reason = reason.unwrap_or_default();
    match ops::vote(&journal, &policy, run_id, step, &approver, vote, &reason).await {
        Ok(VoteResult::Recorded { have, need }) => {
            println!("vote recorded: {have} of {need} approval(s) for `{step}`; waiting for more");
            Exit {
                code: exit::PAUSED,
                message: None,
            }
        }
        Ok(VoteResult::Decided { decision, by }) => {
            if !json_out {
                println!(
                    "approval `{step}` {} by {}; continuing run {run_id}",
                    decision.as_str(),
                    by.join(", ")
                );
            }
            match engine(globals, host, journal, !json_out) {
                Ok(engine) => {
                    continue_runs(&engine, vec![run_id.to_string()], true, json_out).await
                }
                Err(e) => e,
            }
        }
        Err(e @ OpError::Refused(Refusal::Expired(_))) => {
            // Settle it now: the run continues down its denial path.
            if let Ok(engine) = engine(globals, host, journal, !json_out) {
                let _ = continue_runs(&engine, vec![run_id.to_string()], true, json_out).await;
            }
            op_exit(e)
        }
        Err(e) => op_exit(e),
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
    if entry.get("console").is_some() {
        println!("  console: {}", s(&entry["console"]));
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
    // The console link needs the server's address from the config, if any.
    let public_url = globals.config().ok().and_then(|c| c.server.public_url);
    let entries = match ops::pending(&journal, now_ms(), public_url.as_deref()) {
        Ok(e) => e,
        Err(e) => return op_exit(e),
    };
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
    let (run_id, step, json_out) = (op.run_id.as_str(), op.step.as_str(), op.json);
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
    let (_, approver) = match authenticated(
        globals,
        &journal,
        run_id,
        "resolve",
        Some(step),
        &op.who,
        &op.token,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return e,
    };
    if let Err(e) = ops::resolve(&journal, run_id, step, &approver, outcome, reason).await {
        return op_exit(e);
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
    let (_, approver) =
        match authenticated(globals, &journal, run_id, "cancel", None, who, token).await {
            Ok(v) => v,
            Err(e) => return e,
        };
    match ops::cancel(&journal, run_id, &approver, reason).await {
        Ok(()) => {
            println!("run {run_id} cancelled by {}", approver.name);
            Exit::ok()
        }
        Err(e) => op_exit(e),
    }
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
    let not_journaled = |r: Refusal| Exit {
        code: exit::REFUSED,
        message: Some(format!(
            "refused: {r} (not journaled: another process holds the journal)"
        )),
    };
    let approver = match approvals::authenticate(&policy, who, token.as_deref()) {
        Ok(a) => a,
        Err(r) => return not_journaled(r),
    };
    let journal_dir = globals.data_dir.join("journal");
    match ops::request_cancel(&journal_dir, run_id, approver, reason) {
        Ok(()) => {
            println!(
                "cancel of run {run_id} requested by {}: the process driving it starts nothing more, lets in-flight steps finish, and journals the cancel",
                approver.name
            );
            Exit::ok()
        }
        Err(OpError::Refused(r)) => not_journaled(r),
        Err(e) => op_exit(e),
    }
}
