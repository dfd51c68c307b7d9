//! The state layer end to end: runs count one key atomically (also across
//! SIGKILL and resume), entries expire across restarts, decisions replay
//! from journaled reads after the tables changed, operators change tables
//! with a proven identity and a reason, and bad input is refused at its place.

// The console tests' browser driver; this file uses only part of it.
#[allow(dead_code)]
mod browser;

use serde_json::{json, Value};
use soar_e2e::lab::{kill, token, Lab};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tables and playbooks every test here uses.
const STATE: &str = r#"state:
  tables:
    counts: { key: name }
    maintenance:
      key: hostname
      ttl: 12h
      schema: { type: object, required: [ticket], properties: { ticket: { type: string } } }
      writers: [soc-lead]
    assets:
      key: hostname
      schema: { type: object, required: [criticality], properties: { criticality: { enum: [low, medium, high, critical] }, owner: { type: string } } }
      writers: [soc-lead]
"#;

const COUNTER: &str = r#"name: counter
version: "1"
inputs:
  n: { type: list, from: "{{ alert.n }}" }
steps:
  - id: count
    uses: state.incr
    for_each: "{{ inputs.n }}"
    with: { table: counts, key: hits, window: 1h }
"#;

const GUARDED: &str = r#"name: guarded
version: "1"
inputs:
  host: { type: string, from: "{{ alert.host }}" }
steps:
  - id: maint
    uses: state.suppress
    with: { table: maintenance, key: "{{ inputs.host }}", rule: host in a maintenance window }
  - id: asset
    needs: [maint]
    uses: state.get
    with: { table: assets, key: "{{ inputs.host }}" }
  - id: gate
    needs: [asset]
    approval:
      approvers: [soc-lead]
      min_approvals_if:
        - when: "steps.asset.output.found and steps.asset.output.value.criticality == 'critical'"
          min_approvals: 2
"#;

fn lab() -> Lab {
    let lab = Lab::new(STATE);
    lab.s.write("counter.yaml", COUNTER);
    lab.s.write("guarded.yaml", GUARDED);
    lab
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `soar state ARGS` as `who` (their token in SOAR_TOKEN).
fn state_as(lab: &Lab, who: &str, args: &[&str]) -> soar_e2e::Run {
    let mut all = vec!["state"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--as", who]);
    lab.soar(&all, &[("SOAR_TOKEN", token(who))])
}

fn state(lab: &Lab, args: &[&str]) -> soar_e2e::Run {
    let mut all = vec!["state"];
    all.extend_from_slice(args);
    lab.soar(&all, &[])
}

fn run_alert(lab: &Lab, playbook: &str, alert: &Value) -> Value {
    lab.s.write("alert.json", &alert.to_string());
    let r = lab.soar(
        &[
            "run",
            playbook,
            "--input",
            "alert.json",
            "--json",
            "--as",
            "alice",
        ],
        &[],
    );
    assert!(matches!(r.code(), 0 | 1 | 3), "{}", r.all_output());
    r.json()
}

#[test]
fn a_run_killed_mid_increment_and_resumed_never_counts_twice() {
    let lab = lab();
    let items: Vec<u32> = (0..100).collect();
    lab.s
        .write("alert.json", &json!({ "n": items }).to_string());
    // Killed at its 3rd append: run_started, step_started, the first
    // attempt_started are durable; the increment is applied in the store,
    // its attempt_finished never written. Then at later points.
    let points = [3u64, 4, 40, 151];
    for n in points {
        let child = lab.frozen(
            &[
                "run",
                "counter.yaml",
                "--input",
                "alert.json",
                "--as",
                "alice",
            ],
            n,
            &[],
        );
        // sled flushes its log in the background every 500 ms: by now the
        // frozen run's increment is on disk, its record is not.
        std::thread::sleep(Duration::from_millis(1_200));
        kill(child);
    }
    let resumed = lab.soar(&["resume", "--all"], &[]);
    assert_eq!(resumed.code(), 0, "{}", resumed.all_output());
    let got = state(&lab, &["get", "counts", "hits"]);
    assert_eq!(got.code(), 0, "{}", got.all_output());
    let runs = lab.soar(&["runs", "--json"], &[]).json();
    let runs = runs["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), points.len(), "{runs:?}");
    assert_eq!(
        got.json()["value"]["count"],
        json!(100 * points.len()),
        "each run counted each item exactly once"
    );
    // The run killed between an increment and its record took the
    // reconcile path: repeated with the same key, answered from the store.
    let reinvoked = runs.iter().any(|r| {
        let id = r["run_id"].as_str().unwrap_or_default();
        lab.journal(id).iter().any(|rec| {
            rec["type"] == "reconciled" && rec["step"] == "count" && rec["decision"] == "reinvoke"
        })
    });
    assert!(reinvoked, "no run was caught mid-increment");
}

#[test]
fn entries_expire_exactly_also_across_a_restart() {
    let lab = lab();
    let put = state_as(
        &lab,
        "alice",
        &[
            "put",
            "maintenance",
            "ws-fin-042",
            r#"{"ticket": "CHG-4411"}"#,
            "--ttl",
            "1500ms",
            "--reason",
            "BIOS update",
        ],
    );
    assert_eq!(put.code(), 0, "{}", put.all_output());
    let expires = put.json()["written"]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    let forever = state_as(
        &lab,
        "alice",
        &["put", "assets", "ws-fin-042", r#"{"criticality": "high"}"#],
    );
    assert_eq!(forever.code(), 0, "{}", forever.all_output());
    assert_eq!(forever.json()["written"]["expires_at"], Value::Null);
    let expires_ms = humantime::parse_rfc3339(&expires)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Read by a new process each time (the data dir reopened).
    let got = state(&lab, &["get", "maintenance", "ws-fin-042"]).json();
    if now_ms() < expires_ms {
        assert_eq!(got["found"], true, "{got}");
    }
    while now_ms() <= expires_ms {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = state(&lab, &["get", "maintenance", "ws-fin-042"]).json();
    assert_eq!(got["found"], false, "expired, yet returned: {got}");
    let listed = state(&lab, &["list", "maintenance"]).json();
    assert_eq!(listed["count"], 0, "{listed}");
    let exported = state(&lab, &["export", "maintenance"]);
    assert_eq!(
        exported.stdout().trim(),
        "",
        "an expired entry was exported"
    );
    // A run sees it expired too: the alert is not suppressed.
    let report = run_alert(&lab, "guarded.yaml", &json!({"host": "ws-fin-042"}));
    assert_eq!(report["status"], "waiting_approval", "{report}");
    let still = state(&lab, &["get", "assets", "ws-fin-042"]).json();
    assert_eq!(still["value"]["criticality"], "high");
    // Who set what, when and why.
    let log = state(&lab, &["log", "maintenance", "ws-fin-042"]).json();
    let change = &log["changes"][0];
    assert_eq!(
        (change["op"].as_str(), change["by"].as_str()),
        (Some("put"), Some("alice")),
        "{log}"
    );
    assert_eq!(change["reason"], "BIOS update");
}

#[test]
fn replay_and_soar_test_reproduce_decisions_after_the_tables_changed() {
    let lab = lab();
    let put = |table: &str, key: &str, value: &str| {
        let r = state_as(&lab, "alice", &["put", table, key, value]);
        assert_eq!(r.code(), 0, "{}", r.all_output());
    };
    put("maintenance", "ws-1", r#"{"ticket": "CHG-1"}"#);
    put("assets", "ws-2", r#"{"criticality": "critical"}"#);
    let suppressed = run_alert(&lab, "guarded.yaml", &json!({"host": "ws-1"}));
    assert_eq!(suppressed["status"], "suppressed", "{suppressed}");
    let critical = run_alert(&lab, "guarded.yaml", &json!({"host": "ws-2"}));
    assert_eq!(critical["status"], "waiting_approval");
    assert_eq!(
        critical["pending_approvals"][0]["min_approvals"], 2,
        "{critical}"
    );
    let plain = run_alert(&lab, "guarded.yaml", &json!({"host": "ws-3"}));
    assert_eq!(plain["pending_approvals"][0]["min_approvals"], 1, "{plain}");
    // Why it was suppressed is in the journal: the rule and the entry.
    let sid = suppressed["run_id"].as_str().unwrap();
    let end = lab.journal(sid).into_iter().last().unwrap();
    let why = end["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("host in a maintenance window")
            && why.contains("ws-1")
            && why.contains("alice"),
        "{end}"
    );
    // The tables change...
    let del = state_as(&lab, "alice", &["delete", "maintenance", "ws-1"]);
    assert_eq!(del.code(), 0, "{}", del.all_output());
    put("assets", "ws-2", r#"{"criticality": "low"}"#);
    // ...and the decisions replay from what each run read.
    for id in [sid, critical["run_id"].as_str().unwrap()] {
        let r = lab.soar(&["replay", id], &[]);
        assert_eq!(r.code(), 0, "{}", r.all_output());
        assert!(r.stdout().contains("all identical"), "{}", r.stdout());
    }
    // A case recorded from the run carries what it read as `state:`.
    let rec = lab.soar(
        &[
            "test",
            "record",
            sid,
            "--name",
            "suppressed-ws-1",
            "--out",
            "guarded.test.yaml",
        ],
        &[],
    );
    assert_eq!(rec.code(), 0, "{}", rec.all_output());
    let case = std::fs::read_to_string(lab.s.path().join("guarded.test.yaml")).unwrap();
    assert!(
        case.contains("maintenance:") && case.contains("CHG-1"),
        "{case}"
    );
    let tested = lab.soar(&["test", "guarded.test.yaml"], &[]);
    assert_eq!(tested.code(), 0, "{}", tested.all_output());
}

#[test]
fn operators_change_tables_with_a_proven_identity_and_bad_input_is_refused() {
    let lab = lab();
    // Only the table's writers.
    let carol = state_as(
        &lab,
        "carol",
        &["put", "maintenance", "ws-1", r#"{"ticket": "X"}"#],
    );
    assert_eq!(carol.code(), 4, "{}", carol.all_output());
    assert!(carol.stderr().contains("soc-lead"), "{}", carol.stderr());
    let wrong_token = lab.soar(
        &[
            "state",
            "put",
            "maintenance",
            "ws-1",
            r#"{"ticket": "X"}"#,
            "--as",
            "alice",
        ],
        &[("SOAR_TOKEN", token("bob"))],
    );
    assert_eq!(wrong_token.code(), 4, "{}", wrong_token.all_output());
    // A key over the cap, a value over the cap, a value the schema refuses.
    let long = "k".repeat(257);
    let r = state_as(
        &lab,
        "alice",
        &["put", "maintenance", &long, r#"{"ticket": "X"}"#],
    );
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(r.stderr().contains("256"), "{}", r.stderr());
    let big = json!({"ticket": "X", "pad": "p".repeat(70_000)}).to_string();
    let r = state_as(&lab, "alice", &["put", "maintenance", "big", &big]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(r.stderr().contains("65536"), "{}", r.stderr());
    let r = state_as(
        &lab,
        "alice",
        &["put", "maintenance", "ws-1", r#"{"note": "no ticket"}"#],
    );
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(r.stderr().contains("ticket"), "{}", r.stderr());
    let r = state(&lab, &["get", "nope", "k"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(
        r.stderr().contains("tables: assets, counts, maintenance"),
        "{}",
        r.stderr()
    );
    // `counts` has no writers: only runs change it.
    let r = state_as(&lab, "alice", &["put", "counts", "hits", "1"]);
    assert_eq!(r.code(), 4, "{}", r.all_output());
    assert!(r.stderr().contains("only runs write it"), "{}", r.stderr());
    let r = state(&lab, &["list", "assets", "--limit", "5000"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(state(&lab, &["get", "maintenance", "ws-1"]).json()["found"] == false);
}

#[test]
fn a_csv_import_is_all_or_nothing_and_its_dry_run_writes_nothing() {
    let lab = lab();
    // An asset inventory as a CMDB exports it; line 4 has a criticality
    // the table's schema does not know.
    lab.s.write(
        "broken.csv",
        "hostname,criticality,owner\nws-fin-042,high,finance\ndc01,critical,it-ops\nws-hr-007,urgent,hr\nws-eng-100,low,engineering\n",
    );
    let r = state_as(&lab, "alice", &["import", "assets", "broken.csv"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(
        r.stderr().contains("line 4") && r.stderr().contains("criticality"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        state(&lab, &["list", "assets"]).json()["count"],
        0,
        "half imported"
    );
    lab.s.write(
        "assets.csv",
        "hostname,criticality,owner\nws-fin-042,high,finance\ndc01,critical,it-ops\nws-eng-100,low,engineering\n",
    );
    let dry = state_as(
        &lab,
        "alice",
        &["import", "assets", "assets.csv", "--dry-run"],
    );
    assert_eq!(dry.code(), 0, "{}", dry.all_output());
    assert_eq!(
        (dry.json()["add"].clone(), dry.json()["written"].clone()),
        (json!(3), json!(0))
    );
    assert_eq!(
        state(&lab, &["list", "assets"]).json()["count"],
        0,
        "a dry run wrote"
    );
    let done = state_as(
        &lab,
        "alice",
        &["import", "assets", "assets.csv", "--reason", "CMDB sync"],
    );
    assert_eq!(done.code(), 0, "{}", done.all_output());
    let dc = state(&lab, &["get", "assets", "dc01"]).json();
    assert_eq!(
        dc["value"],
        json!({"criticality": "critical", "owner": "it-ops"})
    );
    assert_eq!(dc["by"], "alice");
    // Export, then the same import again changes nothing.
    let exported = state(&lab, &["export", "assets"]);
    assert_eq!(
        exported.stdout().lines().count(),
        3,
        "{}",
        exported.stdout()
    );
    lab.s.write("assets.jsonl", &exported.stdout());
    let again = state_as(
        &lab,
        "alice",
        &["import", "assets", "assets.jsonl", "--dry-run"],
    );
    assert_eq!(again.json()["same"], 3, "{}", again.stdout());
    // JSON lines name the broken line too.
    lab.s.write(
        "bad.jsonl",
        "{\"key\": \"a\", \"value\": {\"criticality\": \"low\"}}\n\n{\"key\": \"b\"}\n",
    );
    let r = state_as(&lab, "alice", &["import", "assets", "bad.jsonl"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(r.stderr().contains("line 3"), "{}", r.stderr());
}

#[test]
fn validate_names_the_place_of_a_bad_state_step() {
    let lab = lab();
    lab.s.write(
        "bad.yaml",
        r#"name: bad
version: "1"
steps:
  - id: a
    uses: state.get
    with: { table: nope, key: x }
  - id: b
    uses: state.scan
    with: { table: assets, prefix: ws- }
  - id: c
    uses: state.put
    with: { table: "{{ alert.table }}", key: x, value: 1 }
  - id: d
    uses: state.frobnicate
    with: { table: assets }
"#,
    );
    let r = lab.soar(&["validate", "bad.yaml"], &[]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    let out = r.all_output();
    assert!(
        out.contains("bad.yaml:6:") && out.contains("no table `nope`"),
        "{out}"
    );
    assert!(
        out.contains("bad.yaml:9:") && out.contains("missing required field `limit`"),
        "{out}"
    );
    assert!(
        out.contains("bad.yaml:12:") && out.contains("not a template"),
        "{out}"
    );
    assert!(
        out.contains("bad.yaml:14:") && out.contains("no action `frobnicate`"),
        "{out}"
    );
    // And a run whose value is too large fails its step, nothing written.
    lab.s.write(
        "big.yaml",
        r#"name: big
version: "1"
inputs:
  pad: { type: string, from: "{{ alert.pad }}" }
steps:
  - id: put
    uses: state.put
    with: { table: counts, key: big, value: "{{ inputs.pad }}" }
"#,
    );
    let report = run_alert(&lab, "big.yaml", &json!({"pad": "p".repeat(70_000)}));
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(
        report["steps"]["put"]["error"]["kind"], "invalid_input",
        "{report}"
    );
    assert_eq!(
        state(&lab, &["get", "counts", "big"]).json()["found"],
        false
    );
}

/// The server side: the state tables behind `soar serve` and its API.
mod served {
    use super::*;
    use soar_e2e::serve::{Client, Server};
    use std::sync::{Arc, Barrier};

    const GROUPED: &str = r#"name: grouped
version: "1"
inputs:
  host: { type: string, from: "{{ alert.host }}" }
group:
  key: "{{ inputs.host | lower }}"
  window: WINDOW
steps:
  - id: gate
    approval:
      approvers: [soc-lead]
      timeout: 1h
outputs:
  grouped: "{{ run.grouped_count }}"
"#;

    fn served_lab() -> Lab {
        let lab = Lab::new(&format!(
            "{STATE}server:\n  listen: \"127.0.0.1:0\"\n  playbooks: [counter.yaml, grouped.yaml, grouped-short.yaml, grouped-dedup.yaml, grouped-chat.yaml]\n"
        ));
        lab.s.write("counter.yaml", COUNTER);
        lab.s
            .write("grouped.yaml", &GROUPED.replace("WINDOW", "1h"));
        lab.s.write(
            "grouped-chat.yaml",
            &GROUPED.replace("WINDOW", "1h").replace("name: grouped", "name: grouped-chat").replace(
                "      timeout: 1h\n",
                "      timeout: 1h\n      notify: { plugin: chatops, channel: \"#soc-alerts\" }\n",
            ),
        );
        lab.s.write(
            "grouped-dedup.yaml",
            &GROUPED.replace("WINDOW", "1h").replace(
                "name: grouped",
                "name: grouped-dedup\ndedup: \"{{ alert.id }}\"",
            ),
        );
        lab.s.write(
            "grouped-short.yaml",
            &GROUPED
                .replace("WINDOW", "1s")
                .replace("name: grouped", "name: grouped-short"),
        );
        lab
    }

    fn start(c: &Client, playbook: &str, alert: Value) -> (u16, Value) {
        let body = json!({"playbook": playbook, "alert": alert}).to_string();
        let auth = format!("Bearer {}", token("alice"));
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        // A transport error (the server was killed) is status 0.
        match c.try_send("POST", "/api/v1/runs", &headers, body.into_bytes()) {
            Ok(a) => (
                a.status,
                serde_json::from_str(&a.text).unwrap_or(Value::Null),
            ),
            Err(e) => (0, json!(e)),
        }
    }

    /// `n` starts of `playbook` with `alert`, all released at once; `answered`
    /// counts the answers as they come.
    fn burst_counted(
        server: &Server,
        playbook: &str,
        alert: &Value,
        n: usize,
        answered: &std::sync::atomic::AtomicUsize,
    ) -> Vec<(u16, Value)> {
        let gate = Arc::new(Barrier::new(n));
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let gate = gate.clone();
                    let c = Client::new(server);
                    s.spawn(move || {
                        gate.wait();
                        let got = start(&c, playbook, alert.clone());
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        got
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    fn burst(server: &Server, playbook: &str, alert: &Value, n: usize) -> Vec<(u16, Value)> {
        burst_counted(server, playbook, alert, n, &Default::default())
    }

    fn records(c: &Client, run: &str) -> Vec<Value> {
        let a = c.get(&format!("/api/v1/runs/{run}/journal"), token("alice"));
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()["records"].as_array().cloned().unwrap_or_default()
    }

    fn count(records: &[Value], kind: &str) -> usize {
        records.iter().filter(|r| r["type"] == kind).count()
    }

    #[test]
    fn sixty_four_concurrent_runs_count_one_key_to_exactly_6400() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let items: Vec<u32> = (0..100).collect();
        let answers = burst(&server, "counter", &json!({ "n": items }), 64);
        let ids: Vec<String> = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 202, "{body}");
                body["run_id"].as_str().unwrap().to_string()
            })
            .collect();
        for id in &ids {
            c.wait_for(id, token("alice"), Duration::from_secs(120), |r| {
                r["status"] == "succeeded"
            });
        }
        let got = c.get("/api/v1/state/counts/entries/hits", token("carol"));
        assert_eq!(got.status, 200, "{}", got.text);
        assert_eq!(got.json()["value"]["count"], 6400, "{}", got.text);
        // Each run journaled what it counted: 100 increments, no more.
        let first = records(&c, &ids[0]);
        assert_eq!(count(&first, "attempt_finished"), 100);
    }

    #[test]
    fn sixty_four_simultaneous_alerts_with_one_key_make_one_run() {
        let lab = served_lab();
        // Each new run waits 50 ms between claiming its key and journaling
        // its start: the window in which another alert with the key must
        // wait for it rather than take the key from a run not yet started.
        let server = Server::start(&lab, &[("SOAR_TEST_CLAIM_DELAY_MS", "50")]);
        let c = Client::new(&server);
        let answers = burst(&server, "grouped", &json!({"host": "WS-FIN-042"}), 64);
        let mut runs: Vec<&str> = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 202, "{body}");
                body["run_id"].as_str().unwrap()
            })
            .collect();
        runs.sort();
        runs.dedup();
        assert_eq!(runs.len(), 1, "one key, one run: {runs:?}");
        let run = runs[0].to_string();
        let grouped = answers.iter().filter(|(_, b)| b["grouped"] == true).count();
        assert_eq!(grouped, 63, "{answers:?}");
        let journal = records(&c, &run);
        assert_eq!(count(&journal, "run_started"), 1);
        assert_eq!(count(&journal, "alert_grouped"), 63);
        // Counted one by one, though they came at once.
        let counts: Vec<u64> = journal
            .iter()
            .filter(|r| r["type"] == "alert_grouped")
            .map(|r| r["count"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, (1..=63).collect::<Vec<u64>>());
        let last = journal
            .iter()
            .rfind(|r| r["type"] == "alert_grouped")
            .unwrap();
        assert_eq!(last["count"], 63);
        assert_eq!(last["alert"]["host"], "WS-FIN-042");
        let metrics = c.send("GET", "/metrics", &[], Vec::new()).text;
        let grouped_total = metrics
            .lines()
            .find_map(|l| l.strip_prefix("soar_alerts_grouped_total{playbook=\"grouped\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert_eq!(grouped_total, Some(63.0), "{metrics}");
        // Another key is another run; a key of a megabyte is refused.
        let (_, other) = start(&c, "grouped", json!({"host": "ws-hr-007"}));
        assert_ne!(other["run_id"], json!(run));
        let (status, huge) = start(&c, "grouped", json!({"host": "h".repeat(100_000)}));
        assert_eq!(status, 422, "{huge}");
        assert!(huge.to_string().contains("at most 1024"), "{huge}");

        // After a restart the open run still takes its key (case folded).
        server.kill();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let (status, again) = start(&c, "grouped", json!({"host": "ws-fin-042"}));
        assert_eq!(status, 202, "{again}");
        assert_eq!(
            (again["run_id"].as_str(), again["grouped"].as_bool()),
            (Some(run.as_str()), Some(true))
        );

        // The run reacts: a step after the gate sees every grouped alert.
        let vote = c.post(
            &format!("/api/v1/runs/{run}/steps/gate/approve?wait=true"),
            token("bob"),
            &json!({"reason": "one incident"}),
        );
        assert_eq!(vote.status, 200, "{}", vote.text);
        let done = c.wait_for(&run, token("alice"), Duration::from_secs(30), |r| {
            r["status"] == "succeeded"
        });
        assert_eq!(done["outputs"]["grouped"], 64, "{done}");
        // Its case is closed: the key starts a new run, linked to this one.
        let (_, next) = start(&c, "grouped", json!({"host": "ws-fin-042"}));
        let next_id = next["run_id"].as_str().unwrap();
        assert_ne!(next_id, run);
        let first = &records(&c, next_id)[0];
        assert_eq!(first["previous_run"], json!(run), "{first}");
    }

    #[test]
    fn after_the_window_the_key_starts_a_new_run_linked_to_the_last() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let (_, first) = start(&c, "grouped-short", json!({"host": "ws-1"}));
        let first_id = first["run_id"].as_str().unwrap().to_string();
        let (_, joined) = start(&c, "grouped-short", json!({"host": "ws-1"}));
        // Within a second of the first, unless this machine is very slow.
        let started = &records(&c, &first_id)[0]["at"];
        let started = humantime::parse_rfc3339(started.as_str().unwrap()).unwrap();
        let within = SystemTime::now().duration_since(started).unwrap() < Duration::from_secs(1);
        if within {
            assert_eq!(joined["run_id"], json!(first_id), "{joined}");
        }
        // The window is one second from the group's first alert.
        while SystemTime::now().duration_since(started).unwrap() <= Duration::from_millis(1_100) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let (_, later) = start(&c, "grouped-short", json!({"host": "ws-1"}));
        let later_id = later["run_id"].as_str().unwrap();
        assert_ne!(later_id, first_id, "the window is over");
        assert_eq!(later["grouped"], Value::Null, "{later}");
        let rec = &records(&c, later_id)[0];
        assert_eq!(rec["group_key"], "ws-1");
        let linked = rec["previous_run"].as_str().unwrap();
        assert!(linked == first_id || linked == joined["run_id"], "{rec}");
    }

    #[test]
    fn the_approval_page_shows_the_alerts_that_joined_in_a_real_browser() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let (_, first) = start(&c, "grouped", json!({"host": "ws-7"}));
        let run = first["run_id"].as_str().unwrap().to_string();
        let evil = "<img src=x onerror=alert(1)>report\u{202e}fdp.exe";
        let (_, joined) = start(&c, "grouped", json!({"host": "WS-7", "file": evil}));
        assert_eq!(joined["grouped"], true, "{joined}");
        let b = browser::Browser::start();
        let url = server.url.clone();
        b.goto(&format!("{url}/ui/login"));
        b.fill("#token", token("bob"));
        b.click("#sign-in");
        b.wait_until("signed in", |b| b.path() != "/ui/login");
        b.goto(&format!("{url}/ui/runs/{run}/approvals/gate"));
        assert!(b.has("#grouped"), "{}", b.page_text());
        let heading = b.text("#grouped");
        assert!(heading.contains("1 more alert(s) joined"), "{heading}");
        // The joined alerts are a click away (closed `<details>`), as text;
        // the right-to-left override shows as an escape.
        let page = b.content("#evidence");
        assert!(
            page.contains("<img src=x onerror=alert(1)>report\\u{202e}fdp.exe"),
            "shown as text: {page}"
        );
        assert!(!page.contains('\u{202e}'));
        assert!(!b.has("img"), "an alert's markup became an element");
    }

    /// The simulator's Slack requests to `method`, as JSON bodies.
    fn slack(lab: &Lab, method: &str) -> Vec<Value> {
        lab.requests()
            .into_iter()
            .filter(|r| r.url.path() == format!("/api/{method}"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    fn wait_for_slack(lab: &Lab, method: &str, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let got = slack(lab, method);
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("Slack never got {n} {method}: {:?}", slack(lab, method));
    }

    #[test]
    fn the_approvals_chat_thread_hears_of_alerts_that_joined() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let (_, first) = start(&c, "grouped-chat", json!({"host": "ws-9"}));
        let run = first["run_id"].as_str().unwrap().to_string();
        let asked = wait_for_slack(&lab, "chat.postMessage", 1);
        // Two alerts join within the settling moment: one reply for both.
        for file in ["first.exe", "<!channel> invoice.exe"] {
            let (_, joined) = start(&c, "grouped-chat", json!({"host": "ws-9", "file": file}));
            assert_eq!(joined["grouped"], true, "{joined}");
        }
        // Normally one reply for both; on a slow machine the first may
        // have gone alone: the reply that counts both is the one to read.
        let mut reply = Value::Null;
        for _ in 0..500 {
            let posts = slack(&lab, "chat.postMessage");
            if let Some(r) = posts.iter().find(|p| {
                p["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("2 more alert(s) joined"))
            }) {
                reply = r.clone();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let records = records(&c, &run);
        let message = records
            .iter()
            .find(|r| r["type"] == "chat_message" && r["input"]["thread_ts"].is_null())
            .expect("the gate's message");
        let ts = message["detail"]["ts"].as_str().unwrap().to_string();
        assert_eq!(reply["thread_ts"], json!(ts), "{reply}");
        let text = reply["text"].as_str().unwrap();
        assert!(text.contains("2 more alert(s) joined"), "{text}");
        assert!(
            !text.contains("<!channel>"),
            "an alert's text pinged the channel: {text}"
        );
        assert!(
            text.contains("&lt;!channel&gt; invoice.exe"),
            "the latest alert, shown: {text}"
        );
        assert!(records
            .iter()
            .any(|r| r["type"] == "chat_message" && r["input"]["thread_ts"] == json!(ts)));
        // The decision still updates the gate's message, not the reply.
        let vote = c.post(
            &format!("/api/v1/runs/{run}/steps/gate/approve?wait=true"),
            token("bob"),
            &json!({"reason": "ok"}),
        );
        assert_eq!(vote.status, 200, "{}", vote.text);
        let update = &wait_for_slack(&lab, "chat.update", 1)[0];
        assert_eq!(update["ts"], json!(ts), "{update}");
        assert_eq!(asked.len(), 1);
    }

    #[test]
    fn a_repeat_of_a_grouped_alert_is_a_repeat_not_another_alert() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let (_, first) = start(&c, "grouped-dedup", json!({"id": "d1", "host": "h"}));
        let run = first["run_id"].as_str().unwrap().to_string();
        let (_, second) = start(&c, "grouped-dedup", json!({"id": "d2", "host": "h"}));
        assert_eq!(
            (second["run_id"].as_str(), second["grouped"].as_bool()),
            (Some(run.as_str()), Some(true))
        );
        // The same detection again: merged as a repeat of the run it joined.
        let (_, again) = start(&c, "grouped-dedup", json!({"id": "d2", "host": "h"}));
        assert_eq!(again["run_id"].as_str(), Some(run.as_str()), "{again}");
        assert_eq!(again["grouped"], false, "{again}");
        let journal = records(&c, &run);
        assert_eq!(
            (
                count(&journal, "alert_grouped"),
                count(&journal, "alert_merged")
            ),
            (1, 1)
        );
        let status = c.get(&format!("/api/v1/runs/{run}"), token("alice")).json();
        assert_eq!(status["merged_count"], 1, "{status}");
    }

    #[test]
    fn a_server_killed_mid_burst_leaves_one_run_with_every_acknowledged_alert() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let pid = server.pid();
        let answered = std::sync::atomic::AtomicUsize::new(0);
        let answers = std::thread::scope(|s| {
            // SIGKILL once a few alerts were answered: the rest are mid-flight.
            let killer = s.spawn(|| {
                while answered.load(std::sync::atomic::Ordering::SeqCst) < 4 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let pid = pid.to_string();
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status();
            });
            let got = burst_counted(
                &server,
                "grouped",
                &json!({"host": "ws-burst"}),
                64,
                &answered,
            );
            killer.join().unwrap();
            got
        });
        server.kill();
        let acked: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 202)
            .map(|(_, b)| b)
            .collect();
        let lost = answers.iter().filter(|(s, _)| *s == 0).count();
        eprintln!(
            "{} of 64 acknowledged before the kill, {lost} unanswered",
            acked.len()
        );
        assert!(
            lost > 0,
            "the kill came after the burst: nothing was mid-flight"
        );
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        // One more alert after the restart: it joins the run the burst made
        // (or starts it, if none of the burst was acknowledged).
        let (status, after) = start(&c, "grouped", json!({"host": "ws-burst"}));
        assert_eq!(status, 202, "{after}");
        let run = after["run_id"].as_str().unwrap();
        for a in &acked {
            assert_eq!(
                a["run_id"].as_str(),
                Some(run),
                "an acknowledged alert is in another run"
            );
        }
        let journal = records(&c, run);
        assert_eq!(count(&journal, "run_started"), 1);
        // Every acknowledged alert is in the journal: the start and one
        // `alert_grouped` each (more if a kill lost an answer, never fewer).
        let grouped_acks = acked.iter().filter(|a| a["grouped"] == true).count() + 1;
        assert!(
            count(&journal, "alert_grouped") >= grouped_acks,
            "{} < {grouped_acks}",
            count(&journal, "alert_grouped")
        );
        let all = c.get("/api/v1/runs", token("alice")).json();
        let grouped_runs = all["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["playbook"] == "grouped")
            .count();
        assert_eq!(grouped_runs, 1, "{all}");
    }

    #[test]
    fn the_api_reads_and_writes_tables_with_roles_and_reasons() {
        let lab = served_lab();
        let server = Server::start(&lab, &[]);
        let c = Client::new(&server);
        let put = |who: &str, body: &Value| {
            c.send(
                "PUT",
                "/api/v1/state/maintenance/entries/ws-fin-042",
                &[
                    ("authorization", &format!("Bearer {}", token(who))),
                    ("content-type", "application/json"),
                ],
                body.to_string().into_bytes(),
            )
        };
        let body = json!({"value": {"ticket": "CHG-4411"}, "ttl": "2h", "reason": "patch window"});
        assert_eq!(put("carol", &body).status, 403);
        assert_eq!(
            put("alice", &json!({"value": {"no": "ticket"}})).status,
            422
        );
        assert_eq!(
            put("alice", &json!({"value": 1, "extra": true})).status,
            422
        );
        let ok = put("alice", &body);
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert_eq!(ok.json()["written"]["version"], 1);
        let got = c
            .get(
                "/api/v1/state/maintenance/entries/ws-fin-042",
                token("carol"),
            )
            .json();
        assert_eq!(got["value"]["ticket"], "CHG-4411");
        let log = c
            .get(
                "/api/v1/state/maintenance/entries/ws-fin-042/log",
                token("carol"),
            )
            .json();
        assert_eq!(log["changes"][0]["by"], "alice");
        assert_eq!(log["changes"][0]["reason"], "patch window");
        let listed = c
            .get(
                "/api/v1/state/maintenance/entries?prefix=ws-&limit=10",
                token("carol"),
            )
            .json();
        assert_eq!(listed["count"], 1);
        assert_eq!(
            c.get("/api/v1/state/nope/entries/x", token("carol")).status,
            422
        );
        assert_eq!(
            c.get("/api/v1/state/maintenance/entries?limit=0", token("carol"))
                .status,
            422
        );
        // The CLI goes through the running server.
        let cli = lab.soar(
            &["state", "get", "maintenance", "ws-fin-042"],
            &[("SOAR_TOKEN", token("carol"))],
        );
        assert_eq!(cli.code(), 0, "{}", cli.all_output());
        assert_eq!(cli.json()["value"]["ticket"], "CHG-4411");
        let exported = lab.soar(
            &["state", "export", "maintenance"],
            &[("SOAR_TOKEN", token("carol"))],
        );
        assert_eq!(exported.code(), 0, "{}", exported.all_output());
        let out = exported.stdout();
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            (line["key"].as_str(), line["value"]["ticket"].as_str()),
            (Some("ws-fin-042"), Some("CHG-4411"))
        );
        let refused = lab.soar(
            &[
                "state",
                "put",
                "maintenance",
                "ws-2",
                r#"{"ticket": "X"}"#,
                "--as",
                "carol",
            ],
            &[("SOAR_TOKEN", token("carol"))],
        );
        assert_eq!(refused.code(), 4, "{}", refused.all_output());
        assert!(
            !refused.stderr().contains("journaled"),
            "{}",
            refused.stderr()
        );
        let import = c.send(
            "POST",
            "/api/v1/state/assets/import?dry_run=true",
            &[
                ("authorization", &format!("Bearer {}", token("alice"))),
                ("content-type", "text/csv"),
            ],
            b"hostname,criticality\ndc01,critical\n".to_vec(),
        );
        assert_eq!(import.status, 200, "{}", import.text);
        assert_eq!(import.json()["add"], 1);
        let del = c.send(
            "DELETE",
            "/api/v1/state/maintenance/entries/ws-fin-042",
            &[
                ("authorization", &format!("Bearer {}", token("bob"))),
                ("content-type", "application/json"),
            ],
            br#"{"reason": "done early"}"#.to_vec(),
        );
        assert_eq!(del.status, 200, "{}", del.text);
        assert_eq!(del.json()["deleted"], true);
        let gone = c
            .get(
                "/api/v1/state/maintenance/entries/ws-fin-042",
                token("carol"),
            )
            .json();
        assert_eq!(gone["found"], false);
    }
}
