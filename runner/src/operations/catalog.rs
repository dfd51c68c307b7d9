//! The service catalog: for each playbook the server runs, who owns it,
//! what it is for, what starts it (its inputs and the sources that send
//! it alerts), the response actions it may take (its destructive steps),
//! whom to escalate to and what it knowingly does not handle. What
//! `GET /api/v1/playbooks` answers and the console's catalog page shows.

use super::Playbooks;
use crate::config::Config;
use crate::plugin_host::PluginHost;
use serde_json::{json, Value};

/// One entry per playbook, by name.
pub fn catalog(playbooks: &Playbooks, config: &Config, host: &PluginHost) -> Vec<Value> {
    playbooks
        .all()
        .map(|pb| {
            let sources: Vec<&str> = config
                .sources
                .values()
                .filter(|s| playbooks.at(&s.playbook).is_some_and(|p| p.name == pb.name))
                .map(|s| s.name.as_str())
                .collect();
            let inputs: Vec<Value> = pb
                .inputs
                .iter()
                .map(|(name, d)| json!({"name": name, "description": d.description, "required": d.required}))
                .collect();
            let responses: Vec<Value> = pb
                .steps
                .iter()
                .filter_map(|s| {
                    let (plugin, action) = s.uses.split_once('.')?;
                    let a = host.plugin(plugin)?.manifest.action(action)?;
                    a.destructive.then(|| {
                        json!({"step": s.id, "uses": s.uses, "description": a.description,
                               "gated": gated(pb, &s.id), "auto_approve": s.auto_approve})
                    })
                })
                .collect();
            json!({
                "name": pb.name, "version": pb.version, "owner": pb.owner,
                "description": pb.description, "purpose": pb.purpose,
                "inputs": inputs, "sources": sources, "response_actions": responses,
                "escalation": pb.escalation, "limits": pb.limits,
            })
        })
        .collect()
}

/// Whether an approval gate is upstream of `step` (however far up).
fn gated(pb: &crate::playbook::Playbook, step: &str) -> bool {
    let up = crate::scheduler::upstream_of(pb, step);
    pb.steps
        .iter()
        .any(|g| g.approval.is_some() && up.contains(&g.id))
}
