//! Metrics: what `soar serve` exposes at `/metrics` (Prometheus). The
//! engine, the journal and the server call these; without a recorder
//! installed (every other command) they cost next to nothing. Labels are
//! bounded sets (playbook, plugin.action, status, source), never run ids.

use crate::journal::{Decision, RunStatus};
use std::time::Duration;

/// A run was started.
pub fn run_started(playbook: &str) {
    metrics::counter!("soar_runs_started_total", "playbook" => playbook.to_string()).increment(1);
}

/// A duplicate delivery was merged into an existing run of `playbook`.
pub fn alert_merged(playbook: &str) {
    metrics::counter!("soar_alerts_merged_total", "playbook" => playbook.to_string()).increment(1);
}

/// An alert joined an open run's group (`alert_grouped`).
pub fn alert_grouped(playbook: &str) {
    metrics::counter!("soar_alerts_grouped_total", "playbook" => playbook.to_string()).increment(1);
}

/// The events of one webhook delivery to `source` came to `outcome` each
/// (a delivery of one event counts one).
pub fn webhook_events(source: &str, outcome: &'static str, n: u64) {
    metrics::counter!(
        "soar_webhook_events_total",
        "source" => source.to_string(),
        "outcome" => outcome
    )
    .increment(n);
}

/// A run reached a final status.
pub fn run_finished(playbook: &str, status: RunStatus) {
    metrics::counter!(
        "soar_runs_finished_total",
        "playbook" => playbook.to_string(),
        "status" => status.as_str()
    )
    .increment(1);
}

/// A run was closed for `closure` (its `closure`/`outcome` output, else
/// its status; see docs/metrics.md). An output can carry alert text, so
/// only the documented reasons become labels; any other counts as `other`
/// (the summary from the journal keeps them).
pub fn run_closed(playbook: &str, closure: &str) {
    const KNOWN: [&str; 10] = [
        "benign",
        "false_positive",
        "true_positive",
        "incident",
        "duplicate",
        "suppressed",
        "closed",
        "failed",
        "cancelled",
        "contained",
    ];
    let label = KNOWN
        .iter()
        .find(|k| **k == closure)
        .copied()
        .unwrap_or("other");
    metrics::counter!(
        "soar_runs_closed_total",
        "playbook" => playbook.to_string(),
        "closure" => label
    )
    .increment(1);
}

/// An attempt of `uses` (`plugin.action`) ended with `outcome` (`ok` or an
/// error kind).
pub fn attempt(uses: &str, outcome: &str, took: Duration) {
    metrics::counter!(
        "soar_attempts_total",
        "action" => uses.to_string(),
        "outcome" => outcome.to_string()
    )
    .increment(1);
    metrics::histogram!("soar_attempt_duration_seconds", "action" => uses.to_string())
        .record(took.as_secs_f64());
}

/// An approval gate was decided; `requested_at` is its request's time.
pub fn approval_decided(requested_at: &str, decision: Decision) {
    let asked = crate::journal::parse_unix_millis(requested_at).unwrap_or(0);
    let waited = crate::journal::now_unix_millis().saturating_sub(asked);
    metrics::histogram!("soar_approval_wait_seconds", "decision" => decision.as_str())
        .record(waited as f64 / 1000.0);
}

/// A webhook delivery to `source` came to `outcome` (`accepted`,
/// `duplicate`, `bad_signature`, `stale`, `too_large`, `rate_limited`,
/// `invalid`, `unavailable`).
pub fn webhook(source: &str, outcome: &'static str) {
    metrics::counter!(
        "soar_webhook_requests_total",
        "source" => source.to_string(),
        "outcome" => outcome
    )
    .increment(1);
}

/// One physical journal flush took `took`.
pub fn journal_flush(took: Duration) {
    metrics::histogram!("soar_journal_flush_seconds").record(took.as_secs_f64());
}

/// Runs now paused, by why.
pub fn paused_runs(waiting_approval: usize, in_doubt: usize) {
    metrics::gauge!("soar_runs_waiting_approval").set(waiting_approval as f64);
    metrics::gauge!("soar_runs_in_doubt").set(in_doubt as f64);
}
