//! `state:`: the tables soar keeps between runs (what playbooks read and
//! write with `state.*` steps, and operators with `soar state`). Each has
//! a name, what its key is, an optional JSON Schema for its values, an
//! optional default `ttl`, and the roles that may write it from outside runs.

use super::server::duration;
use super::{problem, ConfigProblem};
use crate::plugin_host::schema_guard;
use crate::yaml::{Pos, Spanned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Most tables one config declares.
const MAX_TABLES: usize = 200;
/// Longest default `ttl` (a year): longer is a permanent entry, say so.
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    #[serde(default)]
    tables: BTreeMap<String, Spanned<RawTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    key: Option<String>,
    #[serde(default)]
    description: String,
    ttl: Option<Spanned<String>>,
    schema: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    writers: Vec<String>,
}

/// One declared table.
#[derive(Clone)]
pub struct TableSpec {
    /// Its name (`state.tables.NAME`).
    pub name: String,
    /// What its key is, in words (e.g. `hostname`), for people and exports.
    pub key: String,
    /// What it is for.
    pub description: String,
    /// How long an entry lives unless its write says otherwise.
    pub ttl: Option<Duration>,
    /// The JSON Schema every value must meet, compiled once.
    pub schema: Option<Arc<jsonschema::Validator>>,
    /// Roles whose principals may write it from outside runs.
    pub writers: Vec<String>,
    /// Where it is declared.
    pub pos: Pos,
}

impl std::fmt::Debug for TableSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSpec")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("schema", &self.schema.is_some())
            .field("writers", &self.writers)
            .finish()
    }
}

impl TableSpec {
    /// Why `value` does not fit the table's schema, if it does not: the
    /// first problems, each with its place in the value.
    pub fn check_value(&self, value: &serde_json::Value) -> Result<(), String> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        crate::plugin_host::check(schema, value).map_err(|problems| {
            let first: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
            format!(
                "does not fit table `{}`'s schema: {}",
                self.name,
                first.join("; ")
            )
        })
    }
}

/// The declared tables, by name.
pub type Tables = BTreeMap<String, TableSpec>;

pub(super) fn resolve_state(raw: &RawState, problems: &mut Vec<ConfigProblem>) -> Tables {
    if raw.tables.len() > MAX_TABLES {
        problem(
            problems,
            Pos::default(),
            "state.tables".into(),
            format!("at most {MAX_TABLES} tables"),
        );
    }
    raw.tables
        .iter()
        .filter_map(|(name, t)| resolve_table(name, t, problems))
        .map(|t| (t.name.clone(), t))
        .collect()
}

fn resolve_table(
    name: &str,
    raw: &Spanned<RawTable>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TableSpec> {
    let at = format!("state.tables.{name}");
    let pos = Pos::of(raw);
    if let Err(e) = crate::state::check_table(name) {
        problem(problems, pos, at.clone(), e.to_string());
    }
    let t = &raw.value;
    let ttl = t.ttl.as_ref().and_then(|v| {
        let d = duration(v, &format!("{at}.ttl"), problems)?;
        if d.is_zero() || d > MAX_TTL {
            let why =
                "must be between 1s and 366 days (leave it out for entries that do not expire)";
            problem(problems, Pos::of(v), format!("{at}.ttl"), why);
            return None;
        }
        Some(d)
    });
    let schema = t.schema.as_ref().and_then(|s| {
        let text_len = serde_json::to_vec(&s.value).map_or(usize::MAX, |v| v.len());
        let compiled = schema_guard::check(&s.value, text_len, &Default::default())
            .and_then(|()| schema_guard::compile(&s.value));
        match compiled {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                problem(problems, Pos::of(s), format!("{at}.schema"), e);
                None
            }
        }
    });
    let mut writers = Vec::new();
    for role in &t.writers {
        match crate::names::normalise(role) {
            Ok(r) => writers.push(r),
            Err(e) => problem(problems, pos, format!("{at}.writers"), e.to_string()),
        }
    }
    Some(TableSpec {
        name: name.to_string(),
        key: t.key.clone().unwrap_or_else(|| "key".into()),
        description: t.description.clone(),
        ttl,
        schema,
        writers,
        pos,
    })
}
