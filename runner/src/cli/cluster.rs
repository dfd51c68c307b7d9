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

/// The host's name, or `soar` where it cannot be read.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "soar".into())
}
