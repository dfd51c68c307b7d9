//! Reading runs: the list, one run's report, the approvals waiting.

use super::{derived, read_run, OpError};
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

/// The derived tree of paused and finished runs' reports.
const REPORTS: &str = "report";

/// One run's report (`soar status --json`, `GET /api/v1/runs/{id}`). A
/// paused or finished run's report is kept beside the journal under its
/// head, so reading it again costs a head look-up and the report, not a
/// pass over every record. A running run's is derived each time, and so is
/// one waiting for an approval (its ages depend on the clock).
pub fn status(journal: &Journal, run_id: &str) -> Result<RunReport, OpError> {
    let seq = journal.head_seq(run_id).ok().flatten();
    let cache = journal.derived(REPORTS)?;
    if let Some(report) = seq.and_then(|s| derived::get(&cache, run_id, s)) {
        return Ok(report);
    }
    let records = read_run(journal, run_id)?;
    Ok(keep_report(journal, run_id, &records))
}

/// The report of a run whose whole journal is `records`, kept if the run
/// is settled (see [`status`]). The executor calls it at the end of a drive
/// with the records it holds, so the first read after a run ends (a
/// `?wait=` answer) does not read them all back.
pub fn keep_report(
    journal: &Journal,
    run_id: &str,
    records: &[crate::journal::Record],
) -> RunReport {
    let report = RunReport::from_records(run_id, records, None);
    let settled = report.status != RunStatus::Running && report.pending_approvals.is_empty();
    if let (true, Some(last)) = (settled, records.last()) {
        if let Ok(cache) = journal.derived(REPORTS) {
            derived::put(&cache, run_id, last.seq, &report);
        }
    }
    report
}

/// Recomputes every cached report (see [`derived::check`]).
pub fn check_reports(journal: &Journal) -> Result<Vec<String>, crate::journal::JournalError> {
    derived::check(journal, REPORTS, |run_id, records| {
        Some(RunReport::from_records(run_id, records, None))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Durability, Event};
    use serde_json::json;

    fn ev(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn a_settled_report_is_read_from_its_cache_and_an_edited_one_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), Durability::Process).unwrap();
        let started = json!({"type": "run_started", "playbook": "pb", "version": "1", "playbook_path": "p.yaml",
            "playbook_sha256": "0", "inputs": {}, "alert": {}, "started_by": "alice"});
        for run in ["done", "gated"] {
            j.append(run, ev(started.clone())).await.unwrap();
        }
        j.append("done", ev(json!({"type": "step_finished", "step": "host", "status": "succeeded", "output": {"hostname": "FIN-WS-042"}})))
            .await
            .unwrap();
        j.append(
            "done",
            ev(json!({"type": "run_finished", "status": "succeeded", "outputs": {}})),
        )
        .await
        .unwrap();
        j.append("gated", ev(json!({"type": "approval_requested", "step": "approve", "approvers": ["soc-lead"], "min_approvals": 1,
            "expires_at": "2099-01-01T00:00:00.000Z", "handoff": {}, "bindings": [], "plan": null}))).await.unwrap();
        j.append(
            "gated",
            ev(json!({"type": "run_paused", "status": "waiting_approval", "reason": "gate"})),
        )
        .await
        .unwrap();
        let done = status(&j, "done").unwrap();
        let gated = status(&j, "gated").unwrap();
        assert_eq!(gated.pending_approvals.len(), 1);
        let cache = j.derived(REPORTS).unwrap();
        // Only the finished run's report is kept: the gated one's ages
        // follow the clock.
        let kept: Vec<String> = cache.iter().map(|e| e.unwrap().0).collect();
        assert_eq!(kept, ["done"]);
        assert_eq!(status(&j, "done").unwrap(), done);
        let mut entry: serde_json::Value =
            serde_json::from_slice(&cache.get("done").unwrap().unwrap()).unwrap();
        entry["value"]["steps"]["host"]["output"]["hostname"] = json!("DC01");
        cache.put("done", entry.to_string().as_bytes()).unwrap();
        let forged = status(&j, "done").unwrap();
        assert_eq!(
            forged.steps["host"].output,
            Some(json!({"hostname": "DC01"}))
        );
        let problems = check_reports(&j).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0]
            .starts_with("run done: its cached report (tree derived:report) does not match"));
        assert_eq!(status(&j, "done").unwrap(), done);
    }
}
