//! The state tables from outside runs: what `soar state` and
//! `/api/v1/state/...` both call. Reading needs a principal who may read;
//! writing needs one of the table's `writers` roles, and every write is in
//! the key's change log with who, when and why, flushed before answering.

use super::OpError;
use crate::approvals::Refusal;
use crate::config::{Approver, TableSpec, Tables};
use crate::journal::{now_unix_millis as now_ms, Journal};
use crate::state::actions::entry_json;
use crate::state::{Actor, StateError, StateStore, MAX_LOG, MAX_SCAN};
use serde_json::{json, Value};
use std::time::Duration;

/// Most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 100_000;
/// Most entries one export gives.
pub const MAX_EXPORT: usize = 1_000_000;
/// Changes an import's dry run lists (all are counted).
const SHOWN_CHANGES: usize = 200;

/// The table `name`, or which tables there are.
pub fn table<'t>(tables: &'t Tables, name: &str) -> Result<&'t TableSpec, OpError> {
    tables.get(name).ok_or_else(|| {
        let known: Vec<&str> = tables.keys().map(String::as_str).collect();
        OpError::Invalid(format!(
            "no table `{name}` in the config's `state.tables` (tables: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
    })
}

fn failed(e: StateError) -> OpError {
    match e {
        StateError::Storage(m) => OpError::Failed(m),
        other => OpError::Invalid(other.to_string()),
    }
}

/// Whether `who` may write `spec`: a role among its `writers`.
pub fn may_write(who: &Approver, spec: &TableSpec) -> Result<(), OpError> {
    if spec.writers.iter().any(|r| who.has_role(r)) {
        return Ok(());
    }
    let writers = if spec.writers.is_empty() {
        "no role (its `writers` list is empty: only runs write it)".to_string()
    } else {
        format!("the role(s) {}", spec.writers.join(", "))
    };
    Err(OpError::Refused(Refusal::NotAWriter {
        who: who.name.clone(),
        table: spec.name.clone(),
        writers,
        has: who.roles.join(", "),
    }))
}

/// The live entry of `key`.
pub fn get(journal: &Journal, tables: &Tables, name: &str, key: &str) -> Result<Value, OpError> {
    let spec = table(tables, name)?;
    let found = journal
        .state()
        .get(&spec.name, key, now_ms())
        .map_err(failed)?;
    Ok(entry_json(key, found.as_ref()))
}

/// Live entries whose key starts with `prefix`, at most `limit`.
pub fn list(
    journal: &Journal,
    tables: &Tables,
    name: &str,
    prefix: &str,
    limit: usize,
) -> Result<Value, OpError> {
    let spec = table(tables, name)?;
    if limit == 0 || limit > MAX_SCAN {
        return Err(OpError::Invalid(format!(
            "`limit` must be between 1 and {MAX_SCAN}"
        )));
    }
    let got = journal
        .state()
        .scan(&spec.name, prefix, limit, now_ms())
        .map_err(failed)?;
    let entries: Vec<Value> = got.iter().map(|(k, e)| entry_json(k, Some(e))).collect();
    Ok(
        json!({"table": spec.name, "count": entries.len(), "complete": entries.len() < limit, "entries": entries}),
    )
}

/// The newest changes of `key`: who set it, when, why.
pub fn log(journal: &Journal, tables: &Tables, name: &str, key: &str) -> Result<Value, OpError> {
    let spec = table(tables, name)?;
    let changes = journal
        .state()
        .log(&spec.name, key, MAX_LOG)
        .map_err(failed)?;
    Ok(json!({"table": spec.name, "key": key, "changes": changes}))
}

/// A write from outside a run: by whom, and why.
pub struct Write<'a> {
    /// The principal, proven.
    pub who: &'a Approver,
    /// Why (kept in the change log).
    pub reason: Option<&'a str>,
}

impl Write<'_> {
    fn actor(&self) -> Actor<'_> {
        Actor {
            by: &self.who.name,
            now_ms: now_ms(),
            op_key: None,
            reason: self.reason,
        }
    }
}

/// Sets `key` (the table's default ttl unless `ttl` is given).
pub fn put(
    journal: &Journal,
    tables: &Tables,
    w: &Write<'_>,
    name: &str,
    key: &str,
    value: Value,
    ttl: Option<Duration>,
) -> Result<Value, OpError> {
    let spec = table(tables, name)?;
    may_write(w.who, spec)?;
    spec.check_value(&value).map_err(OpError::Invalid)?;
    let (previous, written) = journal
        .state()
        .put(&spec.name, key, value, ttl.or(spec.ttl), &w.actor())
        .map_err(failed)?;
    journal.sync().map_err(|e| OpError::Failed(e.to_string()))?;
    Ok(
        json!({"previous": entry_json(key, previous.as_ref()), "written": entry_json(key, Some(&written))}),
    )
}

/// Deletes `key`.
pub fn delete(
    journal: &Journal,
    tables: &Tables,
    w: &Write<'_>,
    name: &str,
    key: &str,
) -> Result<Value, OpError> {
    let spec = table(tables, name)?;
    may_write(w.who, spec)?;
    let removed = journal
        .state()
        .delete(&spec.name, key, &w.actor())
        .map_err(failed)?;
    journal.sync().map_err(|e| OpError::Failed(e.to_string()))?;
    Ok(json!({"deleted": removed.is_some(), "previous": entry_json(key, removed.as_ref())}))
}

/// Every live entry, as JSON lines an import takes back.
pub fn export(journal: &Journal, tables: &Tables, name: &str) -> Result<Vec<Value>, OpError> {
    let spec = table(tables, name)?;
    let now = now_ms();
    let rows = journal
        .state()
        .export(&spec.name, MAX_EXPORT, now)
        .map_err(failed)?;
    Ok(rows
        .into_iter()
        .map(|(key, e)| {
            let ttl = e
                .expires_at_ms
                .map(|at| humantime::format_duration(Duration::from_millis(at - now)).to_string());
            json!({"key": key, "value": e.value, "ttl": ttl})
        })
        .collect())
}

/// How an import's text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header row naming the columns; the key in `key` (or the table's
    /// key name), an optional `ttl`; every other column a field of the value.
    Csv,
    /// One `{"key": ..., "value": ..., "ttl": "7d"}` per line.
    JsonLines,
}

/// Loads `text` into the table: every row checked first (the first broken
/// one is named by its line, and nothing is written), then all written in
/// one transaction. A dry run says what would change and writes nothing.
pub fn import(
    journal: &Journal,
    tables: &Tables,
    w: &Write<'_>,
    name: &str,
    (text, format): (&str, Format),
    dry_run: bool,
) -> Result<Value, OpError> {
    let spec = table(tables, name)?;
    may_write(w.who, spec)?;
    let rows = match format {
        Format::Csv => super::state_import::csv_rows(text, spec)?,
        Format::JsonLines => super::state_import::json_rows(text, spec)?,
    };
    let store = journal.state();
    let (summary, changes) = diff(&store, spec, &rows)?;
    if !dry_run && !rows.is_empty() {
        store
            .put_many(&spec.name, &rows, &w.actor())
            .map_err(failed)?;
        journal.sync().map_err(|e| OpError::Failed(e.to_string()))?;
    }
    Ok(json!({
        "table": spec.name, "dry_run": dry_run, "rows": rows.len(),
        "add": summary[0], "change": summary[1], "same": summary[2],
        "changes": changes, "written": if dry_run { 0 } else { rows.len() },
    }))
}

/// How many rows add, change and leave a key as it is; the first changes.
fn diff(
    store: &StateStore,
    spec: &TableSpec,
    rows: &[(String, Value, Option<Duration>)],
) -> Result<([usize; 3], Vec<Value>), OpError> {
    let now = now_ms();
    let mut counts = [0; 3];
    let mut shown = Vec::new();
    for (key, value, _) in rows {
        let current = store.get(&spec.name, key, now).map_err(failed)?;
        let (slot, what) = match &current {
            None => (0, "add"),
            Some(e) if &e.value != value => (1, "change"),
            Some(_) => (2, "same"),
        };
        counts[slot] += 1;
        if slot < 2 && shown.len() < SHOWN_CHANGES {
            let before = current.map(|e| e.value);
            shown.push(json!({"key": key, "op": what, "before": before, "after": value}));
        }
    }
    Ok((counts, shown))
}
