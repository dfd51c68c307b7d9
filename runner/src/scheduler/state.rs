//! A run's state rebuilt from its journal alone: which steps finished, and
//! for each unfinished step item, where its attempts stood. Both a fresh run
//! (empty state) and `soar resume` go through the same executor with it.

use crate::journal::{AttemptOutcome, Event, Record, RunStatus};
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
}

impl StepStatus {
    /// The journal / template spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::InDoubt => "in_doubt",
        }
    }

    /// Parses the journal spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            "in_doubt" => StepStatus::InDoubt,
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
    /// Reconciliation decided it is in doubt.
    InDoubt,
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
                decision,
                ..
            } => {
                if decision == "in_doubt" {
                    self.items.insert((step.clone(), *item), ItemState::InDoubt);
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

    /// Item state (NotStarted when nothing was journaled).
    pub fn item(&self, step: &str, item: Option<u32>) -> ItemState {
        self.items
            .get(&(step.to_string(), item))
            .cloned()
            .unwrap_or(ItemState::NotStarted)
    }
}
