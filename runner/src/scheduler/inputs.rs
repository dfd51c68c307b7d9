//! Normalises a raw alert into a playbook's typed inputs: each input comes
//! from its `from:` template over the alert, else the alert field of the same
//! name, else its default; a required input that cannot be mapped rejects
//! the alert before any step runs.

use crate::playbook::Playbook;
use crate::template::Templates;
use serde_json::{Map, Value};

/// Maps `alert` to the playbook's inputs, or lists every problem.
pub fn normalise(
    playbook: &Playbook,
    alert: &Value,
    templates: &Templates,
) -> Result<Value, Vec<String>> {
    let mut inputs = Map::new();
    let mut problems = Vec::new();
    let ctx = serde_json::json!({ "alert": alert });
    for (name, decl) in &playbook.inputs {
        let mapped = match &decl.from {
            Some(template) => {
                match templates.render_value(&Value::String(template.clone()), &ctx) {
                    Ok(Value::Null) => None,
                    Ok(v) => Some(v),
                    // A `from:` that cannot be evaluated means the alert lacks the field.
                    Err(_) => None,
                }
            }
            None => alert.get(name).cloned().filter(|v| !v.is_null()),
        };
        let value = match mapped.or_else(|| decl.default.clone()) {
            Some(v) => v,
            None if decl.required => {
                problems.push(match &decl.from {
                    Some(t) => format!(
                        "required input `{name}` could not be mapped from the alert (`from: {t}`)"
                    ),
                    None => format!("required input `{name}` is missing from the alert"),
                });
                continue;
            }
            None => Value::Null,
        };
        if !value.is_null() && !decl.r#type.matches(&value) {
            problems.push(format!(
                "input `{name}` must be {}, got {}",
                decl.r#type.describe(),
                value
            ));
            continue;
        }
        inputs.insert(name.clone(), value);
    }
    if problems.is_empty() {
        Ok(Value::Object(inputs))
    } else {
        Err(problems)
    }
}
