//! What each console page shows, built from a run's journal: plain JSON
//! for the templates, with every value from an alert, a connector or a
//! vendor left as text for the template engine to escape.

use super::words;
use crate::approvals::preview;
use crate::config::Policy;
use crate::journal::{format_unix_millis, Record};
use crate::playbook::Playbook;
use crate::scheduler::{self, GateState, RunState};
use crate::template::Templates;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Longest rendering of one JSON value on a page; the journal has it whole.
const MAX_SHOWN: usize = 16 * 1024;

/// `value` pretty-printed, cut at [`MAX_SHOWN`] bytes.
pub fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    if text.len() <= MAX_SHOWN {
        return text;
    }
    let mut end = MAX_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… ({} bytes more in the journal)",
        &text[..end],
        text.len() - end
    )
}

/// "3m 20s".
pub fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// Alerts that joined the run's group since it started, for the evidence
/// (the first 100 in full, then a count: a page stays readable).
pub fn grouped(state: &RunState) -> Value {
    let shown_alerts: Vec<String> = state.grouped.iter().take(100).map(shown).collect();
    json!({"count": state.grouped.len(), "alerts": shown_alerts})
}

/// The run's records as timeline rows: the time, what happened in words,
/// the step, and a short detail.
pub fn timeline(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let e = serde_json::to_value(&r.event).unwrap_or(Value::Null);
            let kind = e["type"].as_str().unwrap_or("?").to_string();
            let time = r.at.get(11..23).unwrap_or(&r.at).to_string();
            json!({"seq": r.seq, "at": r.at, "time": time, "type": kind,
                   "step": e["step"].as_str().unwrap_or(""), "what": super::words::event(&e)})
        })
        .collect()
}

/// A JSON value as rows of dotted path and text, for a key/value table
/// (at most [`MAX_ROWS`]; the raw JSON is one click away). Probe answers
/// (`effects.ACTION: true`) read as words: "in effect" / "not in effect".
pub fn rows(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    flatten("", value, &mut out);
    if out.len() > MAX_ROWS {
        let more = out.len() - MAX_ROWS;
        out.truncate(MAX_ROWS);
        out.push(json!({"k": "…", "v": format!("{more} more field(s) in the raw JSON")}));
    }
    out
}

/// Rows one key/value table shows.
const MAX_ROWS: usize = 200;

fn flatten(path: &str, value: &Value, out: &mut Vec<Value>) {
    if out.len() > MAX_ROWS {
        return;
    }
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Object(o) if !o.is_empty() => o.iter().for_each(|(k, v)| flatten(&child(k), v, out)),
        Value::Array(a) if a.iter().all(|v| !v.is_object() && !v.is_array()) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            out.push(json!({"k": path, "v": items.join(", ")}));
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&child(&i.to_string()), v, out)),
        Value::Bool(b) if path.rsplit('.').nth(1) == Some("effects") => {
            let words = if *b { "in effect" } else { "not in effect" };
            out.push(json!({"k": path, "v": words}));
        }
        other => out.push(json!({"k": path, "v": shown(&Value::String(scalar(other)))})),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

/// What the console knows beside the journal: how each action describes
/// itself, and the criticality the state tables give a target.
pub struct Lookups<'a> {
    /// `plugin.action` to its manifest's description.
    pub describe: &'a dyn Fn(&str) -> Option<String>,
    /// A target's names to "critical (table `assets`)".
    pub criticality: &'a dyn Fn(&[String]) -> Option<String>,
}

/// The destructive steps a gate covers: in plain words, with their targets
/// named, rated and checked against the policy before the vote
/// ([`preview`]), and their inputs rendered as the engine will render them.
/// Also every reason approving cannot make one act.
pub fn unlocks(
    gate: &GateState,
    state: &RunState,
    run_id: &str,
    playbook: Option<&Playbook>,
    (policy, lookups): (&Policy, &Lookups),
) -> (Vec<Value>, Vec<String>) {
    let templates = Templates::new();
    let ctx = scheduler::context(run_id, state, &state.finished);
    let previews = preview::preview(policy, gate);
    let blocked = previews.iter().flat_map(|p| p.blocked.clone()).collect();
    let steps = previews
        .iter()
        .map(|p| {
            let input = playbook
                .and_then(|pb| pb.steps.iter().find(|s| s.id == p.step))
                .map(|s| match templates.render_value(&s.with, &ctx) {
                    Ok(v) => shown(&v),
                    Err(e) => format!("(cannot be rendered yet: {e})"),
                })
                .unwrap_or_else(|| "(the playbook is not loaded)".into());
            let targets: Vec<Value> = p
                .targets
                .iter()
                .map(|t| {
                    let mut keys = vec![t.value.clone()];
                    keys.extend(t.names.iter().cloned());
                    json!({"shown": preview::shown_name(t), "protected": t.protected,
                           "criticality": (lookups.criticality)(&keys)})
                })
                .collect();
            let on: Vec<String> = p.targets.iter().map(preview::shown_name).collect();
            let what = (lookups.describe)(&p.uses).unwrap_or_else(|| "a destructive action".into());
            let sentence = if on.is_empty() {
                format!("Step {} runs {} ({what}).", p.step, p.uses)
            } else {
                format!("Step {} runs {} on {} ({what}).", p.step, p.uses, on.join(", "))
            };
            json!({"step": p.step, "uses": p.uses, "sentence": sentence, "targets": targets, "input": input})
        })
        .collect();
    (steps, blocked)
}

/// The handoff's fields in reading order.
pub fn handoff(gate: &GateState) -> Vec<Value> {
    [
        "summary",
        "why",
        "affected",
        "recommended_action",
        "uncertainties",
    ]
    .iter()
    .filter_map(|f| {
        let v = &gate.handoff[*f];
        (!v.is_null() && v != &json!("")).then(|| json!({"name": f, "value": shown(v)}))
    })
    .collect()
}

/// The gate's plan entries.
pub fn plan(gate: &GateState) -> Vec<Value> {
    gate.plan
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|p| {
                    let body = p.get("plan").or_else(|| p.get("error")).unwrap_or(p);
                    json!({"step": p["step"], "rows": rows(body), "raw": shown(body)})
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream steps' statuses and outputs (the evidence).
pub fn upstream(state: &RunState) -> Vec<Value> {
    state
        .finished
        .iter()
        .map(|(id, f)| {
            let body = f
                .output
                .as_ref()
                .or(f.error.as_ref())
                .cloned()
                .unwrap_or(Value::Null);
            json!({"id": id, "status": f.status.as_str(), "rows": rows(&body), "raw": shown(&body)})
        })
        .collect()
}

/// The gate's status line.
pub fn gate_status(gate: &GateState, now_ms: u64) -> String {
    match &gate.decision {
        Some((d, by)) if by.is_empty() => d.as_str().to_string(),
        Some((d, by)) => format!("{} by {}", d.as_str(), by.join(", ")),
        None if now_ms >= gate.expires_at_ms => "expired (counts as denied)".into(),
        None => format!(
            "waiting (expires {})",
            format_unix_millis(gate.expires_at_ms)
        ),
    }
}

/// Each skipped step's reason, from its `step_skipped` record.
pub fn skip_reasons(records: &[Record]) -> BTreeMap<String, String> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            crate::journal::Event::StepSkipped { step, reason } => {
                Some((step.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Step ids in graph order: the playbook's (`needs` first), else the
/// report's; steps the report has and the playbook does not come last.
pub fn graph_order(pb: Option<&Playbook>, report: &scheduler::RunReport) -> Vec<String> {
    let mut ids: Vec<String> = pb
        .map(|pb| {
            super::graph::order(pb)
                .into_iter()
                .map(|i| pb.steps[i].id.clone())
                .collect()
        })
        .unwrap_or_default();
    for id in report.steps.keys() {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// A step's outcome in one line: its error, why it was skipped, or what
/// its output says.
pub fn outcome(step: Option<&scheduler::StepReport>, skipped: Option<&String>) -> String {
    let Some(s) = step else {
        return String::new();
    };
    if let Some(reason) = skipped {
        return words::cut(reason, 240);
    }
    if let Some(err) = &s.error {
        return words::error_line(err);
    }
    s.output
        .as_ref()
        .map(words::output_line)
        .unwrap_or_default()
}

/// When a run is over and a destructive step did not act (denied,
/// blocked, failed, skipped), a banner that says so and why; when every
/// destructive step acted, one that says that.
pub fn banner(
    pb: &Playbook,
    report: &scheduler::RunReport,
    state: &RunState,
    skipped: &BTreeMap<String, String>,
    destructive: &dyn Fn(&str) -> bool,
) -> Option<Value> {
    if !report.status.is_final() {
        return None;
    }
    let acting: Vec<&crate::playbook::Step> = pb
        .steps
        .iter()
        .filter(|s| !s.uses.is_empty() && destructive(&s.uses))
        .collect();
    if acting.is_empty() {
        return None;
    }
    let mut not_done = Vec::new();
    for s in &acting {
        let st = report.steps.get(&s.id);
        let status = st.map_or("never started", |r| r.status.as_str());
        if status == "succeeded" {
            continue;
        }
        let why = match (skipped.get(&s.id), st.and_then(|r| r.error.as_ref())) {
            (Some(reason), _) => reason.clone(),
            (None, Some(err)) => words::error_line(err),
            _ => status.to_string(),
        };
        not_done.push(format!(
            "`{}` ({}) did not act: {status}, {why}",
            s.id, s.uses
        ));
    }
    // A gate's denial or expiry is what a lead most needs to see named.
    let decided: Vec<String> = state
        .gates
        .iter()
        .filter_map(|(id, g)| {
            let (d, by) = g.decision.as_ref()?;
            (*d != crate::journal::Decision::Granted).then(|| {
                let by = if by.is_empty() {
                    "nobody in time".to_string()
                } else {
                    by.join(", ")
                };
                format!("approval `{id}` {} by {by}", d.as_str())
            })
        })
        .collect();
    if not_done.is_empty() {
        let acted: Vec<String> = acting
            .iter()
            .map(|s| format!("`{}` ({})", s.id, s.uses))
            .collect();
        return Some(json!({"good": true, "title": "The response action ran", "lines": acted}));
    }
    let mut lines = decided;
    lines.extend(not_done);
    Some(json!({"good": false, "title": "The response action did NOT run", "lines": lines}))
}
