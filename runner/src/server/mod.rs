//! `soar serve`: the runner as a service. It holds the journal, resumes
//! every unfinished run before it is ready, takes signed alert webhooks
//! (`intake/`) and an authenticated JSON API (`api.rs`), denies approvals
//! at their expiry (`timers.rs`), exposes Prometheus metrics, and stops
//! gracefully. Every rule it applies lives in [`crate::operations`].

// Handlers answer refusals as `Err(Response)`: each is built once and
// returned at once, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod api;
mod app;
mod auth;
mod console;
mod intake;
mod security;
mod slack;
mod state_api;
mod timers;
mod wait;

/// The action ids of the Slack buttons `approval.notify` posts.
pub mod slack_actions {
    /// Approve.
    pub const APPROVE: &str = super::slack::APPROVE_ACTION;
    /// Deny.
    pub const DENY: &str = super::slack::DENY_ACTION;
}

pub use app::App;

use crate::config::Config;
use crate::journal::Journal;
use crate::plugin_host::PluginHost;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A playbook of a source or of `server.playbooks` is invalid.
    #[error("{}\nerror: the server's playbooks are invalid", .0.join("\n"))]
    Playbooks(Vec<String>),
    /// TLS key pair unusable.
    #[error("server.tls: {0}")]
    Tls(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else at start.
    #[error("{0}")]
    Start(String),
}

/// The file beside the journal that tells CLI commands a server holds it.
pub fn address_file(data_dir: &Path) -> PathBuf {
    data_dir.join("server.json")
}

/// Every route (method, path template), as `router` serves them; a test
/// checks each is in `openapi.json` and another that each is served.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/hooks/{source}"),
    ("POST", "/hooks/{source}"),
    ("POST", "/hooks/{source}/{token}"),
    ("POST", "/slack/interactions"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/whoami"),
    ("GET", "/api/v1/runs"),
    ("POST", "/api/v1/runs"),
    ("GET", "/api/v1/runs/{run_id}"),
    ("GET", "/api/v1/runs/{run_id}/journal"),
    ("GET", "/api/v1/runs/{run_id}/events"),
    ("POST", "/api/v1/runs/{run_id}/cancel"),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/approve"),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/deny"),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/resolve"),
    ("GET", "/api/v1/approvals"),
    ("GET", "/api/v1/journal/verify"),
    ("GET", "/api/v1/security/events"),
    ("GET", "/api/v1/metrics/summary"),
    ("GET", "/api/v1/playbooks"),
    ("GET", "/api/v1/state"),
    ("GET", "/api/v1/state/{table}/entries"),
    ("GET", "/api/v1/state/{table}/entries/{key}"),
    ("PUT", "/api/v1/state/{table}/entries/{key}"),
    ("DELETE", "/api/v1/state/{table}/entries/{key}"),
    ("GET", "/api/v1/state/{table}/entries/{key}/log"),
    ("POST", "/api/v1/state/{table}/import"),
    ("GET", "/api/v1/state/{table}/export"),
];

/// The routes.
fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(api::openapi))
        .route("/whoami", get(api::whoami))
        .route("/runs", get(api::list_runs).post(api::start_run))
        .route("/runs/{run_id}", get(api::run_status))
        .route("/runs/{run_id}/journal", get(api::run_journal))
        .route("/runs/{run_id}/events", get(api::run_events))
        .route("/runs/{run_id}/cancel", post(api::cancel))
        .route("/runs/{run_id}/steps/{step}/approve", post(api::approve))
        .route("/runs/{run_id}/steps/{step}/deny", post(api::deny))
        .route("/runs/{run_id}/steps/{step}/resolve", post(api::resolve))
        .route("/approvals", get(api::pending))
        .route("/journal/verify", get(api::verify))
        .route("/security/events", get(api::security_events))
        .route("/metrics/summary", get(api::metrics_summary))
        .route("/playbooks", get(api::playbooks))
        .route("/state", get(state_api::tables))
        .route("/state/{table}/entries", get(state_api::list))
        .route(
            "/state/{table}/entries/{key}",
            get(state_api::get)
                .put(state_api::put)
                .delete(state_api::delete),
        )
        .route("/state/{table}/entries/{key}/log", get(state_api::log))
        .route("/state/{table}/import", post(state_api::import))
        .route("/state/{table}/export", get(state_api::export));
    let max_body = app.config.server.max_body;
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/hooks/{source}", post(intake::deliver).get(intake::verify))
        .route("/hooks/{source}/{token}", post(intake::deliver_with_token))
        .route("/slack/interactions", post(slack::interactions))
        .nest("/api/v1", api)
        .merge(console::routes())
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn(api::log_request))
        .with_state(app)
}

/// Serves until SIGTERM or SIGINT, then stops gracefully (see
/// [`App::shutdown`]).
pub async fn serve(config: Config, data_dir: &Path, journal: Journal) -> Result<(), ServeError> {
    let host = PluginHost::load(&config, &data_dir.join("cache").join("components"))
        .await
        .map(Arc::new)
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let app = App::new(config, host, journal)?;
    let tls = match &app.config.server.tls {
        Some(t) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key)
                    .await
                    .map_err(|e| ServeError::Tls(e.to_string()))?,
            )
        }
        None => None,
    };
    let addr = app.config.server.listen;
    let handle = axum_server::Handle::new();
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = {
        let handle = handle.clone();
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ServeError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServeError::Start(e.to_string()))?;
        tokio::spawn(async move {
            let r = match tls {
                Some(tls) => {
                    let mut server = axum_server::tls_rustls::from_tcp_rustls(listener, tls);
                    slow_clients_out(server.http_builder());
                    server.handle(handle).serve(service).await
                }
                None => {
                    let mut server = axum_server::from_tcp(listener);
                    slow_clients_out(server.http_builder());
                    server.handle(handle).serve(service).await
                }
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "the HTTP server failed");
            }
        })
    };
    let bound = handle
        .listening()
        .await
        .ok_or_else(|| ServeError::Start("the HTTP server did not start".into()))?;
    let scheme = if app.config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{bound}");
    tracing::info!(%url, "listening; resuming unfinished runs");
    let resumed = app.resume_all().await;
    app.set_ready();
    write_address(data_dir, &url);
    eprintln!("soar serve: listening on {url}; resumed {resumed} run(s); ready");
    tokio::spawn(timers::run(app.clone()));
    // Reads every final run not yet in the metrics cache once, in the
    // background, so the first Overview after a restart is warm.
    let warm = app.clone();
    tokio::spawn(async move {
        let now = crate::journal::now_unix_millis();
        let q = crate::operations::metrics::Query {
            from_ms: now.saturating_sub(86_400_000),
            to_ms: now,
            playbook: None,
            enriched_steps: 1,
        };
        if let Err(e) = warm.summary(q).await {
            tracing::warn!(error = %e, "cannot warm the metrics cache");
        }
    });
    let upkeep = app.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.metrics_upkeep();
        }
    });
    tokio::spawn(prune_periodically(app.clone(), data_dir.to_path_buf()));
    tokio::spawn(export_periodically(app.clone(), data_dir.to_path_buf()));
    if let crate::config::JournalBackend::Nats(nats) = &app.config.backend {
        tokio::spawn(take_over_periodically(app.clone(), nats.lease_ttl));
    }
    shutdown_signal().await;
    eprintln!("soar serve: stopping: new work is refused; in-flight attempts finish");
    app.shutdown().await;
    handle.graceful_shutdown(Some(Duration::from_secs(2)));
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    let _ = std::fs::remove_file(address_file(data_dir));
    eprintln!("soar serve: stopped; the journal is durable");
    Ok(())
}

/// On a cluster: four times per lease TTL, claims the runs whose node died
/// (their lease expired) and resumes them here, as `soar resume` would.
/// Another node scanning at the same moment wins some of them; each run
/// is claimed by one node only.
async fn take_over_periodically(app: Arc<App>, lease_ttl: Duration) {
    let every = (lease_ttl / 4).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        if app.is_stopping() {
            return;
        }
        match app.journal().take_over().await {
            Ok(runs) => {
                for run_id in runs {
                    tracing::warn!(
                        run_id,
                        "took over a run whose node stopped renewing its lease"
                    );
                    app.kick(&run_id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "the takeover scan failed; trying again"),
        }
    }
}

/// Exports new journal records to the `siem:` sinks every 5 s.
async fn export_periodically(app: Arc<App>, data_dir: std::path::PathBuf) {
    let siem = app.config.siem.clone();
    if siem.file.is_none() && siem.http.is_none() {
        return;
    }
    loop {
        if let Err(e) = crate::siem::export(app.journal(), &siem, &data_dir).await {
            tracing::warn!(error = %e, "siem export; retrying in 5 s");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// How often `soar serve` applies `journal.retention`.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Applies the retention rules at start and then every [`PRUNE_EVERY`]
/// (on a blocking thread: pruning reads and removes whole runs).
async fn prune_periodically(app: Arc<App>, data_dir: std::path::PathBuf) {
    if app.config.retention.is_empty() {
        return;
    }
    loop {
        let journal = app.journal().clone();
        let rules = app.config.retention.clone();
        let siem = app.config.siem.clone();
        let data_dir = data_dir.clone();
        let done = tokio::task::spawn_blocking(move || {
            use crate::operations::retention;
            let now = crate::journal::now_unix_millis();
            let exports = crate::siem::exported(&siem, &data_dir)
                .map_err(|e| crate::operations::OpError::Failed(e.to_string()))?;
            let planned = retention::plan(&journal, &rules, now, &exports)?;
            let results: Vec<_> = retention::prune(&journal, &planned)
                .into_iter()
                .map(|(p, r)| (p.clone(), r))
                .collect();
            Ok::<_, crate::operations::OpError>(results)
        })
        .await;
        match done {
            Ok(Ok(results)) => {
                for (p, r) in results {
                    match r {
                        Ok(_) => tracing::info!(run_id = %p.run_id, rule = %p.rule, "pruned"),
                        Err(e) => tracing::warn!(run_id = %p.run_id, error = %e, "not pruned"),
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "retention: cannot plan"),
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// A client gets [`HEADER_READ_TIMEOUT`] to send its request head: a
/// connection trickling headers one byte at a time is closed, not kept.
fn slow_clients_out(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
}

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn write_address(data_dir: &Path, url: &str) {
    let body = serde_json::json!({"url": url, "pid": std::process::id()}).to_string();
    let path = address_file(data_dir);
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, &path)) {
        tracing::warn!(error = %e, "cannot write the server's address file");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else_is() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("openapi.json parses");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not documented"))[method.to_lowercase()];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| {
                ["get", "post", "put", "delete", "patch"]
                    .iter()
                    .filter(|m| p.get(**m).is_some())
                    .count()
            })
            .sum();
        assert_eq!(documented, ROUTES.len(), "a documented route is not served");
    }
}
