//! Alert senders for end-to-end tests: the shipped source definitions
//! (`examples/sources/*.yaml`) placed under `sources:` of a lab's config,
//! the public sample deliveries in `tests/fixtures/senders/`, and readers of
//! what a server did with them (journal, runs, vendor requests).

use crate::lab::token;
use crate::serve::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

/// A sample delivery, byte for byte.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = repo().join("tests/fixtures/senders").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sample delivery as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

/// `examples/sources/FILE` as source `name` (indented for `sources:`), its
/// playbook path pointing at the repository's shipped playbooks.
pub fn source(name: &str, file: &str) -> String {
    let path = repo().join("examples/sources").join(file);
    let text = std::fs::read_to_string(&path).expect("example source");
    let playbooks = repo().join("playbooks");
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let l = l.replace(
                "playbook: playbooks/",
                &format!("playbook: {}/", playbooks.display()),
            );
            format!("    {l}\n")
        })
        .collect();
    format!("  {name}:\n{body}")
}

/// The records of `run`, through the API.
pub fn journal(c: &Client, run: &str) -> Vec<Value> {
    let a = c.get(&format!("/api/v1/runs/{run}/journal"), token("alice"));
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["records"].as_array().cloned().unwrap_or_default()
}

/// The records of one type.
pub fn of_type<'r>(records: &'r [Value], kind: &str) -> Vec<&'r Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

/// Every run the server knows.
pub fn runs(c: &Client) -> Vec<Value> {
    c.get("/api/v1/runs", token("alice")).json()["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// True once a run report has a final status.
pub fn finished(v: &Value) -> bool {
    matches!(
        v["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// Waits until `run` is finished.
pub fn settle(c: &Client, run: &str) -> Value {
    c.wait_for(run, token("alice"), Duration::from_secs(120), finished)
}

/// The run ids of a batch answer, in event order (`None` for a refused event).
pub fn result_runs(answer: &Value) -> Vec<Option<String>> {
    answer["results"]
        .as_array()
        .expect("a batch answer lists results")
        .iter()
        .map(|r| r["run_id"].as_str().map(str::to_string))
        .collect()
}
