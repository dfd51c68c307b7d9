//! Connecting to the cluster, and the start-up checks that refuse one that
//! could lose acknowledged records: every server's version, its sync
//! setting (where its monitoring port shows it), the stream's replicas and
//! storage, and the lease bucket's. Each refusal says what to change.

use super::dedup::Dedup;
use super::lease::Leases;
use super::live::LiveRuns;
use super::names::Names;
use super::runlog::RunLog;
use super::state::ClusterState;
use super::ClusterError;
use crate::config::NatsConfig;
use async_nats::jetstream::{self, kv, stream, Context};
use async_nats::{ConnectOptions, ServerAddr};
use std::time::Duration;

/// The oldest nats-server the journal runs on: 2.11 brought per-message
/// TTLs; 2.9.21 fixed concurrent publishes with one expected sequence.
pub const MIN_VERSION: (u64, u64, u64) = (2, 11, 0);

/// How long one check may wait for an answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long creating a replicated stream or bucket may take: each elects a
/// Raft group of its own, slow on a loaded or freshly started cluster.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A checked connection to the cluster.
pub struct Cluster {
    /// The run records.
    pub runs: RunLog,
    /// Run ownership.
    pub leases: Leases,
    /// The unfinished runs.
    pub live: LiveRuns,
    /// The state tables.
    pub state: ClusterState,
    /// Dedup claims.
    pub dedup: Dedup,
    /// What was checked, one line each, for the operator.
    pub checked: Vec<String>,
}

/// Connects as `node` and runs every start-up check; creates the stream
/// and the lease bucket when they do not exist yet.
pub async fn connect(config: &NatsConfig, node: &str) -> Result<Cluster, ClusterError> {
    let client = open(config, node).await?;
    let info = client.server_info();
    let mut checked = vec![format!(
        "connected to nats-server {} ({}:{})",
        info.version, info.host, info.port
    )];
    require_version(&info.version, &format!("{}:{}", info.host, info.port))?;
    checked.extend(check_monitors(config).await?);
    let mut js = jetstream::new(client);
    js.set_timeout(TIMEOUT);
    let ops = js.clone();
    js.set_timeout(CREATE_TIMEOUT);
    let js = &js;
    let names = Names::of(config);
    let stream = ensure_stream(js, &names, config).await?;
    checked.push(format!(
        "stream `{}`: {} replicas, file storage, subjects `{}`",
        names.stream,
        config.replicas,
        names.stream_subjects()
    ));
    let kv = ensure_bucket(js, &names.leases, Some(config.lease_ttl), config).await?;
    checked.push(format!(
        "lease bucket `{}`: {} replicas, leases last {:?}",
        names.leases, config.replicas, config.lease_ttl
    ));
    let live = ensure_bucket(js, &names.live, None, config).await?;
    let state = ensure_bucket(js, &names.state, None, config).await?;
    let dedup = ensure_bucket(js, &names.dedup, None, config).await?;
    checked.push(format!(
        "live-run bucket `{}`, state bucket `{}` and dedup bucket `{}`: {} replicas",
        names.live, names.state, names.dedup, config.replicas
    ));
    Ok(Cluster {
        runs: RunLog::new(ops.clone(), stream, names),
        leases: Leases::new(ops.clone(), kv, node.to_string()),
        live: LiveRuns::new(live),
        state: ClusterState::new(ops.clone(), state),
        dedup: Dedup::new(ops, dedup, config.lease_ttl),
        checked,
    })
}

async fn open(config: &NatsConfig, node: &str) -> Result<async_nats::Client, ClusterError> {
    let mut options = ConnectOptions::new()
        .name(format!("soar {node}"))
        .connection_timeout(TIMEOUT);
    if let Some(source) = &config.credentials {
        let creds = source
            .load()
            .map_err(|e| ClusterError::Credentials(e.to_string()))?;
        options = options
            .credentials(creds.expose())
            .map_err(|e| ClusterError::Credentials(format!("not a NATS .creds file: {e}")))?;
    }
    let addrs = config
        .servers
        .iter()
        .map(|s| s.parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClusterError::Unavailable(format!("journal.servers: {e}")))?;
    options.connect(addrs).await.map_err(|e| {
        ClusterError::Unavailable(format!(
            "cannot connect to any of {}: {e}",
            config.servers.join(", ")
        ))
    })
}

/// `2.11.0`, `2.12.8-RC.1`: the numbers before any suffix.
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn require_version(version: &str, server: &str) -> Result<(), ClusterError> {
    match parse_version(version) {
        Some(v) if v >= MIN_VERSION => Ok(()),
        _ => Err(ClusterError::TooOld {
            server: server.to_string(),
            version: version.to_string(),
        }),
    }
}

/// Each monitoring URL's `/varz`: the server's version and whether it
/// syncs every write. None configured is said, not silently passed.
async fn check_monitors(config: &NatsConfig) -> Result<Vec<String>, ClusterError> {
    if config.monitor.is_empty() {
        return Ok(vec!["sync setting NOT checked: list the servers' monitoring URLs in `journal.monitor` to have soar refuse a server without `sync_interval: always`".into()]);
    }
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
    let mut out = Vec::new();
    for url in &config.monitor {
        // A server that is down takes no writes and cannot lose any: the
        // cluster runs on without it, and so does a node starting now.
        // Said, not silently passed; it is checked when it answers again.
        let varz = match fetch_varz(&http, url).await {
            Ok(v) => v,
            Err(e) => {
                out.push(format!("sync setting NOT checked at {url}: {e}"));
                continue;
            }
        };
        let name = varz["server_name"].as_str().unwrap_or("?").to_string();
        require_version(
            varz["version"].as_str().unwrap_or("?"),
            &format!("{name} ({url})"),
        )?;
        let js = &varz["jetstream"]["config"];
        if js.is_null() {
            return Err(ClusterError::Misconfigured(format!("server `{name}` ({url}) has JetStream off: enable it with a `jetstream {{ store_dir: ..., sync_interval: always }}` block")));
        }
        if js["sync_always"].as_bool() != Some(true) {
            let ns = js["sync_interval"].as_u64().unwrap_or(120_000_000_000);
            return Err(ClusterError::NotSynced {
                server: name,
                url: url.clone(),
                interval: humantime::format_duration(Duration::from_nanos(ns)).to_string(),
            });
        }
        out.push(format!(
            "server `{name}` ({url}): {}, syncs every write",
            varz["version"].as_str().unwrap_or("?")
        ));
    }
    Ok(out)
}

async fn fetch_varz(http: &reqwest::Client, url: &str) -> Result<serde_json::Value, ClusterError> {
    let target = format!("{}/varz", url.trim_end_matches('/'));
    let failed = |e: &dyn std::fmt::Display| {
        ClusterError::Unavailable(format!("journal.monitor `{url}`: {e}"))
    };
    let response = http.get(&target).send().await.map_err(|e| failed(&e))?;
    // /varz is a few KiB; a large answer is not a NATS server.
    let body = response.bytes().await.map_err(|e| failed(&e))?;
    if body.len() > 1 << 20 {
        return Err(failed(&"the answer is larger than 1 MiB"));
    }
    serde_json::from_slice(&body).map_err(|e| failed(&e))
}

/// The run stream: created if missing, otherwise checked.
async fn ensure_stream(
    js: &Context,
    names: &Names,
    config: &NatsConfig,
) -> Result<stream::Stream, ClusterError> {
    let wanted = stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.stream_subjects()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        // Records are removed only by retention (a subject purge), never
        // one by one.
        deny_delete: true,
        ..Default::default()
    };
    // A fresh cluster may still be electing: a creation that timed out
    // is looked for, then tried again.
    let mut tries = 0;
    let mut stream = loop {
        tries += 1;
        match js.get_or_create_stream(wanted.clone()).await {
            Ok(stream) => break stream,
            Err(_) if tries < 10 => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => {
                return Err(ClusterError::Misconfigured(format!("cannot create the journal stream `{}` with {} replicas on file storage: {e} (a stream of {} replicas needs at least {} JetStream servers in the cluster)", names.stream, config.replicas, config.replicas, config.replicas)))
            }
        }
    };
    let info = wait_for_leader(&mut stream, &names.stream).await?;
    let have = &info.config;
    if have.num_replicas < config.replicas {
        return Err(ClusterError::Misconfigured(format!("stream `{}` has {} replica(s), and the journal needs {} (`journal.replicas`): one server's loss would lose acknowledged records or stop the journal. Raise it with `nats stream edit {} --replicas {}`", names.stream, have.num_replicas, config.replicas, names.stream, config.replicas)));
    }
    if have.storage != stream::StorageType::File {
        return Err(ClusterError::Misconfigured(format!("stream `{}` keeps its messages in memory: a restart of its servers loses the journal. Create it again with file storage (`nats stream add {} --storage file`)", names.stream, names.stream)));
    }
    if !have.subjects.contains(&names.stream_subjects()) {
        return Err(ClusterError::Misconfigured(format!("stream `{}` does not take the subjects `{}` (it takes {:?}): it belongs to something else; name another with `journal.stream`", names.stream, names.stream_subjects(), have.subjects)));
    }
    Ok(stream)
}

/// A key-value bucket (`ttl`: entries expire that long after their last
/// write): created if missing, otherwise checked.
async fn ensure_bucket(
    js: &Context,
    bucket: &str,
    ttl: Option<Duration>,
    config: &NatsConfig,
) -> Result<kv::Store, ClusterError> {
    let ttl = ttl.unwrap_or_default();
    let wanted = kv::Config {
        bucket: bucket.to_string(),
        history: 1,
        max_age: ttl,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        ..Default::default()
    };
    let store = create_bucket(js, bucket, wanted).await?;
    let mut backing = store.stream.clone();
    let info = wait_for_leader(&mut backing, bucket).await?;
    let have = &info.config;
    if have.num_replicas < config.replicas {
        return Err(ClusterError::Misconfigured(format!("bucket `{bucket}` has {} replica(s), and the journal needs {}: raise it with `nats kv edit {bucket} --replicas {}`", have.num_replicas, config.replicas, config.replicas)));
    }
    if have.storage != stream::StorageType::File {
        return Err(ClusterError::Misconfigured(format!("bucket `{bucket}` keeps its entries in memory: delete it and let soar create it on file storage")));
    }
    if have.max_age != ttl {
        return Err(ClusterError::Misconfigured(format!("bucket `{bucket}` expires entries after {:?}, and this node wants {ttl:?} (`journal.lease_ttl` for the lease bucket, none otherwise): every node must use the same lease_ttl", have.max_age)));
    }
    Ok(store)
}

/// The bucket, created if missing. A fresh or loaded cluster may answer
/// a creation with "no suitable peers" (a peer it briefly counts offline)
/// or time out after creating it: looked for again, and tried again, a
/// few times, 500 ms apart.
async fn create_bucket(
    js: &Context,
    bucket: &str,
    wanted: kv::Config,
) -> Result<kv::Store, ClusterError> {
    let mut tries = 0;
    loop {
        if let Ok(store) = js.get_key_value(bucket).await {
            return Ok(store);
        }
        match js.create_key_value(wanted.clone()).await {
            Ok(store) => return Ok(store),
            Err(_) if tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(ClusterError::Misconfigured(format!(
                    "cannot create the bucket `{bucket}`: {e}"
                )))
            }
        }
    }
}

/// A stream's info once its replicas elected a leader: appends before
/// that find no one to answer (a stream just created on a busy cluster).
async fn wait_for_leader(
    stream: &mut stream::Stream,
    name: &str,
) -> Result<stream::Info, ClusterError> {
    let deadline = tokio::time::Instant::now() + CREATE_TIMEOUT;
    loop {
        let info = stream
            .info()
            .await
            .map_err(|e| ClusterError::Unavailable(format!("`{name}`: {e}")))?
            .clone();
        let led = info.cluster.as_ref().is_none_or(|c| c.leader.is_some());
        if led {
            return Ok(info);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::Unavailable(format!("`{name}` elected no leader in {CREATE_TIMEOUT:?}: are a majority of its servers up?")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_below_the_minimum_are_refused_and_suffixes_do_not_confuse() {
        assert!(require_version("2.11.0", "s").is_ok());
        assert!(require_version("2.15.1", "s").is_ok());
        assert!(require_version("3.0", "s").is_ok());
        assert!(require_version("2.10.26", "s").is_err());
        assert!(require_version("2.9.21", "s").is_err());
        assert!(require_version("2.12.8-RC.1", "s").is_ok());
        assert!(require_version("garbage", "s").is_err());
        assert!(require_version("", "s").is_err());
        let e = require_version("2.10.26", "h:1").unwrap_err().to_string();
        assert!(
            e.contains("2.10.26") && e.contains("2.11.0") && e.contains("upgrade"),
            "{e}"
        );
    }
}
