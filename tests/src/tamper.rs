//! What an attacker with write access to the data dir (and not the signing
//! key) can do to the journal offline: edit the sled trees directly,
//! recompute the hash chain after an edit, copy runs, hide them from the
//! index, delete checkpoints. The tamper tests use it to show that verify
//! fails, or a destructive command refuses, before anything is lost.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The journal of a data dir, opened as sled (no soar process may hold it).
pub struct Tamper {
    db: sled::Db,
}

impl Tamper {
    /// Opens `data_dir/journal`. sled releases its file lock from a
    /// background thread after the previous holder (the last `Tamper`, a
    /// `soar` that just exited) is gone, so a lock still held is waited
    /// for, a bounded number of times.
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join("journal");
        let mut tries = 0;
        loop {
            match sled::open(&path) {
                Ok(db) => return Tamper { db },
                Err(sled::Error::Io(e)) if e.to_string().contains("lock") && tries < 400 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => panic!("open the journal as sled: {e:?}"),
            }
        }
    }

    fn tree(&self, name: &str) -> sled::Tree {
        self.db.open_tree(name).expect("tree")
    }

    fn prefix(run: &str) -> Vec<u8> {
        let mut p = run.as_bytes().to_vec();
        p.push(0);
        p
    }

    /// The run's stored records (`{seq, at, prev_hash, hash, event}`).
    pub fn records(&self, run: &str) -> Vec<Value> {
        self.tree("records")
            .scan_prefix(Self::prefix(run))
            .values()
            .map(|v| serde_json::from_slice(&v.unwrap()).unwrap())
            .collect()
    }

    /// Writes `records` as run `run`'s whole log, the chain recomputed from
    /// seq 1 (as anyone can: the chain has no key), and its head.
    pub fn write_run(&self, run: &str, records: &[Value]) {
        let tree = self.tree("records");
        for key in tree.scan_prefix(Self::prefix(run)).keys() {
            tree.remove(key.unwrap()).unwrap();
        }
        let mut prev = "0".repeat(64);
        for (i, r) in records.iter().enumerate() {
            let mut r = r.clone();
            let seq = i as u64 + 1;
            r["seq"] = json!(seq);
            r["prev_hash"] = json!(prev);
            let hash = record_hash(&prev, seq, &r["at"], &r["event"]);
            r["hash"] = json!(hash);
            let mut key = Self::prefix(run);
            key.extend_from_slice(&seq.to_be_bytes());
            tree.insert(key, serde_json::to_vec(&r).unwrap()).unwrap();
            prev = hash;
        }
        let head = json!({"seq": records.len(), "hash": prev});
        self.tree("heads")
            .insert(run.as_bytes(), serde_json::to_vec(&head).unwrap())
            .unwrap();
    }

    /// Adds `run` to the run index (as the journal does for a new run).
    pub fn index(&self, run: &str) {
        let id = self.db.generate_id().unwrap();
        self.tree("runs")
            .insert(id.to_be_bytes(), run.as_bytes())
            .unwrap();
    }

    /// Changes who voted in the run's first vote and re-chains everything
    /// after it; the seq of the vote.
    pub fn rechain_vote(&self, run: &str, new_voter: &str) -> u64 {
        let mut records = self.records(run);
        let vote = records
            .iter_mut()
            .find(|r| r["event"]["type"] == "approval_voted")
            .expect("the run has a vote");
        vote["event"]["by"] = json!(new_voter);
        let seq = vote["seq"].as_u64().unwrap();
        self.write_run(run, &records);
        seq
    }

    /// Appends `event` to the run, chained to its last record, head moved.
    pub fn append(&self, run: &str, event: Value) {
        let mut records = self.records(run);
        let at = records.last().expect("a run with records")["at"].clone();
        records.push(json!({"seq": 0, "at": at, "prev_hash": "", "hash": "", "event": event}));
        self.write_run(run, &records);
    }

    /// Sets the field at `pointer` of record `seq` without touching the
    /// chain (what an edit looks like to an unkeyed journal's check).
    pub fn edit_in_place(&self, run: &str, seq: u64, pointer: &str, value: Value) {
        let mut key = Self::prefix(run);
        key.extend_from_slice(&seq.to_be_bytes());
        let tree = self.tree("records");
        let mut r: Value = serde_json::from_slice(&tree.get(&key).unwrap().unwrap()).unwrap();
        *r.pointer_mut(pointer).expect("the field exists") = value;
        tree.insert(key, serde_json::to_vec(&r).unwrap()).unwrap();
    }

    /// Deletes a run whole: records, head, index entry, dedup claims.
    pub fn delete_run(&self, run: &str) {
        let records = self.tree("records");
        for key in records.scan_prefix(Self::prefix(run)).keys() {
            records.remove(key.unwrap()).unwrap();
        }
        self.tree("heads").remove(run.as_bytes()).unwrap();
        for name in ["runs", "dedup"] {
            let t = self.tree(name);
            for item in t.iter() {
                let (k, v) = item.unwrap();
                if v.as_ref() == run.as_bytes() {
                    t.remove(k).unwrap();
                }
            }
        }
    }

    /// The run ids with an entry in derived tree `derived:NAME`.
    pub fn derived_runs(&self, name: &str) -> Vec<String> {
        self.tree(&format!("derived:{name}"))
            .iter()
            .keys()
            .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
            .collect()
    }

    /// Sets `pointer` in run `run`'s entry of `derived:NAME` to `value`.
    pub fn edit_derived(&self, name: &str, run: &str, pointer: &str, value: Value) {
        let tree = self.tree(&format!("derived:{name}"));
        let mut entry: Value =
            serde_json::from_slice(&tree.get(run).unwrap().expect("entry")).unwrap();
        *entry.pointer_mut(pointer).expect("pointer") = value;
        tree.insert(run, entry.to_string().as_bytes()).unwrap();
        self.db.flush().unwrap();
    }

    /// Deletes every signed checkpoint.
    pub fn delete_checkpoints(&self) {
        self.tree("checkpoints").clear().unwrap();
    }
}

impl Drop for Tamper {
    fn drop(&mut self) {
        let _ = self.db.flush();
    }
}

/// The journal's record hash: SHA-256 of `prev "\n" {"at","event","seq"}`
/// in canonical JSON (serde_json sorts a `Value`'s keys).
fn record_hash(prev: &str, seq: u64, at: &Value, event: &Value) -> String {
    let body = format!(
        "{{\"at\":{},\"event\":{},\"seq\":{seq}}}",
        serde_json::to_string(at).unwrap(),
        serde_json::to_string(event).unwrap()
    );
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}
