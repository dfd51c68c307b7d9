//! soar: a durable, fail-closed playbook runner for security operations.
//!
//! Architecture at a glance: [`config`] (the operator's grants) feeds the
//! [`plugin_host`] (connectors in a wasmtime sandbox); [`cli`] is thin glue.
//! YAML is parsed in [`yaml`] only; secret values live in [`secrets`];
//! text from outside is made [`inert`] before it reaches a terminal.

pub mod approvals;
pub mod cli;
pub mod config;
pub mod inert;
pub mod journal;
pub mod names;
pub mod observe;
pub mod operations;
pub mod playbook;
pub mod playtest;
pub mod plugin_host;
pub mod retry;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod siem;
pub mod state;
pub mod template;
pub mod yaml;
