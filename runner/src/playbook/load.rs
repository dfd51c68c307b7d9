//! From YAML text to a [`Playbook`]: parse into spanned "raw" types (which
//! know where everything was written), then convert to the plain model,
//! keeping positions in side tables and checking what the types cannot.

use super::model::{
    default_approval_timeout, ApprovalGate, Handoff, InputDecl, InputPositions, InputType, OnError,
    Playbook, PlaybookPositions, RetryPolicy, RetryPositions, Step, StepPositions,
};
use super::Diagnostic;
use crate::yaml::{self, Pos, Spanned};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

// Spanned map keys need `Hash + Eq` (serde-saphyr's `Spanned` is not `Ord`),
// hence `HashMap` here; the model sorts them into `BTreeMap`s.
type SpannedMap<V> = HashMap<Spanned<String>, Spanned<V>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: Spanned<String>,
    version: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    inputs: Option<SpannedMap<RawInput>>,
    #[serde(default)]
    dedup: Option<Spanned<String>>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    outputs: Option<SpannedMap<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    r#type: InputType,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    default: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    from: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    // Exactly one of `uses` and `approval`: checked in `convert_step`.
    #[serde(default)]
    uses: Option<Spanned<String>>,
    #[serde(default)]
    approval: Option<Spanned<RawApproval>>,
    #[serde(default)]
    auto_approve: Option<Spanned<String>>,
    #[serde(default)]
    with: Option<Spanned<SpannedMap<serde_json::Value>>>,
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    #[serde(default, rename = "if")]
    condition: Option<Spanned<String>>,
    #[serde(default)]
    retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    for_each: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    min_approvals: Option<Spanned<u32>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    handoff: Handoff,
    #[serde(default)]
    notify: Option<crate::playbook::Notify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    max_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    initial_delay: Option<Spanned<String>>,
    #[serde(default)]
    max_delay: Option<Spanned<String>>,
    #[serde(default)]
    multiplier: Option<Spanned<f64>>,
    #[serde(default)]
    jitter: Option<Spanned<f64>>,
}

/// Parses playbook text read from `path`. The YAML parser stops at its first
/// problem (one diagnostic); after that, every shape problem is collected.
pub(super) fn parse(path: &Path, text: &str) -> Result<Playbook, Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(vec![Diagnostic::new(
            path,
            Pos::default(),
            "the playbook is empty (it needs at least `name`, `version` and `steps`)",
        )]);
    }
    let raw: RawPlaybook = yaml::parse(path, text).map_err(|e| {
        vec![Diagnostic {
            path: e.path,
            pos: e.pos,
            message: e.message,
        }]
    })?;
    let mut diags = Diagnostics {
        path,
        list: Vec::new(),
    };
    let playbook = convert(raw, &mut diags);
    diags.list.sort_by_key(|d| (d.pos.line, d.pos.column));
    if diags.list.is_empty() {
        Ok(Playbook {
            path: path.to_path_buf(),
            sha256: crate::plugin_host::sha256_hex(text.as_bytes()),
            ..playbook
        })
    } else {
        Err(diags.list)
    }
}

struct Diagnostics<'a> {
    path: &'a Path,
    list: Vec<Diagnostic>,
}

impl Diagnostics<'_> {
    fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(Diagnostic::new(self.path, pos, message));
    }

    /// A humantime duration; `None` (and a diagnostic) when it does not parse.
    fn duration(&mut self, value: &Spanned<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(value.value.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(
                    Pos::of(value),
                    format!(
                        "bad duration `{}` for `{key}`: {e} (write e.g. \"500ms\", \"30s\", \"2m\")",
                        value.value
                    ),
                );
                None
            }
        }
    }
}

fn convert(raw: RawPlaybook, diags: &mut Diagnostics<'_>) -> Playbook {
    let name = raw.name.value.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        diags.push(
            Pos::of(&raw.name),
            format!(
                "playbook name `{}` may use only letters, digits, `_`, `-` and `.` (runs are filed under it)",
                raw.name.value
            ),
        );
    }
    if raw.version.value.trim().is_empty() {
        diags.push(Pos::of(&raw.version), "`version` must not be empty");
    }
    if raw.steps.value.is_empty() {
        diags.push(Pos::of(&raw.steps), "a playbook needs at least one step");
    }

    let mut positions = PlaybookPositions {
        name: Pos::of(&raw.name),
        version: Pos::of(&raw.version),
        steps: Pos::of(&raw.steps),
        dedup: at(&raw.dedup),
        ..Default::default()
    };
    let mut inputs = BTreeMap::new();
    for (key, decl) in raw.inputs.unwrap_or_default() {
        let decl = decl.value;
        positions.inputs.insert(
            key.value.clone(),
            InputPositions {
                name: Pos::of(&key),
                default: at(&decl.default),
                from: at(&decl.from),
            },
        );
        inputs.insert(
            key.value,
            InputDecl {
                r#type: decl.r#type,
                required: decl.required.unwrap_or(true),
                default: decl.default.map(|d| d.value).filter(|d| !d.is_null()),
                description: decl.description,
                from: decl.from.map(|f| f.value),
            },
        );
    }
    let mut outputs = BTreeMap::new();
    for (key, template) in raw.outputs.unwrap_or_default() {
        positions.outputs.insert(key.value.clone(), Pos::of(&key));
        outputs.insert(key.value, template.value);
    }
    let steps = raw
        .steps
        .value
        .into_iter()
        .map(|s| convert_step(s, diags))
        .collect();
    Playbook {
        name: raw.name.value,
        version: raw.version.value,
        description: raw.description,
        owner: raw.owner,
        inputs,
        dedup: raw.dedup.map(|d| d.value),
        steps,
        outputs,
        path: Default::default(),
        sha256: String::new(),
        positions,
    }
}

/// Where an optional value was written (line 0 when absent).
fn at<T>(value: &Option<Spanned<T>>) -> Pos {
    value.as_ref().map(Pos::of).unwrap_or_default()
}

fn convert_step(spanned: Spanned<RawStep>, diags: &mut Diagnostics<'_>) -> Step {
    let raw = spanned.value;
    let pos = Pos::of(&raw.id);
    match (&raw.uses, &raw.approval) {
        (None, None) => diags.push(
            pos,
            format!(
                "step `{}` has no `uses` (write `uses: plugin.action`, or `approval:` for a gate)",
                raw.id.value
            ),
        ),
        (Some(_), Some(a)) => diags.push(
            Pos::of(a),
            format!(
                "step `{}` has both `uses` and `approval`: an approval gate is a step of its own",
                raw.id.value
            ),
        ),
        _ => {}
    }
    let approval = raw.approval.as_ref().map(|spanned| {
        let a = &spanned.value;
        let here = Pos::of(spanned);
        if a.approvers.is_empty() {
            diags.push(
                here,
                format!(
                    "step `{}`: `approval.approvers` must list at least one role",
                    raw.id.value
                ),
            );
        }
        let min_approvals = a.min_approvals.as_ref().map_or(1, |m| {
            if m.value == 0 {
                diags.push(Pos::of(m), "`approval.min_approvals` must be at least 1");
            }
            m.value
        });
        let timeout = a
            .timeout
            .as_ref()
            .and_then(|t| {
                let d = diags.duration(t, "approval.timeout")?;
                if d.is_zero() {
                    diags.push(Pos::of(t), "`approval.timeout` must be longer than 0s");
                }
                Some(d)
            })
            .unwrap_or_else(default_approval_timeout);
        ApprovalGate {
            approvers: a.approvers.clone(),
            min_approvals,
            timeout,
            handoff: a.handoff.clone(),
            notify: a.notify.clone(),
        }
    });
    let mut positions = StepPositions {
        uses: at(&raw.uses),
        approval: at(&raw.approval),
        auto_approve: at(&raw.auto_approve),
        with: at(&raw.with),
        needs: raw.needs.iter().map(Pos::of).collect(),
        r#if: at(&raw.condition),
        for_each: at(&raw.for_each),
        timeout: at(&raw.timeout),
        ..Default::default()
    };
    let mut with = serde_json::Map::new();
    for (key, value) in raw.with.map(|w| w.value).unwrap_or_default() {
        positions.with_keys.insert(key.value.clone(), Pos::of(&key));
        with.insert(key.value, value.value);
    }
    let timeout = raw.timeout.as_ref().and_then(|t| {
        let d = diags.duration(t, "timeout")?;
        if d.is_zero() {
            diags.push(Pos::of(t), "`timeout` must be longer than 0s");
        }
        Some(d)
    });
    let mut retry = RetryPolicy::default();
    if let Some(spanned) = &raw.retry {
        let r = &spanned.value;
        positions.retry = RetryPositions {
            block: Pos::of(spanned),
            max_attempts: at(&r.max_attempts),
            initial_delay: at(&r.initial_delay),
            max_delay: at(&r.max_delay),
            multiplier: at(&r.multiplier),
            jitter: at(&r.jitter),
        };
        if let Some(n) = &r.max_attempts {
            retry.max_attempts = n.value;
        }
        if let Some(d) = r
            .initial_delay
            .as_ref()
            .and_then(|d| diags.duration(d, "retry.initial_delay"))
        {
            retry.initial_delay = d;
        }
        if let Some(d) = r
            .max_delay
            .as_ref()
            .and_then(|d| diags.duration(d, "retry.max_delay"))
        {
            retry.max_delay = d;
        }
        if let Some(m) = &r.multiplier {
            retry.multiplier = m.value;
        }
        if let Some(j) = &r.jitter {
            retry.jitter = j.value;
        }
    }
    Step {
        id: raw.id.value,
        uses: raw.uses.map(|u| u.value).unwrap_or_default(),
        approval,
        auto_approve: raw.auto_approve.map(|a| a.value),
        with: serde_json::Value::Object(with),
        needs: raw.needs.into_iter().map(|n| n.value).collect(),
        r#if: raw.condition.map(|c| c.value),
        retry,
        timeout,
        on_error: raw.on_error,
        for_each: raw.for_each.map(|f| f.value),
        pos,
        positions,
    }
}
