//! Values derived from runs' records and kept beside them (trees
//! `derived:NAME`), so a reader over many runs need not re-read every
//! record. Never evidence: each entry names the head it was derived at and
//! is recomputable from the run's records, which its owner checks.

use super::store::{storage, Head};
use super::{Journal, JournalError};

/// One kind of derived value, keyed by run id.
#[derive(Clone)]
pub struct Derived {
    tree: sled::Tree,
}

impl Derived {
    /// The value derived for `run_id`, if any.
    pub fn get(&self, run_id: &str) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .tree
            .get(run_id.as_bytes())
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Stores (or replaces) the value derived for `run_id`. Made durable
    /// with the journal's next flush; losing it only costs a recompute.
    pub fn put(&self, run_id: &str, value: &[u8]) -> Result<(), JournalError> {
        self.tree
            .insert(run_id.as_bytes(), value)
            .map_err(storage)?;
        Ok(())
    }

    /// Forgets the value derived for `run_id`.
    pub fn remove(&self, run_id: &str) -> Result<(), JournalError> {
        self.tree.remove(run_id.as_bytes()).map_err(storage)?;
        Ok(())
    }

    /// Every entry in run id order (a key that is not UTF-8 is skipped:
    /// nothing the journal derives is keyed so).
    pub fn iter(&self) -> impl Iterator<Item = Result<(String, Vec<u8>), JournalError>> {
        self.tree.iter().filter_map(|item| match item {
            Ok((k, v)) => String::from_utf8(k.to_vec())
                .ok()
                .map(|k| Ok((k, v.to_vec()))),
            Err(e) => Some(Err(storage(e))),
        })
    }
}

impl Journal {
    /// The derived values called `name` (tree `derived:NAME`).
    pub fn derived(&self, name: &str) -> Result<Derived, JournalError> {
        let tree = self
            .inner
            .db
            .open_tree(format!("derived:{name}"))
            .map_err(storage)?;
        Ok(Derived { tree })
    }

    /// Drops what was derived from `run_id` in every `derived:*` tree (a
    /// pruned run's report and facts must not outlive it).
    pub(super) fn forget_derived(&self, run_id: &str) -> Result<(), JournalError> {
        for name in self.inner.db.tree_names() {
            if name.starts_with(b"derived:") {
                let tree = self.inner.db.open_tree(&name).map_err(storage)?;
                tree.remove(run_id.as_bytes()).map_err(storage)?;
            }
        }
        Ok(())
    }

    /// Every run with a head, and its last seq, in run id order: one scan
    /// of the heads tree (run ids are time-ordered, so this is start order
    /// for the ids the scheduler makes). An unreadable head is an error
    /// naming its run.
    pub fn heads(&self) -> Box<dyn Iterator<Item = Result<(String, u64), JournalError>> + '_> {
        if let Some(c) = &self.cluster {
            let ids = match c.run_ids() {
                Ok(ids) => ids,
                Err(e) => return Box::new(std::iter::once(Err(e))),
            };
            return Box::new(ids.into_iter().filter_map(move |id| match c.head_seq(&id) {
                Ok(Some(seq)) => Some(Ok((id, seq))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }));
        }
        Box::new(self.inner.heads.iter().map(|item| {
            let (key, value) = item.map_err(storage)?;
            let run_id = String::from_utf8_lossy(&key).into_owned();
            let head = Head::decode(&value).map_err(|reason| JournalError::Corrupt {
                run_id: run_id.clone(),
                seq: 0,
                reason,
            })?;
            Ok((run_id, head.seq))
        }))
    }
}
