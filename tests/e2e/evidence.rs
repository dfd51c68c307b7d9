//! Evidence against someone who can write the data dir but not the signing
//! key: each attack is performed offline on a real keyed data dir with the
//! tamper helper (`soar_e2e::tamper`), and `soar journal verify` must fail,
//! or the destructive command refuse, before anything is lost. Also what
//! an auditor trusts (keys they name, bundles verified before replay), the
//! wait for the SIEM before retention, and a token typed as a name.

use serde_json::{json, Value};
use soar_e2e::lab::{token, Lab};
use soar_e2e::tamper::Tamper;
use soar_e2e::{Run, Scratch};
use std::path::PathBuf;

/// A path in the repository.
fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(path)
        .display()
        .to_string()
}

fn out(r: &Run) -> String {
    r.all_output()
}

/// `soar run` of a shipped playbook on a shipped alert as the analyst: the
/// exit code and the run id (or, when it did not start, stderr).
fn start(lab: &Lab, playbook: &str, alert: &str) -> (i32, String) {
    let r = lab.soar(
        &[
            "run",
            &repo(&format!("playbooks/{playbook}.yaml")),
            "--input",
            &repo(&format!("examples/alerts/{alert}.json")),
            "--as",
            "dave",
            "--json",
        ],
        &[],
    );
    let id = serde_json::from_str::<Value>(&r.stdout())
        .ok()
        .and_then(|v| v["run_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| r.stderr());
    (r.code(), id)
}

/// A finished run without an approval.
fn finished(lab: &Lab) -> String {
    let (code, id) = start(lab, "malware-enrichment", "edr-malware");
    assert_eq!(code, 0);
    id
}

/// A run waiting at its approval.
fn waiting(lab: &Lab) -> String {
    let (code, id) = start(lab, "malware-containment", "edr-malware");
    assert_eq!(code, 3);
    id
}

/// A run approved by alice and finished.
fn approved(lab: &Lab) -> String {
    let id = waiting(lab);
    let r = lab.soar(
        &[
            "approve", &id, "approve", "--as", "alice", "--reason", "checked",
        ],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_eq!(r.code(), 0, "{}", out(&r));
    id
}

fn verify_all(lab: &Lab) -> Run {
    lab.soar(&["journal", "verify", "--all"], &[])
}

/// Offline, as the attacker: no soar process holds the journal.
fn tamper(lab: &Lab) -> Tamper {
    Tamper::open(&lab.s.path().join(".soar"))
}

/// The hash of checkpoint 1 as `journal verify` prints it.
fn genesis(verify_output: &str) -> String {
    let line = verify_output
        .lines()
        .find(|l| l.starts_with("journal: trust starts at checkpoint 1 ("))
        .unwrap_or_else(|| panic!("no trust start in: {verify_output}"));
    line.split('(').nth(1).unwrap()[..64].to_string()
}

// ---- 1. re-adoption ----------------------------------------------------------

#[test]
fn deleting_every_checkpoint_does_not_restart_trust() {
    let (lab, public) = Lab::keyed(21, "");
    let run = approved(&lab);
    let r = verify_all(&lab);
    assert_eq!(r.code(), 0, "{}", out(&r));
    let first = genesis(&r.stdout());

    // Re-chained edit, then every checkpoint deleted: "unkeyed" it looks.
    {
        let t = tamper(&lab);
        t.rechain_vote(&run, "mallory");
        t.delete_checkpoints();
    }
    // A verifier with only the public key fails.
    let only_public = lab.s.path().join("auditor.yaml");
    std::fs::write(
        &only_public,
        format!("journal:\n  public_keys: [\"{public}\"]\n"),
    )
    .unwrap();
    let r = lab.soar(
        &[
            "--config",
            only_public.to_str().unwrap(),
            "journal",
            "verify",
            "--all",
        ],
        &[],
    );
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stdout().contains("no signed checkpoint"), "{}", out(&r));

    // A process with the signing key does not sign the forged heads: it
    // refuses to append, and the journal still has no checkpoint.
    let (code, why) = start(&lab, "malware-enrichment", "edr-malware");
    assert_ne!(code, 0);
    assert!(why.contains("no signed checkpoint"), "{why}");
    let r = lab.soar(&["status", &run], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(out(&r).contains("FAILS VERIFICATION"), "{}", out(&r));
    let r = verify_all(&lab);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stdout().contains("soar journal adopt"), "{}", out(&r));
    // Nothing exported vouches for the edited run.
    let bundle = lab.s.path().join("b.json");
    let r = lab.soar(&["export", &run, "--out", bundle.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(!bundle.exists());

    // Adoption is explicit, names who, prints what it signs; and the trust
    // start kept outside shows it moved.
    let r = lab.soar(
        &["journal", "adopt", "--as", "alice"],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(
        r.stdout().contains(&format!("signed run {run} at seq")),
        "{}",
        out(&r)
    );
    let r = verify_all(&lab);
    assert!(
        r.stdout()
            .contains("adopted with 1 existing run(s) by alice"),
        "{}",
        out(&r)
    );
    let r = lab.soar(
        &[
            "journal",
            "verify",
            "--all",
            "--anchor",
            &format!("1:{first}"),
        ],
        &[],
    );
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(
        r.stdout().contains("not the one kept outside"),
        "{}",
        out(&r)
    );
}

// ---- 2. invisible runs ---------------------------------------------------------

#[test]
fn a_run_missing_from_the_index_is_found_and_reported() {
    let (lab, _) = Lab::keyed(22, "");
    let real = finished(&lab);
    {
        let t = tamper(&lab);
        let records = t.records(&real);
        t.write_run("rhidden", &records); // records and head, no index entry
        t.index("rghost"); // an index entry, no records
    }
    let r = lab.soar(&["journal", "verify", "rhidden"], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stdout().contains("no run-index entry"), "{}", out(&r));
    let r = verify_all(&lab);
    assert_eq!(r.code(), 1, "{}", out(&r));
    let text = r.stdout();
    assert!(
        text.contains("run rhidden: has records but no run-index entry"),
        "{text}"
    );
    assert!(
        text.contains("run rhidden: no signed checkpoint covers it"),
        "{text}"
    );
    assert!(
        text.contains("run rghost: listed in the run index but has no record"),
        "{text}"
    );
    assert!(text.contains(&format!("{real}: ok")), "{text}");
    let r = lab.soar(&["status", "rhidden"], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stderr().contains("FAILS VERIFICATION"), "{}", out(&r));
    let r = lab.soar(&["journal", "rhidden"], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
}

// ---- 3. resurrection ---------------------------------------------------------

#[test]
fn a_pruned_run_put_back_with_forged_records_is_caught_and_kept() {
    let (lab, _) = Lab::keyed(
        23,
        "  retention:\n    - { name: enrichment-now, playbook: malware-enrichment, status: [succeeded], keep: 0s }\n",
    );
    let pruned = finished(&lab);
    let (code, other) = start(&lab, "malware-containment", "edr-unknown-file");
    assert_eq!(code, 0);
    let r = lab.soar(&["journal", "prune"], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(
        r.stdout().contains(&format!("pruned {pruned}")),
        "{}",
        out(&r)
    );
    assert_eq!(verify_all(&lab).code(), 0);

    // Put back: another run's records, edited, re-chained, re-indexed.
    {
        let t = tamper(&lab);
        let mut records = t.records(&other);
        records[0]["event"]["playbook"] = json!("malware-enrichment");
        t.write_run(&pruned, &records);
        t.index(&pruned);
    }
    for args in [
        vec!["journal", "verify", "--all"],
        vec!["journal", "verify", pruned.as_str()],
    ] {
        let r = lab.soar(&args, &[]);
        assert_eq!(r.code(), 1, "{args:?}: {}", out(&r));
        assert!(
            r.stdout().contains(&format!("run {pruned}: pruned at seq")),
            "{}",
            out(&r)
        );
        assert!(r.stdout().contains("resurrected"), "{}", out(&r));
    }
    // Prune does not erase the evidence of it.
    let r = lab.soar(&["journal", "prune"], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(tamper(&lab).records(&pruned).len() > 1);
}

// ---- 4. prune on a forged end ------------------------------------------------

#[test]
fn an_unsigned_forged_end_never_gets_a_waiting_run_pruned() {
    let (lab, _) = Lab::keyed(
        24,
        "  retention:\n    - { name: containment-now, playbook: malware-containment, keep: 0s }\n",
    );
    let run = waiting(&lab);
    let before = tamper(&lab).records(&run).len();
    tamper(&lab).append(
        &run,
        json!({"type": "run_finished", "status": "succeeded", "outputs": {}, "error": null}),
    );
    let r = lab.soar(&["journal", "prune"], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(
        r.stdout().contains(&format!("not pruned {run}")),
        "{}",
        out(&r)
    );
    assert!(
        r.stdout()
            .contains("not the one a signed checkpoint covers"),
        "{}",
        out(&r)
    );
    assert_eq!(tamper(&lab).records(&run).len(), before + 1, "records lost");
    let r = verify_all(&lab);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(
        r.stdout().contains(&format!(
            "run {run}: seq {}..={} are not signed",
            before + 1,
            before + 1
        )),
        "{}",
        out(&r)
    );
}

// ---- 5. a record slipped in, signed by the next honest append ---------------

#[test]
fn a_forged_vote_is_never_signed_or_counted_by_the_next_real_decision() {
    let (lab, _) = Lab::keyed(29, "");
    let run = waiting(&lab);
    tamper(&lab).append(
        &run,
        json!({"type": "approval_voted", "step": "approve", "by": "bob", "vote": "approve", "reason": "forged"}),
    );
    // The real approver's vote would sign the forged one with it: refused,
    // and nothing destructive happens.
    let r = lab.soar(
        &[
            "approve", &run, "approve", "--as", "alice", "--reason", "checked",
        ],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_ne!(r.code(), 0, "{}", out(&r));
    assert!(
        out(&r).contains("not signed by any checkpoint"),
        "{}",
        out(&r)
    );
    assert!(lab.destructive_requests().is_empty());
    let r = verify_all(&lab);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(
        r.stdout().contains(&format!("run {run}: seq")),
        "{}",
        out(&r)
    );
    // An operator who checked it may accept it, by name, and only then.
    let r = lab.soar(
        &["journal", "adopt", "--run", &run, "--as", "alice"],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_eq!(r.code(), 0, "{}", out(&r));
    let r = verify_all(&lab);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(r.stdout().contains("were accepted by alice"), "{}", out(&r));
}

// ---- bundles: what the auditor trusts ----------------------------------------

/// A signed bundle of an approved run, and the lab's public key.
fn bundle(seed: u8) -> (Lab, String, Value) {
    let (lab, public) = Lab::keyed(seed, "");
    let run = approved(&lab);
    let file = lab.s.path().join("evidence.json");
    let r = lab.soar(&["export", &run, "--out", file.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    let b = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    (lab, public, b)
}

fn key_id(public_hex: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(hex::decode(public_hex).unwrap()))[..16].to_string()
}

#[test]
fn replay_verifies_a_bundle_first_and_an_auditor_trusts_only_keys_they_name() {
    let (_lab, public, good) = bundle(25);
    let elsewhere = Scratch::new();
    let write = |name: &str, v: &Value| elsewhere.write(name, &v.to_string()).display().to_string();
    let good_file = write("good.json", &good);
    // A forged bundle: the approver changed in a record.
    let mut forged = good.clone();
    let records = forged["records"].as_array_mut().unwrap();
    let vote = records
        .iter_mut()
        .find(|r| r.as_str().unwrap().contains("approval_voted"))
        .unwrap();
    *vote = json!(vote.as_str().unwrap().replace("\"alice\"", "\"mallory\""));
    let forged_file = write("forged.json", &forged);

    let r = elsewhere.soar(
        &["replay", "--bundle", &forged_file, "--public-key", &public],
        &[],
    );
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stdout().contains("FAILED VERIFICATION"), "{}", out(&r));
    assert!(!r.stdout().contains("all identical"), "{}", out(&r));
    // No trusted key: says nothing was verified, and exits non-zero...
    let r = elsewhere.soar(&["replay", "--bundle", &good_file], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stdout().contains("NOT VERIFIED"), "{}", out(&r));
    // ...unless asked to, and then it still says so.
    let r = elsewhere.soar(&["replay", "--bundle", &good_file, "--unverified"], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(r.stdout().contains("NOT VERIFIED"), "{}", out(&r));
    assert!(r.stdout().contains("all identical"), "{}", out(&r));

    // A bundle signed by someone else, shipped with a soar.yaml naming
    // their key: not trusted unless the auditor names that config.
    let (_other, their_public, theirs) = bundle(26);
    elsewhere.config(&format!("journal:\n  public_keys: [\"{their_public}\"]\n"));
    let theirs_file = write("theirs.json", &theirs);
    let r = elsewhere.soar(&["verify-bundle", &theirs_file], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(
        r.stdout().contains("no public key was given"),
        "{}",
        out(&r)
    );
    assert!(
        r.stdout()
            .contains(&format!("signed by key {}", key_id(&their_public))),
        "{}",
        out(&r)
    );
    let r = elsewhere.soar(
        &["verify-bundle", &theirs_file, "--public-key", &public],
        &[],
    );
    assert_eq!(r.code(), 1, "{}", out(&r));
    let r = elsewhere.soar(&["verify-bundle", &good_file, "--public-key", &public], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(
        r.stdout()
            .contains(&format!("signed by key {}", key_id(&public))),
        "{}",
        out(&r)
    );
    // A field no signature covers is refused, wherever it is.
    for path in ["", "/playbook", "/signature"] {
        let mut extra = good.clone();
        extra
            .pointer_mut(path)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("note".into(), json!("trust me"));
        let f = write("extra.json", &extra);
        let r = elsewhere.soar(&["verify-bundle", &f, "--public-key", &public], &[]);
        assert_eq!(r.code(), 1, "{path}: {}", out(&r));
        assert!(
            out(&r).contains("unknown field `note`"),
            "{path}: {}",
            out(&r)
        );
    }
}

// ---- retention waits for the SIEM --------------------------------------------

#[test]
fn a_run_is_pruned_only_after_the_siem_export_passed_its_last_record() {
    let (lab, _) = Lab::keyed(
        27,
        "  retention:\n    - { name: now, playbook: malware-enrichment, keep: 0s }\nsiem:\n  file: { path: siem/events.jsonl }\n",
    );
    let run = finished(&lab);
    let records = tamper(&lab).records(&run).len() as u64;
    let r = lab.soar(&["journal", "prune", "--dry-run"], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(
        r.stdout().contains(&format!(
            "waits for export {run} [malware-enrichment] succeeded"
        )),
        "{}",
        out(&r)
    );
    assert!(
        r.stdout()
            .contains(&format!("siem file (exported to seq 0 of {records})")),
        "{}",
        out(&r)
    );
    let r = lab.soar(&["journal", "prune"], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(r.stdout().contains("0 run(s) pruned"), "{}", out(&r));
    assert_eq!(
        lab.soar(&["status", &run], &[]).code(),
        0,
        "pruned unexported"
    );

    let r = lab.soar(&["siem", "export"], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    let r = lab.soar(&["journal", "prune"], &[]);
    assert_eq!(r.code(), 0, "{}", out(&r));
    assert!(r.stdout().contains(&format!("pruned {run}")), "{}", out(&r));
    // Every record reached the SIEM before it went.
    let text = std::fs::read_to_string(lab.s.path().join("siem/events.jsonl")).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["unmapped"]["soar"]["run"] == json!(run))
        .map(|e| e["unmapped"]["soar"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=records).collect::<Vec<_>>());
}

// ---- unkeyed is not success --------------------------------------------------

#[test]
fn an_unkeyed_journal_verifies_with_its_own_exit_code() {
    let lab = Lab::new("");
    let run = finished(&lab);
    for args in [
        vec!["journal", "verify", "--all"],
        vec!["journal", "verify", run.as_str()],
    ] {
        let r = lab.soar(&args, &[]);
        assert_eq!(r.code(), 5, "{args:?}: {}", out(&r));
        assert!(r.stdout().contains("unkeyed"), "{}", out(&r));
        let mut allowed = args.clone();
        allowed.push("--allow-unkeyed");
        assert_eq!(lab.soar(&allowed, &[]).code(), 0);
    }
    // A real problem still wins over "unkeyed".
    tamper(&lab).edit_in_place(&run, 1, "/event/started_by", json!("mallory"));
    let r = lab.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &[]);
    assert_eq!(r.code(), 1, "{}", out(&r));
}

// ---- a token typed as a name -------------------------------------------------

#[test]
fn a_token_given_as_the_name_is_never_journaled_or_exported() {
    let lab = Lab::new("siem:\n  file: { path: siem/events.jsonl }\n");
    let run = waiting(&lab);
    let long = "d6f1c0a9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3";
    for claimed in [token("alice"), long] {
        let r = lab.soar(
            &[
                "approve", &run, "approve", "--as", claimed, "--reason", "ok",
            ],
            &[("SOAR_TOKEN", token("alice"))],
        );
        assert_eq!(r.code(), 4, "{}", out(&r));
        assert!(!out(&r).contains(claimed), "echoed: {}", out(&r));
    }
    assert_eq!(lab.soar(&["siem", "export"], &[]).code(), 0);
    let journal = lab.soar(&["journal", &run, "--json"], &[]).stdout();
    let refused: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "command_refused")
        .collect();
    assert_eq!(refused.len(), 2, "{journal}");
    assert_eq!(
        refused[0]["by"],
        format!("<redacted: {} chars>", token("alice").len())
    );
    assert_eq!(
        refused[1]["by"],
        format!("<redacted: {} chars>", long.len())
    );
    let siem = std::fs::read_to_string(lab.s.path().join("siem/events.jsonl")).unwrap();
    for secret in [token("alice"), long] {
        assert!(!journal.contains(secret), "journaled");
        assert!(!siem.contains(secret), "exported");
    }
    // A plain wrong name is still recorded as given: it is no secret.
    let r = lab.soar(
        &[
            "approve", &run, "approve", "--as", "mallory", "--reason", "ok",
        ],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_eq!(r.code(), 4);
    let journal = lab.soar(&["journal", &run, "--json"], &[]).stdout();
    assert!(journal.contains("\"by\":\"mallory\""), "{journal}");
}

// ---- through a running server ------------------------------------------------

const SERVE: &str = "server:\n  listen: \"127.0.0.1:0\"\n";

#[test]
fn verify_through_the_server_reports_the_same_and_a_broken_journal_is_not_served() {
    use soar_e2e::serve::Server;
    use std::time::{Duration, Instant};
    let (lab, _) = Lab::keyed(28, SERVE);
    let run = finished(&lab);
    let server = Server::start(&lab, &[]);
    let r = lab.soar(
        &["journal", "verify", "--all"],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_eq!(r.code(), 0, "{}", out(&r));
    for want in [
        format!("{run}: ok"),
        "trust starts at checkpoint 1".to_string(),
        "journal: signed".to_string(),
    ] {
        assert!(r.stdout().contains(&want), "{want}: {}", out(&r));
    }
    // Through the server too, a token typed as the name is not echoed.
    let r = lab.soar(
        &[
            "approve",
            &run,
            "approve",
            "--as",
            token("alice"),
            "--reason",
            "x",
        ],
        &[("SOAR_TOKEN", token("alice"))],
    );
    assert_eq!(r.code(), 4, "{}", out(&r));
    assert!(!out(&r).contains(token("alice")), "{}", out(&r));
    assert!(out(&r).contains("<redacted: 16 chars>"), "{}", out(&r));
    server.terminate(Duration::from_secs(30));

    // A run hidden from the index: the server's answers say so too.
    {
        let t = tamper(&lab);
        let records = t.records(&run);
        t.write_run("rhidden", &records);
    }
    let server = Server::start(&lab, &[]);
    let alice = [("SOAR_TOKEN", token("alice"))];
    let r = lab.soar(&["status", "rhidden"], &alice);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stderr().contains("FAILS VERIFICATION"), "{}", out(&r));
    assert!(r.stderr().contains("no run-index entry"), "{}", out(&r));
    let r = lab.soar(&["status", &run], &alice);
    assert_eq!(r.code(), 0, "{}", out(&r));
    let r = lab.soar(&["journal", "verify", "--all"], &alice);
    assert_eq!(r.code(), 1, "{}", out(&r));
    assert!(r.stdout().contains("run rhidden:"), "{}", out(&r));
    server.terminate(Duration::from_secs(30));

    tamper(&lab).delete_checkpoints();
    let mut child = std::process::Command::new(soar_e2e::soar_bin())
        .arg("serve")
        .current_dir(lab.s.path())
        .env_remove("SOAR_CONFIG")
        .env("SOAR_DATA_DIR", lab.s.path().join(".soar"))
        .envs(lab.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Guards a hang only: a server that started would never exit.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("soar serve started on a journal whose checkpoints were deleted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot serve"), "{stderr}");
    assert!(stderr.contains("soar journal adopt"), "{stderr}");
}

#[test]
fn an_unkeyed_journal_verified_through_the_server_exits_5() {
    use soar_e2e::serve::Server;
    let lab = Lab::new(SERVE);
    finished(&lab);
    let server = Server::start(&lab, &[]);
    let alice = [("SOAR_TOKEN", token("alice"))];
    let r = lab.soar(&["journal", "verify", "--all"], &alice);
    assert_eq!(r.code(), 5, "{}", out(&r));
    let r = lab.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &alice);
    assert_eq!(r.code(), 0, "{}", out(&r));
    server.kill();
}
