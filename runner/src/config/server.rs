//! `server:` and `sources:`: how `soar serve` listens, and who may deliver
//! alerts to `POST /hooks/{source}` with which proof. Signing secrets come
//! from secret sources (env, file), never from the config text.

use super::{problem, ConfigProblem};
use crate::secrets::SecretSource;
use crate::yaml::{Pos, Spanned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bodies larger than this are refused before they are read (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The most any `max_body` may be set to (16 MiB): an alert, not a file.
const MAX_MAX_BODY: u64 = 16 << 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    public_url: Option<Spanned<String>>,
    max_body: Option<Spanned<u64>>,
    shutdown_grace: Option<Spanned<String>>,
    session_ttl: Option<Spanned<String>>,
    #[serde(default)]
    playbooks: Vec<Spanned<String>>,
    slack: Option<Spanned<RawSlack>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    signing_secret: Option<Spanned<RawSecretRef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    playbook: Spanned<String>,
    auth: Spanned<RawAuth>,
    max_body: Option<Spanned<u64>>,
    rate_limit: Option<Spanned<RawRateLimit>>,
    delivery_id_header: Option<String>,
    delivery_window: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    r#type: Spanned<String>,
    secret: Option<Spanned<RawSecretRef>>,
    header: Option<String>,
    signature_header: Option<String>,
    timestamp_header: Option<String>,
    tolerance: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    env: Option<String>,
    file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    per_second: u32,
    burst: Option<u32>,
}

/// TLS key pair (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `server:`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Serve HTTPS with this key pair.
    pub tls: Option<Tls>,
    /// The address people and chat messages use to reach the server.
    pub public_url: Option<String>,
    /// Largest request body any route reads.
    pub max_body: usize,
    /// How long in-flight attempts may take to finish at SIGTERM.
    pub shutdown_grace: Duration,
    /// Playbooks `POST /api/v1/runs` may start, besides the sources' ones.
    pub playbooks: Vec<PathBuf>,
    /// How long a console session lasts.
    pub session_ttl: Duration,
    /// Slack's signing secret, for `POST /slack/interactions`.
    pub slack_signing_secret: Option<SecretSource>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            public_url: None,
            max_body: DEFAULT_MAX_BODY,
            shutdown_grace: Duration::from_secs(30),
            playbooks: Vec::new(),
            session_ttl: Duration::from_secs(8 * 3600),
            slack_signing_secret: None,
        }
    }
}

/// How a source proves a delivery is its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAuth {
    /// `header: sha256=<hex HMAC-SHA256 of the raw body>` (GitHub's scheme).
    HmacSha256 {
        /// The shared secret.
        secret: SecretSource,
        /// Header carrying the signature.
        header: String,
    },
    /// HMAC-SHA256 over `{timestamp}.{raw body}`, refused outside `tolerance`.
    TimestampedHmac {
        /// The shared secret.
        secret: SecretSource,
        /// Header carrying the hex signature (`sha256=` or `v1=` prefix allowed).
        signature_header: String,
        /// Header carrying the Unix timestamp in seconds.
        timestamp_header: String,
        /// Largest accepted |now − timestamp|.
        tolerance: Duration,
    },
    /// `Authorization: Bearer` of a principal with the `ingest` role.
    Bearer,
}

/// Token-bucket limit of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained deliveries per second.
    pub per_second: u32,
    /// Deliveries allowed at once.
    pub burst: u32,
}

/// `sources.NAME`.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name in `/hooks/{name}`; runs it starts are `source:{name}`'s.
    pub name: String,
    /// The playbook every delivery starts.
    pub playbook: PathBuf,
    /// Proof of origin.
    pub auth: SourceAuth,
    /// Largest body (at most the server's).
    pub max_body: usize,
    /// Deliveries per second, if limited.
    pub rate_limit: Option<RateLimit>,
    /// Header naming the delivery; a repeat within the window is the same run.
    pub delivery_id_header: Option<String>,
    /// How long a delivery id is remembered.
    pub delivery_window: Duration,
}

pub(super) fn duration(
    value: &Spanned<String>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Duration> {
    match humantime::parse_duration(value.value.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            problem(
                problems,
                Pos::of(value),
                key.to_string(),
                format!(
                    "`{}` is not a duration like `30s` or `5m`: {e}",
                    value.value
                ),
            );
            None
        }
    }
}

fn body_cap(value: &Option<Spanned<u64>>, key: &str, problems: &mut Vec<ConfigProblem>) -> usize {
    match value {
        Some(v) if v.value == 0 || v.value > MAX_MAX_BODY => {
            problem(
                problems,
                Pos::of(v),
                key.to_string(),
                format!("must be between 1 and {MAX_MAX_BODY} bytes"),
            );
            DEFAULT_MAX_BODY
        }
        Some(v) => v.value as usize,
        None => DEFAULT_MAX_BODY,
    }
}

pub(super) fn resolve_server(
    raw: &RawServer,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> ServerConfig {
    let mut server = ServerConfig::default();
    if let Some(listen) = &raw.listen {
        match listen.value.trim().parse::<SocketAddr>() {
            Ok(a) => server.listen = a,
            Err(_) => problem(
                problems,
                Pos::of(listen),
                "server.listen".into(),
                format!("`{}` is not an address like `127.0.0.1:8080`", listen.value),
            ),
        }
    }
    server.tls = raw.tls.as_ref().map(|t| Tls {
        cert: base.join(&t.value.cert),
        key: base.join(&t.value.key),
    });
    if let Some(url) = &raw.public_url {
        match url::Url::parse(url.value.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                server.public_url = Some(u.as_str().trim_end_matches('/').to_string())
            }
            _ => problem(
                problems,
                Pos::of(url),
                "server.public_url".into(),
                "must be an http(s) URL such as `https://soar.example.org`",
            ),
        }
    }
    server.max_body = body_cap(&raw.max_body, "server.max_body", problems);
    if let Some(g) = &raw.shutdown_grace {
        if let Some(d) = duration(g, "server.shutdown_grace", problems) {
            server.shutdown_grace = d;
        }
    }
    if let Some(t) = &raw.session_ttl {
        if let Some(d) = duration(t, "server.session_ttl", problems) {
            server.session_ttl = d;
        }
    }
    if let Some(slack) = &raw.slack {
        server.slack_signing_secret = secret_ref(
            &slack.value.signing_secret,
            Pos::of(slack),
            "server.slack.signing_secret",
            base,
            problems,
        );
    }
    server.playbooks = raw.playbooks.iter().map(|p| base.join(&p.value)).collect();
    server
}

fn secret_ref(
    raw: &Option<Spanned<RawSecretRef>>,
    pos: Pos,
    key: &str,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SecretSource> {
    let Some(s) = raw else {
        problem(
            problems,
            pos,
            key.to_string(),
            "give the signing secret's source: `{env: VAR}` or `{file: PATH}`",
        );
        return None;
    };
    super::secret_source(&s.value.env, &s.value.file, base, Pos::of(s), key, problems)
}

fn resolve_auth(
    raw: &Spanned<RawAuth>,
    key: &str,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SourceAuth> {
    let a = &raw.value;
    let pos = Pos::of(raw);
    match a.r#type.value.as_str() {
        "hmac_sha256" => Some(SourceAuth::HmacSha256 {
            secret: secret_ref(&a.secret, pos, &format!("{key}.secret"), base, problems)?,
            header: a
                .header
                .clone()
                .unwrap_or_else(|| "X-Hub-Signature-256".into()),
        }),
        "timestamped_hmac" => {
            let tolerance = match &a.tolerance {
                Some(t) => duration(t, &format!("{key}.tolerance"), problems)?,
                None => Duration::from_secs(300),
            };
            Some(SourceAuth::TimestampedHmac {
                secret: secret_ref(&a.secret, pos, &format!("{key}.secret"), base, problems)?,
                signature_header: a
                    .signature_header
                    .clone()
                    .unwrap_or_else(|| "X-Soar-Signature".into()),
                timestamp_header: a
                    .timestamp_header
                    .clone()
                    .unwrap_or_else(|| "X-Soar-Timestamp".into()),
                tolerance,
            })
        }
        "bearer" => {
            if a.secret.is_some() {
                problem(
                    problems,
                    pos,
                    format!("{key}.secret"),
                    "a bearer source authenticates principals with the `ingest` role by token; it has no secret",
                );
            }
            Some(SourceAuth::Bearer)
        }
        other => {
            problem(
                problems,
                Pos::of(&a.r#type),
                format!("{key}.type"),
                format!("`{other}` is not one of hmac_sha256, timestamped_hmac, bearer"),
            );
            None
        }
    }
}

pub(super) fn resolve_sources(
    raw: &BTreeMap<String, Spanned<RawSource>>,
    server: &ServerConfig,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, Source> {
    let mut sources = BTreeMap::new();
    for (name, spanned) in raw {
        let key = format!("sources.{name}");
        let s = &spanned.value;
        let good_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !good_name {
            problem(
                problems,
                Pos::of(spanned),
                key.clone(),
                "a source name is 1 to 64 of a-z, 0-9, `-`, `_` (it is a URL path segment)",
            );
            continue;
        }
        let auth = resolve_auth(&s.auth, &format!("{key}.auth"), base, problems);
        let max_body =
            body_cap(&s.max_body, &format!("{key}.max_body"), problems).min(server.max_body);
        let rate_limit = s.rate_limit.as_ref().and_then(|r| {
            if r.value.per_second == 0 {
                problem(
                    problems,
                    Pos::of(r),
                    format!("{key}.rate_limit.per_second"),
                    "must be at least 1 (leave `rate_limit` out for no limit)",
                );
                return None;
            }
            Some(RateLimit {
                per_second: r.value.per_second,
                burst: r.value.burst.unwrap_or(r.value.per_second).max(1),
            })
        });
        let delivery_window = match &s.delivery_window {
            Some(w) => duration(w, &format!("{key}.delivery_window"), problems)
                .unwrap_or(Duration::from_secs(86_400)),
            None => Duration::from_secs(86_400),
        };
        if let Some(auth) = auth {
            sources.insert(
                name.clone(),
                Source {
                    name: name.clone(),
                    playbook: base.join(&s.playbook.value),
                    auth,
                    max_body,
                    rate_limit,
                    delivery_id_header: s.delivery_id_header.clone(),
                    delivery_window,
                },
            );
        }
    }
    sources
}
