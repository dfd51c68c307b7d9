//! A hostile connector (and a hostile vendor) against the real `soar`
//! binary: what an action may do is the host's call, secrets do not walk out
//! in any encoding, the host's own caps hold with the runner's memory
//! bounded, broken manifests fail only their plugin, the starter is a proven
//! identity, and text from outside cannot forge a terminal line.

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use soar_e2e::{soar_bin, wasm, Run, Scratch};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "s3cr3t-TOKEN-value-42/x+y=z";
const OTHER_SECRET: &str = "other-vendor-key-9q8w7e";
const LEAD_TOKEN: &str = "lead-token-4f1d";
const ANALYST_TOKEN: &str = "analyst-token-8c2a";

/// A scratch dir whose `soar.yaml` grants the hostile fixture two vendors
/// (each with its own secret) and also configures a connector whose
/// `describe()` attacks the host.
struct Bench {
    rt: tokio::runtime::Runtime,
    granted: MockServer,
    other: MockServer,
    s: Scratch,
}

/// Echoes the request's `x-apikey` (or `authorization`) in the encoding its
/// path names, as a careless or malicious vendor might; keeps what `/store`
/// got and gives it back from `/fetch`.
struct Vendor {
    stored: std::sync::Mutex<String>,
}

impl Respond for Vendor {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |n: &str| {
            request
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let key = header("x-apikey");
        let path = request.url.path();
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = match path.strip_prefix("/echo/").unwrap_or("") {
            "plain" => json!({"echo": format!("your key is {key}")}),
            "base64" => json!({"echo": b64.encode(format!("k={key}"))}),
            "base64url" => {
                json!({"echo": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key)})
            }
            "hex" => json!({"echo": hex::encode_upper(&key)}),
            "percent" => {
                json!({"echo": url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()})
            }
            "split" => {
                let (a, b) = key.split_at(key.len() / 2);
                json!({"a": a, "b": b})
            }
            "basic" => json!({"echo": header("authorization")}),
            _ if path == "/store" => {
                *self.stored.lock().unwrap() = key;
                json!({"stored": true})
            }
            _ if path == "/fetch" => json!({"token": *self.stored.lock().unwrap()}),
            _ if path == "/handoff" => {
                // Raw control characters in a text body, as the plugin reads it.
                return ResponseTemplate::new(200).set_body_string(
                    "FIN-WS-042\r\n  approve: soar approve rFORGED approve --as x\u{1b}[8m\u{202e}",
                );
            }
            _ => json!({}),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Bench {
    /// `plugin_extra`: lines under `plugins.hostile` (4-space indent);
    /// `attack`: what the broken connector's `describe()` does.
    fn new(plugin_extra: &str, attack: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (granted, other) = rt.block_on(async {
            let granted = MockServer::start().await;
            Mock::given(any())
                .respond_with(Vendor {
                    stored: Default::default(),
                })
                .mount(&granted)
                .await;
            let other = MockServer::start().await;
            Mock::given(any())
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
                .mount(&other)
                .await;
            (granted, other)
        });
        let s = Scratch::new();
        s.write("api_key.txt", &format!("{SECRET}\n"));
        s.write("other_key.txt", OTHER_SECRET);
        let b = Bench {
            rt,
            granted,
            other,
            s,
        };
        b.configure(plugin_extra, attack);
        b
    }

    fn configure(&self, plugin_extra: &str, attack: &str) {
        let (g, o) = (self.granted.uri(), self.other.uri());
        self.s.config(&format!(
            r#"plugins:
  hostile:
    path: {hostile}
    allowed_hosts: ["{g}", "{o}"]
    secrets:
      api_key: {{ file: api_key.txt, hosts: ["{g}"] }}
      other_key: {{ file: other_key.txt, hosts: ["{o}"] }}
    limits: {{ timeout_ms: 10000, memory_mb: 256 }}
{plugin_extra}
  bad:
    path: {bad}
    config: {{ attack: "{attack}" }}
approvals:
  approvers:
    lead: {{ roles: [soc-lead], token_sha256: "{lead}" }}
    analyst: {{ roles: [analyst], token_sha256: "{analyst}" }}
protected:
  hosts: [DC01]
"#,
            hostile = wasm("hostile").display(),
            bad = wasm("bad_manifest").display(),
            lead = sha(LEAD_TOKEN),
            analyst = sha(ANALYST_TOKEN),
        ));
    }

    fn soar(&self, args: &[&str]) -> Run {
        self.s.soar(args, &[("SOAR_TOKEN", ANALYST_TOKEN)])
    }

    /// Writes `pb.yaml` and an empty alert, and runs it as the analyst
    /// (`--json` when `json`).
    fn run(&self, playbook: &str, json: bool) -> Run {
        self.s.write("pb.yaml", playbook);
        self.s.write("alert.json", "{}");
        let mut args = vec!["run", "pb.yaml", "--input", "alert.json", "--as", "analyst"];
        if json {
            args.push("--json");
        }
        self.soar(&args)
    }

    fn call(&self, action: &str, input: Value) -> Run {
        self.soar(&[
            "plugins",
            "call",
            "hostile",
            action,
            "--input",
            &input.to_string(),
            "--json",
        ])
    }

    fn received(&self, server: &MockServer) -> Vec<Request> {
        self.rt
            .block_on(server.received_requests())
            .expect("recording")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.granted.uri())
    }

    /// Runs `soar ARGS`, sampling its peak RSS (`VmHWM`) until it exits.
    fn soar_peak_rss(&self, args: &[&str]) -> (Run, u64) {
        let child = Command::new(soar_bin())
            .args(args)
            .current_dir(self.s.path())
            .env_remove("SOAR_CONFIG")
            .env("SOAR_DATA_DIR", self.s.path().join(".soar"))
            .env("SOAR_TOKEN", ANALYST_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn soar");
        let status = format!("/proc/{}/status", child.id());
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler = {
            let peak = peak.clone();
            std::thread::spawn(move || {
                while let Ok(text) = std::fs::read_to_string(&status) {
                    if let Some(kb) = text
                        .lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let out = child.wait_with_output().expect("soar ends");
        let _ = sampler.join();
        (
            Run(out),
            peak.load(std::sync::atomic::Ordering::Relaxed) << 10,
        )
    }
}

fn kind(r: &Run) -> String {
    let v = r.json();
    v["error"]["kind"].as_str().unwrap_or("").to_string()
}

/// Every form in which `secret` could be written down.
fn forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out = vec![
        secret.to_string(),
        hex::encode(secret),
        hex::encode_upper(secret),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        STANDARD.encode(format!("svc:{secret}")),
    ];
    for e in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(e.encode(secret));
    }
    out
}

/// No file under `dir`, and none of `texts`, holds `secret` in any form.
fn assert_nowhere(dir: &Path, texts: &[String], secret: &str) {
    let forms = forms(secret);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|e| e.to_str()) != Some("txt") {
                let bytes = std::fs::read(&p).unwrap_or_default();
                for f in &forms {
                    let found = bytes.windows(f.len()).any(|w| w == f.as_bytes());
                    assert!(!found, "{} holds the secret as `{f}`", p.display());
                }
            }
        }
    }
    for t in texts {
        for f in &forms {
            assert!(
                !t.contains(f.as_str()),
                "output holds the secret as `{f}`:\n{t}"
            );
        }
    }
}

#[test]
fn a_read_only_action_sends_no_state_changing_request() {
    let b = Bench::new(
        "    read_only_allow: [\"POST /devices/entities/devices-actions/v2\"]",
        "ok",
    );
    let contain = b.url("/devices/entities/devices-actions/v2?action_name=contain");
    // A POST with a query the rule does not name; a GET dressed as a POST.
    for input in [
        json!({"method": "POST", "url": contain, "json": {"ids": ["dc01"]}}),
        json!({"method": "PUT", "url": b.url("/hosts/dc01")}),
        json!({"url": contain, "headers": [["X-HTTP-Method-Override", "POST"]]}),
    ] {
        let r = b.call("http", input.clone());
        assert_eq!(r.code(), 1, "{input}: {}", r.all_output());
        assert_eq!(kind(&r), "denied", "{input}: {}", r.stdout());
        assert_eq!(r.json()["exchanges"][0]["outcome"], "denied");
    }
    assert_eq!(b.received(&b.granted).len(), 0, "nothing left the host");
    // Exactly what the operator listed does leave.
    let listed = b.call(
        "http",
        json!({"method": "POST", "url": b.url("/devices/entities/devices-actions/v2")}),
    );
    assert_eq!(listed.code(), 0, "{}", listed.all_output());
    let got = b.received(&b.granted);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].url.query(), None);
}

#[test]
fn a_read_only_action_in_a_playbook_is_refused_at_egress() {
    let b = Bench::new("", "ok");
    b.s.write(
        "pb.yaml",
        &format!(
            r#"name: sneaky
version: "1"
owner: soc
steps:
  - id: look
    uses: hostile.http
    with: {{ method: POST, url: "{}" }}
"#,
            b.url("/devices/entities/devices-actions/v2?action_name=contain")
        ),
    );
    b.s.write("alert.json", "{}");
    let r = b.soar(&[
        "run",
        "pb.yaml",
        "--input",
        "alert.json",
        "--as",
        "analyst",
        "--json",
    ]);
    assert_eq!(r.code(), 1, "{}", r.all_output());
    let report = r.json();
    assert_eq!(report["steps"]["look"]["status"], "failed");
    assert_eq!(report["steps"]["look"]["error"]["kind"], "denied");
    assert_eq!(b.received(&b.granted).len(), 0);
}

#[test]
fn overrides_only_make_an_action_stricter() {
    let b = Bench::new(
        "    actions:\n      http: { destructive: true, targets: { url: domain } }",
        "ok",
    );
    let r = b.call("http", json!({"url": b.url("/x")}));
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(r.stderr().contains("--allow-destructive"), "{}", r.stderr());
    let inspect = b.soar(&["plugins", "inspect", "hostile", "--json"]).json();
    let http = inspect["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "http")
        .unwrap()
        .clone();
    assert_eq!(http["destructive"], true);
    assert!(http["targets"].to_string().contains("url"), "{http}");

    b.configure("    actions:\n      wipe: { destructive: false }", "ok");
    let r = b.soar(&["plugins", "list"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(
        r.stderr()
            .contains("plugins.hostile.actions.wipe.destructive"),
        "{}",
        r.stderr()
    );
    assert!(r.stderr().contains("soar.yaml:"), "{}", r.stderr());
}

#[test]
fn a_destructive_action_without_targets_needs_the_operator_to_say_so() {
    let b = Bench::new("", "ok");
    b.s.write(
        "pb.yaml",
        r#"name: untargeted
version: "1"
owner: soc
steps:
  - id: wipe
    uses: hostile.wipe_untargeted
    auto_approve: "true"
    with: { note: "all of it" }
"#,
    );
    let r = b.soar(&["validate", "pb.yaml"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(
        r.stdout().contains("names no target field"),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().contains("pb.yaml:6:"), "{}", r.stdout());
    b.configure(
        "    actions:\n      wipe_untargeted: { untargeted: true }",
        "ok",
    );
    let r = b.soar(&["validate", "pb.yaml"]);
    assert_eq!(r.code(), 0, "{}", r.all_output());
}

#[test]
fn an_echoed_secret_is_walked_out_in_no_encoding() {
    let b = Bench::new("", "ok");
    let mut printed = Vec::new();
    for mode in [
        "plain",
        "base64",
        "base64url",
        "hex",
        "percent",
        "split",
        "basic",
    ] {
        // The plugin logs what it decoded; the runner's debug log shows
        // plugin log lines on stderr too.
        let input =
            json!({"fetch": b.url(&format!("/echo/{mode}")), "decode": mode, "to": b.other.uri()});
        let r = b.s.soar(
            &[
                "plugins",
                "call",
                "hostile",
                "exfil",
                "--input",
                &input.to_string(),
                "--json",
            ],
            &[
                ("SOAR_TOKEN", ANALYST_TOKEN),
                ("SOAR_LOG", "soar_runner=debug"),
            ],
        );
        assert!(r.stderr().contains("plugin log"), "{}", r.stderr());
        printed.push(r.all_output());
        // Either the plugin got only a scrubbed echo, or what it pieced
        // together was refused on its way out.
        let v = r.json();
        if mode == "split" {
            assert_eq!(v["error"]["kind"], "denied", "{mode}: {v}");
        }
    }
    // The trip through a vendor: posted in one invocation, read back in the next.
    let stored = b.call(
        "http",
        json!({"url": b.url("/store"), "secret_header": ["x-apikey", "api_key"]}),
    );
    assert_eq!(stored.code(), 0, "{}", stored.all_output());
    let fetched = b.call("http", json!({"url": b.url("/fetch")}));
    printed.push(fetched.all_output());
    assert!(
        fetched.stdout().contains("[redacted:api_key]"),
        "{}",
        fetched.stdout()
    );
    // A run too, so the journal holds exchanges and outputs.
    b.s.write(
        "pb.yaml",
        &format!(
            r#"name: echo
version: "1"
owner: soc
steps:
  - id: fetch
    uses: hostile.http
    with: {{ url: "{}", secret_header: [x-apikey, api_key] }}
"#,
            b.url("/echo/base64")
        ),
    );
    b.s.write("alert.json", "{}");
    let run = b.soar(&["run", "pb.yaml", "--input", "alert.json", "--as", "analyst"]);
    assert_eq!(run.code(), 0, "{}", run.all_output());
    printed.push(run.all_output());
    let other = b.received(&b.other);
    let sent: Vec<String> = other
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {}",
                r.url,
                r.headers,
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect();
    assert_nowhere(&b.s.path().join(".soar"), &[sent.join("\n")], SECRET);
    assert_nowhere(&b.s.path().join(".soar"), &printed, SECRET);
}

#[test]
fn a_plugin_with_secrets_cannot_reach_an_origin_without_one() {
    let b = Bench::new("", "ok");
    let exfil = MockServerOn::start(&b.rt);
    // The operator adds an origin that holds none of the plugin's secrets.
    let text = std::fs::read_to_string(b.s.path().join("soar.yaml")).unwrap();
    let text = text.replacen(
        &format!("\"{}\"]", b.other.uri()),
        &format!("\"{}\", \"{}\"]", b.other.uri(), exfil.0.uri()),
        1,
    );
    b.s.config(&text);
    let r = b.soar(&["plugins", "list"]);
    assert_eq!(r.code(), 2, "{}", r.all_output());
    assert!(
        r.stderr().contains("hosts_without_secrets"),
        "{}",
        r.stderr()
    );
    assert_eq!(b.received(&exfil.0).len(), 0);
}

/// A mock server started on a bench's runtime.
struct MockServerOn(MockServer);

impl MockServerOn {
    fn start(rt: &tokio::runtime::Runtime) -> Self {
        MockServerOn(rt.block_on(MockServer::start()))
    }
}

/// The peak RSS any one resource attack may cause: the runner's baseline
/// (wasmtime, sled, one 64 MiB sandbox) is about 60-80 MB in a debug build.
const RSS_BOUND: u64 = 300 << 20;

#[test]
fn resource_attacks_hit_the_hosts_caps_with_bounded_memory() {
    let b = Bench::new("", "ok");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("big_output", json!({"mb": 40}), "output_limit"),
        ("deep_output", json!({"depth": 127}), "output_limit"),
        (
            "log_flood",
            json!({"records": 60, "field_bytes": 4 << 20, "fields": 4}),
            "log_limit",
        ),
        ("log_flood", json!({"records": 100_000}), "log_limit"),
        (
            "request_loop",
            json!({"url": b.url("/x"), "n": 100_000}),
            "request_limit",
        ),
    ];
    for (action, input, expected) in cases {
        let args = [
            "plugins",
            "call",
            "hostile",
            action,
            "--input",
            &input.to_string(),
            "--json",
        ];
        let (r, peak) = b.soar_peak_rss(&args);
        println!(
            "{action} {input}: peak RSS {} MiB, kind {}",
            peak >> 20,
            kind(&r)
        );
        assert_eq!(kind(&r), expected, "{action}: {}", r.all_output());
        assert!(peak < RSS_BOUND, "{action}: peak RSS {} MiB", peak >> 20);
    }
    // Exactly the cap of requests reached the vendor, and the record is capped.
    let requests = b.received(&b.granted).len();
    assert_eq!(requests, 100, "the 101st request is refused");
    // Requests the host refuses for their size never panic it.
    for (action, input) in [
        ("many_headers", json!({"url": b.url("/x"), "n": 40_000})),
        (
            "long_url",
            json!({"url": "http://not-granted.invalid/", "bytes": 1 << 20, "n": 99}),
        ),
        ("long_url", json!({"url": b.url("/x"), "bytes": 1 << 20})),
    ] {
        let args = [
            "plugins",
            "call",
            "hostile",
            action,
            "--input",
            &input.to_string(),
            "--json",
        ];
        let (r, peak) = b.soar_peak_rss(&args);
        println!("{action}: peak RSS {} MiB", peak >> 20);
        assert_eq!(r.code(), 0, "{action}: {}", r.all_output());
        assert_eq!(r.json()["output"]["ok"], 0, "{action}: {}", r.stdout());
        assert!(peak < RSS_BOUND, "{action}: peak RSS {} MiB", peak >> 20);
    }
    assert_eq!(
        b.received(&b.granted).len(),
        requests,
        "none of those was sent"
    );
    let ok = b.call("noop", json!({}));
    assert_eq!(ok.code(), 0, "the runner still serves: {}", ok.all_output());
}

#[test]
fn the_deepest_accepted_output_reads_back_from_the_journal() {
    let b = Bench::new("", "ok");
    // 64 levels including the output object itself: the default cap.
    b.s.write(
        "pb.yaml",
        r#"name: deep
version: "1"
owner: soc
steps:
  - id: deep
    uses: hostile.deep_output
    with: { depth: 64 }
  - id: deeper
    uses: hostile.deep_output
    on_error: continue
    with: { depth: 65 }
"#,
    );
    b.s.write("alert.json", "{}");
    let r = b.soar(&[
        "run",
        "pb.yaml",
        "--input",
        "alert.json",
        "--as",
        "analyst",
        "--json",
    ]);
    assert_eq!(r.code(), 0, "{}", r.all_output());
    let report = r.json();
    assert_eq!(report["steps"]["deep"]["status"], "succeeded");
    assert_eq!(report["steps"]["deeper"]["error"]["kind"], "output_limit");
    let run = report["run_id"].as_str().unwrap().to_string();
    for args in [
        vec!["status", run.as_str(), "--json"],
        vec!["journal", run.as_str(), "--json"],
        vec!["journal", "verify", run.as_str(), "--allow-unkeyed"],
        vec!["replay", run.as_str()],
    ] {
        let r = b.soar(&args);
        assert_eq!(r.code(), 0, "{args:?}: {}", r.all_output());
    }
}

#[test]
fn a_huge_retry_after_is_capped_by_the_steps_max_delay() {
    let b = Bench::new("", "ok");
    for ms in [u64::MAX, 1_000_000_000_000_000] {
        b.s.write(
            "pb.yaml",
            &format!(
                r#"name: slow
version: "1"
owner: soc
steps:
  - id: slow
    uses: hostile.rate_limited
    retry: {{ max_attempts: 2, initial_delay: 10ms, max_delay: 50ms }}
    with: {{ ms: {ms} }}
"#
            ),
        );
        b.s.write("alert.json", "{}");
        let r = b.soar(&[
            "run",
            "pb.yaml",
            "--input",
            "alert.json",
            "--as",
            "analyst",
            "--json",
        ]);
        assert_eq!(r.code(), 1, "{}", r.all_output());
        let run = r.json()["run_id"].as_str().unwrap().to_string();
        let journal = b.soar(&["journal", &run, "--json"]).stdout();
        let retry: Value = journal
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["type"] == "retry_scheduled")
            .expect("a retry was scheduled");
        assert_eq!(retry["delay_ms"], 50, "{retry}");
    }
}

#[test]
fn a_broken_connector_fails_only_the_steps_that_use_it() {
    for attack in ["ref_self", "ref_cycle", "backref", "deep", "huge", "spin"] {
        let b = Bench::new("", attack);
        let list = b.soar(&["plugins", "list", "--json"]);
        assert_eq!(list.code(), 0, "{attack}: {}", list.all_output());
        let broken = list.json()["broken"].clone();
        assert_eq!(broken[0]["name"], "bad", "{attack}: {broken}");
        println!("{attack}: {}", broken[0]["error"]);
        let ok = b.call("noop", json!({}));
        assert_eq!(ok.code(), 0, "{attack}: {}", ok.all_output());
        let call = b.soar(&["plugins", "call", "bad", "noop", "--input", "{}"]);
        assert_eq!(call.code(), 1, "{attack}: {}", call.all_output());
        assert!(
            call.stderr().contains("failed to load"),
            "{}",
            call.stderr()
        );
    }
    // Every command works around it: validate, run, pending, approve (whose
    // refusal is journaled), resume.
    let b = Bench::new("", "ref_self");
    b.s.write(
        "good.yaml",
        r#"name: good
version: "1"
owner: soc
steps:
  - id: approve
    approval: { approvers: [soc-lead], timeout: 10m, handoff: { summary: "s", why: "w", affected: "a", recommended_action: "r" } }
  - id: wipe
    needs: [approve]
    uses: hostile.wipe
    with: { host: "WS-1" }
"#,
    );
    b.s.write(
        "uses-bad.yaml",
        "name: bad\nversion: \"1\"\nowner: soc\nsteps:\n  - id: x\n    uses: bad.noop\n    with: {}\n",
    );
    b.s.write("alert.json", "{}");
    assert_eq!(b.soar(&["validate", "good.yaml"]).code(), 0);
    let v = b.soar(&["validate", "uses-bad.yaml"]);
    assert_eq!(v.code(), 2);
    assert!(v.stdout().contains("failed to load"), "{}", v.stdout());
    let r = b.soar(&[
        "run",
        "good.yaml",
        "--input",
        "alert.json",
        "--as",
        "analyst",
        "--json",
    ]);
    assert_eq!(r.code(), 3, "{}", r.all_output());
    let run = r.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(b.soar(&["pending"]).code(), 0);
    let refused = b.s.soar(
        &["approve", &run, "approve", "--as", "lead", "--reason", "x"],
        &[("SOAR_TOKEN", "wrong")],
    );
    assert_eq!(refused.code(), 4, "{}", refused.all_output());
    let journal = b.soar(&["journal", &run, "--json"]).stdout();
    assert!(journal.contains("command_refused"), "{journal}");
    assert_eq!(b.soar(&["resume", "--all"]).code(), 3);
}

#[test]
fn the_starter_is_a_proven_identity() {
    let b = Bench::new("", "ok");
    b.s.write(
        "pb.yaml",
        "name: n\nversion: \"1\"\nowner: soc\nsteps:\n  - id: x\n    uses: hostile.noop\n    with: {}\n",
    );
    b.s.write("alert.json", "{}");
    let args = |who: &'static str| ["run", "pb.yaml", "--input", "alert.json", "--as", who];
    // Someone else's name with the analyst's token; a look-alike; no token.
    for who in ["lead", "an\u{0430}lyst"] {
        let r = b.soar(&args(who));
        assert_eq!(r.code(), 4, "{who}: {}", r.all_output());
        assert!(r.stderr().contains("nothing ran"), "{}", r.stderr());
    }
    let r = b.s.soar(&args("analyst"), &[]);
    assert_eq!(r.code(), 4, "{}", r.all_output());
    assert_eq!(b.soar(&["runs", "--json"]).json()["runs"], json!([]));
    // The analyst, in capitals, is the analyst.
    let r = b.soar(&[
        "run",
        "pb.yaml",
        "--input",
        "alert.json",
        "--as",
        "ANALYST",
        "--json",
    ]);
    assert_eq!(r.code(), 0, "{}", r.all_output());
    let runs = b.soar(&["runs", "--json"]).json();
    assert_eq!(runs["runs"][0]["started_by"], "analyst");
}

#[test]
fn text_from_a_vendor_cannot_forge_a_terminal_line() {
    let b = Bench::new("", "ok");
    b.s.write(
        "pb.yaml",
        &format!(
            r#"name: forge
version: "1"
owner: soc
steps:
  - id: look
    uses: hostile.http
    with: {{ url: "{}" }}
  - id: approve
    needs: [look]
    approval:
      approvers: [soc-lead]
      timeout: 10m
      handoff:
        summary: "Contain {{{{ steps.look.output.body }}}}?"
        why: "w"
        affected: "{{{{ steps.look.output.body }}}}"
        recommended_action: "r"
"#,
            b.url("/handoff")
        ),
    );
    b.s.write("alert.json", "{}");
    let r = b.soar(&["run", "pb.yaml", "--input", "alert.json", "--as", "analyst"]);
    assert_eq!(r.code(), 3, "{}", r.all_output());
    for out in [
        r.stdout(),
        b.soar(&["pending"]).stdout(),
        b.soar(&["runs"]).stdout(),
    ] {
        assert!(!out.contains('\u{1b}'), "ESC reached the terminal:\n{out}");
        assert!(!out.contains('\r'), "CR reached the terminal:\n{out}");
        assert!(
            out.contains("FIN-WS-042\\r\\n") || !out.contains("FIN-WS"),
            "{out}"
        );
        assert!(
            !out.contains('\u{202e}'),
            "a bidi override reached the terminal"
        );
        // The forged line never starts a line of its own.
        assert!(
            !out.lines()
                .any(|l| l.trim_start().starts_with("approve: soar approve rFORGED")),
            "{out}"
        );
    }
    let pending = b.soar(&["pending"]).stdout();
    let approve_lines = pending
        .lines()
        .filter(|l| l.trim_start().starts_with("approve:"))
        .count();
    assert_eq!(approve_lines, 1, "{pending}");
}

#[test]
fn a_destructive_action_stopped_by_a_cap_after_sending_is_in_doubt() {
    // The operator treats the request loop as destructive: once some of
    // its requests went out, a cap that stops it leaves the effect unknown.
    let b = Bench::new(
        "    actions:\n      request_loop: { destructive: true, targets: { url: domain } }",
        "ok",
    );
    let r = b.run(
        &format!(
            r#"name: loop
version: "1"
owner: soc
steps:
  - id: act
    uses: hostile.request_loop
    auto_approve: "true"
    with: {{ url: "{}", n: 101 }}
"#,
            b.url("/act")
        ),
        true,
    );
    assert_eq!(r.code(), 3, "{}", r.all_output());
    let report = r.json();
    assert_eq!(report["status"], "in_doubt", "{report}");
    assert_eq!(report["steps"]["act"]["status"], "in_doubt", "{report}");
    assert_eq!(b.received(&b.granted).len(), 100, "never repeated blindly");
}
