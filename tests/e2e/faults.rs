//! Vendor faults injected into the simulator, seen through real connectors
//! and the engine: 5xx retried to success, 429 honoured, 401 not retried, a
//! slow vendor cut off by the step timeout.

use serde_json::json;
use soar_e2e::sim::{self, Fault};
use soar_e2e::{wasm, Scratch};
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r##"name: faults
version: "1"
owner: soc
inputs:
  user: { type: string }
steps:
  - id: user
    uses: identity.get_user
    timeout: 2s
    retry: { max_attempts: 3, initial_delay: 100ms, max_delay: 2s, jitter: 0 }
    with: { user_id: "{{ inputs.user }}" }
  - id: notify
    needs: [user]
    uses: chatops.notify
    retry: { max_attempts: 2, initial_delay: 100ms, jitter: 0 }
    with: { channel: "#soc-alerts", text: "checked {{ steps.user.output.login }}" }
"##;

fn setup(
    okta_token: &str,
) -> (
    tokio::runtime::Runtime,
    sim::Sim,
    Scratch,
    Vec<(String, String)>,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim::start_sim(0)).unwrap();
    let url = sim.uri();
    let s = Scratch::new();
    s.config(&format!(
        r#"plugins:
  identity:
    path: {identity}
    allowed_hosts: ["{url}"]
    secrets: {{ api_token: {{ env: OKTA_TOKEN, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
  chatops:
    path: {chatops}
    allowed_hosts: ["{url}"]
    secrets: {{ bot_token: {{ env: SLACK_TOKEN, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
"#,
        identity = wasm("identity").display(),
        chatops = wasm("chatops").display(),
    ));
    s.write("pb.yaml", PLAYBOOK);
    s.write(
        "alert.json",
        &json!({"user": sim::OKTA_USER_ID}).to_string(),
    );
    let env = vec![
        ("OKTA_TOKEN".to_string(), okta_token.to_string()),
        ("SLACK_TOKEN".to_string(), sim::SLACK_BOT_TOKEN.to_string()),
    ];
    (rt, sim, s, env)
}

fn run(s: &Scratch, env: &[(String, String)]) -> soar_e2e::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s.soar(&["run", "pb.yaml", "--input", "alert.json", "--json"], &env)
}

fn attempts(s: &Scratch, run_id: &str, step: &str) -> Vec<serde_json::Value> {
    s.soar(&["journal", run_id, "--json"], &[])
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "attempt_finished" && r["step"] == step)
        .collect()
}

#[test]
fn transient_5xx_and_429_are_retried_to_success() {
    let (_rt, sim, s, env) = setup(sim::OKTA_TOKEN);
    sim.inject(Fault::status("/api/v1/users/", 503, 2));
    sim.inject(Fault {
        retry_after_s: Some(1),
        ..Fault::status("/api/chat.postMessage", 429, 1)
    });
    let started = Instant::now();
    let r = run(&s, &env);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(
        report["steps"]["user"]["output"]["login"],
        sim::OKTA_USER_LOGIN
    );
    let id = report["run_id"].as_str().unwrap();
    let user = attempts(&s, id, "user");
    assert_eq!(user.len(), 3, "503, 503, 200");
    assert_eq!(user[0]["outcome"]["kind"], "unavailable");
    let notify = attempts(&s, id, "notify");
    assert_eq!(notify.len(), 2);
    assert_eq!(notify[0]["outcome"]["kind"], "rate_limited");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
}

#[test]
fn a_401_is_not_retried_and_nothing_downstream_runs() {
    let (rt, sim, s, env) = setup("revoked-token");
    let r = run(&s, &env);
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["steps"]["user"]["error"]["kind"], "unauthorized");
    let id = report["run_id"].as_str().unwrap();
    assert_eq!(attempts(&s, id, "user").len(), 1);
    let posted = rt
        .block_on(sim.received_requests())
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/api/chat"))
        .count();
    assert_eq!(posted, 0);
}

#[test]
fn a_slow_vendor_is_cut_off_by_the_step_timeout() {
    let (_rt, sim, s, env) = setup(sim::OKTA_TOKEN);
    sim.inject(Fault {
        delay_ms: 5_000,
        times: 3,
        ..Fault::status("/api/v1/users/", 0, 3)
    });
    let started = Instant::now();
    let r = run(&s, &env);
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let id = r.json()["run_id"].as_str().unwrap().to_string();
    let user = attempts(&s, &id, "user");
    assert_eq!(user.len(), 3, "each attempt timed out, then retried");
    assert!(
        user.iter().all(|a| a["outcome"]["kind"] == "unavailable"),
        "{user:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(12));
}
