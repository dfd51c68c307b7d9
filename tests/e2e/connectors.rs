//! Connectors, built as wasm and driven through `soar plugins call`, against
//! loopback servers that answer in the vendors' real API shapes.

use serde_json::{json, Value};
use soar_e2e::{wasm, Run, Scratch};
use std::time::Duration;
use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHA: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
const VT_KEY: &str = "vt-key-0123456789abcdef";
const CS_ID: &str = "falcon-client-id-777";
const CS_SECRET: &str = "falcon-client-secret-999";
const HOST_ID: &str = "0a1b2c3d4e5f4a5b8c7d6e5f4a3b2c1d";

fn threatintel(scratch: &Scratch, server: &MockServer, limits: &str) {
    scratch.config(&format!(
        r#"plugins:
  threatintel:
    path: {wasm}
    allowed_hosts: ["{uri}"]
    secrets:
      api_key: {{ env: VT_API_KEY, hosts: ["{uri}"] }}
    config: {{ base_url: "{uri}" }}
    limits: {{ {limits} }}
"#,
        wasm = wasm("threatintel").display(),
        uri = server.uri()
    ));
}

fn lookup_hash(scratch: &Scratch) -> Run {
    let run = scratch.soar(
        &[
            "plugins",
            "call",
            "threatintel",
            "lookup_hash",
            "--json",
            "--input",
            &format!(r#"{{"hash":"{SHA}"}}"#),
        ],
        &[("VT_API_KEY", VT_KEY)],
    );
    assert!(
        !run.all_output().contains(VT_KEY),
        "secret leaked:\n{}",
        run.all_output()
    );
    run
}

fn vt_file(stats: Value) -> Value {
    json!({"data": {"id": SHA, "type": "file",
        "links": {"self": format!("https://www.virustotal.com/api/v3/files/{SHA}")},
        "attributes": {"last_analysis_stats": stats, "reputation": -42}}})
}

async fn vt_answers(response: ResponseTemplate) -> (Scratch, MockServer) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v3/files/{SHA}")))
        .and(header("x-apikey", VT_KEY))
        .respond_with(response)
        .mount(&server)
        .await;
    let scratch = Scratch::new();
    threatintel(&scratch, &server, "http_timeout_ms: 500");
    (scratch, server)
}

#[tokio::test]
async fn threatintel_malicious_hash() {
    let body = vt_file(json!({"malicious": 61, "suspicious": 0, "undetected": 9, "harmless": 0}));
    let (scratch, server) = vt_answers(ResponseTemplate::new(200).set_body_json(body)).await;
    let run = lookup_hash(&scratch);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out = run.json();
    assert_eq!(out["output"]["verdict"], "malicious");
    assert_eq!(out["output"]["stats"]["malicious"], 61);
    assert_eq!(out["exchanges"][0]["status"], 200);
    assert_eq!(
        out["exchanges"][0]["request_headers"][0],
        json!(["x-apikey", "[secret:api_key]"])
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn threatintel_unknown_hash_is_a_verdict_not_a_failure() {
    let body = json!({"error": {"code": "NotFoundError", "message": "File not found"}});
    let (scratch, _server) = vt_answers(ResponseTemplate::new(404).set_body_json(body)).await;
    let run = lookup_hash(&scratch);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.json()["output"]["verdict"], "unknown");
}

async fn assert_failure(response: ResponseTemplate, kind: &str) -> Value {
    let (scratch, _server) = vt_answers(response).await;
    let run = lookup_hash(&scratch);
    assert_eq!(
        run.code(),
        1,
        "stdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert!(
        run.stderr().contains(&format!("error[{kind}]")),
        "{}",
        run.stderr()
    );
    let out = run.json();
    assert_eq!(out["ok"], false);
    assert_eq!(out["error"]["kind"], kind);
    out
}

#[tokio::test]
async fn threatintel_wrong_key_is_unauthorized() {
    let body = json!({"error": {"code": "WrongCredentialsError", "message": "Wrong API key"}});
    assert_failure(
        ResponseTemplate::new(401).set_body_json(body),
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn threatintel_quota_is_rate_limited_with_the_vendor_delay() {
    let body = json!({"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}});
    let out = assert_failure(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "30")
            .set_body_json(body),
        "rate_limited",
    )
    .await;
    assert_eq!(out["error"]["retry_after_ms"], 30_000);
}

#[tokio::test]
async fn threatintel_server_error_is_unavailable() {
    assert_failure(
        ResponseTemplate::new(503).set_body_string("upstream down"),
        "unavailable",
    )
    .await;
}

#[tokio::test]
async fn threatintel_malformed_json_is_permanent() {
    assert_failure(
        ResponseTemplate::new(200).set_body_string("{\"data\": [truncated"),
        "permanent",
    )
    .await;
}

#[tokio::test]
async fn threatintel_slow_vendor_times_out_as_unavailable() {
    let body = vt_file(json!({"harmless": 1}));
    let out = assert_failure(
        ResponseTemplate::new(200)
            .set_delay(Duration::from_secs(5))
            .set_body_json(body),
        "unavailable",
    )
    .await;
    // From the recorded exchange, not a stopwatch: it timed out before the vendor's 5 s answer.
    let exchanges = out["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 1, "{out}");
    let x = &exchanges[0];
    assert_eq!(x["outcome"], "failed", "{x}");
    assert_eq!(x["error"], "timeout", "{x}");
    assert!(
        x.get("status").is_none(),
        "the vendor's answer arrived: {x}"
    );
    assert!(x["duration_ms"].as_u64().unwrap() < 5_000, "{x}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in time"),
        "{out}"
    );
}

// ---- edr (CrowdStrike Falcon) ----

fn edr(scratch: &Scratch, server: &MockServer) {
    scratch.config(&format!(
        r#"plugins:
  edr:
    path: {wasm}
    allowed_hosts: ["{uri}"]
    secrets:
      client_id: {{ env: FALCON_CLIENT_ID, hosts: ["{uri}"] }}
      client_secret: {{ env: FALCON_CLIENT_SECRET, hosts: ["{uri}"] }}
    config: {{ base_url: "{uri}" }}
    dry_run_allow: ["POST /oauth2/token"]
    read_only_allow: ["POST /oauth2/token"]
"#,
        wasm = wasm("edr").display(),
        uri = server.uri()
    ));
}

async fn falcon(status: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(body_string_contains(format!("client_id={CS_ID}")))
        .and(body_string_contains(format!("client_secret={CS_SECRET}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"access_token": "tok-abc", "expires_in": 1799, "token_type": "bearer"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/devices/entities/devices/v2"))
        .and(query_param("ids", HOST_ID))
        .and(header("authorization", "Bearer tok-abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meta": {"query_time": 0.01, "trace_id": "t"}, "errors": [],
            "resources": [{"device_id": HOST_ID, "hostname": "FIN-WS-042", "status": status,
                "platform_name": "Windows", "last_seen": "2026-11-27T09:00:00Z", "local_ip": "10.1.2.3"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/devices/entities/devices-actions/v2"))
        .and(query_param("action_name", "contain"))
        .and(header("authorization", "Bearer tok-abc"))
        .and(body_json(json!({"ids": [HOST_ID]})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "meta": {}, "errors": [], "resources": [{"id": HOST_ID}]
        })))
        .mount(&server)
        .await;
    server
}

fn edr_call(scratch: &Scratch, action: &str, extra: &[&str]) -> Run {
    let input = format!(r#"{{"host_id":"{HOST_ID}"}}"#);
    let mut args = vec![
        "plugins", "call", "edr", action, "--json", "--input", &input,
    ];
    args.extend_from_slice(extra);
    let run = scratch.soar(
        &args,
        &[
            ("FALCON_CLIENT_ID", CS_ID),
            ("FALCON_CLIENT_SECRET", CS_SECRET),
        ],
    );
    let all = run.all_output();
    assert!(
        !all.contains(CS_SECRET) && !all.contains(CS_ID),
        "secret leaked:\n{all}"
    );
    run
}

async fn contain_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/devices/entities/devices-actions/v2")
        .count()
}

#[tokio::test]
async fn edr_get_host_enriches() {
    let server = falcon("normal").await;
    let scratch = Scratch::new();
    edr(&scratch, &server);
    let run = edr_call(&scratch, "get_host", &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out = run.json()["output"].clone();
    assert_eq!(out["hostname"], "FIN-WS-042");
    assert_eq!(out["status"], "normal");
    assert_eq!(out["platform"], "Windows");
    assert_eq!(out["local_ip"], "10.1.2.3");
}

#[tokio::test]
async fn edr_isolate_contains_exactly_once() {
    let server = falcon("normal").await;
    let scratch = Scratch::new();
    edr(&scratch, &server);
    let run = edr_call(&scratch, "isolate_host", &["--allow-destructive"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.json()["output"]["already"], false);
    assert_eq!(contain_requests(&server).await, 1);
    // The vendor-issued access token is masked in the recorded exchanges.
    assert!(!run.stdout().contains("tok-abc"), "{}", run.stdout());
    assert!(
        run.stdout().contains("Bearer [redacted]"),
        "{}",
        run.stdout()
    );
}

#[tokio::test]
async fn edr_isolate_of_a_contained_host_sends_nothing() {
    let server = falcon("contained").await;
    let scratch = Scratch::new();
    edr(&scratch, &server);
    let run = edr_call(&scratch, "isolate_host", &["--allow-destructive"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.json()["output"]["already"], true);
    assert_eq!(contain_requests(&server).await, 0);
}

#[tokio::test]
async fn edr_destructive_call_needs_the_flag_and_sends_nothing_without_it() {
    let server = falcon("normal").await;
    let scratch = Scratch::new();
    edr(&scratch, &server);
    let run = edr_call(&scratch, "isolate_host", &[]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("--allow-destructive"),
        "{}",
        run.stderr()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn edr_dry_run_plans_without_containing() {
    let server = falcon("normal").await;
    let scratch = Scratch::new();
    edr(&scratch, &server);
    let run = edr_call(&scratch, "isolate_host", &["--dry-run"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.json()["output"]["planned"], true);
    assert_eq!(contain_requests(&server).await, 0);
}

#[tokio::test]
async fn edr_bad_credentials_are_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errors": [{"code": 401, "message": "access denied, invalid bearer token"}]}),
        ))
        .mount(&server)
        .await;
    let scratch = Scratch::new();
    edr(&scratch, &server);
    let run = edr_call(&scratch, "get_host", &[]);
    assert_eq!(run.code(), 1);
    assert_eq!(run.json()["error"]["kind"], "unauthorized");
}

#[tokio::test]
async fn edr_rate_limit_and_outage_map_to_retryable_kinds() {
    for (response, kind) in [
        (
            ResponseTemplate::new(429).insert_header("retry-after", "2"),
            "rate_limited",
        ),
        (ResponseTemplate::new(500), "unavailable"),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/oauth2/token"))
            .respond_with(ResponseTemplate::new(201).set_body_json(
                json!({"access_token": "t", "expires_in": 1799, "token_type": "bearer"}),
            ))
            .mount(&server)
            .await;
        Mock::given(path("/devices/entities/devices/v2"))
            .respond_with(response)
            .mount(&server)
            .await;
        let scratch = Scratch::new();
        edr(&scratch, &server);
        let run = edr_call(&scratch, "get_host", &[]);
        assert_eq!(run.code(), 1);
        assert_eq!(run.json()["error"]["kind"], kind);
    }
}
