//! Durable engine benchmarks: a 10-step chain of no-op plugin actions with
//! the journal durable, next to this disk's measured fsync latency.
//! - latency of one run at concurrency 1 (target: <= 12 fsync times);
//! - throughput at concurrency 64 in durable steps per second;
//! - resident memory with 10,000 paused runs;
//! - journal bytes per step.
//!
//! Next to the latency it prints what the run cannot go below on this
//! machine: 12 bare sled flushes and 10 bare sandboxed invocations, measured
//! in the same process. Run with `scripts/bench.sh`; `SOAR_BENCH_SKIP_PAUSED=1`
//! skips the (slow) paused-runs part.

// The allocator the `soar` binary ships with (runner/src/main.rs), so the
// engine is measured as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use soar_runner::config::Config;
use soar_runner::journal::{Durability, Journal, JournalKeys, RunStatus};
use soar_runner::plugin_host::{Invocation, PluginHost};
use soar_runner::scheduler::Engine;
use std::io::Write;
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fsync_latency(dir: &Path) -> Duration {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let block = vec![7u8; 4096];
    let samples = (0..200)
        .map(|_| {
            f.write_all(&block).unwrap();
            let started = Instant::now();
            f.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    median(samples)
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

/// A config, a playbook, a plugin host, a journal and an engine in a temp dir.
struct Setup {
    dir: tempfile::TempDir,
    playbook: Arc<soar_runner::playbook::Playbook>,
    host: Arc<PluginHost>,
    journal: Journal,
    engine: Engine,
}

impl Setup {
    async fn new(
        config_yaml: &str,
        playbook_yaml: &str,
        durability: Durability,
        keys: JournalKeys,
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("soar.yaml");
        std::fs::write(&config_path, config_yaml).unwrap();
        let pb_path = dir.path().join("playbook.yaml");
        std::fs::write(&pb_path, playbook_yaml).unwrap();
        let playbook = Arc::new(soar_runner::playbook::load(&pb_path).expect("playbook"));
        let config = Config::load(&config_path).unwrap();
        let host = Arc::new(
            PluginHost::load(&config, &dir.path().join("cache"))
                .await
                .unwrap(),
        );
        let journal = Journal::open_keyed(&dir.path().join("journal"), durability, keys).unwrap();
        let engine = Engine::new(host.clone(), journal.clone());
        Setup {
            dir,
            playbook,
            host,
            journal,
            engine,
        }
    }
}

/// A signing key for the signed variant (fixed: a benchmark, not a secret).
fn bench_keys() -> JournalKeys {
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    JournalKeys {
        public: vec![key.verifying_key()],
        signing: Some(key),
    }
}

async fn bench(durability: Durability, label: &str, fsync: Duration, keys: JournalKeys) {
    let wasm = target_dir().join("wasm32-wasip2/plugin/hostile.wasm");
    assert!(
        wasm.exists(),
        "run scripts/bench.sh (builds {})",
        wasm.display()
    );
    let mut pb = String::from("name: bench\nversion: \"1\"\ndescription: ten no-op steps\nowner: bench\ninputs: {}\nsteps:\n");
    for i in 1..=10 {
        pb.push_str(&format!("  - id: s{i}\n    uses: hostile.noop\n"));
        if i > 1 {
            pb.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    let config = format!("plugins:\n  hostile:\n    path: {}\n", wasm.display());
    let setup = Setup::new(&config, &pb, durability, keys).await;
    let floor = floor(setup.dir.path(), &setup.host).await;
    let (playbook, journal, engine) = (setup.playbook, setup.journal, setup.engine);

    // Warm up.
    for _ in 0..5 {
        engine
            .start(playbook.clone(), serde_json::json!({}), "bench")
            .await
            .unwrap();
    }
    let mut latencies = Vec::new();
    let serial_flushes_before = journal.flush_count();
    for _ in 0..40 {
        let started = Instant::now();
        let report = engine
            .start(playbook.clone(), serde_json::json!({}), "bench")
            .await
            .unwrap();
        latencies.push(started.elapsed());
        assert_eq!(report.status, RunStatus::Succeeded);
    }
    let lat = median(latencies);
    let flushes_per_run = (journal.flush_count() - serial_flushes_before) as f64 / 40.0;

    let flushes_before = journal.flush_count();
    let runs_per_task = 20;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let engine = engine.clone();
        let playbook = playbook.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..runs_per_task {
                let r = engine
                    .start(playbook.clone(), serde_json::json!({}), "bench")
                    .await
                    .unwrap();
                assert_eq!(r.status, RunStatus::Succeeded);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let steps = 64 * runs_per_task * 10;
    let flushes = journal.flush_count() - flushes_before;
    let records_per_run = 2 + 10 * 4; // run started/finished + per step: step/attempt started/finished

    // Journal bytes per step: the records of one run as stored (JSON).
    let some_run = journal.run_ids().unwrap().pop().unwrap();
    let bytes: usize = journal
        .read(&some_run)
        .unwrap()
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap().len())
        .sum();

    println!(
        "[{label}] fsync (fdatasync of 4 KiB, median)      {:>9.3} ms",
        fsync.as_secs_f64() * 1e3
    );
    println!(
        "[{label}] 10-step run latency, concurrency 1       {:>9.3} ms  = {:.1} fsync times",
        lat.as_secs_f64() * 1e3,
        lat.as_secs_f64() / fsync.as_secs_f64()
    );
    println!(
        "[{label}] floor: sled insert + flush, median         {:>9.3} ms",
        floor.flush.as_secs_f64() * 1e3
    );
    println!(
        "[{label}] floor: sandboxed no-op invocation, median {:>9.3} ms",
        floor.invoke.as_secs_f64() * 1e3
    );
    let least = floor.flush * 12 + floor.invoke * 10;
    println!(
        "[{label}] floor of one run (12 flushes + 10 invocations) {:>5.3} ms  = {:.1} fsync times; the run took {:.1}x that",
        least.as_secs_f64() * 1e3,
        least.as_secs_f64() / fsync.as_secs_f64(),
        lat.as_secs_f64() / least.as_secs_f64()
    );
    println!(
        "[{label}] flushes per run at concurrency 1         {:>9.1} (one per step on the critical path, plus run start and end); {:.3} ms per run per flush",
        flushes_per_run,
        lat.as_secs_f64() * 1e3 / flushes_per_run
    );
    println!(
        "[{label}] throughput, concurrency 64               {:>9.0} durable steps/s ({steps} steps in {:.2} s, {flushes} flushes for ~{} records)",
        steps as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        64 * runs_per_task * records_per_run
    );
    println!(
        "[{label}] journal bytes per step                   {:>9} B (JSON records of one run / 10)",
        bytes / 10
    );
    let all_steps = (5 + 40 + 64 * runs_per_task) as u64 * 10;
    println!(
        "[{label}] signed checkpoints per step             {:>9} B ({} checkpoint bytes for {all_steps} steps)",
        journal.checkpoint_bytes().unwrap() / all_steps,
        journal.checkpoint_bytes().unwrap()
    );
    let reads = (0..200)
        .map(|_| {
            let t = Instant::now();
            journal.read(&some_run).unwrap();
            t.elapsed()
        })
        .collect();
    println!(
        "[{label}] read + verify one run's journal (median)  {:>9.3} ms",
        median(reads).as_secs_f64() * 1e3
    );
}

/// What a run is made of, measured bare in the same process.
struct Floor {
    /// A 1.2 KB sled insert and `flush()` (sled's own durability call).
    flush: Duration,
    /// One sandboxed invocation of the no-op action.
    invoke: Duration,
}

async fn floor(dir: &Path, host: &PluginHost) -> Floor {
    let db = sled::open(dir.join("floor-sled")).unwrap();
    let value = vec![b'x'; 1200];
    let flush = median(
        (0..300u32)
            .map(|i| {
                let started = Instant::now();
                db.insert(i.to_be_bytes(), value.as_slice()).unwrap();
                db.flush().unwrap();
                started.elapsed()
            })
            .collect(),
    );
    let invocation = Invocation {
        run_id: "floor".into(),
        step_id: "noop".into(),
        attempt: 1,
        idempotency_key: "floor".into(),
        dry_run: false,
    };
    let input = serde_json::json!({});
    let mut samples = Vec::new();
    for i in 0..400 {
        let started = Instant::now();
        let out = host.invoke("hostile", "noop", &input, &invocation).await;
        if i >= 100 {
            samples.push(started.elapsed());
        }
        out.result.expect("noop");
    }
    Floor {
        flush,
        invoke: median(samples),
    }
}

/// 10,000 real runs paused at an approval gate (the engine asks, journals
/// the request and pauses), then the process's resident memory.
async fn paused_memory() {
    let setup = Setup::new(
        "plugins: {}\n",
        "name: gate\nversion: \"1\"\nowner: bench\ninputs:\n  host: { type: string }\nsteps:\n  - id: approve\n    approval:\n      approvers: [soc-lead]\n      handoff: { summary: \"isolate {{ inputs.host }}?\" }\n",
        Durability::Process,
        JournalKeys::default(),
    )
    .await;
    let (playbook, journal, engine) = (setup.playbook, setup.journal, setup.engine);
    let before = rss_kib();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let engine = engine.clone();
        let playbook = playbook.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..10_000).step_by(64) {
                let alert = serde_json::json!({"host": format!("ws-{i}")});
                let r = engine
                    .start(playbook.clone(), alert, "bench")
                    .await
                    .unwrap();
                assert_eq!(r.status, RunStatus::WaitingApproval);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let runs = journal.run_ids().unwrap().len();
    let after = rss_kib();
    println!(
        "[paused] {runs} runs paused at an approval gate in {:.1} s: process RSS {:.1} MB (was {:.1} MB before creating them); a paused run holds no plugin instance, only journal records",
        started.elapsed().as_secs_f64(),
        after as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe_dir = tempfile::tempdir().unwrap();
    let fsync = fsync_latency(probe_dir.path());
    runtime.block_on(async {
        // First, so its resident memory is not that of the benchmarks before.
        if std::env::var_os("SOAR_BENCH_SKIP_PAUSED").is_none() {
            paused_memory().await;
        }
        // Signing off, then on, in the same run: one checkpoint signature
        // per group commit.
        let off = JournalKeys::default();
        bench(
            Durability::Process,
            "process-crash durability",
            fsync,
            off.clone(),
        )
        .await;
        bench(
            Durability::Process,
            "process-crash, signed",
            fsync,
            bench_keys(),
        )
        .await;
        if std::env::var_os("SOAR_BENCH_ONLY_SIGNING").is_none() {
            bench(Durability::PowerLoss, "power-loss durability", fsync, off).await;
            bench(
                Durability::PowerLoss,
                "power-loss, signed",
                fsync,
                bench_keys(),
            )
            .await;
        }
    });
}
