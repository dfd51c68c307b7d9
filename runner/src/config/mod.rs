//! The operator's config file (`soar.yaml`): where plugins live and what each
//! may reach. Parsing collects every problem with its line before failing;
//! unknown keys are errors. See `docs/configuration.md`.

mod origin;
mod policy;

pub use origin::Origin;
pub use policy::{Approver, BlastCap, Policy, ProtectedAssets, ProtectedHit};

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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    #[serde(default)]
    durability: Option<JournalDurability>,
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
    http_timeout_ms: Option<Spanned<u64>>,
    max_response_bytes: Option<Spanned<u64>>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
}

/// Per-invocation resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap of one instance.
    pub memory_bytes: usize,
    /// Whole invocation deadline (CPU in wasm and time in host calls).
    pub timeout: Duration,
    /// Cap on one HTTP request.
    pub http_timeout: Duration,
    /// Cap on one HTTP response body.
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
            http_timeout: Duration::from_secs(15),
            max_response_bytes: 4 << 20,
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

/// A non-GET request the operator lets through in dry-run (an OAuth2 token
/// exchange, say), as `METHOD /path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunException {
    /// Upper-case method.
    pub method: String,
    /// Exact URL path.
    pub path: String,
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
    /// Dry-run exceptions.
    pub dry_run_allow: Vec<DryRunException>,
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
    /// Approvers, protected assets and blast-radius caps.
    pub policy: Policy,
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
        let plugins_dir = base.join(raw.plugins_dir.as_deref().unwrap_or("plugins"));
        let defaults = resolve_limits(&raw.limits, &Limits::default(), "limits", &mut problems);
        let mut plugins = BTreeMap::new();
        for (name, spanned) in &raw.plugins {
            let plugin =
                resolve_plugin(name, spanned, &base, &plugins_dir, &defaults, &mut problems);
            plugins.insert(name.clone(), plugin);
        }
        let policy = policy::resolve(
            &raw.approvals,
            &raw.protected,
            &raw.blast_radius,
            &mut problems,
        );
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
            policy,
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
    limits
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
        let source = match (&grant.value.env, &grant.value.file) {
            (Some(var), None) => Some(SecretSource::Env(var.clone())),
            (None, Some(file)) => Some(SecretSource::File(base.join(file))),
            _ => {
                problem(
                    problems,
                    Pos::of(grant),
                    format!("{key}.{skey}"),
                    "give exactly one of `env` (variable name) or `file` (path)",
                );
                None
            }
        };
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
    let dry_run_allow = raw
        .dry_run_allow
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let mut parts = entry.value.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(method), Some(path), None) if path.starts_with('/') => {
                    Some(DryRunException {
                        method: method.to_ascii_uppercase(),
                        path: path.to_string(),
                    })
                }
                _ => {
                    problem(
                        problems,
                        Pos::of(entry),
                        format!("{key}.dry_run_allow[{i}]"),
                        "write `METHOD /path`, e.g. `POST /oauth2/token`",
                    );
                    None
                }
            }
        })
        .collect();
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/soar/soar.yaml"), text)
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
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        let keys: Vec<(&str, u64)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.pos.line))
            .collect();
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
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        let keys: Vec<(&str, u64)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.pos.line))
            .collect();
        assert!(
            keys.contains(&("approvals.approvers.bob.token_sha256", 3)),
            "{keys:?}"
        );
        assert!(keys.contains(&("protected.ips[0]", 5)), "{keys:?}");
        assert!(keys.contains(&("blast_radius.isolate", 7)), "{keys:?}");
        assert!(err.to_string().contains("never the token itself"), "{err}");
    }

    #[test]
    fn missing_file_says_how_to_point_at_one() {
        let err = Config::load(Path::new("/nonexistent/soar.yaml")).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }
}
