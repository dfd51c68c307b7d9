//! `soar test record RUN_ID`: a case from a real run's journal. Its alert
//! and starter, every attempt's recorded output or error as the canned
//! answer (per attempt, per item), each approval plan's dry-run answer, the
//! votes or expiry given, and the run's actual outcome as the expectation.
//! An author edits the expectation to what the run should have done.

use super::case::{
    Answer, Approval, CallExpect, CallPattern, CannedError, Case, Expect, StepExpect,
};
use crate::journal::{AttemptOutcome, Decision, Event, Record, Vote};
use crate::scheduler::RunReport;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Attempts of one step item, by attempt number.
type Attempts = BTreeMap<u32, Answer>;

/// The case `records` (one run's journal) come to; `destructive` tells
/// which `plugin.action`s change the world (for `calls`/`no_calls`), and
/// `uses` maps each step of the playbook to its action.
pub fn case_of(
    name: &str,
    run_id: &str,
    records: &[Record],
    uses: &BTreeMap<String, String>,
    destructive: &dyn Fn(&str) -> bool,
) -> Result<Case, String> {
    let Some(Event::RunStarted {
        alert, started_by, ..
    }) = records.first().map(|r| &r.event)
    else {
        return Err("the journal has no run_started record".into());
    };
    let report = RunReport::from_records("recorded", records, None);
    if !report.status.is_final() && report.pending_approvals.is_empty() {
        return Err(format!(
            "the run is {}: record it once it has ended or waits for an approval",
            report.status
        ));
    }
    let mut case = Case {
        name: name.to_string(),
        description: format!(
            "Recorded from run {} ({}).",
            run_id,
            records.first().map(|r| r.at.as_str()).unwrap_or_default()
        ),
        started_by: started_by.clone(),
        alert: Some(alert.clone()),
        ..Case::default()
    };
    case.answers = answers(records);
    // Built-in state actions run for real in a test: what the run read is
    // the case's `state:`, so its decisions replay after the tables changed.
    case.answers
        .retain(|step, _| !uses.get(step).is_some_and(|u| u.starts_with("state.")));
    case.state = state_read(records);
    case.approvals = approvals(records);
    // The id of the run being recorded is another in every test run.
    let expect = expect(&report, records, uses, destructive);
    case.expect = serde_json::to_value(&expect)
        .map(|v| super::check::substitute(&v, run_id, super::check::RUN_ID))
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())?;
    Ok(case)
}

/// The entries the run's `state.*` reads found, by table and key.
fn state_read(records: &[Record]) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut tables: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut inputs: BTreeMap<(String, Option<u32>), (String, String)> = BTreeMap::new();
    for r in records {
        match &r.event {
            Event::AttemptStarted {
                step,
                item,
                plugin,
                action,
                input,
                ..
            } if plugin == crate::state::actions::PLUGIN => {
                let table = input["table"].as_str().unwrap_or_default().to_string();
                inputs.insert((step.clone(), *item), (table, action.clone()));
            }
            Event::AttemptFinished {
                step,
                item,
                outcome: AttemptOutcome::Ok { output },
                ..
            } => {
                let Some((table, action)) = inputs.get(&(step.clone(), *item)) else {
                    continue;
                };
                let found: Vec<&Value> = match action.as_str() {
                    "get" => vec![output],
                    crate::state::actions::SUPPRESS => vec![&output["entry"]],
                    "lookup" => output["entries"]
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                        .collect(),
                    "scan" => output["entries"].as_array().into_iter().flatten().collect(),
                    _ => Vec::new(),
                };
                for e in found
                    .into_iter()
                    .filter(|e| e["found"] == Value::Bool(true))
                {
                    if let Some(key) = e["key"].as_str() {
                        let t = tables.entry(table.clone()).or_default();
                        t.insert(key.to_string(), e["value"].clone());
                    }
                }
            }
            _ => {}
        }
    }
    tables
}

/// Each step's recorded results: an answer per attempt, per item.
fn answers(records: &[Record]) -> BTreeMap<String, Answer> {
    let mut by_step: BTreeMap<String, BTreeMap<Option<u32>, Attempts>> = BTreeMap::new();
    let mut plans: BTreeMap<String, Value> = BTreeMap::new();
    for r in records {
        match &r.event {
            Event::AttemptFinished {
                step,
                item,
                attempt,
                outcome,
                ..
            } => {
                let answer = match outcome {
                    AttemptOutcome::Ok { output } => Answer {
                        output: Some(output.clone()),
                        ..Answer::default()
                    },
                    AttemptOutcome::Err {
                        kind,
                        message,
                        retry_after_ms,
                    } => Answer {
                        error: Some(CannedError {
                            kind: kind.clone(),
                            message: message.clone(),
                            retry_after: retry_after_ms.map(Duration::from_millis),
                        }),
                        ..Answer::default()
                    },
                };
                let items = by_step.entry(step.clone()).or_default();
                items.entry(*item).or_default().insert(*attempt, answer);
            }
            Event::ApprovalRequested { plan, .. } => {
                for entry in plan.as_array().into_iter().flatten() {
                    if let (Some(step), Some(p)) = (entry["step"].as_str(), entry.get("plan")) {
                        plans.entry(step.to_string()).or_insert_with(|| p.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut out: BTreeMap<String, Answer> = by_step
        .into_iter()
        .map(|(step, items)| (step, item_answers(items)))
        .collect();
    for (step, plan) in plans {
        out.entry(step).or_default().plan = Some(plan);
    }
    out
}

/// One step's answer from its items' attempts.
fn item_answers(items: BTreeMap<Option<u32>, Attempts>) -> Answer {
    let per_attempt = |attempts: Attempts| {
        let mut list: Vec<Answer> = attempts.into_values().collect();
        if list.len() == 1 {
            list.remove(0)
        } else {
            Answer {
                attempts: Some(list),
                ..Answer::default()
            }
        }
    };
    if items.keys().all(Option::is_none) {
        return items
            .into_values()
            .next()
            .map(per_attempt)
            .unwrap_or_default();
    }
    Answer {
        items: Some(items.into_values().map(per_attempt).collect()),
        ..Answer::default()
    }
}

/// The votes given, and expiries, in journal order.
fn approvals(records: &[Record]) -> Vec<Approval> {
    let mut out = Vec::new();
    for r in records {
        match &r.event {
            Event::ApprovalVoted {
                step,
                by,
                vote,
                reason,
            } => out.push(Approval {
                step: step.clone(),
                by: Some(by.clone()),
                vote: Some(match vote {
                    Vote::Approve => "approve".into(),
                    Vote::Deny => "deny".into(),
                }),
                reason: reason.clone(),
                ..Approval::default()
            }),
            Event::ApprovalDecided {
                step,
                decision: Decision::Expired,
                ..
            } => out.push(Approval {
                step: step.clone(),
                expires: true,
                ..Approval::default()
            }),
            _ => {}
        }
    }
    out
}

/// The run's outcome as the expectation: status, every step's status (and
/// error kind), blocked rules, outputs, and the destructive calls made and
/// not made.
fn expect(
    report: &RunReport,
    records: &[Record],
    uses: &BTreeMap<String, String>,
    destructive: &dyn Fn(&str) -> bool,
) -> Expect {
    let steps = report
        .steps
        .iter()
        .map(|(id, s)| {
            let kind = s.error.as_ref().and_then(|e| e.get("kind")?.as_str());
            let want = match kind {
                Some(k) if s.status != "skipped" => StepExpect::Full {
                    status: Some(s.status.clone()),
                    error: Some(k.to_string()),
                    output: None,
                },
                _ => StepExpect::Status(s.status.clone()),
            };
            (id.clone(), want)
        })
        .collect();
    let outputs = report
        .outputs
        .as_object()
        .map(|o| o.clone().into_iter().collect())
        .unwrap_or_default();
    let mut calls = Vec::new();
    let mut made = std::collections::BTreeSet::new();
    for r in records {
        if let Event::AttemptStarted {
            plugin,
            action,
            input,
            dry_run: false,
            ..
        } = &r.event
        {
            let u = format!("{plugin}.{action}");
            if destructive(&u) {
                made.insert(u.clone());
                calls.push(CallExpect {
                    uses: u,
                    input: Some(input.clone()),
                    times: None,
                });
            }
        }
    }
    calls.dedup();
    let mut no_calls: Vec<CallPattern> = uses
        .values()
        .filter(|u| destructive(u) && !made.contains(*u))
        .map(|u| CallPattern::Uses(u.clone()))
        .collect();
    no_calls.dedup();
    Expect {
        status: Some(report.status.to_string()),
        steps,
        blocked: Some(super::check::blocked_rules(report)),
        outputs,
        calls,
        no_calls,
    }
}
