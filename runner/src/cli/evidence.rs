//! `soar export`, `soar verify-bundle`, `soar replay --bundle`, `soar
//! journal prune`: glue over [`crate::operations::evidence`],
//! [`crate::operations::retention`] and [`crate::journal::bundle`].

use super::{runs, Exit, Globals};
use crate::journal::bundle::{self, Bundle};
use std::path::Path;

/// Writes the signed bundle of `run_id` to `out`.
pub fn export(globals: &Globals, run_id: &str, out: &Path) -> Exit {
    let journal = match runs::journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let (bundle, signed) = match crate::operations::evidence::export(&journal, run_id) {
        Ok(b) => b,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let text = match serde_json::to_vec_pretty(&bundle) {
        Ok(t) => t,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    if let Err(e) = std::fs::write(out, text) {
        return Exit::failed(format!("error: cannot write {}: {e}", out.display()));
    }
    println!(
        "exported run {run_id}: {} records, {} blob(s), {} checkpoint(s), {} to {}",
        bundle.records.len(),
        bundle.blobs.len(),
        bundle.checkpoints.len(),
        if signed {
            "signed"
        } else {
            "UNSIGNED (no journal.signing_key)"
        },
        out.display()
    );
    Exit::ok()
}

/// A bundle larger than this is refused before it is read (it comes from
/// elsewhere: its size must not decide this process's memory).
const MAX_BUNDLE_BYTES: u64 = 512 << 20;

fn read(file: &Path) -> Result<Bundle, Exit> {
    let size = std::fs::metadata(file)
        .map_err(|e| Exit::invalid(format!("error: cannot read {}: {e}", file.display())))?
        .len();
    if size > MAX_BUNDLE_BYTES {
        return Err(Exit::failed(format!(
            "{}: {size} bytes, over the {MAX_BUNDLE_BYTES}-byte cap for a bundle",
            file.display()
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Exit::invalid(format!("error: cannot read {}: {e}", file.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Exit::failed(format!("{}: not a run bundle: {e}", file.display())))
}

/// Verifies `file` with `public_keys` (hex), or the config's.
pub fn verify_bundle(globals: &Globals, file: &Path, public_keys: &[String]) -> Exit {
    let bundle = match read(file) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let keys = if public_keys.is_empty() {
        globals
            .config()
            .map(|c| c.journal_keys.public)
            .unwrap_or_default()
    } else {
        let mut keys = Vec::new();
        for k in public_keys {
            match crate::journal::public_key_from_hex(k) {
                Ok(k) => keys.push(k),
                Err(e) => return Exit::invalid(format!("error: --public-key: {e}")),
            }
        }
        keys
    };
    let problems = match bundle::verify(&bundle, &keys) {
        Ok(p) => p,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    if problems.is_empty() {
        let by = bundle.signature.as_ref().map_or("?", |s| s.key_id.as_str());
        println!(
            "ok: run {} ({} records), signed by key {by}, its last record signed by the journal's checkpoints",
            crate::inert::line(&bundle.run_id),
            bundle.records.len()
        );
        return Exit::ok();
    }
    for p in &problems {
        println!("{}: {}", file.display(), crate::inert::line(p));
    }
    Exit::failed(format!(
        "error: the bundle failed verification ({} problem(s))",
        problems.len()
    ))
}

/// Re-evaluates the decisions of a bundled run against its own playbook.
pub fn replay_bundle(file: &Path) -> Exit {
    let bundle = match read(file) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let records = match bundle.records() {
        Ok(r) => r,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let path = Path::new(&bundle.playbook.path);
    let pb = match crate::playbook::parse(path, &bundle.playbook.text) {
        Ok(pb) => pb,
        Err(ds) => {
            let text: Vec<String> = ds.iter().map(ToString::to_string).collect();
            return Exit::failed(format!("error: the bundled playbook: {}", text.join("; ")));
        }
    };
    runs::replay_records(&bundle.run_id, &records, &pb)
}

/// Prunes (or with `dry_run` lists) what `journal.retention` prunes now.
pub fn prune(globals: &Globals, dry_run: bool) -> Exit {
    let config = match globals.config() {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    if config.retention.is_empty() {
        return Exit::invalid(
            "error: the config has no journal.retention rules: nothing is ever pruned",
        );
    }
    let journal = match runs::journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let now = crate::journal::now_unix_millis();
    let planned = match crate::operations::retention::plan(&journal, &config.retention, now) {
        Ok(p) => p,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let verb = if dry_run { "would prune" } else { "pruned" };
    if dry_run {
        for p in &planned {
            println!(
                "{verb} {} [{}] {} ended {} (rule {})",
                p.run_id, p.playbook, p.status, p.ended_at, p.rule
            );
        }
    } else {
        let results = crate::operations::retention::prune(&journal, &planned);
        let mut failed = 0;
        for (p, r) in planned.iter().zip(results) {
            match r {
                Ok(_) => println!(
                    "{verb} {} [{}] {} ended {} (rule {})",
                    p.run_id, p.playbook, p.status, p.ended_at, p.rule
                ),
                Err(e) => {
                    failed += 1;
                    println!("not pruned {}: {e}", p.run_id);
                }
            }
        }
        if failed > 0 {
            return Exit::failed(format!("error: {failed} run(s) could not be pruned"));
        }
    }
    println!("{} run(s) {verb}", planned.len());
    Exit::ok()
}

/// `soar siem export`: one pass to every configured sink.
pub async fn siem_export(globals: &Globals) -> Exit {
    let config = match globals.config() {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    if config.siem.file.is_none() && config.siem.http.is_none() {
        return Exit::invalid("error: the config has no `siem:` sink (file or http)");
    }
    let journal = match runs::journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let started = std::time::Instant::now();
    match crate::siem::export(&journal, &config.siem, &globals.data_dir).await {
        Ok(n) => {
            println!(
                "exported {} line(s) to the file, {} event(s) to the collector in {:.2}s",
                n.file,
                n.http,
                started.elapsed().as_secs_f64()
            );
            Exit::ok()
        }
        Err(e) => Exit::failed(format!("error: siem export: {e}")),
    }
}
