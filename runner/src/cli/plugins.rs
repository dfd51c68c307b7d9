//! `soar plugins list | inspect | call`.

use super::{Exit, Globals};
use crate::inert;
use crate::plugin_host::{Invocation, InvokeError, LoadedPlugin, PluginHost};
use clap::Subcommand;
use serde_json::{json, Value};
use std::io::Read;

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Every configured connector with its version and actions
    List {
        /// One JSON document on stdout
        #[arg(long)]
        json: bool,
    },
    /// A connector's manifest: actions, flags, schemas, secrets, config keys
    Inspect {
        /// Plugin name from the config
        name: String,
        /// JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Invoke one action directly (input checked against its schema first)
    Call(CallArgs),
}

async fn load(globals: &Globals) -> Result<PluginHost, Exit> {
    let config = globals
        .config()
        .map_err(|e| Exit::invalid(format!("error: {e}")))?;
    PluginHost::load(&config, &globals.cache_dir())
        .await
        .map_err(|e| Exit::invalid(format!("error: {e}")))
}

fn find<'a>(host: &'a PluginHost, name: &str) -> Result<&'a LoadedPlugin, Exit> {
    if let Some(e) = host.load_error(name) {
        return Err(Exit::failed(format!(
            "error: plugin `{name}` failed to load: {}",
            crate::inert::line(&e.to_string())
        )));
    }
    host.plugin(name).ok_or_else(|| {
        let known: Vec<&str> = host.plugins().map(|p| p.name.as_str()).collect();
        Exit::invalid(format!(
            "error: no plugin named `{name}` is configured (configured: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

pub async fn run(globals: &Globals, command: PluginsCommand) -> Exit {
    let result = match command {
        PluginsCommand::List { json } => list(globals, json).await,
        PluginsCommand::Inspect { name, json } => inspect(globals, &name, json).await,
        PluginsCommand::Call(args) => call(globals, args).await,
    };
    result.unwrap_or_else(|e| e)
}

async fn list(globals: &Globals, json: bool) -> Result<Exit, Exit> {
    let host = load(globals).await?;
    if json {
        let plugins: Vec<Value> = host
            .plugins()
            .map(|p| {
                json!({
                    "name": p.name,
                    "version": p.manifest.version,
                    "description": p.manifest.description,
                    "sha256": p.digest,
                    "actions": p.manifest.actions.iter().map(|a| json!({
                        "name": a.name, "destructive": a.destructive, "idempotent": a.idempotent,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let broken: Vec<Value> = host
            .broken()
            .map(|(name, e)| json!({"name": name, "error": e.to_string()}))
            .collect();
        println!("{}", json!({ "plugins": plugins, "broken": broken }));
        return Ok(Exit::ok());
    }
    if host.plugins().next().is_none() {
        println!("no plugins configured");
    }
    for p in host.plugins() {
        let actions: Vec<String> = p
            .manifest
            .actions
            .iter()
            .map(|a| {
                if a.destructive {
                    format!("{}!", a.name)
                } else {
                    a.name.clone()
                }
            })
            .collect();
        println!(
            "{:<14} {:<8} {}  {}",
            p.name,
            inert::line(&p.manifest.version),
            &p.digest[..12],
            inert::line(&actions.join(", "))
        );
    }
    for (name, e) in host.broken() {
        println!(
            "{:<14} BROKEN   {}",
            name,
            crate::inert::line(&e.to_string())
        );
    }
    if host
        .plugins()
        .any(|p| p.manifest.actions.iter().any(|a| a.destructive))
    {
        println!("(! marks a destructive action)");
    }
    Ok(Exit::ok())
}

async fn inspect(globals: &Globals, name: &str, json: bool) -> Result<Exit, Exit> {
    let host = load(globals).await?;
    let p = find(&host, name)?;
    let m = &p.manifest;
    if json {
        let mut doc = serde_json::to_value(m).unwrap_or(Value::Null);
        doc["sha256"] = json!(p.digest);
        println!("{doc}");
        return Ok(Exit::ok());
    }
    println!(
        "{} {} ({})",
        p.name,
        inert::line(&m.version),
        inert::line(&m.description)
    );
    println!("sha256:      {}", p.digest);
    println!("secrets:     {}", inert::line(&list_or_none(&m.secrets)));
    println!(
        "config keys: {}",
        inert::line(&list_or_none(&m.config_keys))
    );
    for a in &m.actions {
        let mut flags = Vec::new();
        if a.destructive {
            flags.push("destructive".to_string());
        }
        if a.idempotent {
            flags.push("idempotent".to_string());
        }
        if let Some(probe) = &a.probe {
            flags.push(format!("probe: {probe}"));
        }
        println!();
        println!(
            "  {}  [{}]",
            inert::line(&a.name),
            inert::line(&flags.join(", "))
        );
        println!("    {}", inert::line(&a.description));
        let required: Vec<&str> = a.input_schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = a.input_schema["properties"].as_object() {
            for (field, schema) in props {
                let target = a
                    .targets
                    .iter()
                    .find(|t| &t.field == field)
                    .map(|t| {
                        format!(
                            " (target: {})",
                            serde_json::to_value(t.kind)
                                .unwrap_or_default()
                                .as_str()
                                .unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "    input.{}: {}{}{}",
                    inert::line(field),
                    inert::line(schema["type"].as_str().unwrap_or("any")),
                    if required.contains(&field.as_str()) {
                        ", required"
                    } else {
                        ""
                    },
                    target
                );
            }
        }
    }
    Ok(Exit::ok())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[derive(clap::Args)]
pub struct CallArgs {
    /// Plugin name from the config
    name: String,
    /// Action name
    action: String,
    /// Input JSON, `@FILE`, or `@-` for stdin
    #[arg(long)]
    input: String,
    /// Result (output or typed error, and the HTTP exchanges) as JSON on stdout
    #[arg(long)]
    json: bool,
    /// Plan only: the host lets only GET and HEAD requests leave
    #[arg(long)]
    dry_run: bool,
    /// Required to call an action the connector marks destructive
    #[arg(long)]
    allow_destructive: bool,
    /// Idempotency key to pass [default: a fresh one]
    #[arg(long)]
    idempotency_key: Option<String>,
}

fn read_input(arg: &str) -> Result<Value, Exit> {
    let (text, origin) = if arg == "@-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Exit::invalid(format!("error: cannot read input from stdin: {e}")))?;
        (s, "stdin".to_string())
    } else if let Some(path) = arg.strip_prefix('@') {
        let s = std::fs::read_to_string(path)
            .map_err(|e| Exit::invalid(format!("error: cannot read input file `{path}`: {e}")))?;
        (s, path.to_string())
    } else {
        (arg.to_string(), "--input".to_string())
    };
    serde_json::from_str(&text).map_err(|e| {
        Exit::invalid(format!(
            "error: {origin}:{}:{}: input is not valid JSON: {e}",
            e.line(),
            e.column()
        ))
    })
}

fn fresh_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("cli-{}-{nanos:x}", std::process::id())
}

async fn call(globals: &Globals, args: CallArgs) -> Result<Exit, Exit> {
    let input = read_input(&args.input)?;
    let host = load(globals).await?;
    let plugin = find(&host, &args.name)?;
    let Some(action) = plugin.manifest.action(&args.action) else {
        let known: Vec<&str> = plugin
            .manifest
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        return Err(Exit::invalid(format!(
            "error: plugin `{}` has no action `{}` (actions: {})",
            args.name,
            args.action,
            known.join(", ")
        )));
    };
    // The host's own view (manifest tightened by the operator's overrides);
    // a non-destructive action still sends only what the host lets it.
    if action.destructive && !args.allow_destructive && !args.dry_run {
        return Err(Exit::invalid(format!(
            "error: `{}.{}` is destructive; pass --allow-destructive to run it outside a playbook, or --dry-run to plan it",
            args.name, args.action
        )));
    }
    let invocation = Invocation {
        run_id: "cli".into(),
        step_id: format!("{}.{}", args.name, args.action),
        attempt: 1,
        idempotency_key: args.idempotency_key.unwrap_or_else(fresh_key),
        dry_run: args.dry_run,
    };
    let outcome = host
        .invoke(&args.name, &args.action, &input, &invocation)
        .await;
    let duration_ms = outcome.duration.as_millis() as u64;
    match outcome.result {
        Ok(output) => {
            if args.json {
                println!(
                    "{}",
                    json!({"ok": true, "output": output, "exchanges": outcome.exchanges, "logs": outcome.logs, "duration_ms": duration_ms})
                );
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&output).unwrap_or_default()
                );
            }
            Ok(Exit::ok())
        }
        Err(error) => {
            let mut err = json!({"kind": error.kind_name(), "message": error.to_string()});
            if let InvokeError::Plugin {
                kind: crate::plugin_host::ErrorKind::RateLimited { retry_after_ms },
                ..
            } = &error
            {
                err["retry_after_ms"] = json!(retry_after_ms);
            }
            if args.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": err, "exchanges": outcome.exchanges, "logs": outcome.logs, "duration_ms": duration_ms})
                );
            }
            let message = format!("error[{}]: {error}", error.kind_name());
            Err(match error {
                InvokeError::InvalidInput { .. }
                | InvokeError::UnknownAction { .. }
                | InvokeError::UnknownPlugin(_) => Exit::invalid(message),
                _ => Exit::failed(message),
            })
        }
    }
}
