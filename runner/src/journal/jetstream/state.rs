//! The state tables on the cluster: one key-value bucket, a key per table
//! entry (`<table>.<key token>`). Each operation is the state layer's own
//! rule (`state::rules`, the same as on sled), applied by compare-and-set on
//! the key's revision and retried when another writer got there first, so
//! it is exact under concurrent writers on any number of nodes. An
//! operation key's result is kept in the key's value (its newest
//! [`MAX_OPS`]), so a resumed step's repeat returns the first answer.
//!
//! Not yet here, and kept by the sled store: the per-key change log, scans,
//! imports. Expiry is the entry's own `expires_at_ms`, as on sled (an
//! expired entry is not live, and its version goes on); the space of
//! expired entries is not reclaimed yet.

use super::cas;
use super::names::token;
use crate::state::rules::{self, Decision};
use crate::state::{check_key, check_table, check_value, Actor, Entry, StateError, Window};
use async_nats::jetstream::kv::Store;
use async_nats::jetstream::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Operation results one key remembers (the newest). A step that repeats
/// an operation after more than this many later keyed operations on the
/// same key would be applied again: far beyond a resume's window.
pub const MAX_OPS: usize = 256;
/// Compare-and-set rounds before giving up on a key (a storm of writers).
const MAX_ROUNDS: usize = 1_000;

/// What one key holds on the cluster.
#[derive(Serialize, Deserialize, Default)]
struct Slot {
    entry: Option<Entry>,
    /// `(operation id, its result)`, oldest first.
    #[serde(default)]
    ops: Vec<(String, Value)>,
}

/// The state tables of one tenant on the cluster.
#[derive(Clone)]
pub struct ClusterState {
    js: Context,
    kv: Store,
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(format!("cluster state: {e}"))
}

impl ClusterState {
    pub(super) fn new(js: Context, kv: Store) -> ClusterState {
        ClusterState { js, kv }
    }

    /// The live entry of `key`.
    pub async fn get(
        &self,
        table: &str,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Entry>, StateError> {
        let (slot, _) = self.read(&address(table, key)?).await?;
        Ok(slot.entry.filter(|e| e.live(now_ms)))
    }

    /// As [`crate::state::StateStore::put`].
    pub async fn put(
        &self,
        table: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        actor: &Actor<'_>,
    ) -> Result<(Option<Entry>, Entry), StateError> {
        check_value(&value)?;
        self.write(table, key, "put", actor, rules::put(value, ttl, actor))
            .await
    }

    /// As [`crate::state::StateStore::put_if_absent`].
    pub async fn put_if_absent(
        &self,
        table: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        actor: &Actor<'_>,
    ) -> Result<(bool, Entry), StateError> {
        check_value(&value)?;
        self.write(
            table,
            key,
            "put_if_absent",
            actor,
            rules::put_if_absent(value, ttl, actor),
        )
        .await
    }

    /// As [`crate::state::StateStore::cas`].
    pub async fn cas(
        &self,
        table: &str,
        key: &str,
        expected: u64,
        value: Value,
        ttl: Option<Duration>,
        actor: &Actor<'_>,
    ) -> Result<Entry, StateError> {
        check_value(&value)?;
        self.write(
            table,
            key,
            "cas",
            actor,
            rules::cas(expected, value, ttl, actor),
        )
        .await
    }

    /// As [`crate::state::StateStore::delete`].
    pub async fn delete(
        &self,
        table: &str,
        key: &str,
        actor: &Actor<'_>,
    ) -> Result<Option<Entry>, StateError> {
        self.write(table, key, "delete", actor, rules::delete(actor))
            .await
    }

    /// As [`crate::state::StateStore::incr`].
    pub async fn incr(
        &self,
        table: &str,
        key: &str,
        window: Window,
        actor: &Actor<'_>,
    ) -> Result<u64, StateError> {
        self.write(table, key, "incr", actor, rules::incr(key, window, actor))
            .await
    }

    /// The atomic core: read the slot and its revision, decide, write back
    /// only over that revision; another writer in between means reading
    /// again.
    async fn write<R: Serialize + DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        kind: &str,
        actor: &Actor<'_>,
        decide: impl Fn(Option<&Entry>) -> Decision<R>,
    ) -> Result<R, StateError> {
        let at = address(table, key)?;
        let op = actor.op_key.map(|k| format!("{k}\u{0}{kind}"));
        for _ in 0..MAX_ROUNDS {
            let (mut slot, revision) = self.read(&at).await?;
            if let Some(done) = op
                .as_ref()
                .and_then(|op| slot.ops.iter().find(|(o, _)| o == op))
            {
                return serde_json::from_value(done.1.clone()).map_err(storage);
            }
            let (next, result) = decide(slot.entry.as_ref())?;
            if next.is_none() && op.is_none() {
                return Ok(result);
            }
            if let Some(next) = next {
                slot.entry = Some(next);
            }
            if let Some(op) = &op {
                slot.ops
                    .push((op.clone(), serde_json::to_value(&result).map_err(storage)?));
                let over = slot.ops.len().saturating_sub(MAX_OPS);
                slot.ops.drain(..over);
            }
            if self.put_over(&at, &slot, revision).await? {
                return Ok(result);
            }
        }
        Err(storage(format!(
            "`{table}`/`{key}`: {MAX_ROUNDS} writers in a row got there first"
        )))
    }

    /// The slot at `at` and the revision to write over.
    async fn read(&self, at: &str) -> Result<(Slot, u64), StateError> {
        let (value, revision) = cas::read(&self.kv, at).await.map_err(storage)?;
        let slot = match value {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| storage(format!("`{at}` does not read back: {e}")))?,
            None => Slot::default(),
        };
        Ok((slot, revision))
    }

    /// Writes `slot` if `at` is still at `revision`; false if it moved.
    async fn put_over(&self, at: &str, slot: &Slot, revision: u64) -> Result<bool, StateError> {
        let bytes = bytes::Bytes::from(serde_json::to_vec(slot).map_err(storage)?);
        let written = cas::cas(&self.js, &self.kv, at, bytes, revision)
            .await
            .map_err(storage)?;
        Ok(written.is_some())
    }
}

/// `<table>.<key token>`, both checked as on sled.
fn address(table: &str, key: &str) -> Result<String, StateError> {
    check_table(table)?;
    check_key(key)?;
    Ok(format!("{table}.{}", token(key)))
}
