//! Subscriptions to a run's records: a reader (the SSE stream) is woken by
//! each write to its run instead of polling, then sends only what the last
//! flush made durable ([`Journal::durable`]), so a client never sees a
//! record a crash could take back.

use super::store::{self, storage};
use super::{Journal, JournalError, Record};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::watch;

/// Senders to subscribed runs; an entry lives while someone listens.
#[derive(Default)]
pub(crate) struct Watchers {
    runs: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Entries in `runs`, read without the lock: a write with nobody
    /// subscribed (the usual case) takes no lock at all.
    entries: AtomicUsize,
}

/// Entries beyond which subscribing sweeps the ones nobody listens to
/// (a finished run is never written again, so its entry would stay).
const SWEEP_ABOVE: usize = 1024;

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells `run_id`'s subscribers that record `seq` was written.
    pub(crate) fn wrote(&self, run_id: &str, seq: u64) {
        if self.entries.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut runs = self.lock();
        if let Some(tx) = runs.get(run_id) {
            if tx.receiver_count() == 0 {
                runs.remove(run_id);
            } else {
                tx.send_replace(seq);
            }
        }
        self.entries.store(runs.len(), Ordering::Release);
    }

    fn subscribe(&self, run_id: &str) -> watch::Receiver<u64> {
        let mut runs = self.lock();
        if runs.len() > SWEEP_ABOVE {
            runs.retain(|_, tx| tx.receiver_count() > 0);
        }
        let rx = runs
            .entry(run_id.to_string())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        self.entries.store(runs.len(), Ordering::Release);
        rx
    }
}

impl Journal {
    /// A receiver that changes each time a record of `run_id` is written
    /// (its value: that record's seq). Subscribe before reading, so no
    /// write between the read and the wait is missed.
    pub fn subscribe(&self, run_id: &str) -> watch::Receiver<u64> {
        self.inner.watchers.subscribe(run_id)
    }

    /// Waits until every record written so far is durable (joins the next
    /// group commit).
    pub async fn durable(&self) -> Result<(), JournalError> {
        if self.cluster.is_some() {
            return Ok(()); // Each append returned once replicated.
        }
        self.inner.commit.wait_durable().await
    }

    /// The run's records after seq `after`, up to `upto`, in seq order,
    /// large values inlined: one range scan, not the whole run.
    pub fn read_range(
        &self,
        run_id: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<Record>, JournalError> {
        store::check_run_id(run_id)?;
        if self.cluster.is_some() {
            let mut records = self.read(run_id)?;
            records.retain(|r| r.seq > after && r.seq <= upto);
            return Ok(records);
        }
        let from = store::record_key(run_id, after.saturating_add(1));
        let to = store::record_key(run_id, upto);
        if after >= upto {
            return Ok(Vec::new());
        }
        let prefix = store::run_prefix(run_id);
        let mut out = Vec::new();
        for item in self.inner.records.range(from..=to) {
            let (key, value) = item.map_err(storage)?;
            let Some(seq) = store::key_seq(&prefix, &key) else {
                continue;
            };
            out.push(store::decode(&self.inner.blobs, run_id, seq, &value, true)?);
        }
        Ok(out)
    }
}
