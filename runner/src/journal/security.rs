//! The server-wide security log: refusals that belong to no run (a sign-in
//! locked out, a cross-site or CSRF-less POST), each naming the client's
//! address, hash-chained in one sled tree (`security:log`) so that an edited,
//! removed or reordered entry shows in `soar journal verify --all`.
//! Callers rate-limit what they write (see the console's throttle).

use super::store::storage;
use super::{format_unix_millis, now_unix_millis, Journal, JournalError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

const TREE: &str = "security:log";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Entries one read returns at most.
pub const MAX_READ: usize = 1_000;

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityKind {
    /// Too many sign-in attempts from one address, or sessions for one
    /// principal: further attempts answer 429 until the lockout ends.
    SignInLockedOut,
    /// A state-changing POST from another site.
    CrossSiteRefused,
    /// A state-changing POST whose CSRF token is not its session's.
    CsrfRefused,
}

/// One refusal, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// What was refused.
    pub kind: SecurityKind,
    /// The client's address (the TCP peer; behind a proxy, the proxy's).
    pub client: String,
    /// The principal it concerned, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// `METHOD /path` of the request.
    pub request: String,
    /// Why, in words.
    pub detail: String,
    /// Refusals not written since the previous entry (the log's own rate
    /// cap), so a flood shows as a count rather than as nothing.
    #[serde(default)]
    pub unlogged_before: u64,
}

/// A stored entry: the event, its place and its link to the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityRecord {
    /// Position, from 1, without gaps.
    pub seq: u64,
    /// When (RFC 3339 UTC, milliseconds).
    pub at: String,
    /// The previous entry's hash (zeros for the first).
    pub prev_hash: String,
    /// `hex(sha256(prev_hash || "\n" || JSON of {seq, at, event}))`.
    pub hash: String,
    /// The refusal.
    #[serde(flatten)]
    pub event: SecurityEvent,
}

fn hash(prev: &str, seq: u64, at: &str, event: &SecurityEvent) -> String {
    let body = serde_json::json!({"seq": seq, "at": at, "event": event});
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// One append at a time, so that seq and links never fork.
static APPEND: Mutex<()> = Mutex::new(());

impl Journal {
    fn security_tree(&self) -> Result<sled::Tree, JournalError> {
        self.inner.db.open_tree(TREE).map_err(storage)
    }

    /// Appends `event` to the security log and makes it durable.
    pub fn append_security(&self, event: SecurityEvent) -> Result<SecurityRecord, JournalError> {
        let _one = APPEND
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tree = self.security_tree()?;
        let last = match tree.last().map_err(storage)? {
            Some((_, v)) => Some(decode(&v)?),
            None => None,
        };
        let seq = last.as_ref().map_or(1, |r| r.seq + 1);
        let prev_hash = last.map_or_else(|| GENESIS.to_string(), |r| r.hash);
        let at = format_unix_millis(now_unix_millis());
        let record = SecurityRecord {
            hash: hash(&prev_hash, seq, &at, &event),
            seq,
            at,
            prev_hash,
            event,
        };
        let bytes =
            serde_json::to_vec(&record).map_err(|e| JournalError::Storage(e.to_string()))?;
        tree.insert(seq.to_be_bytes(), bytes).map_err(storage)?;
        tree.flush().map_err(storage)?;
        Ok(record)
    }

    /// Entries after `after`, at most `limit` (≤ [`MAX_READ`]), oldest first.
    pub fn security_log(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SecurityRecord>, JournalError> {
        let tree = self.security_tree()?;
        let start = after.saturating_add(1).to_be_bytes();
        tree.range(start..)
            .take(limit.min(MAX_READ))
            .map(|kv| decode(&kv.map_err(storage)?.1))
            .collect()
    }

    /// Every break in the security log's chain, one line each.
    pub fn verify_security(&self) -> Result<Vec<String>, JournalError> {
        let mut problems = Vec::new();
        let mut prev = GENESIS.to_string();
        let mut expect = 1u64;
        for kv in self.security_tree()?.iter() {
            let (key, value) = kv.map_err(storage)?;
            let record = match decode(&value) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("security log: an entry does not read back: {e}"));
                    continue;
                }
            };
            let key_seq = <[u8; 8]>::try_from(key.as_ref())
                .ok()
                .map(u64::from_be_bytes);
            if record.seq != expect || key_seq != Some(record.seq) {
                problems.push(format!(
                    "security log: entry {} found where {expect} belongs (removed, reordered or re-keyed)",
                    record.seq
                ));
            }
            if record.prev_hash != prev {
                problems.push(format!(
                    "security log: entry {} does not link to the one before",
                    record.seq
                ));
            }
            if hash(&record.prev_hash, record.seq, &record.at, &record.event) != record.hash {
                problems.push(format!(
                    "security log: entry {} was changed after it was written",
                    record.seq
                ));
            }
            prev = record.hash;
            expect = record.seq + 1;
        }
        Ok(problems)
    }
}

fn decode(bytes: &[u8]) -> Result<SecurityRecord, JournalError> {
    serde_json::from_slice(bytes)
        .map_err(|e| JournalError::Storage(format!("a security log entry does not read back: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail: &str) -> SecurityEvent {
        SecurityEvent {
            kind: SecurityKind::CrossSiteRefused,
            client: "192.0.2.7".into(),
            principal: None,
            request: "POST /ui/logout".into(),
            detail: detail.into(),
            unlogged_before: 0,
        }
    }

    fn journal(dir: &tempfile::TempDir) -> Journal {
        Journal::open(dir.path(), super::super::Durability::Process).unwrap()
    }

    #[tokio::test]
    async fn entries_chain_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir);
        for i in 0..3 {
            j.append_security(event(&format!("n{i}"))).unwrap();
        }
        let all = j.security_log(0, 10).unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[1].prev_hash, all[0].hash);
        assert_eq!(j.security_log(2, 10).unwrap()[0].event.detail, "n2");
        assert!(j.verify_security().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_edited_or_removed_entry_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir);
        for i in 0..3 {
            j.append_security(event(&format!("n{i}"))).unwrap();
        }
        let tree = j.security_tree().unwrap();
        let mut second = j.security_log(1, 1).unwrap().remove(0);
        second.event.client = "203.0.113.1".into();
        tree.insert(2u64.to_be_bytes(), serde_json::to_vec(&second).unwrap())
            .unwrap();
        let problems = j.verify_security().unwrap();
        assert!(
            problems.iter().any(|p| p.contains("entry 2 was changed")),
            "{problems:?}"
        );
        tree.remove(2u64.to_be_bytes()).unwrap();
        let problems = j.verify_security().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("entry 3 found where 2 belongs")),
            "{problems:?}"
        );
    }
}
