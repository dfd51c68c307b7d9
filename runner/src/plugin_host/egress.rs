//! Every HTTP request a plugin makes: checked against the operator's grants,
//! secrets filled in only for the origins granted for them, sent with
//! `reqwest`, echoed secrets scrubbed from the answer, and recorded (with
//! secrets redacted) for the journal.

use super::bindings::soar::plugin::host::{
    BasicAuth, HttpError, HttpRequest, HttpResponse, RequestBody, SecretOrText, ValuePart,
};
use crate::config::{DryRunException, Origin, SecretGrant};
use crate::secrets::SecretValue;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of a body kept verbatim in an exchange record; beyond it, a digest.
const RECORDED_BODY_BYTES: usize = 4096;

/// What the operator granted one plugin on the network.
#[derive(Debug)]
pub struct EgressPolicy {
    /// Plugin name (for logs).
    pub plugin: String,
    /// Origins it may call.
    pub allowed: Vec<Origin>,
    /// Secrets it may name, each with its own origins.
    pub secrets: BTreeMap<String, SecretGrant>,
    /// Non-GET requests allowed in dry-run.
    pub dry_run_allow: Vec<DryRunException>,
    /// Response body cap.
    pub max_response_bytes: usize,
    /// Per-request timeout cap.
    pub http_timeout: Duration,
}

/// A body as recorded: text up to a limit, plus size and digest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordedBody {
    /// Size in bytes.
    pub size: usize,
    /// The first bytes, as text (lossy UTF-8).
    pub text: String,
    /// True when `text` is cut short.
    pub truncated: bool,
    /// SHA-256 of the whole body (present when truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl RecordedBody {
    fn of(bytes: &[u8]) -> Self {
        let truncated = bytes.len() > RECORDED_BODY_BYTES;
        let shown = &bytes[..bytes.len().min(RECORDED_BODY_BYTES)];
        Self {
            size: bytes.len(),
            text: String::from_utf8_lossy(shown).into_owned(),
            truncated,
            sha256: truncated.then(|| hex::encode(Sha256::digest(bytes))),
        }
    }
}

/// One request and its outcome, secrets redacted as `[secret:NAME]`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HttpExchange {
    /// Method.
    pub method: String,
    /// URL (never carries secrets: plugins can only place them in headers and bodies).
    pub url: String,
    /// `sent`, `denied` or `failed`.
    pub outcome: ExchangeOutcome,
    /// Why it was denied or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP status, when answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Wall time.
    pub duration_ms: u64,
    /// Request headers, redacted.
    pub request_headers: Vec<(String, String)>,
    /// Request body, redacted.
    pub request_body: RecordedBody,
    /// Response headers, scrubbed.
    pub response_headers: Vec<(String, String)>,
    /// Response body, scrubbed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<RecordedBody>,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeOutcome {
    /// Sent and answered.
    Sent,
    /// Refused by the host; nothing left the machine.
    Denied,
    /// Sent (or attempted) but no usable answer.
    Failed,
}

/// Per-invocation egress state.
pub struct Egress {
    policy: Arc<EgressPolicy>,
    client: reqwest::Client,
    dry_run: bool,
    deadline: Instant,
    /// Secret values loaded during this invocation, scrubbed from every answer.
    loaded: Vec<(String, SecretValue)>,
    /// What was sent, in order.
    pub exchanges: Vec<HttpExchange>,
}

/// Headers the host owns: letting a plugin set them could smuggle requests
/// to another virtual host or desynchronise framing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
];

/// Request headers whose plain-text values are credentials (a bearer token
/// the vendor issued mid-invocation, say): recorded without their value.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "x-api-key", "x-apikey"];

/// JSON fields of a response body that carry credentials; their values are
/// masked in the record (the plugin still receives them).
const CREDENTIAL_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token", "client_secret"];

/// A header value as recorded: credential headers keep only their scheme.
fn record_header(name: &str, redacted: String) -> String {
    if !CREDENTIAL_HEADERS.contains(&name) || !redacted.chars().any(|c| !c.is_whitespace()) {
        return redacted;
    }
    if redacted.contains("[secret:") {
        // Built from named secrets: the placeholders already hide the value.
        return redacted;
    }
    match redacted.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} [redacted]"),
        None => "[redacted]".to_string(),
    }
}

/// The recorded copy of a JSON response body, with credential fields masked.
fn record_response_body(body: &[u8]) -> RecordedBody {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return RecordedBody::of(body);
    };
    fn mask(v: &mut serde_json::Value) -> bool {
        let mut changed = false;
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if CREDENTIAL_FIELDS.contains(&k.as_str()) && child.is_string() {
                        *child = serde_json::Value::String("[redacted]".into());
                        changed = true;
                    } else {
                        changed |= mask(child);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for child in items {
                    changed |= mask(child);
                }
            }
            _ => {}
        }
        changed
    }
    if mask(&mut value) {
        let mut record = RecordedBody::of(value.to_string().as_bytes());
        record.size = body.len();
        record
    } else {
        RecordedBody::of(body)
    }
}

/// The shared HTTP client: no redirects and no proxy from the environment,
/// either of which would route a request around the allowlist.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("building the HTTP client")
}

struct Rendered {
    real: String,
    redacted: String,
}

impl Egress {
    /// Egress for one invocation that must finish by `deadline`.
    pub fn new(
        policy: Arc<EgressPolicy>,
        client: reqwest::Client,
        dry_run: bool,
        deadline: Instant,
    ) -> Self {
        Self {
            policy,
            client,
            dry_run,
            deadline,
            loaded: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    fn secret(&mut self, name: &str, origin: &Origin) -> Result<String, String> {
        let grant = self.policy.secrets.get(name).ok_or_else(|| {
            format!(
                "secret `{name}` is not granted to plugin `{}`",
                self.policy.plugin
            )
        })?;
        if !grant.hosts.contains(origin) {
            return Err(format!(
                "secret `{name}` is not granted for {origin}; it may only be sent to {}",
                grant
                    .hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some((_, v)) = self.loaded.iter().find(|(n, _)| n == name) {
            return Ok(v.expose().to_string());
        }
        let value = grant
            .source
            .load()
            .map_err(|e| format!("secret `{name}` is unavailable: {e}"))?;
        let text = value.expose().to_string();
        self.loaded.push((name.to_string(), value));
        Ok(text)
    }

    fn render_one(&mut self, v: &SecretOrText, origin: &Origin) -> Result<Rendered, String> {
        Ok(match v {
            SecretOrText::Text(t) => Rendered {
                real: t.clone(),
                redacted: t.clone(),
            },
            SecretOrText::Secret(s) => Rendered {
                real: self.secret(s, origin)?,
                redacted: format!("[secret:{s}]"),
            },
        })
    }

    fn render(&mut self, parts: &[ValuePart], origin: &Origin) -> Result<Rendered, String> {
        let mut out = Rendered {
            real: String::new(),
            redacted: String::new(),
        };
        for part in parts {
            match part {
                ValuePart::Text(t) => {
                    out.real.push_str(t);
                    out.redacted.push_str(t);
                }
                ValuePart::Secret(s) => {
                    out.real.push_str(&self.secret(s, origin)?);
                    out.redacted.push_str(&format!("[secret:{s}]"));
                }
                ValuePart::Basic(BasicAuth { username, password }) => {
                    let u = self.render_one(username, origin)?;
                    let p = self.render_one(password, origin)?;
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", u.real, p.real));
                    out.real.push_str(&format!("Basic {encoded}"));
                    out.redacted
                        .push_str(&format!("Basic [{}:{}]", u.redacted, p.redacted));
                }
            }
        }
        Ok(out)
    }

    /// Handles one `send` from the plugin.
    pub async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let mut record = HttpExchange {
            method: request.method.to_ascii_uppercase(),
            url: request.url.clone(),
            outcome: ExchangeOutcome::Denied,
            error: None,
            status: None,
            duration_ms: 0,
            request_headers: Vec::new(),
            request_body: RecordedBody::of(&[]),
            response_headers: Vec::new(),
            response_body: None,
        };
        let result = self.send_inner(request, &mut record).await;
        record.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = &result {
            let (outcome, msg) = match e {
                HttpError::Denied(m) => (ExchangeOutcome::Denied, m.clone()),
                HttpError::Invalid(m) => (ExchangeOutcome::Denied, format!("invalid request: {m}")),
                HttpError::Timeout => (ExchangeOutcome::Failed, "timeout".into()),
                HttpError::Transport(m) => (ExchangeOutcome::Failed, m.clone()),
                HttpError::TooLarge(n) => (
                    ExchangeOutcome::Failed,
                    format!("response body over the {n}-byte cap"),
                ),
            };
            if record.outcome == ExchangeOutcome::Denied {
                tracing::warn!(plugin = %self.policy.plugin, method = %record.method, url = %record.url, reason = %msg, "plugin request refused");
            }
            record.outcome = outcome;
            record.error = Some(msg);
        }
        self.exchanges.push(record);
        result
    }

    async fn send_inner(
        &mut self,
        request: HttpRequest,
        record: &mut HttpExchange,
    ) -> Result<HttpResponse, HttpError> {
        let url = url::Url::parse(&request.url)
            .map_err(|e| HttpError::Invalid(format!("`{}` is not a URL: {e}", request.url)))?;
        let origin = Origin::of_url(&url).map_err(HttpError::Denied)?;
        if !self.policy.allowed.contains(&origin) {
            return Err(HttpError::Denied(format!(
                "{origin} is not in the allowed_hosts of plugin `{}`",
                self.policy.plugin
            )));
        }
        let method = reqwest::Method::from_bytes(record.method.as_bytes()).map_err(|_| {
            HttpError::Invalid(format!("`{}` is not an HTTP method", record.method))
        })?;
        if self.dry_run
            && method != reqwest::Method::GET
            && method != reqwest::Method::HEAD
            && !self
                .policy
                .dry_run_allow
                .iter()
                .any(|e| e.method == record.method && e.path == url.path())
        {
            return Err(HttpError::Denied(format!(
                "dry-run: {} {} was not sent (only GET and HEAD leave the host in a dry run)",
                record.method,
                url.path()
            )));
        }

        // Render everything before sending anything: a refused secret stops the
        // whole request, not just one header.
        let mut headers = reqwest::header::HeaderMap::new();
        for h in &request.headers {
            let name = h.name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Err(HttpError::Invalid(format!(
                    "header `{name}` is set by the host"
                )));
            }
            let value = self.render(&h.value, &origin).map_err(HttpError::Denied)?;
            let header_name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::Invalid(format!("`{name}` is not a header name")))?;
            let header_value = reqwest::header::HeaderValue::from_str(&value.real)
                .map_err(|_| HttpError::Invalid(format!("header `{name}` has an invalid value")))?;
            headers.append(header_name, header_value);
            let shown = record_header(&name, value.redacted);
            record.request_headers.push((name, shown));
        }
        let (body, redacted_body) = match &request.body {
            RequestBody::Empty => (Vec::new(), Vec::new()),
            RequestBody::Bytes(b) => (b.clone(), b.clone()),
            RequestBody::Form(fields) => {
                let mut real = url::form_urlencoded::Serializer::new(String::new());
                let mut shown = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in fields {
                    let value = self.render(v, &origin).map_err(HttpError::Denied)?;
                    real.append_pair(k, &value.real);
                    shown.append_pair(k, &value.redacted);
                }
                if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
                    headers.insert(
                        reqwest::header::CONTENT_TYPE,
                        reqwest::header::HeaderValue::from_static(
                            "application/x-www-form-urlencoded",
                        ),
                    );
                    record.request_headers.push((
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                (real.finish().into_bytes(), shown.finish().into_bytes())
            }
        };
        record.request_body = RecordedBody::of(&redacted_body);

        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let mut timeout = self.policy.http_timeout.min(remaining);
        if let Some(ms) = request.timeout_ms {
            timeout = timeout.min(Duration::from_millis(u64::from(ms)));
        }
        if timeout.is_zero() {
            return Err(HttpError::Timeout);
        }
        record.outcome = ExchangeOutcome::Failed;
        let send = self
            .client
            .request(method, url)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send();
        let mut response = send.await.map_err(|e| {
            if e.is_timeout() {
                HttpError::Timeout
            } else {
                HttpError::Transport(self.scrub_text(&error_chain(&e)))
            }
        })?;
        let status = response.status().as_u16();
        record.status = Some(status);
        let mut response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    self.scrub_text(&String::from_utf8_lossy(v.as_bytes())),
                )
            })
            .collect();
        let cap = self.policy.max_response_bytes;
        let mut body = Vec::new();
        loop {
            let chunk = tokio::time::timeout_at(
                tokio::time::Instant::from_std(Instant::now() + timeout),
                response.chunk(),
            )
            .await
            .map_err(|_| HttpError::Timeout)?
            .map_err(|e| {
                if e.is_timeout() {
                    HttpError::Timeout
                } else {
                    HttpError::Transport(self.scrub_text(&error_chain(&e)))
                }
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > cap {
                return Err(HttpError::TooLarge(cap as u64));
            }
            body.extend_from_slice(&chunk);
        }
        let body = self.scrub_bytes(body);
        record.outcome = ExchangeOutcome::Sent;
        record.response_headers = response_headers.clone();
        record.response_body = Some(record_response_body(&body));
        response_headers.shrink_to_fit();
        Ok(HttpResponse {
            status,
            headers: response_headers,
            body,
        })
    }

    /// The forms in which a loaded secret could come back.
    fn needles(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in &self.loaded {
            let raw = value.expose();
            if raw.is_empty() {
                continue;
            }
            let marker = format!("[redacted:{name}]");
            out.push((raw.to_string(), marker.clone()));
            let encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            if encoded != raw {
                out.push((encoded, marker));
            }
        }
        out
    }

    fn scrub_text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (needle, marker) in self.needles() {
            out = out.replace(&needle, &marker);
        }
        out
    }

    fn scrub_bytes(&self, body: Vec<u8>) -> Vec<u8> {
        let mut out = body;
        for (needle, marker) in self.needles() {
            out = replace_bytes(&out, needle.as_bytes(), marker.as_bytes());
        }
        out
    }
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_bytes_replaces_every_occurrence() {
        assert_eq!(replace_bytes(b"aXbXXc", b"X", b"--"), b"a--b----c".to_vec());
        assert_eq!(replace_bytes(b"abc", b"abcd", b"z"), b"abc".to_vec());
    }

    #[test]
    fn vendor_issued_tokens_are_not_recorded() {
        assert_eq!(
            record_header("authorization", "Bearer eyJabc".into()),
            "Bearer [redacted]"
        );
        assert_eq!(
            record_header("authorization", "Bearer [secret:token]".into()),
            "Bearer [secret:token]"
        );
        assert_eq!(
            record_header("accept", "application/json".into()),
            "application/json"
        );
        let r = record_response_body(br#"{"access_token":"eyJ.abc","expires_in":1799}"#);
        assert!(!r.text.contains("eyJ.abc"), "{}", r.text);
        assert!(r.text.contains("1799"));
    }

    #[test]
    fn recorded_body_digests_what_it_cuts() {
        let big = vec![b'a'; RECORDED_BODY_BYTES + 1];
        let r = RecordedBody::of(&big);
        assert!(r.truncated);
        assert_eq!(r.text.len(), RECORDED_BODY_BYTES);
        assert_eq!(
            r.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(&big)).as_str())
        );
        assert!(RecordedBody::of(b"{}").sha256.is_none());
    }
}
