//! Export throughput: journal records to the SIEM sinks, records/s, to a
//! file (fsynced per batch) and to a loopback HTTP collector, next to the
//! floor of reading the same records back from the journal, in one run.
//! `cargo bench -p soar-e2e --profile dev --bench siem`.

use serde_json::json;
use soar_runner::config::{SiemConfig, SiemFile, SiemHttp};
use soar_runner::journal::{Durability, Event, Journal, RunStatus};
use std::time::{Duration, Instant};

const RUNS: usize = 2000;
const RECORDS_PER_RUN: u64 = 10;

async fn fill(journal: &Journal) {
    for i in 0..RUNS {
        let run = format!("r{i:06}");
        let start = Event::RunStarted {
            playbook: "bench".into(),
            version: "1".into(),
            playbook_sha256: "ab".repeat(32),
            playbook_path: "bench.yaml".into(),
            inputs: json!({"host": "FIN-WS-042"}),
            alert: json!({"id": i, "detection": "ldt:bench"}),
            started_by: "bench".into(),
            dedup_key: None,
            raw: None,
            group_key: None,
            previous_run: None,
        };
        journal.append_buffered(&run, start).unwrap();
        for s in 2..RECORDS_PER_RUN {
            let e = Event::StepSkipped {
                step: format!("s{s}"),
                reason: "condition `false` is false".into(),
            };
            journal.append_buffered(&run, e).unwrap();
        }
        let end = Event::RunFinished {
            status: RunStatus::Succeeded,
            outputs: json!({"verdict": "benign"}),
            error: None,
        };
        journal.append(&run, end).await.unwrap();
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), Durability::Process).unwrap();
    fill(&journal).await;
    let total = RUNS as u64 * RECORDS_PER_RUN;

    let started = Instant::now();
    let mut read = 0u64;
    for run in journal.run_ids().unwrap() {
        read += journal.read(&run).unwrap().len() as u64;
    }
    let floor = started.elapsed();
    println!(
        "[siem] floor: read {read} records back from the journal   {:>10.0} records/s",
        rate(read, floor)
    );

    let file = SiemConfig {
        file: Some(SiemFile {
            path: dir.path().join("out/events.jsonl"),
            rotate_bytes: 64 << 20,
            keep: 5,
        }),
        http: None,
        batch: 500,
    };
    let data = dir.path().join("data-file");
    let started = Instant::now();
    let n = soar_runner::siem::export(&journal, &file, &data)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(n.file, total);
    println!("[siem] to a file (batch 500, fsync per batch)          {:>10.0} records/s ({:.2}x the read floor's time)", rate(total, took), took.as_secs_f64() / floor.as_secs_f64());

    let collector = wiremock::MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let http = SiemConfig {
        file: None,
        http: Some(SiemHttp {
            url: format!("{}/ingest", collector.uri()),
            token: None,
            max_attempts: 3,
        }),
        batch: 500,
    };
    let data = dir.path().join("data-http");
    let started = Instant::now();
    let n = soar_runner::siem::export(&journal, &http, &data)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(n.http, total);
    println!("[siem] to a loopback HTTP collector (batch 500)         {:>10.0} records/s ({:.2}x the read floor's time)", rate(total, took), took.as_secs_f64() / floor.as_secs_f64());
}
