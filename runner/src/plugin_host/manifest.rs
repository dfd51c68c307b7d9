//! The host's view of a connector manifest (from `describe()`), with parsed
//! schemas, in a shape the CLI prints and later stages consult.

use super::bindings::soar::plugin::types as wit;
use serde::Serialize;

/// Kind of target an input field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

    /// Converts and checks what the guest returned: schemas must be JSON,
    /// probes must name read-only actions of the same connector.
    pub(crate) fn from_wit(m: wit::Manifest) -> Result<Self, String> {
        let mut actions = Vec::new();
        for a in m.actions {
            let parse = |text: &str, what: &str| {
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| format!("action `{}`: {what} schema is not JSON: {e}", a.name))
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
