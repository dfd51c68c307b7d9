//! The cluster journal's groundwork (issue 24) against real nats-server
//! processes on loopback: the start-up checks through the `soar` binary, and
//! the fenced run log and the leases through the library, including a
//! killed stream leader.

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use serde_json::json;
use soar_e2e::nats::{Nats, Sync, OLD_VERSION, VERSION};
use soar_e2e::Scratch;
use soar_runner::config::{JournalBackend, NatsConfig};
use soar_runner::journal::jetstream::{connect, records, Append, Cluster, ClusterError};
use soar_runner::journal::Event;
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A scratch dir whose config points at `nats`.
fn scratch(nats: &Nats, extra: &str) -> Scratch {
    let s = Scratch::new();
    s.write("soar.yaml", &nats.journal_yaml(extra));
    s
}

fn config(nats: &Nats, extra: &str) -> NatsConfig {
    let s = scratch(nats, extra);
    let c = soar_runner::config::Config::load(&s.path().join("soar.yaml")).unwrap();
    match c.backend {
        JournalBackend::Nats(n) => n,
        JournalBackend::Sled => panic!("backend: nats was read as sled"),
    }
}

async fn node(config: &NatsConfig, name: &str) -> Cluster {
    connect(config, name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn cluster_check_passes_on_a_synced_cluster_and_the_stream_it_creates_is_replicated() {
    let nats = Nats::cluster();
    let s = scratch(&nats, "");
    let out = s.soar(&["cluster", "check", "--node", "a"], &[]);
    assert_eq!(out.code(), 0, "{}", out.all_output());
    let text = out.stdout();
    assert_eq!(text.matches("syncs every write").count(), 3, "{text}");
    assert!(text.contains(&format!("nats-server {VERSION}")), "{text}");
    // What the servers say, not what soar printed.
    let info = rt().block_on(async {
        let client = async_nats::connect(nats.urls()[0].as_str()).await.unwrap();
        let js = jetstream::new(client);
        let mut stream = js.get_stream("soar").await.unwrap();
        stream.info().await.unwrap().clone()
    });
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(info.config.storage, stream::StorageType::File);
    assert_eq!(info.config.subjects, vec!["soar.default.>".to_string()]);
    assert!(info.config.deny_delete);
}

#[test]
fn a_stream_with_one_replica_is_refused_at_start_with_the_command_that_fixes_it() {
    let nats = Nats::cluster();
    rt().block_on(async {
        let client = async_nats::connect(nats.urls()[1].as_str()).await.unwrap();
        jetstream::new(client)
            .create_stream(stream::Config {
                name: "soar".into(),
                subjects: vec!["soar.default.>".into()],
                storage: stream::StorageType::File,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let s = scratch(&nats, "");
    for args in [&["serve"][..], &["cluster", "check"]] {
        let out = s.soar(args, &[]);
        assert_eq!(out.code(), 1, "{args:?}: {}", out.all_output());
        let err = out.stderr();
        assert!(err.contains("has 1 replica(s)"), "{err}");
        assert!(err.contains("nats stream edit soar --replicas 3"), "{err}");
        assert!(err.contains("soar.yaml"), "names the config: {err}");
    }
}

#[test]
fn a_server_older_than_the_minimum_is_refused_at_start() {
    let nats = Nats::single(OLD_VERSION, Sync::Always);
    let s = scratch(&nats, "");
    let out = s.soar(&["serve"], &[]);
    assert_eq!(out.code(), 1, "{}", out.all_output());
    let err = out.stderr();
    assert!(err.contains(&format!("nats-server {OLD_VERSION}")), "{err}");
    assert!(
        err.contains("older than 2.11.0") && err.contains("upgrade"),
        "{err}"
    );
    assert!(err.contains("nats-io/nats-server#4320"), "{err}");
}

#[test]
fn a_server_that_syncs_every_two_minutes_is_refused_and_one_without_a_monitor_is_said_unchecked() {
    let nats = Nats::single(VERSION, Sync::Default);
    let s = scratch(&nats, "");
    let out = s.soar(&["cluster", "check"], &[]);
    assert_eq!(out.code(), 1, "{}", out.all_output());
    let err = out.stderr();
    assert!(
        err.contains("server `n0`") && err.contains("every 2m"),
        "{err}"
    );
    assert!(err.contains("sync_interval: always"), "{err}");
    // Without `monitor`, the sync setting cannot be read: the check says
    // so (and then the single server cannot hold 3 replicas).
    let s = Scratch::new();
    s.write(
        "soar.yaml",
        &format!(
            "journal: {{ backend: nats, servers: [{}] }}\n",
            nats.urls()[0]
        ),
    );
    let out = s.soar(&["cluster", "check"], &[]);
    assert_eq!(out.code(), 1, "{}", out.all_output());
    assert!(
        out.stderr().contains("needs at least 3 JetStream servers"),
        "{}",
        out.stderr()
    );
}

#[test]
fn config_mistakes_name_their_line_and_key() {
    let s = Scratch::new();
    s.write(
        "soar.yaml",
        "journal:\n  backend: nats\n  servers: [nats://127.0.0.1:4222, \"http://x\"]\n  replicas: 1\n  lease_ttl: 2h\n  tenant: \"a.b\"\n",
    );
    let out = s.soar(&["cluster", "check"], &[]);
    assert_eq!(out.code(), 2, "{}", out.all_output());
    let err = out.stderr();
    for want in [
        "soar.yaml:3:",
        "`journal.servers[1]`",
        "soar.yaml:4:13: `journal.replicas`: 1 replica(s)",
        "soar.yaml:5:",
        "`journal.lease_ttl`",
        "soar.yaml:6:",
        "`journal.tenant`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    s.write("soar.yaml", "journal: { stream: soar }\n");
    let out = s.soar(&["cluster", "check"], &[]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("only for `backend: nats`"),
        "{}",
        out.stderr()
    );
}

#[test]
fn the_fence_lets_exactly_one_of_two_owners_append_and_a_retry_is_not_a_second_record() {
    let nats = Nats::cluster();
    let cfg = config(&nats, "");
    rt().block_on(async {
        let (a, b) = (node(&cfg, "a").await, node(&cfg, "b").await);
        let first = a
            .runs
            .append(
                "run-1",
                Append {
                    seq: 1,
                    hash: "h1",
                    after: None,
                },
                Bytes::from_static(b"one"),
            )
            .await
            .unwrap();
        // A retry of the same record (a lost ack) lands on the same place.
        let again = a
            .runs
            .append(
                "run-1",
                Append {
                    seq: 1,
                    hash: "h1",
                    after: None,
                },
                Bytes::from_static(b"one"),
            )
            .await
            .unwrap();
        assert_eq!(again, first);
        // Two owners race for seq 2 from the same last record.
        let at = |hash| Append {
            seq: 2,
            hash,
            after: Some(first),
        };
        let (ra, rb) = tokio::join!(
            a.runs
                .append("run-1", at("ha"), Bytes::from_static(b"from a")),
            b.runs
                .append("run-1", at("hb"), Bytes::from_static(b"from b")),
        );
        let won = match (&ra, &rb) {
            (Ok(_), Err(ClusterError::Fenced { expected, .. })) => {
                assert_eq!(*expected, first);
                "from a"
            }
            (Err(ClusterError::Fenced { .. }), Ok(_)) => "from b",
            other => panic!("exactly one append must win: {other:?}"),
        };
        let records = a.runs.read("run-1", 100).await.unwrap();
        let bodies: Vec<&[u8]> = records.iter().map(|r| r.payload.as_ref()).collect();
        assert_eq!(bodies, vec![b"one".as_ref(), won.as_bytes()]);
        // A zombie's different record at the already-taken place is fenced,
        // never taken for a retry.
        let zombie = a
            .runs
            .append(
                "run-1",
                Append {
                    seq: 2,
                    hash: "zombie",
                    after: Some(first),
                },
                Bytes::from_static(b"z"),
            )
            .await;
        assert!(
            matches!(zombie, Err(ClusterError::Fenced { .. })),
            "{zombie:?}"
        );
        assert_eq!(a.runs.read("run-1", 100).await.unwrap().len(), 2);
        // Reading is capped, not cut silently.
        assert!(matches!(
            a.runs.read("run-1", 1).await,
            Err(ClusterError::Corrupt(_))
        ));
        // Another run, and an id with subject syntax, stay apart.
        b.runs
            .append(
                "x.*>",
                Append {
                    seq: 1,
                    hash: "h",
                    after: None,
                },
                Bytes::from_static(b"odd"),
            )
            .await
            .unwrap();
        assert_eq!(a.runs.read("x.*>", 100).await.unwrap().len(), 1);
        assert_eq!(a.runs.read("run-1", 100).await.unwrap().len(), 2);
        assert!(a.runs.read("run-2", 100).await.unwrap().is_empty());
    });
}

#[test]
fn a_lease_is_held_by_one_node_until_it_expires_and_then_the_old_holder_has_lost_it() {
    let nats = Nats::cluster();
    let cfg = config(&nats, ", lease_ttl: 1s");
    rt().block_on(async {
        let (a, b) = (node(&cfg, "a").await, node(&cfg, "b").await);
        let mut lease = a.leases.acquire("run-7").await.unwrap();
        match b.leases.acquire("run-7").await {
            Err(ClusterError::Held { holder, .. }) => assert_eq!(holder, "a"),
            other => panic!("b took a held run: {other:?}"),
        }
        a.leases.renew(&mut lease).await.unwrap();
        assert_eq!(b.leases.holder("run-7").await.unwrap().unwrap().node, "a");
        // a stops renewing (paused, dead): b gets the run once it expires.
        let deadline = Instant::now() + Duration::from_secs(30);
        let taken = loop {
            match b.leases.acquire("run-7").await {
                Ok(l) => break l,
                Err(ClusterError::Held { .. }) => {
                    assert!(Instant::now() < deadline, "the lease never expired");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(b.leases.holder("run-7").await.unwrap().unwrap().node, "b");
        // a wakes up: its renewal is refused, and its release leaves b's
        // lease alone.
        assert!(matches!(
            a.leases.renew(&mut lease).await,
            Err(ClusterError::Lost { .. })
        ));
        let _ = a.leases.release(lease).await;
        assert_eq!(b.leases.holder("run-7").await.unwrap().unwrap().node, "b");
        b.leases.release(taken).await.unwrap();
        assert!(b.leases.holder("run-7").await.unwrap().is_none());
        a.leases.acquire("run-7").await.unwrap();
    });
}

#[test]
fn killing_the_stream_leader_loses_no_acknowledged_record_and_doubles_none() {
    let mut nats = Nats::cluster();
    let cfg = config(&nats, "");
    let rt = rt();
    let a = rt.block_on(node(&cfg, "a"));
    let append = |seq: u64, after: Option<u64>| {
        let runs = a.runs.clone();
        async move {
            let hash = format!("h{seq}");
            let body = Bytes::from(format!("record {seq}"));
            // Retried until the cluster answers: a retry is the same record
            // (same id), so it can never be stored twice.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match runs
                    .append(
                        "run-k",
                        Append {
                            seq,
                            hash: &hash,
                            after,
                        },
                        body.clone(),
                    )
                    .await
                {
                    Ok(s) => return s,
                    Err(ClusterError::Unavailable(e)) => {
                        assert!(Instant::now() < deadline, "no leader came back: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("seq {seq}: {e}"),
                }
            }
        }
    };
    let mut last = None;
    for seq in 1..=20 {
        last = Some(rt.block_on(append(seq, last)));
    }
    let leader = rt.block_on(async {
        let client = async_nats::connect(nats.urls()[0].as_str()).await.unwrap();
        let js = jetstream::new(client);
        // Asked again while the (starved) cluster elects.
        let mut tries = 0;
        loop {
            let leader = match js.get_stream("soar").await {
                Ok(mut s) => s.info().await.ok().and_then(|i| i.cluster.clone()?.leader),
                Err(_) => None,
            };
            if let Some(leader) = leader {
                break leader;
            }
            tries += 1;
            assert!(tries < 100, "the stream never named a leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let i: usize = leader.trim_start_matches('n').parse().unwrap();
    nats.servers[i].kill();
    for seq in 21..=40 {
        last = Some(rt.block_on(append(seq, last)));
    }
    nats.servers[i].restart();
    nats.wait_healthy();
    let records = rt.block_on(a.runs.read("run-k", 1000)).unwrap();
    let bodies: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (1..=40).map(|s| format!("record {s}")).collect();
    assert_eq!(bodies, want);
}

fn ev(v: serde_json::Value) -> Event {
    serde_json::from_value(v).expect("event")
}

#[test]
fn a_run_taken_over_reads_back_chained_and_the_old_owner_and_a_forger_are_caught() {
    let nats = Nats::cluster();
    let cfg = config(&nats, "");
    rt().block_on(async {
        let (a, b) = (node(&cfg, "a").await, node(&cfg, "b").await);
        // Node a starts the run; one output is large (a blob subject).
        let big = "x".repeat(100_000);
        let mut tail_a = records::Tail::empty();
        let events = [
            ev(json!({"type": "run_started", "playbook": "contain", "version": "1", "playbook_path": "p.yaml",
                "playbook_sha256": "0", "inputs": {"host_id": "h1"}, "alert": {"n": 1}, "started_by": "source:edr"})),
            ev(json!({"type": "step_started", "step": "host"})),
            ev(json!({"type": "step_finished", "step": "host", "status": "succeeded", "output": {"blob": big}})),
        ];
        let mut written = Vec::new();
        for e in &events {
            written.push(records::append(&a.runs, "run-t", &mut tail_a, e).await.unwrap());
        }
        // Node a dies (or pauses); node b reads the run back, chain checked.
        let (read, mut tail_b) = records::read(&b.runs, "run-t").await.unwrap();
        assert_eq!(read, written);
        assert_eq!(tail_b, tail_a);
        assert_eq!(read[2].event, events[2], "the large output came back whole");
        // b takes over and appends; a wakes up and tries to go on from its
        // stale tail: fenced, and nothing of a's lands.
        let step = ev(json!({"type": "step_started", "step": "isolate"}));
        records::append(&b.runs, "run-t", &mut tail_b, &step).await.unwrap();
        let zombie = records::append(&a.runs, "run-t", &mut tail_a, &step).await;
        assert!(matches!(zombie, Err(ClusterError::Fenced { .. })), "{zombie:?}");
        let (read, _) = records::read(&a.runs, "run-t").await.unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read.last().unwrap().prev_hash, read[2].hash);
        // Someone with write access to the cluster publishes a forged
        // record behind soar's back (a plausible one, with a stale hash):
        // reading names it.
        let client = async_nats::connect(nats.urls()[2].as_str()).await.unwrap();
        let mut forged: serde_json::Value = serde_json::from_slice(
            &b.runs.read("run-t", 10).await.unwrap()[3].payload,
        )
        .unwrap();
        forged["seq"] = json!(5);
        forged["prev_hash"] = forged["hash"].clone();
        forged["event"]["step"] = json!("approve");
        jetstream::new(client)
            .publish("soar.default.run.run-t", forged.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
        let err = records::read(&b.runs, "run-t").await.unwrap_err().to_string();
        assert!(err.contains("seq 5") && err.contains("edited"), "{err}");
    });
}

#[test]
fn a_dead_nodes_unfinished_runs_and_only_those_are_orphans_for_the_takeover() {
    let nats = Nats::cluster();
    let cfg = config(&nats, ", lease_ttl: 1s");
    rt().block_on(async {
        let (a, b) = (node(&cfg, "a").await, node(&cfg, "b").await);
        // Node a: 40 runs finished (listed, then unlisted), 3 unfinished,
        // one of them with an id in subject syntax.
        let ids: Vec<String> = (0..43).map(|i| format!("run-{i:02}")).collect();
        let unfinished = ["run-40".to_string(), "run-41".into(), "x.y>".into()];
        for id in ids.iter().take(40).chain(unfinished.iter()) {
            a.live.list(id).await.unwrap();
            a.leases.acquire(id).await.unwrap();
        }
        for id in ids.iter().take(40) {
            a.live.unlist(id).await.unwrap();
        }
        let mut want = unfinished.to_vec();
        want.sort();
        assert_eq!(b.live.runs().await.unwrap(), want);
        // While a's leases live, nothing is orphaned.
        assert!(b.live.orphans(&b.leases).await.unwrap().is_empty());
        // a dies: once its leases expire, b sees exactly its unfinished runs.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let orphans = b.live.orphans(&b.leases).await.unwrap();
            if orphans == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "orphans never appeared: {orphans:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for id in &want {
            b.leases.acquire(id).await.unwrap();
        }
        assert!(b.live.orphans(&b.leases).await.unwrap().is_empty());
    });
}

#[test]
fn nodes_that_disagree_on_lease_ttl_are_refused() {
    let nats = Nats::cluster();
    rt().block_on(async {
        node(&config(&nats, ", lease_ttl: 10s"), "a").await;
        let err = connect(&config(&nats, ", lease_ttl: 20s"), "b")
            .await
            .err()
            .expect("a node with another lease_ttl was let in")
            .to_string();
        assert!(
            err.contains("every node must use the same lease_ttl"),
            "{err}"
        );
    });
}

mod state {
    use super::*;
    use soar_runner::state::{Actor, StateStore, Window};

    fn at(now_ms: u64, op_key: Option<&'static str>) -> Actor<'static> {
        Actor {
            by: "alice",
            now_ms,
            op_key,
            reason: None,
        }
    }

    /// One sequence of operations, each answer as text, on sled or the
    /// cluster: the same rules must give the same answers.
    macro_rules! script {
        ($s:expr, $($aw:tt)*) => {{
            let s = $s;
            let hour = Duration::from_secs(3600);
            let mut out: Vec<String> = Vec::new();
            out.push(format!("{:?}", s.put("exceptions", "pentest-01", json!({"why": "Q4"}), Some(Duration::from_secs(60)), &at(1_000, None))$($aw)*));
            out.push(format!("{:?}", s.get("exceptions", "pentest-01", 60_999)$($aw)*));
            out.push(format!("{:?}", s.get("exceptions", "pentest-01", 61_000)$($aw)*));
            out.push(format!("{:?}", s.put_if_absent("exceptions", "pentest-01", json!(1), None, &at(70_000, None))$($aw)*));
            out.push(format!("{:?}", s.put_if_absent("exceptions", "pentest-01", json!(2), None, &at(70_001, None))$($aw)*));
            out.push(format!("{:?}", s.cas("exceptions", "pentest-01", 1, json!(3), None, &at(70_002, None))$($aw)*));
            out.push(format!("{:?}", s.cas("exceptions", "pentest-01", 2, json!(3), None, &at(70_003, None))$($aw)*));
            out.push(format!("{:?}", s.delete("exceptions", "pentest-01", &at(70_004, None))$($aw)*));
            out.push(format!("{:?}", s.cas("exceptions", "pentest-01", 0, json!(4), None, &at(70_005, None))$($aw)*));
            for now in [80_000, 80_001, 3_680_000] {
                out.push(format!("{:?}", s.incr("logins", "bob", Window::Fixed(hour), &at(now, None))$($aw)*));
            }
            for now in [1, 2, 3_600_002] {
                out.push(format!("{:?}", s.incr("logins", "eve", Window::Sliding(hour), &at(now, None))$($aw)*));
            }
            // A resumed step repeats its keyed operation: the first answer.
            for _ in 0..2 {
                out.push(format!("{:?}", s.incr("logins", "kim", Window::Fixed(hour), &at(5, Some("run-1/count")))$($aw)*));
            }
            out.push(format!("{:?}", s.incr("logins", "kim", Window::Fixed(hour), &at(6, None))$($aw)*));
            out.push(format!("{:?}", s.incr("exceptions", "pentest-01", Window::Fixed(hour), &at(80_000, None))$($aw)*));
            out.push(format!("{:?}", s.get("Bad Table", "k", 0)$($aw)*));
            out.push(format!("{:?}", s.put("t", &"k".repeat(300), json!(1), None, &at(1, None))$($aw)*));
            out
        }};
    }

    #[test]
    fn every_operation_answers_on_the_cluster_as_on_sled() {
        let nats = Nats::cluster();
        let cfg = config(&nats, "");
        let on_sled = script!(&StateStore::temporary().unwrap(),);
        let on_cluster = rt().block_on(async {
            let a = node(&cfg, "a").await;
            script!(&a.state, .await)
        });
        assert_eq!(on_sled.len(), on_cluster.len());
        for (i, (s, c)) in on_sled.iter().zip(&on_cluster).enumerate() {
            assert_eq!(s, c, "answer {i} differs");
        }
        // The script exercised what it says (not all errors, say).
        assert!(on_sled[3].starts_with("Ok((true"), "{}", on_sled[3]);
        assert!(on_sled[5].contains("Conflict"), "{}", on_sled[5]);
        assert_eq!(&on_sled[15..18], &["Ok(1)", "Ok(1)", "Ok(2)"]);
    }

    #[test]
    fn writers_on_two_nodes_lose_no_increment_and_exactly_one_put_if_absent_wins() {
        let nats = Nats::cluster();
        let cfg = config(&nats, "");
        rt().block_on(async {
            let nodes = [node(&cfg, "a").await, node(&cfg, "b").await];
            let mut tasks = Vec::new();
            for (n, cluster) in nodes.iter().enumerate() {
                for t in 0..4 {
                    let state = cluster.state.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut counts = Vec::new();
                        for i in 0..25 {
                            let a = at(1_000 + i, None);
                            counts.push(
                                state
                                    .incr(
                                        "hits",
                                        "10.0.0.9",
                                        Window::Fixed(Duration::from_secs(3600)),
                                        &a,
                                    )
                                    .await
                                    .unwrap(),
                            );
                        }
                        let who = format!("n{n}-t{t}");
                        let a = Actor {
                            by: &who,
                            now_ms: 2_000,
                            op_key: None,
                            reason: None,
                        };
                        let won = state
                            .put_if_absent("locks", "case-7", json!(who), None, &a)
                            .await
                            .unwrap()
                            .0;
                        (counts, won)
                    }));
                }
            }
            let mut all = Vec::new();
            let mut winners = 0;
            for t in tasks {
                let (counts, won) = t.await.unwrap();
                all.extend(counts);
                winners += usize::from(won);
            }
            all.sort();
            assert_eq!(
                all,
                (1..=200).collect::<Vec<u64>>(),
                "an increment was lost or doubled"
            );
            assert_eq!(winners, 1);
            // Two cas on the same version: one wins, the other is told.
            let v = nodes[0]
                .state
                .get("locks", "case-7", 3_000)
                .await
                .unwrap()
                .unwrap()
                .version;
            let (when_a, when_b) = (at(3_000, None), at(3_000, None));
            let (x, y) = tokio::join!(
                nodes[0]
                    .state
                    .cas("locks", "case-7", v, json!("a"), None, &when_a),
                nodes[1]
                    .state
                    .cas("locks", "case-7", v, json!("b"), None, &when_b),
            );
            assert_eq!(u8::from(x.is_ok()) + u8::from(y.is_ok()), 1, "{x:?} {y:?}");
        });
    }
}

#[test]
fn a_renewing_owner_keeps_its_runs_and_a_stopped_one_loses_them_to_the_other_node() {
    use soar_runner::journal::jetstream::Ownership;
    let nats = Nats::cluster();
    let cfg = config(&nats, ", lease_ttl: 1s");
    rt().block_on(async {
        let (a, b) = (node(&cfg, "a").await, node(&cfg, "b").await);
        let (owner_a, mut lost_a) = Ownership::start(a.leases.clone(), cfg.lease_ttl);
        let (owner_b, _lost_b) = Ownership::start(b.leases.clone(), cfg.lease_ttl);
        for id in ["run-1", "run-2", "run-3"] {
            a.live.list(id).await.unwrap();
            owner_a.claim(id).await.unwrap();
        }
        // Three TTLs of renewals: b never gets a run a drives.
        for _ in 0..30 {
            assert!(owner_b.take_over(&b.live).await.unwrap().is_empty());
            tokio::time::sleep(cfg.lease_ttl / 10).await;
        }
        assert!(owner_a.owns("run-1") && !owner_b.owns("run-1"));
        // run-3 is taken from a behind its back (its lease removed, b
        // claims it): a's next renewal reports it lost.
        b.leases.release_any("run-3").await.unwrap();
        owner_b.claim("run-3").await.unwrap();
        assert_eq!(lost_a.recv().await.as_deref(), Some("run-3"));
        assert!(!owner_a.owns("run-3"));
        // A refused append reports the run lost at once, too.
        owner_a.fenced("run-2");
        assert_eq!(lost_a.recv().await.as_deref(), Some("run-2"));
        // a stops (SIGSTOP): its leases expire (run-2's, no longer renewed
        // since the fence, first) and b takes both runs over.
        owner_a.stop();
        let stopped = Instant::now();
        let deadline = stopped + Duration::from_secs(30);
        let mut taken = Vec::new();
        // Both: a renewal of run-2 already in flight when it was fenced
        // can land after run-1's last one, so either may expire first.
        while !(taken.contains(&"run-1".to_string()) && taken.contains(&"run-2".to_string())) {
            assert!(
                Instant::now() < deadline,
                "run-1 and run-2 were not both taken over: {taken:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            taken.extend(owner_b.take_over(&b.live).await.unwrap());
        }
        taken.sort();
        assert_eq!(taken, vec!["run-1".to_string(), "run-2".into()]);
        println!(
            "takeover {:.2} s after the owner stopped (lease_ttl {:?})",
            stopped.elapsed().as_secs_f64(),
            cfg.lease_ttl
        );
        assert!(owner_b.owns("run-1") && owner_b.owns("run-3"));
    });
}
