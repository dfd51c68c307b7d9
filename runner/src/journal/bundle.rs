//! Run bundles: one run's evidence in one self-contained, signed file. The
//! records and blobs go in byte for byte as stored (their hashes cover that
//! text), with the playbook text, what the plugins and approvals were bound
//! to, the checkpoints that signed the run's heads, and a signature over
//! all of it. [`verify`] needs no data dir: it rebuilds the run in a
//! temporary store and runs the journal's own checks on it.

use super::canonical::sha256_hex;
use super::checkpoint::{key_id, Checkpoint};
use super::store::{self, storage};
use super::{verify as chain, JournalError, Record};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The format this module writes and reads.
pub const FORMAT: &str = "soar-bundle/1";

/// One run's evidence. Unknown fields are refused: nothing may ride along
/// that the signature does not cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    /// The run.
    pub run_id: String,
    /// When it was exported.
    pub exported_at: String,
    /// Every record as stored (JSON text: its hash covers these bytes).
    pub records: Vec<String>,
    /// Large values the records reference, by digest, as stored.
    pub blobs: BTreeMap<String, String>,
    /// The playbook the run used.
    pub playbook: BundlePlaybook,
    /// What each action was bound to, by `plugin.action`: the component's
    /// and the granted config's SHA-256 (from attempts and approvals).
    pub plugins: BTreeMap<String, Value>,
    /// The checkpoints that signed this run's heads.
    pub checkpoints: Vec<Checkpoint>,
    /// The exporter's signature over everything above.
    pub signature: Option<BundleSignature>,
}

/// The playbook text a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlePlaybook {
    /// Where it was read from.
    pub path: String,
    /// SHA-256 of `text` (the run's `playbook_sha256`).
    pub sha256: String,
    /// The YAML.
    pub text: String,
}

/// Who signed a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSignature {
    /// The key's id ([`key_id`]).
    pub key_id: String,
    /// Hex Ed25519 signature over [`Bundle::signed_bytes`].
    pub sig: String,
}

impl Bundle {
    /// A run's stored records and blobs, with the checkpoints that signed
    /// it, exported now; the caller adds the playbook and plugins, then
    /// signs. What both journal backends export.
    pub(crate) fn unsigned(
        run_id: &str,
        records: Vec<String>,
        blobs: std::collections::BTreeMap<String, String>,
        checkpoints: Vec<Checkpoint>,
    ) -> Bundle {
        Bundle {
            format: FORMAT.to_string(),
            run_id: run_id.to_string(),
            exported_at: super::time::now(),
            records,
            blobs,
            playbook: BundlePlaybook {
                path: String::new(),
                sha256: String::new(),
                text: String::new(),
            },
            plugins: Default::default(),
            checkpoints,
            signature: None,
        }
    }

    /// What the signature covers: every field but the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = (
            &self.format,
            &self.run_id,
            &self.exported_at,
            &self.records,
            &self.blobs,
            &self.playbook,
            &self.plugins,
            &self.checkpoints,
        );
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Signs it with `key`.
    pub fn sign(&mut self, key: &SigningKey) {
        let sig = key.sign(&self.signed_bytes());
        self.signature = Some(BundleSignature {
            key_id: key_id(&key.verifying_key()),
            sig: hex::encode(sig.to_bytes()),
        });
    }

    /// The run's records, large values inlined, each checked against its
    /// blob's digest.
    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        let (_db, trees) = Trees::load(self)?;
        let mut out = Vec::new();
        for (seq, text) in &trees.order {
            out.push(store::decode(
                &trees.blobs,
                &self.run_id,
                *seq,
                text.as_bytes(),
                true,
            )?);
        }
        Ok(out)
    }
}

/// The run rebuilt in a temporary store.
struct Trees {
    records: sled::Tree,
    heads: sled::Tree,
    blobs: sled::Tree,
    order: Vec<(u64, String)>,
    last: Option<(u64, String)>,
}

impl Trees {
    fn load(bundle: &Bundle) -> Result<(sled::Db, Trees), JournalError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(storage)?;
        let tree = |n: &str| db.open_tree(n).map_err(storage);
        let trees = Trees {
            records: tree(store::RECORDS)?,
            heads: tree(store::HEADS)?,
            blobs: tree(store::BLOBS)?,
            order: Vec::new(),
            last: None,
        };
        let mut trees = trees;
        for (i, text) in bundle.records.iter().enumerate() {
            // The seq a record claims; a record that does not say is filed
            // at its position, and the chain check reports it.
            let link = store::decode_link(text.as_bytes()).ok();
            let seq = link.as_ref().map_or(i as u64 + 1, |l| l.seq);
            trees
                .records
                .insert(store::record_key(&bundle.run_id, seq), text.as_bytes())
                .map_err(storage)?;
            if let Some(l) = link {
                trees.last = Some((l.seq, l.hash));
            }
            trees.order.push((seq, text.clone()));
        }
        for (digest, text) in &bundle.blobs {
            trees
                .blobs
                .insert(digest.as_bytes(), text.as_bytes())
                .map_err(storage)?;
        }
        if let Some((seq, hash)) = &trees.last {
            let head = serde_json::to_vec(&store::Head {
                seq: *seq,
                hash: hash.clone(),
            })
            .map_err(|e| JournalError::Encode(e.to_string()))?;
            trees
                .heads
                .insert(bundle.run_id.as_bytes(), head)
                .map_err(storage)?;
        }
        Ok((db, trees))
    }
}

/// Every problem with `bundle` against `keys`: its signature, the run's
/// hash chain and blobs, the playbook text, and the checkpoints that must
/// sign the run's last record. Empty when it is intact and authentic.
pub fn verify(bundle: &Bundle, keys: &[VerifyingKey]) -> Result<Vec<String>, JournalError> {
    let mut problems = Vec::new();
    if bundle.format != FORMAT {
        problems.push(format!("format `{}`, not `{FORMAT}`", bundle.format));
        return Ok(problems);
    }
    let by_id: BTreeMap<String, &VerifyingKey> = keys.iter().map(|k| (key_id(k), k)).collect();
    if keys.is_empty() {
        problems.push(
            "no public key was given (--public-key): who made this bundle cannot be checked".into(),
        );
    }
    match &bundle.signature {
        None => problems.push("the bundle is not signed".into()),
        Some(s) => match by_id.get(&s.key_id) {
            None if !keys.is_empty() => problems.push(format!(
                "signed by key {}, which is not among the public keys given",
                s.key_id
            )),
            None => {}
            Some(key) => {
                let sig = hex::decode(&s.sig)
                    .ok()
                    .and_then(|b| Signature::from_slice(&b).ok());
                if sig.is_none_or(|sig| key.verify(&bundle.signed_bytes(), &sig).is_err()) {
                    problems.push(
                        "the signature does not match the bundle (edited after export)".into(),
                    );
                }
            }
        },
    }
    let (_db, trees) = Trees::load(bundle)?;
    if trees.order.is_empty() {
        problems.push("the bundle holds no record".into());
        return Ok(problems);
    }
    // Each seq once, from 1, in order: a repeated seq would hide a record
    // from the chain check (the store keeps one per seq).
    if !trees
        .order
        .iter()
        .map(|(seq, _)| *seq)
        .eq(1..=trees.order.len() as u64)
    {
        problems.push(
            "the records are not seq 1, 2, 3... in order (one repeated, missing or moved)".into(),
        );
    }
    let report = chain::verify(&trees.records, &trees.heads, &trees.blobs, &bundle.run_id)?;
    problems.extend(report.problems);
    playbook(bundle, &trees, &mut problems);
    checkpoints(bundle, &trees, &by_id, &mut problems);
    Ok(problems)
}

/// The playbook text is the one the run started with.
fn playbook(bundle: &Bundle, trees: &Trees, problems: &mut Vec<String>) {
    if sha256_hex(bundle.playbook.text.as_bytes()) != bundle.playbook.sha256 {
        problems.push("the playbook text does not match its SHA-256".into());
    }
    let started = trees.order.first().and_then(|(_, text)| {
        let v: Value = serde_json::from_str(text).ok()?;
        v["event"]["playbook_sha256"].as_str().map(str::to_string)
    });
    if started.as_deref() != Some(bundle.playbook.sha256.as_str()) {
        problems.push("the playbook text is not the one the run started with".into());
    }
}

/// Some checkpoint signed the run's last record, and each included one is
/// signed by a known key.
fn checkpoints(
    bundle: &Bundle,
    trees: &Trees,
    keys: &BTreeMap<String, &VerifyingKey>,
    problems: &mut Vec<String>,
) {
    let Some((seq, hash)) = &trees.last else {
        return;
    };
    let hashes: BTreeMap<u64, String> = trees
        .order
        .iter()
        .filter_map(|(s, text)| Some((*s, store::decode_link(text.as_bytes()).ok()?.hash)))
        .collect();
    let mut signed = false;
    for cp in &bundle.checkpoints {
        match keys.get(&cp.key_id) {
            Some(k) if cp.signed_by(k) => {}
            Some(_) => {
                problems.push(format!("checkpoint {}: the signature does not match", cp.n));
                continue;
            }
            None => continue,
        }
        let Some((at, signed_hash)) = cp.heads.get(&bundle.run_id) else {
            continue;
        };
        // Every head a checkpoint signed must be one of these records: a
        // bundle of a run rolled back to an earlier signed head says so.
        if hashes.get(at) != Some(signed_hash) {
            problems.push(format!(
                "checkpoint {} signed seq {at} of this run, which is not among the bundle's records as signed (the run was rolled back or rewritten)",
                cp.n
            ));
        }
        signed |= (*at, signed_hash) == (*seq, hash);
    }
    if !signed {
        problems.push(format!(
            "no checkpoint of a known key signs the run's last record (seq {seq}): the journal it came from was unkeyed, or the run was changed"
        ));
    }
}

/// The checkpoints in `tree` that name `run_id`.
pub(crate) fn checkpoints_of(
    tree: &sled::Tree,
    run_id: &str,
) -> Result<Vec<Checkpoint>, JournalError> {
    let mut out = Vec::new();
    for item in tree.iter() {
        let (_, bytes) = item.map_err(storage)?;
        if let Ok(cp) = serde_json::from_slice::<Checkpoint>(&bytes) {
            if cp.heads.contains_key(run_id) {
                out.push(cp);
            }
        }
    }
    Ok(out)
}
