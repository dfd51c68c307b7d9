//! From YAML text to a [`Playbook`]: read it loosely ([`super::raw`]: every
//! value with its position, nothing can stop the read but broken syntax),
//! then convert to the model, keeping positions in side tables and
//! reporting every malformed, missing or unknown value, each at its place.

use super::model::{
    default_approval_timeout, ApprovalGate, Group, Handoff, InputDecl, InputPositions, InputType,
    MinApprovalsIf, Notify, OnError, Playbook, PlaybookPositions, RetryPolicy, RetryPositions,
    Step, StepPositions, Trigger,
};
use super::raw::{
    kind_of, Keyed, List, Loose, Map, RawApproval, RawGroup, RawHandoff, RawInput, RawMinIf,
    RawNotify, RawPlaybook, RawRetry, RawStep, Shaped,
};
use super::Diagnostic;
use crate::yaml::{self, Pos, Spanned};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Parses playbook text read from `path`: the playbook when nothing is
/// wrong, else every problem.
pub(super) fn parse(path: &Path, text: &str) -> Result<Playbook, Vec<Diagnostic>> {
    match parse_partial(path, text) {
        (Some(playbook), diags) if diags.is_empty() => Ok(playbook),
        (_, diags) => Err(diags),
    }
}

/// Parses as far as the text allows: the playbook (with defaults in place
/// of malformed values, so that the whole-playbook checks can still run)
/// unless the YAML itself is broken, and every problem found, sorted.
pub(super) fn parse_partial(path: &Path, text: &str) -> (Option<Playbook>, Vec<Diagnostic>) {
    if text.trim().is_empty() {
        let empty = "the playbook is empty (it needs at least `name`, `version` and `steps`)";
        return (None, vec![Diagnostic::new(path, Pos::default(), empty)]);
    }
    let raw: Spanned<Map<RawPlaybook>> = match yaml::parse(path, text) {
        Ok(raw) => raw,
        Err(e) => {
            let diag = Diagnostic {
                path: e.path,
                pos: e.pos,
                message: e.message,
            };
            return (None, vec![diag]);
        }
    };
    let mut r = Reader {
        path,
        list: Vec::new(),
    };
    let here = Pos::of(&raw);
    let playbook = match raw.value.0 {
        Shaped::Value(pb) => Some(convert(pb, here, &mut r)),
        Shaped::Wrong(what) => {
            r.push(
                here,
                format!("a playbook is a mapping with `name`, `version` and `steps`, not {what}"),
            );
            None
        }
    };
    r.list.sort_by_key(|d| (d.pos.line, d.pos.column));
    let playbook = playbook.map(|pb| Playbook {
        path: path.to_path_buf(),
        sha256: crate::plugin_host::sha256_hex(text.as_bytes()),
        ..pb
    });
    (playbook, r.list)
}

/// Collects diagnostics while reading loose values into typed ones.
/// Longest catalog text (`purpose`, `escalation`, one of `limits`).
const MAX_CATALOG_TEXT: usize = 2_000;
/// Most `limits` entries.
const MAX_LIMITS: usize = 30;

struct Reader<'a> {
    path: &'a Path,
    list: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(Diagnostic::new(self.path, pos, message));
    }

    /// Keys written where none is known, each with a suggestion.
    fn unknown(&mut self, keys: &[Spanned<String>], known: &[&str], within: &str) {
        for key in keys {
            let name = &key.value;
            let hint = super::validate::suggest(name, known, "fields");
            self.push(
                Pos::of(key),
                format!("unknown field `{name}` in {within} ({hint})"),
            );
        }
    }

    /// Text (a number or boolean written plainly reads as its text).
    fn text(&mut self, value: &Spanned<Loose>, key: &str) -> Option<String> {
        match &value.value {
            // `key:` with nothing after it: as if it were not written.
            Loose::Null => None,
            Loose::String(s) => Some(s.clone()),
            Loose::Number(n) => Some(n.to_string()),
            Loose::Bool(b) => Some(b.to_string()),
            other => {
                let what = kind_of(other);
                self.push(Pos::of(value), format!("`{key}` must be text, not {what}"));
                None
            }
        }
    }

    /// A catalog text (`purpose`, `escalation`): optional, at most
    /// [`MAX_CATALOG_TEXT`] characters.
    fn catalog_text(&mut self, value: &Option<Spanned<Loose>>, key: &str) -> String {
        let text = self.opt_text(value, key).unwrap_or_default();
        if text.chars().count() > MAX_CATALOG_TEXT {
            if let Some(v) = value {
                self.push(
                    Pos::of(v),
                    format!("`{key}` is longer than {MAX_CATALOG_TEXT} characters"),
                );
            }
        }
        text
    }

    /// `limits`: a list of at most [`MAX_LIMITS`] texts, each at most
    /// [`MAX_CATALOG_TEXT`] characters.
    fn limits(&mut self, list: Spanned<List<Spanned<Loose>>>) -> Vec<String> {
        let at = Pos::of(&list);
        let items = self.texts(list, "limits");
        if items.len() > MAX_LIMITS {
            self.push(
                at,
                format!(
                    "`limits` lists {} entries; at most {MAX_LIMITS}",
                    items.len()
                ),
            );
        }
        for (text, pos) in &items {
            if text.chars().count() > MAX_CATALOG_TEXT {
                self.push(
                    *pos,
                    format!("a `limits` entry is longer than {MAX_CATALOG_TEXT} characters"),
                );
            }
        }
        items.into_iter().map(|(t, _)| t).collect()
    }

    /// Optional text: absent is `None` without a diagnostic.
    fn opt_text(&mut self, value: &Option<Spanned<Loose>>, key: &str) -> Option<String> {
        value.as_ref().and_then(|v| self.text(v, key))
    }

    /// A whole number that fits `u32`.
    fn count(&mut self, value: &Spanned<Loose>, key: &str) -> Option<u32> {
        if value.value.is_null() {
            return None;
        }
        let n = value.value.as_u64().and_then(|n| u32::try_from(n).ok());
        if n.is_none() {
            self.push(
                Pos::of(value),
                format!(
                    "`{key}` must be a whole number, got {}",
                    shown(&value.value)
                ),
            );
        }
        n
    }

    /// Any number.
    fn number(&mut self, value: &Spanned<Loose>, key: &str) -> Option<f64> {
        if value.value.is_null() {
            return None;
        }
        let n = value.value.as_f64();
        if n.is_none() {
            let got = shown(&value.value);
            self.push(
                Pos::of(value),
                format!("`{key}` must be a number, got {got}"),
            );
        }
        n
    }

    /// `true` or `false`.
    fn flag(&mut self, value: &Spanned<Loose>, key: &str) -> Option<bool> {
        if value.value.is_null() {
            return None;
        }
        let b = value.value.as_bool();
        if b.is_none() {
            let got = shown(&value.value);
            self.push(
                Pos::of(value),
                format!("`{key}` must be true or false, got {got}"),
            );
        }
        b
    }

    /// One of `choices`, by name.
    fn choice<T: Copy>(
        &mut self,
        value: &Spanned<Loose>,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = self.text(value, key)?;
        let found = choices.iter().find(|(n, _)| *n == text).map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
            self.push(
                Pos::of(value),
                format!(
                    "unknown variant `{text}` for `{key}` (expected one of {})",
                    names.join(", ")
                ),
            );
        }
        found
    }

    /// A humantime duration; `None` (and a diagnostic) when it does not parse.
    fn duration(&mut self, value: &Spanned<Loose>, key: &str) -> Option<Duration> {
        let text = self.text(value, key)?;
        match humantime::parse_duration(text.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(
                    Pos::of(value),
                    format!(
                        "bad duration `{text}` for `{key}`: {e} (write e.g. \"500ms\", \"30s\", \"2m\")"
                    ),
                );
                None
            }
        }
    }

    /// A duration that must be longer than zero.
    fn positive_duration(&mut self, value: &Spanned<Loose>, key: &str) -> Option<Duration> {
        let d = self.duration(value, key)?;
        if d.is_zero() {
            self.push(Pos::of(value), format!("`{key}` must be longer than 0s"));
            return None;
        }
        Some(d)
    }

    /// The contents of a value that must have a shape (`want`: "a mapping").
    fn shaped<T>(&mut self, value: Shaped<T>, at: Pos, key: &str, want: &str) -> Option<T> {
        match value {
            Shaped::Value(v) => Some(v),
            // `inputs:` with nothing after it: none, as before.
            Shaped::Wrong("empty") => None,
            Shaped::Wrong(what) => {
                self.push(at, format!("`{key}` must be {want}, not {what}"));
                None
            }
        }
    }

    /// A list of text entries, each with its position.
    fn texts(&mut self, list: Spanned<List<Spanned<Loose>>>, key: &str) -> Vec<(String, Pos)> {
        let at = Pos::of(&list);
        let items = self
            .shaped(list.value.0, at, key, "a list")
            .unwrap_or_default();
        items
            .iter()
            .filter_map(|item| Some((self.text(item, key)?, Pos::of(item))))
            .collect()
    }

    /// A mapping of the author's keys.
    fn entries<T>(&mut self, map: Spanned<Keyed<T>>, key: &str) -> super::raw::Entries<T> {
        let at = Pos::of(&map);
        self.shaped(map.value.0, at, key, "a mapping")
            .unwrap_or_default()
    }

    /// A nested mapping read into its raw struct.
    fn map<T>(&mut self, map: Spanned<Map<T>>, key: &str) -> Option<(T, Pos)> {
        let at = Pos::of(&map);
        self.shaped(map.value.0, at, key, "a mapping")
            .map(|v| (v, at))
    }
}

/// A value as shown in a message: text quoted, others as JSON.
fn shown(value: &Loose) -> String {
    match value {
        Loose::String(s) => format!("`{s}`"),
        Loose::Array(_) | Loose::Object(_) | Loose::Null => kind_of(value).to_string(),
        other => format!("`{other}`"),
    }
}

/// Where an optional value was written (line 0 when absent).
fn at<T>(value: &Option<Spanned<T>>) -> Pos {
    value.as_ref().map(Pos::of).unwrap_or_default()
}

fn convert(raw: RawPlaybook, here: Pos, r: &mut Reader<'_>) -> Playbook {
    r.unknown(&raw.unknown, RawPlaybook::KEYS, "the playbook");
    let mut positions = PlaybookPositions {
        name: at(&raw.name),
        version: at(&raw.version),
        steps: at(&raw.steps),
        dedup: at(&raw.dedup),
        group: at(&raw.group),
        ..Default::default()
    };
    let name = required_text(r, &raw.name, "name", here).unwrap_or_default();
    let valid_name = !name.trim().is_empty()
        && name
            .trim()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if raw.name.is_some() && !valid_name {
        r.push(
            positions.name,
            format!(
                "playbook name `{name}` may use only letters, digits, `_`, `-` and `.` (runs are filed under it)"
            ),
        );
    }
    let version = required_text(r, &raw.version, "version", here).unwrap_or_default();
    if raw.version.is_some() && version.trim().is_empty() {
        r.push(positions.version, "`version` must not be empty");
    }
    let inputs = raw
        .inputs
        .map(|i| convert_inputs(r.entries(i, "inputs"), &mut positions, r))
        .unwrap_or_default();
    let mut outputs = BTreeMap::new();
    for (key, template) in raw
        .outputs
        .map(|o| r.entries(o, "outputs"))
        .unwrap_or_default()
    {
        positions.outputs.insert(key.value.clone(), Pos::of(&key));
        let label = format!("outputs.{}", key.value);
        if let Some(t) = r.text(&template, &label) {
            outputs.insert(key.value, t);
        }
    }
    let steps = match raw.steps {
        None => {
            r.push(
                here,
                "missing field `steps`: a playbook needs at least one step",
            );
            Vec::new()
        }
        Some(list) => {
            let at = Pos::of(&list);
            let steps = r.shaped(list.value.0, at, "steps", "a list of steps");
            let steps: Vec<Step> = steps
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| convert_step(s, r))
                .collect();
            if steps.is_empty() {
                r.push(at, "a playbook needs at least one step");
            }
            steps
        }
    };
    Playbook {
        name,
        version,
        description: r
            .opt_text(&raw.description, "description")
            .unwrap_or_default(),
        owner: r.opt_text(&raw.owner, "owner").unwrap_or_default(),
        purpose: r.catalog_text(&raw.purpose, "purpose"),
        escalation: r.catalog_text(&raw.escalation, "escalation"),
        limits: raw.limits.map(|l| r.limits(l)).unwrap_or_default(),
        inputs,
        dedup: r.opt_text(&raw.dedup, "dedup"),
        group: raw
            .group
            .and_then(|g| r.map(g, "group"))
            .and_then(|(g, at)| convert_group(g, at, r)),
        steps,
        outputs,
        path: Default::default(),
        sha256: String::new(),
        positions,
    }
}

/// A key every playbook has: its text, or a diagnostic at the mapping.
fn required_text(
    r: &mut Reader<'_>,
    value: &Option<Spanned<Loose>>,
    key: &str,
    here: Pos,
) -> Option<String> {
    match value {
        Some(v) => r.text(v, key),
        None => {
            r.push(here, format!("missing field `{key}`"));
            None
        }
    }
}

fn convert_inputs(
    entries: super::raw::Entries<Map<RawInput>>,
    positions: &mut PlaybookPositions,
    r: &mut Reader<'_>,
) -> BTreeMap<String, InputDecl> {
    const TYPES: [(&str, InputType); 6] = [
        ("string", InputType::String),
        ("number", InputType::Number),
        ("integer", InputType::Integer),
        ("boolean", InputType::Boolean),
        ("list", InputType::List),
        ("object", InputType::Object),
    ];
    let mut inputs = BTreeMap::new();
    for (key, decl) in entries {
        let name = key.value.clone();
        let key_pos = Pos::of(&key);
        let Some((decl, _)) = r.map(decl, &format!("inputs.{name}")) else {
            continue;
        };
        r.unknown(&decl.unknown, RawInput::KEYS, &format!("input `{name}`"));
        positions.inputs.insert(
            name.clone(),
            InputPositions {
                name: key_pos,
                default: at(&decl.default),
                from: at(&decl.from),
            },
        );
        let r#type = match &decl.r#type {
            Some(t) => r.choice(t, &format!("inputs.{name}.type"), &TYPES),
            None => {
                r.push(key_pos, format!("input `{name}`: missing field `type`"));
                None
            }
        };
        let required = decl
            .required
            .as_ref()
            .and_then(|v| r.flag(v, &format!("inputs.{name}.required")));
        inputs.insert(
            name.clone(),
            InputDecl {
                // A malformed type checks nothing further (already reported).
                r#type: r#type.unwrap_or(InputType::String),
                required: required.unwrap_or(true),
                default: decl.default.map(|d| d.value).filter(|d| !d.is_null()),
                description: r
                    .opt_text(&decl.description, "description")
                    .unwrap_or_default(),
                from: r.opt_text(&decl.from, &format!("inputs.{name}.from")),
            },
        );
    }
    inputs
}

fn convert_step(spanned: Spanned<Map<RawStep>>, r: &mut Reader<'_>) -> Option<Step> {
    let here = Pos::of(&spanned);
    let Shaped::Value(raw) = spanned.value.0 else {
        r.push(here, "each step must be a mapping (with `id` and `uses`)");
        return None;
    };
    let pos = or(at(&raw.id), here);
    let id = match &raw.id {
        Some(v) => r.text(v, "id").unwrap_or_default(),
        None => {
            r.push(here, "a step needs an `id`");
            String::new()
        }
    };
    let within = format!("step `{id}`");
    r.unknown(&raw.unknown, RawStep::KEYS, &within);
    // A step with neither is `validate`'s to report (`uses` is empty).
    if let (Some(_), Some(a)) = (&raw.uses, &raw.approval) {
        r.push(
            Pos::of(a),
            format!(
                "step `{id}` has both `uses` and `approval`: an approval gate is a step of its own"
            ),
        );
    }
    let mut positions = StepPositions {
        uses: at(&raw.uses),
        approval: at(&raw.approval),
        auto_approve: at(&raw.auto_approve),
        with: at(&raw.with),
        r#if: at(&raw.condition),
        for_each: at(&raw.for_each),
        timeout: at(&raw.timeout),
        trigger: at(&raw.trigger),
        on_error: at(&raw.on_error),
        ..Default::default()
    };
    let approval = raw
        .approval
        .and_then(|a| r.map(a, "approval"))
        .map(|(a, at)| convert_approval(a, at, &id, r));
    let mut with = serde_json::Map::new();
    for (key, value) in raw.with.map(|w| r.entries(w, "with")).unwrap_or_default() {
        positions.with_keys.insert(key.value.clone(), Pos::of(&key));
        with.insert(key.value, value.value);
    }
    let mut needs = Vec::new();
    for (need, at) in raw.needs.map(|n| r.texts(n, "needs")).unwrap_or_default() {
        positions.needs.push(at);
        needs.push(need);
    }
    let retry = match raw.retry.and_then(|x| r.map(x, "retry")) {
        Some((x, block)) => convert_retry(x, block, &mut positions.retry, r),
        None => RetryPolicy::default(),
    };
    let on_error = raw.on_error.as_ref().and_then(|v| {
        let choices = [("fail", OnError::Fail), ("continue", OnError::Continue)];
        r.choice(v, "on_error", &choices)
    });
    let trigger = raw
        .trigger
        .as_ref()
        .and_then(|v| r.choice(v, "trigger", &Trigger::ALL));
    Some(Step {
        id,
        uses: r.opt_text(&raw.uses, "uses").unwrap_or_default(),
        approval,
        auto_approve: r.opt_text(&raw.auto_approve, "auto_approve"),
        with: serde_json::Value::Object(with),
        needs,
        trigger: trigger.unwrap_or_default(),
        r#if: r.opt_text(&raw.condition, "if"),
        retry,
        timeout: raw
            .timeout
            .as_ref()
            .and_then(|t| r.positive_duration(t, "timeout")),
        on_error: on_error.unwrap_or_default(),
        for_each: r.opt_text(&raw.for_each, "for_each"),
        pos,
        positions,
    })
}

fn convert_approval(a: RawApproval, here: Pos, id: &str, r: &mut Reader<'_>) -> ApprovalGate {
    r.unknown(
        &a.unknown,
        RawApproval::KEYS,
        &format!("step `{id}`: `approval`"),
    );
    let approvers: Vec<String> = a
        .approvers
        .map(|list| r.texts(list, "approval.approvers"))
        .unwrap_or_default()
        .into_iter()
        .map(|(role, _)| role)
        .collect();
    if approvers.is_empty() {
        r.push(
            here,
            format!("step `{id}`: `approval.approvers` must list at least one role"),
        );
    }
    let min_approvals = a.min_approvals.as_ref().map_or(1, |m| {
        let n = r.count(m, "approval.min_approvals").unwrap_or(1);
        if n == 0 {
            r.push(Pos::of(m), "`approval.min_approvals` must be at least 1");
        }
        n
    });
    let min_approvals_if = a
        .min_approvals_if
        .map(|list| {
            let at = Pos::of(&list);
            r.shaped(
                list.value.0,
                at,
                "approval.min_approvals_if",
                "a list of `{when, min_approvals}`",
            )
            .unwrap_or_default()
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|rule| convert_min_if(rule, id, r))
        .collect();
    let timeout = a
        .timeout
        .as_ref()
        .and_then(|t| r.positive_duration(t, "approval.timeout"))
        .unwrap_or_else(default_approval_timeout);
    let handoff = a
        .handoff
        .and_then(|h| r.map(h, "approval.handoff"))
        .map(|(h, _)| convert_handoff(h, id, r))
        .unwrap_or_default();
    let notify = a
        .notify
        .and_then(|n| r.map(n, "approval.notify"))
        .and_then(|(n, at)| convert_notify(n, at, id, r));
    ApprovalGate {
        approvers,
        min_approvals,
        min_approvals_if,
        timeout,
        handoff,
        notify,
    }
}

fn convert_min_if(
    spanned: Spanned<Map<RawMinIf>>,
    id: &str,
    r: &mut Reader<'_>,
) -> Option<MinApprovalsIf> {
    let (rule, here) = r.map(spanned, "approval.min_approvals_if[]")?;
    let within = format!("step `{id}`: `approval.min_approvals_if`");
    r.unknown(&rule.unknown, RawMinIf::KEYS, &within);
    let when = required_text(r, &rule.when, "approval.min_approvals_if[].when", here);
    let min = match &rule.min_approvals {
        Some(m) => r.count(m, "approval.min_approvals_if[].min_approvals"),
        None => {
            r.push(here, format!("{within}: each rule needs `min_approvals`"));
            None
        }
    };
    if min == Some(0) {
        r.push(
            here,
            format!("{within}: `min_approvals` must be at least 1"),
        );
    }
    Some(MinApprovalsIf {
        when: when?,
        min_approvals: min?,
    })
}

fn convert_group(g: RawGroup, here: Pos, r: &mut Reader<'_>) -> Option<Group> {
    r.unknown(&g.unknown, RawGroup::KEYS, "`group`");
    let key = required_text(r, &g.key, "group.key", here);
    let window = match &g.window {
        Some(w) => r.positive_duration(w, "group.window"),
        None => {
            r.push(here, "`group` needs a `window` (e.g. `1h`): how long an open run takes alerts with its key");
            None
        }
    };
    let reopen_within = g
        .reopen_within
        .as_ref()
        .and_then(|w| r.positive_duration(w, "group.reopen_within"));
    Some(Group {
        key: key?,
        window: window?,
        reopen_within,
    })
}

fn convert_handoff(h: RawHandoff, id: &str, r: &mut Reader<'_>) -> Handoff {
    let within = format!("step `{id}`: `approval.handoff`");
    r.unknown(&h.unknown, RawHandoff::KEYS, &within);
    let mut field = |v: &Option<Spanned<Loose>>, key: &str| {
        r.opt_text(v, &format!("approval.handoff.{key}"))
            .unwrap_or_default()
    };
    Handoff {
        summary: field(&h.summary, "summary"),
        why: field(&h.why, "why"),
        affected: field(&h.affected, "affected"),
        recommended_action: field(&h.recommended_action, "recommended_action"),
        uncertainties: field(&h.uncertainties, "uncertainties"),
    }
}

fn convert_notify(n: RawNotify, here: Pos, id: &str, r: &mut Reader<'_>) -> Option<Notify> {
    let within = format!("step `{id}`: `approval.notify`");
    r.unknown(&n.unknown, RawNotify::KEYS, &within);
    let plugin = required_text(r, &n.plugin, "approval.notify.plugin", here);
    let channel = required_text(r, &n.channel, "approval.notify.channel", here);
    Some(Notify {
        plugin: plugin?,
        channel: channel?,
    })
}

fn convert_retry(
    x: RawRetry,
    block: Pos,
    positions: &mut RetryPositions,
    r: &mut Reader<'_>,
) -> RetryPolicy {
    r.unknown(&x.unknown, RawRetry::KEYS, "`retry`");
    *positions = RetryPositions {
        block,
        max_attempts: at(&x.max_attempts),
        initial_delay: at(&x.initial_delay),
        max_delay: at(&x.max_delay),
        multiplier: at(&x.multiplier),
        jitter: at(&x.jitter),
    };
    // A malformed value keeps the default (reported here), so the checks
    // between values (`initial_delay` <= `max_delay`) see sane numbers.
    let mut retry = RetryPolicy::default();
    if let Some(n) = x
        .max_attempts
        .as_ref()
        .and_then(|v| r.count(v, "retry.max_attempts"))
    {
        retry.max_attempts = n;
    }
    if let Some(d) = x
        .initial_delay
        .as_ref()
        .and_then(|v| r.duration(v, "retry.initial_delay"))
    {
        retry.initial_delay = d;
    }
    if let Some(d) = x
        .max_delay
        .as_ref()
        .and_then(|v| r.duration(v, "retry.max_delay"))
    {
        retry.max_delay = d;
    }
    if let Some(m) = x
        .multiplier
        .as_ref()
        .and_then(|v| r.number(v, "retry.multiplier"))
    {
        retry.multiplier = m;
    }
    if let Some(j) = x.jitter.as_ref().and_then(|v| r.number(v, "retry.jitter")) {
        retry.jitter = j;
    }
    retry
}

/// `pos` when known, else `fallback`.
fn or(pos: Pos, fallback: Pos) -> Pos {
    if pos.line == 0 {
        fallback
    } else {
        pos
    }
}
