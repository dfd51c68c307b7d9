//! `server:`: how `soar serve` listens, how much it reads, and Slack's
//! signing secret. Secrets come from secret sources (env, file), never from
//! the config text. Alert senders are `sources.rs`.

use super::{problem, ConfigProblem};
use crate::secrets::SecretSource;
use crate::yaml::{Pos, Spanned};
use serde::Deserialize;
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
pub(super) struct RawSecretRef {
    env: Option<String>,
    file: Option<String>,
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

pub(super) fn body_cap(
    value: &Option<Spanned<u64>>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> usize {
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

pub(super) fn secret_ref(
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
