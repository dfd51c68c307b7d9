//! The host's view of a connector manifest (from `describe()`), with parsed
//! schemas, in a shape the CLI prints and later stages consult.

use super::bindings::soar::plugin::types as wit;
use super::schema_guard::{self, SchemaLimits};
use serde::Serialize;

/// Bounds on what `describe()` may return, checked before anything else:
/// every command holds the manifest of every plugin.
const MAX_ACTIONS: usize = 256;
const MAX_NAME_BYTES: usize = 128;
const MAX_DESCRIPTION_BYTES: usize = 4096;
const MAX_LIST_ITEMS: usize = 64;

fn bounded(m: &wit::Manifest) -> Result<(), String> {
    let name = |what: &str, n: &str| {
        if n.is_empty() || n.len() > MAX_NAME_BYTES || n.chars().any(char::is_control) {
            Err(format!(
                "{what} must be 1 to {MAX_NAME_BYTES} bytes without control characters"
            ))
        } else {
            Ok(())
        }
    };
    if m.actions.len() > MAX_ACTIONS {
        return Err(format!(
            "{} actions, over the cap of {MAX_ACTIONS}",
            m.actions.len()
        ));
    }
    if m.secrets.len() > MAX_LIST_ITEMS || m.config_keys.len() > MAX_LIST_ITEMS {
        return Err(format!("more than {MAX_LIST_ITEMS} secrets or config keys"));
    }
    if m.description.len() > MAX_DESCRIPTION_BYTES || m.version.len() > MAX_NAME_BYTES {
        return Err("the description or version is too long".into());
    }
    name("the connector's name", &m.name)?;
    for a in &m.actions {
        name("an action's name", &a.name)?;
        if a.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(format!(
                "action `{}`: description over {MAX_DESCRIPTION_BYTES} bytes",
                a.name
            ));
        }
        if a.targets.len() > MAX_LIST_ITEMS {
            return Err(format!(
                "action `{}`: more than {MAX_LIST_ITEMS} target fields",
                a.name
            ));
        }
    }
    Ok(())
}

/// Kind of target an input field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Host id or hostname.
    Host,
    /// User id, login or e-mail.
    User,
    /// IP address.
    Ip,
    /// Domain.
    Domain,
}

/// An input field naming a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetField {
    /// Top-level input field.
    pub field: String,
    /// Kind.
    pub kind: TargetKind,
}

/// One action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionManifest {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Changes the world.
    pub destructive: bool,
    /// Safe to repeat with the same idempotency key.
    pub idempotent: bool,
    /// JSON Schema of the input.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    pub output_schema: serde_json::Value,
    /// Target fields.
    pub targets: Vec<TargetField>,
    /// Probe action.
    pub probe: Option<String>,
    /// The operator accepts that this destructive action names no target
    /// (`plugins.NAME.actions.ACTION.untargeted`); never set by a plugin.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub untargeted: bool,
}

impl ActionManifest {
    /// Applies the operator's override, which can only make the action
    /// stricter: destructive stays destructive, targets are only added.
    pub fn tighten(&mut self, o: &crate::config::ActionOverride) {
        self.destructive |= o.destructive;
        for (field, kind) in &o.targets {
            if !self
                .targets
                .iter()
                .any(|t| &t.field == field && t.kind == *kind)
            {
                self.targets.push(TargetField {
                    field: field.clone(),
                    kind: *kind,
                });
            }
        }
        self.untargeted = o.untargeted;
    }
}

/// A connector's manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Name the connector gives itself.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Actions.
    pub actions: Vec<ActionManifest>,
    /// Secret names.
    pub secrets: Vec<String>,
    /// Config keys.
    pub config_keys: Vec<String>,
}

impl Manifest {
    /// An action by name.
    pub fn action(&self, name: &str) -> Option<&ActionManifest> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// Converts and checks what the guest returned: sizes within bounds,
    /// schemas JSON that [`schema_guard::check`] accepts (no `$ref` cycles,
    /// linear-time patterns), probes naming read-only actions of the same
    /// connector.
    pub(crate) fn from_wit(m: wit::Manifest) -> Result<Self, String> {
        bounded(&m)?;
        let mut actions = Vec::new();
        for a in m.actions {
            let parse = |text: &str, what: &str| {
                let value = serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| format!("action `{}`: {what} schema is not JSON: {e}", a.name))?;
                schema_guard::check(&value, text.len(), &SchemaLimits::default())
                    .map_err(|e| format!("action `{}`: {what} schema is refused: {e}", a.name))?;
                Ok::<_, String>(value)
            };
            actions.push(ActionManifest {
                input_schema: parse(&a.input_schema, "input")?,
                output_schema: parse(&a.output_schema, "output")?,
                targets: a
                    .targets
                    .into_iter()
                    .map(|t| TargetField {
                        field: t.field,
                        kind: match t.kind {
                            wit::TargetKind::Host => TargetKind::Host,
                            wit::TargetKind::User => TargetKind::User,
                            wit::TargetKind::Ip => TargetKind::Ip,
                            wit::TargetKind::Domain => TargetKind::Domain,
                        },
                    })
                    .collect(),
                name: a.name,
                description: a.description,
                destructive: a.destructive,
                idempotent: a.idempotent,
                probe: a.probe,
                untargeted: false,
            });
        }
        let manifest = Self {
            name: m.name,
            version: m.version,
            description: m.description,
            actions,
            secrets: m.secrets,
            config_keys: m.config_keys,
        };
        for a in &manifest.actions {
            if manifest.actions.iter().filter(|b| b.name == a.name).count() > 1 {
                return Err(format!("action `{}` is declared twice", a.name));
            }
            if let Some(probe) = &a.probe {
                match manifest.action(probe) {
                    Some(p) if !p.destructive => {}
                    Some(_) => {
                        return Err(format!("probe `{probe}` of `{}` is destructive", a.name))
                    }
                    None => {
                        return Err(format!("probe `{probe}` of `{}` is not an action", a.name))
                    }
                }
            }
        }
        Ok(manifest)
    }
}
