//! Boot flat in history: what `soar serve` reads before `/readyz` (open the
//! journal, list the unfinished runs from their index, read each one's
//! summary), over a journal of N finished runs and P paused ones
//! (`SOAR_BENCH_RUNS`, default 1,000,000; `SOAR_BENCH_PAUSED`, default
//! 10,000), next to the same over an empty journal and over P paused runs
//! alone, each in a fresh process (so its RSS is the boot's own), and next
//! to what boot read before the index: every run's summary.
//!
//! `cargo bench -p soar-runner --bench boot`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::{json, Value};
use soar_runner::journal::{Durability, Event, Journal};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn ev(v: Value) -> Event {
    serde_json::from_value(v).expect("event")
}

fn started() -> Event {
    ev(
        json!({"type": "run_started", "playbook": "triage", "version": "1", "playbook_path": "p.yaml",
        "playbook_sha256": "0", "inputs": {"host_id": "0a1b2c3d"}, "alert": {"device": {"uid": "0a1b2c3d"}}, "started_by": "source:edr"}),
    )
}

/// Writes `finished` runs of four records and `paused` runs of two.
fn write(dir: &Path, finished: usize, paused: usize) {
    let journal = Journal::open(dir, Durability::Process).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..finished + paused {
            let run = format!("r{i:019x}");
            let mut events = vec![
                started(),
                ev(json!({"type": "step_started", "step": "host"})),
            ];
            if i < finished {
                events.push(ev(
                    json!({"type": "step_finished", "step": "host", "status": "succeeded", "output": {"hostname": "FIN-WS-042"}}),
                ));
                events.push(ev(
                    json!({"type": "run_finished", "status": "succeeded", "outputs": {"outcome": "benign"}}),
                ));
            } else {
                events.push(ev(
                    json!({"type": "run_paused", "status": "waiting_approval", "reason": "gate"}),
                ));
            }
            let last = events.pop().unwrap();
            for e in events {
                journal.append_buffered(&run, e).unwrap();
            }
            if (i + 1).is_multiple_of(1000) {
                journal.append(&run, last).await.unwrap();
            } else {
                journal.append_buffered(&run, last).unwrap();
            }
        }
    });
    journal.sync().unwrap();
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The measuring child: boot's reads, then one JSON line.
fn measure(dir: &str, history: bool) {
    let t = Instant::now();
    let journal = Journal::open(Path::new(dir), Durability::Process).unwrap();
    let ids = if history {
        journal.run_ids().unwrap()
    } else {
        journal.live_run_ids().unwrap()
    };
    let mut open = 0;
    for id in &ids {
        open += usize::from(!journal.summary(id).unwrap().status.is_final());
    }
    let took = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"s": took, "listed": ids.len(), "open": open, "rss_kib": rss_kib()})
    );
}

fn child(dir: &Path, history: bool) -> Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SOAR_BENCH_BOOT_MEASURE", dir)
        .env("SOAR_BENCH_BOOT_HISTORY", if history { "1" } else { "" })
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap()
}

fn main() {
    if let Ok(dir) = std::env::var("SOAR_BENCH_BOOT_MEASURE") {
        let history = std::env::var("SOAR_BENCH_BOOT_HISTORY").is_ok_and(|v| v == "1");
        return measure(&dir, history);
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, p) = (
        env("SOAR_BENCH_RUNS", 1_000_000),
        env("SOAR_BENCH_PAUSED", 10_000),
    );
    let tmp = tempfile::tempdir().unwrap();
    let (empty, paused, full) = (
        tmp.path().join("empty"),
        tmp.path().join("paused"),
        tmp.path().join("full"),
    );
    let t = Instant::now();
    write(&empty, 0, 0);
    write(&paused, 0, p);
    write(&full, n, p);
    println!(
        "journaled {n} finished + {p} paused runs in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for round in 1..=3 {
        let e = child(&empty, false);
        let q = child(&paused, false);
        let f = child(&full, false);
        println!(
            "round {round}: empty {:.3} s {} KiB | {p} paused {:.3} s {} KiB | {n} finished + {p} paused {:.3} s {} KiB ({} listed, {} open) | RSS full/paused-only {:.2}x",
            e["s"].as_f64().unwrap(), e["rss_kib"], q["s"].as_f64().unwrap(), q["rss_kib"],
            f["s"].as_f64().unwrap(), f["rss_kib"], f["listed"], f["open"],
            f["rss_kib"].as_f64().unwrap() / q["rss_kib"].as_f64().unwrap()
        );
    }
    let h = child(&full, true);
    println!(
        "before the index (every run's summary): {:.3} s {} KiB ({} listed, {} open)",
        h["s"].as_f64().unwrap(),
        h["rss_kib"],
        h["listed"],
        h["open"]
    );
}
