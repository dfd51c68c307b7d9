//! `sources:`: who may deliver alerts to `POST /hooks/{source}`, with which
//! proof (`auth`), which events of theirs start runs (`events`), how a
//! delivery splits into events (`batch`) and how each event becomes the
//! normalized alert a playbook reads (`map`). Secrets come from secret
//! sources (env, file), never from the config text.

use super::server::{body_cap, duration, secret_ref, ServerConfig};
use super::{problem, ConfigProblem};
use crate::secrets::SecretSource;
use crate::yaml::{Pos, Spanned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Events one delivery may carry unless `batch.max_events` says otherwise.
pub const DEFAULT_MAX_EVENTS: usize = 1_000;
/// The most `batch.max_events` may be.
const MAX_MAX_EVENTS: u64 = 10_000;
/// Signatures read from one header (PagerDuty sends two during a rotation).
pub const MAX_SIGNATURES: usize = 8;
/// Fields one `map` may build.
const MAX_MAP_FIELDS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    playbook: Spanned<String>,
    auth: Spanned<RawAuth>,
    max_body: Option<Spanned<u64>>,
    rate_limit: Option<Spanned<RawRateLimit>>,
    delivery_id_header: Option<String>,
    delivery_window: Option<Spanned<String>>,
    events: Option<Spanned<RawEvents>>,
    batch: Option<Spanned<RawBatch>>,
    #[serde(default)]
    map: BTreeMap<String, Spanned<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    r#type: Spanned<String>,
    secret: Option<Spanned<super::server::RawSecretRef>>,
    header: Option<String>,
    prefix: Option<String>,
    encoding: Option<Spanned<String>>,
    message: Option<Spanned<String>>,
    signature_header: Option<String>,
    timestamp_header: Option<String>,
    timestamp_prefix: Option<String>,
    tolerance: Option<Spanned<String>>,
    username: Option<String>,
    #[serde(default)]
    topic_arns: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    per_second: u32,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    header: String,
    allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    split: Option<Spanned<String>>,
    max_events: Option<Spanned<u64>>,
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64 (Shopify, Slack-style senders that use it).
    Base64,
}

/// One part of the signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagePart {
    /// The raw body, byte for byte.
    Body,
    /// The timestamp, as the sender wrote it.
    Timestamp,
    /// Literal text, e.g. `v0:` or `.`.
    Text(String),
}

/// Where the signed timestamp is and how old it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampRule {
    /// The header carrying it (may be the signature header, Stripe-style).
    pub header: String,
    /// The element of that header holding it (`t=`), if it is a list.
    pub prefix: Option<String>,
    /// Largest accepted |now − timestamp| (Unix seconds).
    pub tolerance: Duration,
}

/// An HMAC-SHA256 signature scheme (GitHub, Slack, Stripe, PagerDuty,
/// Shopify and the like are all instances of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacScheme {
    /// The shared secret.
    pub secret: SecretSource,
    /// Header carrying one or more signatures (comma or space separated).
    pub header: String,
    /// Prefixes a signature element may carry (`sha256=`, `v1=`).
    pub prefixes: Vec<String>,
    /// Whether an element without one of the prefixes is ignored (a
    /// declared `prefix` is required; the presets accept bare hex too).
    pub prefix_required: bool,
    /// How the signature is written.
    pub encoding: Encoding,
    /// What is signed.
    pub message: Vec<MessagePart>,
    /// The signed timestamp, when the message includes one.
    pub timestamp: Option<TimestampRule>,
}

/// `auth.type: basic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicAuth {
    /// User name = a principal with the `ingest` role, password = its token.
    Principal,
    /// A fixed user name and a password from a secret.
    Secret {
        /// Expected user name.
        username: String,
        /// The password.
        secret: SecretSource,
    },
}

/// How a source proves a delivery is its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAuth {
    /// An HMAC over the raw body (`hmac`, and the presets `hmac_sha256`,
    /// `timestamped_hmac`).
    Hmac(HmacScheme),
    /// Okta Event Hooks: a header (Authorization) equal to the secret, and
    /// the one-time verification `GET`.
    OktaEventHook {
        /// The value Okta sends.
        secret: SecretSource,
        /// The header carrying it.
        header: String,
    },
    /// AWS SNS: a message signed by SNS's certificate (SignatureVersion 1
    /// or 2), from one of `topic_arns`.
    Sns {
        /// Topics whose messages are taken.
        topic_arns: Vec<String>,
    },
    /// A secret path segment, `POST /hooks/NAME/<token>`.
    UrlToken {
        /// The token.
        secret: SecretSource,
    },
    /// HTTP Basic.
    Basic(BasicAuth),
    /// `Authorization: Bearer` of a principal with the `ingest` role.
    Bearer,
}

impl SourceAuth {
    /// The AWS regions of an SNS source's topics (`arn:aws:sns:REGION:...`).
    pub fn sns_regions(&self) -> Vec<String> {
        let SourceAuth::Sns { topic_arns } = self else {
            return Vec::new();
        };
        let mut regions: Vec<String> = topic_arns
            .iter()
            .filter_map(|arn| arn.split(':').nth(3).map(str::to_string))
            .collect();
        regions.sort();
        regions.dedup();
        regions
    }
}

/// Token-bucket limit of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained deliveries per second.
    pub per_second: u32,
    /// Deliveries allowed at once.
    pub burst: u32,
}

/// `sources.NAME.events`: only these values of a header start runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// The header naming the event (`X-GitHub-Event`).
    pub header: String,
    /// Values that are taken; others are answered 2xx and ignored.
    pub allow: Vec<String>,
}

/// `sources.NAME.batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Expression picking the array of events out of the delivery
    /// (`alert.data.events`); a top-level array or NDJSON splits anyway.
    pub split: Option<String>,
    /// More events than this in one delivery: 413.
    pub max_events: usize,
}

/// `sources.NAME.map`: the normalized alert, one template per field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceMap {
    /// Dotted field path (`device.hostname`) and its template or literal.
    pub fields: Vec<(String, serde_json::Value)>,
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
    /// Which events start runs, if filtered.
    pub events: Option<EventFilter>,
    /// How a delivery splits into events.
    pub batch: Batch,
    /// How an event becomes the alert, if mapped.
    pub map: Option<SourceMap>,
}

fn secret(
    a: &RawAuth,
    pos: Pos,
    key: &str,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SecretSource> {
    secret_ref(&a.secret, pos, &format!("{key}.secret"), base, problems)
}

fn tolerance(a: &RawAuth, key: &str, problems: &mut Vec<ConfigProblem>) -> Option<Duration> {
    match &a.tolerance {
        Some(t) => duration(t, &format!("{key}.tolerance"), problems),
        None => Some(Duration::from_secs(300)),
    }
}

/// `message: "v0:{timestamp}:{body}"` as parts; `{body}` must appear once.
fn message_parts(
    text: &Spanned<String>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<MessagePart>> {
    let mut parts = Vec::new();
    let mut rest = text.value.as_str();
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|c| open + c);
        let name = close.map(|c| &rest[open + 1..c]);
        let part = match name {
            Some("body") => MessagePart::Body,
            Some("timestamp") => MessagePart::Timestamp,
            _ => {
                problem(problems, Pos::of(text), format!("{key}.message"),
                    "may hold only `{body}`, `{timestamp}` and literal text, e.g. `v0:{timestamp}:{body}`");
                return None;
            }
        };
        if open > 0 {
            parts.push(MessagePart::Text(rest[..open].to_string()));
        }
        parts.push(part);
        rest = &rest[close.unwrap_or(rest.len()) + 1..];
    }
    if !rest.is_empty() {
        parts.push(MessagePart::Text(rest.to_string()));
    }
    if parts.iter().filter(|p| **p == MessagePart::Body).count() != 1 {
        problem(
            problems,
            Pos::of(text),
            format!("{key}.message"),
            "must contain `{body}` exactly once",
        );
        return None;
    }
    Some(parts)
}

fn generic_hmac(
    a: &RawAuth,
    pos: Pos,
    key: &str,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<HmacScheme> {
    let Some(header) = a.header.clone() else {
        problem(
            problems,
            pos,
            format!("{key}.header"),
            "name the header carrying the signature, e.g. `X-Hub-Signature-256`",
        );
        return None;
    };
    let encoding = match a.encoding.as_ref().map(|e| e.value.as_str()) {
        None | Some("hex") => Encoding::Hex,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            let e = a.encoding.as_ref()?;
            problem(
                problems,
                Pos::of(e),
                format!("{key}.encoding"),
                format!("`{other}` is not one of hex, base64"),
            );
            return None;
        }
    };
    let message = match &a.message {
        Some(m) => message_parts(m, key, problems)?,
        None => vec![MessagePart::Body],
    };
    let signs_time = message.contains(&MessagePart::Timestamp);
    let timestamp = match (&a.timestamp_header, signs_time) {
        (Some(h), true) => Some(TimestampRule {
            header: h.clone(),
            prefix: a.timestamp_prefix.clone(),
            tolerance: tolerance(a, key, problems)?,
        }),
        (None, false) => None,
        (Some(_), false) => {
            problem(problems, pos, format!("{key}.message"), "a `timestamp_header` is only checked when the `message` signs `{timestamp}`: add it, or the timestamp could be replayed");
            return None;
        }
        (None, true) => {
            problem(
                problems,
                pos,
                format!("{key}.timestamp_header"),
                "the `message` signs `{timestamp}`: name the header carrying it",
            );
            return None;
        }
    };
    Some(HmacScheme {
        secret: secret(a, pos, key, base, problems)?,
        header,
        prefixes: a.prefix.iter().cloned().collect(),
        prefix_required: a.prefix.is_some(),
        encoding,
        message,
        timestamp,
    })
}

fn preset_hmac(
    a: &RawAuth,
    timestamped: bool,
    pos: Pos,
    key: &str,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<HmacScheme> {
    let prefixes = vec!["sha256=".to_string(), "v1=".to_string()];
    let secret = secret(a, pos, key, base, problems)?;
    if !timestamped {
        return Some(HmacScheme {
            secret,
            header: a
                .header
                .clone()
                .unwrap_or_else(|| "X-Hub-Signature-256".into()),
            prefixes,
            prefix_required: false,
            encoding: Encoding::Hex,
            message: vec![MessagePart::Body],
            timestamp: None,
        });
    }
    Some(HmacScheme {
        secret,
        header: a
            .signature_header
            .clone()
            .unwrap_or_else(|| "X-Soar-Signature".into()),
        prefixes,
        prefix_required: false,
        encoding: Encoding::Hex,
        message: vec![
            MessagePart::Timestamp,
            MessagePart::Text(".".into()),
            MessagePart::Body,
        ],
        timestamp: Some(TimestampRule {
            header: a
                .timestamp_header
                .clone()
                .unwrap_or_else(|| "X-Soar-Timestamp".into()),
            prefix: None,
            tolerance: tolerance(a, key, problems)?,
        }),
    })
}

fn no_secret(a: &RawAuth, pos: Pos, key: &str, why: &str, problems: &mut Vec<ConfigProblem>) {
    if a.secret.is_some() {
        problem(problems, pos, format!("{key}.secret"), why.to_string());
    }
}

fn sns(a: &RawAuth, pos: Pos, key: &str, problems: &mut Vec<ConfigProblem>) -> Option<SourceAuth> {
    no_secret(
        a,
        pos,
        key,
        "an SNS source is proven by SNS's own signature; it has no secret",
        problems,
    );
    if a.topic_arns.is_empty() {
        problem(problems, pos, format!("{key}.topic_arns"), "list the topics whose messages are taken, e.g. `arn:aws:sns:us-east-1:123456789012:guardduty`");
        return None;
    }
    let mut arns = Vec::new();
    for (i, arn) in a.topic_arns.iter().enumerate() {
        let parts: Vec<&str> = arn.value.split(':').collect();
        let region_ok = parts.get(3).is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
        if parts.len() != 6
            || parts[0] != "arn"
            || !parts[1].starts_with("aws")
            || parts[2] != "sns"
            || !region_ok
        {
            problem(
                problems,
                Pos::of(arn),
                format!("{key}.topic_arns[{i}]"),
                format!(
                    "`{}` is not an SNS topic ARN like `arn:aws:sns:REGION:ACCOUNT:TOPIC`",
                    arn.value
                ),
            );
            return None;
        }
        arns.push(arn.value.clone());
    }
    Some(SourceAuth::Sns { topic_arns: arns })
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
        "hmac" => generic_hmac(a, pos, key, base, problems).map(SourceAuth::Hmac),
        "hmac_sha256" => preset_hmac(a, false, pos, key, base, problems).map(SourceAuth::Hmac),
        "timestamped_hmac" => preset_hmac(a, true, pos, key, base, problems).map(SourceAuth::Hmac),
        "okta_event_hook" => Some(SourceAuth::OktaEventHook {
            secret: secret(a, pos, key, base, problems)?,
            header: a.header.clone().unwrap_or_else(|| "Authorization".into()),
        }),
        "sns" => sns(a, pos, key, problems),
        "url_token" => Some(SourceAuth::UrlToken {
            secret: secret(a, pos, key, base, problems)?,
        }),
        "basic" => Some(SourceAuth::Basic(match (&a.username, &a.secret) {
            (Some(u), Some(_)) => BasicAuth::Secret {
                username: u.clone(),
                secret: secret(a, pos, key, base, problems)?,
            },
            (None, None) => BasicAuth::Principal,
            _ => {
                problem(problems, pos, key.to_string(), "give both `username` and `secret` (the password), or neither to sign in as a principal with the `ingest` role and its token");
                return None;
            }
        })),
        "bearer" => {
            no_secret(a, pos, key, "a bearer source authenticates principals with the `ingest` role by token; it has no secret", problems);
            Some(SourceAuth::Bearer)
        }
        other => {
            problem(
                problems,
                Pos::of(&a.r#type),
                format!("{key}.type"),
                format!("`{other}` is not one of hmac, hmac_sha256, timestamped_hmac, okta_event_hook, sns, url_token, basic, bearer"),
            );
            None
        }
    }
}

fn resolve_batch(
    raw: &Option<Spanned<RawBatch>>,
    key: &str,
    templates: &crate::template::Templates,
    problems: &mut Vec<ConfigProblem>,
) -> Batch {
    let mut batch = Batch {
        split: None,
        max_events: DEFAULT_MAX_EVENTS,
    };
    let Some(raw) = raw else { return batch };
    if let Some(split) = &raw.value.split {
        let expr = format!("{{{{ {} }}}}", split.value.trim());
        let reads_alert = templates
            .references(&expr, false)
            .map(|refs| refs.iter().all(|r| r == "alert" || r.starts_with("alert.")));
        match reads_alert {
            Ok(true) if templates.is_single_expression(&expr) => batch.split = Some(split.value.trim().to_string()),
            Ok(_) => problem(problems, Pos::of(split), format!("{key}.batch.split"), "must be one expression over the delivery, e.g. `alert.data.events` or `alert.Records`"),
            Err(e) => problem(problems, Pos::of(split), format!("{key}.batch.split"), e.to_string()),
        }
    }
    if let Some(m) = &raw.value.max_events {
        if m.value == 0 || m.value > MAX_MAX_EVENTS {
            problem(
                problems,
                Pos::of(m),
                format!("{key}.batch.max_events"),
                format!("must be between 1 and {MAX_MAX_EVENTS}"),
            );
        } else {
            batch.max_events = m.value as usize;
        }
    }
    batch
}

fn good_field_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    segments.len() <= 8
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// The map's fields, each checked: a path, a template that compiles, uses
/// known filters and reads only `event` (and `sns` for SNS sources).
fn resolve_map(
    raw: &BTreeMap<String, Spanned<serde_json::Value>>,
    key: &str,
    is_sns: bool,
    templates: &crate::template::Templates,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SourceMap> {
    if raw.is_empty() {
        return None;
    }
    let mut fields = Vec::new();
    for (path, value) in raw {
        let at = format!("{key}.map.{path}");
        let pos = Pos::of(value);
        if !good_field_path(path) {
            problem(problems, pos, at, "a field is a dotted path of lower-case names, e.g. `device.hostname` (at most 8 deep)");
            continue;
        }
        if let Some(parent) = raw
            .keys()
            .find(|other| path.starts_with(&format!("{other}.")))
        {
            problem(
                problems,
                pos,
                at,
                format!("`{parent}` is set too: a field cannot be both a value and an object"),
            );
            continue;
        }
        match &value.value {
            serde_json::Value::String(t) => match templates.references(t, false) {
                Ok(refs) => {
                    let stray = refs.iter().find(|r| {
                        let root = r.split('.').next().unwrap_or(r);
                        !(root == "event" || (is_sns && root == "sns"))
                    });
                    if let Some(stray) = stray {
                        let roots = if is_sns {
                            "`event` (the SNS message) and `sns` (its envelope)"
                        } else {
                            "`event`"
                        };
                        problem(
                            problems,
                            pos,
                            at,
                            format!("reads `{stray}`: a map reads only {roots}"),
                        );
                        continue;
                    }
                }
                Err(e) => {
                    problem(problems, pos, at, e.to_string());
                    continue;
                }
            },
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null => {
            }
            _ => {
                problem(
                    problems,
                    pos,
                    at,
                    "give a template string or a literal number or boolean",
                );
                continue;
            }
        }
        fields.push((path.clone(), value.value.clone()));
    }
    if fields.len() > MAX_MAP_FIELDS {
        problem(
            problems,
            Pos::default(),
            format!("{key}.map"),
            format!("at most {MAX_MAP_FIELDS} fields"),
        );
    }
    Some(SourceMap { fields })
}

fn good_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn resolve_events(
    raw: &Option<Spanned<RawEvents>>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<EventFilter> {
    let raw = raw.as_ref()?;
    if raw.value.allow.is_empty()
        || axum::http::HeaderName::try_from(raw.value.header.as_str()).is_err()
    {
        problem(problems, Pos::of(raw), format!("{key}.events"), "give a `header` name and the values of it that start runs in `allow`, e.g. `{header: X-GitHub-Event, allow: [code_scanning_alert]}`");
        return None;
    }
    Some(EventFilter {
        header: raw.value.header.clone(),
        allow: raw.value.allow.clone(),
    })
}

pub(super) fn resolve_sources(
    raw: &BTreeMap<String, Spanned<RawSource>>,
    server: &ServerConfig,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, Source> {
    let templates = crate::template::Templates::new();
    let mut sources = BTreeMap::new();
    for (name, spanned) in raw {
        let key = format!("sources.{name}");
        let s = &spanned.value;
        if !good_name(name) {
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
        let is_sns = matches!(auth, Some(SourceAuth::Sns { .. }));
        let events = resolve_events(&s.events, &key, problems);
        let batch = resolve_batch(&s.batch, &key, &templates, problems);
        let map = resolve_map(&s.map, &key, is_sns, &templates, problems);
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
                    events,
                    batch,
                    map,
                },
            );
        }
    }
    sources
}
