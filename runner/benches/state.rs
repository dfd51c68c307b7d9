//! State-layer benchmarks, each next to its floor measured in the same run:
//! - `get`, `put`, `incr` latency (p50, p99) at concurrency 1, and ops/s at
//!   concurrency 64, next to a bare durable journal append;
//! - resident memory and disk with N entries (`SOAR_BENCH_ENTRIES`, default
//!   1,000,000), and a `get` among them;
//! - a 10-step run of no-op plugin actions with 3 of its steps state
//!   operations, next to the same run with none.
//!
//! Run with `scripts/bench.sh` (it builds the `hostile` fixture plugin).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use soar_runner::config::Config;
use soar_runner::journal::{Durability, Event, Journal, RunStatus};
use soar_runner::plugin_host::PluginHost;
use soar_runner::scheduler::Engine;
use soar_runner::state::{Actor, StateStore, Window};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps")
        .to_path_buf()
}

fn now_ms() -> u64 {
    soar_runner::journal::now_unix_millis()
}

fn actor(by: &str) -> Actor<'_> {
    Actor {
        by,
        now_ms: now_ms(),
        op_key: None,
        reason: None,
    }
}

/// p50 and p99 of `samples`, in µs.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    (at(50).as_secs_f64() * 1e6, at(99).as_secs_f64() * 1e6)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn start_event() -> Event {
    Event::RunStarted {
        playbook: "bench".into(),
        version: "1".into(),
        playbook_sha256: String::new(),
        playbook_path: String::new(),
        inputs: json!({}),
        alert: json!({}),
        started_by: "bench".into(),
        dedup_key: None,
        raw: None,
        group_key: None,
        previous_run: None,
    }
}

fn step_event(i: usize) -> Event {
    Event::StepStarted {
        step: format!("s{i}"),
        items: None,
    }
}

/// The floor: durable journal appends, p50/p99 at c=1 and appends/s at c=64.
async fn journal_floor(journal: &Journal) -> ((f64, f64), f64) {
    journal
        .append("rbench-serial", start_event())
        .await
        .unwrap();
    let mut lat = Vec::new();
    for i in 0..2_000 {
        let started = Instant::now();
        journal
            .append("rbench-serial", step_event(i))
            .await
            .unwrap();
        lat.push(started.elapsed());
    }
    let per_task = 300;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let _active = journal.active_run();
            let run = format!("rbench-{t}");
            journal.append(&run, start_event()).await.unwrap();
            for i in 0..per_task {
                journal.append(&run, step_event(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (64 * (per_task + 1)) as f64 / started.elapsed().as_secs_f64();
    (percentiles(lat), rate)
}

/// `op` 2,000 times at c=1 (p50/p99), then 64 threads × 2,000 (ops/s).
fn measure(store: &StateStore, op: impl Fn(&StateStore, usize, usize) + Sync) -> ((f64, f64), f64) {
    let mut lat = Vec::new();
    for i in 0..2_000 {
        let started = Instant::now();
        op(store, 0, i);
        lat.push(started.elapsed());
    }
    let per_thread = 2_000;
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..64 {
            let op = &op;
            s.spawn(move || {
                for i in 0..per_thread {
                    op(store, t + 1, i);
                }
            });
        }
    });
    let rate = (64 * per_thread) as f64 / started.elapsed().as_secs_f64();
    (percentiles(lat), rate)
}

fn ops(store: &StateStore) {
    let value = json!({"criticality": "high", "owner": "finance", "ticket": "CHG-4411"});
    for i in 0..10_000 {
        let _ = store.put(
            "bench",
            &format!("host-{i:06}"),
            value.clone(),
            None,
            &actor("seed"),
        );
    }
    let get = measure(store, |s, t, i| {
        let key = format!("host-{:06}", (t * 7919 + i) % 10_000);
        assert!(s.get("bench", &key, now_ms()).unwrap().is_some());
    });
    let put = measure(store, |s, t, i| {
        let key = format!("w-{t}-{}", i % 500);
        s.put("bench", &key, json!({"n": i}), None, &actor("bench"))
            .unwrap();
    });
    let window = Window::Fixed(Duration::from_secs(3600));
    let incr_one = measure(store, |s, _, _| {
        s.incr("counts", "one-key", window, &actor("bench"))
            .unwrap();
    });
    let incr_keyed = measure(store, |s, t, i| {
        let op = format!("r{t}/s/{i}");
        let a = Actor {
            op_key: Some(&op),
            ..actor("bench")
        };
        s.incr("counts", &format!("k-{t}"), window, &a).unwrap();
    });
    for (label, ((p50, p99), rate)) in [
        ("get (10,000 entries)", get),
        ("put", put),
        ("incr, one key for all", incr_one),
        ("incr with an op key", incr_keyed),
    ] {
        println!(
            "state {label:<26} p50 {p50:>8.1} µs  p99 {p99:>8.1} µs   c=64 {rate:>10.0} ops/s"
        );
    }
}

/// N entries written in batches, then RSS, disk and a lookup among them.
fn million(dir: &Path) {
    let n: usize = std::env::var("SOAR_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let journal = Journal::open(&dir.join("journal"), Durability::Process).unwrap();
    let store = journal.state();
    let rss_before = rss_kib();
    let started = Instant::now();
    let batch = 10_000;
    for b in 0..n.div_ceil(batch) {
        let rows: Vec<_> = (b * batch..((b + 1) * batch).min(n))
            .map(|i| {
                let level = ["low", "medium", "high", "critical"][i % 4];
                let v = json!({"criticality": level, "owner": format!("team-{}", i % 97)});
                (format!("host-{i:07}"), v, None)
            })
            .collect();
        store.put_many("assets", &rows, &actor("bench")).unwrap();
    }
    journal.sync().unwrap();
    let load = started.elapsed();
    let rss = rss_kib().saturating_sub(rss_before);
    let disk = disk_bytes(&dir.join("journal"));
    let mut lat = Vec::new();
    for i in 0..2_000 {
        let key = format!("host-{:07}", (i * 7919) % n);
        let started = Instant::now();
        assert!(store.get("assets", &key, now_ms()).unwrap().is_some());
        lat.push(started.elapsed());
    }
    let (p50, p99) = percentiles(lat);
    println!(
        "{n} entries: loaded in {:.1} s ({:.0} entries/s, import batches of {batch}); RSS +{:.0} MiB; disk {:.0} MiB ({:.0} B/entry with its change log); get p50 {p50:.1} µs p99 {p99:.1} µs",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        rss as f64 / 1024.0,
        disk as f64 / 1_048_576.0,
        disk as f64 / n as f64,
    );
}

/// Median latency of one run at c=1 and steps/s at c=64.
async fn runs(steps_yaml: &str, dir: &Path) -> (f64, f64) {
    let wasm = target_dir().join("wasm32-wasip2/plugin/hostile.wasm");
    assert!(
        wasm.exists(),
        "run scripts/bench.sh (builds {})",
        wasm.display()
    );
    let config = format!(
        "plugins:\n  hostile:\n    path: {}\nstate:\n  tables:\n    counts: {{ key: name }}\n",
        wasm.display()
    );
    std::fs::write(dir.join("soar.yaml"), config).unwrap();
    let pb = format!("name: bench\nversion: \"1\"\nsteps:\n{steps_yaml}");
    std::fs::write(dir.join("pb.yaml"), pb).unwrap();
    let config = Config::load(&dir.join("soar.yaml")).unwrap();
    let host = Arc::new(PluginHost::load(&config, &dir.join("cache")).await.unwrap());
    let playbook =
        Arc::new(soar_runner::operations::checked_playbook(&dir.join("pb.yaml"), &host).unwrap());
    let journal = Journal::open(&dir.join("journal"), Durability::Process).unwrap();
    let engine = Engine::new(host, journal);
    for _ in 0..5 {
        engine
            .start(playbook.clone(), json!({}), "bench")
            .await
            .unwrap();
    }
    let mut lat = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        let r = engine
            .start(playbook.clone(), json!({}), "bench")
            .await
            .unwrap();
        lat.push(started.elapsed());
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    }
    lat.sort();
    let per_task = 20;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (engine, playbook) = (engine.clone(), playbook.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                engine
                    .start(playbook.clone(), json!({}), "bench")
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (64 * per_task * 10) as f64 / started.elapsed().as_secs_f64();
    (lat[lat.len() / 2].as_secs_f64() * 1e3, rate)
}

fn chain(state_at: &[(usize, &str)]) -> String {
    let mut out = String::new();
    for i in 1..=10 {
        match state_at.iter().find(|(at, _)| *at == i) {
            Some((_, with)) => out.push_str(&format!("  - id: s{i}\n    uses: {with}\n")),
            None => out.push_str(&format!("  - id: s{i}\n    uses: hostile.noop\n")),
        }
        if i > 1 {
            out.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), Durability::Process).unwrap();
    let ((p50, p99), rate) = runtime.block_on(journal_floor(&journal));
    println!(
        "floor: durable journal append    p50 {p50:>8.1} µs  p99 {p99:>8.1} µs   c=64 {rate:>10.0} appends/s"
    );
    ops(&journal.state());
    drop(journal);

    let plain = chain(&[]);
    let stateful = chain(&[
        (2, "state.get\n    with: { table: counts, key: a }"),
        (5, "state.incr\n    with: { table: counts, key: b, window: 1h }"),
        (8, "state.put\n    with: { table: counts, key: \"{{ run.id }}\", value: { seen: true }, ttl: 1h }"),
    ]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (plain_ms, plain_rate) = runtime.block_on(runs(&plain, a.path()));
    let (state_ms, state_rate) = runtime.block_on(runs(&stateful, b.path()));
    println!(
        "10-step run, no state ops:     p50 {plain_ms:>7.3} ms   c=64 {plain_rate:>8.0} steps/s"
    );
    println!(
        "10-step run, 3 of them state:  p50 {state_ms:>7.3} ms   c=64 {state_rate:>8.0} steps/s   ({:.2}x the latency, {:.2}x the throughput)",
        state_ms / plain_ms,
        state_rate / plain_rate
    );
    let big = tempfile::tempdir().unwrap();
    million(big.path());
}
