//! Evidence that leaves the runner: a run's signed bundle, with the
//! playbook text it ran and what its actions and approvals were bound to.

use super::{read_run, OpError};
use crate::journal::bundle::{Bundle, BundlePlaybook};
use crate::journal::{Event, Journal};
use serde_json::json;

/// The bundle of `run_id`, signed when the journal has a signing key
/// (`Ok((bundle, signed))`). Refused for a run that fails verification: a
/// signature must never vouch for what was tampered with. The playbook file
/// must still be the one the run started with: the bundle carries the text
/// that ran, or nothing.
pub fn export(journal: &Journal, run_id: &str) -> Result<(Bundle, bool), OpError> {
    let records = read_run(journal, run_id)?;
    let problems = journal.check_run(run_id)?;
    if !problems.is_empty() {
        return Err(OpError::Failed(format!(
            "run `{run_id}` fails verification, so no bundle is signed for it: {}",
            problems.join("; ")
        )));
    }
    let mut bundle = journal.export(run_id)?;
    let Some(Event::RunStarted {
        playbook_path,
        playbook_sha256,
        ..
    }) = records.first().map(|r| &r.event)
    else {
        return Err(OpError::Failed("the run has no run_started record".into()));
    };
    let text = std::fs::read_to_string(playbook_path)
        .map_err(|e| OpError::Failed(format!("playbook `{playbook_path}`: {e}")))?;
    let sha256 = crate::plugin_host::sha256_hex(text.as_bytes());
    if &sha256 != playbook_sha256 {
        return Err(OpError::Failed(format!(
            "playbook `{playbook_path}` has changed since the run started (SHA-256 {sha256}, the run used {playbook_sha256}): a bundle carries the text that ran"
        )));
    }
    bundle.playbook = BundlePlaybook {
        path: playbook_path.clone(),
        sha256,
        text,
    };
    for r in &records {
        match &r.event {
            Event::AttemptStarted {
                plugin,
                action,
                plugin_sha256,
                ..
            } => {
                let entry = bundle
                    .plugins
                    .entry(format!("{plugin}.{action}"))
                    .or_insert(json!({}));
                entry["plugin_sha256"] = json!(plugin_sha256);
            }
            Event::ApprovalRequested { step, bindings, .. } => {
                for b in bindings {
                    let entry = bundle.plugins.entry(b.uses.clone()).or_insert(json!({}));
                    entry["plugin_sha256"] = json!(b.plugin_sha256);
                    entry["plugin_config_sha256"] = json!(b.plugin_config_sha256);
                    entry["approved_inputs_sha256"] = json!(b.input_sha256);
                    entry["approval"] = json!(step);
                }
            }
            _ => {}
        }
    }
    let signed = journal.sign_bundle(&mut bundle);
    Ok((bundle, signed))
}
