//! The sandbox holds against a hostile plugin: every attack fails alone,
//! nothing leaves for hosts or secrets it was not granted, and the same host
//! keeps serving normal invocations afterwards.

use serde_json::{json, Value};
use soar_e2e::{wasm, Scratch};
use soar_runner::config::Config;
use soar_runner::plugin_host::{ErrorKind, Invocation, InvokeError, LoadError, PluginHost};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "s3cr3t-TOKEN-value-42";

fn invocation() -> Invocation {
    Invocation {
        run_id: "run-1".into(),
        step_id: "step-1".into(),
        attempt: 1,
        idempotency_key: "key-1".into(),
        dry_run: false,
    }
}

struct Fixture {
    _scratch: Scratch,
    host: PluginHost,
    granted: MockServer,
    other: MockServer,
}

/// `granted` is in the plugin's allowed hosts and the secret's hosts;
/// `other` is in the plugin's allowed hosts only (unless `grant_other` is false).
async fn fixture(extra: &str, grant_other: bool) -> Fixture {
    let granted = MockServer::start().await;
    let other = MockServer::start().await;
    let scratch = Scratch::new();
    let secret_file = scratch.write("api_key.txt", &format!("{SECRET}\n"));
    // `other` holds none of the plugin's secrets: the operator must say
    // that they accept a secret-holding plugin calling it.
    let hosts = if grant_other {
        format!(
            "[\"{}\", \"{}\"]\n    hosts_without_secrets: [\"{}\"]",
            granted.uri(),
            other.uri(),
            other.uri()
        )
    } else {
        format!("[\"{}\"]", granted.uri())
    };
    let yaml = format!(
        r#"plugins:
  hostile:
    path: {wasm}
    allowed_hosts: {hosts}
    secrets:
      api_key: {{ file: {secret}, hosts: ["{granted}"] }}
    limits: {{ memory_mb: 64, timeout_ms: 1000, max_response_bytes: 65536 }}
{extra}"#,
        wasm = wasm("hostile").display(),
        secret = secret_file.display(),
        granted = granted.uri(),
    );
    let config = Config::load(&scratch.config(&yaml)).expect("config");
    let host = PluginHost::load(&config, &scratch.path().join("cache"))
        .await
        .expect("load hostile plugin");
    Fixture {
        _scratch: scratch,
        host,
        granted,
        other,
    }
}

impl Fixture {
    async fn call(&self, action: &str, input: Value) -> soar_runner::plugin_host::Outcome {
        self.host
            .invoke("hostile", action, &input, &invocation())
            .await
    }

    /// The host still works after whatever happened.
    async fn assert_still_serves(&self) {
        let out = self.call("noop", json!({})).await;
        assert_eq!(
            out.result.expect("noop after attack"),
            json!({"done": true})
        );
    }
}

/// Refused by the host: the plugin's own `denied`, or the host failing the
/// invocation for a request it refused.
fn assert_denied(result: &Result<Value, InvokeError>) {
    match result {
        Err(InvokeError::Plugin {
            kind: ErrorKind::Denied,
            ..
        }) => {}
        Err(e @ InvokeError::Refused(_)) => assert_eq!(e.kind_name(), "denied", "{e}"),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn plugin_kind(result: &Result<Value, InvokeError>) -> ErrorKind {
    match result {
        Err(InvokeError::Plugin { kind, .. }) => kind.clone(),
        other => panic!("expected a typed plugin error, got {other:?}"),
    }
}

#[tokio::test]
async fn infinite_loop_is_stopped_within_the_deadline() {
    let f = Arc::new(fixture("", true).await);
    // Own thread: a loop never stopped fails the test instead of hanging it (a hang guard only).
    let (tx, rx) = mpsc::channel();
    let spinning = f.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(spinning.call("spin", json!({}))).result;
        // Dropped before answering: the test thread keeps the last handle.
        drop(spinning);
        let _ = tx.send(result);
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the sandbox never stopped the loop");
    // From the error kind, not a stopwatch: only the epoch deadline stops a loop that never yields.
    assert!(
        matches!(result, Err(InvokeError::Timeout { limit_ms: 1000 })),
        "{result:?}"
    );
    f.assert_still_serves().await;
}

#[tokio::test]
async fn one_gib_allocation_fails_cleanly() {
    let f = fixture("", true).await;
    let out = f.call("alloc", json!({"mb": 1024})).await;
    match &out.result {
        Err(InvokeError::MemoryLimit { limit, requested }) => {
            assert_eq!(*limit, 64 << 20);
            // From the refused grow, not a stopwatch: the whole 1 GiB was refused up front.
            assert!(*requested >= 1024 << 20, "refused at {requested} bytes");
        }
        other => panic!("expected a memory limit error, got {other:?}"),
    }
    // Within the cap, allocation works.
    let ok = f.call("alloc", json!({"mb": 8})).await;
    assert_eq!(ok.result.expect("8 MiB fits"), json!({"done": true}));
    f.assert_still_serves().await;
}

#[tokio::test]
async fn trap_and_panic_fail_the_invocation_with_a_clear_message() {
    let f = fixture("", true).await;
    let out = f.call("trap", json!({})).await;
    assert!(
        matches!(out.result, Err(InvokeError::Trap { .. })),
        "{:?}",
        out.result
    );
    let out = f.call("panic", json!({})).await;
    match &out.result {
        Err(InvokeError::Trap { message }) => {
            assert!(
                message.contains("boom from the hostile fixture"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    f.assert_still_serves().await;
}

#[tokio::test]
async fn environment_and_arguments_are_empty() {
    std::env::set_var("SOAR_TEST_CANARY", "visible-to-the-runner-only");
    let f = fixture("", true).await;
    let out = f
        .call("read_env", json!({"name": "SOAR_TEST_CANARY"}))
        .await;
    assert_eq!(
        out.result.expect("read_env"),
        json!({"value": null, "count": 0, "args": 0})
    );
}

#[tokio::test]
async fn a_plugin_that_imports_the_filesystem_is_refused_at_load() {
    let scratch = Scratch::new();
    let yaml = format!(
        "plugins:\n  fs-snoop:\n    path: {}\n",
        wasm("fs_snoop").display()
    );
    let config = Config::load(&scratch.config(&yaml)).expect("config");
    let host = PluginHost::load(&config, &scratch.path().join("cache"))
        .await
        .expect("the host starts; the plugin is kept aside");
    assert!(host.plugin("fs-snoop").is_none(), "it must not load");
    let err = host.load_error("fs-snoop").expect("its load error");
    assert!(matches!(err, LoadError::ForbiddenImport { .. }), "{err}");
    assert!(err.to_string().contains("wasi:filesystem"), "{err}");
}

#[tokio::test]
async fn request_to_a_host_not_granted_is_denied_and_nothing_is_sent() {
    let f = fixture("", false).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.other)
        .await;
    let out = f
        .call("http", json!({"url": format!("{}/exfil", f.other.uri())}))
        .await;
    assert_eq!(plugin_kind(&out.result), ErrorKind::Denied);
    assert_eq!(f.other.received_requests().await.unwrap().len(), 0);
    assert_eq!(out.exchanges.len(), 1);
    assert!(out.exchanges[0]
        .error
        .as_deref()
        .unwrap()
        .contains("allowed_hosts"));
    f.assert_still_serves().await;
}

#[tokio::test]
async fn secret_not_granted_to_the_plugin_is_refused_and_nothing_is_sent() {
    let f = fixture("", true).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.granted)
        .await;
    let out = f
        .call(
            "http",
            json!({"url": format!("{}/x", f.granted.uri()), "secret_header": ["authorization", "root_password"]}),
        )
        .await;
    assert_eq!(plugin_kind(&out.result), ErrorKind::Denied);
    assert_eq!(f.granted.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn granted_secret_towards_a_host_not_granted_for_it_is_refused() {
    let f = fixture("", true).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.other)
        .await;
    for input in [
        json!({"url": format!("{}/x", f.other.uri()), "secret_header": ["x-apikey", "api_key"]}),
        json!({"method": "POST", "url": format!("{}/x", f.other.uri()), "secret_form": ["password", "api_key"]}),
    ] {
        let out = f.call("http", input).await;
        assert_denied(&out.result);
    }
    assert_eq!(f.other.received_requests().await.unwrap().len(), 0);
}

/// Answers with the request's `x-apikey` header and body, as a careless
/// (or malicious) vendor endpoint might.
struct Echo;

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let key = request
            .headers
            .get("x-apikey")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        ResponseTemplate::new(200)
            .insert_header("x-echo", key.as_str())
            .set_body_string(format!(
                "you sent {key} and {}",
                String::from_utf8_lossy(&request.body)
            ))
    }
}

#[tokio::test]
async fn an_echoed_secret_is_scrubbed_before_the_plugin_sees_it() {
    let f = fixture("    read_only_allow: [\"POST /echo\"]\n", true).await;
    Mock::given(path("/echo"))
        .respond_with(Echo)
        .mount(&f.granted)
        .await;
    let out = f
        .call(
            "http",
            json!({"method": "POST", "url": format!("{}/echo", f.granted.uri()),
                   "secret_header": ["x-apikey", "api_key"], "secret_form": ["password", "api_key"]}),
        )
        .await;
    // The vendor really got the secret...
    let received = f.granted.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].headers.get("x-apikey").unwrap(), SECRET);
    assert!(String::from_utf8_lossy(&received[0].body).contains(SECRET));
    // ...but neither the plugin's output nor the exchange record holds it.
    let output = out.result.expect("echo call").to_string();
    assert!(!output.contains(SECRET), "{output}");
    assert!(output.contains("[redacted:api_key]"), "{output}");
    let record = serde_json::to_string(&out.exchanges).unwrap();
    assert!(!record.contains(SECRET), "{record}");
    assert!(record.contains("[secret:api_key]"), "{record}");
}

#[tokio::test]
async fn dry_run_lets_only_get_and_head_leave() {
    let f = fixture("", true).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.granted)
        .await;
    let dry = Invocation {
        dry_run: true,
        ..invocation()
    };
    let post = f
        .host
        .invoke(
            "hostile",
            "http",
            &json!({"method": "POST", "url": format!("{}/contain", f.granted.uri())}),
            &dry,
        )
        .await;
    assert_denied(&post.result);
    let get = f
        .host
        .invoke(
            "hostile",
            "http",
            &json!({"url": format!("{}/status", f.granted.uri())}),
            &dry,
        )
        .await;
    assert_eq!(get.result.expect("GET in dry run")["status"], 200);
    let received = f.granted.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method.as_str(), "GET");
}

#[tokio::test]
async fn redirects_are_not_followed_around_the_allowlist() {
    let f = fixture("", false).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&f.other)
        .await;
    Mock::given(path("/go"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/stolen", f.other.uri()).as_str()),
        )
        .mount(&f.granted)
        .await;
    let out = f
        .call("http", json!({"url": format!("{}/go", f.granted.uri())}))
        .await;
    assert_eq!(out.result.expect("302 is an answer")["status"], 302);
    assert_eq!(f.other.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn oversized_response_bodies_are_refused() {
    let f = fixture("", true).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(200_000)))
        .mount(&f.granted)
        .await;
    let out = f
        .call("http", json!({"url": format!("{}/big", f.granted.uri())}))
        .await;
    let err = out.result.expect_err("over the 64 KiB cap");
    assert!(err.to_string().contains("65536"), "{err}");
    f.assert_still_serves().await;
}

#[tokio::test]
async fn input_is_checked_against_the_schema_before_invoking() {
    let f = fixture("", true).await;
    let out = f.call("alloc", json!({"mb": "lots"})).await;
    match out.result {
        Err(InvokeError::InvalidInput { problems, .. }) => {
            assert!(problems[0].contains("/mb"), "{problems:?}")
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn each_invocation_gets_a_fresh_instance() {
    // A 40 MiB allocation twice under a 64 MiB cap only fits if no memory
    // survives from the previous invocation.
    let f = fixture("", true).await;
    for _ in 0..3 {
        let out = f.call("alloc", json!({"mb": 40})).await;
        assert_eq!(
            out.result.expect("fresh memory each time"),
            json!({"done": true})
        );
    }
}

#[tokio::test]
async fn no_state_survives_from_one_invocation_to_the_next() {
    let f = fixture("", true).await;
    let first = f
        .call("remember", json!({"value": "run-A secret finding"}))
        .await;
    assert_eq!(first.result.expect("remember"), json!({"value": null}));
    let second = f.call("recall", json!({})).await;
    assert_eq!(second.result.expect("recall"), json!({"value": null}));
}

#[tokio::test]
async fn a_rotated_secret_is_scrubbed_at_once() {
    let f = fixture("    read_only_allow: [\"POST /echo\"]\n", true).await;
    Mock::given(path("/echo"))
        .respond_with(Echo)
        .mount(&f.granted)
        .await;
    let call = || {
        f.call(
            "http",
            json!({"url": format!("{}/echo", f.granted.uri()), "secret_header": ["x-apikey", "api_key"]}),
        )
    };
    let first = call().await.result.expect("echo").to_string();
    assert!(!first.contains(SECRET), "{first}");
    // Rotated within the scrubber's refresh window: the request loads the
    // new value, and the answer echoing it is scrubbed all the same.
    let rotated = "r0tated-SECRET-value-77";
    std::fs::write(f._scratch.path().join("api_key.txt"), rotated).unwrap();
    let second = call().await.result.expect("echo").to_string();
    assert!(!second.contains(rotated), "{second}");
    assert!(second.contains("[redacted:api_key]"), "{second}");
}
