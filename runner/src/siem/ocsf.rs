//! One journal record as an OCSF 1.3 Base Event (`class_uid` 0), the form
//! SIEMs and data lakes that read OCSF take as is. soar's decision fields,
//! normalised across record types, are in `unmapped.soar` (OCSF's place for
//! attributes outside its schema): `run`, `playbook`, `step`, `action`,
//! `targets`, `principal`, `decision`, `outcome`. See `docs/siem.md`.

use crate::journal::{parse_unix_millis, AttemptOutcome, Event, Record};
use serde_json::{json, Value};

/// The normalised decision fields of `event`.
#[derive(Default)]
struct Fields {
    step: Option<String>,
    action: Option<String>,
    targets: Vec<String>,
    principal: Option<String>,
    decision: Option<String>,
    outcome: Option<String>,
    message: String,
}

fn fields(event: &Event) -> Fields {
    let mut f = Fields::default();
    match event {
        Event::RunStarted { started_by, .. } => {
            f.principal = Some(started_by.clone());
            f.message = format!("run started by {started_by}");
        }
        Event::AlertMerged { by, count, .. } => {
            f.principal = Some(by.clone());
            f.message = format!("a repeat delivery by {by} merged into the run ({count} so far)");
        }
        Event::AlertGrouped { by, count, .. } => {
            f.principal = Some(by.clone());
            f.message = format!("an alert from {by} joined the run's group ({count} so far)");
        }
        Event::AttemptStarted {
            step,
            plugin,
            action,
            attempt,
            ..
        } => {
            f.step = Some(step.clone());
            f.action = Some(format!("{plugin}.{action}"));
            f.message = format!("attempt {attempt} of {plugin}.{action}");
        }
        Event::AttemptFinished {
            step,
            outcome,
            attempt,
            ..
        } => {
            f.step = Some(step.clone());
            f.outcome = Some(match outcome {
                AttemptOutcome::Ok { .. } => "ok".into(),
                AttemptOutcome::Err { kind, .. } => kind.clone(),
            });
            f.message = format!(
                "attempt {attempt} ended {}",
                f.outcome.as_deref().unwrap_or("")
            );
        }
        Event::StepFinished { step, status, .. } => {
            f.step = Some(step.clone());
            f.outcome = Some(status.clone());
            f.message = format!("step {step} {status}");
        }
        Event::StepSkipped { step, reason } => {
            f.step = Some(step.clone());
            f.outcome = Some("skipped".into());
            f.message = format!("step {step} skipped: {reason}");
        }
        Event::ApprovalRequested { step, bindings, .. } => {
            f.step = Some(step.clone());
            f.targets = bindings.iter().flat_map(|b| b.targets.clone()).collect();
            f.action = bindings.first().map(|b| b.uses.clone());
            f.message = format!("approval {step} requested");
        }
        Event::ApprovalVoted {
            step,
            by,
            vote,
            reason,
        } => {
            f.step = Some(step.clone());
            f.principal = Some(by.clone());
            f.decision = Some(
                serde_json::to_value(vote)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            );
            f.message = format!("{by} voted on {step}: {reason}");
        }
        Event::ApprovalDecided {
            step,
            decision,
            by,
            reason,
        } => {
            f.step = Some(step.clone());
            f.principal = Some(by.join(","));
            f.decision = Some(decision.as_str().to_string());
            f.message = format!("approval {step} {}: {reason}", decision.as_str());
        }
        Event::ActionAuthorized {
            step,
            uses,
            targets,
            ..
        } => {
            f.step = Some(step.clone());
            f.action = Some(uses.clone());
            f.targets = targets.clone();
            f.decision = Some("authorized".into());
            f.message = format!("{uses} authorized");
        }
        Event::CommandRefused {
            command,
            step,
            by,
            reason,
        } => {
            f.step = step.clone();
            f.principal = Some(by.clone());
            f.decision = Some("refused".into());
            f.message = format!("{command} by {by} refused: {reason}");
        }
        Event::OperatorResolved {
            step, by, reason, ..
        } => {
            f.step = Some(step.clone());
            f.principal = Some(by.clone());
            f.decision = Some("resolved".into());
            f.message = format!("{step} resolved by {by}: {reason}");
        }
        Event::RunTakenOver { node, reason } => {
            f.principal = Some(format!("node:{node}"));
            f.message = format!("taken over by node {node}: {reason}");
        }
        Event::RunCancelled { by, reason } => {
            f.principal = Some(by.clone());
            f.decision = Some("cancelled".into());
            f.message = format!("cancelled by {by}: {reason}");
        }
        Event::RunFinished { status, .. } | Event::RunPaused { status, .. } => {
            f.outcome = Some(status.to_string());
            f.message = format!("run {status}");
        }
        other => f.message = other.kind().to_string(),
    }
    f
}

/// OCSF severity: refusals, blocks and doubt stand out.
fn severity(event: &Event, f: &Fields) -> (u8, &'static str) {
    let notable = matches!(event, Event::CommandRefused { .. })
        || matches!(
            f.outcome.as_deref(),
            Some("blocked" | "in_doubt" | "failed")
        )
        || matches!(f.decision.as_deref(), Some("denied" | "expired"));
    if notable {
        (3, "Medium")
    } else {
        (1, "Informational")
    }
}

/// Caps what the raw event may add to one line.
const RAW_CAP: usize = 16 * 1024;

/// `record` of run `run_id` (playbook `playbook`) as one OCSF event.
pub fn event(run_id: &str, playbook: &str, record: &Record) -> Value {
    let f = fields(&record.event);
    let (severity_id, severity) = severity(&record.event, &f);
    let kind = record.event.kind();
    let status = match f.outcome.as_deref() {
        Some("ok" | "succeeded") => (1, "Success"),
        Some(_)
            if !matches!(
                f.outcome.as_deref(),
                Some("skipped" | "waiting_approval" | "running")
            ) =>
        {
            (2, "Failure")
        }
        _ => (0, "Unknown"),
    };
    let mut raw = serde_json::to_string(&record.event).unwrap_or_default();
    if raw.len() > RAW_CAP {
        let mut cut = RAW_CAP;
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        raw.truncate(cut);
        raw.push_str("…(truncated)");
    }
    json!({
        "time": parse_unix_millis(&record.at).unwrap_or(0),
        "class_uid": 0,
        "class_name": "Base Event",
        "category_uid": 0,
        "category_name": "Uncategorized",
        "activity_id": 99,
        "activity_name": kind,
        "type_uid": 99,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status.0,
        "status": status.1,
        "message": f.message,
        "actor": f.principal.as_ref().map(|p| json!({"user": {"name": p}})),
        "metadata": {
            "uid": format!("{run_id}:{}", record.seq),
            "correlation_uid": run_id,
            "original_time": record.at,
            "log_name": "soar-journal",
            "version": "1.3.0",
            "product": {"name": "soar", "vendor_name": "soar", "version": env!("CARGO_PKG_VERSION")},
        },
        "raw_data": raw,
        "unmapped": {"soar": {
            "run": run_id,
            "playbook": playbook,
            "seq": record.seq,
            "hash": record.hash,
            "type": kind,
            "step": f.step,
            "action": f.action,
            "targets": f.targets,
            "principal": f.principal,
            "decision": f.decision,
            "outcome": f.outcome,
        }},
    })
}

/// The newest signed checkpoint, as an event: whoever keeps the SIEM's
/// copy can check with `soar journal verify --all --anchor N:HASH` that
/// the journal still holds it (the newest checkpoints were not deleted and
/// every run rolled back to match), and with `--anchor 1:GENESIS` that
/// trust still starts where it started (`genesis`: checkpoint 1's hash).
pub fn anchor(n: u64, hash: &str, key_id: &str, genesis: Option<&str>) -> Value {
    json!({
        "time": crate::journal::now_unix_millis(),
        "class_uid": 0,
        "class_name": "Base Event",
        "category_uid": 0,
        "category_name": "Uncategorized",
        "activity_id": 99,
        "activity_name": "journal_checkpoint",
        "type_uid": 99,
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 0,
        "status": "Unknown",
        "message": format!("journal checkpoint {n}: {hash} (key {key_id}); verify with --anchor {n}:{hash}"),
        "metadata": {
            "uid": format!("checkpoint:{n}"),
            "log_name": "soar-journal",
            "version": "1.3.0",
            "product": {"name": "soar", "vendor_name": "soar", "version": env!("CARGO_PKG_VERSION")},
        },
        "unmapped": {"soar": {"type": "journal_checkpoint", "checkpoint": n, "checkpoint_hash": hash, "key_id": key_id, "genesis_hash": genesis}},
    })
}
