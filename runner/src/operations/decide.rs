//! Decisions on a run: votes on an approval gate, resolving an in-doubt
//! step, cancelling. The caller is an authenticated principal; every
//! refusal is journaled before it is returned.

use super::{read_run, refuse, OpError};
use crate::approvals::{self, Refusal};
use crate::config::{roles, Approver, Policy};
use crate::journal::{now_unix_millis, Decision, Event, Journal, Resolution, RunStatus, Vote};
use crate::scheduler::{ItemState, RunState};
use serde_json::json;

/// What a counted vote came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteResult {
    /// Counted; the gate needs more approvals.
    Recorded {
        /// Approvals so far, this one included.
        have: usize,
        /// Approvals the gate needs.
        need: u32,
    },
    /// The gate is decided: the run can continue.
    Decided {
        /// Granted or denied.
        decision: Decision,
        /// Who decided.
        by: Vec<String>,
    },
}

/// Counts `who`'s vote on gate `step` of `run_id` and journals the decision
/// once it is reached. An expired gate is refused with
/// [`Refusal::Expired`]: the caller then continues the run, which settles it
/// as denied.
pub async fn vote(
    journal: &Journal,
    policy: &Policy,
    run_id: &str,
    step: &str,
    who: &Approver,
    vote: Vote,
    reason: &str,
) -> Result<VoteResult, OpError> {
    let command = match vote {
        Vote::Approve => "approve",
        Vote::Deny => "deny",
    };
    if vote == Vote::Deny && reason.trim().is_empty() {
        return Err(OpError::Invalid(
            "a denial needs a reason (it is journaled)".into(),
        ));
    }
    let state = RunState::from_records(&read_run(journal, run_id)?);
    let gate = match approvals::check_vote(policy, &state, step, who, now_unix_millis()) {
        Ok(g) => g.clone(),
        Err(r) => return Err(refuse(journal, run_id, command, Some(step), &who.name, r).await),
    };
    let voted = Event::ApprovalVoted {
        step: step.to_string(),
        by: who.name.clone(),
        vote,
        reason: reason.to_string(),
    };
    journal.append(run_id, voted).await?;
    let Some((decision, by)) = approvals::tally(&gate, &who.name, vote) else {
        return Ok(VoteResult::Recorded {
            have: gate.approved_by().len() + 1,
            need: gate.min_approvals,
        });
    };
    let decided = Event::ApprovalDecided {
        step: step.to_string(),
        decision,
        by: by.clone(),
        reason: reason.to_string(),
    };
    journal.append(run_id, decided).await?;
    crate::observe::approval_decided(&gate.requested_at, decision);
    Ok(VoteResult::Decided { decision, by })
}

/// Settles every in-doubt item of `step` with `outcome`; returns how many.
pub async fn resolve(
    journal: &Journal,
    run_id: &str,
    step: &str,
    who: &Approver,
    outcome: Resolution,
    reason: &str,
) -> Result<usize, OpError> {
    if reason.trim().is_empty() {
        return Err(OpError::Invalid(
            "the reason must say what was checked (it is journaled)".into(),
        ));
    }
    let state = RunState::from_records(&read_run(journal, run_id)?);
    let refused = |r| refuse(journal, run_id, "resolve", Some(step), &who.name, r);
    if let Err(r) = approvals::require_role(who, roles::OPERATOR, "resolve") {
        return Err(refused(r).await);
    }
    if let Some(status) = state.final_status {
        return Err(refused(Refusal::RunOver(status.to_string())).await);
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
        return Err(refused(r).await);
    }
    for (item, attempt) in &in_doubt {
        let event = Event::OperatorResolved {
            step: step.to_string(),
            item: *item,
            attempt: *attempt,
            by: who.name.clone(),
            outcome,
            reason: reason.to_string(),
        };
        journal.append(run_id, event).await?;
    }
    Ok(in_doubt.len())
}

fn cancel_checks(who: &Approver, reason: &str) -> Result<(), Result<Refusal, OpError>> {
    if reason.trim().is_empty() {
        return Err(Err(OpError::Invalid(
            "a cancel needs a reason (it is journaled)".into(),
        )));
    }
    approvals::require_role(who, roles::OPERATOR, "cancel").map_err(Ok)
}

/// Every check a cancel passes (reason, role, a run not over), refusals
/// journaled in the run.
async fn may_cancel(
    journal: &Journal,
    run_id: &str,
    who: &Approver,
    reason: &str,
) -> Result<(), OpError> {
    let state = RunState::from_records(&read_run(journal, run_id)?);
    match cancel_checks(who, reason) {
        Ok(()) => {}
        Err(Ok(r)) => return Err(refuse(journal, run_id, "cancel", None, &who.name, r).await),
        Err(Err(e)) => return Err(e),
    }
    if let Some(status) = state.final_status {
        let r = Refusal::RunOver(status.to_string());
        return Err(refuse(journal, run_id, "cancel", None, &who.name, r).await);
    }
    Ok(())
}

/// Cancels a run nobody is driving: cancelling and finishing are one step.
pub async fn cancel(
    journal: &Journal,
    run_id: &str,
    who: &Approver,
    reason: &str,
) -> Result<(), OpError> {
    may_cancel(journal, run_id, who, reason).await?;
    let events = [
        Event::RunCancelled {
            by: who.name.clone(),
            reason: reason.to_string(),
        },
        Event::RunFinished {
            status: RunStatus::Cancelled,
            outputs: json!({}),
            error: Some(format!("cancelled by {}: {reason}", who.name)),
        },
    ];
    for e in events {
        journal.append(run_id, e).await?;
    }
    Ok(())
}

/// Asks the executor driving `run_id` to cancel it (see
/// [`crate::scheduler::cancel`]): it starts nothing more, lets in-flight
/// steps finish, and journals the cancel. `journal_dir` is the journal's
/// directory, for a caller that cannot open the journal (another process
/// holds it); such a refusal cannot be journaled.
pub fn request_cancel(
    journal_dir: &std::path::Path,
    run_id: &str,
    who: &Approver,
    reason: &str,
) -> Result<(), OpError> {
    match cancel_checks(who, reason) {
        Ok(()) => {}
        Err(Ok(r)) => return Err(OpError::Refused(r)),
        Err(Err(e)) => return Err(e),
    }
    crate::scheduler::cancel::request(journal_dir, run_id, &who.name, reason)
        .map_err(|e| OpError::Failed(format!("cannot leave the cancel request: {e}")))
}

/// Denies every gate of `run_id` whose request has expired by `now_ms`
/// (the server's timer, so an expiry needs no command); returns how many.
/// The caller serialises this with votes on the run.
pub async fn expire_gates(journal: &Journal, run_id: &str, now_ms: u64) -> Result<usize, OpError> {
    let state = RunState::from_records(&read_run(journal, run_id)?);
    if state.final_status.is_some() || state.cancelled.is_some() {
        return Ok(0);
    }
    let mut expired = 0;
    for (step, gate) in &state.gates {
        if gate.decision.is_some() || now_ms < gate.expires_at_ms {
            continue;
        }
        let reason = format!(
            "no decision by {}: counts as denied",
            crate::journal::format_unix_millis(gate.expires_at_ms)
        );
        let event = Event::ApprovalDecided {
            step: step.clone(),
            decision: Decision::Expired,
            by: Vec::new(),
            reason,
        };
        journal.append(run_id, event).await?;
        crate::observe::approval_decided(&gate.requested_at, Decision::Expired);
        expired += 1;
    }
    Ok(expired)
}

/// Checks a cancel of a run another task is driving, journals a refusal,
/// and leaves the request that driver journals (see [`request_cancel`]).
pub async fn cancel_driven(
    journal: &Journal,
    run_id: &str,
    who: &Approver,
    reason: &str,
) -> Result<(), OpError> {
    may_cancel(journal, run_id, who, reason).await?;
    request_cancel(journal.dir(), run_id, who, reason)
}
