//! The state tables in sled: one tree per table (`state:t:NAME`), entries
//! as JSON, its change log (`state:log:NAME`), and a `state:ops` tree remembering each keyed operation's result.
//! Every write is one sled transaction over the table and `ops`, so it is
//! atomic per key against concurrent runs and applied at most once per
//! operation key; sled retries a transaction that raced another.

use super::rules::{self, next_entry};
use super::{check_key, check_table, check_value, Actor, Change, Entry, StateError, Window};
use super::{MAX_LOG, MAX_SCAN};
use crate::journal::jetstream::ClusterState;
use crate::journal::wait_on;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::path::Path;
use std::time::Duration;
use tokio::runtime::Handle;

/// The tree remembering each keyed operation's result.
const OPS: &str = "state:ops";

/// The tables.
#[derive(Clone)]
pub struct StateStore {
    db: sled::Db,
    /// On a cluster journal: the tables live there (see
    /// `journal/jetstream/state.rs`), and every sled tree is refused so no
    /// write lands node-local by mistake.
    cluster: Option<(ClusterState, Handle)>,
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<Entry, StateError> {
    serde_json::from_slice(bytes).map_err(|e| storage(format!("an entry does not read back: {e}")))
}

type Tx<T> = Result<T, ConflictableTransactionError<StateError>>;

fn abort<T>(e: StateError) -> Tx<T> {
    Err(ConflictableTransactionError::Abort(e))
}

impl StateStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        Ok(Self::from_db(sled::open(path).map_err(storage)?))
    }

    /// A store that lives only as long as it is used (tests).
    pub fn temporary() -> Result<Self, StateError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(storage)?;
        Ok(Self::from_db(db))
    }

    /// The tables kept in `db` beside other trees (the journal's).
    pub fn from_db(db: sled::Db) -> Self {
        StateStore { db, cluster: None }
    }

    /// The tables on a cluster journal; `db` is the node's own store,
    /// never written for state.
    pub(crate) fn on_cluster(db: sled::Db, state: ClusterState, handle: Handle) -> Self {
        StateStore {
            db,
            cluster: Some((state, handle)),
        }
    }

    /// Runs a call of the cluster's tables, if the tables are there.
    fn remote<T>(
        &self,
        call: impl AsyncFnOnce(&ClusterState) -> Result<T, StateError>,
    ) -> Option<Result<T, StateError>> {
        let (state, handle) = self.cluster.as_ref()?;
        Some(wait_on(handle, call(state)).unwrap_or_else(|e| Err(StateError::Storage(e))))
    }

    /// A sled tree of the state tables; refused on a cluster journal, for
    /// what is not built there yet (change logs, scans, imports, exports).
    fn local(&self, name: String) -> Result<sled::Tree, StateError> {
        if self.cluster.is_some() {
            return Err(StateError::Storage("this state operation (change logs, scans, imports, exports) is not available on a cluster journal (`journal.backend: nats`) yet; see docs/cluster.md".into()));
        }
        self.db.open_tree(name).map_err(storage)
    }

    fn tree(&self, table: &str) -> Result<sled::Tree, StateError> {
        check_table(table)?;
        self.local(format!("state:t:{table}"))
    }

    fn log_tree(&self, table: &str) -> Result<sled::Tree, StateError> {
        check_table(table)?;
        self.local(format!("state:log:{table}"))
    }

    /// The changes of `key`, oldest first: the newest `limit` of them.
    pub fn log(&self, table: &str, key: &str, limit: usize) -> Result<Vec<Change>, StateError> {
        check_key(key)?;
        if limit > MAX_LOG {
            return Err(StateError::Scan(limit));
        }
        let mut changes = Vec::new();
        for item in self
            .log_tree(table)?
            .scan_prefix(log_prefix(key))
            .rev()
            .take(limit)
        {
            let (_, v) = item.map_err(storage)?;
            changes.push(serde_json::from_slice(&v).map_err(storage)?);
        }
        changes.reverse();
        Ok(changes)
    }

    /// The live entry of `key`.
    pub fn get(&self, table: &str, key: &str, now_ms: u64) -> Result<Option<Entry>, StateError> {
        check_key(key)?;
        if let Some(r) = self.remote(async |c| c.get(table, key, now_ms).await) {
            return r;
        }
        let found = self.tree(table)?.get(key).map_err(storage)?;
        Ok(match found {
            Some(bytes) => Some(decode(&bytes)?).filter(|e| e.live(now_ms)),
            None => None,
        })
    }

    /// The live entries of `keys`, in order.
    pub fn lookup(
        &self,
        table: &str,
        keys: &[&str],
        now_ms: u64,
    ) -> Result<Vec<Option<Entry>>, StateError> {
        keys.iter().map(|k| self.get(table, k, now_ms)).collect()
    }

    /// Live entries whose key starts with `prefix`, at most `limit`.
    pub fn scan(
        &self,
        table: &str,
        prefix: &str,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<(String, Entry)>, StateError> {
        if limit > MAX_SCAN {
            return Err(StateError::Scan(limit));
        }
        let mut out = Vec::new();
        for item in self.tree(table)?.scan_prefix(prefix) {
            if out.len() == limit {
                break;
            }
            let (k, v) = item.map_err(storage)?;
            let entry = decode(&v)?;
            if entry.live(now_ms) {
                out.push((String::from_utf8_lossy(&k).into_owned(), entry));
            }
        }
        Ok(out)
    }

    /// The atomic core: `decide` sees the key's current entry (live or
    /// not) and gives the entry to store (or none to leave it) and the
    /// result. With an operation key, a repeat returns the first result.
    fn write<R: Serialize + DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        kind: &str,
        actor: &Actor<'_>,
        decide: impl Fn(Option<&Entry>) -> Result<(Option<Entry>, R), StateError>,
    ) -> Result<R, StateError> {
        check_key(key)?;
        let tree = self.tree(table)?;
        let log = self.log_tree(table)?;
        let op = actor
            .op_key
            .map(|k| format!("{k}\u{0}{table}\u{0}{key}\u{0}{kind}"));
        // Counters change on every event; their history is the runs' journals.
        let logged = kind != "incr";
        let ops = self.local(OPS.to_string())?;
        let outcome = (&tree, &ops, &log).transaction(
            |(t, ops, log): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                if let Some(op) = &op {
                    if let Some(done) = ops.get(op.as_bytes())? {
                        return match serde_json::from_slice(&done) {
                            Ok(r) => Ok(r),
                            Err(e) => abort(storage(e)),
                        };
                    }
                }
                let current = current(t, key)?;
                let (next, result) = match decide(current.as_ref()) {
                    Ok(d) => d,
                    Err(e) => return abort(e),
                };
                if let Some(next) = next {
                    t.insert(key, to_json(&next)?)?;
                    if logged {
                        let change = change(kind, actor, &next);
                        let mut at = log_prefix(key);
                        at.extend_from_slice(&log.generate_id()?.to_be_bytes());
                        log.insert(at, to_json(&change)?)?;
                    }
                }
                if let Some(op) = &op {
                    ops.insert(op.as_bytes(), to_json(&result)?)?;
                }
                Ok(result)
            },
        );
        outcome.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => storage(e),
        })
    }

    /// Sets `key` to `value`, expiring after `ttl` if given; the live entry
    /// it replaced, and the one written.
    pub fn put(
        &self,
        table: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        actor: &Actor<'_>,
    ) -> Result<(Option<Entry>, Entry), StateError> {
        check_value(&value)?;
        if let Some(r) = self.remote(async |c| c.put(table, key, value.clone(), ttl, actor).await) {
            return r;
        }
        self.write(table, key, "put", actor, rules::put(value, ttl, actor))
    }

    /// Sets `key` only if it has no live entry; whether it did, and the
    /// entry that holds the key now.
    pub fn put_if_absent(
        &self,
        table: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        actor: &Actor<'_>,
    ) -> Result<(bool, Entry), StateError> {
        check_value(&value)?;
        let remote =
            async |c: &ClusterState| c.put_if_absent(table, key, value.clone(), ttl, actor).await;
        if let Some(r) = self.remote(remote) {
            return r;
        }
        self.write(
            table,
            key,
            "put_if_absent",
            actor,
            rules::put_if_absent(value, ttl, actor),
        )
    }

    /// Sets `key` only if its live version is `expected` (0: no live entry).
    pub fn cas(
        &self,
        table: &str,
        key: &str,
        expected: u64,
        value: Value,
        ttl: Option<Duration>,
        actor: &Actor<'_>,
    ) -> Result<Entry, StateError> {
        check_value(&value)?;
        let remote =
            async |c: &ClusterState| c.cas(table, key, expected, value.clone(), ttl, actor).await;
        if let Some(r) = self.remote(remote) {
            return r;
        }
        self.write(
            table,
            key,
            "cas",
            actor,
            rules::cas(expected, value, ttl, actor),
        )
    }

    /// Deletes `key`; the live entry it removed, if any. A tombstone keeps
    /// the version, so a `cas` on what was deleted fails.
    pub fn delete(
        &self,
        table: &str,
        key: &str,
        actor: &Actor<'_>,
    ) -> Result<Option<Entry>, StateError> {
        if let Some(r) = self.remote(async |c| c.delete(table, key, actor).await) {
            return r;
        }
        self.write(table, key, "delete", actor, rules::delete(actor))
    }

    /// Forgets which operations of run `run_id` were applied (their keys
    /// start `RUN_ID/`): once a run is pruned nothing resumes it.
    pub fn forget_run(&self, run_id: &str) -> Result<usize, StateError> {
        let ops = self.local(OPS.to_string())?;
        let keys: Vec<sled::IVec> = ops
            .scan_prefix(format!("{run_id}/"))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        for k in &keys {
            ops.remove(k).map_err(storage)?;
        }
        Ok(keys.len())
    }

    /// Sets every `(key, value, ttl)` of `rows` in one transaction: all of
    /// them or, on any error, none (an import).
    pub fn put_many(
        &self,
        table: &str,
        rows: &[(String, Value, Option<Duration>)],
        actor: &Actor<'_>,
    ) -> Result<usize, StateError> {
        for (key, value, _) in rows {
            check_key(key)?;
            check_value(value)?;
        }
        let (tree, log) = (self.tree(table)?, self.log_tree(table)?);
        let outcome = (&tree, &log).transaction(|(t, log)| {
            for (key, value, ttl) in rows {
                let current = current(t, key)?;
                let next = next_entry(current.as_ref(), value.clone(), *ttl, actor);
                t.insert(key.as_bytes(), to_json(&next)?)?;
                let mut at = log_prefix(key);
                at.extend_from_slice(&log.generate_id()?.to_be_bytes());
                log.insert(at, to_json(&change("import", actor, &next))?)?;
            }
            Ok(rows.len())
        });
        outcome.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => storage(e),
        })
    }

    /// Every live entry of `table`, in key order, at most `limit`.
    pub fn export(
        &self,
        table: &str,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<(String, Entry)>, StateError> {
        let mut out = Vec::new();
        for item in self.tree(table)?.iter() {
            if out.len() == limit {
                break;
            }
            let (k, v) = item.map_err(storage)?;
            let entry = decode(&v)?;
            if entry.live(now_ms) {
                out.push((String::from_utf8_lossy(&k).into_owned(), entry));
            }
        }
        Ok(out)
    }

    /// Counts one more event of `key` in its window; the count now.
    pub fn incr(
        &self,
        table: &str,
        key: &str,
        window: Window,
        actor: &Actor<'_>,
    ) -> Result<u64, StateError> {
        if let Some(r) = self.remote(async |c| c.incr(table, key, window, actor).await) {
            return r;
        }
        self.write(table, key, "incr", actor, rules::incr(key, window, actor))
    }
}

/// The entry `key` holds (live or not), read inside a transaction.
fn current(t: &TransactionalTree, key: &str) -> Tx<Option<Entry>> {
    match t.get(key.as_bytes())? {
        Some(bytes) => decode(&bytes).map(Some).or_else(abort),
        None => Ok(None),
    }
}

fn to_json<T: Serialize>(value: &T) -> Tx<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ConflictableTransactionError::Abort(storage(e)))
}

/// Where a key's changes start in its table's log: ordered by key, then
/// by a monotonic id.
fn log_prefix(key: &str) -> Vec<u8> {
    let mut prefix = key.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

/// The log's account of a write that left `next`.
fn change(kind: &str, actor: &Actor<'_>, next: &Entry) -> Change {
    Change {
        op: kind.to_string(),
        by: next.by.clone(),
        at_ms: next.at_ms,
        reason: actor.reason.map(str::to_string),
        version: next.version,
        value: next.value.clone(),
        expires_at_ms: next.expires_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MAX_WINDOW_HITS;
    use crate::state::{MAX_KEY, MAX_VALUE};
    use serde_json::json;
    use std::sync::Arc;

    fn at(now_ms: u64) -> Actor<'static> {
        Actor {
            by: "alice",
            now_ms,
            op_key: None,
            reason: None,
        }
    }

    #[test]
    fn put_get_cas_delete_keep_versions_and_expire_to_the_millisecond() {
        let s = StateStore::temporary().unwrap();
        let (previous, e) = s
            .put(
                "exceptions",
                "pentest-01",
                json!({"reason": "Q4 pen test"}),
                Some(Duration::from_secs(60)),
                &at(1_000),
            )
            .unwrap();
        assert_eq!(previous, None);
        assert_eq!((e.version, e.expires_at_ms), (1, Some(61_000)));
        assert!(
            s.get("exceptions", "pentest-01", 60_999).unwrap().is_some(),
            "1 ms before expiry"
        );
        assert!(
            s.get("exceptions", "pentest-01", 61_000).unwrap().is_none(),
            "at expiry"
        );
        // An expired entry is absent to put_if_absent and cas, and its
        // version goes on.
        let (absent, e) = s
            .put_if_absent("exceptions", "pentest-01", json!(1), None, &at(70_000))
            .unwrap();
        assert!(absent);
        assert_eq!(e.version, 2);
        let (absent, held) = s
            .put_if_absent("exceptions", "pentest-01", json!(2), None, &at(70_001))
            .unwrap();
        assert!(!absent);
        assert_eq!(held.value, json!(1));
        assert_eq!(
            s.cas("exceptions", "pentest-01", 1, json!(3), None, &at(70_002))
                .unwrap_err(),
            StateError::Conflict {
                expected: 1,
                found: 2
            }
        );
        assert_eq!(
            s.cas("exceptions", "pentest-01", 2, json!(3), None, &at(70_003))
                .unwrap()
                .version,
            3
        );
        let removed = s.delete("exceptions", "pentest-01", &at(70_004)).unwrap();
        assert_eq!(removed.map(|e| e.value), Some(json!(3)));
        assert!(s.get("exceptions", "pentest-01", 70_005).unwrap().is_none());
        assert_eq!(
            s.cas("exceptions", "pentest-01", 3, json!(4), None, &at(70_006))
                .unwrap_err(),
            StateError::Conflict {
                expected: 3,
                found: 0
            },
            "a cas on a deleted version fails"
        );
        assert_eq!(
            s.cas("exceptions", "pentest-01", 0, json!(4), None, &at(70_007))
                .unwrap()
                .version,
            5
        );
    }

    #[test]
    fn concurrent_increments_are_exact_and_an_operation_key_counts_once() {
        let s = Arc::new(StateStore::temporary().unwrap());
        let threads: Vec<_> = (0..64)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let op = format!("run-{t}/step/{i}");
                        let actor = Actor {
                            by: "run",
                            now_ms: 1_000,
                            op_key: Some(&op),
                            reason: None,
                        };
                        s.incr(
                            "seen",
                            "host-1",
                            Window::Fixed(Duration::from_secs(3600)),
                            &actor,
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let count = |now| s.get("seen", "host-1", now).unwrap().unwrap().value["count"].clone();
        assert_eq!(count(2_000), json!(6_400));
        // A resumed step repeats its increment with its idempotency key:
        // the first result comes back, nothing is counted twice.
        let actor = Actor {
            by: "run",
            now_ms: 2_000,
            op_key: Some("run-7/step/42"),
            reason: None,
        };
        let again = s
            .incr(
                "seen",
                "host-1",
                Window::Fixed(Duration::from_secs(3600)),
                &actor,
            )
            .unwrap();
        assert!(again <= 6_400, "{again}");
        assert_eq!(count(2_000), json!(6_400));
    }

    #[test]
    fn fixed_and_sliding_windows_count_what_they_say() {
        let s = StateStore::temporary().unwrap();
        let fixed = Window::Fixed(Duration::from_secs(10));
        let n = |now| s.incr("logins", "j.doe", fixed, &at(now)).unwrap();
        assert_eq!((n(0), n(5_000), n(9_999)), (1, 2, 3));
        assert_eq!(n(10_000), 1, "a new window");
        let sliding = Window::Sliding(Duration::from_secs(10));
        let m = |now| s.incr("pushes", "j.doe", sliding, &at(now)).unwrap();
        assert_eq!((m(0), m(5_000), m(9_999)), (1, 2, 3));
        assert_eq!(
            m(12_000),
            3,
            "the hit at 0 left the window, 5 s and 9.999 s are in"
        );
        assert_eq!(m(30_000), 1);
        // A counter of one kind is not the other's.
        s.put("pushes", "x", json!("text"), None, &at(0)).unwrap();
        assert_eq!(
            s.incr("pushes", "x", sliding, &at(1)).unwrap_err(),
            StateError::NotACounter("x".into())
        );
    }

    #[test]
    fn bad_names_keys_values_and_unbounded_scans_are_refused() {
        let s = StateStore::temporary().unwrap();
        let a = at(0);
        assert!(matches!(
            s.put("Bad Table", "k", json!(1), None, &a),
            Err(StateError::Table(_))
        ));
        assert_eq!(
            s.put("t", "", json!(1), None, &a).unwrap_err(),
            StateError::Key(0)
        );
        let long = "k".repeat(MAX_KEY + 1);
        assert_eq!(
            s.get("t", &long, 0).unwrap_err(),
            StateError::Key(MAX_KEY + 1)
        );
        let big = json!("x".repeat(MAX_VALUE));
        assert!(matches!(
            s.put("t", "k", big, None, &a),
            Err(StateError::Value(_))
        ));
        for i in 0..5 {
            s.put(
                "assets",
                &format!("ws-{i}"),
                json!({"criticality": "high"}),
                None,
                &a,
            )
            .unwrap();
        }
        s.put(
            "assets",
            "dc01",
            json!({"criticality": "critical"}),
            Some(Duration::from_millis(1)),
            &a,
        )
        .unwrap();
        assert_eq!(s.scan("assets", "ws-", 3, 0).unwrap().len(), 3);
        assert_eq!(
            s.scan("assets", "", 100, 5).unwrap().len(),
            5,
            "the expired entry is not returned"
        );
        assert_eq!(
            s.scan("assets", "", MAX_SCAN + 1, 0).unwrap_err(),
            StateError::Scan(MAX_SCAN + 1)
        );
        let got = s.lookup("assets", &["ws-1", "nope"], 0).unwrap();
        assert!(got[0].is_some() && got[1].is_none());
    }

    #[test]
    fn the_log_says_who_set_a_key_when_and_why() {
        let s = StateStore::temporary().unwrap();
        let carol = Actor {
            by: "carol",
            now_ms: 1_000,
            op_key: None,
            reason: Some("Q4 pen test, ticket SEC-881"),
        };
        let day = Some(Duration::from_secs(86_400));
        s.put(
            "exceptions",
            "ws-pentest-01",
            json!({"until": "2026-12-31"}),
            day,
            &carol,
        )
        .unwrap();
        s.put(
            "exceptions",
            "ws-pentest-010",
            json!("another key"),
            None,
            &carol,
        )
        .unwrap();
        let bob = Actor {
            by: "bob",
            now_ms: 2_000,
            op_key: None,
            reason: Some("pen test over"),
        };
        s.delete("exceptions", "ws-pentest-01", &bob).unwrap();
        for n in 0..3 {
            let fixed = Window::Fixed(Duration::from_secs(9));
            s.incr("exceptions", "counter", fixed, &at(n)).unwrap();
        }
        let log = s.log("exceptions", "ws-pentest-01", 10).unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!((log[0].op.as_str(), log[0].by.as_str()), ("put", "carol"));
        assert_eq!(
            log[0].reason.as_deref(),
            Some("Q4 pen test, ticket SEC-881")
        );
        assert_eq!(log[0].expires_at_ms, Some(86_401_000));
        let last = (log[1].op.as_str(), log[1].by.as_str(), log[1].version);
        assert_eq!(last, ("delete", "bob", 2));
        let newest = s.log("exceptions", "ws-pentest-01", 1).unwrap();
        assert_eq!(newest[0].op, "delete");
        assert!(
            s.log("exceptions", "counter", 10).unwrap().is_empty(),
            "increments are not logged"
        );
        let err = s.log("exceptions", "x", MAX_LOG + 1).unwrap_err();
        assert_eq!(err, StateError::Scan(MAX_LOG + 1));
    }

    #[test]
    fn a_sliding_counter_saturates_under_the_value_cap() {
        let s = StateStore::temporary().unwrap();
        let sliding = Window::Sliding(Duration::from_secs(86_400));
        let mut last = 0;
        for n in 0..MAX_WINDOW_HITS as u64 + 5 {
            last = s
                .incr("c", "k", sliding, &at(1_796_000_000_000 + n))
                .unwrap();
        }
        assert_eq!(last, MAX_WINDOW_HITS as u64, "the count saturates");
        let e = s.get("c", "k", 1_796_000_000_000).unwrap().unwrap();
        let bytes = serde_json::to_vec(&e.value).unwrap().len();
        assert!(bytes <= MAX_VALUE, "{bytes} bytes");
    }

    #[test]
    fn a_pruned_run_is_forgotten_and_only_that_run() {
        let s = StateStore::temporary().unwrap();
        let fixed = Window::Fixed(Duration::from_secs(60));
        let at = |op: &'static str| Actor {
            by: "run",
            now_ms: 0,
            op_key: Some(op),
            reason: None,
        };
        assert_eq!(s.incr("c", "k", fixed, &at("r1/s")).unwrap(), 1);
        assert_eq!(
            s.incr("c", "k", fixed, &at("r1/s")).unwrap(),
            1,
            "applied once"
        );
        assert_eq!(s.incr("c", "k", fixed, &at("r10/s")).unwrap(), 2);
        assert_eq!(s.forget_run("r1").unwrap(), 1, "r10 is another run");
        assert_eq!(
            s.incr("c", "k", fixed, &at("r10/s")).unwrap(),
            2,
            "still remembered"
        );
        assert_eq!(
            s.incr("c", "k", fixed, &at("r1/s")).unwrap(),
            3,
            "forgotten"
        );
    }

    #[test]
    fn an_import_writes_every_row_or_none() {
        let s = StateStore::temporary().unwrap();
        let a = at(0);
        let good = vec![
            ("a".to_string(), json!(1), None),
            ("b".to_string(), json!(2), None),
        ];
        assert_eq!(s.put_many("t", &good, &a).unwrap(), 2);
        let bad = vec![
            ("c".to_string(), json!(3), None),
            ("k".repeat(MAX_KEY + 1), json!(4), None),
        ];
        assert_eq!(
            s.put_many("t", &bad, &a).unwrap_err(),
            StateError::Key(MAX_KEY + 1)
        );
        assert!(s.get("t", "c", 0).unwrap().is_none(), "half imported");
        assert_eq!(s.log("t", "a", 10).unwrap()[0].op, "import");
        assert_eq!(s.export("t", 10, 0).unwrap().len(), 2);
    }

    #[test]
    fn entries_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.put(
                "maintenance",
                "ws-fin-042",
                json!({"until": "sunday"}),
                Some(Duration::from_secs(60)),
                &at(0),
            )
            .unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        assert!(s
            .get("maintenance", "ws-fin-042", 59_999)
            .unwrap()
            .is_some());
        assert!(s
            .get("maintenance", "ws-fin-042", 60_000)
            .unwrap()
            .is_none());
    }
}
