//! `journal.backend`: where the journal lives. `sled` (the default) is the
//! embedded store in the data dir; `nats` is a NATS JetStream cluster shared
//! by several `soar serve` nodes (`docs/cluster.md`).

use super::server::duration;
use super::{problem, secret_source, ConfigProblem, RawJournal};
use crate::secrets::SecretSource;
use crate::yaml::{Pos, Spanned};
use std::path::Path;
use std::time::Duration;

/// Fewest replicas a cluster journal may have: a stream of 1 or 2 loses
/// acknowledged records (or stops taking them) when one server dies.
pub const MIN_REPLICAS: usize = 3;
/// Most replicas JetStream supports.
const MAX_REPLICAS: usize = 5;
/// Bounds of `lease_ttl`: shorter than a renewal round trip under load
/// would flap ownership; longer leaves a dead node's runs stalled for long.
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
const MAX_LEASE_TTL: Duration = Duration::from_secs(600);
/// Most servers one config lists.
const MAX_SERVERS: usize = 32;

/// Where the journal lives.
#[derive(Debug, Clone, Default)]
pub enum JournalBackend {
    /// sled in the data dir: one node.
    #[default]
    Sled,
    /// A NATS JetStream cluster.
    Nats(NatsConfig),
}

/// `journal: { backend: nats, ... }`, validated.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` URLs of the cluster's servers.
    pub servers: Vec<String>,
    /// Monitoring URLs (`http://host:8222`) whose `/varz` shows each
    /// server's version and sync setting; none means the sync setting is
    /// not checked (and the start-up says so).
    pub monitor: Vec<String>,
    /// The stream's name (the tenant's stream when `tenant` is set).
    pub stream: String,
    /// The tenant, when one cluster serves several customers.
    pub tenant: Option<String>,
    /// Replicas the stream and buckets must have (≥ 3).
    pub replicas: usize,
    /// A NATS `.creds` file's content (JWT and NKey seed).
    pub credentials: Option<SecretSource>,
    /// How long a node's ownership of a run lasts without renewal.
    pub lease_ttl: Duration,
}

/// Reads the backend keys; `Sled` when `backend` is absent or `sled`.
pub(super) fn resolve_backend(
    raw: &RawJournal,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> JournalBackend {
    match raw.backend.as_ref().map(|b| (b.value.as_str(), Pos::of(b))) {
        None | Some(("sled", _)) => {
            refuse_cluster_keys(raw, problems);
            JournalBackend::Sled
        }
        Some(("nats", _)) => {
            resolve_nats(raw, base, problems).map_or(JournalBackend::Sled, JournalBackend::Nats)
        }
        Some((other, pos)) => {
            problem(problems, pos, "journal.backend".into(), format!("unknown backend `{other}`: use `sled` (one node, the default) or `nats` (a JetStream cluster)"));
            JournalBackend::Sled
        }
    }
}

/// Cluster keys under a sled journal are a mistake (a forgotten
/// `backend: nats`), not something to ignore.
fn refuse_cluster_keys(raw: &RawJournal, problems: &mut Vec<ConfigProblem>) {
    let given = [
        ("servers", raw.servers.first().map(Pos::of)),
        ("stream", raw.stream.as_ref().map(Pos::of)),
        ("tenant", raw.tenant.as_ref().map(Pos::of)),
        ("replicas", raw.replicas.as_ref().map(Pos::of)),
        ("lease_ttl", raw.lease_ttl.as_ref().map(Pos::of)),
        ("credentials", raw.credentials.as_ref().map(Pos::of)),
        ("monitor", raw.monitor.first().map(Pos::of)),
    ];
    for (key, pos) in given {
        if let Some(pos) = pos {
            problem(
                problems,
                pos,
                format!("journal.{key}"),
                "only for `backend: nats`; the sled journal lives in the data dir",
            );
        }
    }
}

fn resolve_nats(
    raw: &RawJournal,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<NatsConfig> {
    let before = problems.len();
    let servers = urls(&raw.servers, "journal.servers", &["nats", "tls"], problems);
    if raw.servers.is_empty() {
        let pos = raw.backend.as_ref().map(Pos::of).unwrap_or_default();
        problem(problems, pos, "journal.servers".into(), "list the cluster's servers, e.g. [nats://10.0.0.1:4222, nats://10.0.0.2:4222, nats://10.0.0.3:4222]");
    }
    let monitor = urls(
        &raw.monitor,
        "journal.monitor",
        &["http", "https"],
        problems,
    );
    let stream = raw.stream.as_ref().map_or(Some("soar".to_string()), |s| {
        name(s, "journal.stream", problems)
    });
    let tenant = raw
        .tenant
        .as_ref()
        .and_then(|t| name(t, "journal.tenant", problems));
    let replicas = raw.replicas.as_ref().map_or(MIN_REPLICAS, |r| {
        if !(MIN_REPLICAS..=MAX_REPLICAS).contains(&r.value) {
            problem(problems, Pos::of(r), "journal.replicas".into(), format!("{} replica(s): a cluster journal needs {MIN_REPLICAS} to {MAX_REPLICAS}, so that losing a server loses no acknowledged record (one node without a cluster: use `backend: sled`)", r.value));
        }
        r.value
    });
    let credentials = raw.credentials.as_ref().and_then(|c| {
        secret_source(
            &c.value.env,
            &c.value.file,
            base,
            Pos::of(c),
            "journal.credentials",
            problems,
        )
    });
    let lease_ttl = raw.lease_ttl.as_ref().map_or(Some(Duration::from_secs(10)), |t| {
        let d = duration(t, "journal.lease_ttl", problems)?;
        if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&d) {
            problem(problems, Pos::of(t), "journal.lease_ttl".into(), "must be between 1s and 10m: the time a dead node's runs wait before another node takes them over");
        }
        Some(d)
    });
    if problems.len() > before {
        return None;
    }
    Some(NatsConfig {
        servers,
        monitor,
        stream: stream?,
        tenant,
        replicas,
        credentials,
        lease_ttl: lease_ttl?,
    })
}

/// URLs with one of `schemes`, each checked.
fn urls(
    raw: &[Spanned<String>],
    key: &str,
    schemes: &[&str],
    problems: &mut Vec<ConfigProblem>,
) -> Vec<String> {
    if raw.len() > MAX_SERVERS {
        problem(
            problems,
            Pos::of(&raw[MAX_SERVERS]),
            key.into(),
            format!("at most {MAX_SERVERS} entries"),
        );
    }
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate().take(MAX_SERVERS) {
        match url::Url::parse(s.value.trim()) {
            Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => {
                out.push(s.value.trim().to_string())
            }
            _ => problem(
                problems,
                Pos::of(s),
                format!("{key}[{i}]"),
                format!("`{}` is not a {}:// URL with a host", s.value, schemes[0]),
            ),
        }
    }
    out
}

/// A stream or tenant name: it becomes part of stream names and subjects,
/// so only letters, digits, `-` and `_`.
fn name(raw: &Spanned<String>, key: &str, problems: &mut Vec<ConfigProblem>) -> Option<String> {
    let v = &raw.value;
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        problem(problems, Pos::of(raw), key.into(), format!("`{v}`: use 1-64 letters, digits, `-` or `_` (it becomes part of JetStream stream names and subjects)"));
        return None;
    }
    Some(v.clone())
}
