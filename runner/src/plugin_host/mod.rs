//! The plugin host: loads connectors (WebAssembly components) once, then runs
//! each invocation in a fresh, capped sandbox whose only door to the world
//! is the host's audited HTTP function.

mod bindings;
mod egress;
mod engine;
mod error;
mod manifest;
mod sandbox;
pub(crate) mod schema_guard;
mod scrub;

pub use egress::{ExchangeOutcome, HttpExchange, Mode, RecordedBody};
pub use engine::{sha256_hex, ComponentCache};
pub use error::{ErrorKind, HostRefusal, InvokeError, LoadError};
pub use manifest::{ActionManifest, Manifest, TargetField, TargetKind};
pub use sandbox::PluginLog;

use crate::config::{Config, Limits, PluginConfig};
use bindings::soar::plugin::types as wit;
use bindings::{Plugin as PluginBindings, PluginPre};
use egress::{Egress, EgressPolicy};
use sandbox::SandboxState;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{Engine, Store};

/// Why the runner invokes an action (mirrors the WIT `invocation`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invocation {
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Stable idempotency key.
    pub idempotency_key: String,
    /// Plan only.
    pub dry_run: bool,
}

/// What one invocation produced: the result and everything to journal.
#[derive(Debug)]
pub struct Outcome {
    /// Output JSON or the typed failure.
    pub result: Result<serde_json::Value, InvokeError>,
    /// HTTP exchanges the plugin made, secrets redacted.
    pub exchanges: Vec<HttpExchange>,
    /// Log lines the plugin wrote.
    pub logs: Vec<PluginLog>,
    /// Wall time.
    pub duration: Duration,
}

/// A loaded, ready-to-instantiate connector.
pub struct LoadedPlugin {
    /// Name from the config.
    pub name: String,
    /// What the connector says about itself.
    pub manifest: Manifest,
    /// SHA-256 of the `.wasm` file (approvals bind to it).
    pub digest: String,
    /// SHA-256 of what the operator granted it: config values, allowed
    /// hosts, secret sources and their hosts. Approvals bind to it too: a
    /// changed base URL or tenant must not inherit an approval.
    pub config_digest: String,
    pre: PluginPre<SandboxState>,
    /// Input validators per action, compiled once at load.
    validators: BTreeMap<String, Arc<jsonschema::Validator>>,
    policy: Arc<EgressPolicy>,
    config: Arc<BTreeMap<String, String>>,
    limits: Limits,
    plugin_name: Arc<str>,
}

/// All configured connectors, sharing one engine.
pub struct PluginHost {
    engine: Engine,
    _ticker: engine::EpochTicker,
    client: reqwest::Client,
    plugins: BTreeMap<String, LoadedPlugin>,
    /// Configured plugins that failed to load, and why: only the steps that
    /// use them fail.
    broken: BTreeMap<String, LoadError>,
    /// `soar test`: answers in place of the sandboxed connectors.
    answers: Option<Arc<dyn Answers>>,
    /// The config's state tables, which the built-in `state.*` actions use.
    tables: Arc<crate::config::Tables>,
}

/// What answers an invocation instead of the connector (`soar test`'s
/// canned answers): called after the host checked the input against the
/// action's schema, so a test exercises the same input checks as a run.
pub trait Answers: Send + Sync {
    /// The output, or the error the connector would have given.
    fn answer(
        &self,
        plugin: &str,
        action: &str,
        input: &serde_json::Value,
        invocation: &Invocation,
    ) -> Result<serde_json::Value, InvokeError>;
}

impl PluginHost {
    /// Loads every plugin of `config`, compiling through the cache in
    /// `cache_dir`. A plugin that cannot be loaded is kept aside with its
    /// error ([`PluginHost::load_error`]); only the engine itself failing to
    /// start is an error here.
    pub async fn load(config: &Config, cache_dir: &Path) -> Result<Self, LoadError> {
        let max_memory = config
            .plugins
            .values()
            .map(|p| p.limits.memory_bytes)
            .max()
            .unwrap_or(Limits::default().memory_bytes);
        let engine =
            engine::new_engine(max_memory).map_err(|e| LoadError::Engine(e.to_string()))?;
        let ticker = engine::EpochTicker::start(&engine);
        let linker = sandbox::linker(&engine).map_err(|e| LoadError::Engine(e.to_string()))?;
        let cache = ComponentCache::new(cache_dir);
        let mut host = Self {
            engine,
            _ticker: ticker,
            client: egress::new_client(),
            plugins: BTreeMap::new(),
            broken: BTreeMap::new(),
            answers: None,
            tables: Arc::new(config.tables.clone()),
        };
        for plugin in config.plugins.values() {
            match host.load_one(config, plugin, &linker, &cache).await {
                Ok(loaded) => {
                    host.plugins.insert(plugin.name.clone(), loaded);
                }
                Err(e) => {
                    tracing::warn!(plugin = %plugin.name, error = %e, "plugin failed to load; steps using it will fail");
                    host.broken.insert(plugin.name.clone(), e);
                }
            }
        }
        Ok(host)
    }

    /// This host with `answers` in place of every connector: manifests,
    /// digests and input checks stay the real ones; nothing is
    /// instantiated and no request leaves.
    pub fn with_answers(mut self, answers: Arc<dyn Answers>) -> Self {
        self.answers = Some(answers);
        self
    }

    /// The config's state tables.
    pub fn tables(&self) -> &Arc<crate::config::Tables> {
        &self.tables
    }

    /// Why a configured plugin failed to load, if it did.
    pub fn load_error(&self, name: &str) -> Option<&LoadError> {
        self.broken.get(name)
    }

    /// Every configured plugin that failed to load, with its error.
    pub fn broken(&self) -> impl Iterator<Item = (&String, &LoadError)> {
        self.broken.iter()
    }

    async fn load_one(
        &self,
        config: &Config,
        plugin: &PluginConfig,
        linker: &wasmtime::component::Linker<SandboxState>,
        cache: &ComponentCache,
    ) -> Result<LoadedPlugin, LoadError> {
        let wasm = std::fs::read(&plugin.wasm_path).map_err(|e| LoadError::File {
            config: config.path.clone(),
            pos: plugin.wasm_path_pos,
            plugin: plugin.name.clone(),
            path: plugin.wasm_path.clone(),
            reason: e.to_string(),
        })?;
        let digest = sha256_hex(&wasm);
        if let Some(expected) = &plugin.sha256 {
            if *expected != digest {
                return Err(LoadError::DigestMismatch {
                    config: config.path.clone(),
                    pos: plugin.sha256_pos,
                    plugin: plugin.name.clone(),
                    path: plugin.wasm_path.clone(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let component =
            cache
                .load(&self.engine, &digest, &wasm)
                .map_err(|e| LoadError::Compile {
                    plugin: plugin.name.clone(),
                    path: plugin.wasm_path.clone(),
                    reason: format!("{e:#}"),
                })?;
        let instance_pre =
            linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::ForbiddenImport {
                    plugin: plugin.name.clone(),
                    reason: format!("{e:#}"),
                })?;
        let pre = PluginPre::new(instance_pre).map_err(|e| LoadError::Manifest {
            plugin: plugin.name.clone(),
            reason: format!("it does not export the soar:plugin connector interface: {e:#}"),
        })?;
        let mut loaded = LoadedPlugin {
            name: plugin.name.clone(),
            manifest: Manifest {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                actions: Vec::new(),
                secrets: Vec::new(),
                config_keys: Vec::new(),
            },
            digest,
            config_digest: config_digest(plugin),
            pre,
            validators: BTreeMap::new(),
            policy: Arc::new(EgressPolicy {
                plugin: plugin.name.clone(),
                allowed: plugin.allowed_hosts.clone(),
                secrets: plugin.secrets.clone(),
                dry_run_allow: plugin.dry_run_allow.clone(),
                read_only_allow: plugin.read_only_allow.clone(),
                limits: plugin.limits.clone(),
                scrub_cache: Mutex::new(None),
            }),
            config: Arc::new(plugin.config.clone()),
            limits: plugin.limits.clone(),
            plugin_name: Arc::from(plugin.name.as_str()),
        };
        let manifest_err = |reason: String| LoadError::Manifest {
            plugin: plugin.name.clone(),
            reason,
        };
        // Its own short deadline: every command loads every plugin, so a
        // `describe()` that spins must not hold them all for long.
        let deadline = loaded.limits.describe_timeout;
        let describe = async {
            let mut store = self.new_store(&loaded, Mode::DryRun, deadline);
            let instance = loaded.pre.instantiate_async(&mut store).await?;
            instance
                .soar_plugin_connector()
                .call_describe(&mut store)
                .await
        };
        let raw = tokio::time::timeout(deadline, describe)
            .await
            .map_err(|_| {
                manifest_err(format!(
                    "describe() did not return within {} ms",
                    deadline.as_millis()
                ))
            })?
            .map_err(|e| manifest_err(format!("describe() failed: {e:#}")))?;
        loaded.manifest = Manifest::from_wit(raw).map_err(manifest_err)?;
        for (action, o) in &plugin.actions {
            let Some(a) = loaded
                .manifest
                .actions
                .iter_mut()
                .find(|a| &a.name == action)
            else {
                return Err(manifest_err(format!(
                    "the config overrides action `{action}` (plugins.{}.actions.{action}), which the plugin does not have",
                    plugin.name
                )));
            };
            a.tighten(o);
        }
        for action in &loaded.manifest.actions {
            let validator = schema_guard::compile(&action.input_schema).map_err(|e| {
                manifest_err(format!("input schema of `{}` is invalid: {e}", action.name))
            })?;
            loaded
                .validators
                .insert(action.name.clone(), Arc::new(validator));
        }
        Ok(loaded)
    }

    fn new_store(&self, plugin: &LoadedPlugin, mode: Mode, limit: Duration) -> Store<SandboxState> {
        let egress = Egress::new(
            plugin.policy.clone(),
            self.client.clone(),
            mode,
            Instant::now() + limit,
        );
        let state = SandboxState::new(
            plugin.plugin_name.clone(),
            plugin.config.clone(),
            egress,
            &plugin.limits,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        let ticks = limit.as_millis() / engine::EPOCH_TICK.as_millis();
        store.set_epoch_deadline((ticks as u64).max(1));
        store.epoch_deadline_trap();
        store
    }

    /// Loaded plugins by name.
    pub fn plugins(&self) -> impl Iterator<Item = &LoadedPlugin> {
        self.plugins.values()
    }

    /// One plugin.
    pub fn plugin(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.get(name)
    }

    /// Validates `input` against the action's schema, then runs it in a fresh
    /// sandbox. Never panics or fails the runner for what the plugin does.
    pub async fn invoke(
        &self,
        plugin: &str,
        action: &str,
        input: &serde_json::Value,
        invocation: &Invocation,
    ) -> Outcome {
        let started = Instant::now();
        let fail = |e: InvokeError| Outcome {
            result: Err(e),
            exchanges: Vec::new(),
            logs: Vec::new(),
            duration: started.elapsed(),
        };
        let Some(loaded) = self.plugins.get(plugin) else {
            if let Some(e) = self.broken.get(plugin) {
                return fail(InvokeError::PluginUnavailable {
                    plugin: plugin.to_string(),
                    reason: e.to_string(),
                });
            }
            return fail(InvokeError::UnknownPlugin(plugin.to_string()));
        };
        let Some(validator) = loaded.validators.get(action) else {
            return fail(InvokeError::UnknownAction {
                plugin: plugin.to_string(),
                action: action.to_string(),
            });
        };
        if let Err(problems) = check(validator, input) {
            return fail(InvokeError::InvalidInput {
                action: action.to_string(),
                problems,
            });
        }
        if let Some(answers) = &self.answers {
            return Outcome {
                result: answers.answer(plugin, action, input, invocation),
                exchanges: Vec::new(),
                logs: Vec::new(),
                duration: started.elapsed(),
            };
        }
        let limit = loaded.limits.timeout;
        let destructive = loaded
            .manifest
            .action(action)
            .is_some_and(|a| a.destructive);
        let mode = match (invocation.dry_run, destructive) {
            (true, _) => Mode::DryRun,
            (false, true) => Mode::Act,
            (false, false) => Mode::ReadOnly,
        };
        let mut store = self.new_store(loaded, mode, limit);
        let wit_invocation = wit::Invocation {
            run_id: invocation.run_id.clone(),
            step_id: invocation.step_id.clone(),
            attempt: invocation.attempt,
            idempotency_key: invocation.idempotency_key.clone(),
            dry_run: invocation.dry_run,
        };
        let input_text = input.to_string();
        let call = async {
            let instance: PluginBindings = loaded.pre.instantiate_async(&mut store).await?;
            instance
                .soar_plugin_connector()
                .call_invoke(&mut store, action, &input_text, &wit_invocation)
                .await
        };
        // The epoch deadline stops guest code; this one also bounds time
        // spent inside host calls, which an epoch cannot interrupt.
        let raw = tokio::time::timeout(limit, call).await;
        let mut state = store.into_data();
        let scrubber = state.egress.scrubber();
        let result = match raw {
            Err(_elapsed) => Err(InvokeError::Timeout {
                limit_ms: limit.as_millis() as u64,
            }),
            Ok(Err(trap)) => Err(classify_trap(&trap, &state, limit, &scrubber)),
            Ok(Ok(Err(e))) => Err(plugin_error(e, &loaded.limits, &scrubber)),
            Ok(Ok(Ok(text))) => output(&text, &loaded.limits, &scrubber),
        };
        // What the plugin did decides over what it says it did.
        let result = match (state.egress.violation.take(), state.violation.take()) {
            (Some(v), _) | (None, Some(v)) => Err(InvokeError::Refused(v)),
            (None, None) => result,
        };
        // Log lines were scrubbed as they were written (`SandboxState::log`).
        let mut logs = state.logs;
        for note in state.egress.notes() {
            logs.push(PluginLog::host(note));
        }
        Outcome {
            result,
            exchanges: state.egress.exchanges,
            logs,
            duration: started.elapsed(),
        }
    }
}

/// An action's output, if the host accepts it: within the size and depth
/// caps (the journal must read back what it writes) and carrying no
/// granted secret in any form.
fn output(
    text: &str,
    limits: &Limits,
    scrubber: &scrub::Scrubber,
) -> Result<serde_json::Value, InvokeError> {
    let refused = |kind, message| Err(InvokeError::Refused(HostRefusal { kind, message }));
    if text.len() > limits.max_output_bytes {
        return refused(
            "output_limit",
            format!(
                "output_limit: the output has {} bytes, over the {}-byte cap (limits.max_output_bytes)",
                text.len(),
                limits.max_output_bytes
            ),
        );
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| InvokeError::BadOutput(e.to_string()))?;
    let depth = json_depth(&value);
    if depth > limits.max_output_depth {
        return refused(
            "output_limit",
            format!(
                "output_limit: the output is nested {depth} levels deep, over the cap of {} (limits.max_output_depth)",
                limits.max_output_depth
            ),
        );
    }
    if let Some(name) = scrubber.find(text.as_bytes()) {
        return refused(
            "secret_in_output",
            format!("secret_in_output: the output carries secret `{name}` (in plain text or an encoding); it is neither returned nor journaled"),
        );
    }
    Ok(value)
}

/// Nesting depth of a JSON value (a scalar is 0), without recursion.
pub fn json_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            serde_json::Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// See [`LoadedPlugin::config_digest`].
fn config_digest(plugin: &PluginConfig) -> String {
    let secrets: BTreeMap<&String, (String, Vec<String>)> = plugin
        .secrets
        .iter()
        .map(|(name, grant)| {
            let hosts = grant.hosts.iter().map(ToString::to_string).collect();
            (name, (format!("{:?}", grant.source), hosts))
        })
        .collect();
    let mut granted = serde_json::json!({
        "config": plugin.config,
        "allowed_hosts": plugin.allowed_hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "secrets": secrets,
    });
    // What the plugin may send and what its actions count as are grants
    // too. Added only when set, so a config without them keeps the digest
    // its approvals were bound to.
    let rules = |rules: &[crate::config::RequestRule]| {
        let texts: Vec<String> = rules.iter().map(ToString::to_string).collect();
        serde_json::json!(texts)
    };
    let extra = [
        ("dry_run_allow", rules(&plugin.dry_run_allow)),
        ("read_only_allow", rules(&plugin.read_only_allow)),
        (
            "hosts_without_secrets",
            serde_json::json!(plugin
                .hosts_without_secrets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        ),
        (
            "actions",
            serde_json::json!(plugin
                .actions
                .iter()
                .map(|(name, o)| (
                    name.clone(),
                    serde_json::json!([o.destructive, o.targets, o.untargeted])
                ))
                .collect::<serde_json::Map<_, _>>()),
        ),
    ];
    for (key, value) in extra {
        let empty = value.as_array().is_some_and(Vec::is_empty)
            || value.as_object().is_some_and(serde_json::Map::is_empty);
        if !empty {
            granted[key] = value;
        }
    }
    sha256_hex(granted.to_string().as_bytes())
}

/// Checks a value against a JSON Schema; every violation, with its path.
pub fn validate(schema: &serde_json::Value, value: &serde_json::Value) -> Result<(), Vec<String>> {
    let validator = schema_guard::compile(schema)
        .map_err(|e| vec![format!("the schema itself is invalid: {e}")])?;
    check(&validator, value)
}

pub(crate) fn check(
    validator: &jsonschema::Validator,
    value: &serde_json::Value,
) -> Result<(), Vec<String>> {
    let problems: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let path = e.instance_path.to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn classify_trap(
    trap: &wasmtime::Error,
    state: &SandboxState,
    limit: Duration,
    scrubber: &scrub::Scrubber,
) -> InvokeError {
    if let Some(requested) = state.memory.refused {
        return InvokeError::MemoryLimit {
            limit: state.memory.limit,
            requested,
        };
    }
    if let Some(wasmtime::Trap::Interrupt) = trap.downcast_ref::<wasmtime::Trap>() {
        return InvokeError::Timeout {
            limit_ms: limit.as_millis() as u64,
        };
    }
    let stderr = scrubber.scrub_text(&egress::shorten(&state.stderr_tail(), 1024));
    let base = match trap.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => format!("{trap:#}"),
    };
    InvokeError::Trap {
        message: if stderr.is_empty() {
            base
        } else {
            format!("{base}; plugin stderr: {stderr}")
        },
    }
}

/// Bytes of a plugin's error message kept (it is journaled and printed).
const PLUGIN_MESSAGE_BYTES: usize = 4096;

fn plugin_error(e: wit::PluginError, limits: &Limits, scrubber: &scrub::Scrubber) -> InvokeError {
    // Saturating, then capped: a retry-after of u64::MAX or 10^15 ms must
    // neither overflow the scheduler's clock nor park a run for centuries.
    let ceiling = limits.max_retry_after.as_millis() as u64;
    let kind = match e.kind {
        wit::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
        wit::ErrorKind::Unauthorized => ErrorKind::Unauthorized,
        wit::ErrorKind::NotFound => ErrorKind::NotFound,
        wit::ErrorKind::Conflict => ErrorKind::Conflict,
        wit::ErrorKind::RateLimited(after) => ErrorKind::RateLimited {
            retry_after_ms: after.map(|a| {
                let ms = match a {
                    wit::RetryAfter::DelayMs(ms) => ms,
                    wit::RetryAfter::AtUnixSeconds(at) => {
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        at.saturating_sub(now).saturating_mul(1000)
                    }
                };
                ms.min(ceiling)
            }),
        },
        wit::ErrorKind::Unavailable => ErrorKind::Unavailable,
        wit::ErrorKind::Permanent => ErrorKind::Permanent,
        wit::ErrorKind::Denied => ErrorKind::Denied,
    };
    InvokeError::Plugin {
        kind,
        message: scrubber.scrub_text(&egress::shorten(&e.message, PLUGIN_MESSAGE_BYTES)),
    }
}
