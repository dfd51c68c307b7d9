//! The test file format (`NAME.test.yaml` beside `NAME.yaml`): cases, each
//! an alert, canned connector answers, approvals given during the run, and
//! what the run must come to. See `docs/testing.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The playbook under test, relative to this file; default: the
    /// `NAME.yaml` beside `NAME.test.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<PathBuf>,
    /// The cases, run in order.
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown as `PLAYBOOK::NAME`.
    pub name: String,
    /// Why the case exists (free text).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Who starts the run.
    #[serde(default = "default_starter")]
    pub started_by: String,
    /// The alert, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Value>,
    /// Or a JSON file holding it, relative to the test file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_file: Option<PathBuf>,
    /// Canned answers by step id, or by `plugin.action` for every step
    /// using it (a step's own answer wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, Answer>,
    /// Later alerts delivered while the run is open (after its start,
    /// before the approvals): with the playbook's `group:` each must join
    /// the run (`alert_grouped`), and the case fails if one starts a run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grouped_alerts: Vec<Value>,
    /// The state tables as the run finds them: table, then key, then the
    /// entry's value (entries do not expire during a case).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub state: BTreeMap<String, BTreeMap<String, Value>>,
    /// Decisions given while the run waits, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// What the run must come to.
    #[serde(default)]
    pub expect: Expect,
}

fn default_starter() -> String {
    "soar-test".into()
}

/// What a connector answers. Exactly one of `output`, `error`, `attempts`
/// and `items`; `plan` answers the dry runs an approval's plan makes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The action's output, on every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Or its error, on every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CannedError>,
    /// Or one answer per attempt (1, 2, ...); the last repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Answer>>,
    /// Or one answer per `for_each` item (0, 1, ...); the last repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Answer>>,
    /// The dry-run output (default `{"planned": true}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
}

/// A connector's error: its kind as journaled (`unavailable`,
/// `rate_limited`, `not_found`, `unauthorized`, `conflict`, `permanent`,
/// `invalid_input`, `denied`, `timeout`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedError {
    /// The kind.
    pub kind: String,
    /// The vendor's message.
    #[serde(default)]
    pub message: String,
    /// For `rate_limited`: the vendor's hint, e.g. `"2s"`.
    #[serde(
        default,
        with = "crate::playbook::duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<Duration>,
}

/// A decision during the run: a vote, or the gate's expiry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approval step.
    pub step: String,
    /// The voter (a principal of the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `approve` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<String>,
    /// Journaled with the vote.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Nobody answers: the gate expires (counts as denied).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expires: bool,
    /// The vote must be refused, with this kind (`self_approval`,
    /// `not_approver`...), and the run goes on waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// What the run must come to; what is not listed is not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The run's final (or paused) status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Steps by id: a status, or `{status, error, output}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, StepExpect>,
    /// The rules that blocked destructive steps, exactly (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Vec<String>>,
    /// Playbook outputs: each listed one must match (objects: a subset).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
    /// Calls that must happen (not dry runs), inputs as a subset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallExpect>,
    /// Calls that must not happen: `plugin.action`, or with inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_calls: Vec<CallPattern>,
}

/// A step's expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepExpect {
    /// Only its status.
    Status(String),
    /// Status, error kind, output (a subset).
    Full {
        /// Status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// The error's `kind`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Output (objects: a subset).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
    },
}

/// A call that must happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallExpect {
    /// `plugin.action`.
    pub uses: String,
    /// Its input (a subset).
    #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Exactly this many such calls (default: at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<usize>,
}

/// A call that must not happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CallPattern {
    /// Any call of `plugin.action`.
    Uses(String),
    /// A call with these inputs (a subset).
    With {
        /// `plugin.action`.
        uses: String,
        /// Its input (a subset).
        #[serde(rename = "with")]
        input: Value,
    },
}

impl CallPattern {
    /// `plugin.action` and the input subset, if any.
    pub fn parts(&self) -> (&str, Option<&Value>) {
        match self {
            CallPattern::Uses(u) => (u, None),
            CallPattern::With { uses, input } => (uses, Some(input)),
        }
    }
}

impl Answer {
    /// What is wrong with this answer's shape, if anything.
    pub fn problem(&self) -> Option<String> {
        let given = [
            self.output.is_some(),
            self.error.is_some(),
            self.attempts.is_some(),
            self.items.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given > 1 {
            return Some("give one of `output`, `error`, `attempts`, `items`".into());
        }
        if given == 0 && self.plan.is_none() {
            return Some("give `output`, `error`, `attempts` or `items`".into());
        }
        let nested = self.attempts.iter().chain(self.items.iter()).flatten();
        nested.filter_map(Answer::problem).next()
    }
}

/// Reads a test file; errors name the file, line and column.
pub fn read(path: &Path) -> Result<TestFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let file: TestFile = crate::yaml::parse(path, &text).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for case in &file.cases {
        if !names.insert(case.name.as_str()) {
            problems.push(format!("duplicate case name `{}`", case.name));
        }
        if case.alert.is_some() == case.alert_file.is_some() {
            problems.push(format!(
                "case `{}`: give one of `alert` and `alert_file`",
                case.name
            ));
        }
        for (key, answer) in &case.answers {
            if let Some(p) = answer.problem() {
                problems.push(format!("case `{}`: answer `{key}`: {p}", case.name));
            }
        }
        for a in &case.approvals {
            if a.expires == (a.vote.is_some() || a.by.is_some()) {
                problems.push(format!(
                    "case `{}`: approval of `{}`: give `by` and `vote`, or `expires: true`",
                    case.name, a.step
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(format!("{}: {}", path.display(), problems.join("; ")))
    }
}
