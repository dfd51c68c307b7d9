//! The `soar` command line: argument parsing, logging setup and exit codes.
//! Each command lives in its own module and returns an [`Exit`].

mod approvals;
mod cluster;
mod demo;
mod evidence;
mod plugins;
mod remote;
mod report;
mod runs;
mod state;
mod tests;

use crate::config::{Config, ConfigError};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit codes shared by every command.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The action or run failed.
    pub const FAILED: i32 = 1;
    /// Invalid usage, config, playbook or input.
    pub const INVALID: i32 = 2;
    /// The run is paused: waiting for approval or in doubt.
    pub const PAUSED: i32 = 3;
    /// An operator command was refused (token, role, four-eyes...); journaled.
    pub const REFUSED: i32 = 4;
    /// `soar journal verify` found nothing wrong, but the journal is
    /// unkeyed: it proves nothing against someone who can write the data
    /// dir (`--allow-unkeyed` makes this 0).
    pub const UNKEYED: i32 = 5;
}

/// A command's end: exit code and, for failures, what to tell the user.
pub struct Exit {
    /// Process exit code.
    pub code: i32,
    /// Printed to stderr when present.
    pub message: Option<String>,
}

impl Exit {
    fn ok() -> Self {
        Self {
            code: exit::OK,
            message: None,
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: exit::INVALID,
            message: Some(message.into()),
        }
    }
    fn failed(message: impl Into<String>) -> Self {
        Self {
            code: exit::FAILED,
            message: Some(message.into()),
        }
    }
}

#[derive(Parser)]
#[command(
    name = "soar",
    version,
    about = "A durable, fail-closed playbook runner for security operations"
)]
struct Cli {
    /// Config file [default: ./soar.yaml]
    #[arg(long, global = true, env = "SOAR_CONFIG")]
    config: Option<PathBuf>,
    /// Where runs, journals and the compiled-plugin cache live
    #[arg(long, global = true, env = "SOAR_DATA_DIR", default_value = ".soar")]
    data_dir: PathBuf,
    /// More log output (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// A running `soar serve` to send commands to [default: the one holding
    /// the data dir's journal, if any]
    #[arg(long, global = true, env = "SOAR_SERVER")]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check playbooks; every problem as PATH:LINE:COL (exit 2 if any)
    Validate {
        /// Playbook files
        #[arg(required = true)]
        playbooks: Vec<PathBuf>,
    },
    /// Run playbook tests: every case of NAME.test.yaml beside each playbook
    /// (or in each DIR), with canned answers in place of the connectors;
    /// exit 1 if any fails
    #[command(args_conflicts_with_subcommands = true)]
    Test {
        #[command(subcommand)]
        record: Option<TestCommand>,
        /// Playbooks, test files or directories [default: playbooks/]
        paths: Vec<PathBuf>,
        /// One JSON document with every result
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report to FILE
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Print the JSON Schema of the playbook format (for editors)
    Schema,
    /// Start a run of a playbook on an alert
    Run {
        /// Playbook file
        playbook: PathBuf,
        /// Alert JSON file, or `-` for stdin
        #[arg(long)]
        input: String,
        /// Who starts the run [default: the OS user]; with approvers in the
        /// config, one of them, proven by their token
        #[arg(long = "as")]
        who: Option<String>,
        #[command(flatten)]
        token: TokenArgs,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Continue unfinished runs from their journals
    Resume {
        /// Run id
        run_id: Option<String>,
        /// Every unfinished run
        #[arg(long, conflicts_with = "run_id")]
        all: bool,
        /// JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// A run's status and steps
    Status {
        /// Run id
        run_id: String,
        /// JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// List runs
    Runs {
        /// Only runs with this status (running, waiting_approval, in_doubt, succeeded, failed, cancelled)
        #[arg(long)]
        status: Option<String>,
        /// JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// A run's journal (`soar journal RUN_ID`), or `soar journal verify RUN_ID|--all`
    #[command(args_conflicts_with_subcommands = true)]
    Journal {
        #[command(subcommand)]
        command: Option<JournalCommand>,
        /// Run id
        run_id: Option<String>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Re-evaluate a run's conditions and templates against its journal
    Replay {
        /// Run id
        #[arg(required_unless_present = "bundle")]
        run_id: Option<String>,
        /// Replay a run bundle instead (`soar export`), without the journal;
        /// it is verified first
        #[arg(long, value_name = "FILE", conflicts_with = "run_id")]
        bundle: Option<PathBuf>,
        /// Ed25519 public key(s) the bundle must be signed by, hex [default:
        /// those of a config named with --config; never one found nearby]
        #[arg(long = "public-key", value_name = "HEX", requires = "bundle")]
        public_keys: Vec<String>,
        /// Replay a bundle that is not verified (no trusted key, or it
        /// fails), as a draft: the output says so
        #[arg(long, requires = "bundle")]
        unverified: bool,
    },
    /// Write a run's signed evidence bundle: every record and blob, the
    /// playbook text, plugin and approval bindings, checkpoints, signature
    Export {
        /// Run id
        run_id: String,
        /// The bundle file
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Export journal records not yet exported to the `siem:` sinks (JSON
    /// lines of OCSF events: a rotating file, an HTTP collector), then exit
    Siem {
        #[command(subcommand)]
        command: SiemCommand,
    },
    /// The state tables (`state.tables` in the config): get, put, delete,
    /// list, import (CSV or JSON lines, with --dry-run), export, log
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// Verify a run bundle anywhere, without the data dir: signature, hash
    /// chain, blobs, playbook text, checkpoints (exit 1 on any problem)
    VerifyBundle {
        /// The bundle file
        file: PathBuf,
        /// Ed25519 public key(s), hex [default: journal.public_keys of a
        /// config named with --config or SOAR_CONFIG; never a soar.yaml found
        /// nearby, which may have come with the bundle]
        #[arg(long = "public-key", value_name = "HEX")]
        public_keys: Vec<String>,
    },
    /// Approve a waiting approval step (token from SOAR_TOKEN or --token-file)
    Approve {
        #[command(flatten)]
        op: OperatorArgs,
        /// Why (journaled)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a waiting approval step
    Deny {
        #[command(flatten)]
        op: OperatorArgs,
        /// Why (journaled)
        #[arg(long)]
        reason: String,
    },
    /// Investigation compression over a period, from the journal: time to
    /// enriched and to decision, approval acceptance, automation, repeat
    /// alerts, closures, response actions, runs in doubt (docs/metrics.md)
    Report {
        /// The period: runs started in the last this long
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Only this playbook
        #[arg(long)]
        playbook: Option<String>,
        /// A run counts as enriched once this many enrichment steps
        /// (non-destructive plugin calls, not `state.*`) succeeded
        #[arg(long, default_value_t = 1)]
        enriched_steps: usize,
        /// One JSON object
        #[arg(long)]
        json: bool,
    },
    /// Approvals waiting for a decision, with their handoff, age and expiry
    Pending {
        /// JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Settle an in-doubt step after checking the vendor console
    Resolve {
        #[command(flatten)]
        op: OperatorArgs,
        /// done: the effect is in place; failed: it is not and must not be; retry: invoke again with the same key
        #[arg(long, value_enum)]
        outcome: crate::journal::Resolution,
        /// What was checked (journaled)
        #[arg(long)]
        reason: String,
    },
    /// Cancel a run: nothing more starts
    Cancel {
        /// Run id
        run_id: String,
        /// Approver name (from the config)
        #[arg(long = "as")]
        who: String,
        /// Why (journaled)
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Run as a service: signed alert webhooks, the API, timers, metrics
    Serve,
    /// Alert to approved containment against the built-in vendor simulator
    Demo {
        /// Approve at once instead of waiting for `soar approve` in another terminal
        #[arg(long)]
        yes: bool,
        /// Repository root (holds playbooks/ and examples/)
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Where the demo's config, secrets and journal go
        #[arg(long, default_value = ".soar-demo")]
        dir: PathBuf,
    },
    /// List, inspect and call connectors
    Plugins {
        #[command(subcommand)]
        command: plugins::PluginsCommand,
    },
    /// The cluster journal on NATS JetStream (`journal.backend: nats`)
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
}

/// Run, step and approver of `approve`, `deny` and `resolve`.
#[derive(clap::Args)]
struct OperatorArgs {
    /// Run id
    run_id: String,
    /// The step to decide
    step_id: String,
    /// Approver name (from the config)
    #[arg(long = "as")]
    who: String,
    #[command(flatten)]
    token: TokenArgs,
    /// The continued run's report as JSON
    #[arg(long)]
    json: bool,
}

impl From<OperatorArgs> for approvals::Operator {
    fn from(a: OperatorArgs) -> Self {
        approvals::Operator {
            run_id: a.run_id,
            step: a.step_id,
            who: a.who,
            token: a.token.source(),
            json: a.json,
        }
    }
}

/// The approver's token: `SOAR_TOKEN`, or a file holding it.
#[derive(clap::Args)]
struct TokenArgs {
    /// File holding the approver's token [default: env SOAR_TOKEN]
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl TokenArgs {
    fn source(&self) -> approvals::TokenSource {
        approvals::TokenSource {
            file: self.token_file.clone(),
            value: None,
        }
    }
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Check the hash chain (edited, deleted or reordered records) and, in a
    /// keyed journal, the signed checkpoints
    Verify {
        /// Run id
        run_id: Option<String>,
        /// Every run
        #[arg(long, conflicts_with = "run_id")]
        all: bool,
        /// A checkpoint kept outside the data dir (the SIEM export's
        /// `journal_checkpoint` events, or checkpoint 1 as `journal adopt`
        /// or the first verify printed it), as N:HASH: it must still be there
        #[arg(long, value_name = "N:HASH")]
        anchor: Vec<String>,
        /// Exit 0 for an unkeyed journal with an intact hash chain (exit 5
        /// otherwise: it proves nothing against someone with the data dir)
        #[arg(long)]
        allow_unkeyed: bool,
    },
    /// Start trust in an existing unkeyed journal: sign every run as it is
    /// now into checkpoint 1, naming who adopted it; or, with --run, accept
    /// a run's records that no checkpoint signed (needs journal.signing_key)
    Adopt {
        /// Who adopts it (journaled in the signed checkpoint)
        #[arg(long = "as")]
        who: String,
        /// Only this run: sign its records past its last signed head, after
        /// checking them (written just before a crash, or behind the
        /// journal's back)
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Make a new Ed25519 key pair for `journal.signing_key` (keep the
    /// signing key out of the data dir) and `journal.public_keys`
    Keygen,
    /// Prune finished runs per `journal.retention`; each leaves a signed
    /// tombstone (runs that are not final are never pruned)
    Prune {
        /// List what would be pruned, prune nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SiemCommand {
    /// Send every record not yet exported; the cursor makes a rerun (or a
    /// restart after a crash) continue where the last left off
    Export,
}

#[derive(Subcommand)]
enum TestCommand {
    /// Write a test case from a run's journal: its alert, every step's
    /// recorded answer, the approvals given, its outcome as the expectation
    Record {
        /// The run
        run_id: String,
        /// Case name [default: recorded-RUN_ID]
        #[arg(long)]
        name: Option<String>,
        /// Add it to this test file (created if missing) instead of printing it
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Global options every command may need.
pub struct Globals {
    config: Option<PathBuf>,
    data_dir: PathBuf,
    server: Option<String>,
}

impl Globals {
    fn config(&self) -> Result<Config, ConfigError> {
        Config::discover(self.config.as_deref())
    }

    fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("components")
    }
}

fn init_logging(verbose: u8, format: LogFormat, serving: bool) {
    let level = match verbose {
        // A server logs each request (route template, status, principal;
        // never a body, token or URL token) unless told otherwise.
        0 if serving => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("soar_runner={level}")));
    // Colour codes only for a person at a terminal, never in a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main_entry() -> i32 {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve);
    init_logging(cli.verbose, cli.log_format, serving);
    let globals = Globals {
        config: cli.config,
        data_dir: cli.data_dir,
        server: cli.server,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    let result = runtime.block_on(async {
        let command = match through_server(&globals, cli.command).await {
            Ok(done) => return done,
            Err(command) => command,
        };
        match command {
            Command::Validate { playbooks } => runs::validate(&globals, &playbooks).await,
            Command::Schema => runs::schema(),
            Command::Test {
                record: Some(TestCommand::Record { run_id, name, out }),
                ..
            } => tests::record(&globals, &run_id, name, out).await,
            Command::Test {
                record: None,
                paths,
                json,
                junit,
            } => tests::test(&globals, paths, json, junit).await,
            Command::Run {
                playbook,
                input,
                who,
                token,
                json,
            } => {
                let start = runs::Start {
                    who,
                    token: token.source(),
                    json,
                    progress: true,
                };
                runs::run(&globals, &playbook, &input, start).await
            }
            Command::Resume { run_id, all, json } => {
                runs::resume(&globals, run_id, all, json).await
            }
            Command::Status { run_id, json } => runs::status(&globals, &run_id, json),
            Command::Runs { status, json } => runs::runs(&globals, status, json),
            Command::Journal {
                command:
                    Some(JournalCommand::Verify {
                        run_id,
                        all,
                        anchor,
                        allow_unkeyed,
                    }),
                ..
            } => runs::verify(
                &globals,
                &runs::VerifyArgs {
                    run_id,
                    all,
                    anchors: anchor,
                    allow_unkeyed,
                },
            ),
            Command::Journal {
                command: Some(JournalCommand::Adopt { who, run, token }),
                ..
            } => evidence::adopt(&globals, &who, run.as_deref(), &token.source()),
            Command::Journal {
                command: Some(JournalCommand::Keygen),
                ..
            } => runs::keygen(),
            Command::Journal {
                command: Some(JournalCommand::Prune { dry_run }),
                ..
            } => evidence::prune(&globals, dry_run),
            Command::Journal {
                command: None,
                run_id: Some(id),
                json,
            } => runs::show_journal(&globals, &id, json),
            Command::Journal { .. } => {
                Exit::invalid("error: give a RUN_ID, or `verify RUN_ID|--all`")
            }
            Command::Replay {
                bundle: Some(file),
                public_keys,
                unverified,
                ..
            } => evidence::replay_bundle(&globals, &file, &public_keys, unverified),
            Command::Replay {
                run_id: Some(run_id),
                ..
            } => runs::replay(&globals, &run_id).await,
            Command::Replay { .. } => Exit::invalid("error: give a RUN_ID or --bundle FILE"),
            Command::Export { run_id, out } => evidence::export(&globals, &run_id, &out),
            Command::Siem {
                command: SiemCommand::Export,
            } => evidence::siem_export(&globals).await,
            Command::VerifyBundle { file, public_keys } => {
                evidence::verify_bundle(&globals, &file, &public_keys)
            }
            Command::State { command } => state::local(&globals, command),
            Command::Approve { op, reason } => {
                let vote = crate::journal::Vote::Approve;
                approvals::vote(&globals, op.into(), vote, reason).await
            }
            Command::Deny { op, reason } => {
                let vote = crate::journal::Vote::Deny;
                approvals::vote(&globals, op.into(), vote, Some(reason)).await
            }
            Command::Pending { json } => approvals::pending(&globals, json),
            Command::Report {
                since,
                playbook,
                enriched_steps,
                json,
            } => report::report(
                &globals,
                &report::ReportArgs {
                    since,
                    playbook,
                    enriched_steps,
                    json,
                },
            ),
            Command::Resolve {
                op,
                outcome,
                reason,
            } => approvals::resolve(&globals, op.into(), outcome, &reason).await,
            Command::Cancel {
                run_id,
                who,
                reason,
                token,
            } => approvals::cancel(&globals, &run_id, &who, &reason, &token.source()).await,
            Command::Serve => serve(&globals).await,
            Command::Demo { yes, repo, dir } => demo::demo(demo::DemoArgs { yes, repo, dir }).await,
            Command::Plugins { command } => plugins::run(&globals, command).await,
            Command::Cluster { command } => cluster::run(&globals, command).await,
        }
    });
    if let Some(message) = &result.message {
        eprintln!("{message}");
    }
    result.code
}

/// `soar serve`: holds the journal until stopped.
async fn serve(globals: &Globals) -> Exit {
    let config = match globals.config() {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    if let crate::config::JournalBackend::Nats(nats) = &config.backend {
        let nats = nats.clone();
        return serve_on_cluster(globals, config, &nats).await;
    }
    let journal = match runs::journal_within(globals, std::time::Duration::ZERO) {
        Ok(Some(j)) => j,
        Ok(None) => {
            return Exit::failed(
                "error: the journal is held by another soar process; stop it first (one server per data dir)",
            )
        }
        Err(e) => return e,
    };
    if let Some(why) = journal.trust_broken() {
        // Every alert would be acknowledged and then fail to journal.
        return Exit::failed(format!("error: cannot serve: {why}"));
    }
    match crate::server::serve(config, &globals.data_dir, journal).await {
        Ok(()) => Exit::ok(),
        Err(e @ crate::server::ServeError::Playbooks(_)) => Exit::invalid(format!("{e}")),
        Err(e) => Exit::failed(format!("error: {e}")),
    }
}

/// `soar serve` with `journal.backend: nats`: the start-up checks run (a
/// cluster that could lose records is refused with what to change), then
/// this node serves with its runs on the cluster.
async fn serve_on_cluster(
    globals: &Globals,
    config: Config,
    nats: &crate::config::NatsConfig,
) -> Exit {
    let journal = match cluster::open_journal(globals, &config, nats).await {
        Ok(j) => j,
        Err(e) => return e,
    };
    match crate::server::serve(config, &globals.data_dir, journal).await {
        Ok(()) => Exit::ok(),
        Err(e @ crate::server::ServeError::Playbooks(_)) => Exit::invalid(format!("{e}")),
        Err(e) => Exit::failed(format!("error: {e}")),
    }
}

/// Runs `command` through a server when one is given or holds the data
/// dir; gives it back when it is to run here.
async fn through_server(globals: &Globals, command: Command) -> Result<Exit, Command> {
    if let Command::State { .. } = &command {
        return match remote::discover(globals).await {
            Some(url) => match command {
                Command::State { command } => Ok(state::remote(url, command).await),
                other => Err(other),
            },
            None => Err(command),
        };
    }
    let remotable = matches!(
        command,
        Command::Approve { .. }
            | Command::Deny { .. }
            | Command::Resolve { .. }
            | Command::Cancel { .. }
            | Command::Status { .. }
            | Command::Runs { .. }
            | Command::Pending { .. }
            | Command::Report { .. }
            | Command::Journal {
                command: None | Some(JournalCommand::Verify { .. }),
                ..
            }
            | Command::Run { .. }
    );
    // Anchors are checked against the journal itself.
    let anchored = matches!(
        &command,
        Command::Journal {
            command: Some(JournalCommand::Verify { anchor, .. }),
            ..
        } if !anchor.is_empty()
    );
    if !remotable || anchored {
        return Err(command);
    }
    let Some(url) = remote::discover(globals).await else {
        return Err(command);
    };
    Ok(remote_command(url, command).await)
}

async fn remote_command(url: String, command: Command) -> Exit {
    let token = match &command {
        Command::Approve { op, .. } | Command::Deny { op, .. } | Command::Resolve { op, .. } => {
            op.token.source()
        }
        Command::Cancel { token, .. } | Command::Run { token, .. } => token.source(),
        _ => TokenArgs { token_file: None }.source(),
    };
    let r = match remote::Remote::new(url, &token) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let claimed = match &command {
        Command::Approve { op, .. } | Command::Deny { op, .. } | Command::Resolve { op, .. } => {
            Some(op.who.clone())
        }
        Command::Cancel { who, .. } => Some(who.clone()),
        Command::Run { who, .. } => who.clone(),
        _ => None,
    };
    if let Some(claimed) = claimed {
        if let Err(e) = remote::same_principal(&r, &claimed).await {
            return e;
        }
    }
    match command {
        Command::Approve { op, reason } => {
            let reason = reason.unwrap_or_default();
            remote::vote(
                &r,
                &op.run_id,
                &op.step_id,
                crate::journal::Vote::Approve,
                &reason,
                op.json,
            )
            .await
        }
        Command::Deny { op, reason } => {
            remote::vote(
                &r,
                &op.run_id,
                &op.step_id,
                crate::journal::Vote::Deny,
                &reason,
                op.json,
            )
            .await
        }
        Command::Resolve {
            op,
            outcome,
            reason,
        } => remote::resolve(&r, &op.run_id, &op.step_id, outcome, &reason, op.json).await,
        Command::Cancel { run_id, reason, .. } => remote::cancel(&r, &run_id, &reason).await,
        Command::Status { run_id, json } => remote::status(&r, &run_id, json).await,
        Command::Runs { status, json } => remote::runs(&r, status.as_deref(), json).await,
        Command::Pending { json } => remote::pending(&r, json).await,
        Command::Report {
            since,
            playbook,
            enriched_steps,
            json,
        } => {
            let args = report::ReportArgs {
                since,
                playbook,
                enriched_steps,
                json,
            };
            remote::report(&r, &args).await
        }
        Command::Journal {
            command:
                Some(JournalCommand::Verify {
                    run_id,
                    all,
                    allow_unkeyed,
                    ..
                }),
            ..
        } => {
            if run_id.is_none() && !all {
                return Exit::invalid("error: give a RUN_ID or --all");
            }
            remote::verify(&r, run_id.as_deref(), allow_unkeyed).await
        }
        Command::Journal {
            command: None,
            run_id: Some(id),
            json,
        } => remote::journal(&r, &id, json).await,
        Command::Run {
            playbook,
            input,
            json,
            ..
        } => {
            let alert = match runs::read_alert(&input) {
                Ok(a) => a,
                Err(e) => return e,
            };
            match crate::playbook::load(&playbook) {
                Ok(pb) => remote::run(&r, &pb.name, &pb.sha256, alert, json).await,
                Err(ds) => {
                    let text: Vec<String> = ds.iter().map(ToString::to_string).collect();
                    Exit::invalid(text.join("\n"))
                }
            }
        }
        _ => Exit::invalid("error: give a RUN_ID, or `verify RUN_ID|--all`"),
    }
}
