//! A run's records as one subject of the stream. An append names the stream
//! sequence of the run's last record (`Nats-Expected-Last-Subject-Sequence`):
//! the fence, so a node that lost a run cannot write to it. A retried append
//! of the same record is de-duplicated by its `Nats-Msg-Id` (run, seq and
//! hash), so a zombie's different record at the same place is never taken
//! for a retry.

use super::names::Names;
use super::ClusterError;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use async_nats::HeaderMap;
use bytes::Bytes;

/// How often a refusal whose expected sequence is still the run's last is
/// retried before it is taken as a fence.
const SPURIOUS_RETRIES: u32 = 6;
/// Publishes that found no responder retried (100 ms apart) before the
/// cluster is called unavailable.
pub(super) const NO_RESPONDERS_RETRIES: u32 = 50;

/// What the server did with one publish.
enum Published {
    Stored(u64),
    Refused,
}

/// One stored record: its place in the stream and its bytes.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Stream sequence (what the next append names as expected).
    pub stream_seq: u64,
    /// The record as the journal stores it.
    pub payload: Bytes,
}

/// Where an append lands in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Append<'a> {
    /// The run's record seq (1 for its first record).
    pub seq: u64,
    /// The record's chain hash.
    pub hash: &'a str,
    /// Stream sequence of the run's last record; `None` for the first.
    pub after: Option<u64>,
}

/// The runs' records on one stream.
#[derive(Clone)]
pub struct RunLog {
    js: Context,
    stream: Stream,
    names: Names,
}

impl RunLog {
    pub(super) fn new(js: Context, stream: Stream, names: Names) -> RunLog {
        RunLog { js, stream, names }
    }

    /// Appends `record` to `run_id` if its last record is still `at.after`.
    /// Returns the record's stream sequence (the original one when this is
    /// a retry of an append that was stored).
    ///
    /// A refusal is checked against the run's actual last record before it
    /// is believed: under load a clustered server can refuse an expected
    /// sequence that is still current (a publish right after the previous
    /// one's acknowledgement, before the leader cleared its in-flight
    /// mark). Such a refusal is retried; a refusal because our own record
    /// is already there is success; only another writer's record fences.
    pub async fn append(
        &self,
        run_id: &str,
        at: Append<'_>,
        record: Bytes,
    ) -> Result<u64, ClusterError> {
        let msg_id = format!("{}:{}:{}", super::names::token(run_id), at.seq, at.hash);
        let expected = at.after.unwrap_or(0);
        for attempt in 0..SPURIOUS_RETRIES {
            match self
                .publish(run_id, expected, &msg_id, record.clone())
                .await?
            {
                Published::Stored(seq) => return Ok(seq),
                Published::Refused => match self.last_of(run_id).await? {
                    Some((seq, id)) if id.as_deref() == Some(msg_id.as_str()) => return Ok(seq),
                    Some((seq, _)) if seq != expected => break,
                    None if expected != 0 => break,
                    // Still what we expected: the refusal was spurious.
                    _ => tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await,
                },
            }
        }
        Err(ClusterError::Fenced {
            run_id: run_id.to_string(),
            expected,
        })
    }

    async fn publish(
        &self,
        run_id: &str,
        expected: u64,
        msg_id: &str,
        record: Bytes,
    ) -> Result<Published, ClusterError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        headers.insert("Nats-Msg-Id", msg_id);
        let unavailable = |e: &dyn std::fmt::Display| {
            ClusterError::Unavailable(format!("appending to run `{run_id}`: {e}"))
        };
        // No responders: a server that has not yet heard of a new stream
        // or a new leader. The same record, id and fence: safe to repeat.
        for _ in 0..NO_RESPONDERS_RETRIES {
            let ack = self
                .js
                .publish_with_headers(
                    self.names.run_subject(run_id),
                    headers.clone(),
                    record.clone(),
                )
                .await
                .map_err(|e| unavailable(&e))?;
            match ack.await {
                Ok(ack) => return Ok(Published::Stored(ack.sequence)),
                Err(e) if is_fenced(&e) => return Ok(Published::Refused),
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(unavailable(&e)),
            }
        }
        Err(unavailable(
            &"no server answered for the stream (is it deleted, or the cluster still electing?)",
        ))
    }

    /// The stream sequence and message id of `run_id`'s last record.
    async fn last_of(&self, run_id: &str) -> Result<Option<(u64, Option<String>)>, ClusterError> {
        let last = self.last_message(&self.names.run_subject(run_id)).await;
        match last {
            Ok(Some(m)) => {
                let id = m.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_string());
                Ok(Some((m.sequence, id)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(ClusterError::Unavailable(format!(
                "reading run `{run_id}`'s last record: {e}"
            ))),
        }
    }

    /// The last message on `subject`, asked again while the cluster does
    /// not answer.
    async fn last_message(
        &self,
        subject: &str,
    ) -> Result<Option<async_nats::jetstream::message::StreamMessage>, String> {
        super::patiently(|| async {
            match self.stream.get_last_raw_message_by_subject(subject).await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// `run_id`'s last record as stored, if it has one.
    pub async fn last(&self, run_id: &str) -> Result<Option<Stored>, ClusterError> {
        let found = self
            .last_message(&self.names.run_subject(run_id))
            .await
            .map_err(|e| ClusterError::Unavailable(format!("reading run `{run_id}`: {e}")))?;
        Ok(found.map(|m| Stored {
            stream_seq: m.sequence,
            payload: m.payload,
        }))
    }

    /// Stores a large value under its digest, once.
    pub async fn put_blob(&self, digest: &str, bytes: Bytes) -> Result<(), ClusterError> {
        if self.get_blob(digest).await?.is_some() {
            return Ok(());
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("blob:{digest}").as_str());
        let failed = |e: &dyn std::fmt::Display| {
            ClusterError::Unavailable(format!("storing blob {digest}: {e}"))
        };
        let ack = self
            .js
            .publish_with_headers(self.names.blob_subject(digest), headers, bytes)
            .await
            .map_err(|e| failed(&e))?;
        ack.await.map(|_| ()).map_err(|e| failed(&e))
    }

    /// A large value by its digest, if stored (unchecked: the caller checks
    /// it against the digest).
    pub async fn get_blob(&self, digest: &str) -> Result<Option<Bytes>, ClusterError> {
        self.last_message(&self.names.blob_subject(digest))
            .await
            .map(|m| m.map(|m| m.payload))
            .map_err(|e| ClusterError::Unavailable(format!("reading blob {digest}: {e}")))
    }

    /// Every run with a record on the stream, sorted; more than `max` is an
    /// error, not a silent cut.
    pub async fn run_ids(&self, max: usize) -> Result<Vec<String>, ClusterError> {
        use futures_util::TryStreamExt;
        let failed = |e: &dyn std::fmt::Display| {
            ClusterError::Unavailable(format!("listing the runs on the stream: {e}"))
        };
        let mut subjects =
            super::patiently(|| self.stream.info_with_subjects(self.names.run_subjects()))
                .await
                .map_err(|e| failed(&e))?;
        let mut out = Vec::new();
        while let Some((subject, _)) = subjects.try_next().await.map_err(|e| failed(&e))? {
            if out.len() == max {
                return Err(ClusterError::Corrupt(format!(
                    "more than {max} runs on the stream: list them with retention first"
                )));
            }
            let token = subject.rsplit('.').next().unwrap_or_default();
            let run_id = super::names::untoken(token).ok_or_else(|| {
                ClusterError::Corrupt(format!("subject `{subject}` was not written by soar"))
            })?;
            out.push(run_id);
        }
        out.sort();
        Ok(out)
    }

    /// Every record of `run_id`, oldest first, read through the stream's
    /// leader (never a lagging replica). More than `max` records is an
    /// error, not a silent cut.
    pub async fn read(&self, run_id: &str, max: usize) -> Result<Vec<Stored>, ClusterError> {
        let subject = self.names.run_subject(run_id);
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let got = super::patiently(|| async {
                let sent = self
                    .stream
                    .raw_message_builder()
                    .sequence(from)
                    .next_by_subject(subject.clone())
                    .send()
                    .await;
                match sent {
                    Ok(m) => Ok(Some(m)),
                    Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await;
            let msg = match got {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(out),
                Err(e) => {
                    return Err(ClusterError::Unavailable(format!(
                        "reading run `{run_id}`: {e}"
                    )))
                }
            };
            if out.len() == max {
                return Err(ClusterError::Corrupt(format!(
                    "run `{run_id}` has more than {max} records on the stream"
                )));
            }
            from = msg.sequence + 1;
            out.push(Stored {
                stream_seq: msg.sequence,
                payload: msg.payload,
            });
        }
    }
}

/// Whether the server refused the append for its expected sequence. Newer
/// servers answer 10164 (a constant-text variant) where older ones gave
/// 10071; the client library names only the latter.
pub(super) fn is_fenced(e: &PublishError) -> bool {
    if e.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|j| j.error_code() == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
}
