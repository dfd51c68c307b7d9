//! The shipped playbooks end to end: `playbooks/*.yaml` on the sample alerts
//! of `examples/alerts/`, run by the real `soar` binary and connectors
//! against the loopback vendor simulator. Each malicious alert must stop at
//! its approval with nothing destructive sent, and after the approval send
//! exactly the expected destructive requests; a benign alert must finish
//! without asking anyone or changing anything.

use serde_json::{json, Value};
use soar_e2e::lab::{token, Lab};
use soar_e2e::tamper::Tamper;
use soar_e2e::{sim, Run};
use std::path::PathBuf;

/// Who starts the runs (not an approver: four-eyes holds).
const ANALYST: &str = "dave";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A shipped playbook, by file stem.
fn playbook(name: &str) -> String {
    root()
        .join("playbooks")
        .join(format!("{name}.yaml"))
        .display()
        .to_string()
}

/// A shipped sample alert, by file stem.
fn alert(name: &str) -> String {
    root()
        .join("examples/alerts")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

/// What these tests add to the lab: the shipped playbooks and what the
/// case and chat vendors received.
trait Shipped {
    fn run(&self, name: &str, alert_file: &str) -> (i32, Value);
    fn paused(&self, name: &str, alert_file: &str) -> String;
    fn vote(&self, verb: &str, run: &str, who: &str, reason: &str) -> Run;
    fn approve(&self, run: &str) -> Value;
    fn pending(&self) -> Vec<Value>;
    fn destructive(&self) -> Vec<String>;
    fn posted(&self, want: impl Fn(&str) -> bool) -> Vec<Value>;
    fn slack(&self) -> Vec<Value>;
    fn cases(&self) -> Vec<Value>;
    fn comments(&self) -> Vec<Value>;
    fn observables(&self) -> Vec<Value>;
    fn call(&self, plugin: &str, action: &str, input: Value) -> Value;
    fn journal_types(&self, run: &str) -> Vec<String>;
}

impl Shipped for Lab {
    /// `soar run PLAYBOOK --input ALERT` as the analyst; the exit code and report.
    fn run(&self, name: &str, alert_file: &str) -> (i32, Value) {
        let r = self.soar(
            &[
                "run",
                &playbook(name),
                "--input",
                alert_file,
                "--as",
                ANALYST,
                "--json",
            ],
            &[],
        );
        (r.code(), r.json())
    }

    /// Runs to the approval and checks that nothing destructive happened yet.
    fn paused(&self, name: &str, alert_file: &str) -> String {
        let (code, report) = self.run(name, alert_file);
        assert_eq!(code, 3, "{report:#}");
        assert_eq!(report["status"], "waiting_approval", "{report:#}");
        assert_eq!(report["steps"]["approve"]["status"], "waiting_approval");
        assert_eq!(self.destructive(), Vec::<String>::new());
        report["run_id"].as_str().unwrap().to_string()
    }

    /// `soar approve|deny RUN approve --as WHO --reason ...` with WHO's token.
    fn vote(&self, verb: &str, run: &str, who: &str, reason: &str) -> Run {
        self.soar(
            &[
                verb, run, "approve", "--as", who, "--reason", reason, "--json",
            ],
            &[("SOAR_TOKEN", token(who))],
        )
    }

    /// Approves as alice; the continued run must succeed.
    fn approve(&self, run: &str) -> Value {
        let r = self.vote("approve", run, "alice", "checked the evidence");
        assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
        let report = r.json();
        assert_eq!(report["status"], "succeeded", "{report:#}");
        assert_eq!(report["steps"]["approve"]["status"], "succeeded");
        report
    }

    /// The one approval waiting, as `soar pending --json` shows it.
    fn pending(&self) -> Vec<Value> {
        let r = self.soar(&["pending", "--json"], &[]);
        assert_eq!(r.code(), 0, "{}", r.stderr());
        r.json()["pending"].as_array().unwrap().clone()
    }

    /// Every request that changed the world at a vendor, as `METHOD path?query`.
    fn destructive(&self) -> Vec<String> {
        self.destructive_requests()
            .iter()
            .map(|r| {
                let query = r.url.query().map(|q| format!("?{q}")).unwrap_or_default();
                format!("{} {}{query}", r.method, r.url.path())
            })
            .collect()
    }

    /// JSON bodies of the POSTs whose path satisfies `want`.
    fn posted(&self, want: impl Fn(&str) -> bool) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.method.as_str() == "POST" && want(r.url.path()))
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    /// Slack messages posted.
    fn slack(&self) -> Vec<Value> {
        self.posted(|p| p == "/api/chat.postMessage")
    }

    /// TheHive cases created.
    fn cases(&self) -> Vec<Value> {
        self.posted(|p| p == "/api/v1/case")
    }

    /// TheHive comments added.
    fn comments(&self) -> Vec<Value> {
        self.posted(|p| p.starts_with("/api/v1/case/") && p.ends_with("/comment"))
    }

    /// TheHive observables added.
    fn observables(&self) -> Vec<Value> {
        self.posted(|p| p.starts_with("/api/v1/case/") && p.ends_with("/observable"))
    }

    /// A connector's own answer, straight from the simulator (`soar plugins call`).
    fn call(&self, plugin: &str, action: &str, input: Value) -> Value {
        let input = input.to_string();
        let r = self.soar(
            &[
                "plugins", "call", plugin, action, "--input", &input, "--json",
            ],
            &[],
        );
        assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
        r.json()["output"].clone()
    }

    fn journal_types(&self, run: &str) -> Vec<String> {
        self.journal(run)
            .iter()
            .map(|record| text(&record["type"]).to_string())
            .collect()
    }
}

fn status(report: &Value, step: &str) -> String {
    report["steps"][step]["status"]
        .as_str()
        .unwrap_or("(absent)")
        .to_string()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn every_shipped_playbook_validates_against_the_six_connectors() {
    let lab = Lab::new("");
    let files: Vec<String> = [
        "malware-enrichment",
        "malware-containment",
        "credential-abuse",
        "phishing-iocs",
    ]
    .iter()
    .map(|n| playbook(n))
    .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let r = lab.soar(&args, &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("4 playbook(s) valid"), "{}", r.stdout());
}

// ---- malware-containment -------------------------------------------------

#[test]
fn malware_containment_isolates_the_host_only_after_approval() {
    let lab = Lab::new("");
    let run = lab.paused("malware-containment", &alert("edr-malware-critical-host"));
    // Enrichment and the case come first; nothing is announced before the decision.
    assert_eq!(lab.cases().len(), 1);
    assert_eq!(lab.cases()[0]["severity"], 3);
    assert!(lab.slack().is_empty());

    // The approver sees the evidence and exactly what would be contained.
    let pending = lab.pending();
    assert_eq!(pending.len(), 1, "{pending:#?}");
    let handoff = &pending[0]["handoff"];
    assert!(
        text(&handoff["summary"]).contains("FIN-WS-042"),
        "{handoff:#}"
    );
    assert!(
        text(&handoff["why"]).contains("61 malicious"),
        "{handoff:#}"
    );
    assert!(
        text(&handoff["affected"]).contains("platform Windows"),
        "{handoff:#}"
    );
    assert!(
        text(&handoff["affected"]).contains("criticality high"),
        "{handoff:#}"
    );
    assert!(!text(&handoff["uncertainties"]).is_empty());
    assert_eq!(pending[0]["covers"][0]["targets"], json!([sim::HOST_ID]));
    assert_eq!(pending[0]["plan"][0]["plan"]["action"], "contain");

    let report = lab.approve(&run);
    assert_eq!(status(&report, "isolate"), "succeeded");
    assert_eq!(
        lab.destructive(),
        ["POST /devices/entities/devices-actions/v2?action_name=contain"]
    );
    let host = lab.call("edr", "get_host", json!({"host_id": sim::HOST_ID}));
    assert_eq!(host["contained"], true, "{host:#}");
    // Recorded on the case, announced once.
    assert_eq!(lab.cases().len(), 1);
    let comments = lab.comments();
    assert_eq!(comments.len(), 1);
    assert!(
        text(&comments[0]["message"]).contains("approval by alice"),
        "{comments:#?}"
    );
    let slack = lab.slack();
    assert_eq!(slack.len(), 1, "{slack:#?}");
    assert_eq!(slack[0]["channel"], sim::SLACK_CHANNEL);
    assert!(
        text(&slack[0]["text"]).contains("Contained FIN-WS-042"),
        "{slack:#?}"
    );
    // One join comments and announces whichever way it went.
    for joined in ["comment", "notify"] {
        assert_eq!(status(&report, joined), "succeeded", "{joined}");
    }
    assert_eq!(report["outputs"]["approval"], "granted");
    assert_eq!(report["outputs"]["contained"], true);
    assert_eq!(report["outputs"]["verdict"], "malicious");
}

#[test]
fn malware_containment_closes_an_unknown_file_without_asking_anyone() {
    let lab = Lab::new("");
    let (code, report) = lab.run("malware-containment", &alert("edr-unknown-file"));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(status(&report, "approve"), "skipped");
    assert_eq!(status(&report, "isolate"), "skipped");
    assert_eq!(status(&report, "comment"), "succeeded");
    assert_eq!(status(&report, "notify"), "succeeded");
    assert!(lab.pending().is_empty());
    let run = report["run_id"].as_str().unwrap();
    assert!(!lab
        .journal_types(run)
        .iter()
        .any(|t| t.contains("approval")));
    assert_eq!(lab.destructive(), Vec::<String>::new());
    // Still on record, at low severity, and announced as no-action.
    let cases = lab.cases();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0]["severity"], 1);
    assert!(
        text(&lab.comments()[0]["message"]).contains("no containment"),
        "{:#?}",
        lab.comments()
    );
    let slack = lab.slack();
    assert_eq!(slack.len(), 1);
    assert!(
        text(&slack[0]["text"]).contains("verdict unknown, no containment"),
        "{slack:#?}"
    );
    assert_eq!(report["outputs"]["approval"], "not asked");
    assert_eq!(report["outputs"]["contained"], false);
}

#[test]
fn a_denied_containment_leaves_the_host_alone_but_records_the_decision() {
    let lab = Lab::new("");
    let run = lab.paused("malware-containment", &alert("edr-malware-critical-host"));
    let r = lab.vote("deny", &run, "bob", "user is presenting to the board");
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["status"], "succeeded", "{report:#}");
    assert_eq!(report["steps"]["approve"]["error"]["kind"], "denied");
    assert_eq!(status(&report, "isolate"), "skipped");
    assert_eq!(lab.destructive(), Vec::<String>::new());
    let host = lab.call("edr", "get_host", json!({"host_id": sim::HOST_ID}));
    assert_eq!(host["contained"], false);
    let comments = lab.comments();
    assert_eq!(comments.len(), 1);
    assert!(
        text(&comments[0]["message"]).contains("bob voted deny: user is presenting to the board"),
        "{comments:#?}"
    );
    let slack = lab.slack();
    assert_eq!(slack.len(), 1);
    assert!(
        text(&slack[0]["text"]).contains("NOT contained (denied)"),
        "{slack:#?}"
    );
    assert_eq!(report["outputs"]["approval"], "denied");
    assert_eq!(report["outputs"]["contained"], false);
}

#[test]
fn the_original_edr_alert_also_drives_malware_containment() {
    // `edr-malware.json` (no criticality) serves both malware playbooks.
    let lab = Lab::new("");
    lab.paused("malware-containment", &alert("edr-malware"));
    let handoff = &lab.pending()[0]["handoff"];
    assert!(
        text(&handoff["uncertainties"]).contains("criticality is not known"),
        "{handoff:#}"
    );
}

// ---- credential-abuse ----------------------------------------------------

#[test]
fn credential_abuse_revokes_sessions_and_resets_the_password_after_approval() {
    let lab = Lab::new("");
    let run = lab.paused("credential-abuse", &alert("idp-impossible-travel"));
    assert!(lab.cases().is_empty());
    assert!(lab.slack().is_empty());
    let pending = lab.pending();
    let handoff = &pending[0]["handoff"];
    assert!(
        text(&handoff["summary"]).contains(sim::OKTA_USER_LOGIN),
        "{handoff:#}"
    );
    assert!(
        text(&handoff["why"]).contains("203.0.113.66 malicious"),
        "{handoff:#}"
    );
    let mut covered: Vec<&str> = pending[0]["covers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_str().unwrap())
        .collect();
    covered.sort();
    assert_eq!(covered, ["reset", "revoke"], "{pending:#?}");

    let report = lab.approve(&run);
    let user = sim::OKTA_USER_ID;
    assert_eq!(
        lab.destructive(),
        [
            format!("DELETE /api/v1/users/{user}/sessions?oauthTokens=true"),
            format!("POST /api/v1/users/{user}/lifecycle/reset_password?sendEmail=true"),
        ]
    );
    // Left in RECOVERY by the reset, never suspended.
    let okta = lab.call(
        "identity",
        "get_user",
        json!({"user_id": sim::OKTA_USER_LOGIN}),
    );
    assert_eq!(okta["status"], "RECOVERY", "{okta:#}");
    let cases = lab.cases();
    assert_eq!(cases.len(), 1);
    assert!(
        text(&cases[0]["title"]).contains(sim::OKTA_USER_LOGIN),
        "{cases:#?}"
    );
    assert!(
        text(&cases[0]["description"]).contains("Approved by alice"),
        "{cases:#?}"
    );
    let slack = lab.slack();
    assert_eq!(slack.len(), 1, "{slack:#?}");
    assert!(
        text(&slack[0]["text"]).contains("sessions revoked and password reset"),
        "{slack:#?}"
    );
    assert_eq!(report["outputs"]["contained"], true);
    assert_eq!(report["outputs"]["user_status"], "RECOVERY");
    // The simulator starts with case #1.
    assert_eq!(report["outputs"]["case_number"], 2);
}

#[test]
fn an_mfa_fatigue_alert_rated_high_asks_even_for_an_unknown_ip() {
    let lab = Lab::new("");
    lab.paused("credential-abuse", &alert("idp-mfa-fatigue"));
    let handoff = &lab.pending()[0]["handoff"];
    assert!(
        text(&handoff["uncertainties"]).contains("no record of 198.51.100.23"),
        "{handoff:#}"
    );
}

#[test]
fn a_low_risk_travel_alert_from_a_clean_ip_is_only_announced() {
    let lab = Lab::new("");
    let (code, report) = lab.run("credential-abuse", &alert("idp-travel-benign"));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status(&report, "approve"), "skipped");
    assert_eq!(status(&report, "case"), "skipped");
    assert_eq!(status(&report, "notify"), "succeeded");
    assert!(lab.pending().is_empty());
    assert_eq!(lab.destructive(), Vec::<String>::new());
    assert!(lab.cases().is_empty());
    let slack = lab.slack();
    assert_eq!(slack.len(), 1);
    assert!(
        text(&slack[0]["text"]).contains("no containment (severity low, source IP clean)"),
        "{slack:#?}"
    );
}

// ---- phishing-iocs -------------------------------------------------------

#[test]
fn phishing_iocs_blocks_only_the_malicious_indicators_after_approval() {
    let lab = Lab::new("");
    let run = lab.paused("phishing-iocs", &alert("phishing-report"));
    // The case, its observables and the announcement come before the decision.
    assert_eq!(lab.cases().len(), 1);
    let observables = lab.observables();
    let mut seen: Vec<(String, String, bool)> = observables
        .iter()
        .map(|o| {
            (
                text(&o["dataType"]).to_string(),
                text(&o["data"]).to_string(),
                o["ioc"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    seen.sort();
    let o = |t: &str, d: &str, ioc| (t.to_string(), d.to_string(), ioc);
    assert_eq!(
        seen,
        [
            o("domain", "evil.example", true),
            o("domain", "example.com", false),
            o("ip", "203.0.113.66", true),
            o("ip", "8.8.8.8", false),
            o("url", "https://evil.example/invoice/4471/login", false),
            o("url", "https://example.com/privacy", false),
        ]
    );
    let slack = lab.slack();
    assert_eq!(slack.len(), 1);
    assert!(
        text(&slack[0]["text"]).contains("Malicious: 203.0.113.66, evil.example"),
        "{slack:#?}"
    );
    // The approver is asked about the malicious ones only.
    let pending = lab.pending();
    let affected = text(&pending[0]["handoff"]["affected"]);
    assert_eq!(
        affected, "IPs: 203.0.113.66. Domains: evil.example.",
        "{pending:#?}"
    );
    let mut targets: Vec<Value> = pending[0]["covers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["targets"].as_array().unwrap().clone())
        .collect();
    targets.sort_by_key(|t| t.to_string());
    assert_eq!(targets, [json!("203.0.113.66"), json!("evil.example")]);

    let report = lab.approve(&run);
    let account = format!("/client/v4/accounts/{}", sim::CLOUDFLARE_ACCOUNT_ID);
    let mut sent = lab.destructive();
    sent.sort();
    assert_eq!(
        sent,
        [
            format!(
                "PATCH {account}/gateway/lists/{}",
                sim::CLOUDFLARE_DOMAIN_LIST_ID
            ),
            format!("POST {account}/firewall/access_rules/rules"),
        ]
    );
    let rule = lab.posted(|p| p.ends_with("/access_rules/rules"));
    assert_eq!(rule[0]["configuration"]["value"], "203.0.113.66");
    assert_eq!(rule[0]["mode"], "block");
    let rule = lab.call("blocklist", "get_ip_rule", json!({"ip": "203.0.113.66"}));
    assert_eq!(rule["blocked"], true, "{rule:#}");
    let list_patch = lab
        .requests()
        .into_iter()
        .find(|r| r.method.as_str() == "PATCH")
        .unwrap();
    let patch: Value = serde_json::from_slice(&list_patch.body).unwrap();
    assert_eq!(patch["append"][0]["value"], "evil.example", "{patch:#}");
    // Each block recorded on the case and replied in the announcement's thread.
    assert_eq!(lab.cases().len(), 1);
    assert_eq!(lab.comments().len(), 2, "{:#?}", lab.comments());
    let slack = lab.slack();
    assert_eq!(slack.len(), 3, "{slack:#?}");
    let thread = report["steps"]["announce"]["output"]["ts"].clone();
    assert!(
        slack[1..].iter().all(|m| m["thread_ts"] == thread),
        "{slack:#?}"
    );
    assert_eq!(report["outputs"]["blocked_ips"], json!(["203.0.113.66"]));
    assert_eq!(
        report["outputs"]["blocked_domains"],
        json!(["evil.example"])
    );
}

#[test]
fn a_report_with_only_a_malicious_domain_blocks_it_and_touches_no_ip_rule() {
    let lab = Lab::new("");
    lab.s.write(
        "alert.json",
        &json!({
            "report_id": "phr-domains-only",
            "email": {"subject": "Reset your password", "from": "it@evil.example",
                      "domains": ["evil.example"], "ips": ["8.8.8.8"]}
        })
        .to_string(),
    );
    let file = lab.s.path().join("alert.json").display().to_string();
    let run = lab.paused("phishing-iocs", &file);
    let report = lab.approve(&run);
    assert_eq!(status(&report, "block_ips"), "skipped");
    assert_eq!(status(&report, "block_domains"), "succeeded");
    // One comment and one reply: the domain block's.
    assert_eq!(status(&report, "note"), "succeeded");
    assert_eq!(status(&report, "reply"), "succeeded");
    assert_eq!(
        report["steps"]["note"]["output"].as_array().map(Vec::len),
        Some(1)
    );
    let sent = lab.destructive();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("PATCH "), "{sent:?}");
}

#[test]
fn a_clean_report_is_recorded_and_announced_without_any_approval() {
    let lab = Lab::new("");
    let (code, report) = lab.run("phishing-iocs", &alert("phishing-report-clean"));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status(&report, "approve"), "skipped");
    assert!(lab.pending().is_empty());
    assert_eq!(lab.destructive(), Vec::<String>::new());
    assert_eq!(lab.cases().len(), 1);
    assert_eq!(lab.cases()[0]["severity"], 1);
    assert_eq!(lab.observables().len(), 3);
    assert!(lab.observables().iter().all(|o| o["ioc"] != true));
    let slack = lab.slack();
    assert_eq!(slack.len(), 1);
    assert!(
        text(&slack[0]["text"]).contains("Nothing malicious found"),
        "{slack:#?}"
    );
}

// ---- soar test ------------------------------------------------------------

/// The shipped test files pass against the shipped example config, as
/// `scripts/test.sh` runs them; and a report names every case.
#[test]
fn the_shipped_playbook_tests_pass() {
    let s = soar_e2e::Scratch::new();
    let plugins = soar_e2e::wasm("edr")
        .parent()
        .unwrap()
        .display()
        .to_string();
    let config = root().join("examples/soar.yaml").display().to_string();
    let junit = s.path().join("junit.xml");
    let dir = root().join("playbooks").display().to_string();
    let args = [
        "--config",
        &config,
        "test",
        &dir,
        "--junit",
        junit.to_str().unwrap(),
    ];
    let r = s.soar(&args, &[("SOAR_PLUGINS_DIR", &plugins)]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(
        r.stdout().contains(
            "test malware-containment::a-protected-domain-controller-is-never-isolated ... ok"
        ),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().contains(" passed, 0 failed"), "{}", r.stdout());
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert!(xml.matches("<testcase").count() >= 24, "{xml}");
}

/// A real run of each shipped playbook, recorded with `soar test record`,
/// passes as a test; the same case against the playbook with its decision
/// logic changed fails, and says where.
#[test]
fn a_recorded_run_of_each_shipped_playbook_passes_and_catches_a_changed_decision() {
    // (playbook, alert, approve, decision text, changed to)
    let shipped = [
        (
            "malware-containment",
            "edr-malware",
            true,
            "if: \"steps.hash.output.verdict == 'malicious' and",
            "if: \"steps.hash.output.verdict != 'malicious' and",
        ),
        (
            "credential-abuse",
            "idp-impossible-travel",
            true,
            "steps.user.output.status == 'ACTIVE'",
            "steps.user.output.status != 'ACTIVE'",
        ),
        (
            "phishing-iocs",
            "phishing-report",
            true,
            "for_each: \"{{ steps.ip_rep.output | selectattr('verdict', 'eq', 'malicious')",
            "for_each: \"{{ steps.ip_rep.output | selectattr('verdict', 'eq', 'clean')",
        ),
        (
            "malware-enrichment",
            "edr-malware",
            false,
            "if: \"steps.file.output.verdict == 'malicious'\"",
            "if: \"steps.file.output.verdict != 'malicious'\"",
        ),
    ];
    for (name, alert_file, gated, decision, changed) in shipped {
        // A lab each: `paused` checks that nothing destructive was sent yet.
        let lab = Lab::new("");
        let mutants = lab.s.path().join("changed");
        std::fs::create_dir_all(&mutants).unwrap();
        let run = if gated {
            let run = lab.paused(name, &alert(alert_file));
            let report = lab.approve(&run);
            assert_eq!(report["status"], "succeeded", "{name}: {report:#}");
            run
        } else {
            let (code, report) = lab.run(name, &alert(alert_file));
            assert_eq!(code, 0, "{name}: {report:#}");
            report["run_id"].as_str().unwrap().to_string()
        };
        let recorded = lab.s.path().join(format!("{name}.test.yaml"));
        let r = lab.soar(
            &[
                "test",
                "record",
                &run,
                "--name",
                "yesterday",
                "--out",
                recorded.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(r.code(), 0, "{name}: {}{}", r.stdout(), r.stderr());
        let r = lab.soar(&["test", recorded.to_str().unwrap()], &[]);
        assert_eq!(r.code(), 0, "{name}: {}{}", r.stdout(), r.stderr());
        assert!(
            r.stdout()
                .contains(&format!("test {name}::yesterday ... ok")),
            "{}",
            r.stdout()
        );

        // The same case, beside a copy of the playbook deciding otherwise.
        let text = std::fs::read_to_string(playbook(name)).unwrap();
        assert!(text.contains(decision), "{name}: the decision text moved");
        std::fs::write(
            mutants.join(format!("{name}.yaml")),
            text.replacen(decision, changed, 1),
        )
        .unwrap();
        let case = std::fs::read_to_string(&recorded).unwrap();
        let case: String = case
            .lines()
            .filter(|l| !l.starts_with("playbook:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let moved = mutants.join(format!("{name}.test.yaml"));
        std::fs::write(&moved, case).unwrap();
        let r = lab.soar(&["test", moved.to_str().unwrap(), "--json"], &[]);
        assert_eq!(r.code(), 1, "{name}: {}{}", r.stdout(), r.stderr());
        let report = r.json();
        assert_eq!(report["failed"], 1, "{name}: {report:#}");
        let case = &report["files"][0]["cases"][0];
        assert!(
            !case["mismatches"].as_array().unwrap().is_empty()
                || !case["problems"].as_array().unwrap().is_empty(),
            "{name}: {case:#}"
        );
    }
}

// ---- a keyed journal -------------------------------------------------------

#[test]
fn a_keyed_journal_catches_a_rechained_vote_and_a_deleted_run_that_the_chain_alone_misses() {
    let (lab, public) = Lab::keyed(9, "");
    let run = lab.paused("malware-containment", &alert("edr-malware"));
    assert_eq!(lab.approve(&run)["status"], "succeeded");
    let (code, other) = lab.run("malware-containment", &alert("edr-unknown-file"));
    assert_eq!(code, 0, "{other:#}");
    let other = other["run_id"].as_str().unwrap().to_string();
    let r = lab.soar(&["journal", "verify", "--all"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("journal: signed:"), "{}", r.stdout());

    let seq = {
        let t = Tamper::open(&lab.s.path().join(".soar"));
        t.delete_run(&other);
        t.rechain_vote(&run, "mallory")
    };
    // The unkeyed check alone: the edited run still chains, the deleted one
    // is simply gone.
    let r = lab.soar(&["journal", "verify", &run], &[]);
    assert!(r.stdout().contains(&format!("{run}: ok")), "{}", r.stdout());
    // The signed checkpoints: both reported, naming the run and the record.
    let r = lab.soar(&["journal", "verify", "--all"], &[]);
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let out = r.stdout();
    let rewritten = out
        .lines()
        .find(|l| l.contains(&format!("run {run}: rewritten")))
        .unwrap_or_else(|| panic!("{out}"));
    let range = rewritten
        .split("seq ")
        .nth(2)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let (from, to) = range.split_once("..=").unwrap();
    let (from, to): (u64, u64) = (from.parse().unwrap(), to.parse().unwrap());
    assert!(
        from <= seq && seq <= to,
        "vote at seq {seq}, reported {range}: {out}"
    );
    assert!(out.contains(&format!("run {other}: deleted")), "{out}");
    // No key material at all: a signed journal does not pass silently.
    lab.s.config(
        &std::fs::read_to_string(lab.s.path().join("soar.yaml"))
            .unwrap()
            .replace("  signing_key: { file: journal.key }\n", "")
            .replace(&format!("  public_keys: [\"{public}\"]\n"), ""),
    );
    let r = lab.soar(&["journal", "verify", "--all"], &[]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    assert!(
        r.stdout().contains("no public key was given"),
        "{}",
        r.stdout()
    );
}

#[test]
fn a_run_bundle_verifies_on_another_machine_and_fails_flipped_or_with_the_wrong_key() {
    use base64::Engine as _;
    let (lab, public) = Lab::keyed(11, "");
    let run = lab.paused("malware-containment", &alert("edr-malware"));
    assert_eq!(lab.approve(&run)["status"], "succeeded");
    let file = lab.s.path().join("evidence.json");
    let r = lab.soar(&["export", &run, "--out", file.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains(", signed to "), "{}", r.stdout());
    let bytes = std::fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    // No secret, in any encoding the bundle could carry it in.
    for secret in [
        sim::VT_API_KEY,
        sim::FALCON_CLIENT_SECRET,
        sim::OKTA_TOKEN,
        sim::CLOUDFLARE_TOKEN,
        sim::THEHIVE_API_KEY,
        sim::SLACK_BOT_TOKEN,
        token("alice"),
        &hex::encode([11u8; 32]),
    ] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(
            !text.contains(secret) && !text.contains(&b64),
            "a secret is in the bundle"
        );
    }
    let bundle: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(bundle["playbook"]["text"]
        .as_str()
        .unwrap()
        .contains("name: malware-containment"));
    assert!(
        bundle["plugins"]["edr.isolate_host"]["plugin_config_sha256"].is_string(),
        "{:#}",
        bundle["plugins"]
    );

    // Another machine: no config, no data dir.
    let elsewhere = soar_e2e::Scratch::new();
    let copy = elsewhere.write("evidence.json", &text);
    let copy = copy.to_str().unwrap();
    let r = elsewhere.soar(&["verify-bundle", copy, "--public-key", &public], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let r = elsewhere.soar(&["replay", "--bundle", copy, "--public-key", &public], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("bundle verified"), "{}", r.stdout());
    assert!(r.stdout().contains("all identical"), "{}", r.stdout());
    // Without a key, or with another one: refused.
    let r = elsewhere.soar(&["verify-bundle", copy], &[]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    assert!(
        r.stdout().contains("no public key was given"),
        "{}",
        r.stdout()
    );
    let other = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[12; 32])
            .verifying_key()
            .as_bytes(),
    );
    let r = elsewhere.soar(&["verify-bundle", copy, "--public-key", &other], &[]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    assert!(
        r.stdout().contains("not among the public keys given"),
        "{}",
        r.stdout()
    );
    // One byte changed: in a recorded value, in the playbook, anywhere.
    let at = text.find("FIN-WS-042").unwrap();
    let mut flipped = bytes.clone();
    flipped[at + 9] = b'3';
    let probes = [flipped, {
        let mut b = bytes.clone();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        b
    }];
    for (i, probe) in probes.iter().enumerate() {
        let p = elsewhere.path().join(format!("flipped-{i}.json"));
        std::fs::write(&p, probe).unwrap();
        let r = elsewhere.soar(
            &[
                "verify-bundle",
                p.to_str().unwrap(),
                "--public-key",
                &public,
            ],
            &[],
        );
        assert_eq!(r.code(), 1, "flip {i}: {}{}", r.stdout(), r.stderr());
    }
}

#[test]
fn journal_prune_follows_the_rules_leaves_signed_tombstones_and_keeps_a_waiting_run() {
    let (lab, _) = Lab::keyed(13, "  retention:\n    - { name: benign-now, playbook: malware-containment, status: [succeeded], keep: 0s }\n    - { name: failed-1y, status: [failed], keep: 365d }\n");
    let (code, benign) = lab.run("malware-containment", &alert("edr-unknown-file"));
    assert_eq!(code, 0, "{benign:#}");
    let benign = benign["run_id"].as_str().unwrap().to_string();
    let waiting = lab.paused("malware-containment", &alert("edr-malware"));
    let (code, other) = lab.run("malware-enrichment", &alert("edr-malware"));
    assert_eq!(code, 0, "{other:#}");
    let other = other["run_id"].as_str().unwrap().to_string();

    let r = lab.soar(&["journal", "prune", "--dry-run"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(
        r.stdout().contains(&format!(
            "would prune {benign} [malware-containment] succeeded"
        )),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout().contains("1 run(s) would prune"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        lab.soar(&["status", &benign], &[]).code(),
        0,
        "a dry run pruned"
    );

    let r = lab.soar(&["journal", "prune"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(
        r.stdout().contains(&format!("pruned {benign}")),
        "{}",
        r.stdout()
    );
    assert_ne!(lab.soar(&["status", &benign], &[]).code(), 0, "still there");
    for kept in [&waiting, &other] {
        assert_eq!(
            lab.soar(&["status", kept], &[]).code(),
            0,
            "{kept} was pruned"
        );
    }
    // Pruning is not deletion: the signed tombstone explains the absence.
    let r = lab.soar(&["journal", "verify", "--all"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("journal: signed:"), "{}", r.stdout());
}

// ---- export to the SIEM --------------------------------------------------

/// `soar siem export` SIGKILLed while the collector is slow to answer, then
/// run again: every journal record reached the collector (deduplicated by
/// its `Idempotency-Key`, as a collector honouring it does) and the file
/// exactly once, in seq order per run.
#[test]
fn a_siem_export_killed_mid_batch_delivers_every_record_once_in_order_after_restart() {
    use std::time::Duration;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let collector = rt.block_on(wiremock::MockServer::start());
    rt.block_on(
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_delay(Duration::from_millis(150)),
            )
            .mount(&collector),
    );
    let lab = Lab::new(&format!(
        "siem:\n  batch: 7\n  file: {{ path: siem/events.jsonl, rotate_bytes: 20000, keep: 50 }}\n  http: {{ url: \"{}/ingest\", max_attempts: 3 }}\n",
        collector.uri()
    ));
    let mut runs = Vec::new();
    for i in 0..12 {
        let alert = json!({
            "finding": {"uid": format!("ldt:siem:{i}")},
            "device": {"uid": sim::HOST_ID, "hostname": "FIN-WS-042"},
            "file": {"sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"},
        });
        let file = lab.s.write(&format!("a{i}.json"), &alert.to_string());
        let (code, report) = lab.run("malware-enrichment", file.to_str().unwrap());
        assert_eq!(code, 0, "{report:#}");
        runs.push(report["run_id"].as_str().unwrap().to_string());
    }
    // Every record the journal holds, per run.
    let mut expected = std::collections::BTreeMap::new();
    for run in &runs {
        let r = lab.soar(&["journal", run, "--json"], &[]);
        let n = r.stdout().lines().filter(|l| !l.trim().is_empty()).count() as u64;
        assert!(n >= 10, "{}", r.stdout());
        expected.insert(run.clone(), n);
    }
    let total: u64 = expected.values().sum();

    let mut child = std::process::Command::new(soar_e2e::soar_bin())
        .args(["siem", "export"])
        .current_dir(lab.s.path())
        .env_remove("SOAR_CONFIG")
        .env("SOAR_DATA_DIR", lab.s.path().join(".soar"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().unwrap(); // SIGKILL, mid-batch: the collector is still answering
    child.wait().unwrap();
    let got_before = rt.block_on(collector.received_requests()).unwrap().len();
    assert!(
        got_before > 0 && (got_before as u64) < total.div_ceil(7),
        "killed too late or too early: {got_before} batches"
    );

    let r = lab.soar(&["siem", "export"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());

    // The collector, deduplicating by Idempotency-Key.
    let mut seen_keys = std::collections::BTreeSet::new();
    let mut http: Vec<(String, u64)> = Vec::new();
    let mut resent = 0;
    for req in rt.block_on(collector.received_requests()).unwrap() {
        let key = req
            .headers
            .get("idempotency-key")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if !seen_keys.insert(key) {
            resent += 1;
            continue;
        }
        for line in String::from_utf8(req.body.clone()).unwrap().lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            assert_eq!(e["class_name"], "Base Event");
            let s = &e["unmapped"]["soar"];
            http.push((
                s["run"].as_str().unwrap().to_string(),
                s["seq"].as_u64().unwrap(),
            ));
        }
    }
    assert!(resent <= 1, "{resent} batches re-sent");
    // The file, as written (rotated files oldest first, then the current).
    let dir = lab.s.path().join("siem");
    let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let n = p
                .extension()
                .and_then(|x| x.to_str())
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            (n, p)
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    assert!(files.len() > 1, "the file never rotated: {files:?}");
    let mut file_events = Vec::new();
    for (_, p) in &files {
        for line in std::fs::read_to_string(p).unwrap().lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            let s = &e["unmapped"]["soar"];
            file_events.push((
                s["run"].as_str().unwrap().to_string(),
                s["seq"].as_u64().unwrap(),
            ));
        }
    }
    for (name, got) in [("collector", &http), ("file", &file_events)] {
        assert_eq!(
            got.len() as u64,
            total,
            "{name}: {} events for {total} records",
            got.len()
        );
        for (run, n) in &expected {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|(r, _)| r == run)
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(
                seqs,
                (1..=*n).collect::<Vec<_>>(),
                "{name}: run {run} out of order or incomplete"
            );
        }
    }
}

/// The attack the chain of checkpoints alone cannot see: the newest
/// checkpoint deleted and the run rolled back to what the one before it
/// signed. The SIEM export's anchor (a copy outside the data dir) does.
#[test]
fn an_anchor_in_the_siem_catches_deleted_checkpoints_with_a_matching_rollback() {
    let (lab, _) = Lab::keyed(14, "siem:\n  file: { path: siem/events.jsonl }\n");
    let (code, report) = lab.run("malware-enrichment", &alert("edr-malware"));
    assert_eq!(code, 0, "{report:#}");
    let run = report["run_id"].as_str().unwrap().to_string();
    let r = lab.soar(&["siem", "export"], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let events = std::fs::read_to_string(lab.s.path().join("siem/events.jsonl")).unwrap();
    let anchor = events
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["activity_name"] == "journal_checkpoint")
        .expect("an anchor event");
    let anchor = format!(
        "{}:{}",
        anchor["unmapped"]["soar"]["checkpoint"],
        anchor["unmapped"]["soar"]["checkpoint_hash"]
            .as_str()
            .unwrap()
    );
    let r = lab.soar(&["journal", "verify", "--all", "--anchor", &anchor], &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());

    // Delete the newest checkpoint, and roll the run back to the head the
    // one before it signed: consistent, so the checkpoints alone pass.
    {
        let db = sled::open(lab.s.path().join(".soar/journal")).unwrap();
        let cps = db.open_tree("checkpoints").unwrap();
        let (last_key, _) = cps.last().unwrap().unwrap();
        cps.remove(&last_key).unwrap();
        let mut signed = None;
        for item in cps.iter() {
            let (_, v) = item.unwrap();
            let cp: Value = serde_json::from_slice(&v).unwrap();
            if let Some(h) = cp["heads"].get(&run) {
                signed = Some((h[0].as_u64().unwrap(), h[1].as_str().unwrap().to_string()));
            }
        }
        let (seq, hash) = signed.expect("an older checkpoint signed the run");
        let records = db.open_tree("records").unwrap();
        let mut prefix = run.as_bytes().to_vec();
        prefix.push(0);
        for item in records.scan_prefix(&prefix) {
            let (k, v) = item.unwrap();
            let rec: Value = serde_json::from_slice(&v).unwrap();
            if rec["seq"].as_u64().unwrap() > seq {
                records.remove(k).unwrap();
            }
        }
        let head = json!({"seq": seq, "hash": hash});
        db.open_tree("heads")
            .unwrap()
            .insert(run.as_bytes(), serde_json::to_vec(&head).unwrap())
            .unwrap();
        // The rolled-back run looks unfinished: a careful attacker lists it
        // in the unfinished-run index too (verify names it otherwise).
        db.open_tree("live")
            .unwrap()
            .insert(run.as_bytes(), &[])
            .unwrap();
        db.flush().unwrap();
    }
    let r = lab.soar(&["journal", "verify", "--all"], &[]);
    assert_eq!(
        r.code(),
        0,
        "the rollback is consistent with the checkpoints left: {}",
        r.stdout()
    );
    let r = lab.soar(&["journal", "verify", "--all", "--anchor", &anchor], &[]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    assert!(
        r.stdout()
            .contains("kept outside, is gone from the journal"),
        "{}",
        r.stdout()
    );
}
