//! The seam between the SDK and its host: the real WIT imports inside wasm,
//! a thread-local [`MockHost`](crate::testing::MockHost) in native tests.

use crate::context::LogLevel;
use crate::http::{HttpError, Request, Response};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn http_request(request: Request) -> Result<Response, HttpError> {
    crate::testing::mock_http(request)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn config(key: &str) -> Option<String> {
    crate::testing::mock_config(key)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    crate::testing::mock_log(level, message, fields)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn http_request(request: Request) -> Result<Response, HttpError> {
    wasm::http_request(request)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn config(key: &str) -> Option<String> {
    crate::bindings::soar::plugin::host::config(key)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    wasm::log(level, message, fields)
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod wasm {
    //! Conversions between the SDK's plain types and the generated bindings.
    use super::*;
    use crate::bindings::soar::plugin::host as wit_host;
    use crate::bindings::soar::plugin::types as wit;
    use crate::error::{Error, ErrorKind, RetryAfter};
    use crate::http::{Body, Part, SecretOrText};
    use crate::manifest::{Plugin, TargetKind};
    use crate::Invocation;

    fn secret_or_text(v: SecretOrText) -> wit_host::SecretOrText {
        match v {
            SecretOrText::Text(t) => wit_host::SecretOrText::Text(t),
            SecretOrText::Secret(s) => wit_host::SecretOrText::Secret(s),
        }
    }

    fn parts(parts: Vec<Part>) -> Vec<wit_host::ValuePart> {
        parts
            .into_iter()
            .map(|p| match p {
                Part::Text(t) => wit_host::ValuePart::Text(t),
                Part::Secret(s) => wit_host::ValuePart::Secret(s),
                Part::Basic { username, password } => {
                    wit_host::ValuePart::Basic(wit_host::BasicAuth {
                        username: secret_or_text(username),
                        password: secret_or_text(password),
                    })
                }
            })
            .collect()
    }

    pub(crate) fn http_request(request: Request) -> Result<Response, HttpError> {
        let body = match request.body {
            Body::Empty => wit_host::RequestBody::Empty,
            Body::Bytes(b) => wit_host::RequestBody::Bytes(b),
            Body::Form(fields) => wit_host::RequestBody::Form(
                fields.into_iter().map(|(k, v)| (k, parts(v))).collect(),
            ),
        };
        let wit_request = wit_host::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|h| wit_host::Header {
                    name: h.name,
                    value: parts(h.value),
                })
                .collect(),
            body,
            timeout_ms: request.timeout_ms,
        };
        match wit_host::send(&wit_request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => Err(match e {
                wit_host::HttpError::Denied(m) => HttpError::Denied(m),
                wit_host::HttpError::Timeout => HttpError::Timeout,
                wit_host::HttpError::Transport(m) => HttpError::Transport(m),
                wit_host::HttpError::TooLarge(n) => HttpError::TooLarge(n),
                wit_host::HttpError::Invalid(m) => HttpError::Invalid(m),
            }),
        }
    }

    pub(crate) fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            LogLevel::Trace => wit_host::LogLevel::Trace,
            LogLevel::Debug => wit_host::LogLevel::Debug,
            LogLevel::Info => wit_host::LogLevel::Info,
            LogLevel::Warn => wit_host::LogLevel::Warn,
            LogLevel::Error => wit_host::LogLevel::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wit_host::log(level, message, &fields);
    }

    /// The WIT manifest of `plugin`.
    pub fn describe(plugin: &Plugin) -> wit::Manifest {
        let m = plugin.manifest();
        wit::Manifest {
            name: m.name,
            version: m.version,
            description: m.description,
            secrets: m.secrets,
            config_keys: m.config_keys,
            actions: m
                .actions
                .into_iter()
                .map(|a| wit::ActionManifest {
                    name: a.name,
                    description: a.description,
                    destructive: a.destructive,
                    idempotent: a.idempotent,
                    input_schema: a.input_schema.to_string(),
                    output_schema: a.output_schema.to_string(),
                    targets: a
                        .targets
                        .into_iter()
                        .map(|t| wit::TargetField {
                            field: t.field,
                            kind: match t.kind {
                                TargetKind::Host => wit::TargetKind::Host,
                                TargetKind::User => wit::TargetKind::User,
                                TargetKind::Ip => wit::TargetKind::Ip,
                                TargetKind::Domain => wit::TargetKind::Domain,
                            },
                        })
                        .collect(),
                    probe: a.probe,
                })
                .collect(),
        }
    }

    /// Runs an action for the WIT export.
    pub fn invoke(
        plugin: &Plugin,
        action: &str,
        input: &str,
        invocation: wit::Invocation,
    ) -> Result<String, wit::PluginError> {
        let invocation = Invocation {
            run_id: invocation.run_id,
            step_id: invocation.step_id,
            attempt: invocation.attempt,
            idempotency_key: invocation.idempotency_key,
            dry_run: invocation.dry_run,
        };
        plugin
            .invoke(action, input, invocation)
            .map_err(|Error { kind, message }| wit::PluginError {
                message,
                kind: match kind {
                    ErrorKind::InvalidInput => wit::ErrorKind::InvalidInput,
                    ErrorKind::Unauthorized => wit::ErrorKind::Unauthorized,
                    ErrorKind::NotFound => wit::ErrorKind::NotFound,
                    ErrorKind::Conflict => wit::ErrorKind::Conflict,
                    ErrorKind::RateLimited(after) => {
                        wit::ErrorKind::RateLimited(after.map(|a| match a {
                            RetryAfter::DelayMs(ms) => wit::RetryAfter::DelayMs(ms),
                            RetryAfter::AtUnixSeconds(s) => wit::RetryAfter::AtUnixSeconds(s),
                        }))
                    }
                    ErrorKind::Unavailable => wit::ErrorKind::Unavailable,
                    ErrorKind::Permanent => wit::ErrorKind::Permanent,
                    ErrorKind::Denied => wit::ErrorKind::Denied,
                },
            })
    }
}
