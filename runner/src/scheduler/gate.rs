//! Approval gates and destructive-action authorization inside the executor:
//! an approval step asks once (handoff, bindings, dry-run plan), waits, and
//! settles from the journal; a destructive step acts only after the checks
//! in [`crate::approvals::guard`] pass, and the verdict is journaled first.

use super::{idempotency_key, item_context, now_ms, Engine, StepEnd, StepStatus};
use crate::approvals::guard::{self, Blocked};
use crate::journal::{ApprovalBinding, Decision, Event, JournalError};
use crate::playbook::{ApprovalGate, Playbook, Step};
use crate::plugin_host::{ActionManifest, Invocation};
use crate::scheduler::RunState;
use crate::template::Templates;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Dry-run at most this many items per gated step for the plan when the
/// config sets no blast radius for the action; with one, up to its
/// `max_targets` (at most [`MAX_PLAN_ITEMS`]). An item the plan did not
/// cover never acts: it would act unchecked.
const PLAN_ITEMS: usize = 50;
const MAX_PLAN_ITEMS: usize = 1000;

/// Ids of the steps `step_id` transitively needs.
pub fn upstream_of(playbook: &Playbook, step_id: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = vec![step_id];
    while let Some(id) = stack.pop() {
        if let Some(s) = playbook.steps.iter().find(|s| s.id == id) {
            for n in &s.needs {
                if seen.insert(n.clone()) {
                    stack.push(n);
                }
            }
        }
    }
    seen
}

impl Engine {
    /// The manifest and plugin digest of `step`'s action.
    pub(super) fn action_of(&self, step: &Step) -> Option<(&ActionManifest, guard::Plugin<'_>)> {
        let (plugin, action) = step.uses.split_once('.')?;
        let p = self.host.plugin(plugin)?;
        let identity = guard::Plugin {
            wasm_sha256: &p.digest,
            config_sha256: &p.config_digest,
        };
        Some((p.manifest.action(action)?, identity))
    }

    /// Whether `step` must pass authorization: its action is destructive
    /// now, or was when a gate bound it or an authorization was journaled (a
    /// plugin swapped for one that no longer says so must not skip checks).
    pub(super) fn needs_authorization(&self, step: &Step, state: &RunState) -> bool {
        self.action_of(step).is_some_and(|(m, _)| m.destructive)
            || state.authorized.contains_key(&step.id)
            || state
                .gates
                .values()
                .any(|g| g.bindings.iter().any(|b| b.step == step.id))
    }

    /// The rendered `for_each` list of `step` (`None` without `for_each`).
    pub(super) fn for_each_items(
        &self,
        step: &Step,
        ctx: &Value,
    ) -> Result<Option<Vec<Value>>, String> {
        let Some(t) = &step.for_each else {
            return Ok(None);
        };
        match self.templates.render_value(&Value::String(t.clone()), ctx) {
            Ok(Value::Array(list)) => Ok(Some(list)),
            Ok(other) => Err(format!("`for_each` must give a list, got {other}")),
            Err(e) => Err(format!("`for_each`: {e}")),
        }
    }

    /// The rendered input of every item (one for a plain step).
    pub(super) fn render_items(&self, step: &Step, ctx: &Value) -> Result<Vec<Value>, String> {
        let render = |c: &Value| {
            self.templates
                .render_value(&step.with, c)
                .map_err(|e| format!("`with`: {e}"))
        };
        match self.for_each_items(step, ctx)? {
            None => Ok(vec![render(ctx)?]),
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, item)| render(&item_context(ctx, item, i)))
                .collect(),
        }
    }

    /// Runs an approval step: settles it from the journal if decided (or
    /// expired), asks if it never asked, and otherwise leaves it waiting
    /// (`None`).
    pub(super) async fn run_approval(
        &self,
        run_id: &str,
        step: &Step,
        gate: &ApprovalGate,
        ctx: &Value,
        state: &RunState,
        playbook: &Playbook,
    ) -> Result<Option<StepEnd>, JournalError> {
        let Some(asked) = state.gates.get(&step.id) else {
            self.ask(run_id, step, gate, ctx, playbook).await?;
            return Ok(None);
        };
        let decision = match &asked.decision {
            Some(d) => d.clone(),
            None if now_ms() >= asked.expires_at_ms => {
                let reason = format!(
                    "no decision within {}: counts as denied",
                    humantime::format_duration(gate.timeout)
                );
                self.append(
                    run_id,
                    Event::ApprovalDecided {
                        step: step.id.clone(),
                        decision: Decision::Expired,
                        by: Vec::new(),
                        reason,
                    },
                )
                .await?;
                crate::observe::approval_decided(&asked.requested_at, Decision::Expired);
                (Decision::Expired, Vec::new())
            }
            None => return Ok(None),
        };
        let reasons: Vec<Value> = asked
            .votes
            .iter()
            .map(|(by, vote, reason)| json!({"by": by, "vote": vote, "reason": reason}))
            .collect();
        let end = match decision {
            (Decision::Granted, by) => StepEnd {
                status: StepStatus::Succeeded,
                output: Some(json!({"decision": "granted", "approved_by": by, "votes": reasons})),
                error: None,
            },
            (d, by) => StepEnd {
                status: StepStatus::Failed,
                output: None,
                error: Some(json!({
                    "kind": d.as_str(),
                    "message": match d {
                        Decision::Expired => "nobody decided in time: counts as denied".to_string(),
                        _ => format!("denied by {}", by.join(", ")),
                    },
                    "votes": reasons,
                })),
            },
        };
        self.finish_step(run_id, &step.id, end).await.map(Some)
    }

    /// Journals the approval request: the rendered handoff, and for each
    /// destructive step downstream, the exact inputs and plugin an approval
    /// will cover plus a dry-run plan of what it would do.
    async fn ask(
        &self,
        run_id: &str,
        step: &Step,
        gate: &ApprovalGate,
        ctx: &Value,
        playbook: &Playbook,
    ) -> Result<(), JournalError> {
        let mut handoff = Map::new();
        for (field, text) in gate.handoff.fields() {
            let v = self
                .templates
                .render_value(&Value::String(text.to_string()), ctx)
                .unwrap_or_else(|e| json!(format!("(could not render: {e})")));
            handoff.insert(field.to_string(), v);
        }
        let mut bindings = Vec::new();
        let mut plan = Vec::new();
        for gated in playbook
            .steps
            .iter()
            .filter(|s| upstream_of(playbook, &s.id).contains(&step.id))
        {
            let Some((manifest, digest)) = self.action_of(gated) else {
                continue;
            };
            if !manifest.destructive {
                continue;
            }
            let (plugin, action) = gated.uses.split_once('.').unwrap_or_default();
            let (items, targets) = match self.render_items(gated, ctx) {
                Ok(items) => {
                    let targets = guard::targets(manifest, &items)
                        .map(|t| t.into_iter().map(|(_, v)| v).collect())
                        .unwrap_or_default();
                    (items, targets)
                }
                Err(e) => {
                    plan.push(json!({"step": gated.id, "uses": gated.uses, "error": e}));
                    (Vec::new(), Vec::new())
                }
            };
            let planned = self
                .policy
                .blast_radius
                .get(&gated.uses)
                .and_then(|c| c.max_targets)
                .map_or(PLAN_ITEMS, |n| (n as usize).min(MAX_PLAN_ITEMS));
            for (i, input) in items.iter().enumerate().take(planned) {
                let item = gated.for_each.as_ref().map(|_| i as u32);
                let invocation = Invocation {
                    run_id: run_id.to_string(),
                    step_id: gated.id.clone(),
                    attempt: 0,
                    // Not the real key: a connector that tags vendor objects
                    // with it must not mistake a plan for the act.
                    idempotency_key: format!("{}-plan", idempotency_key(run_id, &gated.id, item)),
                    dry_run: true,
                };
                let outcome = self.host.invoke(plugin, action, input, &invocation).await;
                let mut entry = json!({"step": gated.id, "uses": gated.uses, "input": input});
                if item.is_some() {
                    entry["item"] = json!(i);
                }
                match outcome.result {
                    Ok(out) => entry["plan"] = out,
                    Err(e) => entry["error"] = json!(e.to_string()),
                }
                plan.push(entry);
            }
            bindings.push(ApprovalBinding {
                step: gated.id.clone(),
                uses: gated.uses.clone(),
                plugin_sha256: digest.wasm_sha256.to_string(),
                plugin_config_sha256: digest.config_sha256.to_string(),
                input_sha256: if items.is_empty() {
                    String::new()
                } else {
                    guard::input_sha256(&items)
                },
                targets,
            });
        }
        let (min_approvals, raised_by) = quorum(&self.templates, gate, ctx);
        if let Some(why) = raised_by {
            handoff.insert("approvals_needed".into(), json!(why));
        }
        let expires = now_ms() + gate.timeout.as_millis() as u64;
        let expires_at = crate::journal::format_unix_millis(expires);
        let notify_with = gate.notify.as_ref().map(|n| (n, handoff.clone()));
        self.append(
            run_id,
            Event::ApprovalRequested {
                step: step.id.clone(),
                approvers: gate.approvers.clone(),
                min_approvals,
                expires_at: expires_at.clone(),
                handoff: Value::Object(handoff),
                bindings,
                plan: Value::Array(plan),
            },
        )
        .await?;
        // Asked first (durably), then announced: a crash in between leaves
        // the request without its chat message, never a message without it.
        if let Some((notify, handoff)) = notify_with {
            self.notify_gate(run_id, step, notify, &handoff, &expires_at)
                .await?;
        }
        Ok(())
    }

    /// Decides whether destructive `step` may act on `items`; journals the
    /// authorization (durably, before any attempt) or returns the block.
    pub(super) async fn authorize(
        &self,
        run_id: &str,
        step: &Step,
        ctx: &Value,
        items: &[Value],
        playbook: &Playbook,
    ) -> Result<Result<(), Blocked>, JournalError> {
        let Some((manifest, digest)) = self.action_of(step) else {
            return Ok(Err(Blocked {
                rule: "unknown_action",
                message: format!("`{}` is not installed", step.uses),
            }));
        };
        // One authorization at a time, against the journal as it is now:
        // two steps of one run must not both count the same earlier targets
        // (blast radius), and the state this drive started from may be stale.
        let _one_at_a_time = self.authorizing.lock().await;
        let fresh = RunState::from_records(&self.journal.read(run_id)?);
        let state = &fresh;
        let verdict = self.check(step, ctx, items, state, playbook, manifest, digest);
        let (basis, approvers, targets) = match verdict {
            Ok(v) => v,
            Err(b) => return Ok(Err(b)),
        };
        let input_sha256 = guard::input_sha256(items);
        let already = state.authorized.get(&step.id).is_some_and(|a| {
            a.input_sha256 == input_sha256 && a.plugin_sha256 == digest.wasm_sha256
        });
        if !already {
            self.append(
                run_id,
                Event::ActionAuthorized {
                    step: step.id.clone(),
                    uses: step.uses.clone(),
                    basis: json!({"approved_by": approvers, "basis": basis}),
                    input_sha256,
                    plugin_sha256: digest.wasm_sha256.to_string(),
                    targets,
                },
            )
            .await?;
        }
        Ok(Ok(()))
    }

    /// The checks, in the order an operator would want them explained.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        step: &Step,
        ctx: &Value,
        items: &[Value],
        state: &RunState,
        playbook: &Playbook,
        manifest: &ActionManifest,
        digest: guard::Plugin<'_>,
    ) -> Result<(Value, Vec<String>, Vec<String>), Blocked> {
        if let Some((by, reason)) = &state.cancelled {
            return Err(Blocked {
                rule: "cancelled",
                message: format!("the run was cancelled by {by}: {reason}"),
            });
        }
        // An upstream step (however far up) that did not succeed leaves a
        // partial picture: never act on it, nor on a template's fallback.
        let upstream = upstream_of(playbook, &step.id);
        for need in &upstream {
            let ok = ctx["steps"][need]["status"].as_str() == Some("succeeded");
            if !ok {
                return Err(Blocked {
                    rule: "upstream_not_succeeded",
                    message: format!(
                        "upstream step `{need}` is {}; a destructive action never acts on a partial picture",
                        ctx["steps"][need]["status"].as_str().unwrap_or("unknown")
                    ),
                });
            }
        }
        guard::complete(items)?;
        if manifest.targets.is_empty() && !manifest.untargeted {
            return Err(Blocked {
                rule: "untargeted",
                message: format!(
                    "`{}` is destructive and names no target field, so its targets cannot be checked against the protected assets; the operator must declare them (`plugins.NAME.actions.ACTION.targets`) or mark it `untargeted: true`",
                    step.uses
                ),
            });
        }
        if let Some(validator_problem) = items.iter().enumerate().find_map(|(i, input)| {
            crate::plugin_host::validate(&manifest.input_schema, input)
                .err()
                .map(|p| format!("item {i}: {}", p.join("; ")))
        }) {
            return Err(Blocked {
                rule: "invalid_input",
                message: validator_problem,
            });
        }
        let input_sha256 = guard::input_sha256(items);
        let gate_steps: Vec<&Step> = playbook
            .steps
            .iter()
            .filter(|s| s.approval.is_some() && upstream.contains(&s.id))
            .collect();
        if let Some(never) = gate_steps.iter().find(|s| !state.gates.contains_key(&s.id)) {
            return Err(Blocked {
                rule: "no_approval",
                message: format!(
                    "approval `{}` upstream never asked for a decision",
                    never.id
                ),
            });
        }
        let gates: Vec<(&str, &super::GateState)> = gate_steps
            .iter()
            .filter_map(|s| state.gates.get(&s.id).map(|g| (s.id.as_str(), g)))
            .collect();
        let (basis, approvers) = match guard::approved_by(&step.id, &gates, &input_sha256, digest) {
            Ok(by) => (
                json!({"approvals": gates.iter().map(|(id, _)| id).collect::<Vec<_>>()}),
                by,
            ),
            // With a gate upstream, its verdict is final: a denied, void or
            // undecided approval is never overridden by `auto_approve`.
            Err(blocked) if !gates.is_empty() => return Err(blocked),
            Err(blocked) => match &step.auto_approve {
                None => return Err(blocked),
                Some(cond) => {
                    let values = self.condition_values(cond, ctx);
                    match self.templates.eval_condition(cond, ctx) {
                        Ok(true) => (
                            json!({"auto_approve": cond, "values": values, "result": true}),
                            Vec::new(),
                        ),
                        Ok(false) => {
                            return Err(Blocked {
                                rule: "auto_approve_false",
                                message: format!(
                                    "no valid approval ({}), and `auto_approve: {cond}` is false with {values}",
                                    blocked.message
                                ),
                            })
                        }
                        Err(e) => {
                            return Err(Blocked {
                                rule: "auto_approve_error",
                                message: format!("`auto_approve: {cond}` failed: {e}"),
                            })
                        }
                    }
                }
            },
        };
        let targets = guard::targets(manifest, items)?;
        // A plan names what the action would really touch (a host's name
        // for an id): protected names must catch those too.
        let plans: Vec<Value> = state
            .gates
            .values()
            .filter_map(|g| g.plan.as_array())
            .flatten()
            .filter(|p| p["step"] == json!(step.id))
            .map(|p| p["plan"].clone())
            .collect();
        if !gates.is_empty() {
            guard::every_item_planned(&step.id, step.for_each.is_some(), items.len(), state)?;
        }
        let mut checked = targets.clone();
        checked.extend(guard::plan_targets(&plans));
        guard::not_protected(&self.policy, &checked)?;
        let earlier: BTreeSet<String> = state
            .authorized
            .iter()
            .filter(|(id, a)| *id != &step.id && a.uses == step.uses)
            .flat_map(|(_, a)| a.targets.iter().map(|t| t.to_ascii_lowercase()))
            .collect();
        guard::within_blast_radius(
            &self.policy,
            &step.uses,
            &earlier,
            &targets,
            approvers.len(),
        )?;
        let mut names: Vec<String> = targets.into_iter().map(|(_, v)| v).collect();
        names.sort();
        names.dedup();
        Ok((basis, approvers, names))
    }

    /// The values an `auto_approve` condition reads, for the journal.
    fn condition_values(&self, cond: &str, ctx: &Value) -> Value {
        let mut out = Map::new();
        if let Ok(paths) = self.templates.references(cond, true) {
            for path in paths {
                let v = self
                    .templates
                    .render_value(&Value::String(format!("{{{{ {path} }}}}")), ctx)
                    .unwrap_or(Value::Null);
                out.insert(path, v);
            }
        }
        Value::Object(out)
    }
}

/// How many approvals a request asks: the highest of `min_approvals` and
/// every `min_approvals_if` rule that holds. A rule that cannot be
/// evaluated counts as holding: doubt raises the bar, never lowers it.
/// With the reason when a rule raised it (shown in the handoff); `soar
/// replay` checks the journaled number against it.
pub fn quorum(templates: &Templates, gate: &ApprovalGate, ctx: &Value) -> (u32, Option<String>) {
    let mut min = gate.min_approvals;
    let mut why = None;
    for rule in &gate.min_approvals_if {
        let holds = templates.eval_condition(&rule.when, ctx);
        if rule.min_approvals > min && !matches!(holds, Ok(false)) {
            min = rule.min_approvals;
            why = Some(match holds {
                Ok(_) => format!("{min} approvals: `{}` holds", rule.when),
                Err(e) => format!(
                    "{min} approvals: `{}` could not be evaluated ({e})",
                    rule.when
                ),
            });
        }
    }
    (min, why)
}
