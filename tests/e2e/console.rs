//! The web console in a real headless Chromium against a real `soar serve`
//! and the loopback vendor simulator: sign in, the queue, the approval page
//! with the handoff, evidence, exact inputs and plan, Approve and Deny as
//! clicks, and every way to decide without the right: a viewer, the run's
//! starter, a hand-made POST, a cross-site POST, a GET, an expired session.

mod browser;

use browser::Browser;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use soar_e2e::lab::{token, Lab};
use soar_e2e::serve::{Client, Server};
use soar_e2e::sim;
use std::time::{Duration, Instant};

const EDR_SECRET: &str = "edr-hook-secret-5b1f0c";
const LEAD2_TOKEN: &str = "lead2-token-9c0b";
const WATCHER_TOKEN: &str = "watcher-token-e3d1";
const FEEDER_TOKEN: &str = "feeder-token-77a0";

const CONTAIN: &str = r#"name: contain
version: "1"
owner: soc
inputs:
  host_id: { type: string }
steps:
  - id: host
    uses: edr.get_host
    with: { host_id: "{{ inputs.host_id }}" }
  - id: approve
    needs: [host]
    approval:
      approvers: [soc-lead]
      timeout: 1h
      handoff:
        summary: "Isolate {{ steps.host.output.hostname }}?"
        why: "Falcon saw ransomware behaviour on it"
        affected: "{{ steps.host.output.hostname }}"
        recommended_action: isolate
        uncertainties: "none known"
  - id: isolate
    needs: [host, approve]
    uses: edr.isolate_host
    with: { host_id: "{{ steps.host.output.host_id }}" }
"#;

fn h(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

fn config(session_ttl: &str) -> String {
    format!(
        r#"principals:
  lead2: {{ roles: [soc-lead, ingest], token_sha256: "{lead2}" }}
  watcher: {{ roles: [viewer], token_sha256: "{watcher}" }}
  feeder: {{ roles: [ingest], token_sha256: "{feeder}" }}
server:
  listen: "127.0.0.1:0"
  session_ttl: {session_ttl}
sources:
  edr:
    playbook: pb.yaml
    auth: {{ type: hmac_sha256, secret: {{ env: EDR_HOOK_SECRET }} }}
"#,
        lead2 = h(LEAD2_TOKEN),
        watcher = h(WATCHER_TOKEN),
        feeder = h(FEEDER_TOKEN),
    )
}

const ENV: [(&str, &str); 1] = [("EDR_HOOK_SECRET", EDR_SECRET)];

/// Delivers the host alert and waits until the run waits at its gate.
fn waiting_run(c: &Client) -> String {
    let a = c.deliver("edr", EDR_SECRET, &json!({"host_id": sim::HOST_ID}), &[]);
    assert_eq!(a.status, 202, "{}", a.text);
    let run = a.json()["run_id"].as_str().unwrap().to_string();
    c.wait_for(&run, token("alice"), Duration::from_secs(30), |v| {
        v["status"] == "waiting_approval"
    });
    run
}

fn journal(c: &Client, run: &str) -> Vec<Value> {
    c.get(&format!("/api/v1/runs/{run}/journal"), token("alice"))
        .json()["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn count(records: &[Value], ty: &str) -> usize {
    records.iter().filter(|r| r["type"] == ty).count()
}

fn sign_in(b: &Browser, url: &str, tok: &str) {
    b.goto(&format!("{url}/ui/login"));
    b.fill("#token", tok);
    b.click("#sign-in");
    b.wait_until("signed in, or refused", |b| {
        b.path() != "/ui/login" || b.has("#error")
    });
}

fn screenshots_dir() -> std::path::PathBuf {
    let dir = soar_e2e::target_dir().join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_console_decides_only_with_the_right_and_never_on_a_get() {
    let lab = Lab::new(&config("10m"));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let url = server.url.clone();
    let b = Browser::start();

    // Not signed in: sent to sign in. A wrong token: refused.
    let run = waiting_run(&c);
    b.goto(&format!("{url}/ui/approvals"));
    assert_eq!(b.path(), "/ui/login");
    sign_in(&b, &url, "not-a-token");
    assert!(b.text("#error").contains("not any principal"));
    assert_eq!(b.cookie("soar_session"), None);

    // bob signs in: the queue shows the approval.
    sign_in(&b, &url, token("bob"));
    assert_eq!(b.path(), "/ui/approvals");
    let queue = b.text("#queue");
    assert!(queue.contains("Isolate FIN-WS-042?"), "{queue}");
    assert!(queue.contains("contain"), "{queue}");
    b.screenshot(&screenshots_dir().join("console-queue.png"));
    let session = b.cookie("soar_session").expect("session cookie");
    assert_eq!(session.len(), 64);

    // The approval page: handoff, exact inputs, targets, plan, evidence.
    b.click("#queue a");
    b.wait_path(&format!("/ui/runs/{run}/approvals/approve"));
    let page = b.page_text();
    for needle in [
        "Falcon saw ransomware behaviour on it",
        "recommended action",
        "edr.isolate_host",
        sim::HOST_ID,
        "Dry-run plan",
        "Bindings",
        "approval asked of soc-lead",
        "FIN-WS-042",
    ] {
        assert!(page.contains(needle), "the approval page lacks {needle}");
    }
    assert!(b.content(".inputs").contains(sim::HOST_ID));
    // In the order a lead needs: the handoff, the targets (named, rated,
    // checked), what approving does in words, the form, then evidence and
    // the timeline.
    assert_eq!(b.text("#heading"), "Your decision: Isolate FIN-WS-042?");
    let target = b.text("#targets .target");
    assert!(
        target.contains(&format!("FIN-WS-042 ({})", sim::HOST_ID)),
        "{target}"
    );
    assert!(target.contains("not protected"), "{target}");
    let sentence = b.text("#unlocks .sentence");
    assert!(
        sentence.contains(&format!(
            "runs edr.isolate_host on FIN-WS-042 ({})",
            sim::HOST_ID
        )) && sentence.contains("Network-contain a host"),
        "{sentence}"
    );
    let tops: Vec<f64> = [
        "#handoff",
        "#targets",
        "#unlocks",
        "#decide",
        "#evidence",
        "#timeline",
    ]
    .iter()
    .map(|css| b.top(css))
    .collect();
    assert!(tops.windows(2).all(|w| w[0] < w[1]), "{tops:?}");
    // The evidence reads as fields, the probe's `effects` in words.
    let evidence = b.text("#evidence");
    assert!(
        evidence.contains("effects.isolate_host\tnot in effect")
            || evidence.contains("effects.isolate_host not in effect"),
        "{evidence}"
    );
    assert!(!b.has("#targets .blocked"));
    b.screenshot(&screenshots_dir().join("console-approval.png"));
    // Viewing it decided nothing; nor does a GET of the decision URL.
    assert_eq!(count(&journal(&c, &run), "approval_voted"), 0);
    let get = c.send(
        "GET",
        &format!("/ui/runs/{run}/approvals/approve/approve"),
        &[("cookie", &format!("soar_session={session}"))],
        Vec::new(),
    );
    assert_eq!(get.status, 405);
    assert_eq!(count(&journal(&c, &run), "approval_voted"), 0);
    assert!(lab.destructive_requests().is_empty());

    // A cross-site POST with bob's cookie and the page's CSRF token: refused.
    let csrf = b.attr("input[name=csrf]", "value");
    let forged = c.send(
        "POST",
        &format!("/ui/runs/{run}/approvals/approve/approve"),
        &[
            ("cookie", &format!("soar_session={session}")),
            ("content-type", "application/x-www-form-urlencoded"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        format!("csrf={csrf}&reason=x").into_bytes(),
    );
    assert_eq!(forged.status, 403);
    // Same site but without the session's CSRF token: refused.
    let no_csrf = c.send(
        "POST",
        &format!("/ui/runs/{run}/approvals/approve/approve"),
        &[
            ("cookie", &format!("soar_session={session}")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        b"csrf=0&reason=x".to_vec(),
    );
    assert_eq!(no_csrf.status, 403);
    assert_eq!(count(&journal(&c, &run), "approval_voted"), 0);
    assert!(lab.destructive_requests().is_empty());

    // Approve: a click; the run succeeds with exactly one containment.
    let clicked = Instant::now();
    b.click("#approve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.destructive_requests().is_empty() {
        assert!(Instant::now() < deadline, "no containment request");
        std::thread::sleep(Duration::from_millis(2));
    }
    let click_to_vendor = clicked.elapsed();
    b.wait_path(&format!("/ui/runs/{run}/approvals/approve/approve"));
    assert!(b.text("#message").contains("granted by bob"));
    let done = c.wait_for(&run, token("alice"), Duration::from_secs(30), |v| {
        v["status"] == "succeeded"
    });
    assert_eq!(done["status"], "succeeded");
    assert_eq!(lab.destructive_requests().len(), 1);
    eprintln!("approve click to containment request: {click_to_vendor:?}");

    // Deny with a reason: no containment. The host is contained now, so a
    // new alert for it asks again; deny it.
    let run2 = waiting_run(&c);
    b.goto(&format!("{url}/ui/runs/{run2}/approvals/approve"));
    b.fill(
        "#deny-reason",
        "false positive: the EDR flagged a backup tool",
    );
    b.click("#deny");
    let denied = c.wait_for(&run2, token("alice"), Duration::from_secs(30), |v| {
        v["status"] == "failed"
    });
    assert_eq!(
        denied["steps"]["approve"]["error"]["kind"], "denied",
        "{denied}"
    );
    assert_ne!(
        denied["steps"]["isolate"]["status"], "succeeded",
        "{denied}"
    );
    assert_eq!(lab.destructive_requests().len(), 1);
    let reasons: Vec<Value> = journal(&c, &run2)
        .into_iter()
        .filter(|r| r["type"] == "approval_voted")
        .collect();
    assert_eq!(
        reasons[0]["reason"],
        "false positive: the EDR flagged a backup tool"
    );

    // A viewer sees why, no buttons; their hand-made POST is refused and
    // journaled.
    let run3 = waiting_run(&c);
    b.goto(&format!("{url}/ui/approvals"));
    let csrf = b.attr("input[name=csrf]", "value");
    b.click("header button");
    b.wait_path("/ui/login");
    sign_in(&b, &url, WATCHER_TOKEN);
    b.goto(&format!("{url}/ui/runs/{run3}/approvals/approve"));
    assert!(!b.has("#approve") && !b.has("#deny"));
    assert!(b.text("#why-not").contains("needs one of [soc-lead]"));
    let watcher_session = b.cookie("soar_session").unwrap();
    assert_ne!(watcher_session, session, "signing out ended bob's session");
    let old = c.send(
        "GET",
        "/ui/approvals",
        &[("cookie", &format!("soar_session={session}"))],
        Vec::new(),
    );
    assert!(
        old.text.contains("Sign in"),
        "bob's old session still works"
    );
    let watcher_csrf = b.attr("input[name=csrf]", "value");
    assert_ne!(watcher_csrf, csrf);
    let hand_made = c.send(
        "POST",
        &format!("/ui/runs/{run3}/approvals/approve/approve"),
        &[
            ("cookie", &format!("soar_session={watcher_session}")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={watcher_csrf}&reason=mine").into_bytes(),
    );
    assert_eq!(hand_made.status, 403, "{}", hand_made.text);
    let refused = journal(&c, &run3)
        .into_iter()
        .filter(|r| r["type"] == "command_refused" && r["by"] == "watcher")
        .count();
    assert_eq!(refused, 1);

    // The run's starter sees why they cannot approve it.
    let a = c.post(
        "/api/v1/runs",
        LEAD2_TOKEN,
        &json!({"playbook": "contain", "alert": {"host_id": sim::HOST_ID}}),
    );
    let run4 = a.json()["run_id"].as_str().unwrap().to_string();
    c.wait_for(&run4, token("alice"), Duration::from_secs(30), |v| {
        v["status"] == "waiting_approval"
    });
    b.click("header button");
    b.wait_path("/ui/login");
    sign_in(&b, &url, LEAD2_TOKEN);
    b.goto(&format!("{url}/ui/runs/{run4}/approvals/approve"));
    assert!(b.text("#why-not").contains("started this run"));
    assert!(!b.has("#approve"));
    assert_eq!(lab.destructive_requests().len(), 1);

    // A run's page follows its journal live: decided elsewhere (over the
    // API), the open page shows the outcome without anyone reloading it.
    b.goto(&format!("{url}/ui/runs/{run3}"));
    assert_eq!(b.text("#run-status"), "waiting_approval");
    let a = c.post(
        &format!("/api/v1/runs/{run3}/steps/approve/approve"),
        token("alice"),
        &json!({"reason": "seen"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    b.wait_until("the open run page shows the outcome", |b| {
        b.try_text("#run-status").as_deref() == Some("succeeded")
    });
}

#[test]
fn an_expired_session_is_sent_back_to_sign_in() {
    let lab = Lab::new(&config("2s"));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let b = Browser::start();
    sign_in(&b, &server.url, token("bob"));
    assert_eq!(b.path(), "/ui/approvals");
    std::thread::sleep(Duration::from_millis(2_500));
    b.goto(&format!("{}/ui/approvals", server.url));
    assert_eq!(b.path(), "/ui/login");
}

#[test]
fn a_next_path_with_a_line_break_or_another_host_goes_to_the_queue() {
    let lab = Lab::new(&config("10m"));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (next, expect) in [
        ("/ui/runs", "/ui/runs"),
        ("/ui/approvals\r\nSet-Cookie: evil=1", "/ui/approvals"),
        ("//evil.example/ui/", "/ui/approvals"),
        ("https://evil.example/ui/", "/ui/approvals"),
        ("/ui/\\evil.example", "/ui/approvals"),
    ] {
        let r = http
            .post(format!("{}/ui/login", server.url))
            .form(&[("token", token("bob")), ("next", next)])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{next:?}");
        assert_eq!(r.headers()["location"], expect, "{next:?}");
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies.len(), 1, "{next:?}");
        assert!(!cookies[0].to_str().unwrap().contains("evil"));
    }
}

/// A client that shows redirects instead of following them.
fn raw_http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over HTTP as the holder of `tok`: the `soar_session=…` pair
/// for a `Cookie` header.
fn session_cookie(http: &reqwest::blocking::Client, url: &str, tok: &str) -> String {
    let r = http
        .post(format!("{url}/ui/login"))
        .form(&[("token", tok)])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

fn security_events(c: &Client) -> Vec<Value> {
    let a = c.get("/api/v1/security/events", token("alice"));
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["events"].as_array().cloned().unwrap()
}

#[test]
fn sign_in_is_throttled_per_address_and_each_lockout_is_journaled_once() {
    let lab = Lab::new(&config("10m"));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let http = raw_http();
    let mut statuses = Vec::new();
    for i in 0..40 {
        let r = http
            .post(format!("{}/ui/login", server.url))
            .form(&[("token", format!("guess-{i}")), ("next", "/ui/runs".into())])
            .send()
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=7).contains(&wait), "Retry-After {wait}");
            let body = r.text().unwrap();
            assert!(body.contains("Too many sign-in attempts"), "{body}");
            // Still the sign-in form, still going where the user meant to.
            // (minijinja escapes `/` as `&#x2f;`.)
            assert!(
                body.contains(r#"name="next" value="&#x2f;ui&#x2f;runs""#),
                "{body}"
            );
        }
        statuses.push(status);
    }
    // The burst is answered (wrong token: 401); then the address waits.
    assert_eq!(statuses[..10], [401; 10]);
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 2, "{statuses:?}");
    let lockouts: Vec<Value> = security_events(&Client::new(&server))
        .into_iter()
        .filter(|e| e["kind"] == "sign_in_locked_out")
        .collect();
    assert!(!lockouts.is_empty());
    // One entry per lockout, not one per refused attempt.
    assert!(lockouts.len() < refused, "{lockouts:?}");
    assert_eq!(lockouts[0]["client"], "127.0.0.1");
    assert_eq!(lockouts[0]["request"], "POST /ui/login");
    assert!(lockouts[0]["detail"]
        .as_str()
        .unwrap()
        .contains("locked out for"));
}

#[test]
fn cross_site_and_csrf_refusals_are_journaled_with_the_client_address() {
    let lab = Lab::new(&config("10m"));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let run = waiting_run(&c);
    let http = raw_http();
    let cookie = session_cookie(&http, &server.url, token("bob"));
    // Cross-site: a plain page that says what happened (not the sign-in
    // form with an empty "a session that lasts").
    let r = http
        .post(format!(
            "{}/ui/runs/{run}/approvals/approve/approve",
            server.url
        ))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", "whatever")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body = r.text().unwrap();
    assert!(body.contains("came from another site"), "{body}");
    assert!(!body.contains("session that lasts"), "{body}");
    // Same site, but not the session's CSRF token.
    let r = http
        .post(format!("{}/ui/runs/{run}/cancel", server.url))
        .header("cookie", &cookie)
        .form(&[("csrf", "0".repeat(64)), ("reason", "x".into())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("CSRF token does not match"));
    let events = security_events(&c);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["cross_site_refused", "csrf_refused"]);
    for e in &events {
        assert_eq!(e["client"], "127.0.0.1", "{e}");
        assert_eq!(e["principal"], "bob", "{e}");
    }
    assert_eq!(
        events[0]["request"],
        format!("POST /ui/runs/{run}/approvals/approve/approve")
    );
    assert_eq!(events[1]["request"], format!("POST /ui/runs/{run}/cancel"));
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    // Nothing was decided or cancelled, and the log's chain verifies.
    let records = journal(&c, &run);
    assert_eq!(count(&records, "approval_voted"), 0);
    assert_eq!(count(&records, "run_cancelled"), 0);
    let v = c.get("/api/v1/journal/verify", token("alice")).json();
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_protected_target_named_only_by_id_is_flagged_before_the_vote_and_the_page_follows_votes_live()
{
    let lab = Lab::new(&format!("{}protected:\n  hosts: [DC01]\n", config("10m")));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let url = server.url.clone();
    // The alert names the domain controller by device id only, and carries
    // a file name with a right-to-left override.
    let alert = json!({"host_id": sim::DC_HOST_ID, "file": "report\u{202e}fdp.exe"});
    let a = c.deliver("edr", EDR_SECRET, &alert, &[]);
    let run = a.json()["run_id"].as_str().unwrap().to_string();
    c.wait_for(&run, token("alice"), Duration::from_secs(30), |v| {
        v["status"] == "waiting_approval"
    });

    // A deep link (as Slack's "Open in soar" sends) survives sign-in.
    let b = Browser::start();
    let deep = format!("/ui/runs/{run}/approvals/approve");
    b.goto(&format!("{url}{deep}"));
    assert_eq!(b.path(), "/ui/login");
    b.fill("#token", token("bob"));
    b.click("#sign-in");
    b.wait_path(&deep);

    // Before anyone votes: DC01 is named and flagged, above the form.
    let blocked = b.text("#targets .blocked");
    assert!(
        blocked.contains(&format!("DC01 ({})", sim::DC_HOST_ID)) && blocked.contains("protected"),
        "{blocked}"
    );
    assert!(b.text("#targets .target").contains("PROTECTED (DC01)"));
    assert!(b.top("#targets .blocked") < b.top("#decide"));
    // The override shows as an escape; it reorders nothing.
    let evidence = b.text("#evidence");
    assert!(evidence.contains("report\\u{202e}fdp.exe"), "{evidence}");
    assert!(!b.page_text().contains('\u{202e}'));
    b.screenshot_page(&screenshots_dir().join("approval-protected.png"));

    // Someone else decides over the API: the open page shows it live, and
    // says who decided and when instead of offering a vote that would fail.
    let a = c.post(
        &format!("/api/v1/runs/{run}/steps/approve/approve"),
        token("alice"),
        &json!({"reason": "go"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    b.wait_until("the open approval page shows alice's decision", |b| {
        b.try_text("#gate-status")
            .is_some_and(|t| t.contains("granted by alice"))
    });
    let why = b.text("#why-not");
    assert!(
        why.contains("already decided: granted by alice at 20"),
        "{why}"
    );
    assert!(!b.has("#approve"));

    // The guard still blocks the step; nothing reached the vendor. The run
    // page says so in a banner, lists the steps in graph order with their
    // outcomes, and draws the graph.
    c.wait_for(&run, token("alice"), Duration::from_secs(30), |v| {
        v["status"] == "failed"
    });
    assert!(lab.destructive_requests().is_empty());
    b.goto(&format!("{url}/ui/runs/{run}"));
    let banner = b.text("#outcome");
    assert!(banner.contains("did NOT run"), "{banner}");
    assert!(
        banner.contains("isolate") && banner.contains("protected"),
        "{banner}"
    );
    let ids = b.js("return Array.from(document.querySelectorAll('#steps tr td:first-child')).map(td => td.textContent);");
    assert_eq!(ids, json!(["host", "approve", "isolate"]));
    let outcome = b.text("#steps");
    assert!(outcome.contains("hostname DC01"), "{outcome}");
    let nodes = b.js("return Array.from(document.querySelectorAll('#graph svg g.node')).map(g => [g.dataset.step, g.dataset.status]);");
    assert_eq!(
        nodes,
        json!([
            ["host", "succeeded"],
            ["approve", "succeeded"],
            ["isolate", "blocked"]
        ])
    );
    assert!(b.content("#graph svg").contains("gate"));
    b.screenshot_page(&screenshots_dir().join("run-graph.png"));
}

const TRIAGE: &str = r#"name: triage
version: "1"
owner: soc
inputs:
  host_id: { type: string }
  verdict: { type: string }
steps:
  - id: host
    uses: edr.get_host
    with: { host_id: "{{ inputs.host_id }}" }
outputs:
  outcome: "{{ inputs.verdict }}"
"#;

#[test]
fn the_overview_and_the_summary_count_200_runs_with_mixed_outcomes_exactly() {
    let cfg = config("10m").replace(
        "  session_ttl: 10m\n",
        "  session_ttl: 10m\n  playbooks: [triage.yaml]\n",
    );
    let lab = Lab::new(&cfg);
    lab.s.write("pb.yaml", CONTAIN);
    lab.s.write("triage.yaml", TRIAGE);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    // 180 runs closed with no human, 60 per verdict.
    for i in 0..180 {
        let verdict = ["benign", "false_positive", "incident"][i % 3];
        let a = c.post(
            "/api/v1/runs",
            LEAD2_TOKEN,
            &json!({"playbook": "triage", "alert": {"host_id": sim::HOST_ID, "verdict": verdict}}),
        );
        assert!(a.status == 200 || a.status == 202, "{}", a.text);
    }
    // 20 containments asked: alice grants 10, denies 10.
    for i in 0..20 {
        let run = waiting_run(&c);
        let (vote, reason) = if i % 2 == 0 {
            ("approve", "go")
        } else {
            ("deny", "benign tool")
        };
        let a = c.post(
            &format!("/api/v1/runs/{run}/steps/approve/{vote}"),
            token("alice"),
            &json!({"reason": reason}),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let summary = |q: &str| c.get(&format!("/api/v1/metrics/summary{q}"), token("alice"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = summary("").json();
        if s["total"]["finished"] == 200 {
            break s;
        }
        assert!(Instant::now() < deadline, "runs never finished: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let t = &s["total"];
    assert_eq!(t["runs"], 200);
    assert_eq!(t["automated"], 180);
    assert_eq!(t["automation_rate"], 0.9);
    let a = &t["approvals"];
    assert_eq!(
        (
            a["requested"].as_u64(),
            a["granted"].as_u64(),
            a["denied"].as_u64()
        ),
        (Some(20), Some(10), Some(10))
    );
    assert_eq!(a["acceptance_rate"], 0.5);
    assert_eq!(
        t["closures"],
        json!({"benign": 60, "false_positive": 60, "incident": 60, "closed": 10, "failed": 10})
    );
    assert_eq!(t["response_actions"]["authorized"], 10);
    assert_eq!(t["response_actions"]["succeeded"], 10);
    assert_eq!(t["time_to_decision_s"]["count"], 20);
    assert_eq!(s["playbooks"]["triage"]["runs"], 180);
    assert_eq!(s["sources"]["source:edr"]["runs"], 20);
    let per_day: u64 = s["decisions_per_day"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_day, 20);
    // Filters, and bad input named.
    assert_eq!(summary("?playbook=contain").json()["total"]["runs"], 20);
    assert_eq!(
        summary("?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z").json()["total"]["runs"],
        0
    );
    let bad = summary("?from=yesterday");
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("`from`"), "{}", bad.text);
    assert_eq!(summary("?enriched_steps=0").status, 422);
    assert_eq!(c.get("/api/v1/metrics/summary", WATCHER_TOKEN).status, 200);

    // The Overview draws it in Chromium.
    let b = Browser::start();
    sign_in(&b, &server.url, token("alice"));
    b.goto(&format!("{}/ui/overview", server.url));
    assert!(b.text("#fig-runs").contains("200 started, 200 finished"));
    assert!(b.text("#fig-automation").contains("180 of 200 (90%)"));
    assert!(b
        .text("#fig-approvals")
        .contains("20 asked: 10 granted, 10 denied"));
    let drawn = b.js("return Array.from(document.querySelectorAll('#chart-days g.bar title')).map(t => t.textContent);");
    let total: u64 = drawn
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap()
                .rsplit(": ")
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 20, "{drawn}");
    let times = b.js("return Array.from(document.querySelectorAll('#chart-times g.bar')).length;");
    assert_eq!(times, 7);
    let rows = b.js("return Array.from(document.querySelectorAll('#chart-mix g.mix-row')).map(g => g.dataset.playbook);");
    assert_eq!(rows, json!(["contain", "triage"]));
    b.screenshot_page(&screenshots_dir().join("overview.png"));

    // `soar report` reads the same from the journal once the server is gone.
    server.kill();
    let out = lab.soar(&["report", "--json", "--since", "1d"], &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let local: Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(local["total"]["closures"], t["closures"]);
    assert_eq!(local["total"]["approvals"]["acceptance_rate"], 0.5);
    let text = lab.soar(&["report", "--since", "1d"], &[]).stdout();
    assert!(
        text.contains(
            "automation:          180 of 200 finished run(s) closed with no human (90.0%)"
        ),
        "{text}"
    );

    // The server kept each finished run's facts beside the journal; a
    // report reads them, so an edited entry shows in it...
    let tamper = soar_e2e::tamper::Tamper::open(&lab.s.path().join(".soar"));
    let cached = tamper.derived_runs("metrics");
    assert_eq!(cached.len(), 200);
    tamper.edit_derived("metrics", &cached[0], "/value/closure", json!("forged"));
    drop(tamper);
    let report = |lab: &Lab| -> Value {
        let out = lab.soar(&["report", "--json", "--since", "1d"], &[]);
        assert_eq!(out.code(), 0, "{}", out.stderr());
        serde_json::from_str(&out.stdout()).unwrap()
    };
    assert_eq!(report(&lab)["total"]["closures"]["forged"], 1);
    // ...until verify recomputes it from the records and names the run.
    let verify = lab.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &[]);
    assert_ne!(verify.code(), 0, "{}", verify.stdout());
    let line = format!(
        "run {}: its cached metrics (tree derived:metrics) does not match the run's records",
        cached[0]
    );
    assert!(verify.stdout().contains(&line), "{}", verify.stdout());
    assert_eq!(report(&lab)["total"]["closures"], t["closures"]);
    let again = lab.soar(&["journal", "verify", "--all", "--allow-unkeyed"], &[]);
    assert_eq!(again.code(), 0, "{}", again.stdout());
}

/// Not a pass/fail test: measures the approval page of a gate over 100
/// steps with a 1 MiB alert (BENCHMARKS.md). Run with
/// `cargo test -p soar-e2e --test console -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_the_approval_page_with_100_steps_and_1_mib_of_evidence() {
    let mut pb = String::from(
        "name: big\nversion: \"1\"\nowner: soc\ninputs:\n  host_id: { type: string }\nsteps:\n",
    );
    for i in 0..98 {
        pb.push_str(&format!("  - id: s{i}\n    uses: edr.get_host\n    with: {{ host_id: \"{{{{ inputs.host_id }}}}\" }}\n"));
    }
    let needs: Vec<String> = (0..98).map(|i| format!("s{i}")).collect();
    pb.push_str(&format!("  - id: approve\n    needs: [{}]\n    approval: {{ approvers: [soc-lead], timeout: 1h }}\n", needs.join(", ")));
    pb.push_str("  - id: isolate\n    needs: [s0, approve]\n    uses: edr.isolate_host\n    with: { host_id: \"{{ steps.s0.output.host_id }}\" }\n");
    let cfg = config("10m").replace(
        "  session_ttl: 10m\n",
        "  session_ttl: 10m\n  max_body: 4194304\n  playbooks: [big.yaml]\n",
    );
    let lab = Lab::new(&cfg);
    lab.s.write("pb.yaml", CONTAIN);
    lab.s.write("big.yaml", &pb);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let mut alert = serde_json::Map::new();
    alert.insert("host_id".into(), json!(sim::HOST_ID));
    for i in 0..5_000 {
        alert.insert(format!("field_{i:04}"), json!("x".repeat(200)));
    }
    let body = json!({"playbook": "big", "alert": alert});
    assert!(body.to_string().len() > 1 << 20);
    let a = c.post("/api/v1/runs", LEAD2_TOKEN, &body);
    let run = a.json()["run_id"].as_str().unwrap().to_string();
    c.wait_for(&run, token("alice"), Duration::from_secs(60), |v| {
        v["status"] == "waiting_approval"
    });
    let http = raw_http();
    let cookie = session_cookie(&http, &server.url, token("bob"));
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let page = http
            .get(format!("{}/ui/runs/{run}/approvals/approve", server.url))
            .header("cookie", &cookie)
            .send()
            .unwrap()
            .text()
            .unwrap();
        times.push(t.elapsed());
        bytes = page.len();
    }
    times.sort();
    let floor = {
        let mut f = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            c.get(&format!("/api/v1/runs/{run}"), token("alice"));
            f.push(t.elapsed());
        }
        f.sort();
        f[10]
    };
    eprintln!(
        "approval page, 100 steps + 1 MiB alert: {bytes} bytes of HTML; GET p50 {:?}, max {:?}; floor (GET /api/v1/runs/ID, the same journal read) p50 {floor:?}",
        times[10], times[19]
    );
}

#[test]
fn the_catalog_shows_each_playbooks_purpose_sources_response_actions_and_limits() {
    let pb = CONTAIN.replace(
        "owner: soc\n",
        "owner: soc\npurpose: Contain a host the EDR flags\nescalation: the SOC lead on call\nlimits:\n  - one host per run\n",
    );
    let lab = Lab::new(&config("10m"));
    lab.s.write("pb.yaml", &pb);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let a = c.get("/api/v1/playbooks", token("alice"));
    assert_eq!(a.status, 200, "{}", a.text);
    let entry = &a.json()["playbooks"][0];
    assert_eq!(entry["name"], "contain");
    assert_eq!(entry["purpose"], "Contain a host the EDR flags");
    assert_eq!(entry["sources"], json!(["edr"]));
    assert_eq!(entry["limits"], json!(["one host per run"]));
    assert_eq!(entry["response_actions"][0]["uses"], "edr.isolate_host");
    assert_eq!(entry["response_actions"][0]["gated"], true);
    assert_eq!(c.get("/api/v1/playbooks", "nobody").status, 401);
    let b = Browser::start();
    sign_in(&b, &server.url, token("alice"));
    b.goto(&format!("{}/ui/catalog", server.url));
    let section = b.text("#pb-contain");
    for needle in [
        "Contain a host the EDR flags",
        "edr.isolate_host",
        "after an approval",
        "the SOC lead on call",
        "one host per run",
    ] {
        assert!(section.contains(needle), "{needle}: {section}");
    }
    b.screenshot_page(&screenshots_dir().join("catalog.png"));
    // `soar validate` names a malformed catalog key where it is.
    lab.s.write(
        "bad.yaml",
        &CONTAIN.replace("owner: soc\n", "owner: soc\nlimits: one host per run\n"),
    );
    let out = lab.soar(&["validate", "bad.yaml"], &[]);
    assert_eq!(out.code(), 2);
    let said = format!("{}{}", out.stdout(), out.stderr());
    assert!(
        said.contains("bad.yaml:4:9: `limits` must be a list, not text"),
        "{said}"
    );
}

#[test]
fn a_principal_that_may_only_send_alerts_reads_no_run_in_the_console() {
    let lab = Lab::new(&config("10m"));
    lab.s.write("pb.yaml", CONTAIN);
    let server = Server::start(&lab, &ENV);
    let c = Client::new(&server);
    let run = waiting_run(&c);
    let http = raw_http();
    let cookie = session_cookie(&http, &server.url, FEEDER_TOKEN);
    for page in [
        "/ui/approvals".to_string(),
        "/ui/runs".into(),
        format!("/ui/runs/{run}"),
        format!("/ui/runs/{run}/approvals/approve"),
        "/ui/overview".into(),
        "/ui/catalog".into(),
    ] {
        let r = http
            .get(format!("{}{page}", server.url))
            .header("cookie", &cookie)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{page}");
        let body = r.text().unwrap();
        assert!(body.contains("do not let you read runs"), "{page}: {body}");
        assert!(!body.contains(sim::HOST_ID), "{page} shows the alert");
    }
}
