//! One invocation's store: an empty WASI context (no files, env, args,
//! sockets or clocks), captured stdio, a memory limiter, and the host
//! functions of the WIT contract.

use super::bindings::soar::plugin::host::{
    self as wit_host, HttpError, HttpRequest, HttpResponse, LogLevel,
};
use super::bindings::Plugin;
use super::egress::Egress;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of stdout/stderr kept from one invocation (a panic message fits).
const STDIO_CAPTURE: usize = 64 * 1024;

/// A log line a plugin wrote, tagged by the host.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct PluginLog {
    /// `trace`..`error`.
    pub level: &'static str,
    /// Message.
    pub message: String,
    /// Structured fields.
    pub fields: BTreeMap<String, String>,
}

impl PluginLog {
    /// A line the host adds about the invocation (what it refused or did
    /// not keep), marked `from: host` so nobody takes it for the plugin's.
    pub fn host(message: String) -> Self {
        Self {
            level: "warn",
            message,
            fields: BTreeMap::from([("from".to_string(), "host".to_string())]),
        }
    }
}

/// Bytes of one log message or field kept.
const LOG_TEXT_BYTES: usize = 4096;

/// What the host keeps of a plugin's logs in one invocation.
struct LogBudget {
    records: usize,
    fields: usize,
    bytes: usize,
    used_bytes: usize,
}

/// Tracks memory growth against the cap and remembers a refusal, so a
/// resulting trap can be reported as "memory limit" rather than a crash.
pub struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) refused: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one invocation's `Store`.
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) egress: Egress,
    config: Arc<BTreeMap<String, String>>,
    plugin: Arc<str>,
    pub(crate) logs: Vec<PluginLog>,
    pub(crate) stderr: MemoryOutputPipe,
    budget: LogBudget,
    /// A cap the plugin's logging broke (fails the invocation).
    pub(crate) violation: Option<super::HostRefusal>,
}

impl SandboxState {
    /// A fresh state: nothing inherited from the runner's process.
    pub fn new(
        plugin: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        egress: Egress,
        limits: &crate::config::Limits,
    ) -> Self {
        let memory_limit = limits.memory_bytes;
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE);
        // Deliberately empty: no preopened dirs, no env, no args, no stdin.
        let wasi = WasiCtx::builder()
            // What a plugin prints is discarded; its panic message goes to stderr.
            .stdout(MemoryOutputPipe::new(STDIO_CAPTURE))
            .stderr(stderr.clone())
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit: memory_limit,
                refused: None,
            },
            egress,
            config,
            plugin,
            logs: Vec::new(),
            stderr,
            budget: LogBudget {
                records: limits.max_log_records,
                fields: limits.max_log_fields,
                bytes: limits.max_log_bytes,
                used_bytes: 0,
            },
            violation: None,
        }
    }

    fn log_refused(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(super::HostRefusal {
                kind: "log_limit",
                message: format!("log_limit: {message}"),
            });
        }
    }

    /// The last lines the plugin wrote to stderr (its panic message, usually).
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_host::Host for SandboxState {
    async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.egress.send(request).await
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }

    fn log(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        // Bounded so a chatty plugin cannot grow the runner's memory or
        // the journal: the first lines within the budget are kept, and
        // going over it fails the invocation.
        if self.violation.is_some() {
            return Ok(());
        }
        let b = &self.budget;
        if self.logs.len() >= b.records {
            let n = b.records;
            self.log_refused(format!(
                "more than {n} log records in one invocation (limits.max_log_records)"
            ));
            return Ok(());
        }
        if fields.len() > b.fields {
            let (got, n) = (fields.len(), b.fields);
            self.log_refused(format!(
                "a log record with {got} fields, over the cap of {n} (limits.max_log_fields)"
            ));
            return Ok(());
        }
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if b.used_bytes + size > b.bytes {
            let n = b.bytes;
            self.log_refused(format!(
                "more than {n} bytes of logs in one invocation (limits.max_log_bytes)"
            ));
            return Ok(());
        }
        self.budget.used_bytes += size;
        // Scrubbed here, before the runner's own log line: a secret the
        // plugin decoded must reach neither the journal nor stderr.
        let scrubber = self.egress.scrubber();
        let keep = |text: &str, max| scrubber.scrub_text(&super::egress::shorten(text, max));
        let message = keep(&message, LOG_TEXT_BYTES);
        tracing::debug!(plugin = %self.plugin, level, %message, "plugin log");
        self.logs.push(PluginLog {
            level,
            message,
            fields: fields
                .into_iter()
                .map(|(k, v)| (keep(&k, 128), keep(&v, LOG_TEXT_BYTES)))
                .collect(),
        });
        Ok(())
    }
}

impl super::bindings::soar::plugin::types::Host for SandboxState {}

/// `HasData` for the table alone, as the `wasi:io` bindings want.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The linker every plugin is instantiated with: the soar host interface and
/// the few WASI interfaces Rust's `std` links even when unused (stdio and
/// environment for panic messages, random for hash seeds), all backed by an
/// empty context. Filesystem, sockets and clocks are absent, so a component
/// importing them fails to load.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<SandboxState>> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::p2::bindings::{cli, random};
    use wasmtime_wasi::random::WasiRandom;

    let mut linker = Linker::new(engine);
    Plugin::add_to_linker::<SandboxState, HasSelf<SandboxState>>(&mut linker, |s| s)?;
    let l = &mut linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<SandboxState, HasIo>(l, |t| {
        &mut t.table
    })?;
    wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<SandboxState, HasIo>(l, |t| {
        &mut t.table
    })?;
    wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<SandboxState, HasIo>(l, |t| {
        &mut t.table
    })?;
    fn cli_view(t: &mut SandboxState) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
        t.cli()
    }
    cli::exit::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::environment::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::stdin::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::stdout::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::stderr::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::terminal_input::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::terminal_output::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<SandboxState, WasiCli>(l, cli_view)?;
    random::random::add_to_linker::<SandboxState, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<SandboxState, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<SandboxState, WasiRandom>(l, |t| t.wasi.random())?;
    Ok(linker)
}
