//! `soar validate | schema | run | resume | status | runs | journal | replay`:
//! the playbook commands, thin glue over playbook, scheduler and journal.

use super::{exit, Exit, Globals};
use crate::inert;
use crate::journal::{Event, Journal, Record, RunStatus};
use crate::playbook;
use crate::plugin_host::PluginHost;
use crate::scheduler::{self, Engine, RunReport, RunState};
use crate::template::Templates;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) async fn host(globals: &Globals) -> Result<Arc<PluginHost>, Exit> {
    let config = globals
        .config()
        .map_err(|e| Exit::invalid(format!("error: {e}")))?;
    PluginHost::load(&config, &globals.cache_dir())
        .await
        .map(Arc::new)
        .map_err(|e| Exit::invalid(format!("error: {e}")))
}

pub(super) fn journal(globals: &Globals) -> Result<Journal, Exit> {
    // sled allows one process at a time: an operator command issued while
    // another `soar` drives a run waits for it (briefly) instead of failing.
    journal_within(globals, std::time::Duration::from_secs(15))?.ok_or_else(|| {
        Exit::failed(
            "error: the journal is in use by another soar process (sled allows one at a time); retry when it finishes",
        )
    })
}

/// What the config asks a journal record to survive.
pub(super) fn durability(config: &crate::config::Config) -> crate::journal::Durability {
    match config.durability {
        crate::config::JournalDurability::PowerLoss => crate::journal::Durability::PowerLoss,
        _ => crate::journal::Durability::Process,
    }
}

/// The journal, waiting up to `wait` for another process to release it;
/// `None` when it is still busy then.
pub(super) fn journal_within(
    globals: &Globals,
    wait: std::time::Duration,
) -> Result<Option<Journal>, Exit> {
    // Reading runs needs no config; writing them honours its durability
    // and signs with its key (a configured key that cannot be loaded is an
    // error: records written unsigned would fail verification later).
    let (durability, keys) = match globals.config() {
        Ok(c) if matches!(c.backend, crate::config::JournalBackend::Nats(_)) => {
            return cluster_within(globals, &c, wait);
        }
        Ok(c) => {
            let keys = c
                .journal_keys
                .load()
                .map_err(|e| Exit::invalid(format!("error: {e}")))?;
            (durability(&c), keys)
        }
        Err(_) => (crate::journal::Durability::Process, Default::default()),
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        match Journal::open_keyed(&globals.data_dir.join("journal"), durability, keys.clone()) {
            Ok(j) => return Ok(Some(j)),
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(Exit::failed(format!("error: cannot open the journal: {e}"))),
        }
    }
}

/// The cluster journal, for a command run outside `soar serve` (its
/// checks and connection happen here, on the command's runtime). The
/// node's own store is one process's at a time, as sled's journal is: a
/// command waits up to `wait` for the process holding it, then gets `None`
/// (and `soar cancel` leaves its request for that process, as on sled).
fn cluster_within(
    globals: &Globals,
    config: &crate::config::Config,
    wait: std::time::Duration,
) -> Result<Option<Journal>, Exit> {
    let crate::config::JournalBackend::Nats(nats) = &config.backend else {
        return Err(Exit::invalid("error: not a cluster journal"));
    };
    let handle = tokio::runtime::Handle::current();
    let deadline = std::time::Instant::now() + wait;
    loop {
        let opened =
            crate::journal::wait_on(&handle, super::cluster::open_journal(globals, config, nats))
                .map_err(|e| Exit::failed(format!("error: {e}")))?;
        match opened {
            Ok(j) => return Ok(Some(j)),
            Err(e)
                if e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("could not acquire lock")) =>
            {
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

use crate::operations::{checked_playbook, playbook_of, OpError};

pub async fn validate(globals: &Globals, paths: &[PathBuf]) -> Exit {
    let host = match host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let mut problems = Vec::new();
    let mut steps = 0;
    for path in paths {
        match checked_playbook(path, &host) {
            Ok(pb) => steps += pb.steps.len(),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        println!("ok: {} playbook(s) valid, {steps} step(s)", paths.len());
        Exit::ok()
    } else {
        for p in &problems {
            println!("{p}");
        }
        Exit::invalid(format!("found {} problem(s)", problems.len()))
    }
}

pub fn schema() -> Exit {
    println!(
        "{}",
        serde_json::to_string_pretty(&playbook::json_schema()).unwrap_or_default()
    );
    Exit::ok()
}

pub(super) fn exit_for(status: RunStatus) -> i32 {
    match status {
        RunStatus::Succeeded | RunStatus::Suppressed => exit::OK,
        RunStatus::Failed | RunStatus::Cancelled => exit::FAILED,
        RunStatus::Running | RunStatus::WaitingApproval | RunStatus::InDoubt => exit::PAUSED,
    }
}

pub(super) fn print_report(report: &RunReport, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    let dedup = if report.deduplicated {
        " (deduplicated: existing run)"
    } else {
        ""
    };
    println!(
        "run {} [{}] {}{dedup}",
        inert::line(&report.run_id),
        inert::line(&report.playbook),
        report.status.as_str()
    );
    for (id, s) in &report.steps {
        let detail = s
            .error
            .as_ref()
            .map(|e| format!("  {}", e.get("message").or(e.get("reason")).unwrap_or(e)))
            .unwrap_or_default();
        println!(
            "  {:<24} {}{}",
            inert::line(id),
            inert::line(&s.status),
            inert::line(&detail)
        );
    }
    if report.outputs.as_object().is_some_and(|o| !o.is_empty()) {
        println!("outputs: {}", inert::line(&report.outputs.to_string()));
    }
    if report.merged_count > 0 {
        println!(
            "repeats: {} later deliveries merged into this run (alert_merged in its journal)",
            report.merged_count
        );
    }
    for entry in &report.pending_approvals {
        super::approvals::print_pending(entry);
    }
}

pub(super) fn read_alert(arg: &str) -> Result<Value, Exit> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Exit::invalid(format!("error: cannot read the alert from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(arg)
            .map_err(|e| Exit::invalid(format!("error: cannot read `{arg}`: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| {
        Exit::invalid(format!(
            "error: {arg}:{}:{}: the alert is not valid JSON: {e}",
            e.line(),
            e.column()
        ))
    })
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Who starts a run and how it reports.
pub struct Start {
    /// `--as` (default: the OS user).
    pub who: Option<String>,
    /// Their token.
    pub token: super::approvals::TokenSource,
    /// One JSON object on stdout.
    pub json: bool,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// The proven identity a run is started by, or the refusal (exit 4).
fn starter(globals: &Globals, start: &Start) -> Result<String, Exit> {
    let policy = globals
        .config()
        .map_err(|e| Exit::invalid(format!("error: {e}")))?
        .policy;
    let claimed = start.who.clone().unwrap_or_else(os_user);
    let token = start.token.read()?;
    crate::approvals::starter(&policy, &claimed, token.as_deref()).map_err(|r| Exit {
        code: exit::REFUSED,
        message: Some(format!("refused: {r}; nothing ran")),
    })
}

pub async fn run(globals: &Globals, path: &Path, input: &str, start: Start) -> Exit {
    let (json_out, progress) = (start.json, start.progress);
    let alert = match read_alert(input) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let who = match starter(globals, &start) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let host = match host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let pb = match checked_playbook(path, &host) {
        Ok(pb) => Arc::new(pb),
        Err(problems) => {
            return Exit::invalid(format!(
                "{}\nerror: the playbook is invalid; nothing ran",
                problems.join("\n")
            ))
        }
    };
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let engine = match engine(globals, host, journal, progress && !json_out) {
        Ok(e) => e,
        Err(e) => return e,
    };
    match engine.start(pb, alert, &who).await {
        Ok(report) => {
            print_report(&report, json_out);
            Exit {
                code: exit_for(report.status),
                message: None,
            }
        }
        Err(e @ crate::scheduler::EngineError::Input(_)) => Exit::invalid(format!("error: {e}")),
        Err(e) => Exit::failed(format!("error: {e}")),
    }
}

pub async fn resume(globals: &Globals, run_id: Option<String>, all: bool, json_out: bool) -> Exit {
    if run_id.is_none() && !all {
        return Exit::invalid("error: give a RUN_ID or --all");
    }
    let host = match host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let ids = match &run_id {
        Some(id) => vec![id.clone()],
        None => match journal.live_run_ids() {
            Ok(ids) => ids,
            Err(e) => return Exit::failed(format!("error: {e}")),
        },
    };
    let engine = match engine(globals, host, journal, !json_out) {
        Ok(e) => e,
        Err(e) => return e,
    };
    continue_runs(&engine, ids, run_id.is_some(), json_out).await
}

/// An engine with the config's safety policy.
pub(super) fn engine(
    globals: &Globals,
    host: Arc<PluginHost>,
    journal: Journal,
    progress: bool,
) -> Result<Engine, Exit> {
    // Never a default policy on error: that would protect nothing.
    let config = globals
        .config()
        .map_err(|e| Exit::invalid(format!("error: {e}")))?;
    Ok(Engine::new(host, journal)
        .with_progress(progress)
        .with_policy(config.policy)
        .with_console(config.server.public_url))
}

/// Drives every unfinished run of `ids` and prints their reports; `single`
/// prints one report like `soar run` does.
pub(super) async fn continue_runs(
    engine: &Engine,
    ids: Vec<String>,
    single: bool,
    json_out: bool,
) -> Exit {
    let journal = engine.journal().clone();
    let host = engine.host().clone();
    let only = if single { ids.first().cloned() } else { None };
    let mut worst = exit::OK;
    let mut handles = Vec::new();
    for id in ids {
        let records = match journal.read(&id) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: run {id}: {e}");
                worst = worst.max(exit::FAILED);
                continue;
            }
        };
        let state = RunState::from_records(&records);
        if state.final_status.is_some() {
            continue;
        }
        // On a cluster, a crashed process's lease lasts one more TTL.
        if let Err(e) = journal.claim_patiently(&id).await {
            eprintln!("error: run {id}: {e}");
            worst = worst.max(exit::FAILED);
            continue;
        }
        let pb = match playbook_of(&records, &host) {
            Ok(pb) => Arc::new(pb),
            Err(e) => {
                eprintln!("error: run {id}: {e}");
                worst = worst.max(exit::FAILED);
                // On a cluster: parked again, its lease given back.
                journal.settle(&id, crate::journal::DriveEnd::Failed).await;
                continue;
            }
        };
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            (id.clone(), engine.resume(&id, pb).await)
        }));
    }
    let mut reports = Vec::new();
    for h in handles {
        match h.await {
            Ok((_, Ok(report))) => {
                worst = worst.max(exit_for(report.status));
                reports.push(report);
            }
            Ok((id, Err(e))) => {
                eprintln!("error: run {id}: {e}");
                worst = worst.max(exit::FAILED);
            }
            Err(e) => {
                eprintln!("error: resume task failed: {e}");
                worst = worst.max(exit::FAILED);
            }
        }
    }
    if json_out && single {
        // `soar resume RUN_ID --json`: the run's report, as `soar run --json`.
        match reports.first() {
            Some(r) => print_report(r, true),
            None => {
                if let Some(id) = &only {
                    if let Ok(records) = journal.read(id) {
                        let report = RunReport::from_records(id, &records, None);
                        worst = worst.max(exit_for(report.status));
                        print_report(&report, true);
                    }
                }
            }
        }
    } else if json_out {
        println!("{}", json!({"resumed": reports}));
    } else {
        if reports.is_empty() {
            println!("nothing to resume");
        }
        for r in &reports {
            print_report(r, false);
        }
    }
    Exit {
        code: worst,
        message: None,
    }
}

pub fn status(globals: &Globals, run_id: &str, json_out: bool) -> Exit {
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    match read_run(&journal, run_id) {
        Ok(records) => {
            print_report(&RunReport::from_records(run_id, &records, None), json_out);
            integrity(&journal, run_id)
        }
        Err(e) => e,
    }
}

/// Exit 1, saying why, when the run shown fails verification: what was
/// just printed cannot be trusted.
fn integrity(journal: &Journal, run_id: &str) -> Exit {
    match journal.check_run(run_id) {
        Ok(problems) => integrity_exit(run_id, &problems),
        Err(e) => Exit::failed(format!("error: cannot verify the run: {e}")),
    }
}

/// The exit of a command that showed `run_id`, given its problems.
pub(super) fn integrity_exit(run_id: &str, problems: &[String]) -> Exit {
    if problems.is_empty() {
        return Exit::ok();
    }
    for p in problems {
        eprintln!("warning: {}", inert::line(p));
    }
    Exit::failed(format!(
        "error: run {} FAILS VERIFICATION ({} problem(s)): what is shown above cannot be trusted; see `soar journal verify {}`",
        inert::line(run_id),
        problems.len(),
        inert::line(run_id)
    ))
}

pub fn runs(globals: &Globals, status: Option<String>, json_out: bool) -> Exit {
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let rows = match crate::operations::list_runs(&journal, status.as_deref()) {
        Ok(r) => r,
        Err(e) => return op_exit(e),
    };
    if json_out {
        println!("{}", json!({ "runs": rows }));
    } else {
        for s in &rows {
            println!(
                "{:<24} {:<18} {:<16} {} by {}",
                inert::line(&s.run_id),
                inert::line(&s.playbook),
                s.status.as_str(),
                inert::line(&s.started_at),
                inert::line(&s.started_by)
            );
        }
    }
    Exit::ok()
}

/// The run's records; an unknown run is a usage error.
pub(super) fn read_run(journal: &Journal, run_id: &str) -> Result<Vec<Record>, Exit> {
    crate::operations::read_run(journal, run_id).map_err(op_exit)
}

/// The exit of an operation that did not happen.
pub(super) fn op_exit(e: OpError) -> Exit {
    match e {
        OpError::Invalid(m) => Exit::invalid(format!("error: {m}")),
        OpError::NotFound(id) => Exit::invalid(format!("error: no run `{id}`")),
        OpError::Refused(r) => Exit {
            code: exit::REFUSED,
            message: Some(format!("refused: {r} (journaled)")),
        },
        OpError::Failed(m) => Exit::failed(format!("error: {m}")),
    }
}

pub fn show_journal(globals: &Globals, run_id: &str, json_out: bool) -> Exit {
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let records = match read_run(&journal, run_id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    for r in &records {
        let mut line = serde_json::to_value(&r.event).unwrap_or(Value::Null);
        if let Some(obj) = line.as_object_mut() {
            obj.insert("seq".into(), json!(r.seq));
            obj.insert("at".into(), json!(r.at));
        }
        if json_out {
            println!("{line}");
        } else {
            let ty = line["type"].as_str().unwrap_or("?").to_string();
            let mut detail = line.clone();
            if let Some(o) = detail.as_object_mut() {
                for k in ["seq", "at", "type"] {
                    o.remove(k);
                }
            }
            let detail = detail.to_string();
            println!(
                "{:>4} {} {:<16} {}",
                r.seq,
                r.at,
                inert::line(&ty),
                inert::line(&detail)
            );
        }
    }
    integrity(&journal, run_id)
}

/// What `soar journal verify` checks, as given on its command line.
pub struct VerifyArgs {
    /// One run, or every run (`--all`).
    pub run_id: Option<String>,
    /// Every run the store holds.
    pub all: bool,
    /// `N:HASH` checkpoints kept outside the data dir.
    pub anchors: Vec<String>,
    /// An unkeyed journal exits 0 instead of [`exit::UNKEYED`].
    pub allow_unkeyed: bool,
}

pub fn verify(globals: &Globals, args: &VerifyArgs) -> Exit {
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    if args.run_id.is_none() && !args.all {
        return Exit::invalid("error: give a RUN_ID or --all");
    }
    let signed = if args.all {
        crate::operations::verify_all(&journal)
    } else {
        journal.verify_signed()
    };
    let mut signed = match signed {
        Ok(r) => r,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let ids = match &args.run_id {
        Some(id) => vec![id.clone()],
        // The store walked tree by tree: a run missing from the index is
        // still checked.
        None => std::mem::take(&mut signed.stored_runs),
    };
    let bad = print_chains(&journal, &ids);
    let only = if args.all {
        None
    } else {
        ids.first().map(String::as_str)
    };
    let mut chain_bad = print_signed(&signed, only);
    for anchor in &args.anchors {
        match check_anchor(&journal, anchor) {
            Ok(line) => println!("journal: {line}"),
            Err(problem) => {
                chain_bad = true;
                println!("journal: {problem}");
            }
        }
    }
    verify_exit(bad, ids.len(), chain_bad, signed.keyed, args.allow_unkeyed)
}

/// Each run's own hash chain, one line per run or problem; how many failed.
fn print_chains(journal: &Journal, ids: &[String]) -> usize {
    let mut bad = 0;
    for id in ids {
        let id_text = inert::line(id);
        match journal.verify(id) {
            Ok(report) if report.problems.is_empty() => {
                println!("{id_text}: ok ({} records)", report.records)
            }
            Ok(report) => {
                bad += 1;
                for p in &report.problems {
                    println!("{id_text}: {p}");
                }
            }
            Err(e) => {
                bad += 1;
                println!("{id_text}: {}", inert::line(&e.to_string()));
            }
        }
    }
    bad
}

/// The exit of `journal verify`: problems first, then an unkeyed journal
/// (which proves nothing against someone who can write the data dir).
pub(super) fn verify_exit(
    bad: usize,
    of: usize,
    chain_bad: bool,
    keyed: bool,
    allow_unkeyed: bool,
) -> Exit {
    if bad > 0 || chain_bad {
        return Exit::failed(format!(
            "error: {bad} of {of} journal(s) failed verification{}",
            if chain_bad {
                "; the store or its signed checkpoints do not match"
            } else {
                ""
            }
        ));
    }
    if !keyed && !allow_unkeyed {
        return Exit {
            code: exit::UNKEYED,
            message: Some(
                "error: the journal is unkeyed: its hash chain holds only against accidents; configure journal.signing_key (or pass --allow-unkeyed to accept that)".into(),
            ),
        };
    }
    Exit::ok()
}

/// Checks one `N:HASH` anchor against the journal's checkpoint N.
fn check_anchor(journal: &Journal, anchor: &str) -> Result<String, String> {
    let (n, hash) = anchor
        .split_once(':')
        .and_then(|(n, h)| Some((n.parse::<u64>().ok()?, h.trim())))
        .ok_or_else(|| format!("anchor `{anchor}` is not N:HASH"))?;
    match journal.checkpoint_hash(n) {
        Ok(Some(h)) if h == hash => Ok(format!("anchor: checkpoint {n} is the one kept outside")),
        Ok(Some(_)) => Err(format!("anchor: checkpoint {n} is not the one kept outside (replaced)")),
        Ok(None) => Err(format!(
            "anchor: checkpoint {n}, kept outside, is gone from the journal (the newest checkpoints deleted, the runs rolled back?)"
        )),
        Err(e) => Err(format!("anchor: {e}")),
    }
}

/// Prints what the store walk and the checkpoints say (only about `only`
/// when given); true when something is wrong.
pub(super) fn print_signed(report: &crate::journal::SignedReport, only: Option<&str>) -> bool {
    let about = |p: &&String| {
        only.is_none_or(|id| p.contains(&format!("run {id}:")) || !p.starts_with("run "))
    };
    let relevant: Vec<&String> = report.problems.iter().filter(about).collect();
    for p in &relevant {
        println!("journal: {}", crate::inert::line(p));
    }
    for w in report.warnings.iter().filter(about) {
        println!("journal: warning: {}", crate::inert::line(w));
    }
    if !report.keyed && report.cluster {
        println!(
            "journal: unkeyed: the cluster journal keeps no signed checkpoints yet, so someone who can write to its stream can re-chain a run undetected (docs/cluster.md)"
        );
        return !relevant.is_empty();
    }
    if !report.keyed {
        println!(
            "journal: unkeyed (no signed checkpoint, no key configured): the hash chain has no key, so an edit that recomputes it cannot be detected; configure journal.signing_key"
        );
        return !relevant.is_empty();
    }
    if let Some(start) = &report.trust_start {
        println!("journal: trust starts at {}", crate::inert::line(start));
    }
    if relevant.is_empty() {
        println!(
            "journal: signed: {} checkpoint(s) by key {}, every run matches",
            report.checkpoints,
            report.key_ids.join(", ")
        );
    }
    !relevant.is_empty()
}

/// Re-evaluates every condition and template of a run against its recorded
/// outputs and reports any decision that would now come out differently.
pub async fn replay(globals: &Globals, run_id: &str) -> Exit {
    let host = match host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let journal = match journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let records = match read_run(&journal, run_id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let pb = match playbook_of(&records, &host) {
        Ok(pb) => pb,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    replay_records(run_id, &records, &pb)
}

/// [`replay`] of records already read (from the journal, or a bundle).
pub(super) fn replay_records(run_id: &str, records: &[Record], pb: &playbook::Playbook) -> Exit {
    let templates = Templates::new();
    // Each decision is re-evaluated against the state the journal had reached
    // just before it.
    let mut so_far = RunState::default();
    let mut differences = Vec::new();
    let mut checked = 0;
    for r in records {
        let ctx = scheduler::context(run_id, &so_far, &so_far.finished);
        match &r.event {
            Event::StepSkipped { step, reason } if reason.starts_with("condition") => {
                if let Some(s) = pb.steps.iter().find(|s| &s.id == step) {
                    checked += 1;
                    let cond = s.r#if.clone().unwrap_or_default();
                    if templates.eval_condition(&cond, &ctx).ok() != Some(false) {
                        differences.push(format!("seq {}: step `{step}` was skipped, but `{cond}` no longer evaluates to false", r.seq));
                    }
                }
            }
            Event::StepStarted { step, .. } => {
                if let Some(cond) = pb
                    .steps
                    .iter()
                    .find(|s| &s.id == step)
                    .and_then(|s| s.r#if.clone())
                {
                    checked += 1;
                    if templates.eval_condition(&cond, &ctx).ok() != Some(true) {
                        differences.push(format!(
                            "seq {}: step `{step}` ran, but `{cond}` no longer evaluates to true",
                            r.seq
                        ));
                    }
                }
            }
            Event::AttemptStarted {
                step, item, input, ..
            } => {
                if let Some(s) = pb.steps.iter().find(|s| &s.id == step) {
                    checked += 1;
                    let ctx = match (item, &s.for_each) {
                        (Some(i), Some(list_t)) => {
                            let list = templates
                                .render_value(&Value::String(list_t.clone()), &ctx)
                                .unwrap_or(Value::Null);
                            let item = list.get(*i as usize).cloned().unwrap_or(Value::Null);
                            scheduler::item_context(&ctx, item, *i as usize)
                        }
                        _ => ctx.clone(),
                    };
                    match templates.render_value(&s.with, &ctx) {
                        Ok(v) if &v == input => {}
                        Ok(v) => differences.push(format!("seq {}: input of `{step}` would now render as {v}, journal has {input}", r.seq)),
                        Err(e) => differences.push(format!("seq {}: input of `{step}` no longer renders: {e}", r.seq)),
                    }
                }
            }
            Event::ApprovalRequested {
                step,
                min_approvals,
                ..
            } => {
                let gate = pb.steps.iter().find(|s| &s.id == step);
                if let Some(gate) = gate.and_then(|s| s.approval.as_ref()) {
                    checked += 1;
                    let (now, _) = scheduler::quorum(&templates, gate, &ctx);
                    if now != *min_approvals {
                        differences.push(format!("seq {}: `{step}` asked {min_approvals} approval(s), but would now ask {now}", r.seq));
                    }
                }
            }
            Event::RunFinished { status, error, .. } if *status == RunStatus::Suppressed => {
                checked += 1;
                let why = pb
                    .steps
                    .iter()
                    .find_map(|s| scheduler::suppression(s, so_far.finished.get(&s.id)?));
                if why.as_ref() != error.as_ref() {
                    differences.push(format!(
                        "seq {}: the run was suppressed ({}), but its journaled steps now say {}",
                        r.seq,
                        error.as_deref().unwrap_or("no reason"),
                        why.as_deref().unwrap_or("nothing suppresses it")
                    ));
                }
            }
            _ => {}
        }
        so_far.apply(r);
    }
    if differences.is_empty() {
        println!("replay of {run_id}: {checked} decision(s) re-evaluated, all identical");
        Exit::ok()
    } else {
        for d in &differences {
            println!("{d}");
        }
        Exit::failed(format!(
            "replay of {run_id}: {} decision(s) differ",
            differences.len()
        ))
    }
}

/// `soar journal keygen`: a fresh Ed25519 key pair from the OS's randomness.
pub fn keygen() -> Exit {
    let mut seed = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut seed) {
        return Exit::failed(format!("error: no randomness from the OS: {e}"));
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    println!(
        "signing key (secret; for journal.signing_key, never in the data dir): {}",
        hex::encode(seed)
    );
    println!(
        "public key (for journal.public_keys and verify-bundle --public-key): {}",
        hex::encode(public.as_bytes())
    );
    println!("key id: {}", crate::journal::key_id(&public));
    println!(
        "once the journal is keyed, `soar journal verify --all` prints where trust starts (checkpoint 1 and its hash): keep that line outside the data dir, and check it later with --anchor 1:HASH"
    );
    Exit::ok()
}
