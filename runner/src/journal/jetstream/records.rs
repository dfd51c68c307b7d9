//! Journal records on the cluster, in the same stored form and hash chain
//! as the sled journal (`store.rs`, `canonical.rs`): a run's records are
//! appended through the fenced run log, and reading one back checks every
//! link, so a record forged on the stream by someone with write access to
//! the cluster is named, not believed. Large values go to content-addressed
//! blob subjects of the same stream, as sled's go to its `blobs` tree.

use super::super::canonical::{record_hash, sha256_hex, GENESIS_HASH};
use super::super::store::{self, blob_ref, large_slot_mut, StoredRecord, StoredRecordRef};
use super::super::{time, Event, Record};
use super::runlog::{Append, RunLog};
use super::ClusterError;
use bytes::Bytes;

/// Most records one run may hold on the cluster (a read beyond is refused).
pub const MAX_RECORDS: usize = 100_000;

/// The largest message the journal publishes: nats-server's default
/// `max_payload` (1 MiB), less room for headers. A larger one would be
/// refused by the server on every try.
pub const MAX_MESSAGE: usize = (1 << 20) - 4096;

/// Refuses a record (or one of its large values) the server would refuse
/// on every try, naming it, before anything of it is stored.
fn fits(run_id: &str, event: &Event, bytes: usize) -> Result<(), ClusterError> {
    if bytes <= MAX_MESSAGE {
        return Ok(());
    }
    Err(ClusterError::Misconfigured(format!(
        "run `{run_id}`: a {} record of {bytes} bytes is larger than the cluster journal takes ({MAX_MESSAGE} bytes, nats-server's default max_payload); the value that makes it so is too large for the cluster journal",
        event.kind()
    )))
}

/// Where a run's chain ends: what the next append builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The last record's seq (0 before the first).
    pub seq: u64,
    /// Its hash (the genesis hash before the first).
    pub hash: String,
    /// Its stream sequence: the fence of the next append.
    pub stream_seq: Option<u64>,
}

impl Tail {
    /// A run with no record yet.
    pub fn empty() -> Tail {
        Tail {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
            stream_seq: None,
        }
    }
}

/// Appends `event` to `run_id` after `tail`, and moves `tail` on. Refused
/// with [`ClusterError::Fenced`] when another node appended since `tail`.
pub async fn append(
    log: &RunLog,
    run_id: &str,
    tail: &mut Tail,
    event: &Event,
) -> Result<Record, ClusterError> {
    let prepared = store::prepare(event).map_err(|e| ClusterError::Corrupt(e.to_string()))?;
    for (_, bytes) in &prepared.blobs {
        fits(run_id, event, bytes.len())?;
    }
    for (digest, bytes) in &prepared.blobs {
        log.put_blob(digest, Bytes::from(bytes.clone())).await?;
    }
    let (seq, at) = (tail.seq + 1, time::now());
    let hash = record_hash(&tail.hash, seq, &at, &prepared.canonical);
    let stored = serde_json::to_vec(&StoredRecordRef {
        seq,
        at: &at,
        prev_hash: &tail.hash,
        hash: &hash,
        event: &prepared.stored_event,
    })
    .map_err(|e| ClusterError::Corrupt(e.to_string()))?;
    fits(run_id, event, stored.len())?;
    let place = Append {
        seq,
        hash: &hash,
        after: tail.stream_seq,
    };
    let stream_seq = log.append(run_id, place, Bytes::from(stored)).await?;
    let record = Record {
        seq,
        at,
        prev_hash: std::mem::replace(&mut tail.hash, hash.clone()),
        hash,
        event: event.clone(),
    };
    tail.seq = seq;
    tail.stream_seq = Some(stream_seq);
    Ok(record)
}

/// Every record of `run_id` with its large values inlined, each link
/// checked, and the tail to append after.
pub async fn read(log: &RunLog, run_id: &str) -> Result<(Vec<Record>, Tail), ClusterError> {
    let mut tail = Tail::empty();
    let mut out = Vec::new();
    for stored in log.read(run_id, MAX_RECORDS).await? {
        let corrupt = |why: String| {
            ClusterError::Corrupt(format!(
                "run `{run_id}`, seq {} (stream sequence {}): {why}",
                tail.seq + 1,
                stored.stream_seq
            ))
        };
        let record: StoredRecord = serde_json::from_slice(&stored.payload)
            .map_err(|e| corrupt(format!("undecodable record: {e}")))?;
        let canonical = serde_json::to_string(&record.event).map_err(|e| corrupt(e.to_string()))?;
        if record.seq != tail.seq + 1 || record.prev_hash != tail.hash {
            return Err(corrupt(format!(
                "out of chain (seq {}, prev_hash {}): a record was inserted, removed or reordered",
                record.seq, record.prev_hash
            )));
        }
        if record_hash(&record.prev_hash, record.seq, &record.at, &canonical) != record.hash {
            return Err(corrupt(
                "its hash does not match its content (edited)".into(),
            ));
        }
        let mut event = record.event;
        inline_blob(log, &mut event).await.map_err(corrupt)?;
        let event: Event = serde_json::from_value(event)
            .map_err(|e| corrupt(format!("undecodable event: {e}")))?;
        tail = Tail {
            seq: record.seq,
            hash: record.hash.clone(),
            stream_seq: Some(stored.stream_seq),
        };
        out.push(Record {
            seq: record.seq,
            at: record.at,
            prev_hash: record.prev_hash,
            hash: record.hash,
            event,
        });
    }
    Ok((out, tail))
}

/// Replaces a `{"$blob": ..}` reference by its value, checked against its
/// digest and size.
async fn inline_blob(log: &RunLog, event: &mut serde_json::Value) -> Result<(), String> {
    let Some(slot) = large_slot_mut(event) else {
        return Ok(());
    };
    let Some((digest, size)) = blob_ref(slot).map(|(d, s)| (d.to_string(), s)) else {
        return Ok(());
    };
    let bytes = log
        .get_blob(&digest)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("blob {digest} missing"))?;
    if sha256_hex(&bytes) != digest || bytes.len() as u64 != size {
        return Err(format!(
            "blob {digest} does not match its digest or size (edited)"
        ));
    }
    *slot =
        serde_json::from_slice(&bytes).map_err(|e| format!("undecodable blob {digest}: {e}"))?;
    Ok(())
}
