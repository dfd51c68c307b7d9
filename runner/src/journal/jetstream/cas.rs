//! Compare-and-set on a key-value bucket's key, by its revision: the one
//! write primitive of leases and state. It publishes to the key's subject
//! with `Nats-Expected-Last-Subject-Sequence` itself, because the client
//! library does not recognise newer servers' refusal code (10164) and
//! reports it as an unknown error; and a refusal while the key is still at
//! the expected revision (seen under load) is retried, not believed.

use super::runlog::{is_fenced, NO_RESPONDERS_RETRIES};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{Operation, Store};
use async_nats::jetstream::Context;
use async_nats::HeaderMap;
use bytes::Bytes;

/// Refusals at an unchanged revision retried before giving up.
const SPURIOUS_RETRIES: u32 = 6;

/// A key's current value and revision; `None` when it has none (never
/// written, expired, deleted or purged), with the revision to write over.
pub(super) async fn read(kv: &Store, key: &str) -> Result<(Option<Bytes>, u64), String> {
    let entry = super::patiently(|| kv.entry(key)).await;
    match entry.map_err(|e| e.to_string())? {
        Some(e) if e.operation == Operation::Put => Ok((Some(e.value), e.revision)),
        Some(e) => Ok((None, e.revision)),
        None => Ok((None, 0)),
    }
}

/// Writes `value` at `key` if its revision is still `revision` (0: no
/// message at all). `Ok(Some(new revision))`, or `Ok(None)` when another
/// writer moved it.
pub(super) async fn cas(
    js: &Context,
    kv: &Store,
    key: &str,
    value: Bytes,
    revision: u64,
) -> Result<Option<u64>, String> {
    let subject = format!("{}{key}", kv.put_prefix.as_ref().unwrap_or(&kv.prefix));
    let (mut attempt, mut silent) = (0, 0);
    while attempt < SPURIOUS_RETRIES && silent < NO_RESPONDERS_RETRIES {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            revision.to_string().as_str(),
        );
        let ack = js
            .publish_with_headers(subject.clone(), headers, value.clone())
            .await
            .map_err(|e| e.to_string())?;
        match ack.await {
            Ok(ack) => return Ok(Some(ack.sequence)),
            Err(e) if is_fenced(&e) => {
                if read(kv, key).await?.1 != revision {
                    return Ok(None);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            // No responders (a bucket just created, a leader moving).
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                silent += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    if silent == NO_RESPONDERS_RETRIES {
        return Err(format!("no server answered for `{key}`"));
    }
    Ok(None)
}
