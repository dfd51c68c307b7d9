//! `soar state get|put|delete|list|import|export|log TABLE`: the state
//! tables from a terminal. Through a running server when there is one (its
//! API applies the same rules), otherwise on the data dir; writes name a
//! principal proven by their token (`--as`, `--token-file`).

use super::remote::{seg, Remote};
use super::runs::journal;
use super::{exit, Exit, Globals, TokenArgs};
use crate::approvals;
use crate::config::{Config, Tables};
use crate::journal::Journal;
use crate::operations::state::{self as ops, Format, Write};
use crate::operations::OpError;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most bytes an import file may have.
const MAX_IMPORT_BYTES: u64 = 32 << 20;

#[derive(Subcommand)]
pub enum StateCommand {
    /// The live entry of KEY (value, version, expiry, who set it)
    Get { table: String, key: String },
    /// Set KEY to VALUE (JSON; anything else is taken as text)
    Put {
        table: String,
        key: String,
        value: String,
        /// How long it lives, e.g. `7d` [default: the table's `ttl`]
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        #[command(flatten)]
        by: Writer,
    },
    /// Delete KEY
    Delete {
        table: String,
        key: String,
        #[command(flatten)]
        by: Writer,
    },
    /// Live entries whose key starts with --prefix
    List {
        table: String,
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many (1 to 1000)
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Load a CSV (header row; a `key` column) or JSON-lines file; every
    /// row is checked first, then all are written at once or none
    Import {
        table: String,
        file: PathBuf,
        /// `csv` or `jsonl` [default: from the file's extension]
        #[arg(long)]
        format: Option<String>,
        /// Show what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        by: Writer,
    },
    /// Every live entry as JSON lines (what `import` takes back)
    Export { table: String },
    /// Who set KEY, when, why: its changes, oldest first
    Log { table: String, key: String },
}

/// Who writes, and why.
#[derive(clap::Args)]
pub struct Writer {
    /// Principal name (from the config), with a `writers` role of the table
    #[arg(long = "as")]
    who: String,
    /// Why (kept in the key's change log)
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    token: TokenArgs,
}

impl StateCommand {
    fn writer(&self) -> Option<&Writer> {
        match self {
            Self::Put { by, .. } | Self::Delete { by, .. } | Self::Import { by, .. } => Some(by),
            _ => None,
        }
    }
}

fn show(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn op_exit(e: OpError) -> Exit {
    match e {
        OpError::Refused(r) => Exit {
            code: exit::REFUSED,
            message: Some(format!("refused: {r}")),
        },
        other => super::runs::op_exit(other),
    }
}

fn value_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn format_of(file: &Path, given: Option<&str>) -> Result<Format, Exit> {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    match given.unwrap_or(ext) {
        "csv" => Ok(Format::Csv),
        "jsonl" | "ndjson" | "json" => Ok(Format::JsonLines),
        other => Err(Exit::invalid(format!(
            "error: `{other}` is not an import format (give --format csv or --format jsonl)"
        ))),
    }
}

fn read_import(file: &Path) -> Result<String, Exit> {
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if len > MAX_IMPORT_BYTES {
        return Err(Exit::invalid(format!(
            "error: {} is {len} bytes, over the {MAX_IMPORT_BYTES}-byte import limit; split it",
            file.display()
        )));
    }
    std::fs::read_to_string(file)
        .map_err(|e| Exit::invalid(format!("error: cannot read {}: {e}", file.display())))
}

/// Runs `command` against the server at `url`.
pub async fn remote(url: String, command: StateCommand) -> Exit {
    let token = command
        .writer()
        .map_or(TokenArgs { token_file: None }.source(), |w| {
            w.token.source()
        });
    let r = match Remote::new(url, &token) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Some(w) = command.writer() {
        if let Err(e) = super::remote::same_principal(&r, &w.who).await {
            return e;
        }
    }
    match remote_call(&r, command).await {
        Ok(()) => Exit::ok(),
        Err(e) => e,
    }
}

async fn remote_call(r: &Remote, command: StateCommand) -> Result<(), Exit> {
    let entry = |t: &str, k: &str| format!("/api/v1/state/{}/entries/{}", seg(t), seg(k));
    let reason = |w: &Writer| w.reason.clone();
    let answer = match command {
        StateCommand::Get { table, key } => {
            r.request(Method::GET, &entry(&table, &key), None).await?
        }
        StateCommand::Log { table, key } => {
            let path = format!("{}/log", entry(&table, &key));
            r.request(Method::GET, &path, None).await?
        }
        StateCommand::List {
            table,
            prefix,
            limit,
        } => {
            let path = format!(
                "/api/v1/state/{}/entries?prefix={}&limit={limit}",
                seg(&table),
                seg(&prefix)
            );
            r.request(Method::GET, &path, None).await?
        }
        StateCommand::Put {
            table,
            key,
            value,
            ttl,
            by,
        } => {
            let ttl = ttl.map(|d| humantime::format_duration(d).to_string());
            let body = json!({"value": value_of(&value), "ttl": ttl, "reason": reason(&by)});
            let body = Some(("application/json", body.to_string()));
            r.request(Method::PUT, &entry(&table, &key), body).await?
        }
        StateCommand::Delete { table, key, by } => {
            let body = Some((
                "application/json",
                json!({"reason": reason(&by)}).to_string(),
            ));
            r.request(Method::DELETE, &entry(&table, &key), body)
                .await?
        }
        StateCommand::Import {
            table,
            file,
            format,
            dry_run,
            by,
        } => {
            let f = format_of(&file, format.as_deref())?;
            let text = read_import(&file)?;
            let media = if f == Format::Csv {
                "text/csv"
            } else {
                "application/x-ndjson"
            };
            let mut path = format!("/api/v1/state/{}/import?dry_run={dry_run}", seg(&table));
            if let Some(why) = &by.reason {
                path.push_str(&format!("&reason={}", seg(why)));
            }
            r.request(Method::POST, &path, Some((media, text))).await?
        }
        StateCommand::Export { table } => {
            let path = format!("/api/v1/state/{}/export", seg(&table));
            print!("{}", r.text(&path).await?);
            return Ok(());
        }
    };
    show(&answer);
    Ok(())
}

/// Runs `command` on the data dir.
pub fn local(globals: &Globals, command: StateCommand) -> Exit {
    match local_call(globals, command) {
        Ok(()) => Exit::ok(),
        Err(e) => e,
    }
}

fn config(globals: &Globals) -> Result<Config, Exit> {
    globals
        .config()
        .map_err(|e| Exit::invalid(format!("error: {e}")))
}

fn local_call(globals: &Globals, command: StateCommand) -> Result<(), Exit> {
    let config = config(globals)?;
    let tables = &config.tables;
    let answer = match command.writer() {
        None => read(&journal(globals)?, tables, &command)?,
        Some(w) => {
            let token = w.token.source().read()?;
            let who = approvals::authenticate(&config.policy, &w.who, token.as_deref())
                .map_err(|r| op_exit(OpError::Refused(r)))?;
            let write = Write {
                who,
                reason: w.reason.as_deref(),
            };
            written(&journal(globals)?, tables, &write, &command)?
        }
    };
    if let Some(v) = answer {
        show(&v);
    }
    Ok(())
}

/// A reading command's answer (`None`: already printed).
fn read(j: &Journal, tables: &Tables, command: &StateCommand) -> Result<Option<Value>, Exit> {
    let answer = match command {
        StateCommand::Get { table, key } => ops::get(j, tables, table, key),
        StateCommand::Log { table, key } => ops::log(j, tables, table, key),
        StateCommand::List {
            table,
            prefix,
            limit,
        } => ops::list(j, tables, table, prefix, *limit),
        StateCommand::Export { table } => {
            for line in ops::export(j, tables, table).map_err(op_exit)? {
                println!("{line}");
            }
            return Ok(None);
        }
        _ => return Err(Exit::invalid("error: this command writes; give --as")),
    };
    answer.map(Some).map_err(op_exit)
}

/// A writing command's answer.
fn written(
    j: &Journal,
    tables: &Tables,
    w: &Write<'_>,
    command: &StateCommand,
) -> Result<Option<Value>, Exit> {
    let answer = match command {
        StateCommand::Put {
            table,
            key,
            value,
            ttl,
            ..
        } => ops::put(j, tables, w, table, key, value_of(value), *ttl),
        StateCommand::Delete { table, key, .. } => ops::delete(j, tables, w, table, key),
        StateCommand::Import {
            table,
            file,
            format,
            dry_run,
            ..
        } => {
            let f = format_of(file, format.as_deref())?;
            let text = read_import(file)?;
            ops::import(j, tables, w, table, (&text, f), *dry_run)
        }
        _ => return read(j, tables, command),
    };
    answer.map(Some).map_err(op_exit)
}
