//! Which playbook a run uses: loaded and validated against the installed
//! plugins, and for a resumed run checked against the hash it started with.

use crate::journal::{Event, Record};
use crate::playbook::{self, Catalog, Playbook};
use crate::plugin_host::{ActionManifest, PluginHost};
use crate::state::actions as state;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Catalog for PluginHost {
    fn action(&self, plugin: &str, action: &str) -> Result<ActionManifest, String> {
        if plugin == state::PLUGIN {
            return builtin(state::manifest(), action);
        }
        if let Some(e) = self.load_error(plugin) {
            return Err(format!(
                "plugin `{plugin}` is configured but failed to load: {e}"
            ));
        }
        let Some(p) = self.plugin(plugin) else {
            let known: Vec<String> = self.plugins().map(|p| p.name.clone()).collect();
            return Err(format!(
                "no plugin `{plugin}` is installed (installed: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ));
        };
        builtin(&p.manifest, action)
    }

    fn table(&self, name: &str) -> Result<(), String> {
        if self.tables().contains_key(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.tables().keys().map(String::as_str).collect();
        Err(if known.is_empty() {
            format!("no table `{name}`: the config declares no `state.tables`")
        } else {
            format!(
                "no table `{name}` in the config's `state.tables` (tables: {})",
                known.join(", ")
            )
        })
    }
}

/// `action` of `manifest`, or which actions it has.
fn builtin(
    manifest: &crate::plugin_host::Manifest,
    action: &str,
) -> Result<ActionManifest, String> {
    manifest.action(action).cloned().ok_or_else(|| {
        let names: Vec<&str> = manifest.actions.iter().map(|a| a.name.as_str()).collect();
        format!(
            "plugin `{}` has no action `{action}` (actions: {})",
            manifest.name,
            names.join(", ")
        )
    })
}

/// Loads and validates a playbook against the installed plugins; every
/// problem as `PATH:LINE:COL: ...`.
pub fn checked_playbook(path: &Path, host: &PluginHost) -> Result<Playbook, Vec<String>> {
    playbook::check(path, host).map_err(|ds| ds.iter().map(ToString::to_string).collect())
}

/// The playbook a run started with (the file it names, which the engine
/// checks against the journaled hash).
pub fn playbook_of(records: &[Record], host: &PluginHost) -> Result<Playbook, String> {
    let path = records
        .iter()
        .find_map(|r| match &r.event {
            Event::RunStarted { playbook_path, .. } => Some(playbook_path.clone()),
            _ => None,
        })
        .ok_or("the journal has no run_started record")?;
    checked_playbook(Path::new(&path), host)
        .map_err(|p| format!("playbook `{path}`: {}", p.join("; ")))
}

/// The playbooks a long-running process may start, by name, loaded once.
#[derive(Default, Clone)]
pub struct Playbooks {
    by_name: BTreeMap<String, Arc<Playbook>>,
    by_path: BTreeMap<PathBuf, Arc<Playbook>>,
}

impl Playbooks {
    /// Loads every file; all problems of all files, or the catalog.
    pub fn load(paths: &[PathBuf], host: &PluginHost) -> Result<Self, Vec<String>> {
        let mut out = Playbooks::default();
        let mut problems = Vec::new();
        for path in paths {
            if out.by_path.contains_key(path) {
                continue;
            }
            match checked_playbook(path, host) {
                Ok(pb) => {
                    let pb = Arc::new(pb);
                    if let Some(other) = out.by_name.get(&pb.name) {
                        if other.path != pb.path {
                            problems.push(format!(
                                "{}: playbook name `{}` is also used by {}",
                                path.display(),
                                pb.name,
                                other.path.display()
                            ));
                            continue;
                        }
                    }
                    out.by_name.insert(pb.name.clone(), pb.clone());
                    out.by_path.insert(path.clone(), pb);
                }
                Err(p) => problems.extend(p),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// The playbook named `name`.
    pub fn named(&self, name: &str) -> Option<&Arc<Playbook>> {
        self.by_name.get(name)
    }

    /// The playbook loaded from `path`.
    pub fn at(&self, path: &Path) -> Option<&Arc<Playbook>> {
        self.by_path.get(path)
    }

    /// Every playbook, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Playbook>> {
        self.by_name.values()
    }

    /// Names, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}
