//! Typed errors of the plugin host: loading a plugin, and one invocation.

use crate::yaml::Pos;
use serde::Serialize;
use std::path::PathBuf;

/// A plugin could not be loaded; names the config file and key to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component file is missing or unreadable.
    #[error("{}:{}:{}: `plugins.{plugin}.path`: cannot read `{}`: {reason}", config.display(), pos.line, pos.column, path.display())]
    File {
        /// Config file.
        config: PathBuf,
        /// Where the path was set.
        pos: Pos,
        /// Plugin name.
        plugin: String,
        /// The component file.
        path: PathBuf,
        /// OS error.
        reason: String,
    },
    /// The file's digest differs from the pin: tampered or swapped.
    #[error("{}:{}:{}: `plugins.{plugin}.sha256`: `{}` has SHA-256 {actual}, but the config pins {expected}; refusing a tampered or swapped plugin", config.display(), pos.line, pos.column, path.display())]
    DigestMismatch {
        /// Config file.
        config: PathBuf,
        /// Where the pin was set.
        pos: Pos,
        /// Plugin name.
        plugin: String,
        /// The component file.
        path: PathBuf,
        /// Pinned digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// Not a valid component, or compilation failed.
    #[error("plugin `{plugin}` (`{}`) is not a valid WebAssembly component: {reason}", path.display())]
    Compile {
        /// Plugin name.
        plugin: String,
        /// The component file.
        path: PathBuf,
        /// Compiler message.
        reason: String,
    },
    /// It imports something the sandbox does not provide (files, sockets...).
    #[error("plugin `{plugin}` imports capabilities soar does not grant (plugins get no filesystem, sockets, clocks or environment beyond what the host offers): {reason}")]
    ForbiddenImport {
        /// Plugin name.
        plugin: String,
        /// Linker message naming the import.
        reason: String,
    },
    /// `describe()` failed or returned an inconsistent manifest.
    #[error("plugin `{plugin}` has an invalid manifest: {reason}")]
    Manifest {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The engine itself could not start (pool reservation, for example).
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

/// The kind of a connector's own error (mirrors the WIT `error-kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input does not fit the action.
    InvalidInput,
    /// 401/403.
    Unauthorized,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 429; delay the host computed from the vendor's hint.
    RateLimited {
        /// Milliseconds to wait, when known.
        retry_after_ms: Option<u64>,
    },
    /// Transient.
    Unavailable,
    /// Will fail again.
    Permanent,
    /// The host refused a request.
    Denied,
}

impl ErrorKind {
    /// Stable snake_case name, used in CLI output and exit messages.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Denied => "denied",
        }
    }

    /// Whether the runner may retry it.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ErrorKind::RateLimited { .. } | ErrorKind::Unavailable)
    }
}

/// Something the plugin did that the host refused, failing the invocation
/// whatever the plugin returns: a state-changing request from a read-only
/// action, a cap on requests, logs or output, a secret in its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRefusal {
    /// Stable kind: `denied`, `request_limit`, `log_limit`, `output_limit`,
    /// `secret_in_output`.
    pub kind: &'static str,
    /// What the operator reads, starting with the kind.
    pub message: String,
}

/// Why one invocation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The plugin is configured but failed to load or describe itself.
    #[error("plugin_unavailable: plugin `{plugin}` failed to load: {reason}")]
    PluginUnavailable {
        /// Plugin.
        plugin: String,
        /// The load error.
        reason: String,
    },
    /// The host refused what the plugin did (see [`HostRefusal`]).
    #[error("{}", .0.message)]
    Refused(HostRefusal),
    /// No plugin of that name is configured.
    #[error("no plugin named `{0}` is configured")]
    UnknownPlugin(String),
    /// The plugin has no such action.
    #[error("plugin `{plugin}` has no action `{action}` (see `soar plugins inspect {plugin}`)")]
    UnknownAction {
        /// Plugin.
        plugin: String,
        /// Action.
        action: String,
    },
    /// The input fails the action's schema (checked before invoking).
    #[error("input does not match the schema of `{action}`:\n  {}", problems.join("\n  "))]
    InvalidInput {
        /// Action.
        action: String,
        /// Every schema violation.
        problems: Vec<String>,
    },
    /// The connector returned a typed error.
    #[error("{}: {message}", kind.name())]
    Plugin {
        /// Kind.
        kind: ErrorKind,
        /// Connector's message.
        message: String,
    },
    /// The invocation ran past its deadline (CPU loop or slow host calls).
    #[error("timeout: the plugin did not finish within {limit_ms} ms and was stopped")]
    Timeout {
        /// The deadline.
        limit_ms: u64,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("memory_limit: the plugin tried to grow its memory to {requested} bytes, over its {limit} byte cap, and was stopped")]
    MemoryLimit {
        /// Cap in bytes.
        limit: usize,
        /// What it asked for.
        requested: usize,
    },
    /// A trap: panic, `unreachable`, out-of-bounds access...
    #[error("trap: the plugin crashed: {message}")]
    Trap {
        /// Trap description and the plugin's last stderr lines (a panic message).
        message: String,
    },
    /// The connector returned something that is not JSON.
    #[error("bad_output: the plugin returned output that is not JSON: {0}")]
    BadOutput(String),
}

impl InvokeError {
    /// Stable snake_case kind for CLI output and the journal.
    pub fn kind_name(&self) -> &'static str {
        match self {
            InvokeError::UnknownPlugin(_) => "unknown_plugin",
            InvokeError::PluginUnavailable { .. } => "plugin_unavailable",
            InvokeError::Refused(r) => r.kind,
            InvokeError::UnknownAction { .. } => "unknown_action",
            InvokeError::InvalidInput { .. } => "invalid_input",
            InvokeError::Plugin { kind, .. } => kind.name(),
            InvokeError::Timeout { .. } => "timeout",
            InvokeError::MemoryLimit { .. } => "memory_limit",
            InvokeError::Trap { .. } => "trap",
            InvokeError::BadOutput(_) => "bad_output",
        }
    }
}
