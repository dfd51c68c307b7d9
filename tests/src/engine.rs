//! Helpers for engine tests: a scratch dir whose `soar.yaml` grants the
//! hostile fixture one loopback vendor, and playbooks written beside it.

use crate::{wasm, Run, Scratch};

/// A secret the fixture may send to the vendor; must never reach the journal.
pub const SECRET: &str = "engine-test-secret-5f2c9a";

/// Scratch dir with `soar.yaml` for the `hostile` fixture against `vendor`.
///
/// With `SOAR_TEST_JOURNAL=nats`, its journal is on a fresh cluster
/// ([`Scratch::for_backend`]).
pub fn scratch_for(vendor: &str) -> Scratch {
    let (scratch, journal) = Scratch::for_backend();
    let secret = scratch.write("api_key.txt", SECRET);
    scratch.config(&format!(
        r#"{journal}plugins:
  hostile:
    path: {wasm}
    allowed_hosts: ["{vendor}"]
    secrets:
      api_key: {{ file: {secret}, hosts: ["{vendor}"] }}
    limits: {{ timeout_ms: 5000, http_timeout_ms: 3000 }}
    # The fixture's non-destructive writes, as an operator would list them.
    read_only_allow: ["POST /effect", "POST /effect/*"]
"#,
        wasm = wasm("hostile").display(),
        secret = secret.display(),
    ));
    scratch
}

/// Runs `soar run PLAYBOOK --input alert.json --json` with `alert`.
pub fn run(
    scratch: &Scratch,
    playbook: &str,
    alert: &serde_json::Value,
    extra_env: &[(&str, &str)],
) -> Run {
    scratch.write("alert.json", &alert.to_string());
    scratch.soar(
        &[
            "run",
            playbook,
            "--input",
            "alert.json",
            "--json",
            "--as",
            "tester",
        ],
        extra_env,
    )
}

/// The run's journal as JSON lines.
pub fn journal(scratch: &Scratch, run_id: &str) -> Vec<serde_json::Value> {
    let run = scratch.soar(&["journal", run_id, "--json"], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
        .collect()
}
