//! Vendor faults injected into the simulator, seen through real connectors
//! and the engine: 5xx retried to success, 429 honoured, 401 not retried, a
//! slow vendor cut off by the step timeout.

use serde_json::json;
use soar_e2e::lab::Lab;
use soar_e2e::sim::{self, Fault};
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

/// A lab with the playbook and alert written; `okta_token` replaces the
/// simulator's Okta token when given.
fn setup(okta_token: Option<&'static str>) -> (Lab, Vec<(&'static str, &'static str)>) {
    let lab = Lab::new("");
    lab.s.write("pb.yaml", PLAYBOOK);
    let alert = json!({"user": sim::OKTA_USER_ID});
    lab.s.write("alert.json", &alert.to_string());
    let extra = okta_token
        .map(|t| vec![("OKTA_TOKEN", t)])
        .unwrap_or_default();
    (lab, extra)
}

fn run(lab: &Lab, extra: &[(&str, &str)]) -> soar_e2e::Run {
    lab.soar(
        &[
            "run",
            "pb.yaml",
            "--input",
            "alert.json",
            "--as",
            "dave",
            "--json",
        ],
        extra,
    )
}

fn attempts(lab: &Lab, run_id: &str, step: &str) -> Vec<serde_json::Value> {
    lab.journal(run_id)
        .into_iter()
        .filter(|r| r["type"] == "attempt_finished" && r["step"] == step)
        .collect()
}

#[test]
fn transient_5xx_and_429_are_retried_to_success() {
    let (lab, env) = setup(None);
    lab.server.inject(Fault::status("/api/v1/users/", 503, 2));
    lab.server.inject(Fault {
        retry_after_s: Some(1),
        ..Fault::status("/api/chat.postMessage", 429, 1)
    });
    let started = Instant::now();
    let r = run(&lab, &env);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(
        report["steps"]["user"]["output"]["login"],
        sim::OKTA_USER_LOGIN
    );
    let id = report["run_id"].as_str().unwrap();
    let user = attempts(&lab, id, "user");
    assert_eq!(user.len(), 3, "503, 503, 200");
    assert_eq!(user[0]["outcome"]["kind"], "unavailable");
    let notify = attempts(&lab, id, "notify");
    assert_eq!(notify.len(), 2);
    assert_eq!(notify[0]["outcome"]["kind"], "rate_limited");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
}

#[test]
fn a_401_is_not_retried_and_nothing_downstream_runs() {
    let (lab, env) = setup(Some("revoked-token"));
    let r = run(&lab, &env);
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let report = r.json();
    assert_eq!(report["steps"]["user"]["error"]["kind"], "unauthorized");
    let id = report["run_id"].as_str().unwrap();
    assert_eq!(attempts(&lab, id, "user").len(), 1);
    let posted = lab
        .requests()
        .iter()
        .filter(|r| r.url.path().starts_with("/api/chat"))
        .count();
    assert_eq!(posted, 0);
}

#[test]
fn a_slow_vendor_is_cut_off_by_the_step_timeout() {
    // Each answer is delayed 5 s and then succeeds: only the step's 2 s
    // timeout can make every attempt fail.
    let (lab, env) = setup(None);
    lab.server.inject(Fault {
        delay_ms: 5_000,
        times: 3,
        ..Fault::status("/api/v1/users/", 0, 3)
    });
    let r = run(&lab, &env);
    assert_eq!(r.code(), 1, "{}{}", r.stdout(), r.stderr());
    let id = r.json()["run_id"].as_str().unwrap().to_string();
    let user = attempts(&lab, &id, "user");
    assert_eq!(user.len(), 3, "each attempt timed out, then retried");
    assert!(
        user.iter().all(|a| a["outcome"]["kind"] == "unavailable"),
        "{user:?}"
    );
}
