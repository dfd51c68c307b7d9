//! One delivery, many events: every event of a batch is accounted for
//! (its run, its merge into an earlier run, or its own refusal), at the cap
//! and past it, in a mixed batch, and across a SIGKILL in the middle of
//! one. A repeat is evidence in the first run's journal, and the playbook
//! can count repeats (`run.merged_count`).

use serde_json::{json, Value};
use soar_e2e::lab::{token, Lab};
use soar_e2e::senders::{journal, of_type, result_runs, runs, settle};
use soar_e2e::serve::{sign, Client, Server};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SECRET: &str = "batch-hook-secret-0c4e";

/// Cheap runs: one step that its condition skips.
const TALLY: &str = r#"name: tally
version: "1"
owner: soc
inputs:
  n: { type: integer }
steps:
  - id: note
    if: "inputs.n < 0"
    uses: edr.get_host
    with: { host_id: "h-{{ inputs.n }}" }
"#;

const REPEATS: &str = r##"name: repeats
version: "1"
owner: soc
dedup: "{{ inputs.host_id }}"
inputs:
  host_id: { type: string }
steps:
  - id: approve
    approval:
      approvers: [soc-lead]
      timeout: 10m
      handoff:
        summary: "Tell the SOC about {{ inputs.host_id }}?"
        why: test
        affected: "{{ inputs.host_id }}"
        recommended_action: notify
  - id: tell
    needs: [approve]
    uses: chatops.notify
    with:
      channel: "#soc-alerts"
      text: "{{ inputs.host_id }} was reported {{ run.merged_count + 1 }} times"
"##;

fn lab() -> Lab {
    let lab = Lab::new(
        "server:\n  listen: \"127.0.0.1:0\"\nsources:\n  siem:\n    playbook: tally.yaml\n    auth: { type: hmac_sha256, secret: { env: BATCH_SECRET } }\n    delivery_id_header: X-Delivery-Id\n    max_body: 1048576\n  edr:\n    playbook: repeats.yaml\n    auth: { type: hmac_sha256, secret: { env: BATCH_SECRET } }\n",
    );
    lab.s.write("tally.yaml", TALLY);
    lab.s.write("repeats.yaml", REPEATS);
    lab
}

const ENV: [(&str, &str); 1] = [("BATCH_SECRET", SECRET)];

fn events(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({ "n": i })).collect())
}

fn deliver(c: &Client, source: &str, body: &Value, delivery: &str) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let sig = sign(SECRET, &bytes);
    let a = c.send(
        "POST",
        &format!("/hooks/{source}"),
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &sig),
            ("x-delivery-id", delivery),
        ],
        bytes,
    );
    (
        a.status,
        serde_json::from_str(&a.text).unwrap_or(Value::Null),
    )
}

fn distinct(ids: &[Option<String>]) -> usize {
    ids.iter().flatten().collect::<BTreeSet<_>>().len()
}

#[test]
fn a_thousand_events_are_a_thousand_runs_and_one_more_is_refused_whole() {
    let lab = lab();
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let (status, v) = deliver(&c, "siem", &events(1001), "d-over");
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"], "too_many_events");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("more than 1000 events"),
        "{v}"
    );
    assert!(runs(&c).is_empty(), "nothing of a refused batch starts");

    let (status, v) = deliver(&c, "siem", &events(1000), "d-1000");
    assert_eq!(status, 202, "{}", &v.to_string()[..300]);
    assert_eq!(
        (v["events"].as_u64(), v["accepted"].as_u64()),
        (Some(1000), Some(1000))
    );
    let ids = result_runs(&v);
    assert_eq!(ids.len(), 1000);
    assert_eq!(distinct(&ids), 1000);
    for (i, r) in v["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["index"], i, "results are in event order");
    }
    assert_eq!(runs(&c).len(), 1000);
    // Each run holds its own event.
    for i in [0usize, 499, 999] {
        let records = journal(&c, ids[i].as_ref().unwrap());
        assert_eq!(records[0]["inputs"]["n"], i);
    }
    // A mixed batch: the invalid event is answered, the others start.
    let mixed = json!([{"n": 5000}, {"n": "five"}, {"m": 1}, {"n": 5001}]);
    let (status, v) = deliver(&c, "siem", &mixed, "d-mixed");
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["invalid"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert!(
        v["results"][1]["problems"][0]
            .as_str()
            .unwrap()
            .contains("input `n` must be"),
        "{v}"
    );
    assert!(
        v["results"][2]["problems"][0]
            .as_str()
            .unwrap()
            .contains("`n` is missing"),
        "{v}"
    );
    assert_eq!(runs(&c).len(), 1002);
    // All invalid: 422, nothing started.
    let (status, v) = deliver(&c, "siem", &json!([{"n": "x"}]), "d-bad");
    assert_eq!(status, 422, "{v}");
    assert_eq!(runs(&c).len(), 1002);
    // The same batch again (the sender's retry): every event finds its run.
    let (status, v) = deliver(&c, "siem", &events(1000), "d-1000");
    assert_eq!(status, 202);
    assert_eq!(v["deduplicated"], 1000);
    assert_eq!(result_runs(&v), ids);
    assert_eq!(runs(&c).len(), 1002);
    let metrics = c.send("GET", "/metrics", &[], Vec::new()).text;
    assert!(
        metrics.contains("soar_webhook_events_total{source=\"siem\",outcome=\"accepted\"} 1002"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("webhook_events"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_batch_cut_by_sigkill_is_whole_after_the_sender_retries() {
    let lab = lab();
    let marker = lab.s.path().join("hung");
    let hang = [
        ("BATCH_SECRET", SECRET),
        ("SOAR_TEST_HANG_AFTER_APPEND", "400"),
        ("SOAR_TEST_HANG_MARKER", marker.to_str().unwrap()),
    ];
    let server = Server::start(&lab, &hang);
    let url = server.url.clone();
    let batch = events(600);
    let body = batch.to_string();
    // The sender posts; the server freezes mid-batch and is killed, so the
    // sender never sees a 2xx.
    let sender = std::thread::spawn(move || {
        let sig = sign(SECRET, body.as_bytes());
        reqwest::blocking::Client::new()
            .post(format!("{url}/hooks/siem"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .header("x-delivery-id", "d-kill")
            .body(body)
            .timeout(Duration::from_secs(120))
            .send()
            .map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the server never reached the hang"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    let answered = sender.join().unwrap();
    assert!(
        answered.as_ref().map(|s| *s >= 300).unwrap_or(true),
        "no 2xx for a cut batch: {answered:?}"
    );

    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let before = runs(&c).len();
    assert!(
        before > 0 && before < 600,
        "the kill fell mid-batch: {before} runs"
    );
    let (status, v) = deliver(&c, "siem", &batch, "d-kill");
    assert_eq!(
        status,
        202,
        "{}",
        &v.to_string()[..300.min(v.to_string().len())]
    );
    let ids = result_runs(&v);
    assert_eq!(ids.len(), 600);
    assert_eq!(distinct(&ids), 600, "every event has exactly one run");
    assert_eq!(
        v["deduplicated"].as_u64(),
        Some(before as u64),
        "{}",
        v["deduplicated"]
    );
    assert_eq!(runs(&c).len(), 600);
    for (i, id) in ids.iter().enumerate() {
        let records = journal(&c, id.as_ref().unwrap());
        assert_eq!(records[0]["inputs"]["n"], i, "event {i} is in its own run");
    }
    // Runs that started before the kill finish after it, and hold the
    // retried delivery as evidence.
    for id in ids.iter().flatten().take(5) {
        assert_eq!(settle(&c, id)["status"], "succeeded");
    }
    let merged = ids
        .iter()
        .flatten()
        .filter(|id| !of_type(&journal(&c, id), "alert_merged").is_empty())
        .count();
    assert_eq!(merged, before);
}

#[test]
fn repeats_are_journaled_in_the_first_run_and_counted_by_the_playbook() {
    let lab = lab();
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let alert = json!({"host_id": "WS-FIN-042", "detection": "first"});
    let (status, v) = deliver(&c, "edr", &alert, "a-1");
    assert_eq!(status, 202, "{v}");
    let run = v["run_id"].as_str().unwrap().to_string();
    c.wait_for(&run, token("alice"), Duration::from_secs(60), |v| {
        v["status"] == "waiting_approval"
    });
    // Two other detections of the same host while the lead decides: they
    // share the dedup key, and their evidence is kept, not dropped.
    for (n, detection) in ["second", "third"].iter().enumerate() {
        let repeat = json!({"host_id": "WS-FIN-042", "detection": detection});
        let (status, v) = deliver(&c, "edr", &repeat, &format!("a-{}", n + 2));
        assert_eq!(
            (status, v["deduplicated"].as_bool()),
            (202, Some(true)),
            "{v}"
        );
        assert_eq!(v["run_id"], run.as_str());
        assert_eq!(v["status"], "waiting_approval");
    }
    let records = journal(&c, &run);
    let merged = of_type(&records, "alert_merged");
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0]["alert"]["detection"], "second");
    assert_eq!(merged[1]["alert"]["detection"], "third");
    assert_eq!(merged[1]["count"], 2);
    assert_eq!(merged[0]["by"], "source:edr");
    assert_eq!(merged[0]["key"], "repeats:WS-FIN-042");
    let a = c.post(
        &format!("/api/v1/runs/{run}/steps/approve/approve?wait=true"),
        token("alice"),
        &json!({"reason": "tell them"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(settle(&c, &run)["status"], "succeeded");
    let posted = lab
        .requests()
        .into_iter()
        .find(|r| r.url.path() == "/api/chat.postMessage")
        .expect("a chat message");
    let body: Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(body["text"], "WS-FIN-042 was reported 3 times");
    // `soar status` says so too.
    let status = c.get(&format!("/api/v1/runs/{run}"), token("alice")).json();
    assert_eq!(status["merged_count"], 2, "{status}");
    // A sender repeating itself cannot grow the run's journal without
    // bound: past 100 repeats, each keeps only its digest and size.
    let big = json!({"host_id": "WS-FIN-042", "padding": "x".repeat(4000)});
    for n in 0..100 {
        let (status, _) = deliver(&c, "edr", &big, &format!("b-{n}"));
        assert_eq!(status, 202);
    }
    let records = journal(&c, &run);
    let merged = of_type(&records, "alert_merged");
    assert_eq!(merged.len(), 102, "every repeat is counted");
    assert_eq!(
        merged[97]["alert"]["padding"].as_str().map(str::len),
        Some(4000)
    );
    let last = merged[101];
    assert_eq!(last["count"], 102);
    assert!(last["alert"]["padding"].is_null(), "{last}");
    assert_eq!(
        last["alert"]["sha256"].as_str().map(str::len),
        Some(64),
        "{last}"
    );
}
