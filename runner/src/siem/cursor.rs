//! A sink's durable cursor: the last seq exported of each run, the file's
//! length after the last batch written, and an HTTP batch in flight. Saved
//! by write, fsync, rename, so a crash leaves the old cursor or the new.

use super::SiemError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A batch: its lines, and how far each run it covers gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Stable over re-sends: SHA-256 of the lines.
    pub id: String,
    /// JSON lines.
    pub lines: Vec<String>,
    /// `(run, last seq)` once the batch is in.
    pub upto: Vec<(String, u64)>,
    /// The checkpoint this batch anchors, if it is an anchor.
    #[serde(default)]
    pub anchor: Option<u64>,
}

impl Pending {
    pub(super) fn new(lines: Vec<String>, upto: Vec<(String, u64)>) -> Self {
        let mut h = Sha256::new();
        for l in &lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        Pending {
            id: hex::encode(h.finalize()),
            lines,
            upto,
            anchor: None,
        }
    }
}

/// See the module docs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cursor {
    /// Last seq exported per run.
    pub runs: BTreeMap<String, u64>,
    /// The file sink's length after its last batch.
    #[serde(default)]
    pub file_len: Option<u64>,
    /// An HTTP batch sent and not yet acknowledged.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// The newest checkpoint this sink has been sent.
    #[serde(default)]
    pub anchored: Option<u64>,
    #[serde(skip)]
    path: PathBuf,
}

impl Cursor {
    pub(super) fn load(path: &Path) -> Result<Cursor, SiemError> {
        let err = |reason: String| SiemError::Cursor {
            path: path.display().to_string(),
            reason,
        };
        let mut c: Cursor = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cursor::default(),
            Err(e) => return Err(err(e.to_string())),
        };
        c.path = path.to_path_buf();
        Ok(c)
    }

    pub(super) fn save(&self) -> Result<(), SiemError> {
        let err = |e: std::io::Error| SiemError::Cursor {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| SiemError::Cursor {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }

    /// The batch is in: move each run's cursor, forget it as pending.
    pub(super) fn commit(&mut self, batch: &Pending) -> Result<(), SiemError> {
        for (run, seq) in &batch.upto {
            self.runs.insert(run.clone(), *seq);
        }
        if batch.anchor.is_some() {
            self.anchored = batch.anchor;
        }
        self.pending = None;
        self.save()
    }
}
