//! Journal tests: round trips, the hash chain against direct edits of the
//! sled trees, blobs, dedup races, group commit and reopening.

use super::canonical::GENESIS_HASH;
use super::store::{self, record_key};
use super::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn run_started(playbook: &str) -> Event {
    Event::RunStarted {
        playbook: playbook.into(),
        version: "1.0.0".into(),
        playbook_sha256: "ab".repeat(32),
        playbook_path: format!("playbooks/{playbook}.yaml"),
        inputs: json!({"host": "web-1"}),
        alert: json!({"id": 42, "score": 0.1}),
        started_by: "alice".into(),
        dedup_key: Some(format!("{playbook}:42")),
        raw: None,
        group_key: None,
        previous_run: None,
    }
}

fn step_started(n: u32) -> Event {
    Event::StepStarted {
        step: format!("step{n}"),
        items: None,
    }
}

fn attempt_ok(output: Value) -> Event {
    Event::AttemptFinished {
        step: "enrich".into(),
        item: None,
        attempt: 1,
        outcome: AttemptOutcome::Ok { output },
        duration_ms: 5,
        exchanges: json!([{"method": "GET", "status": 200}]),
        logs: json!([]),
    }
}

fn open() -> (TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), Durability::Process).unwrap();
    (dir, journal)
}

/// A run with `n` records: `run_started` then `step_started`s.
async fn run_with(journal: &Journal, run: &str, n: u32) -> Vec<Record> {
    let mut out = vec![journal.append(run, run_started("pb")).await.unwrap()];
    for i in 2..=n {
        out.push(journal.append(run, step_started(i)).await.unwrap());
    }
    out
}

fn tree(journal: &Journal, name: &str) -> sled::Tree {
    journal.db().open_tree(name).unwrap()
}

/// Rewrites the stored JSON of one record, bypassing the journal.
fn edit_record(journal: &Journal, run: &str, seq: u64, f: impl FnOnce(&mut Value)) {
    let records = tree(journal, store::RECORDS);
    let key = record_key(run, seq);
    let mut v: Value = serde_json::from_slice(&records.get(&key).unwrap().unwrap()).unwrap();
    f(&mut v);
    records
        .insert(key, serde_json::to_vec(&v).unwrap())
        .unwrap();
}

fn problems(journal: &Journal, run: &str) -> Vec<String> {
    journal.verify(run).unwrap().problems
}

#[test]
fn journal_is_send_sync_and_cheap_to_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Journal>();
}

#[tokio::test]
async fn append_read_roundtrip() {
    let (_dir, journal) = open();
    let events = vec![
        run_started("contain"),
        Event::StepStarted {
            step: "isolate".into(),
            items: Some(3),
        },
        Event::AttemptStarted {
            step: "isolate".into(),
            item: Some(0),
            attempt: 1,
            idempotency_key: "run-1/isolate/0".into(),
            input: json!({"host_id": "0a1b"}),
            plugin: "edr".into(),
            action: "isolate_host".into(),
            plugin_sha256: "cd".repeat(32),
            dry_run: false,
        },
        Event::AttemptFinished {
            step: "isolate".into(),
            item: Some(0),
            attempt: 1,
            outcome: AttemptOutcome::Err {
                kind: "rate_limited".into(),
                message: "429".into(),
                retry_after_ms: Some(1000),
            },
            duration_ms: 12,
            exchanges: json!([]),
            logs: json!(["slow down"]),
        },
        Event::RetryScheduled {
            step: "isolate".into(),
            item: Some(0),
            next_attempt: 2,
            at: "2026-11-27T10:15:31.123Z".into(),
            delay_ms: 1000,
            reason: "rate_limited: 429".into(),
        },
        Event::Reconciled {
            step: "isolate".into(),
            item: Some(0),
            attempt: 2,
            decision: "done".into(),
            detail: "probe says contained".into(),
        },
        Event::StepSkipped {
            step: "notify".into(),
            reason: "condition false".into(),
        },
        Event::StepFinished {
            step: "isolate".into(),
            status: "succeeded".into(),
            output: Some(json!([{"ok": true}])),
            error: None,
        },
        Event::RunPaused {
            status: RunStatus::WaitingApproval,
            reason: "approve release".into(),
        },
        Event::RunFinished {
            status: RunStatus::Succeeded,
            outputs: json!({"contained": 1}),
            error: None,
        },
    ];
    let mut appended = Vec::new();
    for e in &events {
        appended.push(journal.append("run-1", e.clone()).await.unwrap());
    }
    let read = journal.read("run-1").unwrap();
    assert_eq!(read, appended);
    assert_eq!(
        read.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        events
    );
    assert_eq!(read[0].prev_hash, GENESIS_HASH);
    for (i, pair) in read.windows(2).enumerate() {
        assert_eq!(pair[1].seq, i as u64 + 2);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(pair[0].at <= pair[1].at);
    }
    assert!(journal.verify("run-1").unwrap().is_intact());
    assert_eq!(journal.verify("run-1").unwrap().records, 10);

    // The public JSON shape: record fields and the event flattened.
    let v = serde_json::to_value(&read[4]).unwrap();
    assert_eq!(v["seq"], 5);
    assert_eq!(v["type"], "retry_scheduled");
    assert_eq!(v["retry_at"], "2026-11-27T10:15:31.123Z");
    assert_eq!(v["at"], read[4].at);
    assert_eq!(serde_json::from_value::<Record>(v).unwrap(), read[4]);

    assert!(matches!(journal.read("nope"), Err(JournalError::UnknownRun(r)) if r == "nope"));
    assert!(matches!(
        journal.read("run-1\0"),
        Err(JournalError::UnknownRun(_))
    ));
    assert!(matches!(
        journal.verify("nope"),
        Err(JournalError::UnknownRun(_))
    ));
    assert!(matches!(
        journal.summary("nope"),
        Err(JournalError::UnknownRun(_))
    ));
}

#[tokio::test]
async fn a_run_starts_with_run_started_once() {
    let (_dir, journal) = open();
    let err = journal.append("r", step_started(1)).await.unwrap_err();
    assert!(
        matches!(&err, JournalError::Encode(m) if m.contains("must be run_started")),
        "{err}"
    );
    journal.append("r", run_started("pb")).await.unwrap();
    let err = journal.append("r", run_started("pb")).await.unwrap_err();
    assert!(
        matches!(&err, JournalError::Encode(m) if m.contains("already started")),
        "{err}"
    );
    for bad in ["", "a\0b"] {
        assert!(matches!(
            journal.append(bad, run_started("pb")).await,
            Err(JournalError::Encode(_))
        ));
    }
    // Failed appends left nothing behind.
    assert_eq!(journal.read("r").unwrap().len(), 1);
    assert_eq!(journal.run_ids().unwrap(), ["r"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_run_get_distinct_consecutive_seqs() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 1).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let journal = journal.clone();
        tasks.spawn(async move { journal.append("r", step_started(i)).await.unwrap().seq });
    }
    let mut seqs = tasks.join_all().await;
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
    let records = journal.read("r").unwrap();
    assert_eq!(records.len(), 51);
    assert!(journal.verify("r").unwrap().is_intact());
    // Per-run locks are dropped once nobody appends.
    assert!(journal.inner.run_locks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn verify_catches_an_edited_record() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 5).await;
    edit_record(&journal, "r", 3, |v| v["event"]["step"] = json!("innocent"));
    assert_eq!(
        problems(&journal, "r"),
        ["seq 3: hash mismatch (record edited)"]
    );
    // read() decodes it fine: integrity is verify's job.
    assert_eq!(journal.read("r").unwrap().len(), 5);
}

#[tokio::test]
async fn verify_catches_an_edit_with_a_recomputed_hash() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 5).await;
    edit_record(&journal, "r", 3, |v| {
        v["event"]["step"] = json!("innocent");
        let canon = canonical::Json::parse(&v["event"].to_string())
            .unwrap()
            .canonical();
        let hash = record_hash(
            v["prev_hash"].as_str().unwrap(),
            3,
            v["at"].as_str().unwrap(),
            &canon,
        );
        v["hash"] = json!(hash);
    });
    assert_eq!(
        problems(&journal, "r"),
        ["seq 4: prev_hash does not match the hash of seq 3 (chain broken: a record replaced or inserted)"]
    );
}

#[tokio::test]
async fn verify_catches_a_deleted_record() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 7).await;
    tree(&journal, store::RECORDS)
        .remove(record_key("r", 4))
        .unwrap();
    assert_eq!(problems(&journal, "r"), ["seq 4 missing (record deleted)"]);
    let records = tree(&journal, store::RECORDS);
    records.remove(record_key("r", 5)).unwrap();
    records.remove(record_key("r", 6)).unwrap();
    assert_eq!(
        problems(&journal, "r"),
        ["seq 4-6 missing (records deleted)"]
    );
}

#[tokio::test]
async fn verify_catches_reordered_records() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 5).await;
    let records = tree(&journal, store::RECORDS);
    let two = records.get(record_key("r", 2)).unwrap().unwrap();
    let three = records.get(record_key("r", 3)).unwrap().unwrap();
    records.insert(record_key("r", 2), three).unwrap();
    records.insert(record_key("r", 3), two).unwrap();
    assert_eq!(
        problems(&journal, "r"),
        [
            "seq 2: holds the record of seq 3 (records reordered)",
            "seq 3: holds the record of seq 2 (records reordered)",
        ]
    );
}

#[tokio::test]
async fn verify_catches_a_truncated_tail_and_a_replaced_last_record() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 7).await;
    let records = tree(&journal, store::RECORDS);
    let seventh = records.remove(record_key("r", 7)).unwrap().unwrap();
    assert_eq!(
        problems(&journal, "r"),
        ["head says 7 records, found 6 (tail truncated)"]
    );

    // Put a self-consistent forgery in its place: the head still disagrees.
    records.insert(record_key("r", 7), seventh).unwrap();
    edit_record(&journal, "r", 7, |v| {
        v["event"]["step"] = json!("forged");
        let canon = canonical::Json::parse(&v["event"].to_string())
            .unwrap()
            .canonical();
        v["hash"] = json!(record_hash(
            v["prev_hash"].as_str().unwrap(),
            7,
            v["at"].as_str().unwrap(),
            &canon
        ));
    });
    assert_eq!(
        problems(&journal, "r"),
        ["seq 7: hash differs from the head's (last record replaced)"]
    );

    tree(&journal, store::HEADS).remove("r").unwrap();
    assert_eq!(
        problems(&journal, "r"),
        ["head missing (run index damaged)"]
    );
}

#[tokio::test]
async fn a_record_past_the_head_is_never_overwritten() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 3).await;
    tree(&journal, store::HEADS).remove("r").unwrap();
    // The head is gone, so the next seq would be 1 again: refused.
    let err = journal.append("r", run_started("pb")).await.unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { seq: 1, .. }), "{err}");
    assert_eq!(journal.read("r").unwrap().len(), 3);
}

#[tokio::test]
async fn a_garbage_record_is_a_corrupt_error_naming_its_seq() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 4).await;
    tree(&journal, store::RECORDS)
        .insert(record_key("r", 3), b"{\"seq\": 3, garbage".to_vec())
        .unwrap();
    match journal.read("r") {
        Err(JournalError::Corrupt {
            run_id,
            seq,
            reason,
        }) => {
            assert_eq!((run_id.as_str(), seq), ("r", 3));
            assert!(reason.contains("undecodable record"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let found = problems(&journal, "r");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("seq 3: undecodable record ("),
        "{found:?}"
    );

    // Valid JSON that is not an event is corrupt too.
    edit_record(&journal, "r", 2, |_| {});
    tree(&journal, store::RECORDS)
        .insert(
            record_key("r", 3),
            serde_json::to_vec(&json!({"seq": 3, "at": "x", "prev_hash": "0", "hash": "0",
                                       "event": {"type": "meteor_strike"}}))
            .unwrap(),
        )
        .unwrap();
    assert!(matches!(
        journal.read("r"),
        Err(JournalError::Corrupt { seq: 3, .. })
    ));
    assert!(problems(&journal, "r")
        .iter()
        .any(|p| p.starts_with("seq 3: not a journal event")));
}

#[tokio::test]
async fn floats_and_odd_strings_verify_intact() {
    // Re-serialising parsed floats could move them by one ulp; the hash is
    // recomputed from the stored literals instead.
    let (_dir, journal) = open();
    journal.append("r", run_started("pb")).await.unwrap();
    let output = json!({
        "scores": [0.1, 2.638344616030823e-256, 1.7976931348623157e308, -0.0, 5e-324],
        "big": u64::MAX, "neg": i64::MIN,
        "text": "quote\" backslash\\ tab\t nul\u{0} é 😀 \u{2028}",
        "z": 1, "a": {"y": 2, "b": 3}
    });
    journal
        .append("r", attempt_ok(output.clone()))
        .await
        .unwrap();
    assert!(journal.verify("r").unwrap().is_intact());
    let read = journal.read("r").unwrap();
    assert!(
        matches!(&read[1].event, Event::AttemptFinished { outcome: AttemptOutcome::Ok { output: o }, .. } if *o == output)
    );
}

#[tokio::test]
async fn large_values_are_stored_once_as_blobs_and_inlined_on_read() {
    let (_dir, journal) = open();
    journal.append("r", run_started("pb")).await.unwrap();
    let big = json!({"hosts": (0..5000).map(|i| format!("host-{i:05}.corp.example")).collect::<Vec<_>>()});
    let big_len = serde_json::to_vec(&big).unwrap().len();
    assert!(big_len > store::BLOB_THRESHOLD);
    let small = json!({"verdict": "malicious"});

    journal.append("r", attempt_ok(big.clone())).await.unwrap();
    journal
        .append("r", attempt_ok(small.clone()))
        .await
        .unwrap();
    journal
        .append(
            "r",
            Event::StepFinished {
                step: "enrich".into(),
                status: "succeeded".into(),
                output: Some(big.clone()),
                error: None,
            },
        )
        .await
        .unwrap();
    journal
        .append(
            "r",
            Event::RunFinished {
                status: RunStatus::Succeeded,
                outputs: big.clone(),
                error: None,
            },
        )
        .await
        .unwrap();

    // Stored as a reference, once.
    let stored: Value = serde_json::from_slice(
        &tree(&journal, store::RECORDS)
            .get(record_key("r", 2))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let reference = &stored["event"]["outcome"]["output"];
    let digest = reference["$blob"].as_str().unwrap().to_string();
    assert_eq!(reference["size"], big_len);
    assert_eq!(digest.len(), 64);
    let blobs = tree(&journal, store::BLOBS);
    assert_eq!(blobs.len(), 1);
    let small_stored: Value = serde_json::from_slice(
        &tree(&journal, store::RECORDS)
            .get(record_key("r", 3))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(small_stored["event"]["outcome"]["output"], small);

    // Inlined back, identical.
    let read = journal.read("r").unwrap();
    assert!(
        matches!(&read[1].event, Event::AttemptFinished { outcome: AttemptOutcome::Ok { output }, .. } if *output == big)
    );
    assert!(
        matches!(&read[2].event, Event::AttemptFinished { outcome: AttemptOutcome::Ok { output }, .. } if *output == small)
    );
    assert!(matches!(&read[3].event, Event::StepFinished { output: Some(o), .. } if *o == big));
    assert!(matches!(&read[4].event, Event::RunFinished { outputs, .. } if *outputs == big));
    assert!(journal.verify("r").unwrap().is_intact());
    // The summary does not need the blobs.
    assert_eq!(journal.summary("r").unwrap().status, RunStatus::Succeeded);

    // An edited blob is caught by verify and refused by read.
    let original = blobs.get(&digest).unwrap().unwrap();
    let mut edited = original.to_vec();
    let at = edited.iter().position(|&b| b == b'0').unwrap();
    edited[at] = b'1';
    blobs.insert(digest.as_bytes(), edited).unwrap();
    let found = problems(&journal, "r");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found[0],
        format!("seq 2: blob {digest} does not match its digest (blob edited)")
    );
    assert!(matches!(
        journal.read("r"),
        Err(JournalError::Corrupt { seq: 2, .. })
    ));

    blobs.remove(digest.as_bytes()).unwrap();
    assert_eq!(
        problems(&journal, "r")[0],
        format!("seq 2: blob {digest} missing (blob deleted)")
    );
    match journal.read("r") {
        Err(JournalError::Corrupt { seq: 2, reason, .. }) => assert!(reason.contains("missing")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_value_shaped_like_a_blob_reference_roundtrips() {
    let (_dir, journal) = open();
    journal.append("r", run_started("pb")).await.unwrap();
    let tricky = json!({"$blob": "not-ours", "size": 3});
    journal
        .append("r", attempt_ok(tricky.clone()))
        .await
        .unwrap();
    let read = journal.read("r").unwrap();
    assert!(
        matches!(&read[1].event, Event::AttemptFinished { outcome: AttemptOutcome::Ok { output }, .. } if *output == tricky)
    );
    assert!(journal.verify("r").unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dedup_claims_race_and_exactly_one_wins() {
    let (_dir, journal) = open();
    for round in 0..50 {
        let key = format!("alert-{round}");
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let claims: Vec<_> = ["run-a", "run-b"]
            .into_iter()
            .map(|run| {
                let (journal, key, barrier) = (journal.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (run, journal.claim_dedup(&key, run).unwrap())
                })
            })
            .collect();
        let results: Vec<_> = claims.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_none()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let winner = winners[0].0;
        let loser = results.iter().find(|(_, r)| r.is_some()).unwrap();
        assert_eq!(loser.1.as_deref(), Some(winner));
        // The holder claiming again is not a conflict.
        assert_eq!(journal.claim_dedup(&key, winner).unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_flushes_between_concurrent_appends() {
    let (_dir, journal) = open();
    let runs: Vec<String> = (0..4).map(|i| format!("run-{i}")).collect();
    for run in &runs {
        run_with(&journal, run, 1).await;
    }
    let before = journal.flush_count();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let (journal, barrier, run) = (
            journal.clone(),
            barrier.clone(),
            runs[i as usize % 4].clone(),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            journal.append(&run, step_started(i)).await.unwrap()
        });
    }
    let appended = tasks.join_all().await;
    let flushes = journal.flush_count() - before;
    eprintln!("64 concurrent appends took {flushes} flushes");
    assert!(flushes < 64, "{flushes} flushes for 64 appends");
    assert!(flushes >= 1);
    assert_eq!(appended.len(), 64);
    for run in &runs {
        let records = journal.read(run).unwrap();
        assert_eq!(records.len(), 17);
        assert!(journal.verify(run).unwrap().is_intact());
    }
}

/// Puts the run's head back on record `seq`, as a crash between writing a
/// record and its head leaves it.
fn rewind_head(journal: &Journal, run: &str, seq: u64) {
    let heads = tree(journal, store::HEADS);
    if seq == 0 {
        heads.remove(run).unwrap();
        return;
    }
    let record: Value = serde_json::from_slice(
        &tree(journal, store::RECORDS)
            .get(record_key(run, seq))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let head = json!({"seq": seq, "hash": record["hash"]});
    heads
        .insert(run, serde_json::to_vec(&head).unwrap())
        .unwrap();
}

#[tokio::test]
async fn a_record_whose_head_a_crash_lost_is_intact_and_the_chain_continues() {
    let (_dir, journal) = open();
    let written = run_with(&journal, "r", 3).await;
    rewind_head(&journal, "r", 2);
    assert!(journal.verify("r").unwrap().is_intact());
    let next = journal.append("r", step_started(9)).await.unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, written[2].hash);
    assert!(journal.verify("r").unwrap().is_intact());

    // The same for a run's first record.
    let first = run_with(&journal, "s", 1).await;
    rewind_head(&journal, "s", 0);
    assert!(journal.verify("s").unwrap().is_intact());
    assert_eq!(journal.summary("s").unwrap().playbook, "pb");
    let next = journal.append("s", step_started(1)).await.unwrap();
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (2, first[0].hash.as_str())
    );
    assert!(journal.verify("s").unwrap().is_intact());
}

#[tokio::test]
async fn more_than_a_crash_leaves_past_the_head_is_refused_and_reported() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 4).await;
    // Two records past the head: more than one crash can leave.
    rewind_head(&journal, "r", 2);
    assert_eq!(
        problems(&journal, "r"),
        ["head says 2 records, found 4 (records added outside the journal)"]
    );
    let err = journal.append("r", step_started(9)).await.unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { seq: 3, .. }), "{err}");

    // One record past the head that does not link to it.
    let (_dir, journal) = open();
    run_with(&journal, "r", 3).await;
    rewind_head(&journal, "r", 1);
    tree(&journal, store::RECORDS)
        .remove(record_key("r", 2))
        .unwrap();
    let err = journal.append("r", step_started(9)).await.unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { seq: 2, .. }), "{err}");
    assert_eq!(journal.read("r").unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_other_active_runs_only_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_millis(400);
    let journal = Journal::open_with_window(dir.path(), Durability::Process, window).unwrap();

    // A lone run never waits for company.
    let lone = journal.active_run();
    let started = Instant::now();
    run_with(&journal, "lone", 3).await;
    assert!(started.elapsed() < window, "{:?}", started.elapsed());
    drop(lone);

    // Another run is active but does not append: the flush holds for the
    // window, then goes ahead.
    let (_a, _b) = (journal.active_run(), journal.active_run());
    let started = Instant::now();
    journal.append("a", run_started("pb")).await.unwrap();
    assert!(started.elapsed() >= window, "{:?}", started.elapsed());

    // The other run waits on a vendor call or a retry delay: no hold.
    let idle = journal.idle();
    let started = Instant::now();
    journal.append("b", run_started("pb")).await.unwrap();
    assert!(started.elapsed() < window, "{:?}", started.elapsed());
    drop(idle);

    // Every active run waiting: the flush goes at once, shared by both.
    let before = journal.flush_count();
    let started = Instant::now();
    let (x, y) = tokio::join!(
        journal.append("x", run_started("pb")),
        journal.append("y", run_started("pb"))
    );
    x.unwrap();
    y.unwrap();
    assert!(started.elapsed() < window, "{:?}", started.elapsed());
    assert_eq!(journal.flush_count() - before, 1);
}

#[tokio::test]
async fn reopen_keeps_data_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let journal = Journal::open(dir.path(), Durability::PowerLoss).unwrap();
        // A second handle on the same directory is refused (sled's lock).
        assert!(matches!(
            Journal::open(dir.path(), Durability::Process),
            Err(JournalError::Storage(_))
        ));
        run_with(&journal, "b-run", 3).await;
        run_with(&journal, "a-run", 1).await;
        // Large enough for sled to keep it in its own `blobs/` files.
        let big = json!("x".repeat(300 * 1024));
        journal.append("a-run", attempt_ok(big)).await.unwrap();
        assert!(journal.flush_count() >= 5);
        journal.read("b-run").unwrap()
    };

    let journal = Journal::open(dir.path(), Durability::PowerLoss).unwrap();
    assert_eq!(journal.read("b-run").unwrap(), first);
    assert_eq!(journal.run_ids().unwrap(), ["b-run", "a-run"]);
    let next = journal.append("b-run", step_started(4)).await.unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, first[2].hash);
    assert!(journal.verify("b-run").unwrap().is_intact());
    assert!(journal.verify("a-run").unwrap().is_intact());
    drop(journal);

    // The data is plain sled underneath: readable without the journal.
    let db = sled::open(dir.path()).unwrap();
    let heads = db.open_tree(store::HEADS).unwrap();
    let head: Value = serde_json::from_slice(&heads.get("b-run").unwrap().unwrap()).unwrap();
    assert_eq!(head["seq"], 4);
    assert_eq!(head["hash"], next.hash);
}

#[tokio::test]
async fn run_ids_are_oldest_first() {
    let (_dir, journal) = open();
    for run in ["zeta", "alpha", "mid"] {
        run_with(&journal, run, 2).await;
    }
    journal.append("alpha", step_started(9)).await.unwrap();
    assert_eq!(journal.run_ids().unwrap(), ["zeta", "alpha", "mid"]);
    // Indexed, then the crash came before its first record: never started.
    let id = journal.db().generate_id().unwrap();
    tree(&journal, store::RUNS)
        .insert(id.to_be_bytes(), "ghost")
        .unwrap();
    assert_eq!(journal.run_ids().unwrap(), ["zeta", "alpha", "mid"]);
}

#[tokio::test]
async fn summary_follows_the_latest_status() {
    let (_dir, journal) = open();
    let first = journal.append("r", run_started("contain")).await.unwrap();
    let s = journal.summary("r").unwrap();
    assert_eq!(
        s,
        RunSummary {
            run_id: "r".into(),
            playbook: "contain".into(),
            status: RunStatus::Running,
            started_at: first.at.clone(),
            updated_at: first.at.clone(),
            started_by: "alice".into(),
            dedup_key: Some("contain:42".into()),
        }
    );
    let pause = Event::RunPaused {
        status: RunStatus::WaitingApproval,
        reason: "approve isolate".into(),
    };
    journal.append("r", pause).await.unwrap();
    assert_eq!(
        journal.summary("r").unwrap().status,
        RunStatus::WaitingApproval
    );
    journal.append("r", step_started(2)).await.unwrap();
    assert_eq!(journal.summary("r").unwrap().status, RunStatus::Running);
    let last = journal
        .append(
            "r",
            Event::RunFinished {
                status: RunStatus::Failed,
                outputs: Value::Null,
                error: Some("a step failed".into()),
            },
        )
        .await
        .unwrap();
    let s = journal.summary("r").unwrap();
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(s.updated_at, last.at);
    assert_eq!(serde_json::to_value(&s).unwrap()["status"], "failed");
}

/// Throughput at concurrency 1 and 64, both durabilities. Run with
/// `cargo test -p soar-runner journal::tests::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn measure_append_throughput() {
    for durability in [Durability::Process, Durability::PowerLoss] {
        for concurrency in [1usize, 64] {
            let dir = tempfile::tempdir().unwrap();
            let journal = Journal::open(dir.path(), durability).unwrap();
            let runs: Vec<String> = (0..concurrency).map(|i| format!("run-{i}")).collect();
            for run in &runs {
                journal.append(run, run_started("pb")).await.unwrap();
            }
            let per_task = 2000 / concurrency;
            let before = journal.flush_count();
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for run in runs {
                let journal = journal.clone();
                tasks.spawn(async move {
                    for i in 0..per_task {
                        journal.append(&run, step_started(i as u32)).await.unwrap();
                    }
                });
            }
            tasks.join_all().await;
            let elapsed = start.elapsed();
            let appends = (per_task * concurrency) as f64;
            let flushes = (journal.flush_count() - before) as f64;
            eprintln!(
                "{durability:?} concurrency {concurrency}: {:.0} appends/s, {:.3} flushes/append, {:.0} us/append latency",
                appends / elapsed.as_secs_f64(),
                flushes / appends,
                elapsed.as_micros() as f64 * concurrency as f64 / appends
            );
        }
    }
}

/// Set by [`killed_mid_append_leaves_whole_records`] for the child process.
const CRASH_DIR_ENV: &str = "SOAR_JOURNAL_CRASH_DIR";

/// The child side of the kill test: appends from 8 tasks until killed,
/// printing each acknowledged record. Does nothing when run on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of killed_mid_append_leaves_whole_records"]
async fn crash_child() {
    use std::io::Write;
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let journal = Journal::open(std::path::Path::new(&dir), Durability::Process).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let journal = journal.clone();
        tasks.spawn(async move {
            let run = format!("run-{t}");
            let mut record = journal.append(&run, run_started("pb")).await.unwrap();
            for i in 0.. {
                // Every few records a large value, so blobs are in flight too.
                let event = if i % 7 == 0 {
                    attempt_ok(json!("y".repeat(70 * 1024 + i)))
                } else {
                    step_started(i as u32)
                };
                {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {run} {} {}", record.seq, record.hash).unwrap();
                    out.flush().unwrap();
                }
                record = journal.append(&run, event).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
}

#[test]
fn killed_mid_append_leaves_whole_records() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "journal::tests::crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked: std::collections::HashMap<String, (u64, String)> = Default::default();
    let mut count = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        let mut parts = line.split(' ');
        if parts.next() != Some("acked") {
            continue;
        }
        let (run, seq, hash) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        acked.insert(run.to_string(), (seq.parse().unwrap(), hash.to_string()));
        count += 1;
        if count == 400 {
            break;
        }
    }
    // SIGKILL in the middle of whatever the child was doing.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(count, 400, "the child stopped early");

    let journal = Journal::open(dir.path(), Durability::Process).unwrap();
    for (run, (seq, hash)) in &acked {
        let report = journal.verify(run).unwrap();
        assert!(report.is_intact(), "{report:?}");
        let records = journal.read(run).unwrap();
        // Every acknowledged record survived, with the hash it was acked with.
        let kept = records
            .iter()
            .find(|r| r.seq == *seq)
            .expect("acked record lost");
        assert_eq!(&kept.hash, hash);
        // The run continues where it stopped.
        let next = block_on(journal.append(run, step_started(0))).unwrap();
        assert_eq!(next.seq, records.len() as u64 + 1);
    }
}

/// Runs a future to completion on a throwaway runtime (the kill test is a
/// plain `#[test]` so it does not nest runtimes).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

// ---- keyed journal: signed checkpoints -------------------------------------

fn keys(seed: u8) -> JournalKeys {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    JournalKeys {
        public: vec![signing.verifying_key()],
        signing: Some(signing),
    }
}

fn open_keyed(dir: &std::path::Path, k: JournalKeys) -> Journal {
    Journal::open_keyed(dir, Durability::Process, k).unwrap()
}

/// Re-chains run `run` from `from` on, as an attacker with write access
/// would: every hash after the edit and the head recomputed.
fn rechain(journal: &Journal, run: &str, from: u64) {
    let records = tree(journal, store::RECORDS);
    let heads = tree(journal, store::HEADS);
    let mut prev = match from {
        1 => GENESIS_HASH.to_string(),
        n => {
            let v: Value =
                serde_json::from_slice(&records.get(record_key(run, n - 1)).unwrap().unwrap())
                    .unwrap();
            v["hash"].as_str().unwrap().to_string()
        }
    };
    let mut seq = from;
    while let Some(bytes) = records.get(record_key(run, seq)).unwrap() {
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        let canon = canonical::Json::parse(&v["event"].to_string())
            .unwrap()
            .canonical();
        let hash = record_hash(&prev, seq, v["at"].as_str().unwrap(), &canon);
        v["prev_hash"] = json!(prev);
        v["hash"] = json!(hash);
        records
            .insert(record_key(run, seq), serde_json::to_vec(&v).unwrap())
            .unwrap();
        heads
            .insert(
                run.as_bytes(),
                serde_json::to_vec(&json!({"seq": seq, "hash": hash})).unwrap(),
            )
            .unwrap();
        prev = hash;
        seq += 1;
    }
}

#[tokio::test]
async fn an_unkeyed_journal_says_so_and_a_keyed_one_verifies() {
    let (_dir, journal) = open();
    run_with(&journal, "r", 3).await;
    let report = journal.verify_signed().unwrap();
    assert!(!report.keyed && report.problems.is_empty(), "{report:?}");

    let dir = tempfile::tempdir().unwrap();
    let journal = open_keyed(dir.path(), keys(7));
    run_with(&journal, "a", 4).await;
    run_with(&journal, "b", 2).await;
    let report = journal.verify_signed().unwrap();
    assert!(report.keyed, "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(report.checkpoints >= 1);
    assert_eq!(report.key_ids, [key_id(&keys(7).public[0])]);
}

#[tokio::test]
async fn a_rechained_edit_a_deletion_a_truncation_and_a_rollback_are_each_reported() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_keyed(dir.path(), keys(1));
    for run in ["edited", "deleted", "truncated", "rolled", "fine"] {
        run_with(&journal, run, 6).await;
    }
    // Re-chained: a record edited and every hash after it recomputed: the
    // unkeyed check passes, the signed one does not.
    edit_record(&journal, "edited", 4, |v| {
        v["event"]["step"] = json!("innocent")
    });
    rechain(&journal, "edited", 4);
    assert_eq!(problems(&journal, "edited"), Vec::<String>::new());
    // Deleted: records, head and index entry.
    let records = tree(&journal, store::RECORDS);
    for seq in 1..=6 {
        records.remove(record_key("deleted", seq)).unwrap();
    }
    tree(&journal, store::HEADS).remove("deleted").unwrap();
    // Truncated: the last two records and the head moved back.
    records.remove(record_key("truncated", 6)).unwrap();
    records.remove(record_key("truncated", 5)).unwrap();
    rewind_head(&journal, "truncated", 4);
    // Rolled back to an older head: the last records replaced by others
    // that chain from seq 3.
    records.remove(record_key("rolled", 6)).unwrap();
    records.remove(record_key("rolled", 5)).unwrap();
    edit_record(&journal, "rolled", 4, |v| {
        v["event"]["step"] = json!("other")
    });
    rechain(&journal, "rolled", 4);
    assert_eq!(problems(&journal, "rolled"), Vec::<String>::new());

    let report = journal.verify_signed().unwrap();
    let about = |run: &str| -> Vec<&String> {
        report
            .problems
            .iter()
            .filter(|p| p.starts_with(&format!("run {run}:")))
            .collect()
    };
    let edited = about("edited");
    assert_eq!(edited.len(), 1, "{report:#?}");
    assert!(
        edited[0].contains("rewritten") && edited[0].contains("..=4"),
        "{edited:?}"
    );
    // Its index entry was left: the store walk names that too.
    assert!(
        about("deleted")
            .iter()
            .any(|p| p.contains("deleted (checkpoint")),
        "{report:#?}"
    );
    assert!(
        about("deleted")
            .iter()
            .any(|p| p.contains("listed in the run index")),
        "{report:#?}"
    );
    assert!(
        about("truncated")[0].contains("truncated or rolled back")
            && about("truncated")[0].contains("ends at seq 4"),
        "{report:#?}"
    );
    assert!(
        about("rolled")[0].contains("truncated or rolled back")
            || about("rolled")[0].contains("rewritten"),
        "{report:#?}"
    );
    assert!(about("fine").is_empty(), "{report:#?}");
}

#[tokio::test]
async fn a_run_inserted_a_forged_checkpoint_and_a_missing_key_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open_keyed(dir.path(), keys(2));
        run_with(&journal, "a", 3).await;
        journal.sync().unwrap();
    }
    // Inserted by someone with the data dir but not the key.
    {
        let journal = Journal::open(dir.path(), Durability::Process).unwrap();
        run_with(&journal, "inserted", 2).await;
        // No public key: a signed journal cannot pass.
        let report = journal.verify_signed().unwrap();
        assert!(report.keyed);
        assert!(
            report.problems[0].contains("no public key was given"),
            "{report:?}"
        );
        // A checkpoint edited (or signed by another key) is refused.
        let cps = tree(&journal, super::checkpoint::CHECKPOINTS);
        let (k, v) = cps.last().unwrap().unwrap();
        let mut cp: Checkpoint = serde_json::from_slice(&v).unwrap();
        cp.heads.insert("inserted".into(), (2, "00".into()));
        cps.insert(k, serde_json::to_vec(&cp).unwrap()).unwrap();
    }
    let verifier = JournalKeys {
        signing: None,
        public: keys(2).public,
    };
    let journal = Journal::open_keyed(dir.path(), Durability::Process, verifier).unwrap();
    let report = journal.verify_signed().unwrap();
    let text = report.problems.join("\n");
    assert!(
        text.contains("the signature does not match (checkpoint edited)"),
        "{text}"
    );
    assert!(
        text.contains("run inserted: no signed checkpoint covers it"),
        "{text}"
    );
    // The wrong public key verifies nothing.
    drop(journal);
    let wrong = JournalKeys {
        signing: None,
        public: keys(3).public,
    };
    let journal = Journal::open_keyed(dir.path(), Durability::Process, wrong).unwrap();
    let text = journal.verify_signed().unwrap().problems.join("\n");
    assert!(
        text.contains("which is not among the public keys given"),
        "{text}"
    );
}

#[tokio::test]
async fn keys_rotate_and_old_checkpoints_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open_keyed(dir.path(), keys(4));
        run_with(&journal, "old", 3).await;
        journal.sync().unwrap();
    }
    let rotated = JournalKeys {
        signing: keys(5).signing,
        public: keys(4).public,
    };
    let journal = open_keyed(dir.path(), rotated);
    run_with(&journal, "new", 3).await;
    let report = journal.verify_signed().unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.key_ids.len(), 2, "{report:?}");
}

#[tokio::test]
async fn a_bundle_verifies_and_a_repeated_or_edited_record_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(8);
    let journal = open_keyed(dir.path(), k.clone());
    run_with(&journal, "r", 4).await;
    let mut bundle = journal.export("r").unwrap();
    bundle.playbook.text = "name: pb\n".into();
    bundle.playbook.sha256 = super::canonical::sha256_hex(b"name: pb\n");
    // The run's playbook_sha256 is "ab"*32 (test events): the text does not
    // match it, which verify must say; the rest is intact.
    assert!(journal.sign_bundle(&mut bundle));
    let problems = bundle::verify(&bundle, &k.public).unwrap();
    assert_eq!(
        problems,
        ["the playbook text is not the one the run started with"]
    );
    assert_eq!(bundle.records().unwrap().len(), 4);

    let mut repeated = bundle.clone();
    repeated.records.push(repeated.records[1].clone());
    repeated.sign(k.signing.as_ref().unwrap());
    let problems = bundle::verify(&repeated, &k.public).unwrap();
    assert!(
        problems.iter().any(|p| p.contains("not seq 1, 2, 3")),
        "{problems:?}"
    );

    let mut edited = bundle.clone();
    edited.records[2] = edited.records[2].replace("step3", "step9");
    let problems = bundle::verify(&edited, &k.public).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("signature does not match")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("hash mismatch")),
        "{problems:?}"
    );
}

// ---- trust never restarts silently; the store walked, not the index ---------

fn finish(status: RunStatus) -> Event {
    Event::RunFinished {
        status,
        outputs: json!({}),
        error: None,
    }
}

#[tokio::test]
async fn a_new_keyed_journal_starts_trust_at_a_signed_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_keyed(dir.path(), keys(30));
    let cp = journal
        .checkpoint(1)
        .unwrap()
        .expect("a genesis checkpoint");
    assert!(cp.heads.is_empty());
    assert_eq!(
        cp.start.as_ref().map(|s| s.kind),
        Some(checkpoint::StartKind::New)
    );
    run_with(&journal, "a", 2).await;
    let report = journal.verify_signed().unwrap();
    assert!(report.problems.is_empty(), "{report:#?}");
    assert!(
        report
            .trust_start
            .as_deref()
            .unwrap()
            .contains("a new journal"),
        "{report:#?}"
    );
}

#[tokio::test]
async fn deleted_checkpoints_break_trust_until_an_explicit_adoption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open_keyed(dir.path(), keys(31));
        run_with(&journal, "a", 3).await;
        tree(&journal, checkpoint::CHECKPOINTS).clear().unwrap();
        journal.db().flush().unwrap();
    }
    // With the signing key: nothing signed, nothing appended.
    let journal = open_keyed(dir.path(), keys(31));
    assert!(journal.trust_broken().is_some());
    let err = journal.append("a", step_started(4)).await.unwrap_err();
    assert!(matches!(err, JournalError::Refused(_)), "{err}");
    assert!(journal.checkpoint(1).unwrap().is_none());
    let report = journal.verify_signed().unwrap();
    assert!(report.keyed);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("soar journal adopt")),
        "{report:#?}"
    );
    assert!(journal.prune("a", "r").is_err());
    drop(journal);
    // With the public key only: fails too.
    let public = JournalKeys {
        signing: None,
        public: keys(31).public,
    };
    let journal = open_keyed(dir.path(), public);
    let report = journal.verify_signed().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("no signed checkpoint")),
        "{report:#?}"
    );
    drop(journal);
    // Adopted: signed as it is, by whom, and appends go on.
    let journal = Journal::adopt(dir.path(), Durability::Process, keys(31), "alice").unwrap();
    let cp = journal.checkpoint(1).unwrap().unwrap();
    assert_eq!(cp.heads.len(), 1);
    let start = cp.start.unwrap();
    assert_eq!(
        (start.kind, start.by.as_deref()),
        (checkpoint::StartKind::Adopted, Some("alice"))
    );
    journal.append("a", step_started(4)).await.unwrap();
    assert!(journal.verify_signed().unwrap().problems.is_empty());
    drop(journal);
    // Once keyed, adoption is refused.
    let again = Journal::adopt(dir.path(), Durability::Process, keys(31), "alice");
    assert!(matches!(again, Err(JournalError::Refused(_))));
}

#[tokio::test]
async fn the_store_walk_finds_hidden_ghost_and_resurrected_runs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_keyed(dir.path(), keys(32));
    run_with(&journal, "real", 3).await;
    journal
        .append("real", finish(RunStatus::Succeeded))
        .await
        .unwrap();
    run_with(&journal, "gone", 2).await;
    journal
        .append("gone", finish(RunStatus::Succeeded))
        .await
        .unwrap();
    journal.prune("gone", "rule").unwrap();
    assert!(journal.verify_signed().unwrap().problems.is_empty());
    // Copies of real's records: under a new id with no index entry, and
    // under the pruned id; an index entry with no records.
    let records = tree(&journal, store::RECORDS);
    let heads = tree(&journal, store::HEADS);
    for copy in ["hidden", "gone"] {
        for seq in 1..=4 {
            let v = records.get(record_key("real", seq)).unwrap().unwrap();
            records.insert(record_key(copy, seq), v).unwrap();
        }
    }
    let head = heads.get("real").unwrap().unwrap();
    heads.insert("hidden", head.clone()).unwrap();
    heads.insert("gone", head).unwrap();
    tree(&journal, store::RUNS)
        .insert(u64::MAX.to_be_bytes(), "ghost".as_bytes())
        .unwrap();

    let report = journal.verify_signed().unwrap();
    let has = |run: &str, what: &str| {
        report
            .problems
            .iter()
            .any(|p| p.starts_with(&format!("run {run}:")) && p.contains(what))
    };
    assert!(has("hidden", "no run-index entry"), "{report:#?}");
    assert!(has("hidden", "no signed checkpoint"), "{report:#?}");
    assert!(has("ghost", "listed in the run index"), "{report:#?}");
    assert!(has("gone", "resurrected"), "{report:#?}");
    assert!(!report.problems.iter().any(|p| p.starts_with("run real:")));
    let ids = journal.stored_run_ids().unwrap();
    assert_eq!(ids, ["ghost", "hidden", "real"]);
    assert!(journal
        .check_run("hidden")
        .unwrap()
        .iter()
        .any(|p| p.contains("no run-index entry")));
    assert!(journal.check_run("real").unwrap().is_empty());
    // Prune keeps the resurrected records as evidence.
    assert!(matches!(
        journal.prune("gone", "rule"),
        Err(JournalError::Refused(_))
    ));
}

#[tokio::test]
async fn prune_refuses_a_forged_end_and_a_broken_chain_and_finishes_an_interrupted_prune() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_keyed(dir.path(), keys(33));
    run_with(&journal, "waiting", 3).await;
    run_with(&journal, "edited", 3).await;
    journal
        .append("edited", finish(RunStatus::Succeeded))
        .await
        .unwrap();
    run_with(&journal, "cut", 3).await;
    journal
        .append("cut", finish(RunStatus::Failed))
        .await
        .unwrap();
    journal.sync().unwrap();
    // A forged end, chained and headed, but signed by nobody.
    let forged = store::prepare(&finish(RunStatus::Succeeded)).unwrap();
    let last: Value = serde_json::from_slice(
        &tree(&journal, store::RECORDS)
            .get(record_key("waiting", 3))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let at = last["at"].as_str().unwrap();
    let prev = last["hash"].as_str().unwrap();
    let hash = record_hash(prev, 4, at, &forged.canonical);
    let stored =
        json!({"seq": 4, "at": at, "prev_hash": prev, "hash": hash, "event": forged.stored_event});
    tree(&journal, store::RECORDS)
        .insert(
            record_key("waiting", 4),
            serde_json::to_vec(&stored).unwrap(),
        )
        .unwrap();
    rewind_head(&journal, "waiting", 4);
    let err = journal.prune("waiting", "r").unwrap_err().to_string();
    assert!(
        err.contains("not the one a signed checkpoint covers"),
        "{err}"
    );
    assert_eq!(journal.read("waiting").unwrap().len(), 4);
    // An edited record: not pruned away.
    edit_record(&journal, "edited", 2, |v| v["event"]["step"] = json!("x"));
    let err = journal.prune("edited", "r").unwrap_err().to_string();
    assert!(err.contains("fails verification"), "{err}");
    // A tombstone written behind the journal's back excuses nothing: the
    // run is still checked as a live one, and an honest prune re-checks it.
    let forged = Tombstone {
        playbook: "pb".into(),
        status: "failed".into(),
        final_seq: 4,
        final_hash: journal.read("cut").unwrap()[3].hash.clone(),
        ended_at: String::new(),
        pruned_at: String::new(),
        rule: "forged".into(),
    };
    tree(&journal, TOMBSTONES)
        .insert("cut", serde_json::to_vec(&forged).unwrap())
        .unwrap();
    assert!(journal.interrupted_prunes().unwrap().is_empty());
    let report = journal.verify_signed().unwrap();
    assert!(report.stored_runs.contains(&"cut".to_string()));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("no checkpoint signed")),
        "{report:#?}"
    );
    // Pruned for real, then interrupted: its records back as they were,
    // whole or with the middle gone, are what a prune leaves.
    let kept: Vec<(sled::IVec, sled::IVec)> = tree(&journal, store::RECORDS)
        .scan_prefix(store::run_prefix("cut"))
        .map(Result::unwrap)
        .collect();
    journal.prune("cut", "r").unwrap();
    assert!(journal.read("cut").is_err());
    let records = tree(&journal, store::RECORDS);
    let put_back = |skip: Option<usize>| {
        for (i, (k, v)) in kept.iter().enumerate() {
            if Some(i) != skip {
                records.insert(k, v.clone()).unwrap();
            }
        }
    };
    put_back(Some(1));
    assert_eq!(journal.interrupted_prunes().unwrap().len(), 1);
    let report = journal.verify_signed().unwrap();
    let about_cut = |r: &SignedReport| -> Vec<String> {
        r.problems
            .iter()
            .filter(|p| p.starts_with("run cut:"))
            .cloned()
            .collect()
    };
    assert!(about_cut(&report).is_empty(), "{report:#?}");
    assert!(report.warnings.iter().any(|w| w.contains("interrupted")));
    journal.prune("cut", "r").unwrap();
    assert!(journal.interrupted_prunes().unwrap().is_empty());
    // Put back with one record's content changed: resurrected, kept.
    put_back(None);
    edit_record(&journal, "cut", 2, |v| v["event"]["step"] = json!("x"));
    let report = journal.verify_signed().unwrap();
    assert!(
        about_cut(&report).iter().any(|p| p.contains("resurrected")),
        "{report:#?}"
    );
    assert!(matches!(
        journal.prune("cut", "r"),
        Err(JournalError::Refused(_))
    ));
    assert_eq!(records.scan_prefix(store::run_prefix("cut")).count(), 4);
}

/// Appends `event` to `run` behind the journal's back: chained to the last
/// record, head moved, as anyone with the data dir can.
fn forge(journal: &Journal, run: &str, event: &Event) -> u64 {
    let records = tree(journal, store::RECORDS);
    let (_, last) = records.get_lt(record_key(run, u64::MAX)).unwrap().unwrap();
    let last: Value = serde_json::from_slice(&last).unwrap();
    let seq = last["seq"].as_u64().unwrap() + 1;
    let prepared = store::prepare(event).unwrap();
    let (at, prev) = (last["at"].as_str().unwrap(), last["hash"].as_str().unwrap());
    let hash = record_hash(prev, seq, at, &prepared.canonical);
    let stored = json!({"seq": seq, "at": at, "prev_hash": prev, "hash": hash, "event": prepared.stored_event});
    records
        .insert(record_key(run, seq), serde_json::to_vec(&stored).unwrap())
        .unwrap();
    rewind_head(journal, run, seq);
    seq
}

#[tokio::test]
async fn a_record_slipped_in_behind_the_journal_is_never_signed_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open_keyed(dir.path(), keys(34));
        run_with(&journal, "v", 3).await;
        journal.sync().unwrap();
        forge(&journal, "v", &step_started(99));
        journal.db().flush().unwrap();
    }
    let journal = open_keyed(dir.path(), keys(34));
    let err = journal.append("v", step_started(5)).await.unwrap_err();
    assert!(
        matches!(&err, JournalError::Refused(m) if m.contains("seq 4..=4") && m.contains("adopt --run")),
        "{err}"
    );
    assert_eq!(journal.read("v").unwrap().len(), 4);
    // An operator checks and accepts it: signed, naming who, and on it goes.
    assert_eq!(journal.accept_tail("v", "alice").unwrap(), (4, 4));
    assert!(journal.accept_tail("v", "alice").is_err(), "nothing left");
    journal.append("v", step_started(5)).await.unwrap();
    let report = journal.verify_signed().unwrap();
    assert!(report.problems.is_empty(), "{report:#?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("seq 4..=4 were accepted by alice")),
        "{report:#?}"
    );
    // Records this process wrote itself need no acceptance, even once its
    // memory of them is gone.
    run_with(&journal, "w", 2).await;
    journal.inner.tails.lock().unwrap().clear();
    journal.append("w", step_started(3)).await.unwrap();
}

#[tokio::test]
async fn a_re_encoded_or_forged_last_checkpoint_is_caught_and_never_signed_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open_keyed(dir.path(), keys(35));
        run_with(&journal, "r", 2).await;
        journal.sync().unwrap();
        journal.append("r", step_started(3)).await.unwrap();
        journal.sync().unwrap();
        // The checkpoint that signed seq 3, re-encoded: it still parses and
        // verifies, but a search for "r": no longer finds it.
        let cps = tree(&journal, checkpoint::CHECKPOINTS);
        let (k, v) = cps.last().unwrap().unwrap();
        let spaced = String::from_utf8(v.to_vec())
            .unwrap()
            .replace("\":", "\" :");
        cps.insert(k, spaced.as_bytes()).unwrap();
        let report = journal.verify_signed().unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("re-encoded")),
            "{report:#?}"
        );
        assert!(journal
            .check_run("r")
            .unwrap()
            .iter()
            .any(|p| p.contains("re-encoded")));
        // A checkpoint signed by another key, stored last.
        let mut forged: Checkpoint =
            serde_json::from_slice(&cps.first().unwrap().unwrap().1).unwrap();
        forged.n = 99;
        let other = keys(36).signing.unwrap();
        forged.key_id = key_id(&other.verifying_key());
        forged.sig =
            hex::encode(ed25519_dalek::Signer::sign(&other, &forged.signed_bytes()).to_bytes());
        cps.insert(99u64.to_be_bytes(), serde_json::to_vec(&forged).unwrap())
            .unwrap();
        journal.db().flush().unwrap();
    }
    let journal = open_keyed(dir.path(), keys(35));
    assert!(
        journal
            .trust_broken()
            .is_some_and(|w| w.contains("not signed by a known key")),
        "{:?}",
        journal.trust_broken()
    );
    assert!(journal.append("r", step_started(4)).await.is_err());
}

#[tokio::test]
async fn a_process_without_the_signing_key_prunes_nothing_in_a_keyed_journal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open_keyed(dir.path(), keys(37));
        run_with(&journal, "done", 2).await;
        journal
            .append("done", finish(RunStatus::Succeeded))
            .await
            .unwrap();
    }
    let verifier = JournalKeys {
        signing: None,
        public: keys(37).public,
    };
    let journal = Journal::open_keyed(dir.path(), Durability::Process, verifier).unwrap();
    let err = journal.prune("done", "r").unwrap_err().to_string();
    assert!(err.contains("needs journal.signing_key"), "{err}");
    assert_eq!(journal.read("done").unwrap().len(), 3);
    assert!(journal.verify_signed().unwrap().problems.is_empty());
}

#[tokio::test]
async fn the_unfinished_run_index_lists_exactly_the_runs_that_can_move() {
    let (_dir, journal) = open();
    for (run, end) in [
        ("a-done", Some(RunStatus::Succeeded)),
        ("b-paused", None),
        ("c-failed", Some(RunStatus::Failed)),
        ("d-running", None),
    ] {
        journal.append(run, run_started("pb")).await.unwrap();
        match end {
            Some(status) => {
                journal.append(run, finish(status)).await.unwrap();
            }
            None if run == "b-paused" => {
                let paused = Event::RunPaused {
                    status: RunStatus::WaitingApproval,
                    reason: "gate".into(),
                };
                journal.append(run, paused).await.unwrap();
            }
            None => {}
        }
    }
    assert_eq!(journal.live_run_ids().unwrap(), ["b-paused", "d-running"]);
    let report = journal.verify_signed().unwrap();
    assert!(report.problems.is_empty(), "{report:#?}");
    assert!(report.warnings.is_empty(), "{report:#?}");
    journal
        .append("b-paused", finish(RunStatus::Cancelled))
        .await
        .unwrap();
    assert_eq!(journal.live_run_ids().unwrap(), ["d-running"]);
}

#[tokio::test]
async fn a_removed_entry_is_a_problem_and_a_stale_one_a_warning_that_boot_drops() {
    let (_dir, journal) = open();
    run_with(&journal, "open", 2).await;
    journal.append("done", run_started("pb")).await.unwrap();
    journal
        .append("done", finish(RunStatus::Succeeded))
        .await
        .unwrap();
    let live = tree(&journal, live::LIVE);
    // Someone who can write the data dir hides an open run from boot...
    live.remove("open").unwrap();
    // ...and a crash left a finished run listed.
    live.insert("done", &[]).unwrap();
    let report = journal.verify_signed().unwrap();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert!(report.problems[0]
        .starts_with("run open: unfinished but missing from the unfinished-run index"));
    assert_eq!(report.warnings.len(), 1, "{report:#?}");
    assert!(
        report.warnings[0].starts_with("run done: finished but still in the unfinished-run index")
    );
    // Listing drops the stale entry; the hidden run stays hidden until an
    // operator acts on verify's problem (`resume RUN_ID` still works).
    assert!(journal.live_run_ids().unwrap().is_empty());
    assert!(!live.contains_key("done").unwrap());
}

#[tokio::test]
async fn a_journal_from_before_the_index_is_indexed_once_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(dir.path(), Durability::Process).unwrap();
        run_with(&journal, "old-open", 3).await;
        journal.append("old-done", run_started("pb")).await.unwrap();
        journal
            .append("old-done", finish(RunStatus::Succeeded))
            .await
            .unwrap();
        // As an older soar left it: no index at all.
        journal.db().drop_tree(live::LIVE).unwrap();
        journal.sync().unwrap();
    }
    let journal = Journal::open(dir.path(), Durability::Process).unwrap();
    assert_eq!(journal.live_run_ids().unwrap(), ["old-open"]);
    assert!(journal.verify_signed().unwrap().problems.is_empty());
}
