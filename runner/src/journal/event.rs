//! What a run's journal records: one [`Event`] per state change, serialized as
//! `{"type": "snake_case_name", ...fields}`. These JSON shapes are the on-disk
//! format, so renaming a variant or field breaks existing journals.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One entry of a run's log. The scheduler appends them; resuming a run
/// rebuilds its state from them alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run was created; always the first record of a run (seq 1).
    RunStarted {
        /// Playbook name.
        playbook: String,
        /// Playbook version.
        version: String,
        /// SHA-256 of the playbook file, so a resume can refuse an edited playbook.
        playbook_sha256: String,
        /// Where the playbook was read from.
        playbook_path: String,
        /// The run's inputs.
        inputs: serde_json::Value,
        /// The alert that triggered the run (`null` for a manual run).
        alert: serde_json::Value,
        /// Who or what started it (user, webhook...).
        started_by: String,
        /// The dedup key claimed for this run, if any.
        dedup_key: Option<String>,
        /// The event as its sender delivered it, when the source's `map`
        /// built `alert` from it: kept as evidence beside what the playbook saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<serde_json::Value>,
        /// The playbook's `group` key this run holds, if it groups alerts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// The run that held the group key before this one (`reopen_within`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_run: Option<String>,
    },
    /// A later delivery matched this run's dedup key or delivery id: its
    /// evidence joins this run instead of starting another.
    AlertMerged {
        /// The claim it matched (`delivery:SOURCE:ID` or `PLAYBOOK:KEY`).
        key: String,
        /// The alert as mapped for the playbook.
        alert: serde_json::Value,
        /// The event as delivered, when a source `map` built `alert`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<serde_json::Value>,
        /// Who delivered it (`source:NAME` or a principal).
        by: String,
        /// How many deliveries have merged into this run, this one included.
        count: u64,
    },
    /// A later alert with this run's `group` key, while the run was open
    /// and within the window: it joins this run's case instead of opening one.
    AlertGrouped {
        /// The group claim (`group:PLAYBOOK:KEY`).
        key: String,
        /// The alert as mapped for the playbook.
        alert: serde_json::Value,
        /// The event as delivered, when a source `map` built `alert`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<serde_json::Value>,
        /// Who delivered it (`source:NAME` or a principal).
        by: String,
        /// How many alerts have joined this run, this one included.
        count: u64,
    },
    /// A step began.
    StepStarted {
        /// Step id.
        step: String,
        /// Number of items for a `for_each` step.
        items: Option<u32>,
    },
    /// An attempt is about to invoke a plugin (journaled before the call, so
    /// a crash mid-call is known to be in doubt).
    AttemptStarted {
        /// Step id.
        step: String,
        /// Item index of a `for_each` step.
        item: Option<u32>,
        /// Attempt number, from 1.
        attempt: u32,
        /// Key passed to the connector so a repeat can be recognised.
        idempotency_key: String,
        /// The rendered action input.
        input: serde_json::Value,
        /// Plugin name.
        plugin: String,
        /// Action name.
        action: String,
        /// SHA-256 of the plugin component used.
        plugin_sha256: String,
        /// Whether this was a dry run.
        dry_run: bool,
    },
    /// An attempt returned (successfully or with a typed error).
    AttemptFinished {
        /// Step id.
        step: String,
        /// Item index of a `for_each` step.
        item: Option<u32>,
        /// Attempt number, from 1.
        attempt: u32,
        /// What came back.
        outcome: AttemptOutcome,
        /// Wall time of the invocation.
        duration_ms: u64,
        /// The HTTP exchanges it made, secrets redacted.
        exchanges: serde_json::Value,
        /// Its log lines.
        logs: serde_json::Value,
    },
    /// A failed attempt will be retried.
    RetryScheduled {
        /// Step id.
        step: String,
        /// Item index of a `for_each` step.
        item: Option<u32>,
        /// The attempt number that will run.
        next_attempt: u32,
        /// When it will run (RFC 3339 UTC). Spelled `retry_at` in JSON: a
        /// [`Record`](super::Record) flattens its event next to its own `at`,
        /// and two `at` keys in one object would be ambiguous.
        #[serde(rename = "retry_at")]
        at: String,
        /// Delay from now.
        delay_ms: u64,
        /// Why (the error that is retried).
        reason: String,
    },
    /// On resume, an attempt found started but not finished was settled.
    Reconciled {
        /// Step id.
        step: String,
        /// Item index of a `for_each` step.
        item: Option<u32>,
        /// The attempt that was in flight.
        attempt: u32,
        /// What was decided (`retry`, `in_doubt`, `done`...).
        decision: String,
        /// Why (probe result, idempotency...).
        detail: String,
    },
    /// A step was not run.
    StepSkipped {
        /// Step id.
        step: String,
        /// Why (condition false, upstream skipped...).
        reason: String,
    },
    /// A step ended.
    StepFinished {
        /// Step id.
        step: String,
        /// `succeeded`, `failed`, `skipped` or `in_doubt`.
        status: String,
        /// Its output (a list in item order for `for_each`).
        output: Option<serde_json::Value>,
        /// Its error, when it failed or is in doubt.
        error: Option<serde_json::Value>,
    },
    /// An approval gate asks for a decision: what the approver is shown and
    /// exactly what an approval will cover.
    ApprovalRequested {
        /// The approval step.
        step: String,
        /// Roles that may decide.
        approvers: Vec<String>,
        /// Distinct approvals needed.
        min_approvals: u32,
        /// After this (RFC 3339 UTC) the request counts as denied.
        expires_at: String,
        /// The rendered handoff (summary, why, affected...).
        handoff: serde_json::Value,
        /// The destructive steps an approval covers, bound to their inputs
        /// and the plugin that will act.
        bindings: Vec<ApprovalBinding>,
        /// What the gated steps would do, from dry-run invocations.
        plan: serde_json::Value,
    },
    /// An approver voted (the token was checked before this was written).
    ApprovalVoted {
        /// The approval step.
        step: String,
        /// Approver name.
        by: String,
        /// `approve` or `deny`.
        vote: Vote,
        /// Their reason.
        reason: String,
    },
    /// An approval gate was decided.
    ApprovalDecided {
        /// The approval step.
        step: String,
        /// Granted, denied or expired.
        decision: Decision,
        /// Who decided (approvers, or nobody for an expiry).
        by: Vec<String>,
        /// Why.
        reason: String,
    },
    /// A destructive step passed every check and may act; durable before
    /// its first attempt.
    ActionAuthorized {
        /// Step id.
        step: String,
        /// `plugin.action`.
        uses: String,
        /// Why it may act: `{"approval": STEP, "approved_by": [...]}` or
        /// `{"auto_approve": CONDITION, "values": {...}, "result": true}`.
        basis: serde_json::Value,
        /// SHA-256 of the rendered inputs (all items).
        input_sha256: String,
        /// SHA-256 of the plugin component that will act.
        plugin_sha256: String,
        /// Every target it names.
        targets: Vec<String>,
    },
    /// An operator command was refused (wrong token, missing role...).
    CommandRefused {
        /// `approve`, `deny`, `resolve`, `cancel`.
        command: String,
        /// The step it named, if any.
        step: Option<String>,
        /// Who it claimed to be.
        by: String,
        /// Why it was refused.
        reason: String,
    },
    /// An operator cancelled the run: nothing more starts.
    RunCancelled {
        /// Approver name.
        by: String,
        /// Their reason.
        reason: String,
    },
    /// An operator settled an in-doubt step item.
    OperatorResolved {
        /// Step id.
        step: String,
        /// Item index of a `for_each` step.
        item: Option<u32>,
        /// The attempt that was in doubt.
        attempt: u32,
        /// Approver name.
        by: String,
        /// `done`, `failed` or `retry`.
        outcome: Resolution,
        /// Their reason (what they checked).
        reason: String,
    },
    /// On a cluster: a node took the run over because its previous node
    /// stopped renewing the run's lease (it died, hung or was cut off).
    /// The node then resumes it as `soar resume` would.
    RunTakenOver {
        /// The node that took it over.
        node: String,
        /// Why.
        reason: String,
    },
    /// The run stopped without finishing (waiting for an approval, in doubt).
    RunPaused {
        /// The status it is paused in.
        status: RunStatus,
        /// Why.
        reason: String,
    },
    /// A chat message about an approval was posted or updated through a
    /// connector (the buttons of `approval.notify`, Slack's `chat.update`
    /// once decided): outside any step, journaled all the same.
    ChatMessage {
        /// The approval step the message is about.
        step: String,
        /// `plugin.action` that updated it.
        uses: String,
        /// Its input.
        input: serde_json::Value,
        /// Whether the vendor accepted it.
        ok: bool,
        /// The output, or the error's message.
        detail: serde_json::Value,
        /// The HTTP exchanges (secrets redacted).
        exchanges: serde_json::Value,
    },
    /// The run ended.
    RunFinished {
        /// Final status.
        status: RunStatus,
        /// The playbook's outputs.
        outputs: serde_json::Value,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

impl Event {
    /// The `type` tag of this event, as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::AlertMerged { .. } => "alert_merged",
            Event::AlertGrouped { .. } => "alert_grouped",
            Event::StepStarted { .. } => "step_started",
            Event::AttemptStarted { .. } => "attempt_started",
            Event::AttemptFinished { .. } => "attempt_finished",
            Event::RetryScheduled { .. } => "retry_scheduled",
            Event::Reconciled { .. } => "reconciled",
            Event::RunTakenOver { .. } => "run_taken_over",
            Event::ChatMessage { .. } => "chat_message",
            Event::StepSkipped { .. } => "step_skipped",
            Event::StepFinished { .. } => "step_finished",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalVoted { .. } => "approval_voted",
            Event::ApprovalDecided { .. } => "approval_decided",
            Event::ActionAuthorized { .. } => "action_authorized",
            Event::CommandRefused { .. } => "command_refused",
            Event::RunCancelled { .. } => "run_cancelled",
            Event::OperatorResolved { .. } => "operator_resolved",
            Event::RunPaused { .. } => "run_paused",
            Event::RunFinished { .. } => "run_finished",
        }
    }
}

impl Event {
    /// Written by the executor while it drives the run (as opposed to
    /// operator commands, which are written while the run is paused).
    pub fn is_step_activity(&self) -> bool {
        !matches!(
            self,
            Event::ApprovalVoted { .. }
                | Event::AlertMerged { .. }
                | Event::AlertGrouped { .. }
                | Event::ApprovalDecided { .. }
                | Event::CommandRefused { .. }
                | Event::ChatMessage { .. }
                | Event::RunCancelled { .. }
                | Event::OperatorResolved { .. }
                | Event::RunTakenOver { .. }
                | Event::RunPaused { .. }
                | Event::RunFinished { .. }
        )
    }
}

/// A destructive step an approval covers, as it will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalBinding {
    /// Step id.
    pub step: String,
    /// `plugin.action`.
    pub uses: String,
    /// SHA-256 of the plugin component that will act.
    pub plugin_sha256: String,
    /// SHA-256 of the plugin's granted config (values, hosts, secret
    /// sources); empty in journals written before it was bound.
    #[serde(default)]
    pub plugin_config_sha256: String,
    /// SHA-256 of the rendered inputs (all items, in order).
    pub input_sha256: String,
    /// The targets those inputs name.
    pub targets: Vec<String>,
}

/// An approver's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

/// How an approval gate was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Enough distinct approvers approved.
    Granted,
    /// Someone denied.
    Denied,
    /// Nobody decided in time (counts as a denial).
    Expired,
}

impl Decision {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Granted => "granted",
            Decision::Denied => "denied",
            Decision::Expired => "expired",
        }
    }
}

/// How an operator settled an in-doubt step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The effect is in place: record the step as done.
    Done,
    /// It did not happen and must not: record the step as failed.
    Failed,
    /// Invoke it again with the same idempotency key.
    Retry,
}

/// The result of one attempt, tagged by `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The action succeeded.
    Ok {
        /// Its output.
        output: serde_json::Value,
    },
    /// The action failed with a typed error.
    Err {
        /// Error kind (`unavailable`, `timeout`... see `InvokeError::kind_name`).
        kind: String,
        /// Message.
        message: String,
        /// Delay the vendor asked for, when known.
        retry_after_ms: Option<u64>,
    },
}

/// Where a run stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Being executed (or interrupted by a crash and resumable).
    Running,
    /// Paused at an approval gate.
    WaitingApproval,
    /// Paused: an attempt's effect is unknown and may not be repeated blindly.
    InDoubt,
    /// Finished successfully.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Stopped by an operator.
    Cancelled,
    /// Ended by a `state.suppress` step: its key had an entry (a
    /// maintenance window, a known exception); nothing after it ran.
    Suppressed,
}

impl RunStatus {
    /// Whether nothing more happens to a run with this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Suppressed
        )
    }

    /// Every status, in declaration order.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::InDoubt,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Suppressed,
    ];

    /// The snake_case spelling used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::InDoubt => "in_doubt",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Suppressed => "suppressed",
        }
    }

    /// Whether the run is over (nothing will be appended by the scheduler).
    pub fn is_terminal(self) -> bool {
        self.is_final()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`RunStatus`] spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status `{0}` (expected running, waiting_approval, in_doubt, succeeded, failed, cancelled or suppressed)")]
pub struct ParseRunStatusError(pub String);

impl FromStr for RunStatus {
    type Err = ParseRunStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseRunStatusError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_status_spellings_match_serde() {
        for status in RunStatus::ALL {
            let via_serde = serde_json::to_value(status).unwrap();
            assert_eq!(via_serde, json!(status.as_str()));
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
        }
        let err = "paused".parse::<RunStatus>().unwrap_err();
        assert!(err.to_string().contains("`paused`"), "{err}");
    }

    #[test]
    fn events_are_tagged_snake_case() {
        let e = Event::AttemptFinished {
            step: "enrich".into(),
            item: Some(2),
            attempt: 1,
            outcome: AttemptOutcome::Err {
                kind: "rate_limited".into(),
                message: "slow down".into(),
                retry_after_ms: Some(1500),
            },
            duration_ms: 12,
            exchanges: json!([]),
            logs: json!([]),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "attempt_finished");
        assert_eq!(v["type"], e.kind());
        assert_eq!(v["outcome"]["result"], "err");
        assert_eq!(v["outcome"]["retry_after_ms"], 1500);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);

        let r = Event::RetryScheduled {
            step: "s".into(),
            item: None,
            next_attempt: 2,
            at: "2026-11-27T10:15:30.123Z".into(),
            delay_ms: 1000,
            reason: "unavailable".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["retry_at"], "2026-11-27T10:15:30.123Z");
        assert!(v.get("at").is_none());
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), r);
    }
}
