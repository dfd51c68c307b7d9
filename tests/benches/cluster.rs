//! The cluster journal next to sled, in one run (issue 24): a 10-step run's
//! records appended one after another (c=1, latency per run) and from 64
//! runs at once (records/s), on a 3-server JetStream cluster on loopback
//! with every write synced, and on sled with both durabilities.
//!
//! `cargo bench -p soar-e2e --profile dev --bench cluster`

use serde_json::json;
use soar_e2e::nats::Nats;
use soar_runner::config::JournalBackend;
use soar_runner::journal::jetstream::{connect, records, RunLog};
use soar_runner::journal::{Durability, Event, Journal};
use std::time::{Duration, Instant};

/// 31 records: a run's start, ten steps of three records, its end.
fn run_events() -> Vec<Event> {
    let ev = |v| serde_json::from_value::<Event>(v).unwrap();
    let mut out = vec![ev(
        json!({"type": "run_started", "playbook": "bench", "version": "1",
        "playbook_path": "p.yaml", "playbook_sha256": "0", "inputs": {"host_id": "h1"},
        "alert": {"device": {"uid": "0a1b2c3d"}}, "started_by": "bench"}),
    )];
    for i in 0..10 {
        let step = format!("s{i}");
        out.push(ev(json!({"type": "step_started", "step": step})));
        out.push(ev(json!({"type": "attempt_started", "step": step, "attempt": 1, "idempotency_key": "k",
            "input": {"host_id": "0a1b2c3d"}, "plugin": "edr", "action": "get_host", "dry_run": false, "plugin_sha256": "0"})));
        out.push(ev(
            json!({"type": "step_finished", "step": step, "status": "succeeded",
            "output": {"hostname": "FIN-WS-042", "status": "normal"}}),
        ));
    }
    out.push(ev(
        json!({"type": "run_finished", "status": "succeeded", "outputs": {}}),
    ));
    out
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn sled_run(j: &Journal, id: &str, events: &[Event]) {
    let _active = j.active_run();
    for e in events {
        j.append(id, e.clone()).await.unwrap();
    }
}

async fn nats_run(log: &RunLog, id: &str, events: &[Event]) {
    let mut tail = records::Tail::empty();
    for e in events {
        records::append(log, id, &mut tail, e).await.unwrap();
    }
}

/// p50 of a run at c=1, and records/s with 64 runs at once.
async fn measure<F, Fut>(name: &str, runs: usize, run: F)
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut seq = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        run(format!("{name}-c1-{i}")).await;
        seq.push(t.elapsed());
    }
    let began = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..64 {
        let run = run.clone();
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..runs / 8 {
                run(format!("{name}-c64-{c}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = (64 * (runs / 8) * run_events().len()) as f64;
    println!(
        "  {name:<28} 10-step run c=1 p50 {:>7.2} ms | c=64 {:>7.0} records/s ({:.0} steps/s)",
        p50(seq).as_secs_f64() * 1000.0,
        records / began.elapsed().as_secs_f64(),
        records / began.elapsed().as_secs_f64() / 3.0
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runs: usize = std::env::var("SOAR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80);
    let nats = Nats::cluster();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("soar.yaml"), nats.journal_yaml("")).unwrap();
    let config = soar_runner::config::Config::load(&dir.path().join("soar.yaml")).unwrap();
    let JournalBackend::Nats(cfg) = config.backend else {
        unreachable!("the bench's config says backend: nats")
    };
    let events = std::sync::Arc::new(run_events());
    println!(
        "journal appends, {} records per run (3 per step)",
        events.len()
    );
    rt.block_on(async {
        for (name, durability) in [
            ("sled, durability process", Durability::Process),
            ("sled, durability power_loss", Durability::PowerLoss),
        ] {
            let j =
                Journal::open(&dir.path().join(name.replace([' ', ','], "_")), durability).unwrap();
            let events = events.clone();
            measure(name, runs, move |id| {
                let (j, events) = (j.clone(), events.clone());
                async move { sled_run(&j, &id, &events).await }
            })
            .await;
        }
        let cluster = connect(&cfg, "bench").await.unwrap();
        let log = cluster.runs.clone();
        measure("jetstream R3, sync always", runs, move |id| {
            let (log, events) = (log.clone(), events.clone());
            async move { nats_run(&log, &id, &events).await }
        })
        .await;
    });
}
