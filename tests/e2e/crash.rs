//! Crash test: real runs of a multi-step playbook are SIGKILLed at every
//! point between two journal records (including between an attempt's start
//! record and its result), then `soar resume --all` finishes them. The
//! vendor's request log must show that no non-idempotent side effect was
//! sent twice and none without its idempotency key.

use serde_json::json;
use soar_e2e::engine::{run, scratch_for};
use soar_e2e::{soar_bin, Scratch};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn playbook(s: &Scratch, vendor: &str) {
    s.write(
        "pb.yaml",
        &format!(
            r#"name: crashy
version: "1"
description: enrich, two side effects in parallel, then a final one
owner: soc
inputs: {{}}
steps:
  - id: lookup
    uses: hostile.http_idempotent
    with: {{ method: GET, url: "{v}/lookup", send_key: true, check_status: true }}
  - id: ticket
    uses: hostile.http
    needs: [lookup]
    with: {{ method: POST, url: "{v}/effect/ticket", send_key: true, check_status: true, json: {{ n: 1 }} }}
  - id: block
    uses: hostile.http_idempotent
    needs: [lookup]
    with: {{ method: POST, url: "{v}/effect/block", send_key: true, check_status: true }}
  - id: notify
    uses: hostile.http
    needs: [ticket, block]
    with: {{ method: POST, url: "{v}/effect/notify", send_key: true, check_status: true }}
"#,
            v = vendor
        ),
    );
}

fn record_count(s: &Scratch, run_id: &str) -> usize {
    let r = s.soar(&["journal", run_id, "--json"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    r.stdout().lines().count()
}

/// Starts `soar run pb.yaml` with a fault injection's `env` and waits
/// (at most `within`) until it writes `marker` or exits.
fn run_until(s: &Scratch, env: &[(&str, &str)], marker: &Path, within: Duration) -> Child {
    let mut child = Command::new(soar_bin())
        .args(["run", "pb.yaml", "--input", "alert.json", "--json"])
        .current_dir(s.path())
        .env("SOAR_DATA_DIR", s.path().join(".soar"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn soar");
    let deadline = Instant::now() + within;
    while !marker.exists() && child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// A vendor that answers every request 200 `{"ok": true}`.
async fn ok_vendor() -> MockServer {
    let vendor = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&vendor)
        .await;
    vendor
}

/// Starts `soar run` that freezes after `n` journal appends, waits for it to
/// freeze (or finish), then SIGKILLs it.
fn run_and_kill(s: &Scratch, n: usize) {
    let marker = s.path().join("hung");
    let _ = std::fs::remove_file(&marker);
    let env = [
        ("SOAR_TEST_HANG_AFTER_APPEND", n.to_string()),
        ("SOAR_TEST_HANG_MARKER", marker.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut child = run_until(s, &env, &marker, Duration::from_secs(20));
    // Let in-flight plugin calls race the kill, as in a real crash.
    std::thread::sleep(Duration::from_millis(n as u64 % 3 * 20));
    // SIGKILL: no destructors, no flush.
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_every_journal_point_then_resume_repeats_no_harm() {
    let vendor = ok_vendor().await;

    // Reference run without a crash: how many journal points there are.
    let s = scratch_for(&vendor.uri());
    playbook(&s, &vendor.uri());
    let reference = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(reference.code(), 0, "{}", reference.stderr());
    let points = record_count(&s, reference.json()["run_id"].as_str().unwrap());
    assert!(
        points >= 12,
        "expected a dozen journal points, got {points}"
    );
    vendor.reset().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&vendor)
        .await;

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for n in 1..points {
        let s = scratch_for(&vendor.uri());
        playbook(&s, &vendor.uri());
        s.write("alert.json", "{}");
        run_and_kill(&s, n);
        let resumed = s.soar(&["resume", "--all", "--json"], &[]);
        let doc = resumed.json();
        let runs = doc["resumed"].as_array().cloned().unwrap_or_default();
        // A kill before the first record leaves nothing to resume.
        for r in &runs {
            let status = r["status"].as_str().unwrap().to_string();
            assert!(
                status == "succeeded" || status == "in_doubt",
                "kill point {n}: run ended {status}: {r}"
            );
            *outcomes.entry(status).or_default() += 1;
        }
        let verify = s.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &[]);
        assert_eq!(verify.code(), 0, "kill point {n}: {}", verify.stdout());
    }

    let requests = vendor.received_requests().await.unwrap();
    let mut by_key: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &requests {
        let key = r
            .headers
            .get("idempotency-key")
            .unwrap_or_else(|| panic!("{} {} sent without its idempotency key", r.method, r.url))
            .to_str()
            .unwrap()
            .to_string();
        *by_key.entry((r.url.path().to_string(), key)).or_default() += 1;
    }
    for ((path, key), count) in &by_key {
        let non_idempotent = path == "/effect/ticket" || path == "/effect/notify";
        assert!(
            !non_idempotent || *count == 1,
            "non-idempotent {path} sent {count} times with key {key}"
        );
    }
    assert!(
        outcomes.get("succeeded").copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    eprintln!(
        "kill points: {}, outcomes after resume: {outcomes:?}, vendor requests: {}",
        points - 1,
        requests.len()
    );
}

/// Kills a one-step `post_once` run after its attempt's start record, once
/// the POST has reached the vendor but before its result is journaled, then
/// resumes. Returns the resume report and the vendor's requests.
async fn interrupted_post(
    probe_status: u16,
) -> (serde_json::Value, Vec<wiremock::Request>, Scratch) {
    let vendor = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&vendor)
        .await;
    Mock::given(wiremock::matchers::method("GET"))
        .respond_with(ResponseTemplate::new(probe_status))
        .mount(&vendor)
        .await;
    let s = scratch_for(&vendor.uri());
    s.write(
        "pb.yaml",
        &format!(
            "name: once\nversion: \"1\"\ndescription: d\nowner: soc\ninputs: {{}}\nsteps:\n  - id: post\n    uses: hostile.post_once\n    with: {{ url: \"{}/effect\" }}\n",
            vendor.uri()
        ),
    );
    s.write("alert.json", "{}");
    // Records: run_started, step_started, attempt_started; the 4th append
    // (attempt_finished) never happens.
    run_and_kill(&s, 3);
    let posts = vendor.received_requests().await.unwrap().len();
    assert_eq!(posts, 1, "the POST was sent before the crash");
    let resumed = s.soar(&["resume", "--all", "--json"], &[]);
    let report = resumed.json()["resumed"][0].clone();
    (report, vendor.received_requests().await.unwrap(), s)
}

fn decisions(s: &Scratch, run_id: &str) -> Vec<String> {
    let r = s.soar(&["journal", run_id, "--json"], &[]);
    r.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "reconciled")
        .map(|e| e["decision"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_probe_that_sees_the_effect_settles_the_step_without_acting_again() {
    let (report, requests, s) = interrupted_post(200).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let posts = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 1, "not posted again");
    let probe = requests
        .iter()
        .find(|r| r.method.as_str() == "GET")
        .expect("probe called");
    assert!(
        probe.url.query().unwrap_or("").contains("key=soar-"),
        "{}",
        probe.url
    );
    assert_eq!(
        decisions(&s, report["run_id"].as_str().unwrap()),
        ["done_by_probe"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_probe_that_sees_no_effect_lets_the_action_run_again_with_the_same_key() {
    let (report, requests, s) = interrupted_post(404).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let keys: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "same idempotency key");
    assert_eq!(
        decisions(&s, report["run_id"].as_str().unwrap()),
        ["reinvoke_after_probe"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedup_key_claimed_by_a_run_that_died_before_starting_is_taken_over() {
    let vendor = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&vendor)
        .await;
    let s = scratch_for(&vendor.uri());
    s.write(
        "pb.yaml",
        &format!(
            "name: dd\nversion: \"1\"\ndescription: d\nowner: soc\ninputs:\n  id: {{ type: string }}\ndedup: \"{{{{ inputs.id }}}}\"\nsteps:\n  - id: one\n    uses: hostile.http_idempotent\n    with: {{ url: \"{}/x\", send_key: true }}\n",
            vendor.uri()
        ),
    );
    s.write("alert.json", r#"{"id": "A-1"}"#);
    // Dies after claiming the dedup key, before its first record.
    run_and_kill(&s, 0);
    let r = run(&s, "pb.yaml", &json!({"id": "A-1"}), &[]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["deduplicated"], false);
    assert_eq!(vendor.received_requests().await.unwrap().len(), 1);
    let again = run(&s, "pb.yaml", &json!({"id": "A-1"}), &[]);
    assert_eq!(again.json()["deduplicated"], true);
    assert_eq!(again.json()["run_id"], r.json()["run_id"]);
}

/// A SIGKILL after a run's final record is durable and before it leaves
/// the unfinished-run index: the next start neither loses the run nor
/// drives it again, and verify says what the crash left.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_the_end_record_and_the_index_update_resumes_nothing_twice() {
    let vendor = ok_vendor().await;
    let s = scratch_for(&vendor.uri());
    playbook(&s, &vendor.uri());
    s.write("alert.json", "{}");
    let marker = s.path().join("unlisting");
    let path = marker.display().to_string();
    let env = [("SOAR_TEST_HANG_BEFORE_UNLIST", path.as_str())];
    let mut child = run_until(&s, &env, &marker, Duration::from_secs(30));
    let run_id = std::fs::read_to_string(&marker).expect("the run reached its end");
    let _ = child.kill();
    let _ = child.wait();
    let sent = vendor.received_requests().await.unwrap().len();
    assert_eq!(sent, 4, "lookup, ticket, block, notify");

    // The run is finished in its journal, and still listed.
    let verify = s.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &[]);
    assert_eq!(verify.code(), 0, "{}", verify.stdout());
    let stale = format!("run {run_id}: finished but still in the unfinished-run index");
    assert!(verify.stdout().contains(&stale), "{}", verify.stdout());

    // The next start drives nothing again and drops the entry.
    let resumed = s.soar(&["resume", "--all", "--json"], &[]);
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
    assert_eq!(resumed.json()["resumed"], json!([]));
    assert_eq!(vendor.received_requests().await.unwrap().len(), sent);
    let status = s.soar(&["status", &run_id, "--json"], &[]);
    assert_eq!(status.json()["status"], "succeeded", "{}", status.stdout());
    let verify = s.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &[]);
    assert_eq!(verify.code(), 0, "{}", verify.stdout());
    assert!(
        !verify.stdout().contains("unfinished-run index"),
        "{}",
        verify.stdout()
    );
}
