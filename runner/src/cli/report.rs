//! `soar report`: the investigation-compression summary (see
//! [`crate::operations::metrics`]) over the last `--since`, from the
//! journal or through a running server, as text or `--json`.

use super::runs::{journal, op_exit};
use super::{Exit, Globals};
use crate::operations::metrics::{self, Dist, Figures, Summary};
use serde_json::Value;
use std::time::Duration;

/// What `soar report` was asked.
pub struct ReportArgs {
    /// The period: the last this long.
    pub since: Duration,
    /// Only this playbook.
    pub playbook: Option<String>,
    /// Enrichment steps that make a run enriched.
    pub enriched_steps: usize,
    /// JSON instead of text.
    pub json: bool,
}

impl ReportArgs {
    /// The operations' query: from `now - since` to now.
    pub fn query(&self, now_ms: u64) -> metrics::Query {
        let since = u64::try_from(self.since.as_millis()).unwrap_or(u64::MAX);
        metrics::Query {
            from_ms: now_ms.saturating_sub(since),
            to_ms: now_ms.saturating_add(1),
            playbook: self.playbook.clone(),
            enriched_steps: self.enriched_steps,
        }
    }
}

/// `soar report` against the journal.
pub fn report(globals: &Globals, args: &ReportArgs) -> Exit {
    if let Err(e) = metrics::check_enriched_steps(args.enriched_steps) {
        return Exit::invalid(format!("error: --enriched-steps: {e}"));
    }
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let q = args.query(crate::journal::now_unix_millis());
    match metrics::summary(&journal, &q) {
        Ok(s) => print(&s, args.json),
        Err(e) => op_exit(e),
    }
}

/// Prints `s` as JSON or text.
pub fn print(s: &Summary, json: bool) -> Exit {
    if json {
        println!("{}", serde_json::to_string(s).unwrap_or_default());
        return Exit::ok();
    }
    println!(
        "runs started {} .. {} (enriched = {} enrichment step(s) succeeded)",
        s.from, s.to, s.enriched_steps
    );
    print_figures("all playbooks", &s.total);
    for (name, f) in &s.playbooks {
        print_figures(&format!("playbook {}", crate::inert::line(name)), f);
    }
    for (name, f) in &s.sources {
        print_figures(&format!("source {}", crate::inert::line(name)), f);
    }
    Exit::ok()
}

/// Prints a summary a server answered (`GET /api/v1/metrics/summary`).
pub fn print_value(v: &Value, json: bool) -> Exit {
    if json {
        println!("{v}");
        return Exit::ok();
    }
    match serde_json::from_value::<Summary>(v.clone()) {
        Ok(s) => print(&s, false),
        Err(e) => Exit::failed(format!("error: the server's summary does not read: {e}")),
    }
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{:.1}%", r * 100.0))
}

fn dist(d: &Dist) -> String {
    match (d.p50, d.p90, d.max) {
        (Some(p50), Some(p90), Some(max)) => format!(
            "median {p50:.1} s, p90 {p90:.1} s, max {max:.1} s (n={})",
            d.count
        ),
        _ => "none".into(),
    }
}

fn print_figures(title: &str, f: &Figures) {
    let a = &f.approvals;
    let r = &f.response_actions;
    let closures: Vec<String> = f
        .closures
        .iter()
        .map(|(k, v)| format!("{} {v}", crate::inert::line(k)))
        .collect();
    println!(
        "\n{title}: {} run(s), {} finished, {} in doubt",
        f.runs, f.finished, f.in_doubt
    );
    println!("  alert to enriched:   {}", dist(&f.time_to_enriched_s));
    println!("  alert to decision:   {}", dist(&f.time_to_decision_s));
    println!("  approvals:           {} asked, {} granted, {} denied, {} expired; accepted {}; answered {}",
        a.requested, a.granted, a.denied, a.expired, pct(a.acceptance_rate), dist(&a.latency_s));
    println!(
        "  automation:          {} of {} finished run(s) closed with no human ({})",
        f.automated,
        f.finished,
        pct(f.automation_rate)
    );
    println!(
        "  repeat alerts:       {} of {} ({})",
        f.repeat_alerts.repeats,
        f.repeat_alerts.alerts,
        pct(f.repeat_alerts.rate)
    );
    println!(
        "  closures:            {}",
        if closures.is_empty() {
            "none".into()
        } else {
            closures.join(", ")
        }
    );
    println!(
        "  response actions:    {} authorized, {} succeeded ({}), {} blocked",
        r.authorized,
        r.succeeded,
        pct(r.success_rate),
        r.blocked
    );
}
