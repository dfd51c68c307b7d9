//! What an action sees of its invocation: ids, the idempotency key, dry-run,
//! the operator's config values and a structured log.

use crate::error::{Error, Result};

/// Why the runner invoked the action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across retries and resumes: send it to the vendor where it
    /// accepts one, or tag created objects with it.
    pub idempotency_key: String,
    /// Plan only: the host sends only GET and HEAD.
    pub dry_run: bool,
}

impl Invocation {
    /// An invocation for tests and `soar plugins call`.
    pub fn for_test(idempotency_key: &str) -> Self {
        Self {
            run_id: "test-run".into(),
            step_id: "test-step".into(),
            attempt: 1,
            idempotency_key: idempotency_key.into(),
            dry_run: false,
        }
    }
}

/// Log levels (mirrors the WIT `log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Handed to every action.
#[derive(Debug, Clone)]
pub struct Context {
    /// The invocation.
    pub invocation: Invocation,
}

impl Context {
    /// The invocation's idempotency key.
    pub fn idempotency_key(&self) -> &str {
        &self.invocation.idempotency_key
    }

    /// True when the runner only wants a plan.
    pub fn dry_run(&self) -> bool {
        self.invocation.dry_run
    }

    /// A required config value; missing is a permanent error naming the key.
    pub fn config(&self, key: &str) -> Result<String> {
        self.config_opt(key).ok_or_else(|| {
            Error::permanent(format!(
                "config key `{key}` is not set for this connector in soar.yaml"
            ))
        })
    }

    /// An optional config value.
    pub fn config_opt(&self, key: &str) -> Option<String> {
        crate::transport::config(key)
    }

    /// A structured log line, tagged by the host with run, step and connector.
    pub fn log(&self, level: LogLevel, message: &str, fields: &[(&str, &str)]) {
        crate::transport::log(level, message, fields)
    }
}
