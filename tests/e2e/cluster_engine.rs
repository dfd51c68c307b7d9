//! The engine on the cluster journal (issue 24): the same runs, crash
//! points and resumes as on sled, with every record on a 3-server
//! nats-server cluster on loopback, and two soar processes that share it.

use serde_json::json;
use soar_e2e::engine::{journal, run, scratch_for};
use soar_e2e::nats::Nats;
use soar_e2e::Scratch;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A vendor that answers every request 200 `{"ok": true}`.
async fn ok_vendor() -> MockServer {
    let vendor = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&vendor)
        .await;
    vendor
}

/// A scratch dir for the hostile fixture against `vendor`, journaling to
/// `nats` (`extra`: more `journal:` keys).
fn on_cluster(nats: &Nats, vendor: &str, extra: &str) -> Scratch {
    let s = scratch_for(vendor);
    let config = std::fs::read_to_string(s.path().join("soar.yaml")).unwrap();
    s.write(
        "soar.yaml",
        &format!("{config}{}", nats.journal_yaml(extra)),
    );
    s
}

fn playbook(s: &Scratch, vendor: &str) {
    s.write(
        "pb.yaml",
        &format!(
            r#"name: clustered
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

#[tokio::test(flavor = "multi_thread")]
async fn a_run_on_the_cluster_journal_finishes_reads_back_and_verifies_with_no_sled_journal() {
    let nats = Nats::cluster();
    let vendor = ok_vendor().await;
    let s = on_cluster(&nats, &vendor.uri(), "");
    playbook(&s, &vendor.uri());
    let out = run(&s, "pb.yaml", &json!({}), &[]);
    assert_eq!(out.code(), 0, "{}", out.all_output());
    let run_id = out.json()["run_id"].as_str().unwrap().to_string();
    let records = journal(&s, &run_id);
    assert_eq!(records[0]["type"], "run_started", "{records:?}");
    assert_eq!(records.last().unwrap()["type"], "run_finished");
    assert_eq!(records.last().unwrap()["status"], "succeeded");
    let verify = s.soar(&["journal", "verify", &run_id, "--allow-unkeyed"], &[]);
    assert_eq!(verify.code(), 0, "{}", verify.all_output());
    assert!(
        !s.path().join(".soar").join("journal").exists(),
        "a sled journal was created beside the cluster's"
    );
    // Every side effect reached the vendor once.
    let posts = vendor.received_requests().await.unwrap();
    let effects = posts
        .iter()
        .filter(|r| r.url.path().starts_with("/effect/"))
        .count();
    assert_eq!(effects, 3, "{posts:?}");
}
