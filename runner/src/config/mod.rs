//! The operator's config file (`soar.yaml`): where plugins live and what each
//! may reach. Parsing collects every problem with its line before failing;
//! unknown keys are errors. See `docs/configuration.md`.

mod cluster;
mod origin;
mod policy;
mod server;
mod sources;
mod state;

pub use cluster::{JournalBackend, NatsConfig, MIN_REPLICAS};
pub use origin::Origin;
pub use policy::{roles, Approver, BlastCap, Policy, ProtectedAssets, ProtectedHit, SlackUser};
pub use server::{ServerConfig, Tls, DEFAULT_MAX_BODY};
pub use sources::{
    BasicAuth, Batch, Encoding, EventFilter, HmacScheme, MessagePart, RateLimit, Source,
    SourceAuth, SourceMap, TimestampRule, DEFAULT_MAX_EVENTS, MAX_SIGNATURES,
};
pub use state::{TableSpec, Tables};

use crate::secrets::SecretSource;
use crate::yaml::{self, Pos, Spanned, YamlError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default config file name, looked up in the working directory.
pub const DEFAULT_FILE: &str = "soar.yaml";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    plugins_dir: Option<String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    plugins: BTreeMap<String, Spanned<RawPlugin>>,
    #[serde(default)]
    journal: RawJournal,
    #[serde(default)]
    approvals: policy::RawApprovals,
    #[serde(default)]
    protected: policy::RawProtected,
    #[serde(default)]
    blast_radius: BTreeMap<String, Spanned<policy::RawBlastCap>>,
    #[serde(default)]
    principals: BTreeMap<String, Spanned<policy::RawApprover>>,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    sources: BTreeMap<String, Spanned<sources::RawSource>>,
    #[serde(default)]
    siem: Option<Spanned<RawSiem>>,
    #[serde(default)]
    state: state::RawState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiem {
    #[serde(default)]
    file: Option<RawSiemFile>,
    #[serde(default)]
    http: Option<RawSiemHttp>,
    #[serde(default)]
    batch: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiemFile {
    path: String,
    #[serde(default)]
    rotate_bytes: Option<u64>,
    #[serde(default)]
    keep: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiemHttp {
    url: Spanned<String>,
    #[serde(default)]
    token: Option<RawKeySource>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

/// Where journal records go for the SOC's log pipeline (`soar siem export`,
/// and `soar serve` every few seconds), as JSON lines (OCSF base events).
#[derive(Debug, Clone, Default)]
pub struct SiemConfig {
    /// A file that rotates.
    pub file: Option<SiemFile>,
    /// An HTTP collector.
    pub http: Option<SiemHttp>,
    /// Records per batch.
    pub batch: usize,
}

/// `siem.file`.
#[derive(Debug, Clone)]
pub struct SiemFile {
    /// The file (relative to the config's directory).
    pub path: PathBuf,
    /// Rotate once it reaches this size.
    pub rotate_bytes: u64,
    /// Rotated files kept (`path.1` newest).
    pub keep: u32,
}

/// `siem.http`.
#[derive(Debug, Clone)]
pub struct SiemHttp {
    /// The collector's URL (POST, NDJSON body).
    pub url: String,
    /// A bearer token for it.
    pub token: Option<SecretSource>,
    /// Attempts per batch before giving up for this pass.
    pub max_attempts: u32,
}

fn resolve_siem(
    raw: &Option<Spanned<RawSiem>>,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> SiemConfig {
    let Some(spanned) = raw else {
        return SiemConfig {
            batch: 500,
            ..Default::default()
        };
    };
    let r = &spanned.value;
    let file = r.file.as_ref().map(|f| SiemFile {
        path: base.join(&f.path),
        rotate_bytes: f.rotate_bytes.unwrap_or(64 << 20),
        keep: f.keep.unwrap_or(5),
    });
    let http = r.http.as_ref().and_then(|h| {
        let url = h.url.value.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problem(
                problems,
                Pos::of(&h.url),
                "siem.http.url".into(),
                format!("`{url}` is not an http(s) URL"),
            );
            return None;
        }
        let token = h.token.as_ref().and_then(|t| {
            secret_source(
                &t.env,
                &t.file,
                base,
                Pos::of(spanned),
                "siem.http.token",
                problems,
            )
        });
        Some(SiemHttp {
            url: url.to_string(),
            token,
            max_attempts: h.max_attempts.unwrap_or(5).max(1),
        })
    });
    let batch = r.batch.unwrap_or(500);
    if batch == 0 || batch > 10_000 {
        problem(
            problems,
            Pos::of(spanned),
            "siem.batch".into(),
            "must be between 1 and 10000",
        );
    }
    SiemConfig {
        file,
        http,
        batch: batch.clamp(1, 10_000),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    #[serde(default)]
    durability: Option<JournalDurability>,
    #[serde(default)]
    signing_key: Option<Spanned<RawKeySource>>,
    #[serde(default)]
    public_keys: Vec<Spanned<String>>,
    #[serde(default)]
    retention: Vec<Spanned<RawRetention>>,
    // The backend's keys (`cluster.rs`).
    #[serde(default)]
    backend: Option<Spanned<String>>,
    #[serde(default)]
    servers: Vec<Spanned<String>>,
    #[serde(default)]
    monitor: Vec<Spanned<String>>,
    #[serde(default)]
    stream: Option<Spanned<String>>,
    #[serde(default)]
    tenant: Option<Spanned<String>>,
    #[serde(default)]
    replicas: Option<Spanned<usize>>,
    #[serde(default)]
    credentials: Option<Spanned<RawKeySource>>,
    #[serde(default)]
    lease_ttl: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    playbook: Option<String>,
    #[serde(default)]
    status: Vec<Spanned<String>>,
    keep: Spanned<String>,
}

/// One retention rule: finished runs of `playbook` (any when `None`) whose
/// final status is one of `statuses` are pruned `keep` after they ended.
/// Rules are tried in order; the first that matches a run decides, and a
/// run no rule matches is kept. Runs that are not final are never pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    /// Named in the tombstones of the runs it prunes.
    pub name: String,
    /// The playbook, or every one.
    pub playbook: Option<String>,
    /// Final statuses it applies to (every final one when empty).
    pub statuses: Vec<crate::journal::RunStatus>,
    /// How long after its end a run is kept.
    pub keep: Duration,
}

fn resolve_retention(raw: &RawJournal, problems: &mut Vec<ConfigProblem>) -> Vec<RetentionRule> {
    let mut rules = Vec::new();
    for (i, spanned) in raw.retention.iter().enumerate() {
        let r = &spanned.value;
        let key = format!("journal.retention[{i}]");
        let Some(keep) = server::duration(&r.keep, &format!("{key}.keep"), problems) else {
            continue;
        };
        let mut statuses = Vec::new();
        for s in &r.status {
            match s.value.parse::<crate::journal::RunStatus>() {
                Ok(st) if st.is_final() => statuses.push(st),
                Ok(st) => problem(problems, Pos::of(s), format!("{key}.status"), format!("`{st}` is not final: such runs are never pruned (final: succeeded, failed, cancelled)")),
                Err(e) => problem(problems, Pos::of(s), format!("{key}.status"), e.to_string()),
            }
        }
        rules.push(RetentionRule {
            name: r.name.clone().unwrap_or_else(|| format!("retention[{i}]")),
            playbook: r.playbook.clone().filter(|p| p != "*"),
            statuses,
            keep,
        });
    }
    rules
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeySource {
    env: Option<String>,
    file: Option<String>,
}

/// The journal's keys as configured: where the signing key is read from
/// (never the data dir), and the public keys that verify checkpoints (the
/// signing key's own, and keys rotated out).
#[derive(Debug, Clone, Default)]
pub struct JournalKeyConfig {
    /// The Ed25519 signing key's 64 hex digits come from here.
    pub signing: Option<SecretSource>,
    /// Verification keys.
    pub public: Vec<ed25519_dalek::VerifyingKey>,
}

impl JournalKeyConfig {
    /// Loads the signing key (a secret) and the public keys.
    pub fn load(&self) -> Result<crate::journal::JournalKeys, String> {
        let signing = match &self.signing {
            None => None,
            Some(source) => {
                let value = source
                    .load()
                    .map_err(|e| format!("journal.signing_key: {e}"))?;
                Some(
                    crate::journal::signing_key_from_hex(value.expose())
                        .map_err(|e| format!("journal.signing_key: {e}"))?,
                )
            }
        };
        Ok(crate::journal::JournalKeys {
            signing,
            public: self.public.clone(),
        })
    }
}

fn resolve_journal_keys(
    raw: &RawJournal,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> JournalKeyConfig {
    let signing = raw.signing_key.as_ref().and_then(|k| {
        secret_source(
            &k.value.env,
            &k.value.file,
            base,
            Pos::of(k),
            "journal.signing_key",
            problems,
        )
    });
    let mut public = Vec::new();
    for (i, key) in raw.public_keys.iter().enumerate() {
        match crate::journal::public_key_from_hex(&key.value) {
            Ok(k) => public.push(k),
            Err(e) => problem(
                problems,
                Pos::of(key),
                format!("journal.public_keys[{i}]"),
                e,
            ),
        }
    }
    JournalKeyConfig { signing, public }
}

/// What a durable journal record survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalDurability {
    /// A killed process (sled's flush: `sync_file_range`). The default.
    #[default]
    Process,
    /// A power cut too: the journal's files are `fdatasync`ed after each group commit.
    PowerLoss,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    describe_timeout_ms: Option<Spanned<u64>>,
    http_timeout_ms: Option<Spanned<u64>>,
    max_response_bytes: Option<Spanned<u64>>,
    max_output_bytes: Option<Spanned<u64>>,
    max_output_depth: Option<Spanned<u64>>,
    max_log_records: Option<Spanned<u64>>,
    max_log_fields: Option<Spanned<u64>>,
    max_log_bytes: Option<Spanned<u64>>,
    max_requests: Option<Spanned<u64>>,
    max_url_bytes: Option<Spanned<u64>>,
    max_headers: Option<Spanned<u64>>,
    max_header_bytes: Option<Spanned<u64>>,
    max_exchange_records: Option<Spanned<u64>>,
    max_refused_records: Option<Spanned<u64>>,
    max_retry_after_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    path: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    allowed_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    dry_run_allow: Vec<Spanned<String>>,
    #[serde(default)]
    read_only_allow: Vec<Spanned<String>>,
    #[serde(default)]
    hosts_without_secrets: Vec<Spanned<String>>,
    #[serde(default)]
    actions: BTreeMap<String, Spanned<RawActionOverride>>,
}

/// `plugins.NAME.actions.ACTION`: the operator's word on what an action
/// does, which can only make it stricter than its manifest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActionOverride {
    #[serde(default)]
    destructive: Option<bool>,
    #[serde(default)]
    targets: BTreeMap<String, crate::plugin_host::TargetKind>,
    #[serde(default)]
    untargeted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
}

/// Per-invocation resource limits: the guest's (memory, time) and the
/// host's own (what it keeps, records and sends on the plugin's behalf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap of one instance.
    pub memory_bytes: usize,
    /// Whole invocation deadline (CPU in wasm and time in host calls).
    pub timeout: Duration,
    /// Deadline of `describe()` at load: every command loads every plugin.
    pub describe_timeout: Duration,
    /// Cap on one HTTP request.
    pub http_timeout: Duration,
    /// Cap on one HTTP response body.
    pub max_response_bytes: usize,
    /// Cap on an action's output (JSON text).
    pub max_output_bytes: usize,
    /// Cap on an output's JSON nesting (the journal reads back 128 levels,
    /// of which its own records use a few).
    pub max_output_depth: usize,
    /// Log records kept per invocation.
    pub max_log_records: usize,
    /// Fields per log record.
    pub max_log_fields: usize,
    /// Bytes of log messages and fields per invocation.
    pub max_log_bytes: usize,
    /// HTTP requests per invocation (refused ones count too).
    pub max_requests: usize,
    /// Length of one request URL.
    pub max_url_bytes: usize,
    /// Headers of one request.
    pub max_headers: usize,
    /// Bytes of one request's header names and values.
    pub max_header_bytes: usize,
    /// Exchange records kept per attempt.
    pub max_exchange_records: usize,
    /// Records of refused requests kept per attempt (all are counted).
    pub max_refused_records: usize,
    /// Ceiling on a vendor's retry-after, whatever the step's `max_delay`.
    pub max_retry_after: Duration,
}

/// The deepest output [`Limits::max_output_depth`] may allow: serde_json
/// reads 128 levels, and an output sits a few levels down in a record (a
/// `for_each` list, the attempt's outcome, the record itself).
pub const MAX_OUTPUT_DEPTH: u64 = 100;

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
            describe_timeout: Duration::from_secs(2),
            http_timeout: Duration::from_secs(15),
            max_response_bytes: 4 << 20,
            max_output_bytes: 1 << 20,
            max_output_depth: 64,
            max_log_records: 100,
            max_log_fields: 32,
            max_log_bytes: 64 << 10,
            max_requests: 100,
            max_url_bytes: 8 << 10,
            max_headers: 64,
            max_header_bytes: 32 << 10,
            max_exchange_records: 50,
            max_refused_records: 10,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// A secret granted to a plugin: where its value comes from and the only
/// origins it may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretGrant {
    /// Value source.
    pub source: SecretSource,
    /// Origins the value may be sent to.
    pub hosts: Vec<Origin>,
}

/// A request other than GET/HEAD the operator lets a read-only action or a
/// dry run send (an OAuth2 token exchange, a case's comment), written
/// `METHOD /path[?query]`. A `*` path segment matches one segment; the query
/// must match exactly, and an entry without one matches only requests
/// without one (so `?action_name=contain` cannot ride on an allowed path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRule {
    /// Upper-case method.
    pub method: String,
    /// Path segments after the leading `/`; `*` matches any one segment.
    pub segments: Vec<String>,
    /// Exact query string, if the entry has one.
    pub query: Option<String>,
}

impl std::fmt::Display for RequestRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} /{}", self.method, self.segments.join("/"))?;
        match &self.query {
            Some(q) => write!(f, "?{q}"),
            None => Ok(()),
        }
    }
}

impl RequestRule {
    /// Parses `METHOD /path[?query]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split_whitespace();
        let (Some(method), Some(target), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("write `METHOD /path`, e.g. `POST /oauth2/token`".into());
        };
        let Some(rest) = target.strip_prefix('/') else {
            return Err(format!("`{target}`: the path must start with `/`"));
        };
        if !method.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!("`{method}` is not an HTTP method"));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (rest, None),
        };
        Ok(Self {
            method: method.to_ascii_uppercase(),
            segments: path.split('/').map(str::to_string).collect(),
            query,
        })
    }

    /// Whether a request with this method and URL is the one allowed.
    pub fn matches(&self, method: &str, url: &url::Url) -> bool {
        if !self.method.eq_ignore_ascii_case(method) || self.query.as_deref() != url.query() {
            return false;
        }
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        let segments: Vec<&str> = path.split('/').collect();
        segments.len() == self.segments.len()
            && self
                .segments
                .iter()
                .zip(&segments)
                .all(|(rule, seg)| rule == "*" && !seg.is_empty() || rule == seg)
    }
}

/// The operator's override of one action (`plugins.NAME.actions.ACTION`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionOverride {
    /// Treat it as destructive whatever its manifest says.
    pub destructive: bool,
    /// Extra input fields that name targets.
    pub targets: Vec<(String, crate::plugin_host::TargetKind)>,
    /// A destructive action with no target fields is accepted (it acts on
    /// the vendor account as a whole, say).
    pub untargeted: bool,
}

/// One plugin's grants.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The name playbooks use (`uses: NAME.action`).
    pub name: String,
    /// The component file.
    pub wasm_path: PathBuf,
    /// Where the path was given (or the plugin's entry, for the default path).
    pub wasm_path_pos: Pos,
    /// Pinned digest (lower-case hex).
    pub sha256: Option<String>,
    /// Where the pin was given.
    pub sha256_pos: Pos,
    /// Origins the plugin may call.
    pub allowed_hosts: Vec<Origin>,
    /// Secrets it may name.
    pub secrets: BTreeMap<String, SecretGrant>,
    /// Config values it may read.
    pub config: BTreeMap<String, String>,
    /// Limits.
    pub limits: Limits,
    /// Non-GET requests a dry run may send.
    pub dry_run_allow: Vec<RequestRule>,
    /// Non-GET requests a non-destructive action may send.
    pub read_only_allow: Vec<RequestRule>,
    /// Origins a plugin holding secrets may call though none of its
    /// secrets is granted there (see `docs/configuration.md`).
    pub hosts_without_secrets: Vec<Origin>,
    /// The operator's overrides by action name.
    pub actions: BTreeMap<String, ActionOverride>,
}

/// The whole, validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Plugins by name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// What journal records survive.
    pub durability: JournalDurability,
    /// The journal's signing and verification keys.
    pub journal_keys: JournalKeyConfig,
    /// Where the journal lives (`journal.backend`).
    pub backend: JournalBackend,
    /// Which finished runs are pruned when (`soar journal prune`).
    pub retention: Vec<RetentionRule>,
    /// Export of journal records to the SOC's log pipeline.
    pub siem: SiemConfig,
    /// Principals, protected assets and blast-radius caps.
    pub policy: Policy,
    /// How `soar serve` listens.
    pub server: ServerConfig,
    /// Alert sources of `POST /hooks/{name}`.
    pub sources: BTreeMap<String, Source>,
    /// The state tables (`state.tables`).
    pub tables: Tables,
}

/// One problem in the config, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where.
    pub pos: Pos,
    /// Dotted key, e.g. `plugins.edr.allowed_hosts[1]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file at the looked-up path.
    #[error("config file `{}` not found (pass --config PATH or set SOAR_CONFIG)", .0.display())]
    NotFound(PathBuf),
    /// The file exists but cannot be read.
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// YAML syntax, a wrong type or an unknown key.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Well-formed YAML with invalid values; all problems are listed.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

fn render_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    let mut out: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{}: `{}`: {}",
                path.display(),
                p.pos.line,
                p.pos.column,
                p.key,
                p.message
            )
        })
        .collect();
    out.push(format!("found {} problem(s) in the config", problems.len()));
    out.join("\n")
}

impl Config {
    /// Finds the config: `explicit` (from `--config` or `SOAR_CONFIG`), else
    /// `soar.yaml` in the working directory.
    pub fn discover(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        Self::load(&path)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound(path.to_path_buf())
            } else {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Self::parse(path, &text)
    }

    /// Validates config text read from `path` (relative paths inside it are
    /// relative to the file's directory).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            yaml::parse(path, text)?
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut problems = Vec::new();
        // SOAR_PLUGINS_DIR: where a build put the components (CI, tests),
        // whatever the config says.
        let plugins_dir = std::env::var_os("SOAR_PLUGINS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| base.join(raw.plugins_dir.as_deref().unwrap_or("plugins")));
        let defaults = resolve_limits(&raw.limits, &Limits::default(), "limits", &mut problems);
        let mut plugins = BTreeMap::new();
        for (name, spanned) in &raw.plugins {
            if name == crate::state::actions::PLUGIN {
                let why = "`state` is the name of soar's built-in state actions (`uses: state.get`); give this plugin another name";
                problem(
                    &mut problems,
                    Pos::of(spanned),
                    format!("plugins.{name}"),
                    why,
                );
            }
            let plugin =
                resolve_plugin(name, spanned, &base, &plugins_dir, &defaults, &mut problems);
            plugins.insert(name.clone(), plugin);
        }
        let policy = policy::resolve(
            &raw.approvals,
            &raw.principals,
            &raw.protected,
            &raw.blast_radius,
            &mut problems,
        );
        let journal_keys = resolve_journal_keys(&raw.journal, &base, &mut problems);
        let retention = resolve_retention(&raw.journal, &mut problems);
        let siem = resolve_siem(&raw.siem, &base, &mut problems);
        let server = server::resolve_server(&raw.server, &base, &mut problems);
        let sources = sources::resolve_sources(&raw.sources, &server, &base, &mut problems);
        let tables = state::resolve_state(&raw.state, &mut problems);
        let backend = cluster::resolve_backend(&raw.journal, &base, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Config {
            path: path.to_path_buf(),
            plugins,
            durability: raw.journal.durability.unwrap_or_default(),
            journal_keys,
            backend,
            retention,
            siem,
            policy,
            server,
            sources,
            tables,
        })
    }
}

fn problem(problems: &mut Vec<ConfigProblem>, pos: Pos, key: String, message: impl Into<String>) {
    problems.push(ConfigProblem {
        pos,
        key,
        message: message.into(),
    });
}

/// Where a secret is read from: exactly one of an environment variable and
/// a file (relative to the config's directory), or a problem at `pos`.
pub(super) fn secret_source(
    env: &Option<String>,
    file: &Option<String>,
    base: &Path,
    pos: Pos,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SecretSource> {
    match (env, file) {
        (Some(var), None) => Some(SecretSource::Env(var.clone())),
        (None, Some(file)) => Some(SecretSource::File(base.join(file))),
        _ => {
            problem(
                problems,
                pos,
                key.to_string(),
                "give exactly one of `env` (variable name) or `file` (path)",
            );
            None
        }
    }
}

fn resolve_limits(
    raw: &RawLimits,
    inherited: &Limits,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Limits {
    let mut limits = inherited.clone();
    let mut check = |value: &Option<Spanned<u64>>, name: &str, min: u64, max: u64| {
        let v = value.as_ref()?;
        if v.value < min || v.value > max {
            problem(
                problems,
                Pos::of(v),
                format!("{key}.{name}"),
                format!("must be between {min} and {max}, got {}", v.value),
            );
            return None;
        }
        Some(v.value)
    };
    if let Some(mb) = check(&raw.memory_mb, "memory_mb", 1, 4096) {
        limits.memory_bytes = (mb as usize) << 20;
    }
    if let Some(ms) = check(&raw.timeout_ms, "timeout_ms", 1, 3_600_000) {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = check(&raw.http_timeout_ms, "http_timeout_ms", 1, 3_600_000) {
        limits.http_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = check(&raw.max_response_bytes, "max_response_bytes", 1, 1 << 30) {
        limits.max_response_bytes = n as usize;
    }
    if let Some(ms) = check(&raw.describe_timeout_ms, "describe_timeout_ms", 1, 60_000) {
        limits.describe_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = check(&raw.max_retry_after_ms, "max_retry_after_ms", 1, 86_400_000) {
        limits.max_retry_after = Duration::from_millis(ms);
    }
    // (value, key, min, max, the limit it sets)
    type Size<'a> = (&'a Option<Spanned<u64>>, &'a str, u64, u64, &'a mut usize);
    let sizes: [Size<'_>; 11] = [
        (
            &raw.max_output_bytes,
            "max_output_bytes",
            2,
            64 << 20,
            &mut limits.max_output_bytes,
        ),
        (
            &raw.max_output_depth,
            "max_output_depth",
            1,
            MAX_OUTPUT_DEPTH,
            &mut limits.max_output_depth,
        ),
        (
            &raw.max_log_records,
            "max_log_records",
            0,
            100_000,
            &mut limits.max_log_records,
        ),
        (
            &raw.max_log_fields,
            "max_log_fields",
            0,
            1_000,
            &mut limits.max_log_fields,
        ),
        (
            &raw.max_log_bytes,
            "max_log_bytes",
            0,
            64 << 20,
            &mut limits.max_log_bytes,
        ),
        (
            &raw.max_requests,
            "max_requests",
            1,
            100_000,
            &mut limits.max_requests,
        ),
        (
            &raw.max_url_bytes,
            "max_url_bytes",
            16,
            1 << 20,
            &mut limits.max_url_bytes,
        ),
        (
            &raw.max_headers,
            "max_headers",
            1,
            1_000,
            &mut limits.max_headers,
        ),
        (
            &raw.max_header_bytes,
            "max_header_bytes",
            64,
            1 << 20,
            &mut limits.max_header_bytes,
        ),
        (
            &raw.max_exchange_records,
            "max_exchange_records",
            1,
            10_000,
            &mut limits.max_exchange_records,
        ),
        (
            &raw.max_refused_records,
            "max_refused_records",
            0,
            10_000,
            &mut limits.max_refused_records,
        ),
    ];
    for (value, name, min, max, slot) in sizes {
        if let Some(n) = check(value, name, min, max) {
            *slot = n as usize;
        }
    }
    limits
}

fn request_rules(
    list: &[Spanned<String>],
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<RequestRule> {
    list.iter()
        .enumerate()
        .filter_map(|(i, entry)| match RequestRule::parse(&entry.value) {
            Ok(rule) => Some(rule),
            Err(e) => {
                problem(problems, Pos::of(entry), format!("{key}[{i}]"), e);
                None
            }
        })
        .collect()
}

fn action_overrides(
    raw: &BTreeMap<String, Spanned<RawActionOverride>>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, ActionOverride> {
    let mut out = BTreeMap::new();
    for (action, spanned) in raw {
        let o = &spanned.value;
        if o.destructive == Some(false) {
            // The operator may only tighten: a connector's own "destructive"
            // is never switched off from the config.
            problem(
                problems,
                Pos::of(spanned),
                format!("{key}.{action}.destructive"),
                "overrides can only make an action stricter: `destructive: false` is not allowed (leave it out)",
            );
        }
        out.insert(
            action.clone(),
            ActionOverride {
                destructive: o.destructive == Some(true),
                targets: o.targets.iter().map(|(f, k)| (f.clone(), *k)).collect(),
                untargeted: o.untargeted,
            },
        );
    }
    out
}

fn origins(list: &[Spanned<String>], key: &str, problems: &mut Vec<ConfigProblem>) -> Vec<Origin> {
    list.iter()
        .enumerate()
        .filter_map(|(i, h)| match Origin::parse_grant(&h.value) {
            Ok(o) => Some(o),
            Err(e) => {
                problem(problems, Pos::of(h), format!("{key}[{i}]"), e);
                None
            }
        })
        .collect()
}

fn resolve_plugin(
    name: &str,
    spanned: &Spanned<RawPlugin>,
    base: &Path,
    plugins_dir: &Path,
    defaults: &Limits,
    problems: &mut Vec<ConfigProblem>,
) -> PluginConfig {
    let raw = &spanned.value;
    let key = format!("plugins.{name}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problem(
            problems,
            Pos::of(spanned),
            key.clone(),
            "plugin names may use only letters, digits, `_` and `-`",
        );
    }
    let (wasm_path, wasm_path_pos) = match &raw.path {
        Some(p) => (base.join(&p.value), Pos::of(p)),
        None => (plugins_dir.join(format!("{name}.wasm")), Pos::of(spanned)),
    };
    let sha256 = raw.sha256.as_ref().and_then(|s| {
        let v = s.value.trim().to_ascii_lowercase();
        if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
            Some(v)
        } else {
            problem(
                problems,
                Pos::of(s),
                format!("{key}.sha256"),
                "must be 64 hex digits (the SHA-256 of the .wasm file)",
            );
            None
        }
    });
    let sha256_pos = raw.sha256.as_ref().map(Pos::of).unwrap_or_default();
    let allowed_hosts = origins(
        &raw.allowed_hosts,
        &format!("{key}.allowed_hosts"),
        problems,
    );
    let mut secrets = BTreeMap::new();
    for (secret, grant) in &raw.secrets {
        let skey = format!("secrets.{secret}");
        let hosts = origins(&grant.value.hosts, &format!("{key}.{skey}.hosts"), problems);
        let source = secret_source(
            &grant.value.env,
            &grant.value.file,
            base,
            Pos::of(grant),
            &format!("{key}.{skey}"),
            problems,
        );
        if grant.value.hosts.is_empty() {
            problem(
                problems,
                Pos::of(grant),
                format!("{key}.{skey}.hosts"),
                "list the origins this secret may be sent to (a secret with no hosts is never sent)",
            );
        }
        for (i, h) in hosts.iter().enumerate() {
            if !allowed_hosts.contains(h) {
                problem(
                    problems,
                    Pos::of(&grant.value.hosts[i]),
                    format!("{key}.{skey}.hosts[{i}]"),
                    format!("`{h}` is not in this plugin's `allowed_hosts`"),
                );
            }
        }
        if let Some(source) = source {
            secrets.insert(secret.clone(), SecretGrant { source, hosts });
        }
    }
    let dry_run_allow = request_rules(
        &raw.dry_run_allow,
        &format!("{key}.dry_run_allow"),
        problems,
    );
    let read_only_allow = request_rules(
        &raw.read_only_allow,
        &format!("{key}.read_only_allow"),
        problems,
    );
    let hosts_without_secrets = origins(
        &raw.hosts_without_secrets,
        &format!("{key}.hosts_without_secrets"),
        problems,
    );
    check_secret_origins(
        raw,
        &key,
        &allowed_hosts,
        &secrets,
        &hosts_without_secrets,
        problems,
    );
    PluginConfig {
        name: name.to_string(),
        wasm_path,
        wasm_path_pos,
        sha256,
        sha256_pos,
        allowed_hosts,
        secrets,
        config: raw.config.clone(),
        limits: resolve_limits(&raw.limits, defaults, &format!("{key}.limits"), problems),
        dry_run_allow,
        read_only_allow,
        hosts_without_secrets,
        actions: action_overrides(&raw.actions, &format!("{key}.actions"), problems),
    }
}

/// A plugin that holds secrets may call only the origins of those secrets,
/// and origins the operator lists in `hosts_without_secrets`: a secret that
/// a vendor echoes in an encoding the host does not recognise, once decoded
/// by the plugin, must have nowhere else to go.
fn check_secret_origins(
    raw: &RawPlugin,
    key: &str,
    allowed: &[Origin],
    secrets: &BTreeMap<String, SecretGrant>,
    without: &[Origin],
    problems: &mut Vec<ConfigProblem>,
) {
    for (i, o) in without.iter().enumerate() {
        if !allowed.contains(o) {
            problem(
                problems,
                Pos::of(&raw.hosts_without_secrets[i]),
                format!("{key}.hosts_without_secrets[{i}]"),
                format!("`{o}` is not in this plugin's `allowed_hosts`"),
            );
        }
    }
    if secrets.is_empty() {
        return;
    }
    for (i, o) in allowed.iter().enumerate() {
        let has_secret = secrets.values().any(|g| g.hosts.contains(o));
        if !has_secret && !without.contains(o) {
            problem(
                problems,
                Pos::of(&raw.allowed_hosts[i]),
                format!("{key}.allowed_hosts[{i}]"),
                format!("this plugin holds secrets, and none of them is granted for `{o}`: a secret it decoded could be sent there; grant a secret for it, remove it, or list it in `hosts_without_secrets` to accept that risk"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/soar/soar.yaml"), text)
    }

    /// Each problem of an invalid config as (dotted key, line).
    fn problem_keys(err: &ConfigError) -> Vec<(&str, u64)> {
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("{err}")
        };
        problems
            .iter()
            .map(|p| (p.key.as_str(), p.pos.line))
            .collect()
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
plugins_dir: wasm
journal: { durability: power_loss }
limits:
  timeout_ms: 5000
plugins:
  edr:
    sha256: "AB7c1a62f1b7bd8c5ca0e5b9c0bb1d2c1c4f8e9c8d2b1a0f9e8d7c6b5a4f3e2d"
    allowed_hosts: ["https://api.crowdstrike.com"]
    secrets:
      client_secret: { env: FALCON_SECRET, hosts: ["https://api.crowdstrike.com"] }
    config: { base_url: "https://api.crowdstrike.com" }
    limits: { memory_mb: 32 }
    dry_run_allow: ["post /oauth2/token"]
"#,
        )
        .unwrap();
        assert_eq!(c.durability, JournalDurability::PowerLoss);
        let edr = &c.plugins["edr"];
        assert_eq!(edr.wasm_path, Path::new("/etc/soar/wasm/edr.wasm"));
        assert_eq!(edr.limits.memory_bytes, 32 << 20);
        assert_eq!(edr.limits.timeout, Duration::from_millis(5000));
        assert!(edr.sha256.as_deref().unwrap().starts_with("ab7c"));
        assert_eq!(edr.dry_run_allow[0].method, "POST");
        assert_eq!(
            edr.secrets["client_secret"].source,
            SecretSource::Env("FALCON_SECRET".into())
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("plugins:\n  edr:\n    alowed_hosts: []\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/etc/soar/soar.yaml:3:"), "{text}");
        assert!(text.contains("alowed_hosts"), "{text}");
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_line() {
        let err = parse(
            r#"plugins:
  edr:
    sha256: "nothex"
    allowed_hosts: ["https://ok.example", "https://bad.example/path"]
    secrets:
      token: { env: T, file: f, hosts: ["https://other.example"] }
    limits: { memory_mb: 0 }
"#,
        )
        .unwrap_err();
        let keys = problem_keys(&err);
        assert!(keys.contains(&("plugins.edr.sha256", 3)), "{keys:?}");
        assert!(
            keys.contains(&("plugins.edr.allowed_hosts[1]", 4)),
            "{keys:?}"
        );
        assert!(keys.contains(&("plugins.edr.secrets.token", 6)), "{keys:?}");
        assert!(
            keys.contains(&("plugins.edr.secrets.token.hosts[0]", 6)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&("plugins.edr.limits.memory_mb", 7)),
            "{keys:?}"
        );
        assert!(
            err.to_string()
                .ends_with("found 5 problem(s) in the config"),
            "{err}"
        );
    }

    #[test]
    fn policy_parses_and_its_problems_have_lines() {
        let c = parse(
            r#"approvals:
  approvers:
    alice: { roles: [soc-lead], token_sha256: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08" }
protected:
  hosts: [DC01]
  ips: [10.0.0.0/8, 192.0.2.7]
  domains: [example.com]
blast_radius:
  edr.isolate_host: { max_targets: 5, max_targets_single_approver: 1 }
"#,
        )
        .unwrap();
        let alice = &c.policy.approvers["alice"];
        assert!(alice.token_matches("test"));
        assert!(!c.policy.allow_self_approval);
        assert_eq!(c.policy.protected.ips.len(), 2);
        assert_eq!(
            c.policy.blast_radius["edr.isolate_host"].max_targets_single_approver,
            Some(1)
        );

        let err = parse(
            r#"approvals:
  approvers:
    bob: { roles: [], token_sha256: "plaintext-token" }
protected:
  ips: [10.0.0.0/33]
blast_radius:
  isolate: { max_targets: 1 }
"#,
        )
        .unwrap_err();
        let keys = problem_keys(&err);
        assert!(
            keys.contains(&("approvals.approvers.bob.token_sha256", 3)),
            "{keys:?}"
        );
        assert!(keys.contains(&("protected.ips[0]", 5)), "{keys:?}");
        assert!(keys.contains(&("blast_radius.isolate", 7)), "{keys:?}");
        assert!(err.to_string().contains("never the token itself"), "{err}");
    }

    #[test]
    fn request_rules_match_method_segments_and_the_exact_query() {
        let rule = RequestRule::parse("post /api/v1/case/*/comment").unwrap();
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(rule.matches("POST", &url("https://h/api/v1/case/~42/comment")));
        assert!(!rule.matches("PUT", &url("https://h/api/v1/case/~42/comment")));
        assert!(!rule.matches("POST", &url("https://h/api/v1/case/a/b/comment")));
        assert!(!rule.matches("POST", &url("https://h/api/v1/case//comment")));
        assert!(!rule.matches("POST", &url("https://h/api/v1/case/1/comment?x=1")));
        let with_query = RequestRule::parse("POST /v2?action_name=lift").unwrap();
        assert!(with_query.matches("POST", &url("https://h/v2?action_name=lift")));
        assert!(!with_query.matches("POST", &url("https://h/v2?action_name=contain")));
        assert!(!with_query.matches("POST", &url("https://h/v2")));
        assert_eq!(with_query.to_string(), "POST /v2?action_name=lift");
        assert_eq!(rule.to_string(), "POST /api/v1/case/*/comment");
        for bad in ["POST", "POST path", "PO$T /x", "POST /x extra"] {
            assert!(RequestRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_may_only_tighten_and_secret_holders_reach_only_their_origins() {
        let err = parse(
            r#"plugins:
  edr:
    allowed_hosts: ["https://api.example", "https://elsewhere.example"]
    secrets:
      key: { env: K, hosts: ["https://api.example"] }
    actions:
      isolate: { destructive: false }
"#,
        )
        .unwrap_err();
        let keys = problem_keys(&err);
        assert!(
            keys.contains(&("plugins.edr.allowed_hosts[1]", 3)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&("plugins.edr.actions.isolate.destructive", 7)),
            "{keys:?}"
        );
        let ok = parse(
            r#"plugins:
  edr:
    allowed_hosts: ["https://api.example", "https://elsewhere.example"]
    hosts_without_secrets: ["https://elsewhere.example"]
    secrets:
      key: { env: K, hosts: ["https://api.example"] }
    actions:
      get_host: { destructive: true, targets: { host_id: host } }
      wipe: { untargeted: true }
"#,
        )
        .unwrap();
        let edr = &ok.plugins["edr"];
        assert!(edr.actions["get_host"].destructive);
        assert_eq!(edr.actions["get_host"].targets.len(), 1);
        assert!(edr.actions["wipe"].untargeted);
    }

    #[test]
    fn approver_names_are_normalised_and_look_alikes_refused() {
        let hash = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        let c = parse(&format!(
            "approvals:\n  approvers:\n    Alice: {{ roles: [lead], token_sha256: \"{hash}\" }}\n"
        ))
        .unwrap();
        assert!(c.policy.approvers.contains_key("alice"));
        let err = parse(&format!(
            "approvals:\n  approvers:\n    leаd: {{ roles: [lead], token_sha256: \"{hash}\" }}\n    alice: {{ roles: [lead], token_sha256: \"{hash}\" }}\n    ALICE: {{ roles: [lead], token_sha256: \"{hash}\" }}\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("U+0430"), "{text}");
        assert!(text.contains("same name as another principal"), "{text}");
    }

    const HASH_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const HASH_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn principals_have_exactly_their_roles_and_legacy_approvers_keep_theirs() {
        let c = parse(&format!(
            "principals:\n  siem: {{ roles: [ingest], token_sha256: \"{HASH_A}\" }}\napprovals:\n  approvers:\n    alice: {{ roles: [soc-lead], token_sha256: \"{HASH_B}\" }}\n"
        ))
        .unwrap();
        let siem = &c.policy.approvers["siem"];
        assert_eq!(siem.roles, ["ingest"]);
        assert!(!crate::approvals::may_read(siem));
        let alice = &c.policy.approvers["alice"];
        for role in ["soc-lead", "ingest", "operator", "viewer"] {
            assert!(alice.has_role(role), "{role}");
        }
    }

    #[test]
    fn a_token_names_one_principal_and_a_name_one_section() {
        let err = parse(&format!(
            "principals:\n  a: {{ roles: [viewer], token_sha256: \"{HASH_A}\" }}\n  b: {{ roles: [viewer], token_sha256: \"{HASH_A}\" }}\napprovals:\n  approvers:\n    A: {{ roles: [lead], token_sha256: \"{HASH_B}\" }}\n"
        ))
        .unwrap_err();
        let keys = problem_keys(&err);
        assert!(keys.contains(&("principals.b.token_sha256", 3)), "{keys:?}");
        assert!(keys.contains(&("approvals.approvers.A", 6)), "{keys:?}");
    }

    #[test]
    fn server_defaults_and_sources_of_every_kind() {
        let c = parse(
            "sources:\n  edr:\n    playbook: pb.yaml\n    auth: { type: hmac_sha256, secret: { env: S } }\n  siem:\n    playbook: pb.yaml\n    auth: { type: timestamped_hmac, secret: { file: s.txt }, tolerance: 1m }\n    rate_limit: { per_second: 5 }\n    delivery_id_header: X-Id\n  lb:\n    playbook: pb.yaml\n    auth: { type: bearer }\n    max_body: 4096\n",
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.max_body, DEFAULT_MAX_BODY);
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
        assert!(matches!(
            &c.sources["edr"].auth,
            SourceAuth::Hmac(HmacScheme { header, secret: SecretSource::Env(v), timestamp: None, .. })
                if header == "X-Hub-Signature-256" && v == "S"
        ));
        let SourceAuth::Hmac(HmacScheme {
            timestamp: Some(ts),
            secret,
            message,
            ..
        }) = &c.sources["siem"].auth
        else {
            panic!("siem")
        };
        assert_eq!(ts.tolerance, Duration::from_secs(60));
        assert_eq!(ts.header, "X-Soar-Timestamp");
        assert_eq!(
            message,
            &[
                MessagePart::Timestamp,
                MessagePart::Text(".".into()),
                MessagePart::Body
            ]
        );
        assert_eq!(
            secret,
            &SecretSource::File(PathBuf::from("/etc/soar/s.txt"))
        );
        assert_eq!(c.sources["siem"].batch.max_events, DEFAULT_MAX_EVENTS);
        assert!(c.sources["siem"].map.is_none());
        assert_eq!(
            c.sources["siem"].rate_limit,
            Some(RateLimit {
                per_second: 5,
                burst: 5
            })
        );
        assert_eq!(
            c.sources["siem"].delivery_window,
            Duration::from_secs(86_400)
        );
        assert_eq!(c.sources["lb"].auth, SourceAuth::Bearer);
        assert_eq!(c.sources["lb"].max_body, 4096);
        assert_eq!(c.sources["lb"].playbook, PathBuf::from("/etc/soar/pb.yaml"));
    }

    #[test]
    fn every_server_and_source_problem_is_reported_with_its_line() {
        let err = parse(
            "server:\n  listen: everywhere\n  shutdown_grace: soon\n  max_body: 0\n  public_url: ftp://x\nsources:\n  Bad Name:\n    playbook: pb.yaml\n    auth: { type: bearer }\n  a:\n    playbook: pb.yaml\n    auth: { type: md5 }\n  b:\n    playbook: pb.yaml\n    auth: { type: hmac_sha256 }\n  c:\n    playbook: pb.yaml\n    auth: { type: bearer, secret: { env: X } }\n    rate_limit: { per_second: 0 }\n",
        )
        .unwrap_err();
        let keys = problem_keys(&err);
        for (key, line) in [
            ("server.listen", 2),
            ("server.shutdown_grace", 3),
            ("server.max_body", 4),
            ("server.public_url", 5),
            ("sources.Bad Name", 8),
            ("sources.a.auth.type", 12),
            ("sources.b.auth.secret", 15),
            ("sources.c.auth.secret", 18),
            ("sources.c.rate_limit.per_second", 19),
        ] {
            assert!(keys.contains(&(key, line)), "{key}:{line} not in {keys:?}");
        }
    }

    #[test]
    fn sender_schemes_batches_and_maps_are_read_and_checked() {
        let c = parse(
            "sources:\n  pd:\n    playbook: pb.yaml\n    auth: { type: hmac, secret: { env: S }, header: X-PagerDuty-Signature, prefix: 'v1=' }\n  slack:\n    playbook: pb.yaml\n    auth: { type: hmac, secret: { env: S }, header: X-Slack-Signature, prefix: 'v0=', message: 'v0:{timestamp}:{body}', timestamp_header: X-Slack-Request-Timestamp }\n  okta:\n    playbook: pb.yaml\n    auth: { type: okta_event_hook, secret: { env: O } }\n    batch: { split: alert.data.events, max_events: 50 }\n    map:\n      actor.user.name: '{{ event.actor.alternateId }}'\n      severity_id: 3\n  gd:\n    playbook: pb.yaml\n    auth: { type: sns, topic_arns: ['arn:aws:sns:eu-west-1:123456789012:gd'] }\n  splunk:\n    playbook: pb.yaml\n    auth: { type: url_token, secret: { env: T } }\n  kibana:\n    playbook: pb.yaml\n    auth: { type: basic, username: kibana, secret: { env: P } }\n  gh:\n    playbook: pb.yaml\n    auth: { type: hmac_sha256, secret: { env: S } }\n    events: { header: X-GitHub-Event, allow: [code_scanning_alert] }\n",
        )
        .unwrap();
        let SourceAuth::Hmac(slack) = &c.sources["slack"].auth else {
            panic!("slack")
        };
        assert_eq!(
            slack.message,
            [
                MessagePart::Text("v0:".into()),
                MessagePart::Timestamp,
                MessagePart::Text(":".into()),
                MessagePart::Body
            ]
        );
        assert!(slack.prefix_required);
        assert_eq!(
            c.sources["okta"].batch.split.as_deref(),
            Some("alert.data.events")
        );
        assert_eq!(c.sources["okta"].batch.max_events, 50);
        assert_eq!(c.sources["okta"].map.as_ref().unwrap().fields.len(), 2);
        assert_eq!(c.sources["gd"].auth.sns_regions(), ["eu-west-1"]);
        assert!(matches!(
            c.sources["kibana"].auth,
            SourceAuth::Basic(BasicAuth::Secret { .. })
        ));
        assert_eq!(
            c.sources["gh"].events.as_ref().unwrap().allow,
            ["code_scanning_alert"]
        );
        let err = parse(
            "sources:\n  a:\n    playbook: pb.yaml\n    auth: { type: hmac, secret: { env: S }, header: X, message: '{ts}:{body}' }\n  b:\n    playbook: pb.yaml\n    auth: { type: hmac, secret: { env: S }, header: X, message: '{timestamp}.{body}' }\n  c:\n    playbook: pb.yaml\n    auth: { type: sns, topic_arns: [not-an-arn] }\n  d:\n    playbook: pb.yaml\n    auth: { type: bearer }\n    batch: { max_events: 0 }\n    map:\n      device.hostname: '{{ event.host | nosuchfilter }}'\n      Device: '{{ event.x }}'\n      finding.title: '{{ alert.title }}'\n",
        )
        .unwrap_err();
        let keys = problem_keys(&err);
        for (key, line) in [
            ("sources.a.auth.message", 4),
            ("sources.b.auth.timestamp_header", 7),
            ("sources.c.auth.topic_arns[0]", 10),
            ("sources.d.batch.max_events", 14),
            ("sources.d.map.device.hostname", 16),
            ("sources.d.map.Device", 17),
            ("sources.d.map.finding.title", 18),
        ] {
            assert!(keys.contains(&(key, line)), "{key}:{line} not in {keys:?}");
        }
        assert!(
            err.to_string().contains("unknown filter `nosuchfilter`"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_says_how_to_point_at_one() {
        let err = Config::load(Path::new("/nonexistent/soar.yaml")).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }
}
