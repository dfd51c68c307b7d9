//! The CLI as a client of `soar serve`: with `--server URL` (or
//! `SOAR_SERVER`), or when the data dir's journal is held by a running
//! server (it leaves `server.json` beside it), operator and read commands
//! go through the API with the caller's token instead of the journal lock.
//! The server applies every rule; this module only renders its answers.

use super::approvals::TokenSource;
use super::runs::exit_for;
use super::{exit, Exit, Globals};
use crate::inert;
use crate::journal::{Resolution, RunStatus, Vote};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// A server to talk to, and the caller's token.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The server's URL: `--server`, else the address a running server left
/// beside the journal (if it answers).
pub async fn discover(globals: &Globals) -> Option<String> {
    if let Some(url) = &globals.server {
        return Some(url.trim_end_matches('/').to_string());
    }
    let text = std::fs::read_to_string(crate::server::address_file(&globals.data_dir)).ok()?;
    let url = serde_json::from_str::<Value>(&text).ok()?["url"]
        .as_str()?
        .trim_end_matches('/')
        .to_string();
    let http = client().ok()?;
    let alive = http
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    alive.then_some(url)
}

/// The HTTP client; `SOAR_SERVER_CA` names a PEM file of the certificate
/// (or its CA) a server with a private certificate presents.
fn client() -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5));
    if let Some(path) = std::env::var_os("SOAR_SERVER_CA") {
        let pem = std::fs::read(&path)
            .map_err(|e| format!("SOAR_SERVER_CA {}: {e}", Path::new(&path).display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("SOAR_SERVER_CA {}: {e}", Path::new(&path).display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

/// An answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
    /// The body as text.
    text: String,
}

impl Remote {
    /// A client of `base` with the token from `token`.
    pub fn new(base: String, token: &TokenSource) -> Result<Self, Exit> {
        let token = token.read()?.map(|t| t.trim().to_string());
        let http = client().map_err(|e| Exit::failed(format!("error: HTTP client: {e}")))?;
        Ok(Remote { base, token, http })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, Exit> {
        let body = body.map(|b| ("application/json", b.to_string()));
        self.send(method, path, body).await
    }

    /// Any call: `body` as text with its media type.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<Answer, Exit> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((media, text)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, media).body(text);
        }
        let resp = req.send().await.map_err(|e| {
            Exit::failed(format!(
                "error: cannot reach the server at {}: {e}",
                self.base
            ))
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Exit::failed(format!("error: reading the server's answer: {e}")))?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"message": String::from_utf8_lossy(&bytes)}));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Answer { status, body, text })
    }

    /// A state call: `body` as text with its media type (an import). A
    /// refusal of it is not journaled in a run: there is none.
    pub(super) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<Value, Exit> {
        answered(self.send(method, path, body).await?, false)
    }

    /// A state `GET` whose answer is text (an export's JSON lines).
    pub(super) async fn text(&self, path: &str) -> Result<String, Exit> {
        let mut a = self.send(reqwest::Method::GET, path, None).await?;
        let text = std::mem::take(&mut a.text);
        answered(a, false).map(|_| text)
    }

    async fn get(&self, path: &str) -> Result<Value, Exit> {
        let a = self.call(reqwest::Method::GET, path, None).await?;
        ok_or_exit(a)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Exit> {
        let a = self.call(reqwest::Method::POST, path, Some(body)).await?;
        ok_or_exit(a)
    }
}

/// A refusal is exit 4, a usage error 2, anything else 1.
fn ok_or_exit(a: Answer) -> Result<Value, Exit> {
    answered(a, true)
}

/// [`ok_or_exit`]; `journaled`: the server journals a refusal of this call.
fn answered(a: Answer, journaled: bool) -> Result<Value, Exit> {
    if (200..300).contains(&a.status) {
        return Ok(a.body);
    }
    let message = a.body["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| a.body.to_string());
    let message = inert::line(&message).into_owned();
    let code = match a.status {
        401 | 403 | 409 => exit::REFUSED,
        400 | 404 | 413 | 415 | 422 => exit::INVALID,
        _ => exit::FAILED,
    };
    let message = if code == exit::REFUSED && journaled {
        format!("{message} (journaled by the server)")
    } else if code == exit::REFUSED {
        message
    } else {
        format!("error: {message} (HTTP {})", a.status)
    };
    Err(Exit {
        code,
        message: Some(message),
    })
}

pub(super) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn status_of(report: &Value) -> RunStatus {
    report["status"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(RunStatus::Running)
}

/// `soar run|status` output from a report's JSON.
fn print_report(report: &Value, json_out: bool) {
    if json_out {
        println!("{report}");
        return;
    }
    let s = |v: &Value| inert::line(v.as_str().unwrap_or(&v.to_string())).into_owned();
    let dedup = if report["deduplicated"] == json!(true) {
        " (deduplicated: existing run)"
    } else {
        ""
    };
    println!(
        "run {} [{}] {}{dedup}",
        s(&report["run_id"]),
        s(&report["playbook"]),
        s(&report["status"])
    );
    if let Some(steps) = report["steps"].as_object() {
        for (id, st) in steps {
            println!("  {:<24} {}", inert::line(id), s(&st["status"]));
        }
    }
    if let Some(n) = report["merged_count"].as_u64().filter(|n| *n > 0) {
        println!(
            "repeats: {n} later deliveries merged into this run (alert_merged in its journal)"
        );
    }
    if let Some(pending) = report["pending_approvals"].as_array() {
        for p in pending {
            super::approvals::print_pending(p);
        }
    }
}

fn done(report: &Value, json_out: bool) -> Exit {
    print_report(report, json_out);
    Exit {
        code: exit_for(status_of(report)),
        message: None,
    }
}

/// `soar approve|deny` through the server.
pub async fn vote(
    r: &Remote,
    run_id: &str,
    step: &str,
    vote: Vote,
    reason: &str,
    json_out: bool,
) -> Exit {
    let verb = match vote {
        Vote::Approve => "approve",
        Vote::Deny => "deny",
    };
    let path = format!(
        "/api/v1/runs/{}/steps/{}/{verb}?wait=true",
        seg(run_id),
        seg(step)
    );
    match r.post(&path, json!({"reason": reason})).await {
        Ok(a) if a["vote"] == json!("recorded") => {
            println!(
                "vote recorded: {} of {} approval(s) for `{}`; waiting for more",
                a["approvals"],
                a["needed"],
                inert::line(step)
            );
            Exit {
                code: exit::PAUSED,
                message: None,
            }
        }
        Ok(a) => {
            if !json_out {
                let by: Vec<&str> = a["decided_by"]
                    .as_array()
                    .map(|v| v.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "approval `{}` {} by {} (through the server)",
                    inert::line(step),
                    a["decision"].as_str().unwrap_or("?"),
                    inert::line(&by.join(", "))
                );
            }
            done(&a, json_out)
        }
        Err(e) => e,
    }
}

/// `soar resolve` through the server.
pub async fn resolve(
    r: &Remote,
    run_id: &str,
    step: &str,
    outcome: Resolution,
    reason: &str,
    json_out: bool,
) -> Exit {
    let path = format!(
        "/api/v1/runs/{}/steps/{}/resolve?wait=true",
        seg(run_id),
        seg(step)
    );
    match r
        .post(&path, json!({"outcome": outcome, "reason": reason}))
        .await
    {
        Ok(a) => done(&a, json_out),
        Err(e) => e,
    }
}

/// `soar cancel` through the server.
pub async fn cancel(r: &Remote, run_id: &str, reason: &str) -> Exit {
    let path = format!("/api/v1/runs/{}/cancel?wait=true", seg(run_id));
    match r.post(&path, json!({"reason": reason})).await {
        Ok(a) => {
            println!(
                "run {} {}",
                inert::line(run_id),
                inert::line(a["status"].as_str().unwrap_or("?"))
            );
            Exit::ok()
        }
        Err(e) => e,
    }
}

/// `soar status` through the server.
pub async fn status(r: &Remote, run_id: &str, json_out: bool) -> Exit {
    match r.get(&format!("/api/v1/runs/{}", seg(run_id))).await {
        Ok(a) => {
            print_report(&a, json_out);
            integrity(r, run_id).await
        }
        Err(e) => e,
    }
}

/// What the server says of the run just shown: exit 1, saying why, when it
/// does not verify.
async fn integrity(r: &Remote, run_id: &str) -> Exit {
    let path = format!("/api/v1/journal/verify?run_id={}", seg(run_id));
    match r.get(&path).await {
        Ok(a) => {
            let texts = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            };
            let mut problems: Vec<String> = a["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|run| texts(&run["problems"]))
                .collect();
            problems.extend(texts(&a["signed"]["problems"]));
            if problems.is_empty() && a["ok"] != json!(true) {
                problems.push("the server says it does not verify".into());
            }
            super::runs::integrity_exit(run_id, &problems)
        }
        Err(e) => e,
    }
}

/// `soar runs` through the server.
pub async fn runs(r: &Remote, status: Option<&str>, json_out: bool) -> Exit {
    let path = match status {
        Some(s) => format!("/api/v1/runs?status={}", seg(s)),
        None => "/api/v1/runs".to_string(),
    };
    match r.get(&path).await {
        Ok(a) if json_out => {
            println!("{a}");
            Exit::ok()
        }
        Ok(a) => {
            let s = |v: &Value| inert::line(v.as_str().unwrap_or("")).into_owned();
            for row in a["runs"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<18} {:<16} {} by {}",
                    s(&row["run_id"]),
                    s(&row["playbook"]),
                    s(&row["status"]),
                    s(&row["started_at"]),
                    s(&row["started_by"])
                );
            }
            Exit::ok()
        }
        Err(e) => e,
    }
}

/// `soar pending` through the server.
pub async fn pending(r: &Remote, json_out: bool) -> Exit {
    match r.get("/api/v1/approvals").await {
        Ok(a) if json_out => {
            println!("{a}");
            Exit::ok()
        }
        Ok(a) => {
            let entries = a["pending"].as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                println!("no approvals waiting");
            }
            for e in &entries {
                super::approvals::print_pending(e);
            }
            Exit::ok()
        }
        Err(e) => e,
    }
}

/// `soar report` through the server.
pub async fn report(r: &Remote, args: &super::report::ReportArgs) -> Exit {
    let q = args.query(crate::journal::now_unix_millis());
    let mut path = format!(
        "/api/v1/metrics/summary?from={}&to={}&enriched_steps={}",
        crate::journal::format_unix_millis(q.from_ms),
        crate::journal::format_unix_millis(q.to_ms),
        q.enriched_steps
    );
    if let Some(p) = &q.playbook {
        path.push_str(&format!("&playbook={}", seg(p)));
    }
    match r.get(&path).await {
        Ok(v) => super::report::print_value(&v, args.json),
        Err(e) => e,
    }
}

/// `soar journal RUN_ID` through the server.
pub async fn journal(r: &Remote, run_id: &str, json_out: bool) -> Exit {
    match r
        .get(&format!("/api/v1/runs/{}/journal", seg(run_id)))
        .await
    {
        Ok(a) => {
            for rec in a["records"].as_array().into_iter().flatten() {
                if json_out {
                    println!("{rec}");
                } else {
                    let mut detail = rec.clone();
                    if let Some(o) = detail.as_object_mut() {
                        for k in ["seq", "at", "type", "hash"] {
                            o.remove(k);
                        }
                    }
                    println!(
                        "{:>4} {} {:<16} {}",
                        rec["seq"],
                        inert::line(rec["at"].as_str().unwrap_or("")),
                        inert::line(rec["type"].as_str().unwrap_or("?")),
                        inert::line(&detail.to_string())
                    );
                }
            }
            integrity(r, run_id).await
        }
        Err(e) => e,
    }
}

/// `soar journal verify` through the server.
pub async fn verify(r: &Remote, run_id: Option<&str>, allow_unkeyed: bool) -> Exit {
    let path = match run_id {
        Some(id) => format!("/api/v1/journal/verify?run_id={}", seg(id)),
        None => "/api/v1/journal/verify".into(),
    };
    match r.get(&path).await {
        Ok(a) => {
            let mut bad = 0;
            for run in a["runs"].as_array().into_iter().flatten() {
                let id = inert::line(run["run_id"].as_str().unwrap_or("?")).into_owned();
                if run["ok"] == json!(true) {
                    println!("{id}: ok ({} records)", run["records"]);
                } else {
                    bad += 1;
                    for p in run["problems"].as_array().into_iter().flatten() {
                        println!("{id}: {}", inert::line(p.as_str().unwrap_or("")));
                    }
                }
            }
            let signed: Option<crate::journal::SignedReport> =
                serde_json::from_value(a["signed"].clone()).ok();
            let Some(signed) = &signed else {
                return Exit::failed("error: the server's answer has no `signed` report");
            };
            // The server already kept only what concerns the run asked.
            let chain_bad = super::runs::print_signed(signed, None) || a["ok"] != json!(true);
            let of = a["runs"].as_array().map_or(0, Vec::len);
            super::runs::verify_exit(bad, of, chain_bad, signed.keyed, allow_unkeyed)
        }
        Err(e) => e,
    }
}

/// `soar run` through the server: the server's copy of the playbook (by
/// name, same content) starts; the report once it finishes or pauses.
pub async fn run(r: &Remote, name: &str, sha256: &str, alert: Value, json_out: bool) -> Exit {
    let body = json!({"playbook": name, "playbook_sha256": sha256, "alert": alert});
    let started = match r.post("/api/v1/runs", body).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let Some(run_id) = started["run_id"].as_str().map(str::to_string) else {
        return Exit::failed("error: the server answered without a run id");
    };
    loop {
        match r.get(&format!("/api/v1/runs/{}", seg(&run_id))).await {
            Ok(mut report) if status_of(&report) != RunStatus::Running => {
                report["deduplicated"] = started["deduplicated"].clone();
                return done(&report, json_out);
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return e,
        }
    }
}

/// Refuses (exit 4) when the token is not `claimed`'s: `--as` names who
/// the caller means to be, the token proves who they are.
pub async fn same_principal(r: &Remote, claimed: &str) -> Result<(), Exit> {
    let me = r.get("/api/v1/whoami").await?;
    let name = me["name"].as_str().unwrap_or("");
    let claimed_norm = crate::names::normalise(claimed).unwrap_or_default();
    if name == claimed_norm {
        return Ok(());
    }
    // A token typed as the name is not echoed back.
    let is_token = r
        .token
        .as_deref()
        .is_some_and(|t| t.trim() == claimed.trim());
    Err(Exit {
        code: exit::REFUSED,
        message: Some(format!(
            "refused: the token is `{}`'s, not `{}`'s; nothing was sent",
            inert::line(name),
            inert::line(&crate::operations::shown_claim(claimed, is_token))
        )),
    })
}
