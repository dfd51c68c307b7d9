//! `GET /api/v1/metrics/summary` / `soar report` cost: the investigation
//! compression summary over N journaled runs (`SOAR_BENCH_RUNS`, default
//! 100,000; 12 records each, a third with a decided approval gate), next to
//! its floors measured in the same run: cold (nothing cached yet), reading
//! the same runs' records and doing nothing with them; warm (every final
//! run's facts cached), scanning the heads and the cached entries.
//!
//! `cargo bench -p soar-runner --bench compression`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::{json, Value};
use soar_runner::journal::{Durability, Event, Journal};
use soar_runner::operations::metrics;
use std::time::Instant;

fn ev(v: Value) -> Event {
    serde_json::from_value(v).expect("event")
}

/// One run's records: start, two enrichment steps, maybe a gate and a
/// containment, the end.
fn run_events(i: usize) -> Vec<Event> {
    let attempt = |step: &str| {
        ev(
            json!({"type": "attempt_started", "step": step, "attempt": 1, "idempotency_key": "k",
        "input": {"host_id": "0a1b2c3d"}, "plugin": "edr", "action": "get_host", "dry_run": false, "plugin_sha256": "0"}),
        )
    };
    let done = |step: &str| {
        ev(
            json!({"type": "step_finished", "step": step, "status": "succeeded", "output": {"hostname": "FIN-WS-042", "status": "normal"}}),
        )
    };
    let mut out = vec![
        ev(
            json!({"type": "run_started", "playbook": format!("pb{}", i % 5), "version": "1", "playbook_path": "p.yaml",
            "playbook_sha256": "0", "inputs": {"host_id": "0a1b2c3d"}, "alert": {"device": {"uid": "0a1b2c3d"}}, "started_by": "source:edr"}),
        ),
        ev(json!({"type": "step_started", "step": "host"})),
        attempt("host"),
        done("host"),
        ev(json!({"type": "step_started", "step": "hash"})),
        attempt("hash"),
        done("hash"),
    ];
    if i.is_multiple_of(3) {
        out.push(ev(json!({"type": "approval_requested", "step": "approve", "approvers": ["soc-lead"], "min_approvals": 1,
            "expires_at": "2026-12-09T00:00:00.000Z", "handoff": {"summary": "Isolate?"}, "bindings": [], "plan": null})));
        out.push(ev(json!({"type": "approval_voted", "step": "approve", "by": "bob", "vote": "approve", "reason": ""})));
        out.push(ev(json!({"type": "approval_decided", "step": "approve", "decision": "granted", "by": ["bob"], "reason": ""})));
    } else {
        out.push(ev(
            json!({"type": "step_skipped", "step": "approve", "reason": "not malicious"}),
        ));
        out.push(ev(
            json!({"type": "step_skipped", "step": "isolate", "reason": "upstream skipped"}),
        ));
        out.push(ev(
            json!({"type": "step_skipped", "step": "notify", "reason": "upstream skipped"}),
        ));
    }
    out.push(done("comment"));
    let outcome = ["benign", "false_positive", "incident"][i % 3];
    out.push(ev(
        json!({"type": "run_finished", "status": "succeeded", "outputs": {"outcome": outcome}}),
    ));
    out
}

fn main() {
    let n: usize = std::env::var("SOAR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), Durability::Process).unwrap();
    let began = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let run = format!("r{i:019x}");
            for e in run_events(i) {
                journal.append_buffered(&run, e).unwrap();
            }
            if (i + 1).is_multiple_of(1000) {
                journal
                    .append(
                        &run,
                        ev(json!({"type": "step_skipped", "step": "x", "reason": "flush"})),
                    )
                    .await
                    .unwrap();
            }
        }
    });
    println!(
        "journaled {n} runs in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let q = metrics::Query {
        from_ms: 0,
        to_ms: u64::MAX,
        playbook: None,
        enriched_steps: 1,
    };
    let t = Instant::now();
    let mut records = 0usize;
    for id in journal.run_ids().unwrap() {
        let _ = journal.summary(&id).unwrap();
        records += journal.read(&id).unwrap().len();
    }
    let read_floor = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let cold = metrics::summary(&journal, &q).unwrap();
    let cold_took = t.elapsed().as_secs_f64();
    assert_eq!(cold.total.runs as usize, n);
    println!(
        "cold (no cached facts): read floor (index + every run's {records} records) {read_floor:.3} s   summary {cold_took:.3} s   ({:.2}x)",
        cold_took / read_floor
    );
    for round in 1..=3 {
        // The warm floor: one pass over the two trees a warm summary reads
        // (every head, every cached entry), touching each byte once.
        let t = Instant::now();
        let mut bytes = 0usize;
        for head in journal.heads() {
            bytes += head.unwrap().0.len();
        }
        for entry in journal.derived("metrics").unwrap().iter() {
            bytes += entry.unwrap().1.len();
        }
        let floor = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let s = metrics::summary(&journal, &q).unwrap();
        let took = t.elapsed().as_secs_f64();
        assert_eq!(s, cold);
        println!(
            "round {round}: warm floor (scan heads + cached facts, {bytes} bytes) {floor:.3} s   summary {took:.3} s   ({:.2}x the floor, {:.1} µs per run)",
            took / floor,
            took * 1e6 / n as f64
        );
    }
}
