//! A case's expectations against what its run came to: each difference
//! is a [`Mismatch`] with the expected and actual values.

use super::canned::Call;
use super::case::{Expect, StepExpect};
use crate::scheduler::RunReport;
use serde_json::{json, Value};

/// One difference between what a case expects and what happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    /// What was compared (`status`, `steps.isolate.status`, `calls`...).
    pub what: String,
    /// Expected.
    pub expected: Value,
    /// Actual.
    pub actual: Value,
}

fn mismatch(what: impl Into<String>, expected: Value, actual: Value) -> Mismatch {
    Mismatch {
        what: what.into(),
        expected,
        actual,
    }
}

/// The rules that blocked destructive steps in `report`, sorted.
pub fn blocked_rules(report: &RunReport) -> Vec<String> {
    let mut rules: Vec<String> = report
        .steps
        .values()
        .filter(|s| s.status == "blocked")
        .filter_map(|s| s.error.as_ref()?.get("rule")?.as_str().map(str::to_string))
        .collect();
    rules.sort();
    rules
}

/// Written in an expectation, stands for the id of the case's run (which
/// `soar test record` puts where the recorded run's id was).
pub const RUN_ID: &str = "${run.id}";

/// `value` with every `from` in its strings replaced by `to`.
pub fn substitute(value: &Value, from: &str, to: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(from, to)),
        Value::Array(items) => items.iter().map(|v| substitute(v, from, to)).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), substitute(v, from, to)))
            .collect(),
        other => other.clone(),
    }
}

/// Every difference between `expect` and the run.
pub fn compare(expect: &Expect, report: &RunReport, calls: &[Call]) -> Vec<Mismatch> {
    let resolved = serde_json::to_value(expect)
        .map(|v| substitute(&v, RUN_ID, &report.run_id))
        .and_then(serde_json::from_value::<Expect>);
    let expect = &resolved.unwrap_or_else(|_| expect.clone());
    let mut out = Vec::new();
    if let Some(status) = &expect.status {
        let actual = report.status.to_string();
        if *status != actual {
            out.push(mismatch("status", json!(status), json!(actual)));
        }
    }
    for (id, want) in &expect.steps {
        steps(&mut out, id, want, report);
    }
    if let Some(want) = &expect.blocked {
        let mut want = want.clone();
        want.sort();
        let actual = blocked_rules(report);
        if want != actual {
            out.push(mismatch("blocked", json!(want), json!(actual)));
        }
    }
    for (name, want) in &expect.outputs {
        let actual = report.outputs.get(name).cloned().unwrap_or(Value::Null);
        if !contains(&actual, want) {
            out.push(mismatch(format!("outputs.{name}"), want.clone(), actual));
        }
    }
    let acts: Vec<&Call> = calls.iter().filter(|c| !c.dry_run).collect();
    for want in &expect.calls {
        let found = acts
            .iter()
            .filter(|c| {
                c.uses == want.uses && want.input.as_ref().is_none_or(|w| contains(&c.input, w))
            })
            .count();
        let ok = match want.times {
            Some(n) => found == n,
            None => found > 0,
        };
        if !ok {
            let expected = json!({"uses": want.uses, "with": want.input, "times": want.times.map_or(json!("at least 1"), |n| json!(n))});
            out.push(mismatch("calls", expected, calls_of(&acts, &want.uses)));
        }
    }
    for pattern in &expect.no_calls {
        let (uses, input) = pattern.parts();
        let made: Vec<&Call> = acts
            .iter()
            .copied()
            .filter(|c| c.uses == uses && input.is_none_or(|w| contains(&c.input, w)))
            .collect();
        if !made.is_empty() {
            let expected = json!({"no call of": uses, "with": input});
            out.push(mismatch("no_calls", expected, calls_of(&made, uses)));
        }
    }
    out
}

fn steps(out: &mut Vec<Mismatch>, id: &str, want: &StepExpect, report: &RunReport) {
    let Some(step) = report.steps.get(id) else {
        out.push(mismatch(
            format!("steps.{id}"),
            json!("a step of the playbook"),
            json!("no such step"),
        ));
        return;
    };
    let (status, error, output) = match want {
        StepExpect::Status(s) => (Some(s), None, None),
        StepExpect::Full {
            status,
            error,
            output,
        } => (status.as_ref(), error.as_ref(), output.as_ref()),
    };
    if let Some(s) = status.filter(|s| **s != step.status) {
        out.push(mismatch(
            format!("steps.{id}.status"),
            json!(s),
            json!(step.status),
        ));
    }
    let kind = step
        .error
        .as_ref()
        .and_then(|e| e.get("kind"))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(e) = error.filter(|e| kind != json!(e)) {
        out.push(mismatch(format!("steps.{id}.error"), json!(e), kind));
    }
    let actual = step.output.clone().unwrap_or(Value::Null);
    if let Some(o) = output.filter(|o| !contains(&actual, o)) {
        out.push(mismatch(format!("steps.{id}.output"), o.clone(), actual));
    }
}

/// The calls of `uses` made, as `{step, with}`.
fn calls_of(calls: &[&Call], uses: &str) -> Value {
    let made: Vec<Value> = calls
        .iter()
        .filter(|c| c.uses == uses)
        .map(|c| json!({"step": c.step, "with": c.input}))
        .collect();
    json!(made)
}

/// Whether `actual` matches `want`: objects by the keys `want` lists
/// (recursively), everything else exactly.
pub fn contains(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::Object(a), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| a.get(k).is_some_and(|av| contains(av, wv))),
        (Value::Array(a), Value::Array(w)) => {
            a.len() == w.len() && a.iter().zip(w).all(|(av, wv)| contains(av, wv))
        }
        _ => actual == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_match_by_listed_keys_only() {
        let actual = json!({"a": 1, "b": {"c": 2, "d": [1, {"e": 3, "f": 4}]}});
        assert!(contains(&actual, &json!({"a": 1})));
        assert!(contains(&actual, &json!({"b": {"d": [1, {"e": 3}]}})));
        assert!(!contains(&actual, &json!({"b": {"d": [1]}})));
        assert!(!contains(&actual, &json!({"a": 2})));
        assert!(!contains(&actual, &json!({"z": null})));
        assert!(contains(&json!("x"), &json!("x")));
        assert!(!contains(&json!(1), &json!("1")));
    }
}
