//! Approval gates and fail-closed destructive actions, end to end: the real
//! `soar` binary and connectors against the loopback vendor simulator. For
//! every rule that says "no", the vendor must receive no destructive request;
//! for the positive path, exactly one, carrying the step's idempotency key,
//! even when the runner is SIGKILLed between approval and action.

use serde_json::{json, Value};
use soar_e2e::lab::{kill, token, Lab};
use soar_e2e::{sim, Run, Scratch};
use std::time::{Duration, Instant};

const CONTAIN: &str = r#"name: contain
version: "1"
owner: soc
inputs:
  host_id: { type: string }
steps:
  - id: host
    uses: edr.get_host
    with: { host_id: "{{ inputs.host_id }}" }
  - id: approve
    needs: [host]
    approval:
      approvers: [soc-lead]
      min_approvals: MIN
      timeout: TIMEOUT
      handoff:
        summary: "Isolate {{ steps.host.output.hostname }}?"
        why: "test"
        affected: "{{ steps.host.output.hostname }}"
        recommended_action: isolate
  - id: isolate
    needs: [host, approve]
    uses: edr.isolate_host
    with: { host_id: "{{ steps.host.output.host_id }}" }
"#;

/// What these tests add to the lab: the CONTAIN playbook and its gate.
trait Gate {
    fn playbook(&self, min: u32, timeout: &str);
    fn start(&self, who: &str, alert: Value) -> (String, Value);
    fn vote(&self, verb: &str, run: &str, who: &str, tok: &str, reason: &str) -> Run;
}

impl Gate for Lab {
    fn playbook(&self, min: u32, timeout: &str) {
        let text = CONTAIN
            .replace("MIN", &min.to_string())
            .replace("TIMEOUT", timeout);
        self.s.write("pb.yaml", &text);
    }

    /// Starts a run as `who`; returns its id and report.
    fn start(&self, who: &str, alert: Value) -> (String, Value) {
        self.s.write("alert.json", &alert.to_string());
        let r = self.soar(
            &[
                "run",
                "pb.yaml",
                "--input",
                "alert.json",
                "--as",
                who,
                "--json",
            ],
            &[],
        );
        let report = r.json();
        (report["run_id"].as_str().unwrap().to_string(), report)
    }

    fn vote(&self, verb: &str, run: &str, who: &str, tok: &str, reason: &str) -> Run {
        self.soar(
            &[
                verb, run, "approve", "--as", who, "--reason", reason, "--json",
            ],
            &[("SOAR_TOKEN", tok)],
        )
    }
}

fn host_alert() -> Value {
    json!({"host_id": sim::HOST_ID})
}

fn types(journal: &[Value]) -> Vec<String> {
    journal
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect()
}

/// Runs to the gate and checks that nothing destructive happened yet.
fn paused_at_gate(lab: &Lab, who: &str) -> String {
    let (run, report) = lab.start(who, host_alert());
    assert_eq!(report["status"], "waiting_approval", "{report}");
    assert_eq!(report["steps"]["approve"]["status"], "waiting_approval");
    assert!(lab.destructive_requests().is_empty());
    run
}

fn refused(r: &Run, needle: &str) {
    assert_eq!(r.code(), 4, "{}{}", r.stdout(), r.stderr());
    assert!(r.stderr().contains(needle), "{}", r.stderr());
}

#[test]
fn an_approved_containment_is_sent_exactly_once_with_its_key() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");

    // The handoff and the dry-run plan are what the approver sees.
    let pending = lab.soar(&["pending", "--json"], &[]).json();
    let entry = &pending["pending"][0];
    assert_eq!(entry["run_id"], json!(run));
    assert_eq!(entry["handoff"]["summary"], "Isolate FIN-WS-042?");
    assert_eq!(entry["plan"][0]["plan"]["planned"], true, "{entry}");
    assert_eq!(entry["plan"][0]["plan"]["action"], "contain");
    assert_eq!(entry["covers"][0]["targets"], json!([sim::HOST_ID]));
    let human = lab.soar(&["pending"], &[]);
    assert!(
        human
            .stdout()
            .contains(&format!("soar approve {run} approve")),
        "{}",
        human.stdout()
    );

    let r = lab.vote(
        "approve",
        &run,
        "alice",
        token("alice"),
        "confirmed on console",
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["steps"]["isolate"]["status"], "succeeded");

    let sent = lab.destructive_requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let journal = lab.journal(&run);
    let key = journal
        .iter()
        .find(|r| r["type"] == "attempt_started" && r["step"] == "isolate")
        .unwrap()["idempotency_key"]
        .clone();
    assert_eq!(
        sent[0]
            .headers
            .get("idempotency-key")
            .unwrap()
            .to_str()
            .unwrap(),
        key.as_str().unwrap()
    );
    // Decision before authorization before the attempt, all journaled.
    let t = types(&journal);
    let at = |name: &str| t.iter().position(|x| x == name).unwrap();
    assert!(at("approval_requested") < at("approval_voted"));
    assert!(at("approval_decided") < at("action_authorized"));
    let authorized = journal
        .iter()
        .find(|r| r["type"] == "action_authorized")
        .unwrap();
    assert_eq!(authorized["basis"]["approved_by"], json!(["alice"]));
    assert!(at("action_authorized") < t.iter().rposition(|x| x == "attempt_started").unwrap());
    assert!(lab
        .soar(&["journal", "verify", &run], &[])
        .stdout()
        .contains("ok"));
}

/// Approves with the runner frozen after `n` of its own journal appends,
/// SIGKILLs it, and resumes.
fn approve_and_kill(lab: &Lab, run: &str, n: u64) {
    let args = ["approve", run, "approve", "--as", "bob", "--reason", "ok"];
    kill(lab.frozen(&args, n, &[("SOAR_TOKEN", token("bob"))]));
}

#[test]
fn approval_survives_a_sigkill_before_the_action_and_acts_once() {
    // The executor's appends after the vote: approve finished (1), isolate
    // started (2), authorized (3), attempt started (4), attempt finished (5).
    for n in 1..=5 {
        let lab = Lab::new("");
        lab.playbook(1, "10m");
        let run = paused_at_gate(&lab, "dave");
        approve_and_kill(&lab, &run, n);
        let r = lab.soar(&["resume", &run, "--json"], &[]);
        assert_eq!(r.code(), 0, "n={n}: {}{}", r.stdout(), r.stderr());
        assert_eq!(r.json()["steps"]["isolate"]["status"], "succeeded", "n={n}");
        let sent = lab.destructive_requests();
        assert_eq!(sent.len(), 1, "n={n}: {sent:?}");
        assert!(sent[0].headers.get("idempotency-key").is_some(), "n={n}");
        let journal = lab.journal(&run);
        assert_eq!(
            journal
                .iter()
                .filter(|r| r["type"] == "approval_decided")
                .count(),
            1,
            "n={n}"
        );
    }
}

#[test]
fn a_denial_stops_the_containment() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    let r = lab.vote(
        "deny",
        &run,
        "bob",
        token("bob"),
        "user is presenting to the board",
    );
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["steps"]["approve"]["error"]["kind"], "denied");
    assert_eq!(report["steps"]["isolate"]["status"], "pending");
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn an_expired_approval_counts_as_a_denial() {
    let lab = Lab::new("");
    lab.playbook(1, "1s");
    let run = paused_at_gate(&lab, "dave");
    std::thread::sleep(Duration::from_millis(1200));
    let r = lab.vote("approve", &run, "alice", token("alice"), "late");
    refused(&r, "expired");
    assert_eq!(lab.status(&run)["status"], "failed");
    assert_eq!(
        lab.status(&run)["steps"]["approve"]["error"]["kind"],
        "expired"
    );
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn quorum_needs_distinct_people() {
    let lab = Lab::new("");
    lab.playbook(2, "10m");
    let run = paused_at_gate(&lab, "dave");
    let r = lab.vote("approve", &run, "alice", token("alice"), "yes");
    assert_eq!(r.code(), 3, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("1 of 2"), "{}", r.stdout());
    refused(
        &lab.vote("approve", &run, "alice", token("alice"), "yes again"),
        "already voted",
    );
    assert!(lab.destructive_requests().is_empty());
    assert_eq!(lab.status(&run)["status"], "waiting_approval");
    let r = lab.vote("approve", &run, "bob", token("bob"), "second pair of eyes");
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(lab.destructive_requests().len(), 1);
}

#[test]
fn forged_tokens_unknown_people_and_missing_roles_are_refused_and_journaled() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    refused(
        &lab.vote("approve", &run, "alice", token("bob"), "x"),
        "wrong token for `alice`",
    );
    refused(
        &lab.vote("approve", &run, "alice", "alice-token-1b2", "x"),
        "wrong token",
    );
    refused(
        &lab.vote("approve", &run, "mallory", token("alice"), "x"),
        "not an approver",
    );
    refused(
        &lab.vote("approve", &run, "carol", token("carol"), "x"),
        "needs one of [soc-lead]",
    );
    let r = lab.soar(
        &["approve", &run, "approve", "--as", "alice"],
        &[("SOAR_TOKEN", "")],
    );
    refused(&r, "no token");
    let r = lab.soar(
        &["approve", &run, "isolate", "--as", "bob"],
        &[("SOAR_TOKEN", token("bob"))],
    );
    refused(&r, "not an approval waiting");
    let journal = lab.journal(&run);
    let refusals = journal
        .iter()
        .filter(|r| r["type"] == "command_refused")
        .count();
    assert_eq!(refusals, 6, "{journal:#?}");
    // The wrong token itself is never journaled.
    assert!(!serde_json::to_string(&journal)
        .unwrap()
        .contains(token("bob")));
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn the_person_who_started_a_run_cannot_approve_it() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "alice");
    refused(
        &lab.vote("approve", &run, "alice", token("alice"), "mine"),
        "four-eyes",
    );
    assert!(lab.destructive_requests().is_empty());
    // A single-person team may switch it off explicitly.
    let lab = Lab::new("  allow_self_approval: true\n");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "alice");
    let r = lab.vote("approve", &run, "alice", token("alice"), "mine");
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(lab.destructive_requests().len(), 1);
}

#[test]
fn a_changed_plugin_file_voids_the_approval() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    // Append a custom section: still a valid component, another digest.
    let path = lab.s.path().join("edr.wasm");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0x00, 0x05, 0x04, b'x', b'x', b'x', b'x']);
    std::fs::write(&path, bytes).unwrap();
    let r = lab.vote("approve", &run, "bob", token("bob"), "ok");
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["steps"]["isolate"]["status"], "blocked");
    assert_eq!(report["steps"]["isolate"]["error"]["rule"], "approval_void");
    assert!(report["steps"]["isolate"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("plugin"));
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn a_changed_playbook_does_not_act_on_an_old_approval() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    // Someone points the action at another host after the approval was asked.
    let text = CONTAIN
        .replace("MIN", "1")
        .replace("TIMEOUT", "10m")
        .replace(
            r#"with: { host_id: "{{ steps.host.output.host_id }}" }"#,
            r#"with: { host_id: "{{ steps.host.output.host_id }}-other" }"#,
        );
    lab.s.write("pb.yaml", &text);
    let r = lab.vote("approve", &run, "bob", token("bob"), "ok");
    assert_ne!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stderr().contains("playbook"), "{}", r.stderr());
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn a_protected_host_named_only_in_the_plan_is_not_isolated() {
    // The playbook passes the device id; the config protects the host name,
    // which only the dry-run plan reveals.
    let lab = Lab::new("protected:\n  hosts: [fin-ws-042]\n");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    let r = lab.vote("approve", &run, "bob", token("bob"), "ok");
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let isolate = &r.json()["steps"]["isolate"];
    assert_eq!(isolate["status"], "blocked");
    assert_eq!(isolate["error"]["rule"], "protected_target");
    assert!(lab.destructive_requests().is_empty());
}

const MANY: &str = r#"name: many
version: "1"
owner: soc
inputs:
  ids: { type: list }
steps:
  - id: approve
    approval:
      approvers: [soc-lead]
      timeout: 10m
      handoff: { summary: "Isolate these hosts?", why: "t", affected: "many", recommended_action: isolate }
  - id: isolate
    needs: [approve]
    for_each: "{{ inputs.ids }}"
    uses: edr.isolate_host
    with: { host_id: "{{ item }}" }
"#;

/// 50 unknown device ids and, as the 51st item, the simulator's host, whose
/// name only its dry-run plan reveals.
fn fifty_one_hosts(lab: &Lab) -> Value {
    lab.s.write("pb.yaml", MANY);
    let mut ids: Vec<String> = (0..50).map(|i| format!("{i:032x}")).collect();
    ids.push(sim::HOST_ID.to_string());
    let (run, report) = lab.start("dave", json!({ "ids": ids }));
    assert_eq!(report["status"], "waiting_approval", "{report}");
    let r = lab.vote("approve", &run, "bob", token("bob"), "ok");
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    r.json()["steps"]["isolate"].clone()
}

#[test]
fn an_item_past_the_plan_never_acts_unchecked() {
    let lab = Lab::new("protected:\n  hosts: [fin-ws-042]\n");
    let isolate = fifty_one_hosts(&lab);
    assert_eq!(isolate["status"], "blocked", "{isolate}");
    assert_eq!(isolate["error"]["rule"], "unplanned_item", "{isolate}");
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn with_a_blast_radius_every_item_is_planned_and_checked() {
    let lab = Lab::new(
        "protected:\n  hosts: [fin-ws-042]\nblast_radius:\n  edr.isolate_host: { max_targets: 60 }\n",
    );
    let isolate = fifty_one_hosts(&lab);
    assert_eq!(isolate["status"], "blocked", "{isolate}");
    assert_eq!(isolate["error"]["rule"], "protected_target", "{isolate}");
    assert!(lab.destructive_requests().is_empty());
}

const AUTO: &str = r#"name: auto
version: "1"
owner: soc
inputs:
  user: { type: string }
  ips: { type: list }
  domain: { type: string }
steps:
  - id: suspend
    uses: identity.suspend_user
    auto_approve: "true"
    on_error: continue
    with: { user_id: "{{ inputs.user }}" }
  - id: block_ips
    uses: blocklist.block_ip
    auto_approve: "inputs.ips | length < 100"
    for_each: "{{ inputs.ips }}"
    on_error: continue
    with: { ip: "{{ item }}" }
  - id: block_domain
    uses: blocklist.block_domain
    auto_approve: "true"
    on_error: continue
    with: { domain: "{{ inputs.domain }}" }
"#;

#[test]
fn protected_users_ips_and_domains_are_never_acted_on() {
    let lab = Lab::new(
        "protected:\n  users: [J.Doe@example.com]\n  ips: [203.0.113.0/24]\n  domains: [example.org]\n",
    );
    lab.s.write("pb.yaml", AUTO);
    let (run, report) = lab.start(
        "dave",
        json!({"user": sim::OKTA_USER_LOGIN, "ips": ["198.51.100.7", "203.0.113.9"], "domain": "mail.example.org"}),
    );
    // A block fails the run whatever `on_error` says.
    assert_eq!(report["status"], "failed", "{report}");
    for step in ["suspend", "block_ips", "block_domain"] {
        assert_eq!(
            report["steps"][step]["status"], "blocked",
            "{step}: {report}"
        );
        assert_eq!(report["steps"][step]["error"]["rule"], "protected_target");
    }
    assert!(lab.destructive_requests().is_empty());
    // The auto-approve decisions were never journaled as authorizations.
    assert!(!types(&lab.journal(&run)).contains(&"action_authorized".to_string()));
}

#[test]
fn a_blast_radius_cap_blocks_the_whole_batch() {
    let lab = Lab::new("blast_radius:\n  blocklist.block_ip: { max_targets: 2 }\n");
    lab.s.write("pb.yaml", AUTO);
    let (_, report) = lab.start(
        "dave",
        json!({"user": "nobody-here", "ips": ["198.51.100.1", "198.51.100.2", "198.51.100.3"], "domain": "evil.example"}),
    );
    let ips = &report["steps"]["block_ips"];
    assert_eq!(ips["status"], "blocked", "{report}");
    assert_eq!(ips["error"]["rule"], "blast_radius");
    let sent = lab.destructive_requests();
    // Not the first two of three: none. (The domain block is allowed.)
    assert!(
        sent.iter().all(|r| !r.url.path().contains("access_rules")),
        "{sent:?}"
    );
}

#[test]
fn an_auto_approve_that_is_false_blocks_and_journals_its_values() {
    let lab = Lab::new("");
    let text = AUTO.replace("inputs.ips | length < 100", "inputs.ips | length < 2");
    lab.s.write("pb.yaml", &text);
    let (run, report) = lab.start(
        "dave",
        json!({"user": "nobody-here", "ips": ["198.51.100.1", "198.51.100.2"], "domain": "evil.example"}),
    );
    let ips = &report["steps"]["block_ips"];
    assert_eq!(ips["status"], "blocked", "{report}");
    assert_eq!(ips["error"]["rule"], "auto_approve_false");
    assert!(ips["error"]["message"]
        .as_str()
        .unwrap()
        .contains("198.51.100.2"));
    assert!(lab
        .destructive_requests()
        .iter()
        .all(|r| !r.url.path().contains("access_rules")));
    let journal = lab.journal(&run);
    let auth = journal
        .iter()
        .find(|r| r["type"] == "action_authorized" && r["step"] == "block_domain")
        .expect("the domain block was authorized");
    assert_eq!(auth["basis"]["basis"]["result"], true);
    assert_eq!(auth["basis"]["basis"]["auto_approve"], "true");
}

#[test]
fn missing_upstream_data_blocks_instead_of_acting_on_a_default() {
    let lab = Lab::new("");
    lab.s.write(
        "pb.yaml",
        r#"name: partial
version: "1"
owner: soc
inputs:
  host_id: { type: string }
steps:
  - id: host
    uses: edr.get_host
    on_error: continue
    with: { host_id: "{{ inputs.host_id }}" }
  - id: isolate
    needs: [host]
    uses: edr.isolate_host
    auto_approve: "true"
    with: { host_id: "{{ steps.host.output.host_id if steps.host.output else inputs.host_id }}" }
"#,
    );
    let (_, report) = lab.start("dave", json!({"host_id": "no-such-host"}));
    let isolate = &report["steps"]["isolate"];
    assert_eq!(isolate["status"], "blocked", "{report}");
    assert_eq!(isolate["error"]["rule"], "upstream_not_succeeded");
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn a_cancelled_run_acts_on_nothing() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    let r = lab.soar(
        &["cancel", &run, "--as", "bob", "--reason", "false positive"],
        &[("SOAR_TOKEN", token("bob"))],
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(lab.status(&run)["status"], "cancelled");
    refused(
        &lab.vote("approve", &run, "alice", token("alice"), "too late"),
        "run is cancelled",
    );
    let r = lab.soar(&["resume", "--all"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(lab.destructive_requests().is_empty());
    let pending = lab.soar(&["pending", "--json"], &[]).json();
    assert_eq!(pending["pending"], json!([]));
}

const RESET: &str = r#"name: reset
version: "1"
owner: soc
inputs:
  user: { type: string }
steps:
  - id: reset
    uses: identity.reset_password
    auto_approve: "true"
    with: { user_id: "{{ inputs.user }}", send_email: true }
"#;

/// Runs RESET and SIGKILLs it after the reset was sent but before its result
/// was journaled; `soar resume` then finds it in doubt (not idempotent, no probe).
fn in_doubt_reset(lab: &Lab) -> String {
    lab.s.write("pb.yaml", RESET);
    lab.s.write(
        "alert.json",
        &json!({"user": sim::OKTA_USER_ID}).to_string(),
    );
    // Appends: run started, step started, authorized, attempt started; the
    // fifth (its result) never lands.
    let args = ["run", "pb.yaml", "--input", "alert.json", "--as", "dave"];
    kill(lab.frozen(&args, 4, &[]));
    assert_eq!(resets(lab), 1, "the reset went out before the crash");
    let r = lab.soar(&["resume", "--all", "--json"], &[]);
    assert_eq!(r.code(), 3, "{}{}", r.stdout(), r.stderr());
    let run = r.json()["resumed"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(lab.status(&run)["status"], "in_doubt");
    run
}

fn resets(lab: &Lab) -> usize {
    lab.destructive_requests()
        .iter()
        .filter(|r| r.url.path().ends_with("/lifecycle/reset_password"))
        .count()
}

/// `soar resolve RUN reset --as WHO --outcome OUTCOME --reason REASON --json`
/// with `token` as WHO's token.
fn resolve(lab: &Lab, run: &str, who: &str, token: &str, outcome: &str, reason: &str) -> Run {
    lab.soar(
        &[
            "resolve",
            run,
            "reset",
            "--as",
            who,
            "--outcome",
            outcome,
            "--reason",
            reason,
            "--json",
        ],
        &[("SOAR_TOKEN", token)],
    )
}

#[test]
fn an_operator_settles_an_in_doubt_step() {
    // done: recorded as done, nothing sent again.
    let lab = Lab::new("");
    let run = in_doubt_reset(&lab);
    refused(
        &resolve(&lab, &run, "bob", "forged", "done", "x"),
        "wrong token",
    );
    let r = resolve(
        &lab,
        &run,
        "bob",
        token("bob"),
        "done",
        "checked the Okta admin console",
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["steps"]["reset"]["status"], "succeeded");
    assert_eq!(resets(&lab), 1);
    let journal = lab.journal(&run);
    let resolved = journal
        .iter()
        .find(|r| r["type"] == "operator_resolved")
        .unwrap();
    assert_eq!(resolved["by"], "bob");
    assert_eq!(resolved["outcome"], "done");

    // retry: invoked once more, with the same idempotency key.
    let lab = Lab::new("");
    let run = in_doubt_reset(&lab);
    let r = resolve(
        &lab,
        &run,
        "alice",
        token("alice"),
        "retry",
        "console shows no reset",
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(resets(&lab), 2);
    let keys: Vec<Value> = lab
        .journal(&run)
        .iter()
        .filter(|r| r["type"] == "attempt_started")
        .map(|r| r["idempotency_key"].clone())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);

    // failed: the run fails, nothing more is sent.
    let lab = Lab::new("");
    let run = in_doubt_reset(&lab);
    let r = resolve(
        &lab,
        &run,
        "alice",
        token("alice"),
        "failed",
        "user already rotated it",
    );
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    assert_eq!(lab.status(&run)["status"], "failed");
    assert_eq!(resets(&lab), 1);
}

#[test]
fn the_demo_goes_from_alert_to_approved_containment() {
    let s = Scratch::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let dir = s.path().join("demo");
    let r = s.soar(
        &[
            "demo",
            "--yes",
            "--repo",
            root.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let out = r.stdout();
    // It stopped at the approval with the handoff, the plan and the command...
    assert!(out.contains("waiting_approval"), "{out}");
    assert!(out.contains("plan isolate"), "{out}");
    assert!(out.contains("SOAR_TOKEN=demo-lead-token"), "{out}");
    // ...then finished, and printed the timeline from the journal.
    assert!(out.contains("approval_decided   approve: granted"), "{out}");
    assert!(out.contains("isolate: authorized for"), "{out}");
    assert!(
        out.contains("run_finished       finished: succeeded"),
        "{out}"
    );
    // No secret from the demo's secret files reached the output.
    assert!(!r.all_output().contains("demo-falcon-secret"));
    // Its journal is keyed, with the key outside the data dir, and verifies.
    assert!(out.contains("journal: signed:"), "{out}");
    assert!(out.contains("trust starts at checkpoint 1"), "{out}");
    let key = std::fs::read_to_string(dir.join("secrets/journal.key")).unwrap();
    assert!(!r.all_output().contains(key.trim()));
    assert!(dir.join("data/journal").is_dir());
    let r = s.soar(
        &[
            "--config",
            dir.join("soar.yaml").to_str().unwrap(),
            "--data-dir",
            dir.join("data").to_str().unwrap(),
            "journal",
            "verify",
            "--all",
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
}

#[test]
fn other_branches_keep_running_while_a_gate_waits() {
    let lab = Lab::new("");
    // The independent branch is slow: it finishes after the gate has asked.
    lab.server.inject(sim::Fault {
        delay_ms: 800,
        ..sim::Fault::status("/api/v1/users/", 0, 1)
    });
    let text = CONTAIN.replace("MIN", "1").replace("TIMEOUT", "10m")
        + "  - id: profile\n    uses: identity.get_user\n    with: { user_id: \"00u1abcd2EFGH3ijk4l5\" }\n";
    lab.s.write("pb.yaml", &text);
    let (run, report) = lab.start("dave", host_alert());
    assert_eq!(report["status"], "waiting_approval", "{report}");
    assert_eq!(report["steps"]["profile"]["status"], "succeeded");
    let t = types(&lab.journal(&run));
    let asked = t.iter().position(|x| x == "approval_requested").unwrap();
    let last_finish = t.iter().rposition(|x| x == "step_finished").unwrap();
    assert!(asked < last_finish, "{t:?}");

    // The token may come from a file instead of SOAR_TOKEN.
    let file = lab.s.write("bob.token", &format!("{}\n", token("bob")));
    let r = lab.soar(
        &[
            "approve",
            &run,
            "approve",
            "--as",
            "bob",
            "--token-file",
            file.to_str().unwrap(),
        ],
        &[("SOAR_TOKEN", "ignored-when-a-file-is-given")],
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(lab.destructive_requests().len(), 1);
}

#[test]
fn an_operator_command_waits_for_a_process_holding_the_journal() {
    if soar_e2e::lab::on_cluster() {
        // sled's one-process lock; the cluster journal has none to wait for.
        eprintln!("sled only: skipped on the cluster journal");
        return;
    }
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    lab.s.write("alert.json", &host_alert().to_string());
    let args = ["run", "pb.yaml", "--input", "alert.json", "--as", "dave"];
    let holder = lab.frozen(&args, 2, &[]);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| lab.soar(&["pending", "--json"], &[]));
        std::thread::sleep(Duration::from_millis(1000));
        kill(holder);
        let r = waiting.join().unwrap();
        assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
        assert!(started.elapsed() >= Duration::from_millis(1000));
    });
}

#[test]
fn the_blast_radius_counts_targets_across_steps_of_one_run() {
    let lab = Lab::new("blast_radius:\n  blocklist.block_ip: { max_targets: 1 }\n");
    lab.s.write(
        "pb.yaml",
        r#"name: two
version: "1"
owner: soc
inputs:
  a: { type: string }
  b: { type: string }
steps:
  - id: first
    uses: blocklist.block_ip
    auto_approve: "true"
    with: { ip: "{{ inputs.a }}" }
  - id: second
    uses: blocklist.block_ip
    auto_approve: "true"
    with: { ip: "{{ inputs.b }}" }
"#,
    );
    let (_, report) = lab.start("dave", json!({"a": "198.51.100.1", "b": "198.51.100.2"}));
    assert_eq!(report["status"], "failed", "{report}");
    let statuses = [
        report["steps"]["first"]["status"].clone(),
        report["steps"]["second"]["status"].clone(),
    ];
    assert!(statuses.contains(&json!("blocked")), "{report}");
    assert!(statuses.contains(&json!("succeeded")), "{report}");
    let posts = lab
        .destructive_requests()
        .iter()
        .filter(|r| r.url.path().contains("access_rules"))
        .count();
    assert_eq!(posts, 1, "one target allowed per run, not one per step");
}

#[test]
fn cancelling_a_run_another_process_drives_lets_in_flight_steps_finish_and_starts_nothing_more() {
    use std::io::{BufRead, BufReader};
    let lab = Lab::new("");
    lab.server.inject(sim::Fault {
        delay_ms: 8_000,
        ..sim::Fault::status("/api/v1/users/", 0, 1)
    });
    lab.s.write(
        "pb.yaml",
        r##"name: slow
version: "1"
owner: soc
inputs: {}
steps:
  - id: slow
    uses: identity.get_user
    timeout: 20s
    with: { user_id: "00u1abcd2EFGH3ijk4l5" }
  - id: after
    needs: [slow]
    uses: chatops.notify
    with: { channel: "#soc-alerts", text: "should never be sent" }
"##,
    );
    lab.s.write("alert.json", "{}");
    let mut runner = std::process::Command::new(soar_e2e::soar_bin())
        .args(["run", "pb.yaml", "--input", "alert.json", "--as", "dave"])
        .current_dir(lab.s.path())
        .envs(lab.env())
        .env("SOAR_TOKEN", token("dave"))
        .env("SOAR_DATA_DIR", lab.s.path().join(".soar"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The progress lines name the run: "[RUN_ID] started   slow".
    let mut progress = BufReader::new(runner.stderr.take().unwrap()).lines();
    let run = loop {
        let line = progress.next().expect("progress line").unwrap();
        if let Some(rest) = line.strip_prefix('[') {
            break rest.split(']').next().unwrap().to_string();
        }
    };
    // The slow step is at the vendor and the run holds the journal.
    let r = lab.soar(
        &["cancel", &run, "--as", "bob", "--reason", "false positive"],
        &[("SOAR_TOKEN", token("bob"))],
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("requested"), "{}", r.stdout());
    let status = runner.wait().unwrap();
    assert_eq!(status.code(), Some(1), "a cancelled run exits 1");
    let report = lab.status(&run);
    assert_eq!(report["status"], "cancelled", "{report}");
    assert_eq!(report["steps"]["slow"]["status"], "succeeded");
    let t = types(&lab.journal(&run));
    assert!(t.contains(&"run_cancelled".to_string()), "{t:?}");
    assert!(
        !lab.requests()
            .iter()
            .any(|r| r.url.path().starts_with("/api/chat")),
        "nothing started after the cancel"
    );
    // A forged token cannot ask either.
    let r = lab.soar(
        &["cancel", &run, "--as", "bob", "--reason", "x"],
        &[("SOAR_TOKEN", "forged")],
    );
    assert_eq!(r.code(), 4);
}

#[test]
fn a_changed_plugin_config_voids_the_approval() {
    let lab = Lab::new("");
    lab.playbook(1, "10m");
    let run = paused_at_gate(&lab, "dave");
    // The operator points edr elsewhere (another tenant, say) after the ask.
    let path = lab.s.path().join("soar.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    let edr_base = format!(
        "config: {{ base_url: \"{}\" }}\n    dry_run_allow",
        lab.server.uri()
    );
    assert!(config.contains(&edr_base));
    let moved = config.replace(
        &edr_base,
        &format!(
            "config: {{ base_url: \"{}/\" }}\n    dry_run_allow",
            lab.server.uri()
        ),
    );
    std::fs::write(&path, moved).unwrap();
    let r = lab.vote("approve", &run, "bob", token("bob"), "ok");
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let isolate = &r.json()["steps"]["isolate"];
    assert_eq!(isolate["status"], "blocked");
    assert_eq!(isolate["error"]["rule"], "approval_void");
    assert!(isolate["error"]["message"]
        .as_str()
        .unwrap()
        .contains("config"));
    assert!(lab.destructive_requests().is_empty());
}

#[test]
fn a_destructive_5xx_is_never_retried_blindly() {
    // The vendor answers 503: it may or may not have reset the password.
    let lab = Lab::new("");
    lab.server.inject(sim::Fault::status(
        &format!(
            "/api/v1/users/{}/lifecycle/reset_password",
            sim::OKTA_USER_ID
        ),
        503,
        1,
    ));
    let text = RESET.replace(
        "    auto_approve: \"true\"\n",
        "    auto_approve: \"true\"\n    retry: { max_attempts: 3, initial_delay: 100ms }\n",
    );
    lab.s.write("pb.yaml", &text);
    lab.s.write(
        "alert.json",
        &json!({"user": sim::OKTA_USER_ID}).to_string(),
    );
    let r = lab.soar(
        &[
            "run",
            "pb.yaml",
            "--input",
            "alert.json",
            "--as",
            "dave",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code(), 3, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["status"], "in_doubt", "{report}");
    assert_eq!(resets(&lab), 1, "no blind retry of a non-idempotent action");
}

#[test]
fn an_upstream_failure_two_steps_up_still_blocks() {
    let lab = Lab::new("");
    lab.s.write(
        "pb.yaml",
        r#"name: far
version: "1"
owner: soc
inputs:
  user: { type: string }
steps:
  - id: lookup
    uses: identity.get_user
    on_error: continue
    with: { user_id: "no-such-user" }
  - id: middle
    needs: [lookup]
    uses: identity.get_user
    with: { user_id: "{{ inputs.user }}" }
  - id: suspend
    needs: [middle]
    uses: identity.suspend_user
    auto_approve: "true"
    with: { user_id: "{{ steps.lookup.output.id if steps.lookup.output else inputs.user }}" }
"#,
    );
    let (_, report) = lab.start("dave", json!({"user": sim::OKTA_USER_ID}));
    assert_eq!(report["steps"]["middle"]["status"], "succeeded", "{report}");
    let suspend = &report["steps"]["suspend"];
    assert_eq!(suspend["status"], "blocked", "{report}");
    assert_eq!(suspend["error"]["rule"], "upstream_not_succeeded");
    assert!(lab.destructive_requests().is_empty());
}
