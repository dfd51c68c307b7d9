//! `soar cluster check`: connects to the configured NATS JetStream cluster
//! and runs the start-up checks `soar serve` will run, printing each.

use super::{Exit, Globals};
use crate::config::JournalBackend;
use crate::journal::jetstream;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Check the cluster journal (`journal.backend: nats`): server versions,
    /// sync settings, the stream's and lease bucket's replicas (creating
    /// them when missing); exit 1 with what to change otherwise
    Check {
        /// This node's name in leases [default: the host name]
        #[arg(long)]
        node: Option<String>,
    },
}

/// Runs a `soar cluster` command.
pub async fn run(globals: &Globals, command: ClusterCommand) -> Exit {
    let ClusterCommand::Check { node } = command;
    let config = match globals.config() {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let JournalBackend::Nats(nats) = &config.backend else {
        return Exit::invalid(format!(
            "error: {}: `journal.backend` is sled (the journal is in the data dir); `soar cluster check` is for `backend: nats`",
            config.path.display()
        ));
    };
    let node = node.unwrap_or_else(node_name);
    match jetstream::connect(nats, &node).await {
        Ok(cluster) => {
            for line in &cluster.checked {
                println!("ok: {line}");
            }
            Exit::ok()
        }
        Err(e) => Exit::failed(format!(
            "error: {}: the cluster journal cannot be used: {e}",
            config.path.display()
        )),
    }
}

/// This node's name in leases: `SOAR_NODE`, or the host's name and this
/// process's id (two nodes on one host stay apart).
pub fn node_name() -> String {
    if let Some(name) = std::env::var("SOAR_NODE")
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        return name.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "soar".into());
    format!("{host}-{}", std::process::id())
}

/// The journal on the cluster, after every start-up check: runs there,
/// this node's own records in `<data dir>/node`. A signing key is refused:
/// checkpoints are not kept on the cluster yet, and records written
/// unsigned must not pass for signed ones.
pub async fn open_journal(
    globals: &Globals,
    config: &crate::config::Config,
    nats: &crate::config::NatsConfig,
) -> Result<crate::journal::Journal, Exit> {
    let path = config.path.display();
    let keys = config
        .journal_keys
        .load()
        .map_err(|e| Exit::invalid(format!("error: {e}")))?;
    if keys.signing.is_some() {
        return Err(Exit::invalid(format!("error: {path}: `journal.signing_key` with `journal.backend: nats`: signed checkpoints are not kept on the cluster journal yet; remove the key or use `backend: sled` (see docs/cluster.md)")));
    }
    let cluster = jetstream::connect(nats, &node_name()).await.map_err(|e| {
        Exit::failed(format!(
            "error: {path}: the cluster journal cannot be used: {e}"
        ))
    })?;
    crate::journal::Journal::on_cluster(&globals.data_dir.join("node"), cluster, nats.lease_ttl)
        .map_err(|e| Exit::failed(format!("error: cannot open this node's store: {e}")))
}
