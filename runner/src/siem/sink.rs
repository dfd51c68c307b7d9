//! The sinks: a JSON-lines file that rotates, and an HTTP collector
//! (NDJSON POST, bearer token, retries with backoff on 429, 5xx and
//! transport errors; `Idempotency-Key` names the batch).

use super::cursor::{Cursor, Pending};
use super::SiemError;
use crate::config::{SiemFile, SiemHttp};
use std::io::Write;
use std::time::Duration;

pub(super) struct FileSink<'a> {
    config: &'a SiemFile,
}

fn file_err(e: impl std::fmt::Display) -> SiemError {
    SiemError::Sink {
        sink: "file",
        reason: e.to_string(),
    }
}

impl<'a> FileSink<'a> {
    /// Opens the sink, cutting back what a crash wrote past the cursor.
    pub(super) fn open(config: &'a SiemFile, cursor: &mut Cursor) -> Result<Self, SiemError> {
        if let Some(dir) = config.path.parent() {
            std::fs::create_dir_all(dir).map_err(file_err)?;
        }
        let len = std::fs::metadata(&config.path)
            .map(|m| m.len())
            .unwrap_or(0);
        if let Some(good) = cursor.file_len {
            if len > good {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&config.path)
                    .map_err(file_err)?;
                f.set_len(good).map_err(file_err)?;
                f.sync_all().map_err(file_err)?;
            }
        }
        Ok(FileSink { config })
    }

    fn rotate(&self, cursor: &mut Cursor) -> Result<(), SiemError> {
        let path = &self.config.path;
        let name = |n: u32| {
            path.with_file_name(format!(
                "{}.{n}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ))
        };
        let _ = std::fs::remove_file(name(self.config.keep));
        for n in (1..self.config.keep).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        if self.config.keep > 0 {
            std::fs::rename(path, name(1)).map_err(file_err)?;
        } else {
            std::fs::remove_file(path).map_err(file_err)?;
        }
        cursor.file_len = Some(0);
        cursor.save()
    }

    /// Appends the batch, syncs it, then moves the cursor.
    pub(super) fn write(&mut self, batch: &Pending, cursor: &mut Cursor) -> Result<(), SiemError> {
        let len = std::fs::metadata(&self.config.path)
            .map(|m| m.len())
            .unwrap_or(0);
        if len >= self.config.rotate_bytes {
            self.rotate(cursor)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
            .map_err(file_err)?;
        let mut text = String::new();
        for l in &batch.lines {
            text.push_str(l);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).map_err(file_err)?;
        f.sync_data().map_err(file_err)?;
        cursor.file_len = Some(f.metadata().map_err(file_err)?.len());
        cursor.commit(batch)
    }
}

pub(super) struct HttpSink {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    max_attempts: u32,
}

fn http_err(reason: String) -> SiemError {
    SiemError::Sink {
        sink: "http",
        reason,
    }
}

impl HttpSink {
    pub(super) fn new(config: &SiemHttp) -> Result<Self, SiemError> {
        let token = match &config.token {
            Some(source) => Some(
                source
                    .load()
                    .map_err(|e| http_err(e.to_string()))?
                    .expose()
                    .to_string(),
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| http_err(e.to_string()))?;
        Ok(HttpSink {
            client,
            url: config.url.clone(),
            token,
            max_attempts: config.max_attempts,
        })
    }

    /// Posts the batch until it is accepted (2xx), retrying what may pass
    /// later; a 4xx other than 429 is an error (the cursor stays).
    pub(super) async fn send(&self, batch: &Pending) -> Result<(), SiemError> {
        let mut body = String::new();
        for l in &batch.lines {
            body.push_str(l);
            body.push('\n');
        }
        let policy = crate::retry::Policy {
            max_attempts: self.max_attempts,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
        };
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            let mut req = self
                .client
                .post(&self.url)
                .header("content-type", "application/x-ndjson")
                .header("idempotency-key", &batch.id)
                .body(body.clone());
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                    last = format!("the collector answered {}", r.status());
                }
                Ok(r) => {
                    return Err(http_err(format!(
                        "the collector refused the batch: {}",
                        r.status()
                    )))
                }
                Err(e) => last = format!("cannot reach the collector: {e}"),
            }
            if attempt < self.max_attempts {
                tokio::time::sleep(policy.delay_before(attempt + 1, None)).await;
            }
        }
        Err(http_err(format!("{last} ({} attempts)", self.max_attempts)))
    }
}
