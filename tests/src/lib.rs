//! Helpers for soar's end-to-end tests: where the built `soar` binary and
//! plugins are, and a scratch directory with a `soar.yaml` to run them in.
//! Build first with `scripts/test.sh` (it builds the plugins for wasm once).

pub mod engine;
pub mod lab;
pub mod nats;
pub mod senders;
pub mod serve;
pub mod sim;
pub mod sns;
pub mod tamper;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cargo target dir, found from the running test binary
/// (`<target>/debug/deps/<test>`), so `CARGO_TARGET_DIR` is honoured.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// A connector or fixture built by `scripts/test.sh` for `wasm32-wasip2`.
pub fn wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join("plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh, which builds the plugins once per test run",
        path.display()
    );
    path
}

/// The `soar` binary of this build.
pub fn soar_bin() -> PathBuf {
    let path = target_dir().join("debug").join("soar");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (or `cargo build -p soar-runner`)",
        path.display()
    );
    path
}

/// A scratch working directory with its own config and data dir.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// The cluster its journal is on, when it is (see
    /// [`Scratch::on_cluster`]); dropped after the dir.
    nats: Option<nats::Nats>,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// An empty scratch dir.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            nats: None,
        }
    }

    /// With `SOAR_TEST_JOURNAL=nats` ([`lab::on_cluster`]): a scratch dir
    /// whose journal is on a fresh 3-server cluster (lease TTL 1 s), and the
    /// `journal:` line its config must carry; otherwise a plain one and an
    /// empty line.
    pub fn for_backend() -> (Self, String) {
        let mut s = Self::new();
        if !lab::on_cluster() {
            return (s, String::new());
        }
        let nats = nats::Nats::cluster();
        let line = nats.journal_yaml(", lease_ttl: 1s");
        s.nats = Some(nats);
        (s, line)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `soar.yaml` and returns its path.
    pub fn config(&self, yaml: &str) -> PathBuf {
        self.write("soar.yaml", yaml)
    }

    /// Writes a file in the scratch dir.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    /// Runs `soar ARGS` in the scratch dir with `env` added (nothing inherited
    /// from the developer's `SOAR_*` settings).
    pub fn soar(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(soar_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("SOAR_CONFIG")
            .env_remove("SOAR_DATA_DIR")
            .env_remove("SOAR_LOG")
            .env("SOAR_DATA_DIR", self.dir.path().join(".soar"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().expect("run soar"))
    }
}

/// A finished `soar` process.
pub struct Run(pub Output);

impl Run {
    /// Exit code.
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    /// Stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    /// Stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    /// Everything the process printed, for "never printed X" checks.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }
}
