//! Boot to ready (`soar serve` writing its address after resuming every
//! unfinished run) with N finished runs in the journal, on sled and on a
//! 3-server JetStream cluster, in one run (issue 24). Boot reads the
//! unfinished-run index only, so it should not grow with N.
//!
//! `SOAR_BENCH_BOOT=1000,100000 cargo bench -p soar-e2e --profile dev --bench cluster_boot`

use serde_json::json;
use soar_e2e::nats::Nats;
use soar_e2e::serve::spawn_quiet;
use soar_runner::config::JournalBackend;
use soar_runner::journal::jetstream::{connect, records, RunLog};
use soar_runner::journal::{Durability, Event, Journal};
use std::path::Path;
use std::time::Instant;

/// A finished run's two records.
fn finished_run() -> [Event; 2] {
    let ev = |v| serde_json::from_value::<Event>(v).unwrap();
    [
        ev(
            json!({"type": "run_started", "playbook": "bench", "version": "1",
            "playbook_path": "p.yaml", "playbook_sha256": "0", "inputs": {},
            "alert": {}, "started_by": "bench"}),
        ),
        ev(json!({"type": "run_finished", "status": "succeeded", "outputs": {}})),
    ]
}

async fn fill_sled(dir: &Path, n: usize) {
    let j = Journal::open(&dir.join(".soar/journal"), Durability::Process).unwrap();
    let mut tasks = Vec::new();
    for c in 0..64 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            let _active = j.active_run();
            for i in (c..n).step_by(64) {
                for e in finished_run() {
                    j.append(&format!("r{i:08}"), e).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    j.sync().unwrap();
}

async fn fill_nats(log: &RunLog, n: usize) {
    let mut tasks = Vec::new();
    for c in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let events = finished_run();
            for i in (c..n).step_by(64) {
                let mut tail = records::Tail::empty();
                for e in &events {
                    records::append(&log, &format!("r{i:08}"), &mut tail, e)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Seconds from spawning `soar serve` in `dir` to its address file.
fn boot(dir: &Path) -> f64 {
    let began = Instant::now();
    let (mut child, _) = spawn_quiet(dir, &[]);
    let took = began.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    took
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes: Vec<usize> = std::env::var("SOAR_BENCH_BOOT")
        .unwrap_or_else(|_| "1000,100000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let listen = "server: { listen: \"127.0.0.1:0\" }\n";
    for n in sizes {
        let sled = tempfile::tempdir().unwrap();
        std::fs::write(sled.path().join("soar.yaml"), listen).unwrap();
        rt.block_on(fill_sled(sled.path(), n));
        let sled_s = boot(sled.path());

        let nats = Nats::cluster();
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{}{listen}", nats.journal_yaml(""));
        std::fs::write(dir.path().join("soar.yaml"), &config).unwrap();
        let loaded = soar_runner::config::Config::load(&dir.path().join("soar.yaml")).unwrap();
        let JournalBackend::Nats(cfg) = loaded.backend else {
            unreachable!("the bench's config says backend: nats")
        };
        let began = Instant::now();
        rt.block_on(async {
            let cluster = connect(&cfg, "bench").await.unwrap();
            fill_nats(&cluster.runs, n).await;
        });
        let filled = began.elapsed().as_secs_f64();
        let nats_s = boot(dir.path());
        println!(
            "  {n:>9} finished runs: boot to ready sled {sled_s:>6.2} s | jetstream R3 {nats_s:>6.2} s (filled in {filled:.0} s)"
        );
    }
}
