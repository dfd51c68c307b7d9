//! The checks a destructive step passes before it may act, each a pure
//! function returning the rule it broke: complete inputs, a valid approval
//! bound to those inputs and that plugin, no protected target, a blast
//! radius within the config's caps. The scheduler journals the verdict.

use crate::config::Policy;
use crate::journal::{ApprovalBinding, Decision};
use crate::plugin_host::{ActionManifest, TargetKind};
use crate::scheduler::GateState;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Why a destructive step may not act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// Short rule name, journaled (`no_approval`, `protected_target`...).
    pub rule: &'static str,
    /// What the operator reads.
    pub message: String,
}

impl Blocked {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }

    /// As stored in the step's error.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"kind": "blocked", "rule": self.rule, "message": self.message})
    }
}

/// The hash an approval binds to: all items' rendered inputs, in order.
pub fn input_sha256(items: &[Value]) -> String {
    let text = serde_json::to_string(items).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Every target the items name, by the manifest's target fields. A target
/// field holding something other than a string (or list of strings) is a
/// block: the runner cannot tell what it would touch.
pub fn targets(
    manifest: &ActionManifest,
    items: &[Value],
) -> Result<Vec<(TargetKind, String)>, Blocked> {
    let mut out = Vec::new();
    for (i, input) in items.iter().enumerate() {
        for t in &manifest.targets {
            let values: Vec<&Value> = match input.get(&t.field) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(list)) => list.iter().collect(),
                Some(v) => vec![v],
            };
            for v in values {
                let Some(text) = v.as_str() else {
                    return Err(Blocked::new(
                        "invalid_input",
                        format!(
                            "item {i}: target field `{}` must be a string, got {v}",
                            t.field
                        ),
                    ));
                };
                out.push((t.kind, text.to_string()));
            }
        }
    }
    Ok(out)
}

/// Every rendered value is present and non-empty: a destructive action never
/// acts on a null, an empty string or an empty list that a missing upstream
/// result left behind.
pub fn complete(items: &[Value]) -> Result<(), Blocked> {
    fn empty_at(v: &Value, path: &str) -> Option<String> {
        match v {
            Value::Null => Some(path.to_string()),
            Value::String(s) if s.trim().is_empty() => Some(path.to_string()),
            Value::Array(a) if a.is_empty() => Some(path.to_string()),
            Value::Object(o) if o.is_empty() && !path.is_empty() => Some(path.to_string()),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| empty_at(x, &format!("{path}[{i}]"))),
            Value::Object(o) => o.iter().find_map(|(k, x)| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                empty_at(x, &p)
            }),
            _ => None,
        }
    }
    if items.is_empty() {
        return Err(Blocked::new(
            "incomplete_input",
            "`for_each` gave no items: nothing to act on",
        ));
    }
    for (i, input) in items.iter().enumerate() {
        if let Some(path) = empty_at(input, "") {
            let which = if items.len() > 1 {
                format!("item {i}: ")
            } else {
                String::new()
            };
            return Err(Blocked::new(
                "incomplete_input",
                format!("{which}input `{path}` rendered empty; a destructive action never acts on a missing value"),
            ));
        }
    }
    Ok(())
}

/// Target values a dry-run plan names under conventional keys, so that a
/// protected host name blocks an action whose input names the host by id.
pub fn plan_targets(plan: &[Value]) -> Vec<(TargetKind, String)> {
    fn walk(v: &Value, out: &mut Vec<(TargetKind, String)>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let kind = match k.as_str() {
                        "hostname" | "host_id" | "device_id" => Some(TargetKind::Host),
                        "user_id" | "login" | "email" => Some(TargetKind::User),
                        "ip" | "local_ip" => Some(TargetKind::Ip),
                        "domain" => Some(TargetKind::Domain),
                        _ => None,
                    };
                    match (kind, x) {
                        (Some(kind), Value::String(s)) => out.push((kind, s.clone())),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    plan.iter().for_each(|p| walk(p, &mut out));
    out
}

/// Every item of a gated step was in the dry-run plan the approval showed:
/// an item past it (a 51st host, say) was never checked by a person or
/// against the plan's names, so it does not act.
pub fn every_item_planned(
    step: &str,
    for_each: bool,
    items: usize,
    state: &crate::scheduler::RunState,
) -> Result<(), Blocked> {
    let planned: BTreeSet<Option<u64>> = state
        .gates
        .values()
        .filter_map(|g| g.plan.as_array())
        .flatten()
        .filter(|p| p["step"].as_str() == Some(step))
        .map(|p| p["item"].as_u64())
        .collect();
    let missing = (0..items as u64).find(|i| {
        let key = if for_each { Some(*i) } else { None };
        !planned.contains(&key)
    });
    match missing {
        None => Ok(()),
        Some(i) => Err(Blocked::new(
            "unplanned_item",
            format!(
                "item {i} of `{step}` was not in the dry-run plan the approval showed ({} of {items} item(s) planned); an unplanned item never acts",
                planned.len()
            ),
        )),
    }
}

/// No target is a protected asset.
pub fn not_protected(policy: &Policy, targets: &[(TargetKind, String)]) -> Result<(), Blocked> {
    for (kind, value) in targets {
        // An address the runner cannot parse cannot be checked: fail closed.
        if *kind == TargetKind::Ip
            && value.trim().parse::<std::net::IpAddr>().is_err()
            && value.trim().parse::<ipnet::IpNet>().is_err()
        {
            return Err(Blocked::new(
                "invalid_input",
                format!("target `{value}` is not an IP address or range; it cannot be checked against `protected.ips`"),
            ));
        }
        if let Some(hit) = policy.protected.hit(*kind, value) {
            return Err(Blocked::new(
                "protected_target",
                format!(
                    "target `{}` is protected (config `protected`: `{}`)",
                    hit.value, hit.entry
                ),
            ));
        }
    }
    Ok(())
}

/// Distinct targets of `uses` in this run (earlier authorized steps plus
/// this one) are within the config's caps.
pub fn within_blast_radius(
    policy: &Policy,
    uses: &str,
    earlier: &BTreeSet<String>,
    targets: &[(TargetKind, String)],
    approvers: usize,
) -> Result<(), Blocked> {
    let Some(cap) = policy.blast_radius.get(uses) else {
        return Ok(());
    };
    let mut all = earlier.clone();
    all.extend(targets.iter().map(|(_, v)| v.to_ascii_lowercase()));
    let n = all.len() as u32;
    if let Some(max) = cap.max_targets {
        if n > max {
            return Err(Blocked::new(
                "blast_radius",
                format!("`{uses}` would act on {n} target(s) in this run; the config allows at most {max}"),
            ));
        }
    }
    if let Some(max) = cap.max_targets_single_approver {
        if n > max && approvers < 2 {
            return Err(Blocked::new(
                "blast_radius",
                format!(
                    "`{uses}` would act on {n} target(s) in this run; more than {max} needs approvals from two people (has {approvers})"
                ),
            ));
        }
    }
    Ok(())
}

/// Which plugin is about to act: its file and what the operator granted it.
#[derive(Debug, Clone, Copy)]
pub struct Plugin<'a> {
    /// SHA-256 of the `.wasm` file.
    pub wasm_sha256: &'a str,
    /// SHA-256 of its granted config.
    pub config_sha256: &'a str,
}

/// The approvers who authorized `step` through the gates upstream of it:
/// every such gate must be granted, must have bound this step, and the
/// binding must match the inputs and plugin about to act.
pub fn approved_by(
    step: &str,
    gates: &[(&str, &GateState)],
    input_sha256: &str,
    plugin: Plugin<'_>,
) -> Result<Vec<String>, Blocked> {
    if gates.is_empty() {
        return Err(Blocked::new(
            "no_approval",
            "no approval step upstream has asked for a decision",
        ));
    }
    let mut by = BTreeSet::new();
    for (gate_id, gate) in gates {
        match &gate.decision {
            None => {
                return Err(Blocked::new(
                    "no_approval",
                    format!("approval `{gate_id}` is not decided"),
                ))
            }
            Some((Decision::Granted, names)) => by.extend(names.iter().cloned()),
            Some((d, names)) => {
                return Err(Blocked::new(
                    "approval_denied",
                    format!(
                        "approval `{gate_id}` was {} (by {})",
                        d.as_str(),
                        if names.is_empty() {
                            "nobody: timeout".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ))
            }
        }
        let binding: Option<&ApprovalBinding> = gate.bindings.iter().find(|b| b.step == step);
        let Some(binding) = binding else {
            return Err(Blocked::new(
                "approval_void",
                format!("approval `{gate_id}` did not cover step `{step}`"),
            ));
        };
        if binding.input_sha256 != input_sha256 {
            return Err(Blocked::new(
                "approval_void",
                format!(
                    "approval `{gate_id}` is void: the inputs of `{step}` changed since it was approved (approved {}, now {input_sha256})",
                    binding.input_sha256
                ),
            ));
        }
        if binding.plugin_sha256 != plugin.wasm_sha256 {
            return Err(Blocked::new(
                "approval_void",
                format!(
                    "approval `{gate_id}` is void: the plugin for `{}` changed since it was approved (approved {}, now {})",
                    binding.uses, binding.plugin_sha256, plugin.wasm_sha256
                ),
            ));
        }
        if binding.plugin_config_sha256 != plugin.config_sha256 {
            return Err(Blocked::new(
                "approval_void",
                format!(
                    "approval `{gate_id}` is void: the config granted to the plugin for `{}` (values, hosts or secrets) changed since it was approved",
                    binding.uses
                ),
            ));
        }
    }
    Ok(by.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BlastCap;
    use crate::plugin_host::TargetField;
    use serde_json::json;

    fn manifest() -> ActionManifest {
        ActionManifest {
            name: "block_ip".into(),
            description: String::new(),
            destructive: true,
            idempotent: true,
            input_schema: json!({}),
            output_schema: json!({}),
            targets: vec![TargetField {
                field: "ip".into(),
                kind: TargetKind::Ip,
            }],
            probe: None,
            untargeted: false,
        }
    }

    const P1: Plugin<'static> = Plugin {
        wasm_sha256: "p1",
        config_sha256: "c1",
    };

    fn gate(decision: Option<Decision>, input: &str, plugin: &str) -> GateState {
        GateState {
            approvers: vec!["soc-lead".into()],
            min_approvals: 1,
            requested_at: String::new(),
            expires_at_ms: u64::MAX,
            handoff: Value::Null,
            bindings: vec![ApprovalBinding {
                step: "block".into(),
                uses: "blocklist.block_ip".into(),
                plugin_sha256: plugin.into(),
                plugin_config_sha256: "c1".into(),
                input_sha256: input.into(),
                targets: vec![],
            }],
            plan: Value::Null,
            votes: vec![],
            decision: decision.map(|d| (d, vec!["bob".to_string()])),
            decided_at: None,
        }
    }

    #[test]
    fn empty_values_block() {
        assert!(complete(&[json!({"ip": "203.0.113.5"})]).is_ok());
        for bad in [
            json!({"ip": null}),
            json!({"ip": ""}),
            json!({"ip": "  "}),
            json!({"ips": []}),
            json!({"o": {"x": null}}),
            json!({"o": {}}),
        ] {
            let e = complete(std::slice::from_ref(&bad)).unwrap_err();
            assert_eq!(e.rule, "incomplete_input", "{bad}");
        }
        assert_eq!(complete(&[]).unwrap_err().rule, "incomplete_input");
    }

    #[test]
    fn targets_follow_manifest_fields() {
        let t = targets(
            &manifest(),
            &[
                json!({"ip": "203.0.113.5"}),
                json!({"ip": ["198.51.100.1"]}),
            ],
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            targets(&manifest(), &[json!({"ip": 5})]).unwrap_err().rule,
            "invalid_input"
        );
    }

    #[test]
    fn approval_must_be_granted_and_bound() {
        let granted = gate(Some(Decision::Granted), "h1", "p1");
        assert_eq!(
            approved_by("block", &[("g", &granted)], "h1", P1).unwrap(),
            vec!["bob".to_string()]
        );
        let e = approved_by("block", &[("g", &granted)], "h2", P1).unwrap_err();
        assert!(e.message.contains("inputs"), "{e:?}");
        let p2 = Plugin {
            wasm_sha256: "p2",
            ..P1
        };
        let e = approved_by("block", &[("g", &granted)], "h1", p2).unwrap_err();
        assert!(e.message.contains("plugin"), "{e:?}");
        let c2 = Plugin {
            config_sha256: "c2",
            ..P1
        };
        let e = approved_by("block", &[("g", &granted)], "h1", c2).unwrap_err();
        assert!(e.message.contains("config"), "{e:?}");
        let e = approved_by("other", &[("g", &granted)], "h1", P1).unwrap_err();
        assert_eq!(e.rule, "approval_void");
        for d in [Decision::Denied, Decision::Expired] {
            let g = gate(Some(d), "h1", "p1");
            let e = approved_by("block", &[("g", &g)], "h1", P1).unwrap_err();
            assert_eq!(e.rule, "approval_denied");
        }
        let waiting = gate(None, "h1", "p1");
        assert_eq!(
            approved_by("block", &[("g", &waiting)], "h1", P1)
                .unwrap_err()
                .rule,
            "no_approval"
        );
        assert_eq!(
            approved_by("block", &[], "h1", P1).unwrap_err().rule,
            "no_approval"
        );
    }

    #[test]
    fn blast_radius_counts_distinct_targets_across_the_run() {
        let mut p = Policy::default();
        p.blast_radius.insert(
            "edr.isolate_host".into(),
            BlastCap {
                max_targets: Some(3),
                max_targets_single_approver: Some(1),
            },
        );
        let t = |v: &[&str]| -> Vec<(TargetKind, String)> {
            v.iter()
                .map(|s| (TargetKind::Host, s.to_string()))
                .collect()
        };
        let none = BTreeSet::new();
        assert!(within_blast_radius(&p, "edr.isolate_host", &none, &t(&["a"]), 1).is_ok());
        assert!(within_blast_radius(&p, "edr.isolate_host", &none, &t(&["a", "b"]), 1).is_err());
        assert!(within_blast_radius(&p, "edr.isolate_host", &none, &t(&["a", "b"]), 2).is_ok());
        assert!(within_blast_radius(&p, "edr.isolate_host", &none, &t(&["a", "A"]), 1).is_ok());
        let earlier: BTreeSet<String> = ["x".to_string(), "y".to_string()].into();
        assert!(within_blast_radius(&p, "edr.isolate_host", &earlier, &t(&["a", "b"]), 2).is_err());
        assert!(within_blast_radius(&p, "other.action", &earlier, &t(&["a", "b"]), 0).is_ok());
    }

    #[test]
    fn an_unparseable_ip_target_blocks() {
        let p = Policy::default();
        let ok = [(TargetKind::Ip, "203.0.113.5".to_string())];
        assert!(not_protected(&p, &ok).is_ok());
        let bad = [(TargetKind::Ip, "203.0.113.5; rm -rf".to_string())];
        assert_eq!(not_protected(&p, &bad).unwrap_err().rule, "invalid_input");
    }

    #[test]
    fn plan_names_targets_by_convention() {
        let found = plan_targets(&[json!({"would": "contain", "host": {"hostname": "DC01"}})]);
        assert_eq!(found, vec![(TargetKind::Host, "DC01".to_string())]);
    }
}
