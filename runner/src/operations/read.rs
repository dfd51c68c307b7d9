//! Reading runs: the list, one run's report, the approvals waiting.

use super::{read_run, OpError};
use crate::journal::{Journal, RunStatus, RunSummary};
use crate::scheduler::{RunReport, RunState};
use serde_json::Value;

/// Every run, or those with `status` (a [`RunStatus`] name).
pub fn list_runs(journal: &Journal, status: Option<&str>) -> Result<Vec<RunSummary>, OpError> {
    let want = match status {
        Some(w) => Some(
            w.parse::<RunStatus>()
                .map_err(|e| OpError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    // A status a run can leave is only held by a run in the unfinished
    // index: no need to read the history.
    let ids = match want {
        Some(w) if !w.is_final() => journal.live_run_ids()?,
        _ => journal.run_ids()?,
    };
    let mut rows = Vec::new();
    for id in ids {
        match journal.summary(&id) {
            Ok(s) if status.is_none_or(|want| want == s.status.as_str()) => rows.push(s),
            Ok(_) => {}
            Err(e) => tracing::warn!(run_id = %id, error = %e, "unreadable run"),
        }
    }
    Ok(rows)
}

/// One run's report (`soar status --json`).
pub fn status(journal: &Journal, run_id: &str) -> Result<RunReport, OpError> {
    let records = read_run(journal, run_id)?;
    Ok(RunReport::from_records(run_id, &records, None))
}

/// Every approval waiting for a decision, as `soar pending --json` shows it;
/// with `console` (the server's `public_url`), each with the address of its
/// page in the web console.
pub fn pending(
    journal: &Journal,
    now_ms: u64,
    console: Option<&str>,
) -> Result<Vec<Value>, OpError> {
    let mut entries = Vec::new();
    for id in journal.live_run_ids()? {
        match journal.summary(&id) {
            Ok(s) if s.status == RunStatus::WaitingApproval => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(run_id = %id, error = %e, "unreadable run");
                continue;
            }
        }
        let Ok(records) = journal.read(&id) else {
            continue;
        };
        let state = RunState::from_records(&records);
        entries.extend(state.pending_approvals(&id, now_ms));
    }
    if let Some(base) = console {
        for e in &mut entries {
            let link = console_link(
                base,
                e["run_id"].as_str().unwrap_or(""),
                e["step"].as_str().unwrap_or(""),
            );
            e["console"] = Value::String(link);
        }
    }
    Ok(entries)
}

/// The console page of approval `step` of `run_id` under `base`.
pub fn console_link(base: &str, run_id: &str, step: &str) -> String {
    let seg = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "{}/ui/runs/{}/approvals/{}",
        base.trim_end_matches('/'),
        seg(run_id),
        seg(step)
    )
}
