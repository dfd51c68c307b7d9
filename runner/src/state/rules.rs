//! What each state operation does to a key's current entry, as pure
//! functions: the entry to store (or none) and the answer. The sled store
//! and the cluster's key-value store both apply these inside their own
//! atomic step, so an operation means the same on either.

use super::{Actor, Entry, StateError, Window, MAX_WINDOW_HITS};
use serde_json::{json, Value};
use std::time::Duration;

/// What an operation decides from the key's current entry (live or not).
pub(crate) type Decision<R> = Result<(Option<Entry>, R), StateError>;

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The entry a write leaves: the next version, written by `actor` now.
pub(crate) fn next_entry(
    current: Option<&Entry>,
    value: Value,
    ttl: Option<Duration>,
    actor: &Actor<'_>,
) -> Entry {
    Entry {
        value,
        version: current.map_or(0, |e| e.version) + 1,
        expires_at_ms: ttl.map(|t| actor.now_ms.saturating_add(millis(t))),
        by: actor.by.to_string(),
        at_ms: actor.now_ms,
        deleted: false,
    }
}

/// `put`: the live entry replaced, and the one written.
pub(crate) fn put<'a>(
    value: Value,
    ttl: Option<Duration>,
    actor: &'a Actor<'a>,
) -> impl Fn(Option<&Entry>) -> Decision<(Option<Entry>, Entry)> + 'a {
    move |current| {
        let previous = current.filter(|e| e.live(actor.now_ms)).cloned();
        let entry = next_entry(current, value.clone(), ttl, actor);
        Ok((Some(entry.clone()), (previous, entry)))
    }
}

/// `put_if_absent`: whether it wrote, and the entry holding the key now.
pub(crate) fn put_if_absent<'a>(
    value: Value,
    ttl: Option<Duration>,
    actor: &'a Actor<'a>,
) -> impl Fn(Option<&Entry>) -> Decision<(bool, Entry)> + 'a {
    move |current| match current {
        Some(e) if e.live(actor.now_ms) => Ok((None, (false, e.clone()))),
        _ => {
            let entry = next_entry(current, value.clone(), ttl, actor);
            Ok((Some(entry.clone()), (true, entry)))
        }
    }
}

/// `cas`: writes only over live version `expected` (0: no live entry).
pub(crate) fn cas<'a>(
    expected: u64,
    value: Value,
    ttl: Option<Duration>,
    actor: &'a Actor<'a>,
) -> impl Fn(Option<&Entry>) -> Decision<Entry> + 'a {
    move |current| {
        let found = current
            .filter(|e| e.live(actor.now_ms))
            .map_or(0, |e| e.version);
        if found != expected {
            return Err(StateError::Conflict { expected, found });
        }
        let entry = next_entry(current, value.clone(), ttl, actor);
        Ok((Some(entry.clone()), entry))
    }
}

/// `delete`: the live entry removed; a tombstone keeps the version.
pub(crate) fn delete<'a>(
    actor: &'a Actor<'a>,
) -> impl Fn(Option<&Entry>) -> Decision<Option<Entry>> + 'a {
    move |current| {
        let removed = current.filter(|e| e.live(actor.now_ms)).cloned();
        let tomb = current.map(|_| {
            let mut t = next_entry(current, Value::Null, None, actor);
            t.deleted = true;
            t
        });
        Ok((tomb, removed))
    }
}

/// `incr`: one more event in the key's window; the count now.
pub(crate) fn incr<'a>(
    key: &'a str,
    window: Window,
    actor: &'a Actor<'a>,
) -> impl Fn(Option<&Entry>) -> Decision<u64> + 'a {
    move |current| {
        let now = actor.now_ms;
        let live = current.filter(|e| e.live(now));
        let (value, count, expires) = match window {
            Window::Fixed(d) => fixed(key, live, now, d)?,
            Window::Sliding(d) => sliding(key, live, now, d)?,
        };
        let mut entry = next_entry(current, value, None, actor);
        entry.expires_at_ms = Some(expires);
        Ok((Some(entry), count))
    }
}

fn fixed(
    key: &str,
    live: Option<&Entry>,
    now: u64,
    d: Duration,
) -> Result<(Value, u64, u64), StateError> {
    let (start, count) = match live {
        Some(e) => (
            e.value["window_start_ms"]
                .as_u64()
                .ok_or_else(|| StateError::NotACounter(key.into()))?,
            e.value["count"]
                .as_u64()
                .ok_or_else(|| StateError::NotACounter(key.into()))?,
        ),
        None => (now, 0),
    };
    let (start, count) = if now >= start.saturating_add(millis(d)) {
        (now, 1)
    } else {
        (start, count + 1)
    };
    Ok((
        json!({"count": count, "window_start_ms": start}),
        count,
        start.saturating_add(millis(d)),
    ))
}

fn sliding(
    key: &str,
    live: Option<&Entry>,
    now: u64,
    d: Duration,
) -> Result<(Value, u64, u64), StateError> {
    let mut hits: Vec<u64> = match live {
        Some(e) => e.value["hits"]
            .as_array()
            .ok_or_else(|| StateError::NotACounter(key.into()))?
            .iter()
            .filter_map(Value::as_u64)
            .collect(),
        None => Vec::new(),
    };
    // A hit counts while now is within d of it.
    hits.retain(|h| now < h.saturating_add(millis(d)));
    hits.push(now);
    if hits.len() > MAX_WINDOW_HITS {
        hits.drain(..hits.len() - MAX_WINDOW_HITS);
    }
    let count = hits.len() as u64;
    Ok((
        json!({ "hits": hits }),
        count,
        now.saturating_add(millis(d)),
    ))
}
