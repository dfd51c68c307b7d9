//! A lab for end-to-end tests: a scratch dir whose config wires all six
//! connectors to a fresh vendor simulator (on its own runtime, so blocking
//! `soar` calls do not starve it), with three approvers whose tokens the
//! tests know, and helpers to read what the vendors received.

use crate::sim::{self, Sim};
use crate::{soar_bin, wasm, Run, Scratch};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::Request;

/// The config's approvers (principals): name, role, token. `dave` and
/// `analyst` start runs: with approvers configured, `soar run --as NAME`
/// must prove NAME with a token too.
pub const APPROVERS: [(&str, &str, &str); 5] = [
    ("alice", "soc-lead", "alice-token-1b2c"),
    ("bob", "soc-lead", "bob-token-9f8e"),
    ("carol", "analyst", "carol-token-77aa"),
    ("dave", "analyst", "dave-token-3c4d"),
    ("analyst", "analyst", "analyst-token-5e6f"),
];

/// For `soar run ... --as NAME` without a token in `extra`: NAME's token,
/// as the person starting the run would give it.
fn starter_token(args: &[&str], extra: &[(&str, &str)]) -> Option<(&'static str, &'static str)> {
    if args.first() != Some(&"run") || extra.iter().any(|(k, _)| *k == "SOAR_TOKEN") {
        return None;
    }
    let who = args
        .iter()
        .position(|a| *a == "--as")
        .and_then(|i| args.get(i + 1))?;
    APPROVERS
        .iter()
        .find(|a| a.0 == *who)
        .map(|a| ("SOAR_TOKEN", a.2))
}

/// An approver's token.
pub fn token(name: &str) -> &'static str {
    APPROVERS
        .iter()
        .find(|a| a.0 == name)
        .unwrap_or_else(|| panic!("no approver `{name}`"))
        .2
}

/// The shipped config's `state:` tables, which the shipped playbooks use:
/// `examples/soar.yaml` ends with that section. None when the test's own
/// config text declares tables.
fn shipped_tables(policy: &str) -> String {
    if policy.starts_with("state:") || policy.contains("\nstate:") {
        return String::new();
    }
    let path = crate::senders::repo().join("examples/soar.yaml");
    let text = std::fs::read_to_string(&path).expect("examples/soar.yaml");
    let at = text
        .find("\nstate:\n")
        .expect("examples/soar.yaml ends with its `state:` section");
    text[at + 1..].to_string()
}

/// Whether the suites run on the cluster journal (`SOAR_TEST_JOURNAL=nats`).
pub fn on_cluster() -> bool {
    std::env::var("SOAR_TEST_JOURNAL").as_deref() == Ok("nats")
}

/// See the module docs.
pub struct Lab {
    rt: tokio::runtime::Runtime,
    /// The simulator (inject faults with `server.inject`).
    pub server: Sim,
    /// The scratch dir holding `soar.yaml`, playbooks and the data dir.
    pub s: Scratch,
    /// With `SOAR_TEST_JOURNAL=nats`: the 3-server cluster the journal is
    /// on (see [`Lab::new`]). Declared last, so dropped last.
    _nats: Option<crate::nats::Nats>,
}

impl Lab {
    /// A lab whose config ends with `policy` (YAML at the top level, e.g.
    /// `protected:` or `blast_radius:`; lines indented by two spaces extend
    /// `approvals:`). The edr component is a copy in the scratch dir, so a
    /// test may change "the plugin file".
    ///
    /// With `SOAR_TEST_JOURNAL=nats` in the environment, the journal is on a
    /// fresh 3-server nats-server cluster (lease TTL 1 s) instead of sled:
    /// how `scripts/test.sh` runs the durability suites on both backends.
    pub fn new(policy: &str) -> Self {
        let nats = on_cluster().then(crate::nats::Nats::cluster);
        let journal = nats
            .as_ref()
            .map(|n| n.journal_yaml(", lease_ttl: 1s"))
            .unwrap_or_default();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let server = rt.block_on(sim::start_sim(0)).expect("simulator");
        let url = server.uri();
        let s = Scratch::new();
        std::fs::copy(wasm("edr"), s.path().join("edr.wasm")).expect("copy edr.wasm");
        let approvers: String = APPROVERS
            .iter()
            .map(|(name, role, tok)| {
                format!(
                    "    {name}: {{ roles: [{role}], token_sha256: \"{}\" }}\n",
                    hex::encode(Sha256::digest(tok.as_bytes()))
                )
            })
            .collect();
        // What an operator would write: each secret may go only to its vendor.
        s.config(&format!(
            r#"plugins:
  threatintel:
    path: {threatintel}
    allowed_hosts: ["{url}"]
    secrets: {{ api_key: {{ env: VT_API_KEY, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
  edr:
    path: edr.wasm
    allowed_hosts: ["{url}"]
    secrets:
      client_id: {{ env: FALCON_CLIENT_ID, hosts: ["{url}"] }}
      client_secret: {{ env: FALCON_CLIENT_SECRET, hosts: ["{url}"] }}
    config: {{ base_url: "{url}" }}
    dry_run_allow: ["POST /oauth2/token"]
    read_only_allow: ["POST /oauth2/token"]
  identity:
    path: {identity}
    allowed_hosts: ["{url}"]
    secrets: {{ api_token: {{ env: OKTA_TOKEN, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
  blocklist:
    path: {blocklist}
    allowed_hosts: ["{url}"]
    secrets: {{ api_token: {{ env: CF_TOKEN, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}", account_id: "{account}", domain_list_id: "{list}" }}
  cases:
    path: {cases}
    allowed_hosts: ["{url}"]
    secrets: {{ api_key: {{ env: THEHIVE_KEY, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
    read_only_allow: ["POST /api/v1/query", "POST /api/v1/case", "POST /api/v1/case/*/comment", "POST /api/v1/case/*/observable"]
  chatops:
    path: {chatops}
    allowed_hosts: ["{url}"]
    secrets: {{ bot_token: {{ env: SLACK_TOKEN, hosts: ["{url}"] }} }}
    config: {{ base_url: "{url}" }}
    read_only_allow: ["POST /api/chat.postMessage", "POST /api/chat.update"]
{journal}approvals:
  approvers:
{approvers}{policy}
{tables}"#,
            threatintel = wasm("threatintel").display(),
            identity = wasm("identity").display(),
            blocklist = wasm("blocklist").display(),
            cases = wasm("cases").display(),
            chatops = wasm("chatops").display(),
            tables = shipped_tables(policy),
            account = sim::CLOUDFLARE_ACCOUNT_ID,
            list = sim::CLOUDFLARE_DOMAIN_LIST_ID,
        ));
        Lab {
            _nats: nats,
            rt,
            server,
            s,
        }
    }

    /// A lab whose journal signs with a fixed key (seed byte `seed`, its
    /// file outside the data dir); `journal_extra` continues `journal:`
    /// (two-space indent) and may add top-level keys. The public key, hex.
    pub fn keyed(seed: u8, journal_extra: &str) -> (Self, String) {
        let public = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .as_bytes(),
        );
        let lab = Lab::new(&format!(
            "journal:\n  signing_key: {{ file: journal.key }}\n  public_keys: [\"{public}\"]\n{journal_extra}"
        ));
        lab.s.write("journal.key", &hex::encode([seed; 32]));
        (lab, public)
    }

    /// The simulator's credentials, as the config's secrets read them.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("VT_API_KEY", sim::VT_API_KEY),
            ("FALCON_CLIENT_ID", sim::FALCON_CLIENT_ID),
            ("FALCON_CLIENT_SECRET", sim::FALCON_CLIENT_SECRET),
            ("OKTA_TOKEN", sim::OKTA_TOKEN),
            ("CF_TOKEN", sim::CLOUDFLARE_TOKEN),
            ("THEHIVE_KEY", sim::THEHIVE_API_KEY),
            ("SLACK_TOKEN", sim::SLACK_BOT_TOKEN),
        ]
    }

    /// `soar ARGS` in the lab, with the credentials and `extra` env.
    pub fn soar(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = self.env();
        env.extend_from_slice(extra);
        env.extend(starter_token(args, extra));
        self.s.soar(args, &env)
    }

    /// Every request the simulator received.
    pub fn requests(&self) -> Vec<Request> {
        self.rt
            .block_on(self.server.received_requests())
            .expect("request recording is on")
    }

    /// Every request that would change the world at a vendor.
    pub fn destructive_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| {
                let path = r.url.path();
                let m = r.method.as_str();
                path.starts_with("/devices/entities/devices-actions")
                    || (path.contains("/lifecycle/") && m == "POST")
                    || (path.ends_with("/sessions") && m == "DELETE")
                    || (path.contains("/access_rules/rules") && m != "GET")
                    || (path.contains("/gateway/lists/") && m == "PATCH")
            })
            .collect()
    }

    /// A run's journal, one JSON object per record.
    pub fn journal(&self, run: &str) -> Vec<Value> {
        let r = self.soar(&["journal", run, "--json"], &[]);
        assert_eq!(r.code(), 0, "{}", r.stderr());
        r.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
            .collect()
    }

    /// `soar status RUN --json`.
    pub fn status(&self, run: &str) -> Value {
        self.soar(&["status", run, "--json"], &[]).json()
    }

    /// Starts `soar ARGS` that freezes (holding the journal) after `n` of
    /// its executor's journal appends, and waits until it froze or ended.
    pub fn frozen(&self, args: &[&str], n: u64, extra: &[(&str, &str)]) -> Child {
        let marker = self.s.path().join("hung");
        let _ = std::fs::remove_file(&marker);
        let mut cmd = Command::new(soar_bin());
        cmd.args(args)
            .current_dir(self.s.path())
            .env("SOAR_DATA_DIR", self.s.path().join(".soar"))
            .env("SOAR_TEST_HANG_AFTER_APPEND", n.to_string())
            .env("SOAR_TEST_HANG_MARKER", &marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let token = starter_token(args, extra);
        for (k, v) in self
            .env()
            .into_iter()
            .chain(extra.iter().copied())
            .chain(token)
        {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn soar");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !marker.exists()
            && child.try_wait().ok().flatten().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }
}

/// SIGKILL: no destructors, no flush.
pub fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}
