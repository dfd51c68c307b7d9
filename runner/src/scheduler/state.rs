//! A run's state rebuilt from its journal alone: which steps finished, and
//! for each unfinished step item, where its attempts stood. Both a fresh run
//! (empty state) and `soar resume` go through the same executor with it.

use crate::journal::{
    ApprovalBinding, AttemptOutcome, Decision, Event, Record, Resolution, RunStatus, Vote,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// All items succeeded.
    Succeeded,
    /// An item failed (after its retries).
    Failed,
    /// Its condition was false or an upstream step was skipped.
    Skipped,
    /// An attempt's outcome is unknown and the action may not be repeated.
    InDoubt,
    /// A destructive action was not invoked: a safety rule said no.
    Blocked,
}

impl StepStatus {
    /// The journal / template spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::InDoubt => "in_doubt",
            StepStatus::Blocked => "blocked",
        }
    }

    /// Parses the journal spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            "in_doubt" => StepStatus::InDoubt,
            "blocked" => StepStatus::Blocked,
            _ => return None,
        })
    }
}

/// A finished step as templates and reports see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinishedStep {
    /// Status.
    pub status: StepStatus,
    /// Output (a list, in item order, for `for_each`).
    pub output: Option<Value>,
    /// The error, when failed or in doubt.
    pub error: Option<Value>,
}

/// A typed failure of one attempt, as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptError {
    /// Kind (`unavailable`, `rate_limited`, `timeout`...).
    pub kind: String,
    /// Message.
    pub message: String,
    /// Vendor's retry-after.
    pub retry_after_ms: Option<u64>,
}

impl AttemptError {
    /// Whether the scheduler may retry it (rate limited or transient only).
    pub fn retryable(&self) -> bool {
        matches!(self.kind.as_str(), "rate_limited" | "unavailable")
    }

    /// As stored in `StepFinished.error`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"kind": self.kind, "message": self.message})
    }
}

/// Where one item (or the single invocation) of a step stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemState {
    /// Nothing journaled yet.
    NotStarted,
    /// Succeeded with this output.
    Done(Value),
    /// Attempt `attempt` failed; retry or give up is still to be decided.
    Errored {
        /// Attempt number.
        attempt: u32,
        /// The failure.
        error: AttemptError,
    },
    /// A retry is scheduled.
    RetryAt {
        /// Attempt to run.
        next_attempt: u32,
        /// When, Unix milliseconds.
        at_ms: u64,
    },
    /// Started with no recorded result: the process died (or the attempt
    /// timed out) and the effect is unknown.
    InFlight {
        /// Attempt number.
        attempt: u32,
    },
    /// Reconciliation decided attempt `attempt` is in doubt.
    InDoubt {
        /// The attempt whose effect is unknown.
        attempt: u32,
    },
}

/// The whole run as its journal tells it.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Normalised inputs (from `RunStarted`).
    pub inputs: Value,
    /// The raw alert.
    pub alert: Value,
    /// Who started it.
    pub started_by: String,
    /// Later deliveries merged into this run (`alert_merged`).
    pub merged_count: u64,
    /// Alerts that joined this run's group (`alert_grouped`), in order.
    pub grouped: Vec<Value>,
    /// Content hash of the playbook it started with.
    pub playbook_sha256: String,
    /// Playbook name.
    pub playbook: String,
    /// Finished steps.
    pub finished: BTreeMap<String, FinishedStep>,
    /// Unfinished steps' items.
    pub items: BTreeMap<(String, Option<u32>), ItemState>,
    /// Set once `RunFinished` is journaled.
    pub final_status: Option<RunStatus>,
    /// Latest pause, if the run is paused and not finished.
    pub paused: Option<RunStatus>,
    /// Outputs from `RunFinished`.
    pub outputs: Value,
    /// Approval gates that asked, by step id.
    pub gates: BTreeMap<String, GateState>,
    /// Destructive steps authorized to act, by step id.
    pub authorized: BTreeMap<String, Authorization>,
    /// Who cancelled the run, and why.
    pub cancelled: Option<(String, String)>,
}

/// An approval gate as its journal tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateState {
    /// Roles that may decide.
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// When it expires (Unix ms).
    pub expires_at_ms: u64,
    /// The rendered handoff.
    pub handoff: Value,
    /// What it covers.
    pub bindings: Vec<ApprovalBinding>,
    /// Dry-run plan.
    pub plan: Value,
    /// Votes so far: (approver, vote, reason).
    pub votes: Vec<(String, Vote, String)>,
    /// The decision and who made it.
    pub decision: Option<(Decision, Vec<String>)>,
    /// When it was decided (RFC 3339), for a late vote's answer.
    pub decided_at: Option<String>,
}

impl GateState {
    /// Distinct approvers who approved.
    pub fn approved_by(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .votes
            .iter()
            .filter(|(_, v, _)| *v == Vote::Approve)
            .map(|(n, _, _)| n.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Waiting for votes (asked, not decided).
    pub fn is_waiting(&self) -> bool {
        self.decision.is_none()
    }
}

/// A destructive step's journaled authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// `plugin.action`.
    pub uses: String,
    /// Hash of the rendered inputs it was authorized with.
    pub input_sha256: String,
    /// Plugin digest it was authorized with.
    pub plugin_sha256: String,
    /// Targets.
    pub targets: Vec<String>,
}

impl RunState {
    /// Rebuilds the state from records in order.
    pub fn from_records(records: &[Record]) -> Self {
        let mut state = RunState::default();
        for r in records {
            state.apply(r);
        }
        state
    }

    /// Folds one more record into the state (records in order).
    pub fn apply(&mut self, record: &Record) {
        // Only the executor writes step activity, and only on a run it is
        // driving: activity after a pause means the run was resumed (the
        // same rule `Journal::summary` uses, so both report one status).
        if record.event.is_step_activity() {
            self.paused = None;
        }
        match &record.event {
            Event::RunStarted {
                playbook,
                playbook_sha256,
                inputs,
                alert,
                started_by,
                ..
            } => {
                self.playbook = playbook.clone();
                self.playbook_sha256 = playbook_sha256.clone();
                self.inputs = inputs.clone();
                self.alert = alert.clone();
                self.started_by = started_by.clone();
            }
            Event::AttemptStarted {
                step,
                item,
                attempt,
                ..
            } => {
                self.items.insert(
                    (step.clone(), *item),
                    ItemState::InFlight { attempt: *attempt },
                );
            }
            Event::AttemptFinished {
                step,
                item,
                attempt,
                outcome,
                ..
            } => {
                let state = match outcome {
                    AttemptOutcome::Ok { output } => ItemState::Done(output.clone()),
                    AttemptOutcome::Err {
                        kind,
                        message,
                        retry_after_ms,
                    } => ItemState::Errored {
                        attempt: *attempt,
                        error: AttemptError {
                            kind: kind.clone(),
                            message: message.clone(),
                            retry_after_ms: *retry_after_ms,
                        },
                    },
                };
                self.items.insert((step.clone(), *item), state);
            }
            Event::RetryScheduled {
                step,
                item,
                next_attempt,
                at,
                ..
            } => {
                self.items.insert(
                    (step.clone(), *item),
                    ItemState::RetryAt {
                        next_attempt: *next_attempt,
                        at_ms: crate::journal::parse_unix_millis(at).unwrap_or(0),
                    },
                );
            }
            Event::Reconciled {
                step,
                item,
                attempt,
                decision,
                ..
            } => {
                if decision == "in_doubt" {
                    let state = ItemState::InDoubt { attempt: *attempt };
                    self.items.insert((step.clone(), *item), state);
                }
            }
            Event::StepSkipped { step, .. } => {
                self.finished.insert(
                    step.clone(),
                    FinishedStep {
                        status: StepStatus::Skipped,
                        output: None,
                        error: None,
                    },
                );
            }
            Event::StepFinished {
                step,
                status,
                output,
                error,
            } => {
                let status = StepStatus::parse(status).unwrap_or(StepStatus::Failed);
                // An in-doubt step is settled later (by an operator): keep
                // its items so a resume reconsiders them.
                if status != StepStatus::InDoubt {
                    self.finished.insert(
                        step.clone(),
                        FinishedStep {
                            status,
                            output: output.clone(),
                            error: error.clone(),
                        },
                    );
                }
            }
            Event::ApprovalRequested {
                step,
                approvers,
                min_approvals,
                expires_at,
                handoff,
                bindings,
                plan,
            } => {
                self.gates.insert(
                    step.clone(),
                    GateState {
                        approvers: approvers.clone(),
                        min_approvals: *min_approvals,
                        requested_at: record.at.clone(),
                        expires_at_ms: crate::journal::parse_unix_millis(expires_at).unwrap_or(0),
                        handoff: handoff.clone(),
                        bindings: bindings.clone(),
                        plan: plan.clone(),
                        votes: Vec::new(),
                        decision: None,
                        decided_at: None,
                    },
                );
            }
            Event::ApprovalVoted {
                step,
                by,
                vote,
                reason,
            } => {
                if let Some(g) = self.gates.get_mut(step) {
                    g.votes.push((by.clone(), *vote, reason.clone()));
                    // The votes decide, not only the decision record: a
                    // command killed between the two must not leave a denial
                    // that a later approval could outvote.
                    if g.decision.is_none() {
                        if *vote == Vote::Deny {
                            g.decision = Some((Decision::Denied, vec![by.clone()]));
                        } else if g.approved_by().len() as u32 >= g.min_approvals {
                            g.decision = Some((Decision::Granted, g.approved_by()));
                        }
                        if g.decision.is_some() {
                            g.decided_at = Some(record.at.clone());
                        }
                    }
                }
            }
            Event::ApprovalDecided {
                step, decision, by, ..
            } => {
                if let Some(g) = self.gates.get_mut(step) {
                    // The first decision stands (a vote may already have made it).
                    if g.decision.is_none() {
                        g.decision = Some((*decision, by.clone()));
                        g.decided_at = Some(record.at.clone());
                    }
                }
            }
            Event::ActionAuthorized {
                step,
                uses,
                input_sha256,
                plugin_sha256,
                targets,
                ..
            } => {
                self.authorized.insert(
                    step.clone(),
                    Authorization {
                        uses: uses.clone(),
                        input_sha256: input_sha256.clone(),
                        plugin_sha256: plugin_sha256.clone(),
                        targets: targets.clone(),
                    },
                );
            }
            Event::RunCancelled { by, reason } => {
                self.cancelled = Some((by.clone(), reason.clone()));
            }
            Event::OperatorResolved {
                step,
                item,
                attempt,
                by,
                outcome,
                reason,
            } => {
                let state = match outcome {
                    Resolution::Done => ItemState::Done(serde_json::json!({
                        "resolved_by": by, "outcome": "done", "reason": reason
                    })),
                    Resolution::Failed => ItemState::Errored {
                        attempt: *attempt,
                        error: AttemptError {
                            kind: "resolved_failed".into(),
                            message: format!("{by} resolved it as failed: {reason}"),
                            retry_after_ms: None,
                        },
                    },
                    Resolution::Retry => ItemState::RetryAt {
                        next_attempt: attempt + 1,
                        at_ms: 0,
                    },
                };
                self.items.insert((step.clone(), *item), state);
            }
            Event::CommandRefused { .. }
            | Event::ChatMessage { .. }
            | Event::RunTakenOver { .. } => {}
            Event::AlertMerged { .. } => self.merged_count += 1,
            Event::AlertGrouped { alert, .. } => self.grouped.push(alert.clone()),
            Event::RunPaused { status, .. } => self.paused = Some(*status),
            Event::RunFinished {
                status, outputs, ..
            } => {
                self.final_status = Some(*status);
                self.outputs = outputs.clone();
            }
            Event::StepStarted { .. } => {}
        }
    }

    /// Approvals waiting for a decision, as `soar pending` and a paused
    /// `soar run` show them: handoff, plan, age, expiry, and the commands.
    pub fn pending_approvals(&self, run_id: &str, now_ms: u64) -> Vec<Value> {
        self.gates
            .iter()
            .filter(|(_, g)| g.is_waiting())
            .map(|(step, gate)| {
                let requested_ms =
                    crate::journal::parse_unix_millis(&gate.requested_at).unwrap_or(now_ms);
                serde_json::json!({
                    "run_id": run_id,
                    "playbook": self.playbook,
                    "step": step,
                    "started_by": self.started_by,
                    "approvers": gate.approvers,
                    "min_approvals": gate.min_approvals,
                    "approved_by": gate.approved_by(),
                    "requested_at": gate.requested_at,
                    "expires_at": crate::journal::format_unix_millis(gate.expires_at_ms),
                    "age_seconds": now_ms.saturating_sub(requested_ms) / 1000,
                    "expired": now_ms >= gate.expires_at_ms,
                    "handoff": gate.handoff,
                    "plan": gate.plan,
                    "covers": gate.bindings,
                    "approve": format!("soar approve {run_id} {step} --as NAME --reason TEXT"),
                    "deny": format!("soar deny {run_id} {step} --as NAME --reason TEXT"),
                })
            })
            .collect()
    }

    /// Item state (NotStarted when nothing was journaled).
    pub fn item(&self, step: &str, item: Option<u32>) -> ItemState {
        self.items
            .get(&(step.to_string(), item))
            .cloned()
            .unwrap_or(ItemState::NotStarted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(events: Vec<Event>) -> Vec<Record> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Record {
                seq: i as u64 + 1,
                at: "2026-11-27T10:00:00.000Z".into(),
                prev_hash: String::new(),
                hash: String::new(),
                event,
            })
            .collect()
    }

    fn asked(min: u32) -> Event {
        Event::ApprovalRequested {
            step: "gate".into(),
            approvers: vec!["soc-lead".into()],
            min_approvals: min,
            expires_at: "2026-11-27T11:00:00.000Z".into(),
            handoff: json!({}),
            bindings: vec![],
            plan: json!([]),
        }
    }

    fn voted(by: &str, vote: Vote) -> Event {
        Event::ApprovalVoted {
            step: "gate".into(),
            by: by.into(),
            vote,
            reason: String::new(),
        }
    }

    #[test]
    fn votes_decide_even_without_a_decision_record() {
        // `soar deny` killed between its vote and its decision: a later
        // approval must not outvote the denial.
        let s = RunState::from_records(&records(vec![
            asked(1),
            voted("bob", Vote::Deny),
            voted("alice", Vote::Approve),
        ]));
        assert_eq!(
            s.gates["gate"].decision,
            Some((Decision::Denied, vec!["bob".to_string()]))
        );
        // Quorum reached by votes alone grants.
        let s = RunState::from_records(&records(vec![
            asked(2),
            voted("bob", Vote::Approve),
            voted("alice", Vote::Approve),
        ]));
        assert_eq!(
            s.gates["gate"].decision,
            Some((Decision::Granted, vec!["alice".into(), "bob".into()]))
        );
        // One approval of two: still waiting.
        let s = RunState::from_records(&records(vec![asked(2), voted("bob", Vote::Approve)]));
        assert!(s.gates["gate"].is_waiting());
    }

    #[test]
    fn a_pause_ends_with_the_next_step_activity_not_with_a_vote() {
        let paused = Event::RunPaused {
            status: RunStatus::WaitingApproval,
            reason: "waiting".into(),
        };
        let s = RunState::from_records(&records(vec![
            asked(1),
            paused.clone(),
            voted("bob", Vote::Approve),
        ]));
        assert_eq!(s.paused, Some(RunStatus::WaitingApproval));
        let resumed = Event::StepFinished {
            step: "gate".into(),
            status: "succeeded".into(),
            output: None,
            error: None,
        };
        let s = RunState::from_records(&records(vec![asked(1), paused, resumed]));
        assert_eq!(s.paused, None);
    }
}
