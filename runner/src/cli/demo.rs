//! `soar demo`: the whole path from alert to approved containment against
//! the built-in vendor simulator (`vendor-sim`, built next to `soar`). It
//! writes a throwaway config and data dir, runs `malware-containment`, stops
//! at the approval with the handoff and the exact `soar approve` command,
//! then finishes (`--yes`, or an approval from a second terminal) and prints
//! the run's timeline from its journal.

use super::approvals::{self, Operator, TokenSource};
use super::runs::{print_report, read_run};
use super::{Exit, Globals};
use crate::journal::{Event, Journal, Record, RunStatus, Vote};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The demo approver and their token (throwaway: the config holds its hash).
const LEAD: &str = "lead";
const LEAD_TOKEN: &str = "demo-lead-token";
/// Who starts the demo run (four-eyes: not the approver), and their token.
const ANALYST: &str = "analyst";
const ANALYST_TOKEN: &str = "demo-analyst-token";

/// `soar demo` options.
pub struct DemoArgs {
    /// Approve without waiting for a second terminal.
    pub yes: bool,
    /// Repository root holding `playbooks/` and `examples/`.
    pub repo: PathBuf,
    /// Where the demo's config and journal go (recreated).
    pub dir: PathBuf,
}

/// Kills the simulator however the demo ends.
struct SimGuard(Child);

impl Drop for SimGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find soar's own path: {e}"))?;
    let debug = exe.parent().ok_or("soar has no parent directory")?;
    Ok(debug.parent().unwrap_or(debug).to_path_buf())
}

fn start_sim() -> Result<(SimGuard, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sim = exe.with_file_name("vendor-sim");
    let mut child = Command::new(&sim)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}): build it with `cargo build -p soar-e2e --bins` (scripts/demo.sh does)",
                sim.display()
            )
        })?;
    let stdout = child.stdout.take().ok_or("vendor-sim has no stdout")?;
    let guard = SimGuard(child);
    let mut url = String::new();
    BufReader::new(stdout)
        .read_line(&mut url)
        .map_err(|e| format!("vendor-sim did not print its URL: {e}"))?;
    Ok((guard, url.trim().to_string()))
}

/// The demo's operator config: all six connectors pointed at the simulator,
/// secrets in files, one approver.
fn write_config(dir: &Path, url: &str, repo: &Path) -> Result<PathBuf, String> {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).map_err(|e| e.to_string())?;
    // The simulator's well-known demo credentials (tests/src/sim).
    for (name, value) in [
        ("vt", "demo-virustotal-key"),
        ("falcon-id", "demo-falcon-client"),
        ("falcon-secret", "demo-falcon-secret"),
        ("okta", "demo-okta-token"),
        ("cloudflare", "demo-cloudflare-token"),
        ("thehive", "demo-thehive-key"),
        ("slack", "demo-slack-token"),
        ("lead.token", LEAD_TOKEN),
    ] {
        std::fs::write(secrets.join(name), value).map_err(|e| e.to_string())?;
    }
    // The journal signs with a fresh key kept beside the other secrets,
    // outside the data dir: someone who can write the data dir cannot
    // re-sign what they change.
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    std::fs::write(secrets.join("journal.key"), hex::encode(seed)).map_err(|e| e.to_string())?;
    let public = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .as_bytes(),
    );
    let plugins_dir = target_dir()?.join("wasm32-wasip2").join("plugin");
    let grant = |secret: &str, file: &str| {
        format!("{secret}: {{ file: secrets/{file}, hosts: [\"{url}\"] }}")
    };
    let config = format!(
        r#"# Written by `soar demo`: every connector talks to the loopback simulator.
plugins_dir: {plugins}
plugins:
  threatintel:
    allowed_hosts: ["{url}"]
    secrets: {{ {vt} }}
    config: {{ base_url: "{url}" }}
  edr:
    allowed_hosts: ["{url}"]
    secrets: {{ {fid}, {fsecret} }}
    config: {{ base_url: "{url}" }}
    dry_run_allow: ["POST /oauth2/token"]
    read_only_allow: ["POST /oauth2/token"]
  identity:
    allowed_hosts: ["{url}"]
    secrets: {{ {okta} }}
    config: {{ base_url: "{url}" }}
  blocklist:
    allowed_hosts: ["{url}"]
    secrets: {{ {cf} }}
    config: {{ base_url: "{url}", account_id: "699d98642c564d2e855e9661899b7252", domain_list_id: "f174e90a-fafe-4643-bbbc-4a0ed4fc8415" }}
  cases:
    allowed_hosts: ["{url}"]
    secrets: {{ {hive} }}
    config: {{ base_url: "{url}" }}
    read_only_allow: ["POST /api/v1/query", "POST /api/v1/case", "POST /api/v1/case/*/comment", "POST /api/v1/case/*/observable"]
  chatops:
    allowed_hosts: ["{url}"]
    secrets: {{ {slack} }}
    config: {{ base_url: "{url}" }}
    read_only_allow: ["POST /api/chat.postMessage", "POST /api/chat.update"]
journal:
  signing_key: {{ file: secrets/journal.key }}
  public_keys: ["{public}"]
approvals:
  approvers:
    {LEAD}: {{ roles: [soc-lead], token_sha256: "{hash}" }}
    {ANALYST}: {{ roles: [analyst], token_sha256: "{analyst_hash}" }}
protected:
  hosts: [DC01, dc01.corp.example]
blast_radius:
  edr.isolate_host: {{ max_targets: 5, max_targets_single_approver: 1 }}
"#,
        plugins = plugins_dir.display(),
        vt = grant("api_key", "vt"),
        fid = grant("client_id", "falcon-id"),
        fsecret = grant("client_secret", "falcon-secret"),
        okta = grant("api_token", "okta"),
        cf = grant("api_token", "cloudflare"),
        hive = grant("api_key", "thehive"),
        slack = grant("bot_token", "slack"),
        hash = crate::plugin_host::sha256_hex(LEAD_TOKEN.as_bytes()),
        analyst_hash = crate::plugin_host::sha256_hex(ANALYST_TOKEN.as_bytes()),
    );
    let config = config + &state_tables(repo)?;
    let path = dir.join("soar.yaml");
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The shipped config's `state:` tables (the playbooks use them), as YAML
/// to append to the demo's config: one declaration of them, not two.
fn state_tables(repo: &Path) -> Result<String, String> {
    let path = repo.join("examples/soar.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let shipped: serde_json::Value = crate::yaml::parse(&path, &text).map_err(|e| e.to_string())?;
    crate::yaml::to_string(&serde_json::json!({"state": shipped["state"]}))
}

/// One line per journal record, relative to the run's start.
fn print_timeline(records: &[Record]) {
    let start = records
        .first()
        .and_then(|r| crate::journal::parse_unix_millis(&r.at))
        .unwrap_or(0);
    println!("\ntimeline (from the journal):");
    for r in records {
        let t = crate::journal::parse_unix_millis(&r.at).unwrap_or(start);
        let what = match &r.event {
            Event::RunStarted { started_by, .. } => format!("started by {started_by}"),
            Event::StepStarted { step, .. } => format!("{step}: started"),
            Event::AttemptStarted {
                step,
                attempt,
                dry_run,
                ..
            } => format!(
                "{step}: attempt {attempt}{}",
                if *dry_run { " (dry run)" } else { "" }
            ),
            Event::AttemptFinished {
                step,
                outcome,
                duration_ms,
                ..
            } => {
                let how = match outcome {
                    crate::journal::AttemptOutcome::Ok { .. } => "ok".to_string(),
                    crate::journal::AttemptOutcome::Err { kind, .. } => kind.clone(),
                };
                format!("{step}: {how} in {duration_ms} ms")
            }
            Event::ApprovalRequested { step, .. } => format!("{step}: approval requested"),
            Event::ApprovalVoted { step, by, vote, .. } => format!("{step}: {by} voted {vote:?}"),
            Event::ApprovalDecided { step, decision, .. } => {
                format!("{step}: {}", decision.as_str())
            }
            Event::ActionAuthorized { step, targets, .. } => {
                format!("{step}: authorized for {}", targets.join(", "))
            }
            Event::StepSkipped { step, .. } => format!("{step}: skipped"),
            Event::StepFinished { step, status, .. } => format!("{step}: {status}"),
            Event::RunPaused { status, .. } => format!("paused: {status}"),
            Event::RunFinished { status, .. } => format!("finished: {status}"),
            other => other.kind().to_string(),
        };
        println!(
            "  +{:>6.3}s  {:<18} {}",
            t.saturating_sub(start) as f64 / 1000.0,
            r.event.kind(),
            crate::inert::line(&what)
        );
    }
}

/// Waits until the run is no longer waiting: someone approved (or denied)
/// it from another terminal. The journal is opened only briefly each time,
/// since that terminal needs it.
async fn wait_for_decision(globals: &Globals, run_id: &str) -> Result<Vec<Record>, Exit> {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(journal) = Journal::open(
            &globals.data_dir.join("journal"),
            crate::journal::Durability::Process,
        ) else {
            continue; // The approving process holds it right now.
        };
        let summary = journal
            .summary(run_id)
            .map_err(|e| Exit::failed(format!("error: {e}")))?;
        if summary.status.is_terminal() {
            return read_run(&journal, run_id);
        }
    }
}

pub async fn demo(args: DemoArgs) -> Exit {
    let dir = &args.dir;
    // The data dir sits apart from the secrets (the journal's key among
    // them). A fresh journal each time; the compiled-plugin cache is kept.
    let data_dir = dir.join("data");
    let _ = std::fs::remove_dir_all(data_dir.join("journal"));
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Exit::failed(format!("error: cannot create {}: {e}", dir.display()));
    }
    let (sim, url) = match start_sim() {
        Ok(s) => s,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let config = match write_config(dir, &url, &args.repo) {
        Ok(c) => c,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    let globals = Globals {
        config: Some(config.clone()),
        data_dir: data_dir.clone(),
        server: None,
    };
    println!("vendor simulator (VirusTotal, Falcon, Okta, Cloudflare, TheHive, Slack) on {url}");
    println!("config: {}\n", config.display());
    let playbook = args.repo.join("playbooks/malware-containment.yaml");
    let alert = args.repo.join("examples/alerts/edr-malware.json");
    println!(
        "$ soar run {} --input {} --as {ANALYST}",
        playbook.display(),
        alert.display()
    );
    let start = super::runs::Start {
        who: Some(ANALYST.to_string()),
        token: TokenSource {
            file: None,
            value: Some(ANALYST_TOKEN.to_string()),
        },
        json: false,
        progress: true,
    };
    let started = super::runs::run(&globals, &playbook, &alert.display().to_string(), start).await;
    if started.code != super::exit::PAUSED {
        return started;
    }
    let Ok(records) = super::runs::journal(&globals).and_then(|j| {
        let id = j
            .run_ids()
            .ok()
            .and_then(|ids| ids.last().cloned())
            .ok_or_else(|| Exit::failed("error: the demo run is missing"))?;
        read_run(&j, &id).map(|r| (id, r))
    }) else {
        return Exit::failed("error: cannot read the demo run");
    };
    let (run_id, records) = records;
    let state = crate::scheduler::RunState::from_records(&records);
    let Some(step) = state.gates.keys().next().cloned() else {
        return Exit::failed("error: the demo run paused without an approval");
    };
    println!(
        "\nThe run waits for a SOC lead. In a second terminal (same directory), approve it with:\n\n  SOAR_TOKEN={LEAD_TOKEN} {} --config {} --data-dir {} approve {run_id} {step} --as {LEAD} --reason \"verified on the EDR console\"\n",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "soar".into()),
        config.display(),
        data_dir.display()
    );
    let records = if args.yes {
        println!("(--yes: approving as `{LEAD}` now)\n");
        let op = Operator {
            run_id: run_id.clone(),
            step,
            who: LEAD.to_string(),
            token: TokenSource {
                file: Some(dir.join("secrets/lead.token")),
                value: None,
            },
            json: false,
        };
        let reason = Some("demo: approved with --yes".to_string());
        let decided = approvals::vote(&globals, op, Vote::Approve, reason).await;
        if let Some(m) = &decided.message {
            eprintln!("{m}");
        }
        match super::runs::journal(&globals).and_then(|j| read_run(&j, &run_id)) {
            Ok(r) => r,
            Err(e) => return e,
        }
    } else {
        println!("waiting for the decision (Ctrl-C to stop; `soar resume` continues later)...");
        match wait_for_decision(&globals, &run_id).await {
            Ok(r) => r,
            Err(e) => return e,
        }
    };
    print_timeline(&records);
    println!("\n$ soar journal verify --all");
    match super::runs::journal(&globals).map(|j| j.verify_signed()) {
        Ok(Ok(report)) => {
            super::runs::print_signed(&report, None);
        }
        Ok(Err(e)) => println!("journal: {e}"),
        Err(_) => println!("journal: busy"),
    }
    let report = crate::scheduler::RunReport::from_records(&run_id, &records, None);
    println!();
    print_report(&report, false);
    drop(sim);
    Exit {
        code: super::runs::exit_for(report.status),
        message: (report.status != RunStatus::Succeeded)
            .then(|| format!("demo run ended {}", report.status)),
    }
}
