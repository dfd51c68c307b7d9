//! What soar remembers between runs: named tables of keyed JSON values,
//! each entry versioned and optionally expiring. Every operation is atomic
//! per key (a compare-and-swap loop in sled) and, given an operation key
//! (a step's idempotency key), applied at most once: a resumed run that
//! repeats an `incr` gets the first result back instead of counting twice.
//! Every change but a counter's increment is kept in the key's change log
//! (who, when, why, what). `store.rs` is the sled store; the playbook
//! actions, CLI and API that use it come next (issue 21).

pub mod actions;
pub(crate) mod rules;
mod store;

pub use store::StateStore;

/// Most changes one `log` call returns (the newest).
pub const MAX_LOG: usize = 1_000;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 256;
/// Largest value, serialized.
pub const MAX_VALUE: usize = 64 << 10;
/// Most entries one `scan` returns.
pub const MAX_SCAN: usize = 1_000;
/// Most hits a sliding-window counter keeps (its count saturates there):
/// each is a millisecond timestamp, so the entry stays under [`MAX_VALUE`].
pub const MAX_WINDOW_HITS: usize = 4_000;

/// One entry of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// 1 for the first write of the key, +1 for each write after (also
    /// after a delete or an expiry, so a `cas` on an old version fails).
    pub version: u64,
    /// When it stops being returned (Unix ms), if it expires.
    pub expires_at_ms: Option<u64>,
    /// Who wrote it (a run's `run:ID/STEP`, or a principal).
    pub by: String,
    /// When it was written (Unix ms).
    pub at_ms: u64,
    /// Whether it is deleted (kept as a tombstone carrying the version).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Entry {
    /// Whether it is returned at `now_ms`: not deleted, not expired. An
    /// entry is live up to the millisecond before its expiry.
    pub fn live(&self, now_ms: u64) -> bool {
        !self.deleted && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

/// How `incr` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Counts since the window began; a new window starts from 0.
    Fixed(Duration),
    /// Counts the hits of the last `Duration`, whenever they fell.
    Sliding(Duration),
}

/// Who does an operation and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor<'a> {
    /// `run:ID/STEP` or a principal's name.
    pub by: &'a str,
    /// Now, in Unix ms (given, so tests and replays are exact).
    pub now_ms: u64,
    /// Applies the write at most once per key (a step's idempotency key).
    pub op_key: Option<&'a str>,
    /// Why (kept in the key's change log).
    pub reason: Option<&'a str>,
}

/// One change of a key, as its log keeps it (`soar state log TABLE KEY`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `put`, `put_if_absent`, `cas` or `delete`.
    pub op: String,
    /// Who.
    pub by: String,
    /// When (Unix ms).
    pub at_ms: u64,
    /// Why, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The entry's version after the change.
    pub version: u64,
    /// The value written (null for a delete).
    pub value: Value,
    /// When the value expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A table name outside the alphabet.
    #[error("`{0}` is not a table name (1 to 64 of a-z, 0-9, `_`, `-`)")]
    Table(String),
    /// A key that is empty or too long.
    #[error("a key is 1 to {MAX_KEY} bytes, got {0}")]
    Key(usize),
    /// A value too large.
    #[error("a value is at most {MAX_VALUE} bytes as JSON, got {0}")]
    Value(usize),
    /// A scan asked for more than the cap.
    #[error("a scan returns at most {MAX_SCAN} entries, asked for {0}")]
    Scan(usize),
    /// `cas` found another version.
    #[error("version conflict: expected {expected}, found {found}")]
    Conflict {
        /// What the caller expected (0: absent).
        expected: u64,
        /// What the table holds (0: absent).
        found: u64,
    },
    /// `incr` on a key whose value is not a counter of that kind.
    #[error("`{0}` holds a value that is not a counter of this window kind")]
    NotACounter(String),
    /// The store failed or holds something unreadable.
    #[error("state store: {0}")]
    Storage(String),
}

/// The name of a table, checked.
pub fn check_table(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    ok.then_some(())
        .ok_or_else(|| StateError::Table(name.to_string()))
}

pub(crate) fn check_key(key: &str) -> Result<(), StateError> {
    (!key.is_empty() && key.len() <= MAX_KEY)
        .then_some(())
        .ok_or(StateError::Key(key.len()))
}

pub(crate) fn check_value(value: &Value) -> Result<(), StateError> {
    let n = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    (n <= MAX_VALUE).then_some(()).ok_or(StateError::Value(n))
}
