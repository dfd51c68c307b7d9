//! The on-disk layout: sled trees, key encoding, the stored record and head,
//! and moving large values out to the `blobs` tree (and back on read).

use super::canonical::sha256_hex;
use super::{Event, JournalError, Record};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Tree of records, keyed by [`record_key`].
pub(crate) const RECORDS: &str = "records";
/// Tree of each run's last `{seq, hash}`, keyed by run id.
pub(crate) const HEADS: &str = "heads";
/// Tree of dedup key → run id.
pub(crate) const DEDUP: &str = "dedup";
/// Tree of large values, keyed by the hex SHA-256 of their JSON.
pub(crate) const BLOBS: &str = "blobs";
/// Tree of run ids in creation order, keyed by a sled-generated monotonic id
/// (big-endian), so listing runs oldest first needs no sort or clock.
pub(crate) const RUNS: &str = "runs";

/// Values whose JSON is larger than this are stored once in `blobs`.
pub(crate) const BLOB_THRESHOLD: usize = 64 * 1024;

/// `run_id ++ 0x00 ++ seq (big-endian)`: a run's records are contiguous and
/// in seq order. Run ids cannot contain NUL (see [`check_run_id`]), so one
/// run's prefix is never a prefix of another's.
pub(crate) fn record_key(run_id: &str, seq: u64) -> Vec<u8> {
    let mut key = run_prefix(run_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `run_id ++ 0x00`.
pub(crate) fn run_prefix(run_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(run_id.len() + 9);
    key.extend_from_slice(run_id.as_bytes());
    key.push(0);
    key
}

/// The seq of a key under `prefix`, or `None` for a malformed key.
pub(crate) fn key_seq(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Refuses run ids the key scheme cannot hold.
pub(crate) fn check_run_id(run_id: &str) -> Result<(), JournalError> {
    if run_id.is_empty() || run_id.contains('\0') {
        return Err(JournalError::Encode(format!(
            "invalid run id {run_id:?}: it must be non-empty and contain no NUL byte"
        )));
    }
    Ok(())
}

/// A record as written in the `records` tree. The event is nested (not
/// flattened as in the public [`Record`](super::Record)) so event fields can
/// never collide with the record's own.
#[derive(Serialize)]
pub(crate) struct StoredRecordRef<'a> {
    pub seq: u64,
    pub at: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub event: &'a Value,
}

/// A record read back from the `records` tree.
#[derive(Deserialize)]
pub(crate) struct StoredRecord {
    pub seq: u64,
    pub at: String,
    pub prev_hash: String,
    pub hash: String,
    pub event: Value,
}

/// Where a stored record sits in its chain, read without its event.
#[derive(Deserialize)]
pub(crate) struct Link {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
}

/// Reads the chain fields of a stored record.
pub(crate) fn decode_link(bytes: &[u8]) -> Result<Link, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// The `heads` value: the last record of a run (see `commit_record` in
/// `mod.rs` for the one record a crash may leave past it).
#[derive(Serialize, Deserialize)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Head, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("unreadable head: {e}"))
    }
}

/// An event ready to be stored: large values moved out, and the canonical
/// text the hash covers.
pub(crate) struct Prepared {
    /// The stored form (with `$blob` references).
    pub stored_event: Value,
    /// Canonical JSON of `stored_event`.
    pub canonical: String,
    /// `(digest, JSON bytes)` of each value moved to `blobs`.
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// Serializes `event` and moves its large value (if any) out to a blob.
pub(crate) fn prepare(event: &Event) -> Result<Prepared, JournalError> {
    let encode = |e: serde_json::Error| JournalError::Encode(e.to_string());
    let mut stored_event = serde_json::to_value(event).map_err(encode)?;
    let mut blobs = Vec::new();
    if let Some(slot) = large_slot_mut(&mut stored_event) {
        let bytes = serde_json::to_vec(slot).map_err(encode)?;
        // A value that itself looks like a reference is stored as a blob too,
        // so read() never mistakes a plugin's output for one of ours.
        if bytes.len() > BLOB_THRESHOLD || blob_ref(slot).is_some() {
            let digest = sha256_hex(&bytes);
            *slot = json!({ "$blob": digest, "size": bytes.len() });
            blobs.push((digest, bytes));
        }
    }
    // serde_json writes a `Value` with its keys sorted (its map is a
    // BTreeMap), no whitespace, and strings escaped as canonical JSON does:
    // its text already is the canonical form verify() derives from disk.
    // (`canonical::tests::serde_json_text_of_a_value_is_canonical` fails if
    // a feature such as `preserve_order` ever changes that.)
    let canonical = serde_json::to_string(&stored_event).map_err(encode)?;
    #[cfg(test)]
    assert_eq!(
        super::canonical::Json::parse(&canonical)
            .map(|j| j.canonical())
            .as_ref(),
        Ok(&canonical)
    );
    Ok(Prepared {
        stored_event,
        canonical,
        blobs,
    })
}

/// The one place in a serialized event that may hold a large value: an
/// attempt's successful output, a step's output, a run's outputs.
pub(crate) fn large_slot(event: &Value) -> Option<&Value> {
    match event.get("type")?.as_str()? {
        "attempt_finished" => {
            let outcome = event.get("outcome")?;
            if outcome.get("result")?.as_str()? == "ok" {
                outcome.get("output")
            } else {
                None
            }
        }
        "step_finished" => event.get("output"),
        "run_finished" => event.get("outputs"),
        _ => None,
    }
}

/// Mutable twin of [`large_slot`].
pub(crate) fn large_slot_mut(event: &mut Value) -> Option<&mut Value> {
    match event.get("type")?.as_str()? {
        "attempt_finished" => {
            let outcome = event.get_mut("outcome")?;
            if outcome.get("result")?.as_str()? == "ok" {
                outcome.get_mut("output")
            } else {
                None
            }
        }
        "step_finished" => event.get_mut("output"),
        "run_finished" => event.get_mut("outputs"),
        _ => None,
    }
}

/// `(digest, size)` if `v` is exactly `{"$blob": "<sha256>", "size": N}`.
pub(crate) fn blob_ref(v: &Value) -> Option<(&str, u64)> {
    let obj = v.as_object()?;
    if obj.len() != 2 {
        return None;
    }
    Some((obj.get("$blob")?.as_str()?, obj.get("size")?.as_u64()?))
}

/// Why a referenced blob cannot be trusted, if it cannot.
pub(crate) fn check_blob(
    blobs: &sled::Tree,
    digest: &str,
    size: u64,
) -> Result<Result<Vec<u8>, String>, JournalError> {
    let Some(bytes) = blobs.get(digest.as_bytes()).map_err(storage)? else {
        return Ok(Err(format!("blob {digest} missing (blob deleted)")));
    };
    if sha256_hex(&bytes) != digest {
        return Ok(Err(format!(
            "blob {digest} does not match its digest (blob edited)"
        )));
    }
    if bytes.len() as u64 != size {
        return Ok(Err(format!(
            "blob {digest} is {} bytes, the record says {size}",
            bytes.len()
        )));
    }
    Ok(Ok(bytes.to_vec()))
}

/// Decodes a stored record; with `inline`, blob references are replaced by
/// their (digest-checked) values. Any failure names the record's seq.
pub(crate) fn decode(
    blobs: &sled::Tree,
    run_id: &str,
    seq: u64,
    bytes: &[u8],
    inline: bool,
) -> Result<Record, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt {
        run_id: run_id.to_string(),
        seq,
        reason,
    };
    let stored: StoredRecord =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("undecodable record: {e}")))?;
    let mut event_value = stored.event;
    if inline {
        if let Some(slot) = large_slot_mut(&mut event_value) {
            if let Some((digest, size)) = blob_ref(slot) {
                let bytes = check_blob(blobs, digest, size)?.map_err(corrupt)?;
                *slot = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(format!("undecodable blob {digest}: {e}")))?;
            }
        }
    }
    let event: Event = serde_json::from_value(event_value)
        .map_err(|e| corrupt(format!("undecodable event: {e}")))?;
    Ok(Record {
        seq: stored.seq,
        at: stored.at,
        prev_hash: stored.prev_hash,
        hash: stored.hash,
        event,
    })
}

/// Maps a sled failure.
pub(crate) fn storage(e: sled::Error) -> JournalError {
    JournalError::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_run_then_seq() {
        let prefix = run_prefix("r1");
        let k2 = record_key("r1", 2);
        let k10 = record_key("r1", 10);
        assert!(k2 < k10);
        assert_eq!(key_seq(&prefix, &k10), Some(10));
        assert_eq!(key_seq(&prefix, &prefix), None);
        // "r1" and "r10" do not share the "r1\0" prefix.
        assert!(!record_key("r10", 1).starts_with(&prefix));
        assert!(check_run_id("").is_err());
        assert!(check_run_id("a\0b").is_err());
        assert!(check_run_id("run-1").is_ok());
    }

    #[test]
    fn blob_ref_shape_is_exact() {
        assert_eq!(
            blob_ref(&json!({"$blob": "ab", "size": 3})),
            Some(("ab", 3))
        );
        assert_eq!(blob_ref(&json!({"$blob": "ab", "size": 3, "x": 1})), None);
        assert_eq!(blob_ref(&json!({"$blob": 1, "size": 3})), None);
        assert_eq!(blob_ref(&json!("ab")), None);
    }
}
