//! Batch intake (issue 20): a real `soar serve` on loopback, each number
//! next to its floor measured in the same run.
//! - events per second delivered one per request (sequential, and 64
//!   clients), next to batches of 1, 100 and 1,000 events per request;
//! - the cost of a source `map` per event: the same 1,000 real Falcon
//!   events (NDJSON) through a source with the shipped Falcon map and one
//!   without, as a share of a delivery's time per event.
//!
//! Run with `scripts/bench.sh` (or `cargo bench -p soar-e2e --profile dev
//! --bench intake`); `SOAR_BENCH_ROUNDS=N` repeats each measurement.

use serde_json::{json, Value};
use soar_e2e::senders::{fixture_json, source};
use soar_e2e::serve::sign;
use soar_e2e::Scratch;
use std::process::Child;
use std::time::Instant;

const SECRET: &str = "bench-hook-secret";

/// Cheap runs: the one step is skipped by its condition, so what is
/// measured is intake (proof, split, map, inputs, durable start).
const TALLY: &str = r#"name: tally
version: "1"
owner: bench
inputs:
  n: { type: integer, required: false, default: 0 }
  host: { type: string, required: false, default: none, from: "{{ alert.device.hostname }}" }
steps:
  - id: note
    if: "inputs.n < 0"
    uses: hostile.noop
"#;

fn config(s: &Scratch) {
    s.write("tally.yaml", TALLY);
    let falcon = source("mapped", "falcon.yaml").replace(
        "auth: { type: bearer }",
        "auth: { type: hmac_sha256, secret: { env: HOOK_SECRET } }",
    );
    let falcon: String = falcon
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("playbook:") {
                "    playbook: tally.yaml".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    s.config(&format!(
        "plugins:\n  hostile:\n    path: {}\nserver:\n  listen: \"127.0.0.1:0\"\n  max_body: 16777216\nsources:\n  plain: {{ playbook: tally.yaml, auth: {{ type: hmac_sha256, secret: {{ env: HOOK_SECRET }} }}, max_body: 16777216 }}\n{falcon}\n",
        soar_e2e::wasm("hostile").display()
    ));
}

fn start_server(s: &Scratch) -> (Child, String) {
    soar_e2e::serve::spawn_quiet(s.path(), &[("HOOK_SECRET", SECRET), ("SOAR_LOG", "error")])
}

async fn post(http: &reqwest::Client, url: &str, source: &str, body: String, kind: &str) -> Value {
    let r = http
        .post(format!("{url}/hooks/{source}"))
        .header("content-type", kind)
        .header("x-hub-signature-256", sign(SECRET, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
    assert_eq!(status, 202, "{v}");
    v
}

/// `total` events, `per` per request, `clients` requests at once; events/s.
async fn rate(
    http: &reqwest::Client,
    url: &str,
    base: usize,
    total: usize,
    per: usize,
    clients: usize,
) -> f64 {
    let requests: Vec<String> = (0..total / per)
        .map(|r| {
            let events: Vec<Value> = (0..per).map(|i| json!({"n": base + r * per + i})).collect();
            if per == 1 {
                events[0].to_string()
            } else {
                Value::Array(events).to_string()
            }
        })
        .collect();
    let began = Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(requests));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, queue) = (http.clone(), url.to_string(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().unwrap().pop() else {
                    return;
                };
                post(&http, &url, "plain", body, "application/json").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / began.elapsed().as_secs_f64()
}

/// Seconds per event for 1,000 Falcon events (NDJSON) through `source`.
async fn falcon(http: &reqwest::Client, url: &str, source: &str, round: usize) -> f64 {
    let samples = [
        fixture_json("falcon_detection.json"),
        fixture_json("falcon_alert.json"),
    ];
    let body: String = (0..1000)
        .map(|i| {
            let mut e = samples[i % 2].clone();
            // Distinct detections, so every event is a new run.
            e["event"]["DetectId"] = json!(format!("ldt:bench:{source}:{round}:{i}"));
            e["event"]["CompositeId"] = json!(format!("cid:bench:{source}:{round}:{i}"));
            format!("{e}\n")
        })
        .collect();
    let began = Instant::now();
    let v = post(http, url, source, body, "application/x-ndjson").await;
    assert_eq!(v["accepted"], 1000, "{}", v["results"][0]);
    began.elapsed().as_secs_f64() / 1000.0
}

/// Seconds per event to render the shipped Falcon map in this process:
/// the map's own cost, without the journaling of the raw event beside it.
fn map_only(s: &Scratch) -> f64 {
    let config = soar_runner::config::Config::load(&s.path().join("soar.yaml")).unwrap();
    let map = config.sources["mapped"]
        .map
        .clone()
        .expect("the Falcon map");
    let templates = soar_runner::template::Templates::new();
    let compiled = templates.compile_fields(&map.fields);
    let samples = [
        fixture_json("falcon_detection.json"),
        fixture_json("falcon_alert.json"),
    ];
    let began = Instant::now();
    let mut fields = 0;
    for i in 0..10_000 {
        let ctx = std::sync::Arc::new(json!({ "event": samples[i % 2].clone() }));
        fields += compiled
            .render(&ctx)
            .iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
    }
    assert!(fields > 10_000 * 15, "the map filled {fields} fields");
    // The clone above is the caller's; intake moves the event instead.
    let cloning = Instant::now();
    for i in 0..10_000 {
        std::hint::black_box(json!({ "event": samples[i % 2].clone() }));
    }
    (began.elapsed().as_secs_f64() - 2.0 * cloning.elapsed().as_secs_f64()).max(0.0) / 10_000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("SOAR_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let s = Scratch::new();
    config(&s);
    let (mut child, url) = start_server(&s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("1 event per request, 1 client", vec![]),
        ("1 event per request, 64 clients", vec![]),
        ("batches of 1, 1 client", vec![]),
        ("batches of 100, 1 client", vec![]),
        ("batches of 1,000, 1 client", vec![]),
    ];
    let (mut mapped, mut plain) = (Vec::new(), Vec::new());
    let mut base = 0;
    for round in 0..rounds {
        // Alternated, so drift on the machine falls on every row alike.
        for (i, (per, clients, total)) in [
            (1, 1, 1000),
            (1, 64, 2000),
            (1, 1, 1000),
            (100, 1, 3000),
            (1000, 1, 3000),
        ]
        .into_iter()
        .enumerate()
        {
            let per_req = if i == 2 { 1 } else { per };
            // "batches of 1" is a one-element array: the batch path.
            let r = rt.block_on(async {
                if i == 2 {
                    rate_batch_of_one(&http, &url, base, total).await
                } else {
                    rate(&http, &url, base, total, per_req, clients).await
                }
            });
            base += total;
            rows[i].1.push(r);
        }
        plain.push(rt.block_on(falcon(&http, &url, "plain", round)));
        mapped.push(rt.block_on(falcon(&http, &url, "mapped", round)));
    }
    let _ = child.kill();
    let _ = child.wait();
    let floor = median(rows[0].1.clone());
    println!("batch intake, {rounds} rounds, medians (events/s; ratio to one event per request, sequential):");
    for (name, v) in &rows {
        let m = median(v.clone());
        println!("  {name:<36} {m:>8.0} events/s  {:.2}x", m / floor);
    }
    let (p, m) = (median(plain), median(mapped));
    let only = map_only(&s);
    let single = 1.0 / floor;
    println!(
        "map cost, in process (the 22 templates over one Falcon event): {:.1} µs/event = {:.1}% of a batched event's delivery ({:.3} ms), {:.1}% of a single delivery ({:.3} ms)",
        only * 1e6,
        only / p * 100.0,
        p * 1000.0,
        only / single * 100.0,
        single * 1000.0
    );
    println!(
        "end to end, 1,000 Falcon events (NDJSON): without a map {:.3} ms/event, with the shipped Falcon map {:.3} ms/event (+{:.1}%: the map, and the raw event journaled beside the mapped alert)",
        p * 1000.0,
        m * 1000.0,
        (m - p) / p * 100.0
    );
}

/// Requests of a one-element array each (the batch answer shape).
async fn rate_batch_of_one(http: &reqwest::Client, url: &str, base: usize, total: usize) -> f64 {
    let began = Instant::now();
    for i in 0..total {
        let body = json!([{ "n": base + i }]).to_string();
        post(http, url, "plain", body, "application/json").await;
    }
    total as f64 / began.elapsed().as_secs_f64()
}
