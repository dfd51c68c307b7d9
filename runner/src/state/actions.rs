//! The built-in `state.*` actions a playbook step can use without a plugin
//! (`uses: state.get`). Each has an input schema like a connector's action,
//! checked the same way, and answers with what it read and what it wrote,
//! so the run's journal holds both and a replay never reads the table.

use super::{Actor, Entry, StateError, StateStore, Window, MAX_SCAN};
use crate::config::{TableSpec, Tables};
use crate::plugin_host::{ActionManifest, ErrorKind, InvokeError, Manifest};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

/// The name playbooks use for the built-in actions (`state.ACTION`); no
/// configured plugin may take it.
pub const PLUGIN: &str = "state";
/// Stands for a plugin digest in the records of built-in actions.
pub const DIGEST: &str = "builtin:state";
/// Most keys one `lookup` reads.
pub const MAX_LOOKUP: usize = 100;

/// The action that ends a run as `suppressed` when its key has an entry.
pub const SUPPRESS: &str = "suppress";

/// Every field a built-in action takes; each action picks its own.
static FIELDS: LazyLock<Value> = LazyLock::new(|| {
    let key = json!({"type": "string", "minLength": 1, "maxLength": super::MAX_KEY});
    json!({
        "table": {"type": "string", "description": "a table of the config's `state.tables`"},
        "key": key,
        "keys": {"type": "array", "items": key, "minItems": 1, "maxItems": MAX_LOOKUP},
        "value": {"description": "any JSON value; the table's schema applies"},
        "ttl": {"type": "string", "description": "how long the entry lives, e.g. `1h` (default: the table's)"},
        "reason": {"type": "string", "maxLength": 1000, "description": "why, kept in the key's change log"},
        "window": {"type": "string", "description": "e.g. `1h`"},
        "sliding": {"type": "boolean", "description": "count the hits of the last `window` (default: fixed windows)"},
        "version": {"type": "integer", "minimum": 0, "description": "the version expected (0: absent)"},
        "prefix": {"type": "string", "maxLength": super::MAX_KEY},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SCAN},
        "rule": {"type": "string", "minLength": 1, "maxLength": 200},
    })
});

/// A closed object schema of `required` and `optional` fields.
fn schema(required: &[&str], optional: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = required
        .iter()
        .chain(optional)
        .map(|f| (f.to_string(), FIELDS[*f].clone()))
        .collect();
    json!({"type": "object", "required": required, "properties": props, "additionalProperties": false})
}

fn action(name: &str, description: &str, input_schema: Value) -> ActionManifest {
    ActionManifest {
        name: name.into(),
        description: description.into(),
        destructive: false,
        // Every write carries the step's idempotency key: a repeat after a
        // crash gets the first result back, so it is safe to invoke again.
        idempotent: true,
        input_schema,
        output_schema: json!({"type": "object"}),
        targets: Vec::new(),
        probe: None,
        untargeted: false,
    }
}

static MANIFEST: LazyLock<Manifest> = LazyLock::new(|| {
    let write = ["ttl", "reason"];
    let actions = [
        ("get", "the live entry of a key", schema(&["table", "key"], &[])),
        ("lookup", "the live entries of up to 100 keys", schema(&["table", "keys"], &[])),
        ("put", "sets a key", schema(&["table", "key", "value"], &write)),
        ("put_if_absent", "sets a key that has no live entry; says whether it had none", schema(&["table", "key", "value"], &write)),
        ("cas", "sets a key whose live version is `version`", schema(&["table", "key", "value", "version"], &write)),
        ("delete", "deletes a key", schema(&["table", "key"], &["reason"])),
        ("incr", "counts one more event of a key in its window", schema(&["table", "key", "window"], &["sliding"])),
        ("scan", "live entries whose key starts with `prefix` (at most `limit`)", schema(&["table", "prefix", "limit"], &[])),
        (SUPPRESS, "ends the run as `suppressed` when the key has a live entry (a maintenance window, a known exception)", schema(&["table", "key", "rule"], &[])),
    ];
    Manifest {
        name: PLUGIN.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "soar's own tables (state.tables in the config)".into(),
        actions: actions
            .into_iter()
            .map(|(n, d, s)| action(n, d, s))
            .collect(),
        secrets: Vec::new(),
        config_keys: Vec::new(),
    }
});

/// The built-in actions, as a connector's manifest.
pub fn manifest() -> &'static Manifest {
    &MANIFEST
}

static VALIDATORS: LazyLock<BTreeMap<String, jsonschema::Validator>> = LazyLock::new(|| {
    MANIFEST
        .actions
        .iter()
        .filter_map(|a| {
            let v = crate::plugin_host::schema_guard::compile(&a.input_schema).ok()?;
            Some((a.name.clone(), v))
        })
        .collect()
});

/// Checks `input` against `action`'s schema, as the host does for a
/// connector's action.
pub fn check_input(action: &str, input: &Value) -> Result<(), InvokeError> {
    let Some(validator) = VALIDATORS.get(action) else {
        return Err(InvokeError::UnknownAction {
            plugin: PLUGIN.into(),
            action: action.into(),
        });
    };
    crate::plugin_host::check(validator, input).map_err(|problems| InvokeError::InvalidInput {
        action: format!("{PLUGIN}.{action}"),
        problems,
    })
}

fn invalid(message: impl Into<String>) -> InvokeError {
    InvokeError::Plugin {
        kind: ErrorKind::InvalidInput,
        message: message.into(),
    }
}

impl From<StateError> for InvokeError {
    fn from(e: StateError) -> Self {
        let kind = match &e {
            StateError::Conflict { .. } => ErrorKind::Conflict,
            StateError::Storage(_) => ErrorKind::Unavailable,
            _ => ErrorKind::InvalidInput,
        };
        InvokeError::Plugin {
            kind,
            message: e.to_string(),
        }
    }
}

/// An entry as actions answer and records show it.
pub fn entry_json(key: &str, e: Option<&Entry>) -> Value {
    match e {
        None => json!({"key": key, "found": false, "value": null}),
        Some(e) => json!({
            "key": key, "found": true, "value": e.value, "version": e.version,
            "expires_at": e.expires_at_ms.map(crate::journal::format_unix_millis),
            "by": e.by, "at": crate::journal::format_unix_millis(e.at_ms),
        }),
    }
}

/// One call of a built-in action: what it read and wrote, as its output.
pub struct Call<'a> {
    /// The store.
    pub store: &'a StateStore,
    /// The declared tables.
    pub tables: &'a Tables,
    /// Who, when, and the step's idempotency key.
    pub actor: Actor<'a>,
}

impl Call<'_> {
    /// Runs `action` on `input` (already checked against its schema).
    pub fn run(&self, action: &str, input: &Value) -> Result<Value, InvokeError> {
        let table = self.table(input)?;
        let name = table.name.as_str();
        let key = input["key"].as_str().unwrap_or_default();
        let now = self.actor.now_ms;
        let s = self.store;
        Ok(match action {
            "get" => entry_json(key, s.get(name, key, now)?.as_ref()),
            "lookup" => self.lookup(name, input)?,
            "scan" => self.scan(name, input)?,
            SUPPRESS => {
                let entry = s.get(name, key, now)?;
                json!({"suppressed": entry.is_some(), "rule": input["rule"], "table": name,
                       "entry": entry_json(key, entry.as_ref())})
            }
            "incr" => {
                let window = duration(&input["window"], "window")?
                    .ok_or_else(|| invalid("`window` is required"))?;
                let w = if input["sliding"] == Value::Bool(true) {
                    Window::Sliding(window)
                } else {
                    Window::Fixed(window)
                };
                let count = s.incr(name, key, w, &self.actor)?;
                json!({"key": key, "count": count, "window": input["window"], "sliding": matches!(w, Window::Sliding(_))})
            }
            "delete" => {
                let removed = s.delete(name, key, &self.actor)?;
                json!({"key": key, "deleted": removed.is_some(), "previous": entry_json(key, removed.as_ref())})
            }
            _ => self.write(action, table, key, input)?,
        })
    }

    fn table(&self, input: &Value) -> Result<&TableSpec, InvokeError> {
        let name = input["table"].as_str().unwrap_or_default();
        self.tables.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
            invalid(format!(
                "no table `{name}` in the config's state.tables (tables: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    fn lookup(&self, table: &str, input: &Value) -> Result<Value, InvokeError> {
        let keys: Vec<&str> = input["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let found = self.store.lookup(table, &keys, self.actor.now_ms)?;
        let entries: serde_json::Map<String, Value> = keys
            .iter()
            .zip(&found)
            .map(|(k, e)| (k.to_string(), entry_json(k, e.as_ref())))
            .collect();
        let n = found.iter().filter(|e| e.is_some()).count();
        Ok(json!({"entries": entries, "found": n}))
    }

    fn scan(&self, table: &str, input: &Value) -> Result<Value, InvokeError> {
        let prefix = input["prefix"].as_str().unwrap_or_default();
        let limit = input["limit"].as_u64().unwrap_or(0) as usize;
        let got = self.store.scan(table, prefix, limit, self.actor.now_ms)?;
        let entries: Vec<Value> = got.iter().map(|(k, e)| entry_json(k, Some(e))).collect();
        Ok(json!({"count": entries.len(), "complete": entries.len() < limit, "entries": entries}))
    }

    /// `put`, `put_if_absent`, `cas`: a value checked against the table.
    fn write(
        &self,
        action: &str,
        table: &TableSpec,
        key: &str,
        input: &Value,
    ) -> Result<Value, InvokeError> {
        let value = input["value"].clone();
        table.check_value(&value).map_err(invalid)?;
        let ttl = duration(&input["ttl"], "ttl")?.or(table.ttl);
        let (s, name, a) = (self.store, table.name.as_str(), &self.actor);
        Ok(match action {
            "put" => {
                let (previous, written) = s.put(name, key, value, ttl, a)?;
                json!({"previous": entry_json(key, previous.as_ref()), "written": entry_json(key, Some(&written))})
            }
            "put_if_absent" => {
                let (absent, entry) = s.put_if_absent(name, key, value, ttl, a)?;
                json!({"absent": absent, "entry": entry_json(key, Some(&entry))})
            }
            "cas" => {
                let expected = input["version"].as_u64().unwrap_or(0);
                let written = s.cas(name, key, expected, value, ttl, a)?;
                json!({"written": entry_json(key, Some(&written))})
            }
            other => return Err(invalid(format!("`state.{other}` is not a state action"))),
        })
    }
}

/// A humantime duration field, if given.
fn duration(v: &Value, field: &str) -> Result<Option<Duration>, InvokeError> {
    let Some(text) = v.as_str() else {
        return Ok(None);
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        Ok(_) => Err(invalid(format!("`{field}` must be longer than zero"))),
        Err(e) => Err(invalid(format!(
            "`{field}`: `{text}` is not a duration like `30s` or `1h`: {e}"
        ))),
    }
}
