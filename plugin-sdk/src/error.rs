//! Typed errors: the runner retries `RateLimited` and `Unavailable` only, so
//! mapping a vendor answer to the right kind is a connector's main duty.

use crate::http::Response;

/// Result of an action.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When a rate-limited call may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfter {
    /// Relative delay.
    DelayMs(u64),
    /// Absolute Unix time in seconds; the host converts it with its own clock.
    AtUnixSeconds(u64),
}

/// The kind of failure (mirrors the WIT `error-kind`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input does not fit the action.
    InvalidInput,
    /// 401/403: credentials missing, wrong or insufficient.
    Unauthorized,
    /// 404: the object does not exist.
    NotFound,
    /// 409: conflicts with the object's current state.
    Conflict,
    /// 429: retry after the delay, if the vendor gave one.
    RateLimited(Option<RetryAfter>),
    /// Transient (timeouts, 5xx): retried.
    Unavailable,
    /// Will fail again the same way.
    Permanent,
    /// The host refused the request (host or secret not granted, dry-run).
    Denied,
}

/// A failed action: a kind the runner acts on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// The input does not fit the action.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// Credentials missing, wrong or insufficient.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }
    /// The object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// Conflicts with the object's current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    /// Too many requests.
    pub fn rate_limited(retry_after: Option<RetryAfter>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited(retry_after), message)
    }
    /// Transient failure.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// Will fail again the same way.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    /// Maps a non-success vendor answer to its kind: 400/422 invalid input,
    /// 401/403 unauthorized, 404 not found, 409 conflict, 429 rate limited
    /// (honouring `Retry-After` and `X-Rate-Limit-Reset`), 408 and 5xx
    /// unavailable, anything else permanent.
    pub fn from_response(response: &Response) -> Self {
        let status = response.status;
        let detail = snippet(&response.body);
        let message = format!("vendor answered HTTP {status}: {detail}");
        match status {
            400 | 422 => Self::invalid_input(message),
            401 | 403 => Self::unauthorized(message),
            404 => Self::not_found(message),
            409 => Self::conflict(message),
            429 => Self::rate_limited(retry_after(response), message),
            408 | 500..=599 => Self::unavailable(message),
            _ => Self::permanent(message),
        }
    }
}

/// Reads `Retry-After` (seconds or an HTTP date) or, failing that, the
/// `X-Rate-Limit-Reset` / `X-RateLimit-Reset` epoch-seconds headers.
pub fn retry_after(response: &Response) -> Option<RetryAfter> {
    if let Some(value) = response.header("retry-after") {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(RetryAfter::DelayMs(seconds.saturating_mul(1000)));
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            let secs = when
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return Some(RetryAfter::AtUnixSeconds(secs));
        }
    }
    ["x-rate-limit-reset", "x-ratelimit-reset"]
        .iter()
        .find_map(|name| response.header(name)?.trim().parse::<u64>().ok())
        .map(RetryAfter::AtUnixSeconds)
}

/// The first bytes of a vendor body, for error messages.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}
