//! HTTP through the host: a request builder with secret placeholders, and
//! the vendor's answer. Secrets are named, never held: see [`Part::Secret`].

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;

/// A secret or plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrText {
    /// Sent as is.
    Text(String),
    /// The named secret's value, filled in by the host.
    Secret(String),
}

/// A piece of a header value or form field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Sent as is.
    Text(String),
    /// The named secret's value, filled in by the host only for hosts the
    /// operator granted that secret to.
    Secret(String),
    /// `Basic base64(username:password)`, built by the host.
    Basic {
        /// User name.
        username: SecretOrText,
        /// Password.
        password: SecretOrText,
    },
}

/// A request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Concatenated by the host.
    pub value: Vec<Part>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// Raw bytes (JSON and the like).
    Bytes(Vec<u8>),
    /// `application/x-www-form-urlencoded`, encoded by the host.
    Form(Vec<(String, Vec<Part>)>),
}

/// An HTTP request a connector asks the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// Absolute URL; its origin must be granted to the connector.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Body.
    pub body: Body,
    /// Per-request timeout, capped by the host.
    pub timeout_ms: Option<u32>,
}

/// Failures of the host's HTTP function (before any vendor status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Refused by the host; nothing was sent.
    Denied(String),
    /// No answer in time.
    Timeout,
    /// Connection, TLS or protocol failure.
    Transport(String),
    /// The body exceeded the host's cap.
    TooLarge(u64),
    /// Malformed request.
    Invalid(String),
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(m) => Error::new(crate::ErrorKind::Denied, m),
            HttpError::Timeout => Error::unavailable("vendor did not answer in time"),
            HttpError::Transport(m) => Error::unavailable(format!("transport error: {m}")),
            HttpError::TooLarge(n) => {
                Error::permanent(format!("vendor response exceeded the {n}-byte cap"))
            }
            HttpError::Invalid(m) => Error::permanent(format!("invalid request: {m}")),
        }
    }
}

/// The vendor's answer (secrets it echoed are already scrubbed by the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a JSON body (handy for canned answers in tests).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A response with a raw body.
    pub fn bytes(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header (for canned answers).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// First header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when 2xx, else the typed error for its status.
    pub fn error_for_status(self) -> Result<Self> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::from_response(&self))
        }
    }

    /// Parses the body as JSON; a malformed body is a permanent error that
    /// names what was expected.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::permanent(format!(
                "vendor answered HTTP {} with a body that is not the expected JSON: {e}",
                self.status
            ))
        })
    }
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
            timeout_ms: None,
        }
    }
    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }
    /// `PATCH url`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }
    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// A plain header.
    pub fn header(self, name: &str, value: impl Into<String>) -> Self {
        self.header_parts(name, vec![Part::Text(value.into())])
    }

    /// A header built from parts (text and secrets).
    pub fn header_parts(mut self, name: &str, value: Vec<Part>) -> Self {
        self.headers.push(Header {
            name: name.to_string(),
            value,
        });
        self
    }

    /// A header whose whole value is the named secret (`x-apikey: {secret}`).
    pub fn secret_header(self, name: &str, secret: &str) -> Self {
        self.header_parts(name, vec![Part::Secret(secret.to_string())])
    }

    /// `Authorization: Bearer {secret}`.
    pub fn bearer_secret(self, secret: &str) -> Self {
        self.header_parts(
            "authorization",
            vec![Part::Text("Bearer ".into()), Part::Secret(secret.into())],
        )
    }

    /// `Authorization: Bearer {token}` with a token the connector holds
    /// (for example an OAuth2 access token the vendor issued during this call).
    pub fn bearer_token(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// `Authorization: Basic ...`, built by the host from secrets or text.
    pub fn basic_auth(self, username: SecretOrText, password: SecretOrText) -> Self {
        self.header_parts("authorization", vec![Part::Basic { username, password }])
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        // Serializing our own plain data types cannot fail.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.body = Body::Bytes(bytes);
        self.header("content-type", "application/json")
    }

    /// A form body; values may name secrets (`client_secret`).
    pub fn form(mut self, fields: Vec<(&str, Part)>) -> Self {
        self.body = Body::Form(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), vec![v]))
                .collect(),
        );
        self
    }

    /// Per-request timeout (the host may shorten it).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sends through the host. A host refusal or transport failure becomes a
    /// typed error; any HTTP status is returned as a [`Response`].
    pub fn send(self) -> Result<Response> {
        crate::transport::http_request(self).map_err(Error::from)
    }

    /// Sends and requires a 2xx answer with a JSON body of type `T`.
    pub fn send_json<T: DeserializeOwned>(self) -> Result<T> {
        self.send()?.error_for_status()?.json_body()
    }
}

/// Percent-encodes one URL path segment or query value.
pub fn encode(value: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(value, KEEP).to_string()
}

/// Joins a configured base URL and a path without doubling slashes.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}
