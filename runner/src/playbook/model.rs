//! The playbook format as Rust types: what `load` produces, what the engine
//! runs, and what `json_schema()` publishes. Positions for diagnostics ride
//! along in fields skipped by serde and schemars.

use crate::yaml::Pos;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A playbook: typed inputs, a DAG of steps calling connector actions, and
/// outputs computed from the steps' results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Name runs are filed under (letters, digits, `_`, `-`, `.`).
    #[schemars(pattern(r"^[A-Za-z0-9_.-]+$"))]
    pub name: String,
    /// The author's version of this playbook (free text, e.g. `"1.2"`).
    pub version: String,
    /// What the playbook is for.
    #[serde(default)]
    pub description: String,
    /// Who maintains it (team or person).
    #[serde(default)]
    pub owner: String,
    /// The catalog's "what it is for", for the SOC reading it (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub purpose: String,
    /// Who to call when it cannot decide or fails (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub escalation: String,
    /// What it knowingly does not handle, one line each (optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Declared inputs, by name; templates read them as `inputs.NAME`.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputDecl>,
    /// Template over `{inputs, alert}`: alerts giving the same key while a
    /// run with that key exists start no new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
    /// Alerts giving one group key while its run is open join that run
    /// (`alert_grouped`) instead of starting another: one case per incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// The steps, in file order; execution order follows `needs`.
    pub steps: Vec<Step>,
    /// Results of the run: templates over `{inputs, steps, run}`, by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// The file it was loaded from (set by `load`, not written in YAML).
    #[serde(skip)]
    #[schemars(skip)]
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the file's bytes (set by `load`).
    #[serde(skip)]
    #[schemars(skip)]
    pub sha256: String,
    /// Where things were written, for diagnostics (all zero when the
    /// playbook was not loaded from YAML).
    #[serde(skip)]
    #[schemars(skip)]
    pub positions: PlaybookPositions,
}

/// `group:`: one run per incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Template over `{inputs, alert}`, e.g. `"{{ alert.device.hostname }}"`.
    pub key: String,
    /// How long after a group's first alert its open run takes later ones;
    /// after it, or once the run has finished, the next alert starts a run.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// A new run for a key whose previous run started within this long
    /// links to it (`previous_run`); default: the window.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration_text::option"
    )]
    #[schemars(with = "Option<String>")]
    pub reopen_within: Option<Duration>,
}

/// Type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// A JSON string.
    String,
    /// Any JSON number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A JSON array.
    List,
    /// A JSON object.
    Object,
}

impl InputType {
    /// True when `value` has this type (`null` has none).
    pub fn matches(self, value: &serde_json::Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Number => value.is_number(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Boolean => value.is_boolean(),
            Self::List => value.is_array(),
            Self::Object => value.is_object(),
        }
    }

    /// "a string", "an integer"... for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Number => "a number",
            Self::Integer => "an integer",
            Self::Boolean => "a boolean",
            Self::List => "a list",
            Self::Object => "an object",
        }
    }
}

/// One declared input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputDecl {
    /// JSON type the value must have.
    pub r#type: InputType,
    /// A run cannot start without it (a `default` satisfies it).
    #[serde(default = "yes")]
    pub required: bool,
    /// Value used when the alert does not provide one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What the input means.
    #[serde(default)]
    pub description: String,
    /// Template over `{alert}` extracting the value, e.g.
    /// `"{{ alert.device.device_id }}"`; without it the alert field of the
    /// same name is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

fn yes() -> bool {
    true
}

/// One step: a connector action call, with its dependencies and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique id (`[a-z_][a-z0-9_]*`); templates read `steps.ID.output`.
    #[schemars(pattern(r"^[a-z_][a-z0-9_]*$"))]
    pub id: String,
    /// The action, as `plugin.action` (empty for an approval step).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"))]
    pub uses: String,
    /// Makes this an approval gate instead of an action: its branch waits
    /// until enough approvers decide. Write either `uses` or `approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalGate>,
    /// For a destructive action: a condition that, when true, authorizes it
    /// without a human approval (journaled with its inputs and result).
    /// Without it, a destructive step needs an approval step upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<String>,
    /// The action's input: an object whose strings are templates over
    /// `{inputs, steps, run}` (plus `item`/`index` with `for_each`).
    #[serde(default = "empty_object")]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub with: serde_json::Value,
    /// Steps that must finish first; only their results (and their own
    /// upstreams') may be read.
    #[serde(default)]
    pub needs: Vec<String>,
    /// When the step runs, given how its needs ended (see [`Trigger`]).
    #[serde(default, skip_serializing_if = "Trigger::is_default")]
    pub trigger: Trigger,
    /// Condition (bare expression or `{{ }}`); false skips the step.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub r#if: Option<String>,
    /// Retries of a failed attempt (retryable errors only).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Limit on one attempt, e.g. `"30s"`, `"2m"`.
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// What a failure of this step does to the run.
    #[serde(default)]
    pub on_error: OnError,
    /// Template giving a list; the action runs once per item, with `item`
    /// and `index` in scope of `with` and `if`, and the step's output is
    /// the list of per-item outputs in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Where the step's `id` was written.
    #[serde(skip)]
    #[schemars(skip)]
    pub pos: Pos,
    /// Where its other parts were written.
    #[serde(skip)]
    #[schemars(skip)]
    pub positions: StepPositions,
}

/// A human approval gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalGate {
    /// Roles (from the config's approvers) whose members may decide.
    #[schemars(length(min = 1))]
    pub approvers: Vec<String>,
    /// Distinct people who must approve (a single denial decides).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub min_approvals: u32,
    /// More approvals when a condition holds, e.g. two for a critical
    /// asset: the highest of `min_approvals` and every rule that holds (or
    /// cannot be evaluated: doubt raises the bar) is what the request asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min_approvals_if: Vec<MinApprovalsIf>,
    /// How long the request waits; unanswered, it counts as denied.
    #[serde(default = "default_approval_timeout", with = "duration_text")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// What the approver is shown: templates over `{inputs, steps, run}`.
    #[serde(default)]
    pub handoff: Handoff,
    /// Also ask in a chat channel: a message with the handoff, the expiry,
    /// a link to the console and Approve/Deny buttons, posted through the
    /// connector's `notify` action when the approval is requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
}

/// One rule of `approval.min_approvals_if`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinApprovalsIf {
    /// A condition over `{inputs, steps, run}`, like `if:`.
    pub when: String,
    /// Distinct people who must approve when it holds.
    #[schemars(range(min = 1))]
    pub min_approvals: u32,
}

/// `approval.notify`: where to ask besides the console and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The chat connector (its `notify` action posts, its `update` action
    /// later shows the decision), e.g. `chatops`.
    pub plugin: String,
    /// The channel id or name.
    pub channel: String,
}

fn one() -> u32 {
    1
}

/// Default wait for an approval: one hour, then fail closed.
pub fn default_approval_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// The handoff shown to an approver. Each field is a template; a field
/// that renders to a list or object is shown as such.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// One line: what is being asked.
    #[serde(default)]
    pub summary: String,
    /// Evidence from earlier steps.
    #[serde(default)]
    pub why: String,
    /// Assets and users the action touches.
    #[serde(default)]
    pub affected: String,
    /// What the playbook recommends.
    #[serde(default)]
    pub recommended_action: String,
    /// What is not known.
    #[serde(default)]
    pub uncertainties: String,
}

impl Handoff {
    /// Fields by name, in display order.
    pub fn fields(&self) -> [(&'static str, &str); 5] {
        [
            ("summary", &self.summary),
            ("why", &self.why),
            ("affected", &self.affected),
            ("recommended_action", &self.recommended_action),
            ("uncertainties", &self.uncertainties),
        ]
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// Retry policy: exponential backoff with jitter between attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Wait before the second attempt, e.g. `"1s"`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub initial_delay: Duration,
    /// Cap on any wait.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub max_delay: Duration,
    /// Factor between successive waits (>= 1).
    #[schemars(range(min = 1.0))]
    pub multiplier: f64,
    /// Random spread of each wait, as a fraction (0..=1).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// When a step runs, once every step it needs has settled. A step whose
/// trigger is not met is skipped, and so are the steps that need it under
/// the default rule. A need in doubt holds every rule: the step waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// No need was skipped (each succeeded, or failed under
    /// `on_error: continue`): the rule every step had before joins.
    #[default]
    NoneSkipped,
    /// Every need succeeded.
    AllSucceeded,
    /// Every need settled, however (succeeded, failed, skipped): a join
    /// after branches, e.g. one comment whatever the outcome.
    AllDone,
    /// At least one need succeeded.
    OneSucceeded,
}

impl Trigger {
    /// Every rule, by its YAML name.
    pub const ALL: [(&'static str, Trigger); 4] = [
        ("none_skipped", Trigger::NoneSkipped),
        ("all_succeeded", Trigger::AllSucceeded),
        ("all_done", Trigger::AllDone),
        ("one_succeeded", Trigger::OneSucceeded),
    ];

    /// The YAML name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("none_skipped", |(n, _)| n)
    }

    fn is_default(&self) -> bool {
        *self == Trigger::NoneSkipped
    }

    /// Whether a step may read a need's output and find it unset: the
    /// need was skipped or failed and this rule still runs the step.
    pub fn runs_without_output(self) -> bool {
        matches!(self, Trigger::AllDone | Trigger::OneSucceeded)
    }
}

/// What a failed step does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run fails (steps already started finish; nothing new starts).
    #[default]
    Fail,
    /// The run goes on; downstream steps see `steps.ID.status == 'failed'`.
    Continue,
}

/// Where the playbook-level parts were written (line 0 = unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaybookPositions {
    /// The `name` value.
    pub name: Pos,
    /// The `version` value.
    pub version: Pos,
    /// The `steps` list.
    pub steps: Pos,
    /// The `dedup` value.
    pub dedup: Pos,
    /// The `group` mapping.
    pub group: Pos,
    /// Each input, by name.
    pub inputs: BTreeMap<String, InputPositions>,
    /// Each output's key, by name.
    pub outputs: BTreeMap<String, Pos>,
}

/// Where an input declaration's parts were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputPositions {
    /// The input's name (its key under `inputs`).
    pub name: Pos,
    /// Its `default` value.
    pub default: Pos,
    /// Its `from` value.
    pub from: Pos,
}

/// Where a step's parts were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepPositions {
    /// The `uses` value.
    pub uses: Pos,
    /// The `approval` value.
    pub approval: Pos,
    /// The `auto_approve` value.
    pub auto_approve: Pos,
    /// The `with` mapping.
    pub with: Pos,
    /// Each key of `with`.
    pub with_keys: BTreeMap<String, Pos>,
    /// Each entry of `needs`, in order.
    pub needs: Vec<Pos>,
    /// The `if` value.
    pub r#if: Pos,
    /// The `for_each` value.
    pub for_each: Pos,
    /// The `timeout` value.
    pub timeout: Pos,
    /// The `trigger` value.
    pub trigger: Pos,
    /// The `on_error` value.
    pub on_error: Pos,
    /// The `retry` mapping and its values.
    pub retry: RetryPositions,
}

/// Where a retry policy's parts were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryPositions {
    /// The `retry` mapping.
    pub block: Pos,
    /// `max_attempts`.
    pub max_attempts: Pos,
    /// `initial_delay`.
    pub initial_delay: Pos,
    /// `max_delay`.
    pub max_delay: Pos,
    /// `multiplier`.
    pub multiplier: Pos,
    /// `jitter`.
    pub jitter: Pos,
}

/// Durations as humantime text (`"500ms"`, `"30s"`, `"2m"`), the way they
/// are written in playbooks, so a serialized playbook reads back the same.
pub(crate) mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
