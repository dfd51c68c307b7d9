//! Whole-playbook checks before anything runs: the step graph, actions and
//! their input schemas (via a [`Catalog`]), what every template reads, and
//! retry sanity. Every problem is collected, each at its own line.

use super::model::{Playbook, Step, Trigger};
use super::{Catalog, Diagnostic};
use crate::plugin_host::ActionManifest;
use crate::template::Templates;
use crate::yaml::Pos;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Checks `playbook` against itself and the installed actions; returns every
/// problem found (empty when it may run), sorted by position.
pub fn validate(playbook: &Playbook, catalog: &dyn Catalog) -> Vec<Diagnostic> {
    let graph = Graph::new(&playbook.steps);
    let exposed = exposed(&playbook.steps, &graph);
    let mut v = Validator {
        playbook,
        templates: Templates::new(),
        graph,
        exposed,
        diags: Vec::new(),
    };
    v.inputs();
    v.step_ids();
    v.needs();
    v.cycles();
    for (i, step) in playbook.steps.iter().enumerate() {
        v.step(i, step, catalog);
    }
    if let Some(dedup) = &playbook.dedup {
        let pos = playbook.positions.dedup;
        v.template(dedup, false, &Place::Dedup, "`dedup`", pos);
    }
    if let Some(group) = &playbook.group {
        let pos = playbook.positions.group;
        v.template(&group.key, false, &Place::Dedup, "`group.key`", pos);
    }
    for (name, template) in &playbook.outputs {
        let pos = playbook
            .positions
            .outputs
            .get(name)
            .copied()
            .unwrap_or_default();
        let label = format!("`outputs.{name}`");
        v.template(template, false, &Place::Outputs, &label, pos);
    }
    let mut diags = v.diags;
    // By position, then message, so that repeats (one template reading the
    // same wrong path twice) end up side by side and are dropped.
    diags.sort_by(|a, b| {
        (a.pos.line, a.pos.column, &a.message).cmp(&(b.pos.line, b.pos.column, &b.message))
    });
    diags.dedup();
    diags
}

/// Topological order of `steps` (indices; among ready steps, file order
/// first); `Err` with a cycle path like `["a", "b", "c", "a"]` (each step
/// is needed by the next) if the steps are cyclic. Unknown `needs` are
/// ignored here: [`validate`] reports them.
pub fn topo_order(steps: &[Step]) -> Result<Vec<usize>, Vec<String>> {
    let graph = Graph::new(steps);
    let mut waiting: Vec<usize> = graph.needs.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &graph.downstream[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    let names = |path: &[usize]| path.iter().map(|&i| steps[i].id.clone()).collect();
    match graph.cycles().first() {
        Some(cycle) => Err(names(cycle)),
        // Unreachable: a node that never became ready sits on or behind a cycle.
        None => Err(names(
            &(0..steps.len())
                .filter(|i| !order.contains(i))
                .collect::<Vec<_>>(),
        )),
    }
}

/// The `needs` graph, by step index (first step of each id).
struct Graph {
    /// Resolved, de-duplicated `needs` of each step.
    needs: Vec<Vec<usize>>,
    /// The reverse: steps that need each step.
    downstream: Vec<Vec<usize>>,
    /// Each step's transitive `needs` (contains the step itself only on a cycle).
    upstream: Vec<BTreeSet<usize>>,
    /// Step id to index of its first definition.
    index: HashMap<String, usize>,
}

impl Graph {
    fn new(steps: &[Step]) -> Self {
        let mut index = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            index.entry(s.id.clone()).or_insert(i);
        }
        let needs: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                let set: BTreeSet<usize> = s
                    .needs
                    .iter()
                    .filter_map(|n| index.get(n).copied())
                    .collect();
                set.into_iter().collect()
            })
            .collect();
        let mut downstream = vec![Vec::new(); steps.len()];
        for (i, ns) in needs.iter().enumerate() {
            for &n in ns {
                downstream[n].push(i);
            }
        }
        let upstream = (0..steps.len())
            .map(|i| {
                let mut seen = BTreeSet::new();
                let mut stack = needs[i].clone();
                while let Some(n) = stack.pop() {
                    if seen.insert(n) {
                        stack.extend(&needs[n]);
                    }
                }
                seen
            })
            .collect();
        Self {
            needs,
            downstream,
            upstream,
            index,
        }
    }

    /// One cycle per strongly connected group of steps, each as a path from
    /// its first step (in file order) back to it, upstream to downstream.
    fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.needs.len();
        let mut done = vec![false; n];
        let mut out = Vec::new();
        for start in 0..n {
            if done[start] || !self.upstream[start].contains(&start) {
                continue;
            }
            let group: BTreeSet<usize> = self.upstream[start]
                .iter()
                .copied()
                .filter(|&j| self.upstream[j].contains(&start))
                .collect();
            for &j in &group {
                done[j] = true;
            }
            // Shortest way round: breadth-first along `downstream` inside the group.
            let mut came_from = vec![usize::MAX; n];
            let mut queue = VecDeque::from([start]);
            'search: while let Some(at) = queue.pop_front() {
                for &next in &self.downstream[at] {
                    if !group.contains(&next) || came_from[next] != usize::MAX {
                        continue;
                    }
                    came_from[next] = at;
                    if next == start {
                        break 'search;
                    }
                    queue.push_back(next);
                }
            }
            let mut path = vec![start];
            let mut at = came_from[start];
            while at != start && at != usize::MAX {
                path.push(at);
                at = came_from[at];
            }
            path.push(start);
            path.reverse();
            out.push(path);
        }
        out
    }
}

/// Where a template sits, which decides what it may read.
enum Place<'a> {
    /// In a step (`with`, `if` or `for_each`).
    Step {
        index: usize,
        upstream: &'a BTreeSet<usize>,
        /// `item`/`index` are in scope (`with` and `if` of a `for_each` step).
        items: bool,
        /// This is the `for_each` template itself.
        in_for_each: bool,
    },
    /// A playbook output: any step may be read.
    Outputs,
    /// `dedup`: inputs and the alert, before any step.
    Dedup,
    /// An input's `from`: the alert only.
    InputFrom,
}

struct Validator<'a> {
    playbook: &'a Playbook,
    templates: Templates,
    graph: Graph,
    /// Per step: upstream steps whose output may be unset when it runs
    /// (see [`exposed`]).
    exposed: Vec<BTreeSet<usize>>,
    diags: Vec<Diagnostic>,
}

/// Per step, indices of whether it may end other than succeeded without
/// failing the run: skipped (an `if`, a trigger that skips, a skipped need
/// under the default rule) or failed under `on_error: continue`. Steps on a
/// cycle count as not (the cycle is reported).
fn may_not_succeed(steps: &[Step], graph: &Graph) -> Vec<bool> {
    let mut out = vec![false; steps.len()];
    let Ok(order) = topo_order(steps) else {
        return out;
    };
    for i in order {
        let s = &steps[i];
        let skips_itself = s.r#if.is_some()
            || matches!(s.trigger, Trigger::AllSucceeded | Trigger::OneSucceeded)
            || s.on_error == super::OnError::Continue;
        let inherits = s.trigger == Trigger::NoneSkipped && graph.needs[i].iter().any(|&n| out[n]);
        out[i] = skips_itself || inherits;
    }
    out
}

/// Per step, the upstream steps whose output may be unset when it runs:
/// those that may not succeed, upstream of a join (a trigger that runs
/// after a need skipped or failed) at or above the step. Without a join a
/// skipped step skips what needs it, so its output is never read unset.
fn exposed(steps: &[Step], graph: &Graph) -> Vec<BTreeSet<usize>> {
    let unsure = may_not_succeed(steps, graph);
    (0..steps.len())
        .map(|i| {
            graph.upstream[i]
                .iter()
                .chain(std::iter::once(&i))
                .filter(|&&j| steps[j].trigger.runs_without_output())
                .flat_map(|&j| graph.upstream[j].iter().copied())
                .filter(|&u| unsure[u] && u != i)
                .collect()
        })
        .collect()
}

impl<'a> Validator<'a> {
    fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(&self.playbook.path, pos, message));
    }

    /// Step ids in file order, each once.
    fn step_names(&self) -> Vec<&'a str> {
        let mut seen = BTreeSet::new();
        self.playbook
            .steps
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    fn inputs(&mut self) {
        for (name, decl) in &self.playbook.inputs {
            let at = self
                .playbook
                .positions
                .inputs
                .get(name)
                .copied()
                .unwrap_or_default();
            if let Some(default) = &decl.default {
                if !decl.r#type.matches(default) {
                    self.push(
                        or(at.default, at.name),
                        format!(
                            "the default of input `{name}` must be {} (its `type`), got {}",
                            decl.r#type.describe(),
                            default
                        ),
                    );
                }
            }
            if let Some(from) = &decl.from {
                let label = format!("`inputs.{name}.from`");
                self.template(from, false, &Place::InputFrom, &label, or(at.from, at.name));
            }
        }
    }

    fn step_ids(&mut self) {
        let mut first: HashMap<&str, Pos> = HashMap::new();
        for step in &self.playbook.steps {
            let id = step.id.as_str();
            let valid = id.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                self.push(
                    step.pos,
                    format!(
                        "step id `{id}` must be lower-case letters, digits and `_`, starting with a \
                         letter or `_` (templates read it as `steps.{id}`)"
                    ),
                );
            }
            match first.get(id) {
                Some(prev) => {
                    let message = format!(
                        "duplicate step id `{id}` (first defined at line {})",
                        prev.line
                    );
                    self.push(step.pos, message);
                }
                None => {
                    first.insert(id, step.pos);
                }
            }
        }
    }

    fn needs(&mut self) {
        let ids = self.step_names();
        for step in &self.playbook.steps {
            for (k, need) in step.needs.iter().enumerate() {
                if self.graph.index.contains_key(need) {
                    continue;
                }
                let pos = or(
                    step.positions.needs.get(k).copied().unwrap_or_default(),
                    step.pos,
                );
                let message = format!(
                    "step `{}` needs `{need}`, which is not a step of this playbook ({})",
                    step.id,
                    suggest(need, &ids, "steps")
                );
                self.push(pos, message);
            }
        }
    }

    fn cycles(&mut self) {
        for cycle in self.graph.cycles() {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| self.playbook.steps[i].id.as_str())
                .collect();
            let pos = self.playbook.steps[cycle[0]].pos;
            self.push(pos, format!("cyclic dependency: {}", names.join(" -> ")));
        }
    }

    fn step(&mut self, i: usize, step: &Step, catalog: &dyn Catalog) {
        let id = &step.id;
        let at = &step.positions;
        let mut destructive = false;
        if step.approval.is_some() {
            self.gate_shape(step);
            self.notify(step, catalog);
        } else if let Some(action) = self.action(step, catalog) {
            self.with_schema(step, &action);
            self.state_table(step, catalog);
            self.destructive(i, step, &action);
            destructive = action.destructive;
        }
        self.trigger(step, destructive);

        let upstream = &self.graph.upstream[i];
        // `self.template` needs `&mut self`; the upstream set is small.
        let upstream = upstream.clone();
        let items = step.for_each.is_some();
        let place = |in_for_each: bool| Place::Step {
            index: i,
            upstream: &upstream,
            items: items && !in_for_each,
            in_for_each,
        };
        match &step.with {
            serde_json::Value::Object(with) => {
                for (key, value) in with {
                    let pos = or(
                        at.with_keys.get(key).copied().unwrap_or_default(),
                        or(at.with, step.pos),
                    );
                    self.with_value(value, &format!("with.{key}"), &place(false), id, pos);
                }
            }
            _ => self.push(
                or(at.with, step.pos),
                format!("step `{id}`: `with` must be a mapping"),
            ),
        }
        if let Some(gate) = &step.approval {
            for (field, text) in gate.handoff.fields() {
                let label = format!("step `{id}`: `approval.handoff.{field}`");
                self.template(
                    text,
                    false,
                    &place(false),
                    &label,
                    or(at.approval, step.pos),
                );
            }
        }
        for rule in step.approval.iter().flat_map(|g| &g.min_approvals_if) {
            let whole_step = Place::Step {
                index: i,
                upstream: &upstream,
                items: false,
                in_for_each: false,
            };
            let label = format!("step `{id}`: `approval.min_approvals_if`");
            let pos = or(at.approval, step.pos);
            self.template(&rule.when, true, &whole_step, &label, pos);
        }
        if let Some(cond) = &step.auto_approve {
            // Evaluated once for the whole step, before any item: no `item`.
            let whole_step = Place::Step {
                index: i,
                upstream: &upstream,
                items: false,
                in_for_each: false,
            };
            let label = format!("step `{id}`: `auto_approve`");
            let pos = or(at.auto_approve, step.pos);
            self.template(cond, true, &whole_step, &label, pos);
        }
        if let Some(cond) = &step.r#if {
            // Decides whether the step runs at all, before any item.
            let whole_step = Place::Step {
                index: i,
                upstream: &upstream,
                items: false,
                in_for_each: false,
            };
            let label = format!("step `{id}`: `if`");
            self.template(cond, true, &whole_step, &label, or(at.r#if, step.pos));
        }
        if let Some(for_each) = &step.for_each {
            let pos = or(at.for_each, step.pos);
            let label = format!("step `{id}`: `for_each`");
            if self.template(for_each, false, &place(true), &label, pos)
                && !self.templates.is_single_expression(for_each)
            {
                self.push(
                    pos,
                    format!(
                        "{label} must be one `{{{{ expression }}}}` giving a list, e.g. \"{{{{ inputs.iocs }}}}\""
                    ),
                );
            }
        }
        self.retry(step);
    }

    /// A `state.*` step names a declared table, literally: which table a
    /// run writes is the playbook's choice, never an alert's.
    fn state_table(&mut self, step: &Step, catalog: &dyn Catalog) {
        let Some(action) = step.uses.strip_prefix("state.") else {
            return;
        };
        let at = &step.positions;
        let pos = or(
            at.with_keys.get("table").copied().unwrap_or_default(),
            or(at.with, step.pos),
        );
        let id = &step.id;
        match step.with.get("table") {
            Some(serde_json::Value::String(t)) if t.contains("{{") || t.contains("{%") => self.push(
                pos,
                format!("step `{id}`: `with.table` of `state.{action}` must be a table's name, not a template"),
            ),
            Some(serde_json::Value::String(t)) => {
                if let Err(message) = catalog.table(t) {
                    self.push(pos, format!("step `{id}`: `with.table`: {message}"));
                }
            }
            _ => {}
        }
    }

    /// An approval step carries no action-only keys.
    fn gate_shape(&mut self, step: &Step) {
        let at = or(step.positions.approval, step.pos);
        let mut extra = Vec::new();
        if step.with.as_object().is_some_and(|w| !w.is_empty()) {
            extra.push("with");
        }
        if step.for_each.is_some() {
            extra.push("for_each");
        }
        if step.timeout.is_some() {
            extra.push("timeout (use `approval.timeout`)");
        }
        if step.positions.retry.block.line != 0 {
            extra.push("retry");
        }
        if step.auto_approve.is_some() {
            extra.push("auto_approve");
        }
        if !extra.is_empty() {
            self.push(
                at,
                format!(
                    "step `{}` is an approval gate and cannot have {}",
                    step.id,
                    extra.join(", ")
                ),
            );
        }
    }

    /// Fail closed: a destructive action needs a gate upstream whose
    /// request can bind its exact inputs, or an explicit `auto_approve`.
    fn destructive(&mut self, i: usize, step: &Step, action: &ActionManifest) {
        let at = &step.positions;
        if !action.destructive {
            if step.auto_approve.is_some() {
                self.push(
                    or(at.auto_approve, step.pos),
                    format!(
                        "step `{}`: `auto_approve` only applies to destructive actions, and `{}` is not one",
                        step.id, step.uses
                    ),
                );
            }
            return;
        }
        if action.targets.is_empty() && !action.untargeted {
            self.push(
                or(at.uses, step.pos),
                format!(
                    "step `{}`: `{}` is destructive and names no target field, so nothing it acts on could be checked against the protected assets; declare its targets in the config (`plugins.{plugin}.actions.{name}.targets`) or mark it `untargeted: true` there",
                    step.id,
                    step.uses,
                    plugin = step.uses.split('.').next().unwrap_or(""),
                    name = step.uses.split('.').nth(1).unwrap_or(""),
                ),
            );
        }
        let gates: Vec<usize> = self.graph.upstream[i]
            .iter()
            .copied()
            .filter(|&g| self.playbook.steps[g].approval.is_some())
            .collect();
        if !gates.is_empty() && step.auto_approve.is_some() {
            let gate = self.playbook.steps[gates[0]].id.clone();
            self.push(
                or(at.auto_approve, step.pos),
                format!(
                    "step `{}` has approval `{gate}` upstream and `auto_approve`: choose one (a denied or void approval is final, so `auto_approve` would never apply)",
                    step.id
                ),
            );
        }
        if gates.is_empty() && step.auto_approve.is_none() {
            self.push(
                or(at.uses, step.pos),
                format!(
                    "step `{}`: `{}` is destructive: it needs an approval step upstream (in its `needs`) or an explicit `auto_approve:` condition",
                    step.id, step.uses
                ),
            );
            return;
        }
        // The approval is bound to the rendered inputs, so they must be
        // renderable when the gate asks: nothing they read may run after it.
        let mut reads = BTreeSet::new();
        let mut texts: Vec<String> = Vec::new();
        collect_strings(&step.with, &mut texts);
        texts.extend(step.for_each.clone());
        for text in &texts {
            if let Ok(refs) = self.templates.references(text, false) {
                reads.extend(refs);
            }
        }
        if reads.contains("run.merged_count") || reads.contains("run") {
            self.push(
                or(at.with, step.pos),
                format!(
                    "step `{}`: a destructive step's inputs cannot read `run.merged_count`: repeats arriving while the approval waits would change the inputs the approval is bound to (and anyone resending the alert could block it); read it in a condition or a notification instead",
                    step.id
                ),
            );
        }
        for &g in &gates {
            let gate_upstream = self.graph.upstream[g].clone();
            for path in &reads {
                let mut parts = path.split('.');
                if parts.next() != Some("steps") {
                    continue;
                }
                let Some(name) = parts.next() else { continue };
                let Some(&read) = self.graph.index.get(name) else {
                    continue;
                };
                if read == g {
                    let gate = self.playbook.steps[g].id.clone();
                    self.push(
                        or(at.with, step.pos),
                        format!(
                            "step `{}` reads `steps.{gate}`, its own approval: an approval binds the inputs before it is decided, so they cannot depend on the decision",
                            step.id
                        ),
                    );
                } else if !gate_upstream.contains(&read) {
                    let gate = self.playbook.steps[g].id.clone();
                    self.push(
                        or(at.with, step.pos),
                        format!(
                            "step `{}` reads `steps.{name}`, which is not upstream of approval `{gate}`: an approval binds the exact inputs it approves, so add `{name}` to the needs of `{gate}`",
                            step.id
                        ),
                    );
                }
            }
        }
    }

    /// The action `uses` names, or a diagnostic.
    /// `approval.notify` names a connector with a non-destructive `notify`
    /// (it posts the buttons) and `update` (it shows the decision).
    fn notify(&mut self, step: &Step, catalog: &dyn Catalog) {
        let Some(notify) = step.approval.as_ref().and_then(|g| g.notify.as_ref()) else {
            return;
        };
        let pos = or(step.positions.approval, step.pos);
        if notify.channel.trim().is_empty() {
            self.push(
                pos,
                format!("step `{}`: `approval.notify.channel` is empty", step.id),
            );
        }
        for action in ["notify", "update"] {
            match catalog.action(&notify.plugin, action) {
                Ok(m) if m.destructive => self.push(
                    pos,
                    format!(
                        "step `{}`: `approval.notify`: `{}.{action}` is destructive; a chat connector's must not be",
                        step.id, notify.plugin
                    ),
                ),
                Ok(_) => {}
                Err(message) => self.push(
                    pos,
                    format!("step `{}`: `approval.notify.plugin`: {message}", step.id),
                ),
            }
        }
    }

    fn action(&mut self, step: &Step, catalog: &dyn Catalog) -> Option<ActionManifest> {
        let pos = or(step.positions.uses, step.pos);
        if step.uses.is_empty() {
            self.push(
                pos,
                format!(
                    "step `{}` has no `uses` (write `uses: plugin.action`, or `approval:` for a gate)",
                    step.id
                ),
            );
            return None;
        }
        let well_formed = step.uses.split_once('.').filter(|(plugin, action)| {
            let part = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            part(plugin) && part(action)
        });
        let Some((plugin, action)) = well_formed else {
            self.push(
                pos,
                format!(
                    "step `{}`: `uses` must be `plugin.action` (e.g. `edr.isolate_host`), got `{}`",
                    step.id, step.uses
                ),
            );
            return None;
        };
        match catalog.action(plugin, action) {
            Ok(manifest) => Some(manifest),
            Err(message) => {
                self.push(pos, format!("step `{}`: {message}", step.id));
                None
            }
        }
    }

    /// `with` against the action's input schema, where it is statically
    /// known: required top-level fields, and no unknown ones when the schema
    /// closes the object.
    fn with_schema(&mut self, step: &Step, action: &ActionManifest) {
        let Some(with) = step.with.as_object() else {
            return;
        };
        let schema = &action.input_schema;
        let at = &step.positions;
        let required = schema.get("required").and_then(|r| r.as_array());
        for field in required.into_iter().flatten().filter_map(|f| f.as_str()) {
            if !with.contains_key(field) {
                self.push(
                    or(at.with, or(at.uses, step.pos)),
                    format!(
                        "step `{}`: missing required field `{field}` for {}",
                        step.id, step.uses
                    ),
                );
            }
        }
        if schema.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
            let known: Vec<&str> = schema
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for key in with.keys().filter(|k| !known.contains(&k.as_str())) {
                let fields = if known.is_empty() {
                    "it takes no fields".to_string()
                } else {
                    format!("fields: {}", known.join(", "))
                };
                self.push(
                    or(
                        at.with_keys.get(key).copied().unwrap_or_default(),
                        or(at.with, step.pos),
                    ),
                    format!(
                        "step `{}`: unknown field `{key}` for {} ({fields})",
                        step.id, step.uses
                    ),
                );
            }
        }
    }

    /// Checks every string inside a `with` value.
    fn with_value(
        &mut self,
        value: &serde_json::Value,
        path: &str,
        place: &Place<'_>,
        id: &str,
        pos: Pos,
    ) {
        match value {
            serde_json::Value::String(s) => {
                self.template(s, false, place, &format!("step `{id}`: `{path}`"), pos);
            }
            serde_json::Value::Array(items) => {
                for (k, item) in items.iter().enumerate() {
                    self.with_value(item, &format!("{path}[{k}]"), place, id, pos);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    self.with_value(item, &format!("{path}.{key}"), place, id, pos);
                }
            }
            _ => {}
        }
    }

    /// Syntax and every variable a template reads; true when it compiled.
    fn template(
        &mut self,
        text: &str,
        is_condition: bool,
        place: &Place<'_>,
        label: &str,
        pos: Pos,
    ) -> bool {
        let refs = match self.templates.references(text, is_condition) {
            Ok(refs) => refs,
            Err(e) => {
                self.push(pos, format!("{label}: {e}"));
                return false;
            }
        };
        for path in &refs {
            if let Some(problem) = self.reference(path, place) {
                self.push(pos, format!("{label}: {problem}"));
            }
        }
        if let Place::Step { index, .. } = place {
            self.unset_reads(*index, &refs, label, pos);
        }
        true
    }

    /// Reads of an output a join may leave unset, unless the template (or
    /// the step's `if`) tests that step's `status`.
    fn unset_reads(&mut self, index: usize, refs: &BTreeSet<String>, label: &str, pos: Pos) {
        let step = &self.playbook.steps[index];
        let guarded_by_if: BTreeSet<String> = step
            .r#if
            .as_ref()
            .and_then(|c| self.templates.references(c, true).ok())
            .unwrap_or_default();
        let tested = |name: &str| {
            let status = format!("steps.{name}.status");
            refs.contains(&status) || guarded_by_if.contains(&status)
        };
        let mut problems = Vec::new();
        for path in refs {
            let mut parts = path.split('.');
            let (Some("steps"), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !matches!(parts.next(), None | Some("output")) {
                continue;
            }
            let Some(&u) = self.graph.index.get(name) else {
                continue;
            };
            if !self.exposed[index].contains(&u) || tested(name) {
                continue;
            }
            let join = self.join_of(index, u);
            problems.push(format!(
                "{label}: reads `steps.{name}.output`, which is unset when `{name}` was skipped or failed, and `trigger: {}` of step `{join}` still runs after that: test `steps.{name}.status` first, e.g. `{{% if steps.{name}.status == 'succeeded' %}}`",
                self.playbook.steps.iter().find(|s| s.id == join).map_or("all_done", |s| s.trigger.name())
            ));
        }
        for p in problems {
            self.push(pos, p);
        }
    }

    /// The join (the step itself or one upstream) that lets `index` run
    /// without `u`'s output.
    fn join_of(&self, index: usize, u: usize) -> String {
        let steps = &self.playbook.steps;
        self.graph.upstream[index]
            .iter()
            .chain(std::iter::once(&index))
            .find(|&&j| {
                steps[j].trigger.runs_without_output() && self.graph.upstream[j].contains(&u)
            })
            .map_or_else(|| steps[index].id.clone(), |&j| steps[j].id.clone())
    }

    /// A trigger needs needs, and a destructive step or a gate may not run
    /// after its upstream failed or was skipped.
    fn trigger(&mut self, step: &Step, destructive: bool) {
        if step.trigger == Trigger::NoneSkipped {
            return;
        }
        let pos = or(step.positions.trigger, step.pos);
        let name = step.trigger.name();
        if step.needs.is_empty() {
            self.push(
                pos,
                format!(
                    "step `{}`: `trigger: {name}` decides on the step's needs, and it has none",
                    step.id
                ),
            );
        }
        if step.trigger.runs_without_output() && (destructive || step.approval.is_some()) {
            let what = if destructive {
                "a destructive step"
            } else {
                "an approval gate"
            };
            self.push(
                pos,
                format!(
                    "step `{}`: `trigger: {name}` would run {what} after a need failed or was skipped; use `none_skipped` (the default) or `all_succeeded`",
                    step.id
                ),
            );
        }
    }

    /// What is wrong with reading `path` from `place`, if anything.
    fn reference(&self, path: &str, place: &Place<'_>) -> Option<String> {
        let mut parts = path.split('.');
        let root = parts.next().unwrap_or_default();
        let (in_step, where_) = match place {
            Place::Step { .. } => (true, "a step"),
            Place::Outputs => (false, "`outputs`"),
            Place::Dedup => (false, "`dedup`"),
            Place::InputFrom => (false, "an input's `from`"),
        };
        match root {
            "inputs" => {
                if matches!(place, Place::InputFrom) {
                    return Some(
                        "`inputs` is not available in `from`, which computes an input from the alert: read `alert.…`"
                            .into(),
                    );
                }
                let name = parts.next()?;
                if self.playbook.inputs.contains_key(name) {
                    return None;
                }
                let declared: Vec<&str> = self.playbook.inputs.keys().map(String::as_str).collect();
                Some(format!("unknown input `{name}` ({})", suggest(name, &declared, "inputs")))
            }
            "steps" => {
                if matches!(place, Place::Dedup | Place::InputFrom) {
                    return Some(format!("`steps` is not available in {where_}: no step has run yet"));
                }
                let Some(name) = parts.next() else {
                    return None; // `steps['x']`: not statically known.
                };
                let Some(&target) = self.graph.index.get(name) else {
                    let ids = self.step_names();
                    return Some(format!("unknown step `{name}` ({})", suggest(name, &ids, "steps")));
                };
                if let Some(field) = parts.next() {
                    if !["output", "status", "error"].contains(&field) {
                        return Some(format!(
                            "`steps.{name}.{field}`: a step has `output`, `status` and `error`"
                        ));
                    }
                }
                match place {
                    Place::Step { index, .. } if *index == target => {
                        Some(format!("step `{name}` cannot read its own result"))
                    }
                    Place::Step { index, upstream, .. } if !upstream.contains(&target) => Some(format!(
                        "reads `steps.{name}` but `{name}` is not upstream of step `{}` (add it to `needs`)",
                        self.playbook.steps[*index].id
                    )),
                    _ => None,
                }
            }
            "alert" => match place {
                Place::Dedup | Place::InputFrom => None,
                _ => Some(
                    "`alert` is only available in input `from` and `dedup`: declare an input and read `inputs.NAME`"
                        .into(),
                ),
            },
            "item" | "index" => match place {
                Place::Step { items: true, .. } => None,
                Place::Step { in_for_each: true, .. } => {
                    Some(format!("`{root}` is not defined inside `for_each` itself"))
                }
                Place::Step { index, .. } if self.playbook.steps[*index].for_each.is_some() => {
                    Some(format!(
                        "`{root}` is only defined in `with`: `if` and `auto_approve` decide for the whole step, once; filter the list in `for_each` instead, e.g. \"{{{{ inputs.ips | reject('eq', '127.0.0.1') | list }}}}\""
                    ))
                }
                _ => Some(format!("`{root}` is only defined in steps with `for_each`")),
            },
            "run" if in_step || matches!(place, Place::Outputs) => None,
            "run" => Some(format!("`run` is not available in {where_}: no run exists yet")),
            other => {
                let here = match place {
                    Place::Step { items: true, .. } => "inputs, steps, run, item, index",
                    Place::Step { .. } | Place::Outputs => "inputs, steps, run",
                    Place::Dedup => "inputs, alert",
                    Place::InputFrom => "alert",
                };
                Some(format!("unknown variable `{other}` (available here: {here})"))
            }
        }
    }

    fn retry(&mut self, step: &Step) {
        let r = &step.retry;
        let at = &step.positions.retry;
        let block = or(at.block, step.pos);
        let id = &step.id;
        if r.max_attempts < 1 {
            self.push(
                or(at.max_attempts, block),
                format!("step `{id}`: `retry.max_attempts` must be at least 1 (1 means no retry)"),
            );
        }
        if r.multiplier.is_nan() || r.multiplier < 1.0 {
            self.push(
                or(at.multiplier, block),
                format!(
                    "step `{id}`: `retry.multiplier` must be at least 1, got {}",
                    r.multiplier
                ),
            );
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            self.push(
                or(at.jitter, block),
                format!(
                    "step `{id}`: `retry.jitter` must be between 0 and 1, got {}",
                    r.jitter
                ),
            );
        }
        if r.initial_delay > r.max_delay {
            self.push(
                or(at.initial_delay, or(at.max_delay, block)),
                format!(
                    "step `{id}`: `retry.initial_delay` ({}) is longer than `retry.max_delay` ({})",
                    humantime::format_duration(r.initial_delay),
                    humantime::format_duration(r.max_delay)
                ),
            );
        }
    }
}

/// `pos` when known, else `fallback` (positions are zero for playbooks not
/// read from YAML).
/// Every string inside a JSON value (the templates of a `with`).
fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn or(pos: Pos, fallback: Pos) -> Pos {
    if pos.line == 0 {
        fallback
    } else {
        pos
    }
}

/// "did you mean `x`?" for a close name, else the list of `what`.
pub(super) fn suggest(name: &str, candidates: &[&str], what: &str) -> String {
    let close = candidates
        .iter()
        .map(|c| (distance(name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len().max(name.len()))
        .min();
    match close {
        Some((_, c)) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => format!("no {what} are declared"),
        None => format!("{what}: {}", candidates.join(", ")),
    }
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
