//! Playbook runs end to end: `soar run` on real playbooks with the hostile
//! fixture against a loopback vendor, checked through the vendor's request
//! log and `soar journal`.

use serde_json::{json, Value};
use soar_e2e::engine::{journal, run, scratch_for, SECRET};
use soar_runner::journal::parse_unix_millis;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn events<'a>(j: &'a [Value], ty: &str) -> Vec<&'a Value> {
    j.iter().filter(|e| e["type"] == ty).collect()
}

async fn vendor() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"verdict": "malicious"})))
        .mount(&server)
        .await;
    server
}

fn get(url: &str) -> String {
    format!(r#"{{ method: GET, url: "{url}", check_status: true }}"#)
}

#[tokio::test]
async fn dag_runs_in_order_with_independent_steps_concurrent() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(700)))
        .mount(&server)
        .await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let s = scratch_for(&server.uri());
    let u = server.uri();
    s.write(
        "pb.yaml",
        &format!(
            r#"name: dag
version: "1"
description: two slow branches then a join
owner: soc-automation
inputs:
  host: {{ type: string }}
steps:
  - id: a
    uses: hostile.http
    with: {slow}
  - id: b
    uses: hostile.http
    with: {slow}
  - id: join
    uses: hostile.http
    needs: [a, b]
    with: {ok}
outputs:
  host: "{{{{ inputs.host }}}}"
"#,
            slow = get(&format!("{u}/slow")),
            ok = get(&format!("{u}/ok"))
        ),
    );
    let r = run(&s, "pb.yaml", &json!({"host": "ws-1"}), &[]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["deduplicated"], false);
    assert_eq!(report["outputs"]["host"], "ws-1");
    for id in ["a", "b", "join"] {
        assert_eq!(report["steps"][id]["status"], "succeeded", "{report}");
    }
    // a and b overlap: both attempts started before either finished; the
    // join started only after both finished.
    let j = journal(&s, report["run_id"].as_str().unwrap());
    let seq = |ty: &str, step: &str| {
        j.iter()
            .find(|e| e["type"] == ty && e["step"] == step)
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {ty} for {step}"))
    };
    let first_finish = seq("attempt_finished", "a").min(seq("attempt_finished", "b"));
    assert!(
        seq("attempt_started", "a") < first_finish && seq("attempt_started", "b") < first_finish
    );
    assert!(
        seq("attempt_started", "join") > seq("step_finished", "a").max(seq("step_finished", "b"))
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.last().unwrap().url.path(), "/ok", "join runs last");
}

#[tokio::test]
async fn a_false_condition_skips_the_step_and_its_dependents() {
    let server = vendor().await;
    let s = scratch_for(&server.uri());
    let u = server.uri();
    s.write(
        "pb.yaml",
        &format!(
            r#"name: cond
version: "1"
description: skip on benign
owner: soc
inputs: {{}}
steps:
  - id: lookup
    uses: hostile.http
    with: {ok}
  - id: contain
    uses: hostile.http
    needs: [lookup]
    if: "steps.lookup.output.status == 404"
    with: {ok}
  - id: notify
    uses: hostile.http
    needs: [contain]
    with: {ok}
  - id: always
    uses: hostile.http
    needs: [lookup]
    if: "steps.lookup.status == 'succeeded'"
    with: {ok}
"#,
            ok = get(&format!("{u}/ok"))
        ),
    );
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let report = r.json();
    assert_eq!(report["steps"]["contain"]["status"], "skipped");
    assert_eq!(report["steps"]["notify"]["status"], "skipped");
    assert_eq!(report["steps"]["always"]["status"], "succeeded");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    let j = journal(&s, report["run_id"].as_str().unwrap());
    let skipped = events(&j, "step_skipped");
    assert!(skipped
        .iter()
        .any(|e| e["reason"].as_str().unwrap().contains("condition")));
    assert!(skipped
        .iter()
        .any(|e| e["reason"].as_str().unwrap().contains("needs `contain`")));
}

#[tokio::test]
async fn for_each_runs_once_per_item_and_collects_in_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let s = scratch_for(&server.uri());
    let u = server.uri();
    s.write(
        "pb.yaml",
        &format!(
            r#"name: iocs
version: "1"
description: one lookup per IOC
owner: soc
inputs:
  iocs: {{ type: list }}
steps:
  - id: lookup
    uses: hostile.http
    for_each: "{{{{ inputs.iocs }}}}"
    with: {{ method: GET, url: "{u}/ioc/{{{{ index }}}}/{{{{ item }}}}", send_key: true }}
outputs:
  count: "{{{{ steps.lookup.output | length }}}}"
"#
        ),
    );
    let r = run(
        &s,
        "pb.yaml",
        &json!({"iocs": ["1.2.3.4", "evil.example", "abc"]}),
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let report = r.json();
    assert_eq!(report["outputs"]["count"], 3);
    let reqs = server.received_requests().await.unwrap();
    let paths: Vec<String> = reqs.iter().map(|r| r.url.path().to_string()).collect();
    assert_eq!(
        paths,
        ["/ioc/0/1.2.3.4", "/ioc/1/evil.example", "/ioc/2/abc"]
    );
    let keys: std::collections::BTreeSet<_> = reqs
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 3, "one idempotency key per item");
}

async fn flaky(first: ResponseTemplate, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/flaky"))
        .respond_with(first)
        .up_to_n_times(times)
        .mount(&server)
        .await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn retry_playbook(s: &soar_e2e::Scratch, url: &str, on_error: &str) {
    s.write(
        "pb.yaml",
        &format!(
            r#"name: retry
version: "1"
description: retries
owner: soc
inputs: {{}}
steps:
  - id: call
    uses: hostile.http
    on_error: {on_error}
    retry: {{ max_attempts: 3, initial_delay: 100ms, max_delay: 1s, multiplier: 2, jitter: 0 }}
    with: {{ method: GET, url: "{url}", check_status: true }}
  - id: after
    uses: hostile.http
    needs: [call]
    with: {{ method: GET, url: "{url}" }}
"#
        ),
    );
}

#[tokio::test]
async fn unavailable_twice_then_ok_takes_three_journaled_attempts() {
    let server = flaky(ResponseTemplate::new(503), 2).await;
    let s = scratch_for(&server.uri());
    retry_playbook(&s, &format!("{}/flaky", server.uri()), "fail");
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let j = journal(&s, r.json()["run_id"].as_str().unwrap());
    let started: Vec<_> = events(&j, "attempt_started")
        .into_iter()
        .filter(|e| e["step"] == "call")
        .collect();
    assert_eq!(started.len(), 3);
    assert_eq!(events(&j, "retry_scheduled").len(), 2);
    let keys: std::collections::BTreeSet<_> = started
        .iter()
        .map(|e| e["idempotency_key"].to_string())
        .collect();
    assert_eq!(keys.len(), 1, "retries keep the idempotency key");
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let server = flaky(
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
        1,
    )
    .await;
    let s = scratch_for(&server.uri());
    retry_playbook(&s, &format!("{}/flaky", server.uri()), "fail");
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let reqs = server.received_requests().await.unwrap();
    let j = journal(&s, r.json()["run_id"].as_str().unwrap());
    let retry = events(&j, "retry_scheduled");
    assert_eq!(retry.len(), 1);
    assert!(
        retry[0]["delay_ms"].as_u64().unwrap() >= 1000,
        "{}",
        retry[0]
    );
    assert!(reqs.len() >= 2);
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_fails_the_run() {
    let server = flaky(ResponseTemplate::new(401), 10).await;
    let s = scratch_for(&server.uri());
    retry_playbook(&s, &format!("{}/flaky", server.uri()), "fail");
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    let report = r.json();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["steps"]["call"]["error"]["kind"], "unauthorized");
    assert_eq!(report["steps"]["after"]["status"], "pending");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn on_error_continue_lets_dependents_run_and_see_the_failure() {
    let server = flaky(ResponseTemplate::new(401), 10).await;
    let s = scratch_for(&server.uri());
    retry_playbook(&s, &format!("{}/flaky", server.uri()), "continue");
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 0, "{}", r.stdout());
    let report = r.json();
    assert_eq!(report["steps"]["call"]["status"], "failed");
    assert_eq!(report["steps"]["after"]["status"], "succeeded");
}

#[tokio::test]
async fn step_timeout_fails_a_slow_step() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let s = scratch_for(&server.uri());
    s.write(
        "pb.yaml",
        &format!(
            r#"name: timeout
version: "1"
description: t
owner: soc
inputs: {{}}
steps:
  - id: slow
    uses: hostile.http
    timeout: 300ms
    with: {{ method: GET, url: "{}/slow" }}
"#,
            server.uri()
        ),
    );
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    let report = r.json();
    assert_eq!(report["steps"]["slow"]["error"]["kind"], "unavailable");
    // The request did go out: the step waited on the vendor, then gave up.
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // From the journal, not a stopwatch: the attempt timed out before the vendor's 3 s answer.
    let j = journal(&s, report["run_id"].as_str().unwrap());
    let started = events(&j, "attempt_started");
    let finished = events(&j, "attempt_finished");
    assert_eq!((started.len(), finished.len()), (1, 1), "{j:?}");
    let outcome = &finished[0]["outcome"];
    assert_eq!(outcome["result"], "err", "{outcome}");
    assert_eq!(outcome["kind"], "unavailable", "{outcome}");
    let message = outcome["message"].as_str().unwrap();
    assert!(
        message.starts_with("timeout:") && message.contains("within 300 ms"),
        "{outcome}"
    );
    let at = |e: &Value| parse_unix_millis(e["at"].as_str().unwrap()).unwrap();
    let lasted = at(finished[0]).saturating_sub(at(started[0]));
    assert!(
        lasted < 3_000,
        "the attempt lasted {lasted} ms: it waited for the vendor"
    );
}

#[tokio::test]
async fn dedup_returns_the_existing_run_and_starts_nothing() {
    let server = vendor().await;
    let s = scratch_for(&server.uri());
    s.write(
        "pb.yaml",
        &format!(
            r#"name: dedup
version: "1"
description: d
owner: soc
inputs:
  alert_id: {{ type: string, from: "{{{{ alert.id }}}}" }}
dedup: "{{{{ inputs.alert_id }}}}"
steps:
  - id: one
    uses: hostile.http
    with: {}
"#,
            get(&format!("{}/ok", server.uri()))
        ),
    );
    let first = run(&s, "pb.yaml", &json!({"id": "ALERT-7"}), &[]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let second = run(&s, "pb.yaml", &json!({"id": "ALERT-7"}), &[]);
    assert_eq!(second.code(), 0, "{}", second.stderr());
    assert_eq!(second.json()["deduplicated"], true);
    assert_eq!(second.json()["run_id"], first.json()["run_id"]);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let third = run(&s, "pb.yaml", &json!({"id": "ALERT-8"}), &[]);
    assert_ne!(third.json()["run_id"], first.json()["run_id"]);
}

#[tokio::test]
async fn a_required_input_missing_from_the_alert_is_rejected() {
    let server = vendor().await;
    let s = scratch_for(&server.uri());
    s.write(
        "pb.yaml",
        &format!(
            r#"name: inputs
version: "1"
description: d
owner: soc
inputs:
  host: {{ type: string, from: "{{{{ alert.device.hostname }}}}" }}
steps:
  - id: one
    uses: hostile.http
    with: {}
"#,
            get(&format!("{}/ok", server.uri()))
        ),
    );
    let r = run(&s, "pb.yaml", &json!({"device": {}}), &[]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("`host`"), "{}", r.stderr());
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn secrets_never_reach_the_journal_and_it_verifies() {
    let server = MockServer::start().await;
    // The vendor echoes the key back.
    Mock::given(path("/echo"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("your key is {SECRET}")))
        .mount(&server)
        .await;
    let s = scratch_for(&server.uri());
    s.write(
        "pb.yaml",
        &format!(
            r#"name: secrets
version: "1"
description: d
owner: soc
inputs: {{}}
steps:
  - id: call
    uses: hostile.http
    with: {{ method: GET, url: "{}/echo", secret_header: ["x-apikey", "api_key"] }}
"#,
            server.uri()
        ),
    );
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        server.received_requests().await.unwrap()[0]
            .headers
            .get("x-apikey")
            .unwrap(),
        SECRET
    );
    let id = r.json()["run_id"].as_str().unwrap().to_string();
    let j = s.soar(&["journal", &id, "--json"], &[]);
    assert!(!j.stdout().contains(SECRET));
    assert!(j.stdout().contains("[secret:api_key]"));
    assert!(!r.all_output().contains(SECRET));
    // The raw store on disk does not hold it either.
    let mut stack = vec![s.path().join(".soar/journal")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                    "{}",
                    p.display()
                );
            }
        }
    }
    let v = s.soar(&["journal", "verify", &id, "--allow-unkeyed"], &[]);
    assert_eq!(v.code(), 0, "{}", v.stdout());
    let replay = s.soar(&["replay", &id], &[]);
    assert_eq!(replay.code(), 0, "{}\n{}", replay.stdout(), replay.stderr());
    let status = s.soar(&["status", &id, "--json"], &[]);
    assert_eq!(status.json()["status"], "succeeded");
    let runs = s.soar(&["runs", "--status", "succeeded", "--json"], &[]);
    assert_eq!(runs.json()["runs"][0]["run_id"], id);
}

#[test]
fn validate_reports_problems_with_lines_and_exits_2() {
    let s = scratch_for("http://127.0.0.1:9");
    s.write(
        "bad.yaml",
        r#"name: bad
version: "1"
description: d
owner: soc
inputs: {}
steps:
  - id: a
    uses: hostile.http
    needs: [ghost]
    with: { url: "x" }
  - id: a
    uses: nothing.here
"#,
    );
    let r = s.soar(&["validate", "bad.yaml"], &[]);
    assert_eq!(r.code(), 2, "{}", r.stdout());
    let out = r.stdout();
    assert!(out.contains("bad.yaml:9:"), "{out}");
    assert!(out.contains("ghost"), "{out}");
    assert!(
        out.contains("bad.yaml:11:") || out.contains("bad.yaml:12:"),
        "{out}"
    );
    s.write(
        "good.yaml",
        "name: good\nversion: \"1\"\ndescription: d\nowner: soc\ninputs: {}\nsteps:\n  - id: a\n    uses: hostile.noop\n",
    );
    let r = s.soar(&["validate", "good.yaml"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stdout());
}

#[tokio::test]
async fn destructive_steps_without_a_gate_are_rejected() {
    let server = vendor().await;
    let s = scratch_for(&server.uri());
    s.write(
        "pb.yaml",
        "name: wipe\nversion: \"1\"\ndescription: d\nowner: soc\ninputs: {}\nsteps:\n  - id: wipe\n    uses: hostile.wipe\n",
    );
    let v = s.soar(&["validate", "pb.yaml"], &[]);
    assert_eq!(v.code(), 2);
    assert!(
        v.stdout().contains("pb.yaml:8:") && v.stdout().contains("needs an approval step upstream"),
        "{}",
        v.stdout()
    );
    let r = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(r.code(), 2, "{}", r.stdout());
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[test]
fn shipped_playbooks_validate_and_run_against_the_simulators() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(soar_e2e::sim::start(0)).unwrap();
    let url = sim.uri();
    let s = soar_e2e::Scratch::new();
    s.config(&format!(
        r#"plugins:
  threatintel:
    path: {ti}
    allowed_hosts: ["{url}"]
    secrets: {{ api_key: {{ env: VT_API_KEY, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
  edr:
    path: {edr}
    allowed_hosts: ["{url}"]
    secrets:
      client_id: {{ env: FALCON_CLIENT_ID, hosts: ["{url}"] }}
      client_secret: {{ env: FALCON_CLIENT_SECRET, hosts: ["{url}"] }}
    config: {{ base_url: "{url}" }}
    read_only_allow: ["POST /oauth2/token"]
"#,
        ti = soar_e2e::wasm("threatintel").display(),
        edr = soar_e2e::wasm("edr").display(),
    ));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let playbook = root.join("playbooks/malware-enrichment.yaml");
    let alert = root.join("examples/alerts/edr-malware.json");
    let env = [
        ("VT_API_KEY", soar_e2e::sim::VT_API_KEY),
        ("FALCON_CLIENT_ID", soar_e2e::sim::FALCON_CLIENT_ID),
        ("FALCON_CLIENT_SECRET", soar_e2e::sim::FALCON_CLIENT_SECRET),
    ];
    let v = s.soar(&["validate", playbook.to_str().unwrap()], &env);
    assert_eq!(v.code(), 0, "{}{}", v.stdout(), v.stderr());
    let r = s.soar(
        &[
            "run",
            playbook.to_str().unwrap(),
            "--input",
            alert.to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["outputs"]["verdict"], "malicious");
    assert_eq!(report["outputs"]["hostname"], "FIN-WS-042");
    assert_eq!(report["steps"]["assess"]["status"], "succeeded");
}
