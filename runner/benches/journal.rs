//! Verification and pruning of a long journal: what `soar journal verify
//! --all` does (the store walked tree by tree, every run's chain, the
//! signed checkpoints) and retention pruning with its checks (the chain of
//! checkpoints once, each run's chain and signed end), on N finished runs
//! of 10 records (`SOAR_BENCH_RUNS`, default 100,000), keyed, one
//! checkpoint per 250 runs.
//!
//! Next to each, the floor measured in the same run: one pass reading
//! every key and value of the journal's trees (no check can read less).
//! At N and N/4, so the ratio shows whether the walk stays linear.
//! `SOAR_BENCH_KEEP=DIR` leaves the keyed data dir there (and its key in
//! `DIR/journal.key`) for timing the CLI on it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use soar_runner::journal::{Durability, Event, Journal, JournalKeys, RunStatus};
use std::path::Path;
use std::time::{Duration, Instant};

fn keys() -> JournalKeys {
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    JournalKeys {
        public: vec![key.verifying_key()],
        signing: Some(key),
    }
}

/// Resets the peak below (Linux: `clear_refs` 5 resets VmHWM).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since [`reset_peak`], KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run_events(i: usize) -> Vec<Event> {
    let mut events = vec![Event::RunStarted {
        playbook: "bench".into(),
        version: "1".into(),
        playbook_sha256: "ab".repeat(32),
        playbook_path: "playbooks/bench.yaml".into(),
        inputs: json!({"host": format!("ws-{i}")}),
        alert: json!({"id": i, "severity": "high"}),
        started_by: "source:edr".into(),
        dedup_key: None,
        raw: None,
        group_key: None,
        previous_run: None,
    }];
    for s in 0..8 {
        events.push(Event::StepStarted {
            step: format!("step{s}"),
            items: None,
        });
    }
    events.push(Event::RunFinished {
        status: RunStatus::Succeeded,
        outputs: json!({"contained": false}),
        error: None,
    });
    events
}

/// A keyed journal with `n` finished runs in `dir`.
fn build(dir: &Path, n: usize) -> Duration {
    let started = Instant::now();
    let journal = Journal::open_keyed(dir, Durability::Process, keys()).unwrap();
    for i in 0..n {
        let id = format!("r{i:09}");
        for e in run_events(i) {
            journal.append_buffered(&id, e).unwrap();
        }
        if i % 250 == 249 {
            journal.sync().unwrap();
        }
    }
    journal.sync().unwrap();
    started.elapsed()
}

/// Every key and value of every tree, read once: the floor.
fn floor(dir: &Path) -> (Duration, u64) {
    let db = sled::open(dir).unwrap();
    let started = Instant::now();
    let mut bytes = 0u64;
    for name in db.tree_names() {
        for item in db.open_tree(name).unwrap().iter() {
            let (k, v) = item.unwrap();
            bytes += (k.len() + v.len()) as u64;
        }
    }
    (started.elapsed(), bytes)
}

/// What `soar journal verify --all` does, in process.
fn verify_all(dir: &Path) -> (Duration, usize, usize) {
    let journal = Journal::open_keyed(dir, Durability::Process, keys()).unwrap();
    let started = Instant::now();
    let signed = journal.verify_signed().unwrap();
    let ids = &signed.stored_runs;
    let mut bad = 0;
    for id in ids {
        bad += usize::from(!journal.verify(id).unwrap().problems.is_empty());
    }
    (started.elapsed(), ids.len(), bad + signed.problems.len())
}

/// Every run pruned with the journal's checks.
fn prune_all(dir: &Path) -> (Duration, usize) {
    let journal = Journal::open_keyed(dir, Durability::Process, keys()).unwrap();
    let runs: Vec<(String, String)> = journal
        .run_ids()
        .unwrap()
        .into_iter()
        .map(|id| (id, "bench".to_string()))
        .collect();
    let started = Instant::now();
    let done = journal
        .prune_many(&runs)
        .into_iter()
        .filter(Result::is_ok)
        .count();
    (started.elapsed(), done)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::var("SOAR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("| runs | build | floor: read every tree | verify --all | ratio | peak RSS after verify | prune all, checked | ratio | runs pruned/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for size in [n / 4, n] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        let built = build(&dir, size);
        let (floor_t, bytes) = floor(&dir);
        reset_peak();
        let (verify_t, ids, problems) = verify_all(&dir);
        assert_eq!((ids, problems), (size, 0), "a clean journal must verify");
        let peak = peak_kib();
        let kept = std::env::var("SOAR_BENCH_KEEP").ok().filter(|_| size == n);
        let (prune_t, pruned) = match &kept {
            Some(_) => (Duration::ZERO, size),
            None => prune_all(&dir),
        };
        assert_eq!(pruned, size, "every signed, finished run is pruned");
        println!(
            "| {size} | {} | {} ({} MiB) | {} | {:.1}x | {} MiB | {} | {:.1}x | {:.0} |",
            ms(built),
            ms(floor_t),
            bytes >> 20,
            ms(verify_t),
            verify_t.as_secs_f64() / floor_t.as_secs_f64(),
            peak >> 10,
            ms(prune_t),
            prune_t.as_secs_f64() / floor_t.as_secs_f64(),
            size as f64 / prune_t.as_secs_f64().max(1e-9)
        );
        if let Some(keep) = kept {
            let keep = Path::new(&keep);
            std::fs::create_dir_all(keep).unwrap();
            let _ = std::fs::remove_dir_all(keep.join("journal"));
            std::fs::rename(&dir, keep.join("journal")).unwrap();
            std::fs::write(keep.join("journal.key"), hex::encode([42u8; 32])).unwrap();
            println!("(kept in {}, not pruned)", keep.display());
        }
    }
}
