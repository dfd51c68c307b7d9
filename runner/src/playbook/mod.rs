//! Playbooks: the YAML format ([`Playbook`] and its parts), [`load`] (parse
//! with positions) and [`validate`] (every problem, each at its line, checked
//! against the installed actions through a [`Catalog`]). See `docs/playbooks.md`.

mod load;
mod model;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

pub(crate) use model::duration_text;
pub use model::{
    ApprovalGate, Group, Handoff, InputDecl, InputPositions, InputType, MinApprovalsIf, Notify,
    OnError, Playbook, PlaybookPositions, RetryPolicy, RetryPositions, Step, StepPositions,
    Trigger,
};
pub use validate::{topo_order, validate};

use crate::plugin_host::{ActionManifest, Manifest};
use crate::yaml::Pos;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One problem in a playbook, with its place. Displays as
/// `PATH:LINE:COL: message` (`PATH: message` when there is no position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(path, pos, message))]
pub struct Diagnostic {
    /// The playbook file.
    pub path: PathBuf,
    /// Where (line 0 when unknown, e.g. an unreadable file).
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic for `path` at `pos`.
    pub fn new(path: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            pos,
            message: message.into(),
        }
    }
}

fn render(path: &Path, pos: &Pos, message: &str) -> String {
    if pos.line == 0 {
        format!("{}: {message}", path.display())
    } else {
        format!("{}:{}:{}: {message}", path.display(), pos.line, pos.column)
    }
}

/// Where `validate` looks actions up: the installed connectors.
pub trait Catalog {
    /// The manifest of `plugin.action`, or why there is none:
    /// "no plugin `x` is installed" / "plugin `x` has no action `y` (actions: a, b)".
    fn action(&self, plugin: &str, action: &str) -> Result<ActionManifest, String>;

    /// Whether the config declares state table `name`, or why not.
    fn table(&self, name: &str) -> Result<(), String> {
        Err(format!("no table `{name}`: no state tables are configured"))
    }
}

/// Manifests by the plugin name playbooks use (the config's name).
impl Catalog for BTreeMap<String, Manifest> {
    fn action(&self, plugin: &str, action: &str) -> Result<ActionManifest, String> {
        let Some(manifest) = self.get(plugin) else {
            let installed: Vec<&str> = self.keys().map(String::as_str).collect();
            return Err(if installed.is_empty() {
                format!("no plugin `{plugin}` is installed")
            } else {
                format!(
                    "no plugin `{plugin}` is installed (installed: {})",
                    installed.join(", ")
                )
            });
        };
        manifest.action(action).cloned().ok_or_else(|| {
            let actions: Vec<&str> = manifest.actions.iter().map(|a| a.name.as_str()).collect();
            format!(
                "plugin `{plugin}` has no action `{action}` (actions: {})",
                actions.join(", ")
            )
        })
    }
}

/// Reads and parses a playbook file: every malformed, missing or unknown
/// value is reported (only broken YAML syntax stops the read, with one
/// diagnostic). Graph, template and action checks are [`validate`]'s; use
/// [`check`] for both in one pass.
pub fn load(path: &Path) -> Result<Playbook, Vec<Diagnostic>> {
    let text = read(path)?;
    parse(path, &text)
}

/// [`load`] and [`validate`] in one pass: every problem of the file, those
/// of its shape and those of its graph, templates and actions, sorted by
/// place. A malformed value (a bad duration, say) does not hide the rest.
pub fn check(path: &Path, catalog: &dyn Catalog) -> Result<Playbook, Vec<Diagnostic>> {
    let text = read(path)?;
    let (playbook, mut diags) = load::parse_partial(path, &text);
    let Some(playbook) = playbook else {
        return Err(diags);
    };
    diags.extend(validate(&playbook, catalog));
    if diags.is_empty() {
        return Ok(playbook);
    }
    diags.sort_by(|a, b| {
        (a.pos.line, a.pos.column, &a.message).cmp(&(b.pos.line, b.pos.column, &b.message))
    });
    diags.dedup();
    Err(diags)
}

fn read(path: &Path) -> Result<String, Vec<Diagnostic>> {
    let bytes = std::fs::read(path).map_err(|e| {
        vec![Diagnostic::new(
            path,
            Pos::default(),
            format!("cannot read playbook: {e}"),
        )]
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        vec![Diagnostic::new(
            path,
            Pos::default(),
            format!("the playbook is not UTF-8 text: {e}"),
        )]
    })?;
    Ok(text)
}

/// [`load`] for text already read (e.g. kept in a run's journal); `path`
/// is used in diagnostics and recorded in the playbook, and `sha256` is
/// that of `text`.
pub fn parse(path: &Path, text: &str) -> Result<Playbook, Vec<Diagnostic>> {
    load::parse(path, text)
}

/// JSON Schema of the playbook format (for editors and `soar schema`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Playbook))
        .expect("a schemars schema is always valid JSON")
}
