//! The keyed part of the journal. The hash chain alone can be recomputed by
//! anyone who can write the data dir, so at every group commit the flusher
//! signs a checkpoint: the runs whose head moved since the previous one,
//! chained to it, signed with an Ed25519 key that does not live in the data
//! dir. Signing a run's head signs every record before it (hash chain), so
//! an edit that re-chains, a deleted, truncated or rolled-back run, or an
//! inserted one no longer matches what a checkpoint signed ([`verify`]).

use super::canonical::sha256_hex;
use super::store::storage;
use super::JournalError;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Tree of checkpoints, keyed by their number (big-endian).
pub(crate) const CHECKPOINTS: &str = "checkpoints";

/// `prev` of the first checkpoint.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The keys of a keyed journal: the one that signs (in a process that
/// writes), and those that verify (the current one and those rotated out).
#[derive(Clone, Default)]
pub struct JournalKeys {
    /// Signs new checkpoints.
    pub signing: Option<SigningKey>,
    /// Verify checkpoints, by key id.
    pub public: Vec<VerifyingKey>,
}

impl std::fmt::Debug for JournalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalKeys")
            .field(
                "signing",
                &self.signing.as_ref().map(|k| key_id(&k.verifying_key())),
            )
            .field(
                "public",
                &self.public.iter().map(key_id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JournalKeys {
    /// The public keys, the signing key's own included.
    pub fn verifiers(&self) -> Vec<VerifyingKey> {
        let mut all = self.public.clone();
        if let Some(k) = &self.signing {
            let own = k.verifying_key();
            if !all.contains(&own) {
                all.push(own);
            }
        }
        all
    }
}

/// What records say about the key that signed them: the first 16 hex
/// digits of the SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())[..16].to_string()
}

/// An Ed25519 signing key from 64 hex digits (its 32-byte seed).
pub fn signing_key_from_hex(text: &str) -> Result<SigningKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 signing key is 32 bytes (64 hex digits)".to_string())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// An Ed25519 public key from 64 hex digits.
pub fn public_key_from_hex(text: &str) -> Result<VerifyingKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes (64 hex digits)".to_string())?;
    VerifyingKey::from_bytes(&raw).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// One signed checkpoint. Unknown fields are refused: a field no signature
/// covers must not ride along in a bundle or the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Its number, from 1, without gaps.
    pub n: u64,
    /// When it was signed.
    pub at: String,
    /// Hash of the previous checkpoint ([`Checkpoint::hash`]).
    pub prev: String,
    /// Runs whose head moved since the previous checkpoint: `[seq, hash]`.
    pub heads: BTreeMap<String, (u64, String)>,
    /// Runs pruned since the previous checkpoint, by a retention rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pruned: BTreeMap<String, Tombstone>,
    /// Where trust starts: set on checkpoint 1 only (a new journal, or an
    /// unkeyed one adopted by `soar journal adopt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<TrustStart>,
    /// Runs whose records past their last signed head an operator checked
    /// and accepted (`soar journal adopt --run`), the head in `heads`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted: BTreeMap<String, Acceptance>,
    /// Which key signed it ([`key_id`]).
    pub key_id: String,
    /// Hex Ed25519 signature over [`Checkpoint::signed_bytes`].
    pub sig: String,
}

/// Who accepted which records of a run that no checkpoint had signed
/// (written just before a process died, or behind the journal's back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// The operator, as given to the command.
    pub by: String,
    /// The first seq accepted; the last is the run's head in `heads`.
    pub from_seq: u64,
}

/// Whether a keyed journal started empty or adopted existing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// An empty journal, keyed from its first record.
    New,
    /// Existing unkeyed runs signed as they were, by an operator's command.
    Adopted,
}

/// How a keyed journal's trust began (the first checkpoint says it, signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustStart {
    /// How it began.
    pub kind: StartKind,
    /// Runs the journal held when trust started (0 for a new one).
    pub runs: u64,
    /// Who adopted it (the operator's account, as given to the command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// What is left of a pruned run: enough to tell pruning from deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// Its playbook.
    pub playbook: String,
    /// Its final status.
    pub status: String,
    /// Its last record's seq and hash.
    pub final_seq: u64,
    /// The hash at `final_seq`.
    pub final_hash: String,
    /// When it ended (its last record's `at`).
    pub ended_at: String,
    /// When it was pruned.
    pub pruned_at: String,
    /// The retention rule that pruned it.
    pub rule: String,
}

impl Checkpoint {
    /// What the signature covers: every field but the signature, as JSON
    /// (serde_json writes struct fields in order and maps sorted).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = (
            &self.n,
            &self.at,
            &self.prev,
            &self.heads,
            &self.pruned,
            &self.key_id,
        );
        // Checkpoints that say nothing of trust keep the bytes they were
        // signed with before `start` and `accepted` existed.
        if self.start.is_none() && self.accepted.is_empty() {
            serde_json::to_vec(&unsigned)
        } else {
            serde_json::to_vec(&(unsigned, &self.start, &self.accepted))
        }
        .unwrap_or_default()
    }

    /// The hash the next checkpoint chains to (signature included).
    pub fn hash(&self) -> String {
        sha256_hex(&serde_json::to_vec(self).unwrap_or_default())
    }

    /// Whether `key` made this signature.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.sig) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(&self.signed_bytes(), &sig).is_ok()
    }
}

/// A stored checkpoint, which must be exactly the bytes the signer wrote:
/// a re-encoded one (spaces, escapes) would still verify once parsed, yet
/// hide from a search for the runs it names.
pub(crate) fn decode_stored(bytes: &[u8]) -> Result<Checkpoint, String> {
    let cp: Checkpoint = serde_json::from_slice(bytes).map_err(|e| format!("unreadable ({e})"))?;
    if serde_json::to_vec(&cp).ok().as_deref() != Some(bytes) {
        return Err("its stored bytes are not the ones that were signed (re-encoded)".into());
    }
    Ok(cp)
}

/// Signs a checkpoint of the heads written since the last one, before each
/// flush (so the checkpoint is durable with the records it covers).
pub(crate) struct Checkpointer {
    tree: sled::Tree,
    /// Run id -> the number of the last checkpoint that signed its head, so
    /// an append can find what was signed without reading every checkpoint.
    index: sled::Tree,
    key: SigningKey,
    key_id: String,
    /// Heads written since the last checkpoint.
    dirty: Mutex<BTreeMap<String, (u64, String)>>,
    /// Runs pruned since the last checkpoint.
    pruned: Mutex<BTreeMap<String, Tombstone>>,
    /// Number and hash of the last checkpoint.
    last: Mutex<(u64, String)>,
}

/// What a keyed open found.
pub(crate) enum Opened {
    /// Signing goes on from the last checkpoint (or a genesis just made).
    Ready(std::sync::Arc<Checkpointer>),
    /// The journal holds runs but no checkpoint: trust is never restarted
    /// silently, so nothing is signed (and nothing appended) until an
    /// operator adopts it. The reason, for every refusal and for verify.
    Broken(String),
}

/// Why a keyed open is not a fresh start.
pub(crate) fn no_checkpoint_over(runs: u64) -> String {
    format!(
        "the journal holds {runs} run(s) but no signed checkpoint: its checkpoints were deleted, or it was never keyed; nothing is signed or appended until an operator checks it and runs `soar journal adopt`"
    )
}

impl Checkpointer {
    /// The checkpointer of a journal. With no checkpoint yet, an empty
    /// journal gets its genesis (checkpoint 1, `start: new`) and `adopt`
    /// signs every existing head and tombstone (`start: adopted`);
    /// otherwise the journal is [`Opened::Broken`].
    pub(crate) fn open(
        tree: sled::Tree,
        index: sled::Tree,
        existing: &Existing,
        keys: &JournalKeys,
        adopt: Option<&str>,
    ) -> Result<Opened, JournalError> {
        let Some(key) = keys.signing.clone() else {
            return Err(JournalError::Refused("no signing key".into()));
        };
        let last = match tree.last().map_err(storage)? {
            Some((_, bytes)) => match trusted_last(&bytes, &keys.verifiers()) {
                Ok(last) => Some(last),
                // Signing on from a checkpoint nobody can vouch for would
                // chain the journal's future to a forgery.
                Err(why) => return Ok(Opened::Broken(why)),
            },
            None => None,
        };
        let cp = Checkpointer {
            tree,
            index,
            key_id: key_id(&key.verifying_key()),
            key,
            dirty: Mutex::new(BTreeMap::new()),
            pruned: Mutex::new(BTreeMap::new()),
            last: Mutex::new(last.clone().unwrap_or((0, GENESIS.to_string()))),
        };
        match (last, adopt) {
            (Some((n, _)), Some(_)) => Err(JournalError::Refused(format!(
                "the journal is already keyed ({n} checkpoint(s)): there is nothing to adopt"
            ))),
            (Some(_), None) => Ok(Opened::Ready(std::sync::Arc::new(cp))),
            (None, Some(by)) => {
                let start = TrustStart {
                    kind: StartKind::Adopted,
                    runs: existing.heads.len() as u64,
                    by: Some(by.to_string()),
                };
                cp.sign(
                    existing.heads.clone(),
                    existing.pruned.clone(),
                    Some(start),
                    BTreeMap::new(),
                )
                .map_err(JournalError::Storage)?;
                Ok(Opened::Ready(std::sync::Arc::new(cp)))
            }
            (None, None) if existing.is_empty() => {
                let start = TrustStart {
                    kind: StartKind::New,
                    runs: 0,
                    by: None,
                };
                cp.sign(
                    BTreeMap::new(),
                    BTreeMap::new(),
                    Some(start),
                    BTreeMap::new(),
                )
                .map_err(JournalError::Storage)?;
                Ok(Opened::Ready(std::sync::Arc::new(cp)))
            }
            (None, None) => Ok(Opened::Broken(no_checkpoint_over(existing.runs()))),
        }
    }

    /// A run's head moved (called after the head is written).
    pub(crate) fn note(&self, run_id: &str, seq: u64, hash: &str) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        dirty.insert(run_id.to_string(), (seq, hash.to_string()));
    }

    /// A run was pruned (its tombstone goes into the next checkpoint).
    pub(crate) fn note_pruned(&self, run_id: &str, tombstone: Tombstone) {
        let mut pruned = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
        pruned.insert(run_id.to_string(), tombstone);
    }

    /// Signs and stores a checkpoint of the heads noted since the last one
    /// (nothing when none moved).
    pub(crate) fn write(&self) -> Result<(), String> {
        let heads = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner));
        let pruned =
            std::mem::take(&mut *self.pruned.lock().unwrap_or_else(PoisonError::into_inner));
        if heads.is_empty() && pruned.is_empty() {
            return Ok(());
        }
        self.sign(heads, pruned, None, BTreeMap::new())
    }

    /// The head this process noted for `run_id` and has not signed yet.
    pub(crate) fn noted(&self, run_id: &str) -> Option<(u64, String)> {
        let dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        dirty.get(run_id).cloned()
    }

    /// Signs `run_id`'s head `(seq, hash)` now, saying who accepted the
    /// records from `from_seq` that no checkpoint had signed.
    pub(crate) fn accept(
        &self,
        run_id: &str,
        head: (u64, String),
        acceptance: Acceptance,
    ) -> Result<(), String> {
        let heads = BTreeMap::from([(run_id.to_string(), head)]);
        let accepted = BTreeMap::from([(run_id.to_string(), acceptance)]);
        self.sign(heads, BTreeMap::new(), None, accepted)
    }

    /// Signs and stores the next checkpoint.
    fn sign(
        &self,
        heads: BTreeMap<String, (u64, String)>,
        pruned: BTreeMap<String, Tombstone>,
        start: Option<TrustStart>,
        accepted: BTreeMap<String, Acceptance>,
    ) -> Result<(), String> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cp = Checkpoint {
            n: last.0 + 1,
            at: super::time::now(),
            prev: last.1.clone(),
            heads,
            pruned,
            start,
            accepted,
            key_id: self.key_id.clone(),
            sig: String::new(),
        };
        cp.sig = hex::encode(self.key.sign(&cp.signed_bytes()).to_bytes());
        let bytes = serde_json::to_vec(&cp).map_err(|e| e.to_string())?;
        let hash = sha256_hex(&bytes);
        self.tree
            .insert(cp.n.to_be_bytes(), bytes)
            .map_err(|e| format!("cannot store checkpoint {}: {e}", cp.n))?;
        for run in cp.heads.keys() {
            self.index
                .insert(run.as_bytes(), &cp.n.to_be_bytes())
                .map_err(|e| format!("cannot index checkpoint {}: {e}", cp.n))?;
        }
        // `hash()` is the SHA-256 of exactly these bytes: not serialized twice
        // on the flush path.
        *last = (cp.n, hash);
        Ok(())
    }
}

/// `(n, hash)` of the last stored checkpoint, if a known key signed it.
fn trusted_last(bytes: &[u8], keys: &[VerifyingKey]) -> Result<(u64, String), String> {
    let cp = decode_stored(bytes).map_err(|e| format!("the last checkpoint: {e}"))?;
    let known = keys
        .iter()
        .any(|k| key_id(k) == cp.key_id && cp.signed_by(k));
    if !known || cp.n == u64::MAX {
        return Err(format!(
            "the last checkpoint ({}) is not signed by a known key: nothing is signed on top of it or appended until `soar journal verify --all` is resolved",
            cp.n
        ));
    }
    Ok((cp.n, cp.hash()))
}

/// What a journal held before its first checkpoint: every head, and the
/// tombstones of runs pruned while it was unkeyed.
#[derive(Default)]
pub(crate) struct Existing {
    /// Run heads.
    pub heads: BTreeMap<String, (u64, String)>,
    /// Pruned runs.
    pub pruned: BTreeMap<String, Tombstone>,
    /// Records, run-index entries or other traces with no head.
    pub traces: bool,
}

impl Existing {
    /// Reads the heads and tombstones; `traces` when records or index
    /// entries exist (a journal with any of them is not new).
    pub(crate) fn read(
        heads: &sled::Tree,
        tombstones: &sled::Tree,
        others: &[&sled::Tree],
    ) -> Result<Existing, JournalError> {
        let mut out = Existing::default();
        for item in heads.iter() {
            let (run, bytes) = item.map_err(storage)?;
            if let Ok(head) = super::store::Head::decode(&bytes) {
                let run = String::from_utf8_lossy(&run).into_owned();
                out.heads.insert(run, (head.seq, head.hash));
            } else {
                out.traces = true;
            }
        }
        for item in tombstones.iter() {
            let (run, bytes) = item.map_err(storage)?;
            match serde_json::from_slice(&bytes) {
                Ok(t) => {
                    out.pruned
                        .insert(String::from_utf8_lossy(&run).into_owned(), t);
                }
                Err(_) => out.traces = true,
            }
        }
        for tree in others {
            out.traces |= !tree.is_empty();
        }
        Ok(out)
    }

    fn is_empty(&self) -> bool {
        self.heads.is_empty() && self.pruned.is_empty() && !self.traces
    }

    fn runs(&self) -> u64 {
        (self.heads.len() + self.pruned.len()) as u64
    }
}

/// Every checkpoint in order, each checked: numbering, chain, key and
/// signature. Problems are reported; the signed heads of the checkpoints
/// that passed are returned per run, oldest first.
pub(crate) struct Chain {
    /// Checkpoints found.
    pub count: u64,
    /// Keys that signed them.
    pub key_ids: std::collections::BTreeSet<String>,
    /// Per run, every signed `(seq, hash, checkpoint)`, oldest first.
    pub signed: BTreeMap<String, Vec<(u64, String, u64)>>,
    /// Signed tombstones of pruned runs, with their checkpoint.
    pub pruned: BTreeMap<String, (Tombstone, u64)>,
    /// Checkpoint 1: its hash, when, and how trust started (`None` for a
    /// journal keyed before checkpoints said so).
    pub genesis: Option<(String, String, Option<TrustStart>)>,
    /// Records accepted by an operator: run, acceptance, head seq, checkpoint.
    pub accepted: Vec<(String, Acceptance, u64, u64)>,
    /// What is wrong with the chain itself.
    pub problems: Vec<String>,
}

/// Reads and checks the checkpoint chain against `keys`.
pub(crate) fn read_chain(tree: &sled::Tree, keys: &[VerifyingKey]) -> Result<Chain, JournalError> {
    let by_id: BTreeMap<String, &VerifyingKey> = keys.iter().map(|k| (key_id(k), k)).collect();
    let mut chain = Chain {
        count: 0,
        key_ids: Default::default(),
        signed: BTreeMap::new(),
        pruned: BTreeMap::new(),
        genesis: None,
        accepted: Vec::new(),
        problems: Vec::new(),
    };
    let mut prev = GENESIS.to_string();
    let mut expected = 1u64;
    for item in tree.iter() {
        let (_, bytes) = item.map_err(storage)?;
        chain.count += 1;
        let cp = match decode_stored(&bytes) {
            Ok(cp) => cp,
            Err(e) => {
                chain.problems.push(format!("checkpoint {expected}: {e}"));
                expected += 1;
                prev = String::new();
                continue;
            }
        };
        if cp.n != expected {
            chain.problems.push(format!(
                "checkpoint {expected}{}: missing (deleted)",
                if cp.n > expected + 1 {
                    format!("-{}", cp.n - 1)
                } else {
                    String::new()
                }
            ));
        } else if cp.prev != prev {
            chain.problems.push(format!(
                "checkpoint {}: does not chain to checkpoint {} (one of them was replaced)",
                cp.n,
                cp.n - 1
            ));
        }
        expected = cp.n + 1;
        prev = cp.hash();
        if cp.n == 1 {
            chain.genesis = Some((prev.clone(), cp.at.clone(), cp.start.clone()));
        } else if cp.start.is_some() {
            chain.problems.push(format!(
                "checkpoint {}: claims to start trust, which only checkpoint 1 may",
                cp.n
            ));
        }
        chain.key_ids.insert(cp.key_id.clone());
        match by_id.get(&cp.key_id) {
            None => {
                chain.problems.push(format!(
                    "checkpoint {}: signed by key {}, which is not among the public keys given",
                    cp.n, cp.key_id
                ));
                continue;
            }
            Some(key) if !cp.signed_by(key) => {
                chain.problems.push(format!(
                    "checkpoint {}: the signature does not match (checkpoint edited)",
                    cp.n
                ));
                continue;
            }
            Some(_) => {}
        }
        for (run, acceptance) in cp.accepted {
            let seq = cp.heads.get(&run).map_or(0, |h| h.0);
            chain.accepted.push((run, acceptance, seq, cp.n));
        }
        for (run, (seq, hash)) in cp.heads {
            chain.signed.entry(run).or_default().push((seq, hash, cp.n));
        }
        for (run, tombstone) in cp.pruned {
            chain.pruned.insert(run, (tombstone, cp.n));
        }
    }
    Ok(chain)
}

/// What the checkpoints say about one run.
pub(crate) struct RunSigned {
    /// Every signed `(seq, hash, checkpoint)` of it, oldest first.
    pub points: Vec<(u64, String, u64)>,
    /// Its signed tombstone, if it was pruned.
    pub pruned: Option<Tombstone>,
    /// Checkpoints naming it whose signature fails.
    pub problems: Vec<String>,
}

/// The checkpoints that name `run_id`, each signature checked against
/// `keys` (only theirs: one run's check stays cheaper than the chain's as a
/// whole, which is `read_chain`'s), and any checkpoint missing or
/// re-encoded, which could hide one that named it.
pub(crate) fn read_run(
    tree: &sled::Tree,
    run_id: &str,
    keys: &[VerifyingKey],
) -> Result<RunSigned, JournalError> {
    let mut out = RunSigned {
        points: Vec::new(),
        pruned: None,
        problems: Vec::new(),
    };
    let mut expected = 1u64;
    for item in tree.iter() {
        let (_, bytes) = item.map_err(storage)?;
        // Every checkpoint is decoded (no signature checked but for those
        // naming the run): one re-encoded or deleted could hide a later
        // head of this run, as after a rollback.
        let cp = match decode_stored(&bytes) {
            Ok(cp) => cp,
            Err(e) => {
                out.problems.push(format!(
                    "run {run_id}: checkpoint {expected}: {e}, so what it signed of this run is unknown"
                ));
                expected += 1;
                continue;
            }
        };
        if cp.n != expected {
            out.problems.push(format!(
                "run {run_id}: checkpoint {expected} is missing (deleted), so what it signed of this run is unknown"
            ));
        }
        expected = cp.n.saturating_add(1);
        let names = cp.heads.contains_key(run_id)
            || cp.pruned.contains_key(run_id)
            || cp.accepted.contains_key(run_id);
        if keys.is_empty() || !names {
            continue;
        }
        if !keys
            .iter()
            .any(|k| key_id(k) == cp.key_id && cp.signed_by(k))
        {
            out.problems.push(format!(
                "run {run_id}: checkpoint {} names it, but its signature does not match a known key",
                cp.n
            ));
            continue;
        }
        if let Some((seq, hash)) = cp.heads.get(run_id) {
            out.points.push((*seq, hash.clone(), cp.n));
        }
        if let Some(t) = cp.pruned.get(run_id) {
            out.pruned = Some(t.clone());
        }
    }
    Ok(out)
}

/// The head a valid checkpoint last signed for `run_id`: through `index`
/// (one checkpoint read, its signature checked), else the checkpoints
/// newest first. `None` when none of those names it with a valid signature.
pub(crate) fn last_signed(
    tree: &sled::Tree,
    index: &sled::Tree,
    run_id: &str,
    keys: &[VerifyingKey],
) -> Result<Option<(u64, String)>, JournalError> {
    let valid = |bytes: &[u8]| -> Option<(u64, String)> {
        let cp = decode_stored(bytes).ok()?;
        keys.iter()
            .any(|k| key_id(k) == cp.key_id && cp.signed_by(k))
            .then(|| cp.heads.get(run_id).cloned())?
    };
    let indexed = index
        .get(run_id.as_bytes())
        .map_err(storage)?
        .and_then(|n| tree.get(n).transpose())
        .transpose()
        .map_err(storage)?;
    if let Some(head) = indexed.as_deref().and_then(valid) {
        return Ok(Some(head));
    }
    let needle = format!("{}:", serde_json::to_string(run_id).unwrap_or_default());
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    for item in tree.iter().rev() {
        let (_, bytes) = item.map_err(storage)?;
        if finder.find(&bytes).is_some() {
            if let Some(head) = valid(&bytes) {
                return Ok(Some(head));
            }
        }
    }
    Ok(None)
}
