//! `soar export`, `soar verify-bundle`, `soar replay --bundle`, `soar
//! journal prune`, `soar journal adopt`: glue over [`crate::operations::evidence`],
//! [`crate::operations::retention`] and [`crate::journal::bundle`].

use super::{runs, Exit, Globals};
use crate::journal::bundle::{self, Bundle};
use crate::operations::retention::Planned;
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

/// The keys an auditor trusts: those on the command line, else those of a
/// config the auditor named (`--config` or `SOAR_CONFIG`); never a
/// `soar.yaml` that happens to lie beside the bundle (it may have come
/// with it).
fn auditor_keys(
    globals: &Globals,
    public_keys: &[String],
) -> Result<Vec<ed25519_dalek::VerifyingKey>, Exit> {
    if public_keys.is_empty() {
        return match &globals.config {
            Some(_) => globals
                .config()
                .map(|c| c.journal_keys.public)
                .map_err(|e| Exit::invalid(format!("error: {e}"))),
            None => Ok(Vec::new()),
        };
    }
    public_keys
        .iter()
        .map(|k| {
            crate::journal::public_key_from_hex(k)
                .map_err(|e| Exit::invalid(format!("error: --public-key: {e}")))
        })
        .collect()
}

/// Who signed the bundle, as it claims (checked or not, it is named).
fn signer(bundle: &Bundle) -> String {
    match &bundle.signature {
        Some(s) => format!("key {}", crate::inert::line(&s.key_id)),
        None => "nobody (unsigned)".into(),
    }
}

/// The bundle in `file`, whether the auditor gave any key, and every
/// problem with it against the auditor's keys ([`auditor_keys`]).
fn read_checked(
    globals: &Globals,
    file: &Path,
    public_keys: &[String],
) -> Result<(Bundle, bool, Vec<String>), Exit> {
    let bundle = read(file)?;
    let keys = auditor_keys(globals, public_keys)?;
    let problems =
        bundle::verify(&bundle, &keys).map_err(|e| Exit::failed(format!("error: {e}")))?;
    Ok((bundle, !keys.is_empty(), problems))
}

/// Verifies `file` with the auditor's keys ([`auditor_keys`]).
pub fn verify_bundle(globals: &Globals, file: &Path, public_keys: &[String]) -> Exit {
    let (bundle, _, problems) = match read_checked(globals, file, public_keys) {
        Ok(checked) => checked,
        Err(e) => return e,
    };
    if problems.is_empty() {
        println!(
            "ok: run {} ({} records), signed by {}, its last record signed by the journal's checkpoints",
            crate::inert::line(&bundle.run_id),
            bundle.records.len(),
            signer(&bundle)
        );
        return Exit::ok();
    }
    println!("{}: signed by {}", file.display(), signer(&bundle));
    for p in &problems {
        println!("{}: {}", file.display(), crate::inert::line(p));
    }
    Exit::failed(format!(
        "error: the bundle failed verification ({} problem(s))",
        problems.len()
    ))
}

/// Re-evaluates the decisions of a bundled run against its own playbook,
/// after verifying the bundle: a bundle that fails, or that no trusted key
/// was given for, is replayed only with `unverified`, and says so.
pub fn replay_bundle(
    globals: &Globals,
    file: &Path,
    public_keys: &[String],
    unverified: bool,
) -> Exit {
    let (bundle, keyed, problems) = match read_checked(globals, file, public_keys) {
        Ok(checked) => checked,
        Err(e) => return e,
    };
    if problems.is_empty() {
        println!("bundle verified: signed by {}", signer(&bundle));
    } else {
        let what = if !keyed {
            "NOT VERIFIED: no trusted key was given (--public-key, or --config naming the journal's keys), so nothing below is evidence".to_string()
        } else {
            format!(
                "FAILED VERIFICATION ({} problem(s)): nothing below is evidence",
                problems.len()
            )
        };
        println!(
            "bundle {what}; it claims to be signed by {}",
            signer(&bundle)
        );
        for p in &problems {
            println!("{}: {}", file.display(), crate::inert::line(p));
        }
        if !unverified {
            return Exit::failed(
                "error: not replayed: the bundle is not verified (pass --unverified to replay it anyway, as a draft)",
            );
        }
    }
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

/// Prunes (or with `dry_run` lists) what `journal.retention` prunes now;
/// runs a SIEM sink has not exported yet wait, and say so.
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
    let exports = match crate::siem::exported(&config.siem, &globals.data_dir) {
        Ok(x) => x,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let now = crate::journal::now_unix_millis();
    let planned =
        match crate::operations::retention::plan(&journal, &config.retention, now, &exports) {
            Ok(p) => p,
            Err(e) => return Exit::failed(format!("error: {e}")),
        };
    let line = |p: &Planned| {
        format!(
            "{} [{}] {} ended {} (rule {})",
            p.run_id, p.playbook, p.status, p.ended_at, p.rule
        )
    };
    for p in planned.iter().filter(|p| !p.ready()) {
        println!("waits for export {}: {}", line(p), p.waits_for.join(", "));
    }
    let ready = planned.iter().filter(|p| p.ready()).count();
    if dry_run {
        for p in planned.iter().filter(|p| p.ready()) {
            println!("would prune {}", line(p));
        }
        println!("{ready} run(s) would prune");
        return Exit::ok();
    }
    let mut failed = 0;
    for (p, r) in crate::operations::retention::prune(&journal, &planned) {
        match r {
            Ok(_) => println!("pruned {}", line(p)),
            Err(e) => {
                failed += 1;
                println!(
                    "not pruned {}: {}",
                    p.run_id,
                    crate::inert::line(&e.to_string())
                );
            }
        }
    }
    println!("{} run(s) pruned", ready - failed);
    if failed > 0 {
        return Exit::failed(format!("error: {failed} run(s) could not be pruned"));
    }
    Exit::ok()
}

/// `soar journal adopt`: an operator with the signing key starts trust in
/// an existing unkeyed journal, or accepts one run's unsigned records, and
/// sees what was signed.
pub fn adopt(
    globals: &Globals,
    who: &str,
    run: Option<&str>,
    token: &super::approvals::TokenSource,
) -> Exit {
    let config = match globals.config() {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let by = match adopter(&config, who, token) {
        Ok(b) => b,
        Err(e) => return e,
    };
    if let Some(run) = run {
        return accept(globals, run, &by);
    }
    let keys = match config.journal_keys.load() {
        Ok(k) if k.signing.is_some() => k,
        Ok(_) => {
            return Exit::invalid(
                "error: adopting signs the journal: configure journal.signing_key first",
            )
        }
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let dir = globals.data_dir.join("journal");
    let journal = match crate::journal::Journal::adopt(&dir, runs::durability(&config), keys, &by) {
        Ok(j) => j,
        Err(e @ crate::journal::JournalError::Refused(_)) => {
            return Exit::invalid(format!("error: {e}"))
        }
        Err(e) => return Exit::failed(format!("error: cannot adopt the journal: {e}")),
    };
    let Ok(Some(cp)) = journal.checkpoint(1) else {
        return Exit::failed("error: the adoption checkpoint cannot be read back");
    };
    for (run, (seq, hash)) in &cp.heads {
        println!(
            "signed run {} at seq {seq} ({hash})",
            crate::inert::line(run)
        );
    }
    for (run, t) in &cp.pruned {
        println!(
            "signed tombstone of {} (pruned at seq {} by rule {})",
            crate::inert::line(run),
            t.final_seq,
            crate::inert::line(&t.rule)
        );
    }
    println!(
        "adopted by {by}: {} run(s) and {} tombstone(s) signed as they are now, by key {}",
        cp.heads.len(),
        cp.pruned.len(),
        cp.key_id
    );
    println!(
        "trust starts at checkpoint 1: {}\nkeep it outside the data dir; `soar journal verify --all --anchor 1:{}` checks it is still where trust starts",
        cp.hash(),
        cp.hash()
    );
    Exit::ok()
}

/// `soar journal adopt --run RUN`: signs the run's records no checkpoint
/// signed, naming who accepted them.
fn accept(globals: &Globals, run: &str, by: &str) -> Exit {
    let journal = match runs::journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    match journal.accept_tail(run, by) {
        Ok((from, to)) => {
            println!(
                "accepted run {}: seq {from}..={to}, which no checkpoint had signed, are signed now, naming {by}",
                crate::inert::line(run)
            );
            Exit::ok()
        }
        Err(e @ crate::journal::JournalError::Refused(_)) => Exit::invalid(format!("error: {e}")),
        Err(e) => Exit::failed(format!("error: {e}")),
    }
}

/// Who adopts: with approvers in the config, a proven principal with the
/// `operator` role; without, a name in the safe alphabet.
fn adopter(
    config: &crate::config::Config,
    who: &str,
    token: &super::approvals::TokenSource,
) -> Result<String, Exit> {
    let name =
        crate::names::normalise(who).map_err(|e| Exit::invalid(format!("error: --as: {e}")))?;
    if config.policy.approvers.is_empty() {
        return Ok(name);
    }
    let token = token.read()?;
    let refused = |r: crate::approvals::Refusal| Exit {
        code: super::exit::REFUSED,
        message: Some(format!("refused: {r}")),
    };
    let approver = crate::approvals::authenticate(&config.policy, &name, token.as_deref())
        .map_err(|r| {
            refused(crate::operations::recordable_refusal(
                r,
                &crate::operations::recordable_name(&config.policy, who),
            ))
        })?;
    crate::approvals::require_role(approver, crate::config::roles::OPERATOR, "journal adopt")
        .map_err(refused)?;
    Ok(approver.name.clone())
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
