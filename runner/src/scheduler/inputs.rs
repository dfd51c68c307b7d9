//! Normalises a raw alert into a playbook's typed inputs: each input comes
//! from its `from:` template over the alert, else the alert field of the same
//! name, else its default; a required input that cannot be mapped rejects
//! the alert before any step runs.

use crate::playbook::{InputType, Playbook};
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
        if !value.is_null() && !type_matches(&decl.r#type, &value) {
            problems.push(format!(
                "input `{name}` must be {}, got {}",
                type_name(&decl.r#type),
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

fn type_matches(t: &InputType, v: &Value) -> bool {
    match t {
        InputType::String => v.is_string(),
        InputType::Number => v.is_number(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Boolean => v.is_boolean(),
        InputType::List => v.is_array(),
        InputType::Object => v.is_object(),
    }
}

fn type_name(t: &InputType) -> &'static str {
    match t {
        InputType::String => "a string",
        InputType::Number => "a number",
        InputType::Integer => "an integer",
        InputType::Boolean => "a boolean",
        InputType::List => "a list",
        InputType::Object => "an object",
    }
}
