//! `soar serve` benchmarks (issue 11): a real server process on loopback,
//! driven by async clients in this process, each number next to a floor
//! measured in the same run:
//! - signed webhook to durable 202, p50/p99 at concurrency 1 and 64, next
//!   to a bare journal append + flush (same disk, this process);
//! - accepted alerts per second at concurrency 64 (one-step playbook,
//!   signatures on);
//! - approval vote over the API to the destructive request at the vendor;
//! - the server's RSS with 10,000 runs paused at approval gates.
//!
//! Run with `scripts/bench.sh`; `SOAR_BENCH_PAUSED=N` changes the 10,000.

// The console tests' browser; the bench uses only part of it.
#[path = "../e2e/browser/mod.rs"]
#[allow(dead_code)]
mod browser;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use soar_e2e::serve::sign;
use soar_e2e::{sim, wasm, Scratch};
use soar_runner::journal::{Durability, Event, Journal};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-hook-secret";
const LEAD_TOKEN: &str = "bench-lead-token";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Bare journal appends (each waits for its group-commit flush), at
/// concurrency 1 and 64, in a journal beside the server's.
async fn journal_floor(dir: &std::path::Path) -> [(Duration, Duration); 2] {
    let journal = Journal::open(&dir.join("floor"), Durability::Process).unwrap();
    let start = |id: &str| Event::RunStarted {
        playbook: "floor".into(),
        version: "1".into(),
        playbook_sha256: "0".repeat(64),
        playbook_path: "floor.yaml".into(),
        inputs: json!({}),
        alert: json!({"n": id}),
        started_by: "bench".into(),
        dedup_key: None,
        raw: None,
        group_key: None,
        previous_run: None,
    };
    let mut one = Vec::new();
    for i in 0..1_000 {
        let t = Instant::now();
        journal
            .append(&format!("f1-{i}"), start("x"))
            .await
            .unwrap();
        one.push(t.elapsed());
    }
    let mut tasks = Vec::new();
    for t in 0..64 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let _active = journal.active_run();
            let mut lat = Vec::new();
            for i in 0..60 {
                let began = Instant::now();
                let id = format!("f64-{t}-{i}");
                journal.append(&id, start(&id)).await.unwrap();
                lat.push(began.elapsed());
            }
            lat
        }));
    }
    let mut many = Vec::new();
    for t in tasks {
        many.extend(t.await.unwrap());
    }
    [
        (pct(&mut one, 0.5), pct(&mut one, 0.99)),
        (pct(&mut many, 0.5), pct(&mut many, 0.99)),
    ]
}

fn config(s: &Scratch, sim_url: &str) {
    let h = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    s.write(
        "noop.yaml",
        "name: noop\nversion: \"1\"\nowner: bench\ninputs:\n  n: { type: integer }\nsteps:\n  - id: one\n    uses: hostile.noop\n",
    );
    let mut ten = String::from(
        "name: ten\nversion: \"1\"\nowner: bench\ninputs:\n  n: { type: integer }\nsteps:\n  - id: s1\n    uses: hostile.noop\n",
    );
    for i in 2..=10 {
        ten.push_str(&format!(
            "  - id: s{i}\n    needs: [s{}]\n    uses: hostile.noop\n",
            i - 1
        ));
    }
    s.write("ten.yaml", &ten);
    s.write(
        "contain.yaml",
        r#"name: contain
version: "1"
owner: bench
inputs:
  host_id: { type: string }
  n: { type: integer }
steps:
  - id: approve
    approval:
      approvers: [soc-lead]
      timeout: 1h
      handoff: { summary: "isolate {{ inputs.host_id }}?", why: bench, affected: "{{ inputs.host_id }}", recommended_action: isolate }
  - id: isolate
    needs: [approve]
    uses: edr.isolate_host
    with: { host_id: "{{ inputs.host_id }}" }
"#,
    );
    // Votes alternate isolate and release: the connector sends nothing for
    // a host already where the action would take it.
    let contain = std::fs::read_to_string(s.path().join("contain.yaml")).unwrap();
    s.write(
        "release.yaml",
        &contain
            .replace("name: contain", "name: release")
            .replace("edr.isolate_host", "edr.release_host"),
    );
    s.config(&format!(
        r#"plugins:
  hostile:
    path: {hostile}
  edr:
    path: {edr}
    allowed_hosts: ["{sim_url}"]
    secrets:
      client_id: {{ env: FALCON_CLIENT_ID, hosts: ["{sim_url}"] }}
      client_secret: {{ env: FALCON_CLIENT_SECRET, hosts: ["{sim_url}"] }}
    config: {{ base_url: "{sim_url}" }}
    dry_run_allow: ["POST /oauth2/token"]
    read_only_allow: ["POST /oauth2/token"]
principals:
  lead: {{ roles: [soc-lead, viewer, ingest], token_sha256: "{lead}" }}
server:
  listen: "127.0.0.1:0"
  playbooks: [ten.yaml]
sources:
  bench: {{ playbook: noop.yaml, auth: {{ type: hmac_sha256, secret: {{ env: HOOK_SECRET }} }} }}
  contain: {{ playbook: contain.yaml, auth: {{ type: hmac_sha256, secret: {{ env: HOOK_SECRET }} }} }}
  release: {{ playbook: release.yaml, auth: {{ type: hmac_sha256, secret: {{ env: HOOK_SECRET }} }} }}
"#,
        hostile = wasm("hostile").display(),
        edr = wasm("edr").display(),
        lead = h(LEAD_TOKEN),
    ));
}

fn start_server(s: &Scratch) -> (Child, String) {
    soar_e2e::serve::spawn_quiet(
        s.path(),
        &[
            ("HOOK_SECRET", SECRET),
            ("FALCON_CLIENT_ID", sim::FALCON_CLIENT_ID),
            ("FALCON_CLIENT_SECRET", sim::FALCON_CLIENT_SECRET),
        ],
    )
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `RssAnon` and `RssFile` of `pid`, MiB: heap versus mapped files (the
/// binary, compiled components).
fn rss_split(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    format!(
        "anon {:.1} MiB, files {:.1} MiB",
        field("RssAnon:"),
        field("RssFile:")
    )
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

async fn deliver(http: &reqwest::Client, url: &str, source: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string();
    let r = http
        .post(format!("{url}/hooks/{source}"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(SECRET, bytes.as_bytes()))
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
    (status, v)
}

/// `n` deliveries from `clients` tasks; latencies and wall time.
async fn load(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    n: usize,
    base: usize,
) -> (Vec<Duration>, Duration) {
    let began = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..n / clients {
                let body = json!({"n": base + c * (n / clients) + i});
                let t = Instant::now();
                let (status, _) = deliver(&http, &url, "bench", &body).await;
                assert_eq!(status, 202);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, began.elapsed())
}

async fn get(http: &reqwest::Client, url: &str, path: &str) -> Value {
    let r = http
        .get(format!("{url}{path}"))
        .bearer_auth(LEAD_TOKEN)
        .send()
        .await
        .unwrap();
    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
}

async fn gauge(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0.0)
}

async fn isolations(sim: &sim::Sim) -> usize {
    sim.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            r.url
                .path()
                .starts_with("/devices/entities/devices-actions")
        })
        .count()
}

async fn vote_to_vendor(
    http: &reqwest::Client,
    url: &str,
    sim: &sim::Sim,
    base: usize,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    for i in base..base + 30 {
        let source = if i % 2 == 0 { "contain" } else { "release" };
        let (_, v) = deliver(http, url, source, &json!({"host_id": sim::HOST_ID, "n": i})).await;
        let run = v["run_id"].as_str().unwrap().to_string();
        loop {
            let r = get(http, url, &format!("/api/v1/runs/{run}")).await;
            if r["status"] == "waiting_approval" {
                break;
            }
            assert!(r["status"] == "running" || r.is_null(), "{r}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = isolations(sim).await;
        let t = Instant::now();
        let r = http
            .post(format!("{url}/api/v1/runs/{run}/steps/approve/approve"))
            .bearer_auth(LEAD_TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"reason":"bench"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        while isolations(sim).await == before {
            assert!(
                Instant::now() < deadline,
                "the vote never reached the vendor"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(t.elapsed());
    }
    lat
}

/// CPU seconds (user + system) `pid` has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// One request starts a 10-step run and gets its report (`?wait=`).
async fn start_and_wait(http: &reqwest::Client, url: &str, n: usize) {
    let r = http
        .post(format!("{url}/api/v1/runs?wait=60"))
        .bearer_auth(LEAD_TOKEN)
        .header("content-type", "application/json")
        .body(json!({"playbook": "ten", "alert": {"n": n}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
}

/// 10-step runs over HTTP, each request answered with its run's report:
/// sequential latency, then runs/s and server CPU per run at c=64.
async fn ten_steps_with_wait(http: &reqwest::Client, url: &str, pid: u32, data: &std::path::Path) {
    for i in 0..50 {
        start_and_wait(http, url, i).await;
    }
    let mut seq = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        start_and_wait(http, url, 1_000 + i).await;
        seq.push(t.elapsed());
    }
    let (per, clients) = (40, 64);
    let cpu = cpu_secs(pid);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                start_and_wait(&http, &url, 10_000 + c * per + i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wall = began.elapsed().as_secs_f64();
    let runs = (per * clients) as f64;
    let cpu = cpu_secs(pid) - cpu;
    println!("10-step run over HTTP, one request with ?wait= (report in the answer)");
    println!(
        "  sequential: p50 {} p99 {} (n={})",
        ms(pct(&mut seq, 0.5)),
        ms(pct(&mut seq, 0.99)),
        seq.len()
    );
    println!(
        "  c=64: {:.0} runs/s ({runs} runs in {wall:.2} s); server CPU {:.2} ms per run, {:.0} µs per step",
        runs / wall,
        cpu * 1000.0 / runs,
        cpu * 1e6 / runs / 10.0
    );
    // Disk per step: the journal directory (only these runs so far) over
    // the steps, next to one run's records as JSON.
    let r = http
        .get(format!("{url}/api/v1/runs?status=succeeded"))
        .bearer_auth(LEAD_TOKEN)
        .send()
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let one = list["runs"][0]["run_id"].as_str().unwrap().to_string();
    let records = get(http, url, &format!("/api/v1/runs/{one}/journal")).await;
    let json_bytes: usize = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string().len())
        .sum();
    let all_runs = (50 + seq.len() + per * clients) as f64;
    if !data.join("journal").exists() {
        return; // A cluster journal: its disk is the servers'.
    }
    let disk = dir_bytes(&data.join("journal")) as f64;
    println!(
        "  disk: {:.0} B per step (journal dir {:.1} MiB over {all_runs} runs) for {:.0} B of JSON records per step: {:.2}x",
        disk / all_runs / 10.0,
        disk / 1048576.0,
        json_bytes as f64 / 10.0,
        disk / all_runs / json_bytes as f64
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(sim::start_sim(0)).unwrap();
    let s = Scratch::new();
    config(&s, &sim.uri());
    // `SOAR_BENCH_JOURNAL=nats`: the server's journal on a fresh 3-server
    // cluster (issue 24); the floor stays a sled append beside it.
    let _nats = (std::env::var("SOAR_BENCH_JOURNAL").as_deref() == Ok("nats")).then(|| {
        let nats = soar_e2e::nats::Nats::cluster();
        let config = std::fs::read_to_string(s.path().join("soar.yaml")).unwrap();
        s.config(&format!("{}{config}", nats.journal_yaml("")));
        nats
    });
    let floor = rt.block_on(journal_floor(s.path()));
    let (mut child, url) = start_server(&s);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    let only_paused = std::env::var_os("SOAR_BENCH_ONLY_PAUSED").is_some();
    let only_console = std::env::var_os("SOAR_BENCH_ONLY_CONSOLE").is_some();
    let only_wait = std::env::var_os("SOAR_BENCH_ONLY_WAIT").is_some();
    if !only_paused && !only_console {
        rt.block_on(ten_steps_with_wait(
            &http,
            &url,
            child.id(),
            &s.path().join(".soar"),
        ));
    }
    rt.block_on(async {
        if only_paused || only_console || only_wait {
            return;
        }
        // Warm-up.
        load(&http, &url, 8, 400, 0).await;
        let (mut c1, _) = load(&http, &url, 1, 1_000, 10_000).await;
        let (mut c64, wall) = load(&http, &url, 64, 12_800, 100_000).await;
        let after_load = Instant::now();
        println!("signed webhook to durable 202");
        println!(
            "  floor, bare journal append+flush, c=1:  p50 {} p99 {}",
            ms(floor[0].0),
            ms(floor[0].1)
        );
        println!(
            "  floor, bare journal append+flush, c=64: p50 {} p99 {}",
            ms(floor[1].0),
            ms(floor[1].1)
        );
        println!(
            "  webhook c=1:  p50 {} p99 {}",
            ms(pct(&mut c1, 0.5)),
            ms(pct(&mut c1, 0.99))
        );
        println!(
            "  webhook c=64: p50 {} p99 {}",
            ms(pct(&mut c64, 0.5)),
            ms(pct(&mut c64, 0.99))
        );
        println!(
            "  accepted at c=64: {:.0} alerts/s ({} in {:.2} s)",
            c64.len() as f64 / wall.as_secs_f64(),
            c64.len(),
            wall.as_secs_f64()
        );
        // The drives behind those 202s: when the last of them finished.
        let total = 400.0 + 1_000.0 + c64.len() as f64;
        let deadline = Instant::now() + Duration::from_secs(600);
        let finished = "soar_runs_finished_total{playbook=\"noop\",status=\"succeeded\"}";
        while gauge(&http, &url, finished).await < total {
            assert!(Instant::now() < deadline, "the runs never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = wall + after_load.elapsed();
        println!(
            "  ... every one of those runs finished {:.2} s after the load began: {:.0} runs/s sustained",
            drained.as_secs_f64(),
            c64.len() as f64 / drained.as_secs_f64()
        );
        let mut votes = vote_to_vendor(&http, &url, &sim, 0).await;
        println!(
            "approval vote to the destructive request at the vendor: p50 {} p99 {} (n={})",
            ms(pct(&mut votes, 0.5)),
            ms(pct(&mut votes, 0.99)),
            votes.len()
        );
    });
    if !only_paused && !only_wait {
        console(&rt, &http, &url, &sim);
    }
    let _ = child.kill();
    let _ = child.wait();
    if only_console || only_wait {
        return;
    }
    // Paused runs, in a data dir of their own: RSS of a fresh server, with
    // the runs paused, and after a restart that resumed them.
    let paused: usize = std::env::var("SOAR_BENCH_PAUSED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let s = Scratch::new();
    config(&s, &sim.uri());
    let (mut child, url) = start_server(&s);
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_mib(child.id());
    println!("  idle: {}", rss_split(child.id()));
    let child_pid = child.id();
    let data_dir = s.path().join(".soar");
    rt.block_on(async {
        let http = Arc::new(http);
        let mut tasks = Vec::new();
        for c in 0..32 {
            let (http, url) = (http.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..paused / 32 {
                    let body = json!({"host_id": sim::HOST_ID, "n": 1_000_000 + c * paused + i});
                    let (status, _) = deliver(&http, &url, "contain", &body).await;
                    assert_eq!(status, 202);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let want = (paused / 32 * 32) as f64;
        // Resident memory as the paused runs accumulate (and the journal's size).
        let mut reported = 0.0;
        let pid = child_pid;
        loop {
            let now = gauge(&http, &url, "soar_runs_waiting_approval").await;
            if now >= reported + want / 4.0 || now >= want {
                reported = now;
                let journal = dir_bytes(&data_dir.join("journal")) as f64 / 1048576.0;
                println!(
                    "  {now:.0} paused: RSS {:.1} MiB, journal {journal:.1} MiB",
                    rss_mib(pid)
                );
            }
            if now >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(1_800);
        while gauge(&http, &url, "soar_runs_waiting_approval").await < want {
            assert!(Instant::now() < deadline, "runs never paused");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let serving = rss_mib(child.id());
    println!("  with the runs paused: {}", rss_split(child.id()));
    std::thread::sleep(Duration::from_secs(10));
    println!("  10 s later: RSS {:.1} MiB", rss_mib(child.id()));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let began = Instant::now();
    let (mut child, _url) = start_server(&s);
    let restart = began.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let restarted = rss_mib(child.id());
    println!("  after the restart: {}", rss_split(child.id()));
    println!(
        "server RSS: {idle_rss:.1} MiB idle; {serving:.1} MiB with {paused} runs paused at approval; {restarted:.1} MiB after a restart that resumed them ({:.1} s to ready)",
        restart.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The console in a real headless Chromium: Approve click to the
/// destructive request at the simulator (p50 of 20), and the approval
/// page's weight and server render time.
fn console(rt: &tokio::runtime::Runtime, http: &reqwest::Client, url: &str, sim: &sim::Sim) {
    let b = browser::Browser::start();
    b.goto(&format!("{url}/ui/login"));
    b.fill("#token", LEAD_TOKEN);
    b.click("#sign-in");
    b.wait_path("/ui/approvals");
    let cookie = format!("soar_session={}", b.cookie("soar_session").unwrap());
    let mut clicks = Vec::new();
    let mut page = String::new();
    let mut renders = Vec::new();
    for i in 0..20 {
        // Alternate isolate and release, as above (100 votes in, the host
        // is where an even iteration expects it).
        let source = if i % 2 == 0 { "contain" } else { "release" };
        let run = rt.block_on(async {
            let body = json!({"host_id": sim::HOST_ID, "n": 500 + i});
            let (_, v) = deliver(http, url, source, &body).await;
            let run = v["run_id"].as_str().unwrap().to_string();
            loop {
                let r = get(http, url, &format!("/api/v1/runs/{run}")).await;
                if r["status"] == "waiting_approval" {
                    break run;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let path = format!("/ui/runs/{run}/approvals/approve");
        if i == 0 {
            rt.block_on(async {
                for _ in 0..50 {
                    let t = Instant::now();
                    let r = http
                        .get(format!("{url}{path}"))
                        .header("cookie", &cookie)
                        .send()
                        .await
                        .unwrap();
                    page = r.text().await.unwrap();
                    renders.push(t.elapsed());
                }
            });
        }
        b.goto(&format!("{url}{path}"));
        let before = rt.block_on(isolations(sim));
        let t = Instant::now();
        // WebDriver's click returns once the next page has loaded, which is
        // after the whole run ended: the vendor is watched meanwhile.
        let reached = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                while rt.block_on(isolations(sim)) == before {
                    assert!(
                        Instant::now() < deadline,
                        "the click never reached the vendor"
                    );
                    std::thread::sleep(Duration::from_micros(500));
                }
                t.elapsed()
            });
            b.click("#approve");
            watcher.join().unwrap()
        });
        clicks.push(reached);
    }
    println!("console");
    println!(
        "  Approve click (headless Chromium) to the destructive request at the vendor: p50 {} p99 {} (n={})",
        ms(pct(&mut clicks, 0.5)),
        ms(pct(&mut clicks, 0.99)),
        clicks.len()
    );
    let external = ["src=\"http", "href=\"http", "@import", "url("]
        .iter()
        .filter(|n| page.contains(*n))
        .count();
    println!(
        "  approval page: {} bytes of HTML, 1 request ({external} references to other origins); served in p50 {} p99 {} (n={})",
        page.len(),
        ms(pct(&mut renders, 0.5)),
        ms(pct(&mut renders, 0.99)),
        renders.len()
    );
}
