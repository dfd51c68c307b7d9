//! What an approval would unlock, checked before anyone votes: each bound
//! destructive step's targets, with the names its dry-run plan gives them
//! (a host's name for a device id), run through the guard's protected-asset
//! check. A lead reads "cannot isolate DC01: protected" before clicking,
//! not after, when the step is blocked. The guard still decides at the step.

use super::guard::plan_targets;
use crate::config::Policy;
use crate::plugin_host::TargetKind;
use crate::scheduler::GateState;
use serde::Serialize;
use serde_json::Value;

/// One target of a bound step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetPreview {
    /// The value the step's input names (a device id, an address).
    pub value: String,
    /// What the dry-run plan calls it (a host name, a login), if more.
    pub names: Vec<String>,
    /// The protected entry it or one of its names hits.
    pub protected: Option<String>,
}

/// One destructive step an approval covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepPreview {
    /// Step id.
    pub step: String,
    /// `plugin.action`.
    pub uses: String,
    /// Its targets.
    pub targets: Vec<TargetPreview>,
    /// Why approving cannot make it act, one sentence each.
    pub blocked: Vec<String>,
}

/// The protected entry `value` hits as any kind of target, if any (an
/// input's target has a kind; a name is checked as every kind, as the
/// guard's plan check would for its key).
fn hit(policy: &Policy, kind: Option<TargetKind>, value: &str) -> Option<String> {
    let kinds = match kind {
        Some(k) => vec![k],
        None => vec![
            TargetKind::Host,
            TargetKind::User,
            TargetKind::Ip,
            TargetKind::Domain,
        ],
    };
    kinds
        .into_iter()
        .find_map(|k| policy.protected.hit(k, value).map(|h| h.entry))
}

/// The plan entries (their `plan` objects) for `step`.
fn plans_of<'g>(gate: &'g GateState, step: &str) -> Vec<&'g Value> {
    gate.plan
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|p| p["step"].as_str() == Some(step))
                .map(|p| &p["plan"])
                .collect()
        })
        .unwrap_or_default()
}

/// Each target of a step with the names the plan gives it: a plan entry
/// that names the target (any value equal to it) names it; with one target,
/// every plan entry does.
fn named_targets(targets: &[String], plans: &[&Value]) -> Vec<(String, Vec<(TargetKind, String)>)> {
    let mut out: Vec<(String, Vec<(TargetKind, String)>)> =
        targets.iter().map(|t| (t.clone(), Vec::new())).collect();
    for plan in plans {
        let named = plan_targets(std::slice::from_ref(*plan));
        let owner = out
            .iter()
            .position(|(t, _)| named.iter().any(|(_, v)| v.eq_ignore_ascii_case(t)))
            .or((out.len() == 1).then_some(0));
        match owner {
            Some(i) => out[i].1.extend(named),
            // A plan entry no input target matches: its names are targets too.
            None => out.extend(named.into_iter().map(|(k, v)| (v.clone(), vec![(k, v)]))),
        }
    }
    for (t, names) in &mut out {
        names.retain(|(_, n)| !n.eq_ignore_ascii_case(t));
        names.sort_by(|a, b| a.1.cmp(&b.1));
        names.dedup_by(|a, b| a.1.eq_ignore_ascii_case(&b.1));
    }
    out
}

/// The gate's bound steps, their targets named and checked.
pub fn preview(policy: &Policy, gate: &GateState) -> Vec<StepPreview> {
    gate.bindings
        .iter()
        .map(|b| {
            let plans = plans_of(gate, &b.step);
            let targets: Vec<TargetPreview> = named_targets(&b.targets, &plans)
                .into_iter()
                .map(|(value, names)| {
                    let protected = hit(policy, None, &value)
                        .or_else(|| names.iter().find_map(|(k, n)| hit(policy, Some(*k), n)));
                    let names = names.into_iter().map(|(_, n)| n).collect();
                    TargetPreview {
                        value,
                        names,
                        protected,
                    }
                })
                .collect();
            let blocked = targets
                .iter()
                .filter_map(|t| {
                    let entry = t.protected.as_ref()?;
                    Some(format!(
                        "this approval cannot make `{}` act on {}: it is protected (config `protected`: `{entry}`); the step will be blocked",
                        b.uses,
                        shown_name(t)
                    ))
                })
                .collect();
            StepPreview {
                step: b.step.clone(),
                uses: b.uses.clone(),
                targets,
                blocked,
            }
        })
        .collect()
}

/// "DC01 (dc0001)", or the value alone when the plan gave no name.
pub fn shown_name(t: &TargetPreview) -> String {
    match t.names.first() {
        Some(name) => format!("{name} ({})", t.value),
        None => t.value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ApprovalBinding;
    use serde_json::json;

    fn policy() -> Policy {
        let mut p = Policy::default();
        p.protected.hosts = vec!["DC01".into()];
        p.protected.ips = vec!["10.0.0.0/8".parse().unwrap()];
        p
    }

    fn gate(targets: &[&str], plan: Value) -> GateState {
        GateState {
            approvers: vec!["soc-lead".into()],
            min_approvals: 1,
            requested_at: String::new(),
            expires_at_ms: u64::MAX,
            handoff: Value::Null,
            bindings: vec![ApprovalBinding {
                step: "isolate".into(),
                uses: "edr.isolate_host".into(),
                plugin_sha256: String::new(),
                plugin_config_sha256: String::new(),
                input_sha256: String::new(),
                targets: targets.iter().map(|t| t.to_string()).collect(),
            }],
            plan,
            votes: vec![],
            decision: None,
            decided_at: None,
        }
    }

    #[test]
    fn a_host_protected_by_name_is_flagged_when_the_input_names_it_by_id() {
        let plan = json!([{"step": "isolate", "plan": {"host_id": "dc0001", "hostname": "DC01", "planned": true}}]);
        let p = preview(&policy(), &gate(&["dc0001"], plan));
        let t = &p[0].targets[0];
        assert_eq!(
            (t.value.as_str(), t.names.clone()),
            ("dc0001", vec!["DC01".to_string()])
        );
        assert_eq!(t.protected.as_deref(), Some("DC01"));
        assert_eq!(p[0].blocked.len(), 1);
        assert!(
            p[0].blocked[0].contains("DC01 (dc0001)"),
            "{}",
            p[0].blocked[0]
        );
    }

    #[test]
    fn an_unprotected_host_is_named_and_not_flagged() {
        let plan = json!([{"step": "isolate", "plan": {"host_id": "ab12", "hostname": "FIN-WS-042", "local_ip": "192.0.2.5"}}]);
        let p = preview(&policy(), &gate(&["ab12"], plan));
        assert_eq!(p[0].targets[0].names, ["192.0.2.5", "FIN-WS-042"]);
        assert!(p[0].targets[0].protected.is_none() && p[0].blocked.is_empty());
    }

    #[test]
    fn a_plan_naming_a_protected_address_for_another_step_does_not_count() {
        let plan = json!([{"step": "other", "plan": {"ip": "10.1.2.3"}}]);
        let p = preview(&policy(), &gate(&["ab12"], plan));
        assert!(p[0].blocked.is_empty());
        // Its own plan naming one does.
        let plan =
            json!([{"step": "isolate", "plan": {"host_id": "ab12", "local_ip": "10.1.2.3"}}]);
        let p = preview(&policy(), &gate(&["ab12"], plan));
        assert_eq!(p[0].targets[0].protected.as_deref(), Some("10.0.0.0/8"));
    }
}
