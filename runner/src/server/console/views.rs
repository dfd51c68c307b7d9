//! What each console page shows, built from a run's journal: plain JSON
//! for the templates, with every value from an alert, a connector or a
//! vendor left as text for the template engine to escape.

use crate::config::Policy;
use crate::journal::{format_unix_millis, Record};
use crate::playbook::Playbook;
use crate::plugin_host::TargetKind;
use crate::scheduler::{self, GateState, RunState};
use crate::template::Templates;
use serde_json::{json, Value};

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

/// The run's records as timeline rows.
pub fn timeline(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut detail = serde_json::to_value(&r.event).unwrap_or(Value::Null);
            let kind = detail["type"].as_str().unwrap_or("?").to_string();
            if let Some(o) = detail.as_object_mut() {
                o.remove("type");
                // The alert and the exchanges are on the page elsewhere or
                // in the journal: a timeline row stays a line or two.
                for k in ["alert", "exchanges", "logs", "inputs"] {
                    o.remove(k);
                }
            }
            let mut text = detail.to_string();
            if text.len() > 600 {
                let mut end = 600;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
            }
            json!({"seq": r.seq, "at": r.at, "type": kind, "detail": text})
        })
        .collect()
}

/// The protected entry any kind of target `value` hits, if one does.
fn protected(policy: &Policy, value: &str) -> Option<String> {
    [
        TargetKind::Host,
        TargetKind::User,
        TargetKind::Ip,
        TargetKind::Domain,
    ]
    .into_iter()
    .find_map(|k| policy.protected.hit(k, value).map(|h| h.entry))
}

/// The destructive steps a gate covers, with their inputs rendered as the
/// engine will render them and their targets checked against the policy.
pub fn unlocks(
    gate: &GateState,
    state: &RunState,
    run_id: &str,
    playbook: Option<&Playbook>,
    policy: &Policy,
) -> Vec<Value> {
    let templates = Templates::new();
    let ctx = scheduler::context(run_id, state, &state.finished);
    gate.bindings
        .iter()
        .map(|b| {
            let input = playbook
                .and_then(|pb| pb.steps.iter().find(|s| s.id == b.step))
                .map(|s| match templates.render_value(&s.with, &ctx) {
                    Ok(v) => shown(&v),
                    Err(e) => format!("(cannot be rendered yet: {e})"),
                })
                .unwrap_or_else(|| "(the playbook is not loaded)".into());
            let targets: Vec<Value> = b
                .targets
                .iter()
                .map(|t| json!({"value": t, "protected": protected(policy, t)}))
                .collect();
            json!({"step": b.step, "uses": b.uses, "targets": targets, "input": input})
        })
        .collect()
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
                    json!({"step": p["step"], "text": shown(body)})
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
            json!({"id": id, "status": f.status.as_str(), "output": shown(&body)})
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
