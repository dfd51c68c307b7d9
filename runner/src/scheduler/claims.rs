//! Opening a run: the keys it claims (a delivery id, the playbook's dedup
//! key, its group key) decide whether it starts or joins the run holding
//! one (`alert_merged`, `alert_grouped`). Claims of one key are made one at
//! a time in this process ([`KeyLocks`]), from the claim to the durable
//! start or merge, so simultaneous alerts with one key make exactly one run
//! and each joining alert's count is exact.

use super::{
    inputs, new_run_id, now_ms, Collecting, Engine, EngineError, NewRun, Opened, RunReport,
    MERGE_CAP, MERGE_EVIDENCE_CAP,
};
use crate::journal::{Event, JournalError, Record};
use crate::playbook::Playbook;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// One claim a new run makes before it starts: a key no other run may
/// hold, remembered for `window` (forever when `None`).
#[derive(Debug, Clone)]
pub struct Claim {
    /// The key (namespaced by the caller, e.g. `delivery:SOURCE:ID`).
    pub key: String,
    /// After this long the key may start a new run.
    pub window: Option<Duration>,
    /// What a later alert with the key does to the run holding it.
    pub kind: ClaimKind,
}

/// What a later alert with a claimed key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// A repeat (same delivery, same dedup key): merged while the window
    /// lasts, whether the run has finished or not.
    Repeat,
    /// Another alert of the same incident (`group:`): joins the run while it
    /// is open and within the window; a new run links to the previous one
    /// when that started within `reopen_within` (always when `None`).
    Group {
        /// How recent the previous run must be for a link.
        reopen_within: Option<Duration>,
    },
}

/// Who holds a claim, as `claim` found it.
enum Holder {
    /// Another run holds it: join that one.
    Held(String, Vec<Record>),
    /// This run holds it now; the run that held it before, if any.
    Ours(Option<(String, Vec<Record>)>),
}

/// What a playbook makes a run claim: its rendered keys and their claims.
struct OwnClaims {
    dedup_key: Option<String>,
    group_key: Option<String>,
    claims: Vec<Claim>,
}

/// Per-key async locks: one claim of a key at a time in this process.
#[derive(Default)]
pub(super) struct KeyLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Longest dedup or group key a playbook's template may render, in bytes.
const MAX_CLAIM_KEY: usize = 1_024;

/// Keys kept with no holder before the map is swept.
const IDLE_LOCKS: usize = 1_024;

impl KeyLocks {
    /// Locks every key of `keys` (sorted, so two callers never wait on each
    /// other crosswise) until the guards drop.
    async fn lock(&self, mut keys: Vec<String>) -> Vec<OwnedMutexGuard<()>> {
        keys.sort();
        keys.dedup();
        let locks: Vec<_> = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() > IDLE_LOCKS {
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            keys.into_iter()
                .map(|k| map.entry(k).or_default().clone())
                .collect()
        };
        let mut guards = Vec::with_capacity(locks.len());
        for l in locks {
            guards.push(l.lock_owned().await);
        }
        guards
    }
}

/// Whether the run in `records` started longer than `window` ago.
fn expired(records: &[Record], window: Option<Duration>) -> bool {
    let (Some(window), Some(first)) = (window, records.first()) else {
        return false;
    };
    now_ms().saturating_sub(started_ms(first)) > window.as_millis() as u64
}

fn started_ms(first: &Record) -> u64 {
    crate::journal::parse_unix_millis(&first.at).unwrap_or(u64::MAX)
}

fn finished(records: &[Record]) -> bool {
    records
        .iter()
        .any(|r| matches!(r.event, Event::RunFinished { .. }))
}

impl Engine {
    /// Claims `claim` for `run_id`: the run holding it, if another (live,
    /// within the window, and for a group still open) does.
    async fn claim(&self, claim: &Claim, run_id: &str) -> Result<Holder, EngineError> {
        let mut holder = self.journal.claim_dedup(&claim.key, run_id)?;
        let mut before = None;
        while let Some(existing) = holder {
            match self.journal.read(&existing) {
                Ok(records) if !records.is_empty() => {
                    let closed =
                        matches!(claim.kind, ClaimKind::Group { .. }) && finished(&records);
                    if !closed && !expired(&records, claim.window) {
                        return Ok(Holder::Held(existing, records));
                    }
                    // Its window is over (or its case closed): take it.
                    holder = self.journal.reclaim_dedup(&claim.key, &existing, run_id)?;
                    before = Some((existing, records));
                }
                // The holder died between claiming and journaling its start
                // (nothing ran under it; in this process the key lock rules
                // out a start still under way): take it.
                Ok(_) | Err(JournalError::UnknownRun(_)) => {
                    holder = self.journal.reclaim_dedup(&claim.key, &existing, run_id)?;
                    if holder.as_ref() == Some(&existing) {
                        // On a cluster, a claim this young may be another
                        // node's start under way: look again shortly.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Holder::Ours(before))
    }

    /// Journals a later alert in the run holding its claim, durably
    /// (`alert_merged` for a repeat, `alert_grouped` for a group), and
    /// reports that run as it now stands.
    async fn merge(
        &self,
        playbook: &Playbook,
        claim: &Claim,
        (run_id, records): (String, Vec<Record>),
        new: NewRun,
    ) -> Result<RunReport, EngineError> {
        let grouped = matches!(claim.kind, ClaimKind::Group { .. });
        let earlier = records
            .iter()
            .filter(|r| match r.event {
                Event::AlertMerged { .. } => !grouped,
                Event::AlertGrouped { .. } => grouped,
                _ => false,
            })
            .count() as u64;
        if earlier >= MERGE_CAP {
            return Err(EngineError::Repeats(run_id));
        }
        // A sender repeating one delivery must not grow the run's journal
        // without bound: past the cap, a repeat keeps its digest and size.
        let keep = |v: Value| {
            if earlier < MERGE_EVIDENCE_CAP {
                return v;
            }
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            json!({"omitted": format!("over {MERGE_EVIDENCE_CAP} repeats: digest only"),
                   "sha256": hex::encode(Sha256::digest(&bytes)), "bytes": bytes.len()})
        };
        let (key, alert, raw, by, count) = (
            claim.key.clone(),
            keep(new.alert),
            new.raw.map(keep),
            new.started_by,
            earlier + 1,
        );
        let event = if grouped {
            Event::AlertGrouped {
                key,
                alert,
                raw,
                by,
                count,
            }
        } else {
            Event::AlertMerged {
                key,
                alert,
                raw,
                by,
                count,
            }
        };
        self.append(&run_id, event).await?;
        if grouped {
            crate::observe::alert_grouped(&playbook.name);
        } else {
            crate::observe::alert_merged(&playbook.name);
        }
        // A merge changes no status: the records read before tell the rest.
        let mut report = RunReport::from_records(&run_id, &records, Some(playbook));
        if grouped {
            report.grouped = true;
        } else {
            report.merged_count = earlier + 1;
        }
        report.deduplicated = true;
        Ok(report)
    }

    /// The run's own claims: its dedup key and its group key, rendered
    /// over `{inputs, alert}`.
    fn own_claims(
        &self,
        playbook: &Playbook,
        inputs: &Value,
        alert: &Value,
    ) -> Result<OwnClaims, EngineError> {
        let ctx = json!({"inputs": inputs, "alert": alert});
        let render = |t: &String| self.templates.render_str(t, &ctx);
        let dedup_key = playbook
            .dedup
            .as_ref()
            .map(render)
            .transpose()
            .map_err(|e| EngineError::Dedup(e.to_string()))?;
        let group_key = playbook
            .group
            .as_ref()
            .map(|g| render(&g.key))
            .transpose()
            .map_err(|e| EngineError::Dedup(format!("`group.key`: {e}")))?;
        // A key comes from the alert: a sender must not make the claim
        // store (and every record naming it) hold megabytes per alert.
        for (what, key) in [("`dedup`", &dedup_key), ("`group.key`", &group_key)] {
            if let Some(k) = key.as_ref().filter(|k| k.len() > MAX_CLAIM_KEY) {
                return Err(EngineError::Dedup(format!(
                    "{what} rendered to {} bytes from this alert; at most {MAX_CLAIM_KEY}",
                    k.len()
                )));
            }
        }
        let mut claims = Vec::new();
        if let Some(key) = &dedup_key {
            claims.push(Claim {
                key: format!("{}:{}", playbook.name, key),
                window: None,
                kind: ClaimKind::Repeat,
            });
        }
        if let (Some(key), Some(g)) = (&group_key, &playbook.group) {
            claims.push(Claim {
                key: format!("group:{}:{}", playbook.name, key),
                window: Some(g.window),
                kind: ClaimKind::Group {
                    reopen_within: g.reopen_within,
                },
            });
        }
        Ok(OwnClaims {
            dedup_key,
            group_key,
            claims,
        })
    }

    pub(super) async fn open_run(
        &self,
        playbook: &Arc<Playbook>,
        new: NewRun,
    ) -> Result<Opened, EngineError> {
        let NewRun {
            alert,
            raw,
            started_by,
            mut claims,
        } = new;
        let inputs =
            inputs::normalise(playbook, &alert, &self.templates).map_err(EngineError::Input)?;
        let run_id = new_run_id();
        let OwnClaims {
            dedup_key,
            group_key,
            claims: own,
        } = self.own_claims(playbook, &inputs, &alert)?;
        claims.extend(own);
        let held = self
            .claiming
            .lock(claims.iter().map(|c| c.key.clone()).collect())
            .await;
        let mut previous_run = None;
        for (n, claim) in claims.iter().enumerate() {
            match self.claim(claim, &run_id).await? {
                Holder::Held(id, records) => {
                    // The keys this alert claimed before now name the run it
                    // joins: its repeat is then a repeat of that run.
                    for earlier in &claims[..n] {
                        self.journal.reclaim_dedup(&earlier.key, &run_id, &id)?;
                    }
                    let new = NewRun {
                        alert,
                        raw,
                        started_by,
                        claims: Vec::new(),
                    };
                    // Still holding the key: the next alert with it reads
                    // this one's record, so counts and the cap are exact.
                    let report = self.merge(playbook, claim, (id, records), new).await?;
                    drop(held);
                    return Ok(Opened::Existing(report));
                }
                Holder::Ours(Some((before, records))) => {
                    if let ClaimKind::Group { reopen_within } = claim.kind {
                        let recent = reopen_within.is_none_or(|w| !expired(&records, Some(w)));
                        if recent {
                            previous_run = Some(before);
                        }
                    }
                }
                Holder::Ours(None) => {}
            }
        }
        if let Some(delay) = self.claim_delay {
            tokio::time::sleep(delay).await;
        }
        let start = Event::RunStarted {
            playbook: playbook.name.clone(),
            version: playbook.version.clone(),
            playbook_sha256: playbook.sha256.clone(),
            playbook_path: playbook.path.display().to_string(),
            inputs: inputs.clone(),
            alert,
            started_by,
            dedup_key,
            raw,
            group_key,
            previous_run,
        };
        let collecting = Collecting::start(&self.written, &run_id);
        self.append(&run_id, start).await?;
        drop(held);
        crate::observe::run_started(&playbook.name);
        let records = collecting.take();
        Ok(Opened::New(run_id, records, collecting))
    }
}
