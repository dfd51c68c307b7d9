//! Journal records and step results in plain words for the console's
//! timeline, step table and banners: what a lead reads at 2 a.m. instead
//! of JSON. Every value stays text for the template engine to escape.

use serde_json::Value;

/// At most this many characters of one value in a sentence.
const MAX_PART: usize = 160;

/// `v` as a short piece of a sentence.
fn part(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    cut(&text, MAX_PART)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max).collect();
    s.push('…');
    s
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(part).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// One record (its JSON form, `type` included) as a sentence.
pub fn event(e: &Value) -> String {
    let f = |k: &str| part(&e[k]);
    match e["type"].as_str().unwrap_or("") {
        "run_started" => format!("run of {} started by {}", f("playbook"), f("started_by")),
        "alert_merged" => format!("the same alert again from {} (#{})", f("by"), f("count")),
        "alert_grouped" => format!(
            "another alert joined the group, from {} (#{})",
            f("by"),
            f("count")
        ),
        "step_started" => "started".into(),
        "attempt_started" if e["dry_run"] == true => {
            format!("dry run of {}.{}", f("plugin"), f("action"))
        }
        "attempt_started" => format!(
            "called {}.{} (attempt {})",
            f("plugin"),
            f("action"),
            f("attempt")
        ),
        "attempt_finished" => match e["outcome"]["result"].as_str() {
            Some("ok") => format!("answered in {} ms", f("duration_ms")),
            _ => format!(
                "failed: {} ({})",
                part(&e["outcome"]["message"]),
                part(&e["outcome"]["kind"])
            ),
        },
        "retry_scheduled" => format!(
            "retry {} at {}: {}",
            f("next_attempt"),
            f("at"),
            f("reason")
        ),
        "reconciled" => format!("after a restart: {} ({})", f("decision"), f("detail")),
        "step_skipped" => format!("skipped: {}", f("reason")),
        "step_finished" => step_finished(e),
        "approval_requested" => format!(
            "approval asked of {} ({} needed), until {}",
            list(&e["approvers"]),
            f("min_approvals"),
            f("expires_at")
        ),
        "approval_voted" => voted(e),
        "approval_decided" => decided(e),
        "action_authorized" => format!("{} authorized on {}", f("uses"), list(&e["targets"])),
        "command_refused" => format!("refused {}'s {}: {}", f("by"), f("command"), f("reason")),
        "run_cancelled" => format!("cancelled by {}: {}", f("by"), f("reason")),
        "operator_resolved" => format!(
            "{} resolved it as {}: {}",
            f("by"),
            f("outcome"),
            f("reason")
        ),
        "run_paused" => format!("paused ({}): {}", f("status"), f("reason")),
        "chat_message" if e["ok"] == true => format!("posted to chat via {}", f("uses")),
        "chat_message" => format!("chat post via {} failed: {}", f("uses"), part(&e["detail"])),
        "run_finished" => match e["error"].as_str() {
            Some(err) => format!("run {}: {}", f("status"), cut(err, MAX_PART)),
            None => format!("run {}", f("status")),
        },
        other => other.replace('_', " "),
    }
}

fn voted(e: &Value) -> String {
    let reason = part(&e["reason"]);
    let base = format!("{} voted {}", part(&e["by"]), part(&e["vote"]));
    if reason.is_empty() {
        base
    } else {
        format!("{base}: {reason}")
    }
}

fn decided(e: &Value) -> String {
    let by = list(&e["by"]);
    let decision = part(&e["decision"]);
    if by.is_empty() {
        format!("{decision}: nobody decided in time")
    } else {
        format!("{decision} by {by}")
    }
}

fn step_finished(e: &Value) -> String {
    let status = part(&e["status"]);
    match e.get("error").filter(|v| !v.is_null()) {
        Some(err) => format!("{status}: {}", error_line(err)),
        None => status,
    }
}

/// A step's error in one line: its message (and kind).
pub fn error_line(err: &Value) -> String {
    match (err["message"].as_str(), err["kind"].as_str()) {
        (Some(m), Some(k)) => format!("{} ({k})", cut(m, MAX_PART)),
        (Some(m), None) => cut(m, MAX_PART),
        _ => part(err),
    }
}

/// A step's output in one line: the fields that say what happened
/// (`status`, `verdict`, a name, `found`...), else its first few fields.
pub fn output_line(output: &Value) -> String {
    let Some(o) = output.as_object() else {
        return part(output);
    };
    const TELLING: [&str; 12] = [
        "hostname",
        "status",
        "verdict",
        "number",
        "found",
        "count",
        "contained",
        "already",
        "blocked",
        "disabled",
        "key",
        "channel",
    ];
    let mut parts: Vec<String> = TELLING
        .iter()
        .filter_map(|k| {
            o.get(*k)
                .filter(|v| !v.is_null() && !v.is_object() && !v.is_array())
                .map(|v| format!("{k} {}", part(v)))
        })
        .collect();
    if parts.is_empty() {
        parts = o
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .take(3)
            .map(|(k, v)| format!("{k} {}", part(v)))
            .collect();
    }
    cut(&parts.join(", "), 240)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_read_as_sentences() {
        let e = json!({"type": "approval_decided", "step": "approve", "decision": "denied", "by": ["bob"], "reason": ""});
        assert_eq!(event(&e), "denied by bob");
        let e = json!({"type": "approval_decided", "step": "approve", "decision": "expired", "by": [], "reason": ""});
        assert_eq!(event(&e), "expired: nobody decided in time");
        let e = json!({"type": "attempt_finished", "outcome": {"result": "err", "kind": "timeout", "message": "no answer"}});
        assert_eq!(event(&e), "failed: no answer (timeout)");
        let e = json!({"type": "step_finished", "status": "failed", "error": {"kind": "denied", "message": "approval denied"}});
        assert_eq!(event(&e), "failed: approval denied (denied)");
    }

    #[test]
    fn an_output_reads_as_what_it_says_and_a_long_value_is_cut() {
        let out = json!({"host_id": "0a1b", "hostname": "FIN-WS-042", "status": "contained", "already": false});
        assert_eq!(
            output_line(&out),
            "hostname FIN-WS-042, status contained, already false"
        );
        let out = json!({"hostname": "x".repeat(1000)});
        assert!(output_line(&out).chars().count() <= 241);
    }
}
