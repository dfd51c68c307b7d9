//! A connector's declaration: its actions with their flags and schemas, and
//! the dispatch from action name to handler, kept in one place so they
//! cannot drift apart.

use crate::context::{Context, Invocation};
use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Serialize};

/// What kind of target an input field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Host id or hostname.
    Host,
    /// User id, login or e-mail.
    User,
    /// IP address.
    Ip,
    /// Domain name.
    Domain,
}

/// An input field that names a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetField {
    /// Top-level input field.
    pub field: String,
    /// Its kind.
    pub kind: TargetKind,
}

/// The manifest of one action (what `describe()` returns for it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionManifest {
    /// Action name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Changes the world.
    pub destructive: bool,
    /// Safe to repeat with the same idempotency key.
    pub idempotent: bool,
    /// JSON Schema of the input.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    pub output_schema: serde_json::Value,
    /// Input fields naming targets.
    pub targets: Vec<TargetField>,
    /// Read-only action that tells whether the effect already happened.
    pub probe: Option<String>,
}

/// The whole connector manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Connector name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// What it connects to.
    pub description: String,
    /// Actions.
    pub actions: Vec<ActionManifest>,
    /// Secret names it refers to.
    pub secrets: Vec<String>,
    /// Config keys it reads.
    pub config_keys: Vec<String>,
}

type Handler = Box<dyn Fn(&str, &Context) -> Result<String>>;

/// One action: flags, schemas and the function that runs it.
pub struct Action {
    name: String,
    description: String,
    destructive: bool,
    idempotent: bool,
    targets: Vec<TargetField>,
    probe: Option<String>,
    input_schema: fn() -> serde_json::Value,
    output_schema: fn() -> serde_json::Value,
    handler: Handler,
}

fn schema_of<T: JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

impl Action {
    /// An action whose input `I` and output `O` are plain serde types; their
    /// JSON Schemas are derived. Read-only and not idempotent-by-key until
    /// marked otherwise (reads are naturally safe to repeat: mark them
    /// [`idempotent`](Self::idempotent)).
    pub fn new<I, O>(name: &str, description: &str, run: fn(I, &Context) -> Result<O>) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
    {
        let action = name.to_string();
        Self {
            name: name.to_string(),
            description: description.to_string(),
            destructive: false,
            idempotent: false,
            targets: Vec::new(),
            probe: None,
            input_schema: schema_of::<I>,
            output_schema: schema_of::<O>,
            handler: Box::new(move |input, ctx| {
                let input: I = serde_json::from_str(input).map_err(|e| {
                    Error::invalid_input(format!("input of `{action}` does not fit: {e}"))
                })?;
                let output = run(input, ctx)?;
                serde_json::to_string(&output)
                    .map_err(|e| Error::permanent(format!("output could not be encoded: {e}")))
            }),
        }
    }

    /// Marks the action as changing the world (gated by approvals and policy).
    pub fn destructive(mut self) -> Self {
        self.destructive = true;
        self
    }

    /// Marks the action as safe to repeat with the same idempotency key.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Declares that input field `field` names a target of `kind`.
    pub fn target(mut self, field: &str, kind: TargetKind) -> Self {
        self.targets.push(TargetField {
            field: field.to_string(),
            kind,
        });
        self
    }

    /// Names the read-only action that tells whether this one's effect happened.
    pub fn probe(mut self, action: &str) -> Self {
        self.probe = Some(action.to_string());
        self
    }

    fn manifest(&self) -> ActionManifest {
        ActionManifest {
            name: self.name.clone(),
            description: self.description.clone(),
            destructive: self.destructive,
            idempotent: self.idempotent,
            input_schema: (self.input_schema)(),
            output_schema: (self.output_schema)(),
            targets: self.targets.clone(),
            probe: self.probe.clone(),
        }
    }
}

/// A connector: name, version, what it needs, and its actions.
pub struct Plugin {
    name: String,
    version: String,
    description: String,
    secrets: Vec<String>,
    config_keys: Vec<String>,
    actions: Vec<Action>,
}

impl Plugin {
    /// A connector (use `env!("CARGO_PKG_VERSION")` for the version).
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            secrets: Vec::new(),
            config_keys: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Declares a secret the connector names in its requests.
    pub fn secret(mut self, name: &str) -> Self {
        self.secrets.push(name.into());
        self
    }

    /// Declares a config key the connector reads.
    pub fn config_key(mut self, name: &str) -> Self {
        self.config_keys.push(name.into());
        self
    }

    /// Adds an action.
    pub fn action(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// The manifest `describe()` returns.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            actions: self.actions.iter().map(Action::manifest).collect(),
            secrets: self.secrets.clone(),
            config_keys: self.config_keys.clone(),
        }
    }

    /// Runs `action` on JSON text `input`, as the host would.
    pub fn invoke(&self, action: &str, input: &str, invocation: Invocation) -> Result<String> {
        let handler = self
            .actions
            .iter()
            .find(|a| a.name == action)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "connector `{}` has no action `{action}`",
                    self.name
                ))
            })?;
        (handler.handler)(input, &Context { invocation })
    }

    /// Runs `action` on a JSON value and parses the output: for native tests.
    pub fn call(
        &self,
        action: &str,
        input: serde_json::Value,
        invocation: Invocation,
    ) -> Result<serde_json::Value> {
        let output = self.invoke(action, &input.to_string(), invocation)?;
        serde_json::from_str(&output)
            .map_err(|e| Error::permanent(format!("output is not JSON: {e}")))
    }
}
