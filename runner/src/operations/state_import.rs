//! Rows of a state import, read whole before anything is written: CSV with
//! a header row, or JSON lines. A broken row is named by its line and field
//! so whoever made the file can fix it.

use super::state::MAX_IMPORT_ROWS;
use super::OpError;
use crate::config::TableSpec;
use serde_json::{Map, Value};
use std::time::Duration;

/// One row: key, value, ttl.
pub type Row = (String, Value, Option<Duration>);

fn at_line(line: u64, message: impl std::fmt::Display) -> OpError {
    OpError::Invalid(format!("line {line}: {message}; nothing was imported"))
}

fn too_many() -> OpError {
    OpError::Invalid(format!(
        "more than {MAX_IMPORT_ROWS} rows; split the file (nothing was imported)"
    ))
}

/// Checks one row as the table would take it.
fn row(
    line: u64,
    spec: &TableSpec,
    key: String,
    value: Value,
    ttl: Option<&str>,
) -> Result<Row, OpError> {
    if key.is_empty() || key.len() > crate::state::MAX_KEY {
        let n = key.len();
        let max = crate::state::MAX_KEY;
        return Err(at_line(line, format!("the key is {n} bytes (1 to {max})")));
    }
    spec.check_value(&value).map_err(|e| at_line(line, e))?;
    let ttl = match ttl.map(str::trim).filter(|t| !t.is_empty()) {
        None => spec.ttl,
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                let why = format!("`ttl`: `{t}` is not a duration like `7d` or `12h`");
                return Err(at_line(line, why));
            }
        },
    };
    Ok((key, value, ttl))
}

/// A CSV cell as JSON: a number or boolean when it reads as one.
fn cell(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(text.to_string())),
    }
}

/// CSV with a header: `key` (or the table's key name) is the key, `ttl`
/// the entry's ttl, every other non-empty cell a field of the value.
pub fn csv_rows(text: &str, spec: &TableSpec) -> Result<Vec<Row>, OpError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| at_line(1, format!("the header row: {e}")))?
        .clone();
    let key_col = headers
        .iter()
        .position(|h| h == "key" || h == spec.key)
        .ok_or_else(|| {
            at_line(
                1,
                format!("the header has no `key` or `{}` column", spec.key),
            )
        })?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            at_line(line, e)
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if rows.len() == MAX_IMPORT_ROWS {
            return Err(too_many());
        }
        let mut value = Map::new();
        let mut ttl = None;
        for (i, (name, text)) in headers.iter().zip(record.iter()).enumerate() {
            if i == key_col || text.is_empty() {
                continue;
            }
            if name == "ttl" {
                ttl = Some(text);
            } else {
                value.insert(name.to_string(), cell(text));
            }
        }
        let key = record.get(key_col).unwrap_or_default().to_string();
        rows.push(row(line, spec, key, Value::Object(value), ttl)?);
    }
    Ok(rows)
}

/// JSON lines: `{"key": "...", "value": ..., "ttl": "7d"}`; blank lines skipped.
pub fn json_rows(text: &str, spec: &TableSpec) -> Result<Vec<Row>, OpError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() == MAX_IMPORT_ROWS {
            return Err(too_many());
        }
        let mut obj: Map<String, Value> = serde_json::from_str(line)
            .map_err(|e| at_line(n, format!("not a JSON object: {e}")))?;
        let key = match obj.remove("key") {
            Some(Value::String(k)) => k,
            _ => return Err(at_line(n, "`key` must be text")),
        };
        let value = obj
            .remove("value")
            .ok_or_else(|| at_line(n, "no `value`"))?;
        let ttl = match obj.remove("ttl") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t),
            Some(_) => return Err(at_line(n, "`ttl` must be text like `7d`")),
        };
        if let Some(extra) = obj.keys().next() {
            let why = format!("unknown field `{extra}` (fields: key, value, ttl)");
            return Err(at_line(n, why));
        }
        rows.push(row(n, spec, key, value, ttl.as_deref())?);
    }
    Ok(rows)
}
