//! The executor: a run's step graph driven concurrently until every step
//! settled or nothing more may start. [`Progress`] is where a drive stands;
//! the drive takes a cancel request ([`Engine::take_cancel`]), starts every
//! ready step ([`Engine::start_ready`]), settles each that ends, and at the
//! end journals the pause or the finish ([`Engine::end_drive`]).

use super::{
    cancel, context, Collecting, Engine, EngineError, FinishedStep, RunReport, RunState, StepEnd,
    StepStatus,
};
use crate::journal::{DriveEnd, Event, JournalError, Record, RunStatus};
use crate::playbook::{OnError, Playbook, Step, Trigger};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::task::JoinSet;

type StepTask = (String, Result<Option<StepEnd>, JournalError>);

/// Where a drive stands.
struct Progress {
    state: Arc<RunState>,
    playbook: Arc<Playbook>,
    finished: BTreeMap<String, FinishedStep>,
    running: JoinSet<StepTask>,
    /// Steps started (or settled) in this drive or before it.
    started: BTreeSet<String>,
    /// A step failed (or was blocked): nothing more starts.
    failing: bool,
    /// A step is in doubt: nothing more starts.
    in_doubt: bool,
    /// Approval steps waiting for a decision.
    waiting: Vec<String>,
    /// Cancelled (by, reason): nothing more starts; running steps finish.
    cancelled: Option<(String, String)>,
    /// A `state.suppress` step found its entry (why): nothing more starts.
    suppressed: Option<String>,
}

impl Progress {
    fn new(state: RunState, playbook: Arc<Playbook>) -> Self {
        let finished = state.finished.clone();
        let started = finished.keys().cloned().collect();
        let cancelled = state.cancelled.clone();
        let suppressed = playbook
            .steps
            .iter()
            .find_map(|s| suppression(s, finished.get(&s.id)?));
        Progress {
            state: Arc::new(state),
            playbook,
            finished,
            running: JoinSet::new(),
            started,
            failing: false,
            in_doubt: false,
            waiting: Vec::new(),
            cancelled,
            suppressed,
        }
    }

    /// Whether new steps may start.
    fn may_start(&self) -> bool {
        !self.failing && !self.in_doubt && self.cancelled.is_none() && self.suppressed.is_none()
    }

    /// A step not started whose needs are all settled.
    fn any_ready(&self) -> bool {
        self.playbook.steps.iter().any(|s| {
            !self.started.contains(&s.id) && s.needs.iter().all(|n| self.finished.contains_key(n))
        })
    }

    /// Records how a step task ended.
    fn settle(&mut self, id: String, end: Option<StepEnd>) {
        let Some(end) = end else {
            self.waiting.push(id);
            return;
        };
        let step = self.playbook.steps.iter().find(|s| s.id == id);
        let on_error = step.map(|s| s.on_error);
        match end.status {
            // A blocked destructive action fails the run whatever
            // `on_error` says: nothing may go on as if it had acted.
            StepStatus::Blocked => self.failing = true,
            StepStatus::Failed if on_error != Some(OnError::Continue) => self.failing = true,
            StepStatus::InDoubt => self.in_doubt = true,
            _ => {}
        }
        let finished = FinishedStep {
            status: end.status,
            output: end.output,
            error: end.error,
        };
        if let Some(why) = step.and_then(|s| suppression(s, &finished)) {
            self.suppressed.get_or_insert(why);
        }
        self.finished.insert(id, finished);
    }

    /// The run's status once nothing runs, and its error.
    fn outcome(&self) -> (RunStatus, Option<String>) {
        if let Some((by, reason)) = &self.cancelled {
            (
                RunStatus::Cancelled,
                Some(format!("cancelled by {by}: {reason}")),
            )
        } else if let Some(why) = self.suppressed.as_ref().filter(|_| !self.failing) {
            (RunStatus::Suppressed, Some(why.clone()))
        } else if self.failing {
            (RunStatus::Failed, Some("a step failed".to_string()))
        } else if self.in_doubt {
            (RunStatus::InDoubt, None)
        } else if !self.waiting.is_empty() {
            (RunStatus::WaitingApproval, None)
        } else {
            (RunStatus::Succeeded, None)
        }
    }

    /// Why the run pauses, for a paused status.
    fn pause_reason(&self, status: RunStatus) -> Option<String> {
        match status {
            RunStatus::InDoubt => Some("a step's outcome is unknown and its action is not idempotent: an operator must resolve it".to_string()),
            RunStatus::WaitingApproval => Some(format!("waiting for approval: {}", self.waiting.join(", "))),
            _ => None,
        }
    }
}

/// Why a finished `state.suppress` step ends the run, if its entry was
/// found: the rule, the table and key, and who set the entry until when.
pub fn suppression(step: &Step, finished: &FinishedStep) -> Option<String> {
    let uses = step.uses.strip_prefix("state.")?;
    let out = finished.output.as_ref()?;
    if uses != crate::state::actions::SUPPRESS || out["suppressed"] != Value::Bool(true) {
        return None;
    }
    let entry = &out["entry"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let until = entry["expires_at"]
        .as_str()
        .map_or_else(|| "with no expiry".to_string(), |t| format!("until {t}"));
    Some(format!(
        "suppressed by rule `{}` (step `{}`): `{}` has an entry for `{}`, set by {} {until}",
        text(&out["rule"]),
        step.id,
        text(&out["table"]),
        text(&entry["key"]),
        text(&entry["by"]),
    ))
}

/// Why `step`'s trigger does not let it run, given how its needs (all
/// settled, none in doubt) ended; `None` when it runs.
fn unmet_trigger(step: &Step, finished: &BTreeMap<String, FinishedStep>) -> Option<String> {
    let status = |n: &String| finished[n].status;
    let rule = step.trigger.name();
    match step.trigger {
        Trigger::NoneSkipped => step
            .needs
            .iter()
            .find(|n| status(n) == StepStatus::Skipped)
            .map(|n| format!("needs `{n}`, which was skipped")),
        Trigger::AllSucceeded => step
            .needs
            .iter()
            .find(|n| status(n) != StepStatus::Succeeded)
            .map(|n| format!("trigger `{rule}`: `{n}` {}", status(n).as_str())),
        Trigger::AllDone => None,
        Trigger::OneSucceeded => (!step
            .needs
            .iter()
            .any(|n| status(n) == StepStatus::Succeeded))
        .then(|| format!("trigger `{rule}`: none of its needs succeeded")),
    }
}

impl Engine {
    /// The executor: runs every step whose needs are settled, concurrently.
    /// `records` is the run's journal as it stands; `collecting` gathers
    /// what is appended from here on.
    pub(super) async fn drive(
        &self,
        run_id: &str,
        playbook: Arc<Playbook>,
        records: Vec<Record>,
        collecting: Collecting,
    ) -> Result<RunReport, EngineError> {
        let result = self
            .drive_steps(run_id, playbook, records, collecting)
            .await;
        self.journal.settle(run_id, drive_end(&result)).await;
        result
    }

    async fn drive_steps(
        &self,
        run_id: &str,
        playbook: Arc<Playbook>,
        records: Vec<Record>,
        collecting: Collecting,
    ) -> Result<RunReport, EngineError> {
        let mut p = Progress::new(RunState::from_records(&records), playbook);
        loop {
            self.take_cancel(run_id, &mut p).await?;
            if p.may_start() {
                self.start_ready(run_id, &mut p).await?;
            }
            let Some(joined) = p.running.join_next().await else {
                // Nothing running: all steps settled, or we are blocked.
                if p.may_start() && p.any_ready() {
                    continue;
                }
                break;
            };
            let (id, end) = joined.unwrap_or_else(|e| {
                (
                    String::new(),
                    Err(JournalError::Storage(format!("step task panicked: {e}"))),
                )
            });
            p.settle(id, end?);
        }
        self.end_drive(run_id, p, records, collecting).await
    }

    /// Journals a cancel request left for this run, once.
    async fn take_cancel(&self, run_id: &str, p: &mut Progress) -> Result<(), JournalError> {
        if p.cancelled.is_some() {
            return Ok(());
        }
        let Some((by, reason)) = cancel::requested(&self.journal, run_id) else {
            return Ok(());
        };
        let event = Event::RunCancelled {
            by: by.clone(),
            reason: reason.clone(),
        };
        self.append(run_id, event).await?;
        cancel::clear(&self.journal, run_id);
        p.cancelled = Some((by, reason));
        Ok(())
    }

    /// Starts every step whose needs are settled: as a task, or settled at
    /// once when a need was skipped (it is skipped too) or is in doubt (it
    /// waits).
    async fn start_ready(&self, run_id: &str, p: &mut Progress) -> Result<(), JournalError> {
        let playbook = p.playbook.clone();
        for step in &playbook.steps {
            if p.started.contains(&step.id)
                || !step.needs.iter().all(|n| p.finished.contains_key(n))
            {
                continue;
            }
            p.started.insert(step.id.clone());
            // Blocked by an upstream in-doubt step: wait.
            if step
                .needs
                .iter()
                .any(|n| p.finished[n].status == StepStatus::InDoubt)
            {
                continue;
            }
            if let Some(reason) = unmet_trigger(step, &p.finished) {
                let event = Event::StepSkipped {
                    step: step.id.clone(),
                    reason,
                };
                self.note(run_id, event).await?;
                let skipped = FinishedStep {
                    status: StepStatus::Skipped,
                    output: None,
                    error: None,
                };
                p.finished.insert(step.id.clone(), skipped);
                continue;
            }
            let ctx = context(run_id, &p.state, &p.finished);
            let (engine, run, step, state, playbook) = (
                self.clone(),
                run_id.to_string(),
                step.clone(),
                p.state.clone(),
                playbook.clone(),
            );
            p.running.spawn(async move {
                let id = step.id.clone();
                let end = engine.run_step(&run, &step, ctx, &state, &playbook).await;
                (id, end)
            });
        }
        Ok(())
    }

    /// Journals where the drive left the run (paused, or finished with its
    /// outputs) and builds its report.
    async fn end_drive(
        &self,
        run_id: &str,
        p: Progress,
        mut records: Vec<Record>,
        collecting: Collecting,
    ) -> Result<RunReport, EngineError> {
        let (status, error) = p.outcome();
        // Every step task has ended: nothing else appends to this run here,
        // so the records it had plus what this drive appended are the
        // journal the report is built from, without reading it again.
        records.extend(collecting.take());
        let contiguous = records.iter().zip(1..).all(|(r, seq)| r.seq == seq);
        if !contiguous {
            // Something appended outside this drive: the journal decides.
            records = self.journal.read(run_id)?;
        }
        let end = if let Some(reason) = p.pause_reason(status) {
            // A resume that changed nothing (still waiting, still in doubt)
            // does not repeat the pause record.
            let unchanged = matches!(
                records.last().map(|r| &r.event),
                Some(Event::RunPaused { status: s, reason: r }) if *s == status && *r == reason
            );
            (!unchanged).then_some(Event::RunPaused { status, reason })
        } else if p.state.final_status.is_some() {
            // Already finished (a cancel writes its own end).
            None
        } else {
            let outputs = if status == RunStatus::Succeeded {
                self.render_outputs(run_id, &p.playbook, &p.state, &p.finished)
            } else {
                Value::Object(Map::new())
            };
            Some(Event::RunFinished {
                status,
                outputs,
                error,
            })
        };
        if let Some(event) = end {
            let closure = match &event {
                Event::RunFinished { outputs, .. } => {
                    Some(crate::operations::metrics::closure(status, outputs))
                }
                _ => None,
            };
            self.append(run_id, event).await?;
            if let Some(closure) = closure {
                crate::observe::run_finished(&p.playbook.name, status);
                crate::observe::run_closed(&p.playbook.name, &closure);
            }
            records.extend(collecting.take());
        }
        // The report a reader gets (`GET /api/v1/runs/{id}`, a `?wait=`
        // answer), kept now from the records in hand.
        crate::operations::keep_report(&self.journal, run_id, &records);
        Ok(RunReport::from_records(run_id, &records, Some(&p.playbook)))
    }
}

/// How a drive ended, for the journal's live-run index on a cluster: a
/// failure another node may not meet (the cluster unavailable, the run
/// owned elsewhere) leaves the run to a takeover; any other is parked.
pub(super) fn drive_end(result: &Result<RunReport, EngineError>) -> DriveEnd {
    match result {
        Ok(report) => DriveEnd::Status(report.status),
        Err(EngineError::Journal(JournalError::Storage(_) | JournalError::NotOwner(_))) => {
            DriveEnd::Interrupted
        }
        Err(_) => DriveEnd::Failed,
    }
}
