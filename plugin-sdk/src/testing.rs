//! Native unit tests for connectors, without wasm: canned vendor answers,
//! config values, and a record of what the connector sent.
//!
//! ```
//! use soar_plugin_sdk::testing::MockHost;
//! use soar_plugin_sdk::http::{Request, Response};
//! let mock = MockHost::new()
//!     .respond("GET", "https://vendor.test/x", Response::json(200, &soar_plugin_sdk::json!({"ok": true})));
//! let (status, mock) = mock.run(|| Request::get("https://vendor.test/x").send().unwrap().status);
//! assert_eq!(status, 200);
//! assert_eq!(mock.requests().len(), 1);
//! ```

use crate::context::LogLevel;
use crate::http::{Body, HttpError, Part, Request, Response, SecretOrText};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

/// A request as the vendor would have seen it, with secrets shown as
/// `{{secret:NAME}}` so tests can assert where they were placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Headers with secret placeholders rendered.
    pub headers: Vec<(String, String)>,
    /// Body (form bodies url-encoded, secrets as placeholders).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One log line a connector wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Level.
    pub level: LogLevel,
    /// Message.
    pub message: String,
}

/// Canned host for native tests.
#[derive(Debug, Default)]
pub struct MockHost {
    routes: BTreeMap<(String, String), VecDeque<Result<Response, HttpError>>>,
    config: BTreeMap<String, String>,
    requests: Vec<RecordedRequest>,
    logs: Vec<LogLine>,
}

thread_local! {
    static CURRENT: RefCell<Option<MockHost>> = const { RefCell::new(None) };
}

fn render(parts: &[Part]) -> String {
    fn one(v: &SecretOrText) -> String {
        match v {
            SecretOrText::Text(t) => t.clone(),
            SecretOrText::Secret(s) => format!("{{{{secret:{s}}}}}"),
        }
    }
    parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.clone(),
            Part::Secret(s) => format!("{{{{secret:{s}}}}}"),
            Part::Basic { username, password } => {
                format!("Basic {}:{}", one(username), one(password))
            }
        })
        .collect()
}

impl MockHost {
    /// An empty host: every request is refused until answers are queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// A config value the connector can read.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Queues an answer for `METHOD url` (exact URL, query included). Several
    /// answers for one route are served in order; the last one repeats.
    pub fn respond(self, method: &str, url: &str, response: Response) -> Self {
        self.respond_with(method, url, Ok(response))
    }

    /// Queues a host-level failure (timeout, denial...) for `METHOD url`.
    pub fn fail(self, method: &str, url: &str, error: HttpError) -> Self {
        self.respond_with(method, url, Err(error))
    }

    fn respond_with(
        mut self,
        method: &str,
        url: &str,
        answer: Result<Response, HttpError>,
    ) -> Self {
        self.routes
            .entry((method.to_ascii_uppercase(), url.to_string()))
            .or_default()
            .push_back(answer);
        self
    }

    /// Requests the connector sent, in order.
    pub fn requests(&self) -> &[RecordedRequest] {
        &self.requests
    }

    /// Log lines the connector wrote.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// Runs `f` with this host installed for the current thread and returns
    /// its result and the host (with the recorded requests).
    pub fn run<R>(self, f: impl FnOnce() -> R) -> (R, MockHost) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self));
        let result = f();
        let host = CURRENT.with(|c| c.borrow_mut().take()).unwrap_or_default();
        (result, host)
    }
}

fn with_current<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let host = c
            .as_mut()
            .expect("no MockHost installed: wrap the call in MockHost::run");
        f(host)
    })
}

pub(crate) fn mock_http(request: Request) -> Result<Response, HttpError> {
    with_current(|host| {
        let body = match &request.body {
            Body::Empty => Vec::new(),
            Body::Bytes(b) => b.clone(),
            Body::Form(fields) => fields
                .iter()
                .map(|(k, v)| format!("{}={}", crate::http::encode(k), render(v)))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes(),
        };
        host.requests.push(RecordedRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), render(&h.value)))
                .collect(),
            body,
        });
        let key = (request.method.clone(), request.url.clone());
        match host.routes.get_mut(&key) {
            Some(queue) if queue.len() > 1 => queue.pop_front().expect("non-empty"),
            Some(queue) => queue.front().cloned().expect("non-empty"),
            None => Err(HttpError::Denied(format!(
                "MockHost has no answer for {} {}",
                request.method, request.url
            ))),
        }
    })
}

pub(crate) fn mock_config(key: &str) -> Option<String> {
    with_current(|host| host.config.get(key).cloned())
}

pub(crate) fn mock_log(level: LogLevel, message: &str, _fields: &[(&str, &str)]) {
    with_current(|host| {
        host.logs.push(LogLine {
            level,
            message: message.to_string(),
        })
    })
}
