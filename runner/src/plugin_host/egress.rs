//! Every HTTP request a plugin makes: checked against the operator's grants,
//! secrets filled in only for the origins granted for them, sent with
//! `reqwest`, echoed secrets scrubbed from the answer, and recorded (with
//! secrets redacted) for the journal.

use super::bindings::soar::plugin::host::{
    BasicAuth, HttpError, HttpRequest, HttpResponse, RequestBody, SecretOrText, ValuePart,
};
use super::error::HostRefusal;
use super::scrub::Scrubber;
use crate::config::{Limits, Origin, RequestRule, SecretGrant};
use crate::secrets::SecretValue;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of a request URL kept in its record (the cap on what is sent is
/// the operator's `max_url_bytes`).
const RECORDED_URL_BYTES: usize = 1024;

/// Headers a client may use to ask a server to treat a request as another
/// method: a GET carrying one is a POST in disguise.
const METHOD_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What the invocation's requests may do, decided by the host from the
/// action's effective flags and the invocation, never by the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A destructive action acting for real: any method.
    Act,
    /// A non-destructive action: GET and HEAD, plus `read_only_allow`.
    ReadOnly,
    /// A plan: GET and HEAD, plus `dry_run_allow`.
    DryRun,
}

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
    pub dry_run_allow: Vec<RequestRule>,
    /// Non-GET requests a non-destructive action may send.
    pub read_only_allow: Vec<RequestRule>,
    /// The host's caps.
    pub limits: Limits,
    /// The scrubber of the secret values last loaded, reused while they
    /// are unchanged (building one costs more than a no-op invocation).
    pub scrub_cache: Mutex<Option<CachedScrubber>>,
}

/// When the scrubber's secret values were read, the values, and the
/// scrubber built from them.
pub type CachedScrubber = (Instant, Vec<(String, String)>, Arc<Scrubber>);

/// How long secret values read for scrubbing are reused before they are
/// read again (a secret file may be rotated). Reading them on every
/// invocation cost a third of a no-op invocation; a value a request loads
/// that the scrubber does not know refreshes it at once (see `Egress::secret`).
const SCRUB_REFRESH: Duration = Duration::from_secs(1);

impl EgressPolicy {
    /// A scrubber of every secret granted to the plugin, as they are now,
    /// plus the Basic-auth pairs this invocation built.
    fn scrubber(&self, basic_pairs: &[(String, String)], fresh: bool) -> Arc<Scrubber> {
        let mut cache = self.scrub_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, _, scrubber)) = cache.as_ref() {
            if !fresh && basic_pairs.is_empty() && at.elapsed() < SCRUB_REFRESH {
                return Arc::clone(scrubber);
            }
        }
        let values: Vec<(String, String)> = self
            .secrets
            .iter()
            .filter_map(|(name, g)| {
                let v = g.source.load().ok()?;
                Some((name.clone(), v.expose().to_string()))
            })
            .collect();
        if !basic_pairs.is_empty() {
            return Arc::new(Scrubber::new(&values, basic_pairs));
        }
        let scrubber = match cache.as_ref() {
            Some((_, cached, scrubber)) if *cached == values => Arc::clone(scrubber),
            _ => Arc::new(Scrubber::new(&values, &[])),
        };
        *cache = Some((Instant::now(), values, Arc::clone(&scrubber)));
        scrubber
    }

    /// Whether the cached scrubber was built from `value` for `name`.
    fn knows(&self, name: &str, value: &str) -> bool {
        let cache = self.scrub_cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .as_ref()
            .is_some_and(|(_, values, _)| values.iter().any(|(n, v)| n == name && v == value))
    }
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
    mode: Mode,
    deadline: Instant,
    /// Secret values loaded during this invocation for its requests.
    loaded: Vec<(String, SecretValue)>,
    /// `user:password` pairs of Basic headers built here (their base64 is
    /// one more form a secret may come back in), by secret name.
    basic_pairs: Vec<(String, String)>,
    scrubber: Option<Arc<Scrubber>>,
    /// A request loaded a secret value the cached scrubber does not know.
    stale: bool,
    /// What was sent, in order (capped; see `dropped`).
    pub exchanges: Vec<HttpExchange>,
    requests: usize,
    refused: usize,
    dropped: usize,
    /// The first thing the plugin did that fails its invocation whatever it
    /// returns (a state-changing request from a read-only action, a cap).
    pub violation: Option<HostRefusal>,
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
        mode: Mode,
        deadline: Instant,
    ) -> Self {
        Self {
            policy,
            client,
            mode,
            deadline,
            loaded: Vec::new(),
            basic_pairs: Vec::new(),
            scrubber: None,
            stale: false,
            exchanges: Vec::new(),
            requests: 0,
            refused: 0,
            dropped: 0,
            violation: None,
        }
    }

    /// The scrubber of every granted secret (loaded on first use).
    pub fn scrubber(&mut self) -> Arc<Scrubber> {
        if let Some(s) = &self.scrubber {
            return Arc::clone(s);
        }
        let s = self.policy.scrubber(&self.basic_pairs, self.stale);
        self.stale = false;
        self.scrubber = Some(Arc::clone(&s));
        s
    }

    /// What the host did not keep, for the attempt's record.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.refused > 0 {
            out.push(format!("{} request(s) refused", self.refused));
        }
        if self.dropped > 0 {
            out.push(format!(
                "{} exchange record(s) not kept (caps: {} records, {} refused)",
                self.dropped,
                self.policy.limits.max_exchange_records,
                self.policy.limits.max_refused_records
            ));
        }
        out
    }

    fn refuse(&mut self, kind: &'static str, message: String) {
        if self.violation.is_none() {
            self.violation = Some(HostRefusal { kind, message });
        }
    }

    fn push_record(&mut self, record: HttpExchange) {
        if record.outcome == ExchangeOutcome::Denied {
            self.refused += 1;
            if self.refused > self.policy.limits.max_refused_records {
                self.dropped += 1;
                return;
            }
        }
        if self.exchanges.len() >= self.policy.limits.max_exchange_records {
            self.dropped += 1;
            return;
        }
        self.exchanges.push(record);
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
        if !self.policy.knows(name, &text) {
            // Rotated since the scrubber read it: never scrub with the old one.
            self.stale = true;
            self.scrubber = None;
        }
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
                    let pair = format!("{}:{}", u.real, p.real);
                    let name = match (username, password) {
                        (_, SecretOrText::Secret(n)) | (SecretOrText::Secret(n), _) => n.clone(),
                        _ => String::new(),
                    };
                    if !name.is_empty() {
                        self.basic_pairs.push((name, pair.clone()));
                        self.scrubber = None;
                    }
                    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
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
        let scrubber = self.scrubber();
        let mut record = HttpExchange {
            method: shorten(&request.method.to_ascii_uppercase(), 32),
            url: shorten(
                &scrubber.scrub_text(&shorten(&request.url, RECORDED_URL_BYTES + 256)),
                RECORDED_URL_BYTES,
            ),
            outcome: ExchangeOutcome::Denied,
            error: None,
            status: None,
            duration_ms: 0,
            request_headers: Vec::new(),
            request_body: RecordedBody::of(&[]),
            response_headers: Vec::new(),
            response_body: None,
        };
        self.requests += 1;
        let result = if self.requests > self.policy.limits.max_requests {
            let message = format!(
                "request_limit: the plugin sent more than {} requests in one invocation",
                self.policy.limits.max_requests
            );
            self.refuse("request_limit", message.clone());
            Err(HttpError::Denied(message))
        } else {
            self.send_inner(request, &mut record, &scrubber).await
        };
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
            if record.outcome == ExchangeOutcome::Denied && self.refused < 3 {
                tracing::warn!(plugin = %self.policy.plugin, method = %record.method, url = %record.url, reason = %msg, "plugin request refused");
            }
            record.outcome = outcome;
            record.error = Some(msg);
        }
        self.push_record(record);
        result
    }

    /// Refuses, before anything is parsed or allocated for it, a request
    /// larger than the host's caps.
    fn check_size(&self, request: &HttpRequest) -> Result<(), HttpError> {
        let limits = &self.policy.limits;
        if request.url.len() > limits.max_url_bytes {
            return Err(HttpError::Invalid(format!(
                "the URL has {} bytes, over the {}-byte cap (limits.max_url_bytes)",
                request.url.len(),
                limits.max_url_bytes
            )));
        }
        if request.headers.len() > limits.max_headers {
            return Err(HttpError::Invalid(format!(
                "{} headers, over the cap of {} (limits.max_headers)",
                request.headers.len(),
                limits.max_headers
            )));
        }
        let bytes: usize = request
            .headers
            .iter()
            .map(|h| {
                h.name.len()
                    + h.value
                        .iter()
                        .map(|p| match p {
                            ValuePart::Text(t) | ValuePart::Secret(t) => t.len(),
                            ValuePart::Basic(_) => 64,
                        })
                        .sum::<usize>()
            })
            .sum();
        if bytes > limits.max_header_bytes {
            return Err(HttpError::Invalid(format!(
                "the headers have {bytes} bytes, over the {}-byte cap (limits.max_header_bytes)",
                limits.max_header_bytes
            )));
        }
        Ok(())
    }

    /// Whether the invocation's mode lets this request leave: the host's
    /// rule, whatever the action's manifest says about itself.
    fn check_effect(
        &self,
        method: &reqwest::Method,
        url: &url::Url,
        request: &HttpRequest,
    ) -> Result<(), String> {
        let (rules, key, what) = match self.mode {
            Mode::Act => return Ok(()),
            Mode::ReadOnly => (
                &self.policy.read_only_allow,
                "read_only_allow",
                "a non-destructive action",
            ),
            Mode::DryRun => (&self.policy.dry_run_allow, "dry_run_allow", "a dry run"),
        };
        if let Some(h) = request
            .headers
            .iter()
            .find(|h| METHOD_OVERRIDE_HEADERS.contains(&h.name.to_ascii_lowercase().as_str()))
        {
            return Err(format!(
                "{what} may not send the method-override header `{}`",
                h.name.to_ascii_lowercase()
            ));
        }
        let listed = rules.iter().any(|r| r.matches(method.as_str(), url));
        let safe = *method == reqwest::Method::GET || *method == reqwest::Method::HEAD;
        let has_body = !matches!(&request.body, RequestBody::Empty)
            && !matches!(&request.body, RequestBody::Bytes(b) if b.is_empty());
        if listed {
            return Ok(());
        }
        if !safe {
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            };
            return Err(format!(
                "{method} {} was not sent: {what} may send only GET and HEAD (and what the operator lists in `{key}`)",
                shorten(&target, 256)
            ));
        }
        if has_body {
            return Err(format!(
                "{method} with a body was not sent: {what} may not send a request body unless the operator lists it in `{key}`"
            ));
        }
        Ok(())
    }

    async fn send_inner(
        &mut self,
        request: HttpRequest,
        record: &mut HttpExchange,
        scrubber: &Scrubber,
    ) -> Result<HttpResponse, HttpError> {
        self.check_size(&request)?;
        let url = url::Url::parse(&request.url)
            .map_err(|e| HttpError::Invalid(format!("`{}` is not a URL: {e}", record.url)))?;
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
        if let Err(message) = self.check_effect(&method, &url, &request) {
            self.refuse("denied", format!("denied: {message}"));
            return Err(HttpError::Denied(message));
        }
        // A secret in the plugin's own text (one it decoded from an echo)
        // goes nowhere its grant does not name.
        if let Some(name) = self.smuggled_secret(&request, &origin, scrubber) {
            let message = format!(
                "the request carries secret `{name}` (in plain text or an encoding) to {origin}, where it is not granted"
            );
            self.refuse("denied", format!("denied: {message}"));
            return Err(HttpError::Denied(message));
        }

        // Render everything before sending anything: a refused secret stops the
        // whole request, not just one header.
        let mut headers = reqwest::header::HeaderMap::new();
        for h in &request.headers {
            let name = h.name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Err(HttpError::Invalid(format!(
                    "header `{}` is set by the host",
                    shorten(&name, 64)
                )));
            }
            let value = self.render(&h.value, &origin).map_err(HttpError::Denied)?;
            let header_name =
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    HttpError::Invalid(format!("`{}` is not a header name", shorten(&name, 64)))
                })?;
            let header_value = reqwest::header::HeaderValue::from_str(&value.real)
                .map_err(|_| HttpError::Invalid(format!("header `{name}` has an invalid value")))?;
            headers
                .try_append(header_name, header_value)
                .map_err(|_| HttpError::Invalid("too many headers".into()))?;
            let shown = scrubber.scrub_text(&record_header(&name, value.redacted));
            record.request_headers.push((name, shown));
        }
        let (body, redacted_body) = match &request.body {
            RequestBody::Empty => (Vec::new(), Vec::new()),
            RequestBody::Bytes(b) => (b.clone(), scrubber.scrub_bytes(b)),
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
                let shown = scrubber.scrub_text(&shown.finish());
                (real.finish().into_bytes(), shown.into_bytes())
            }
        };
        record.request_body = RecordedBody::of(&redacted_body);
        // A Basic header built just now adds its pair to what is scrubbed
        // from this very answer.
        let fresh = self.scrubber();
        let scrubber: &Scrubber = &fresh;

        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let mut timeout = self.policy.limits.http_timeout.min(remaining);
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
                HttpError::Transport(scrubber.scrub_text(&error_chain(&e)))
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
                    scrubber.scrub_text(&String::from_utf8_lossy(v.as_bytes())),
                )
            })
            .collect();
        let cap = self.policy.limits.max_response_bytes;
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
                    HttpError::Transport(scrubber.scrub_text(&error_chain(&e)))
                }
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > cap {
                return Err(HttpError::TooLarge(cap as u64));
            }
            body.extend_from_slice(&chunk);
        }
        let body = scrubber.scrub_bytes(&body);
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

    /// A granted secret that the plugin's own text (URL, header text, body)
    /// carries to an origin the secret is not granted for.
    fn smuggled_secret(
        &self,
        request: &HttpRequest,
        origin: &Origin,
        scrubber: &Scrubber,
    ) -> Option<String> {
        if scrubber.is_empty() {
            return None;
        }
        let granted_here = |name: &str| {
            self.policy
                .secrets
                .get(name)
                .is_some_and(|g| g.hosts.contains(origin))
        };
        let mut texts: Vec<&[u8]> = vec![request.url.as_bytes()];
        for h in &request.headers {
            for part in &h.value {
                if let ValuePart::Text(t) = part {
                    texts.push(t.as_bytes());
                }
            }
        }
        match &request.body {
            RequestBody::Empty => {}
            RequestBody::Bytes(b) => texts.push(b),
            RequestBody::Form(fields) => {
                for (k, parts) in fields {
                    texts.push(k.as_bytes());
                    for part in parts {
                        if let ValuePart::Text(t) = part {
                            texts.push(t.as_bytes());
                        }
                    }
                }
            }
        }
        texts.into_iter().find_map(|t| {
            scrubber
                .find(t)
                .filter(|n| !granted_here(n))
                .map(str::to_string)
        })
    }
}

/// At most `max` bytes of `text` (on a character boundary), marked when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &text[..end], text.len())
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
