//! Investigation compression: how much work the service removes before a
//! human decides, computed from the journal alone, per playbook and per
//! source, over a period. `GET /api/v1/metrics/summary`, `soar report` and
//! the console's Overview call [`summary`]; each figure is defined in
//! docs/metrics.md. `facts.rs` is what one run contributes, `cache.rs`
//! keeps a finished run's facts beside the journal (recomputed by verify).

mod cache;
mod facts;

pub use cache::check as check_cache;
pub use facts::{closure, MAX_ENRICHED_STEPS};

use super::OpError;
use crate::journal::{Decision, Journal, RunStatus};
use facts::RunFacts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Distinct closure reasons kept per figure set; the rest count as `other`.
const MAX_REASONS: usize = 50;
/// Upper bounds (seconds) of the time-to-decision histogram's buckets.
pub const DECISION_BUCKETS: [u64; 7] = [60, 300, 900, 3_600, 14_400, 86_400, u64::MAX];

/// Which runs, and what counts as enriched.
#[derive(Debug, Clone)]
pub struct Query {
    /// Runs started at or after (Unix ms).
    pub from_ms: u64,
    /// Runs started before (Unix ms).
    pub to_ms: u64,
    /// Only this playbook.
    pub playbook: Option<String>,
    /// A run is enriched once this many enrichment steps succeeded.
    pub enriched_steps: usize,
}

/// Refuses an `enriched_steps` the facts cannot answer.
pub fn check_enriched_steps(n: usize) -> Result<(), String> {
    if (1..=MAX_ENRICHED_STEPS).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "`enriched_steps` must be 1 to {MAX_ENRICHED_STEPS}, not {n}"
        ))
    }
}

/// Count, median, 90th percentile, maximum and mean of durations, in
/// seconds (nearest-rank percentiles); `None`s when there is none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// How many durations.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// Longest.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

impl Dist {
    fn of(mut ms: Vec<u64>) -> Dist {
        if ms.is_empty() {
            return Dist::default();
        }
        ms.sort_unstable();
        let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        let sum: u64 = ms.iter().sum();
        Dist {
            count: ms.len(),
            p50: Some(secs(rank(0.5))),
            p90: Some(secs(rank(0.9))),
            max: ms.last().map(|m| secs(*m)),
            mean: Some(sum as f64 / ms.len() as f64 / 1000.0),
        }
    }
}

/// `part / whole`, or `None` when nothing was counted.
fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The approval figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Approvals {
    /// Gates asked.
    pub requested: u64,
    /// Granted.
    pub granted: u64,
    /// Denied by a person.
    pub denied: u64,
    /// Nobody decided in time (counts as denied).
    pub expired: u64,
    /// granted / (granted + denied + expired).
    pub acceptance_rate: Option<f64>,
    /// From a gate's request to its decision.
    pub latency_s: Dist,
}

/// Repeated alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Repeats {
    /// Alerts received: runs plus repeats.
    pub alerts: u64,
    /// Alerts merged (dedup) or grouped into an open run.
    pub repeats: u64,
    /// repeats / alerts.
    pub rate: Option<f64>,
}

/// Destructive (response) actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Responses {
    /// Steps the guard authorized.
    pub authorized: u64,
    /// Of those, the ones that succeeded.
    pub succeeded: u64,
    /// Steps the guard blocked.
    pub blocked: u64,
    /// succeeded / authorized.
    pub success_rate: Option<f64>,
}

/// The figures of one set of runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Runs started in the period.
    pub runs: u64,
    /// Of those, runs with a final status.
    pub finished: u64,
    /// From the alert (run start) to the N-th enrichment step's success.
    pub time_to_enriched_s: Dist,
    /// From the alert to each gate's decision.
    pub time_to_decision_s: Dist,
    /// Approval gates.
    pub approvals: Approvals,
    /// Finished runs in which no person voted, resolved or cancelled.
    pub automated: u64,
    /// automated / finished.
    pub automation_rate: Option<f64>,
    /// Repeated alerts.
    pub repeat_alerts: Repeats,
    /// Finished runs by closure reason.
    pub closures: BTreeMap<String, u64>,
    /// Response actions.
    pub response_actions: Responses,
    /// Runs waiting for an operator on a step in doubt.
    pub in_doubt: u64,
    #[serde(skip)]
    enriched_ms: Vec<u64>,
    #[serde(skip)]
    decision_ms: Vec<u64>,
    #[serde(skip)]
    latency_ms: Vec<u64>,
}

impl Figures {
    fn add(&mut self, f: &RunFacts, enriched_steps: usize) {
        self.runs += 1;
        self.repeat_alerts.repeats += f.repeats;
        self.repeat_alerts.alerts += 1 + f.repeats;
        self.enriched_ms.extend(f.enriched_after(enriched_steps));
        for (asked, decided) in &f.gates {
            self.approvals.requested += 1;
            let Some((when, d)) = decided else { continue };
            self.decision_ms.push(when.saturating_sub(f.started_ms));
            self.latency_ms.push(when.saturating_sub(*asked));
            match d {
                Decision::Granted => self.approvals.granted += 1,
                Decision::Denied => self.approvals.denied += 1,
                Decision::Expired => self.approvals.expired += 1,
            }
        }
        self.response_actions.authorized += f.authorized.len() as u64;
        self.response_actions.succeeded += f.authorized.values().filter(|ok| **ok).count() as u64;
        self.response_actions.blocked += f.blocked;
        if f.status == Some(RunStatus::InDoubt) {
            self.in_doubt += 1;
        }
        let (Some(status), Some(closure)) = (f.status, &f.closure) else {
            return;
        };
        if !status.is_final() {
            return;
        }
        self.finished += 1;
        self.automated += u64::from(!f.human);
        let key = if self.closures.len() >= MAX_REASONS && !self.closures.contains_key(closure) {
            "other".to_string()
        } else {
            closure.clone()
        };
        *self.closures.entry(key).or_default() += 1;
    }

    fn finish(&mut self) {
        self.time_to_enriched_s = Dist::of(std::mem::take(&mut self.enriched_ms));
        self.time_to_decision_s = Dist::of(std::mem::take(&mut self.decision_ms));
        self.approvals.latency_s = Dist::of(std::mem::take(&mut self.latency_ms));
        let a = &mut self.approvals;
        a.acceptance_rate = rate(a.granted, a.granted + a.denied + a.expired);
        self.automation_rate = rate(self.automated, self.finished);
        let r = &mut self.repeat_alerts;
        r.rate = rate(r.repeats, r.alerts);
        let s = &mut self.response_actions;
        s.success_rate = rate(s.succeeded, s.authorized);
    }
}

/// The summary `GET /api/v1/metrics/summary` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Period start (RFC 3339).
    pub from: String,
    /// Period end (RFC 3339, excluded).
    pub to: String,
    /// Enrichment steps that make a run "enriched".
    pub enriched_steps: usize,
    /// Every run in the period.
    pub total: Figures,
    /// By playbook.
    pub playbooks: BTreeMap<String, Figures>,
    /// By source (`started_by`: `source:NAME`, or the principal).
    pub sources: BTreeMap<String, Figures>,
    /// Gate decisions per UTC day.
    pub decisions_per_day: BTreeMap<String, u64>,
    /// Time from alert to decision: (upper bound in seconds, count), the
    /// last bucket unbounded (`null`).
    pub decision_histogram: Vec<(Option<u64>, u64)>,
}

/// Distinct sources kept; the rest are summed under `other`.
const MAX_SOURCES: usize = 200;

/// The summary of the runs `q` selects.
pub fn summary(journal: &Journal, q: &Query) -> Result<Summary, OpError> {
    let mut s = Summary {
        from: crate::journal::format_unix_millis(q.from_ms),
        to: crate::journal::format_unix_millis(q.to_ms),
        enriched_steps: q.enriched_steps.max(1),
        decision_histogram: DECISION_BUCKETS
            .iter()
            .map(|b| ((*b != u64::MAX).then_some(*b), 0))
            .collect(),
        ..Summary::default()
    };
    cache::for_each_run(journal, |f| {
        let wanted = q.playbook.as_ref().is_none_or(|p| *p == f.playbook);
        if wanted && (q.from_ms..q.to_ms).contains(&f.started_ms) {
            s.add(f);
        }
    })?;
    s.total.finish();
    s.playbooks.values_mut().for_each(Figures::finish);
    s.sources.values_mut().for_each(Figures::finish);
    Ok(s)
}

impl Summary {
    fn add(&mut self, f: &RunFacts) {
        let n = self.enriched_steps;
        self.total.add(f, n);
        self.playbooks
            .entry(f.playbook.clone())
            .or_default()
            .add(f, n);
        let source = if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&f.source) {
            "other".to_string()
        } else {
            f.source.clone()
        };
        self.sources.entry(source).or_default().add(f, n);
        for (_, decided) in &f.gates {
            let Some((when, _)) = decided else { continue };
            let day = crate::journal::format_unix_millis(*when);
            *self
                .decisions_per_day
                .entry(day[..10].to_string())
                .or_default() += 1;
            let took = when.saturating_sub(f.started_ms) / 1000;
            if let Some(b) = self
                .decision_histogram
                .iter_mut()
                .find(|(le, _)| le.is_none_or(|le| took <= le))
            {
                b.1 += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Record;
    use serde_json::{json, Value};

    const DAY1: u64 = 1_796_601_600_000; // 2026-12-07T00:00:00Z
    const DAY2: u64 = DAY1 + 86_400_000;

    /// A run's records from (seconds after `start`, event JSON) pairs.
    fn run(start: u64, events: &[(u64, Value)]) -> Vec<Record> {
        events
            .iter()
            .enumerate()
            .map(|(i, (s, e))| Record {
                seq: i as u64 + 1,
                at: crate::journal::format_unix_millis(start + s * 1000),
                prev_hash: String::new(),
                hash: String::new(),
                event: serde_json::from_value(e.clone()).expect("event"),
            })
            .collect()
    }

    fn started(pb: &str, by: &str) -> Value {
        json!({"type": "run_started", "playbook": pb, "version": "1", "playbook_path": "p.yaml", "playbook_sha256": "0",
               "inputs": {}, "alert": {}, "started_by": by})
    }
    fn attempt(step: &str, plugin: &str) -> Value {
        json!({"type": "attempt_started", "step": step, "attempt": 1, "idempotency_key": "k",
               "input": {}, "plugin": plugin, "action": "a", "dry_run": false, "plugin_sha256": "0"})
    }
    fn finished(step: &str, status: &str) -> Value {
        json!({"type": "step_finished", "step": step, "status": status})
    }
    fn asked(step: &str) -> Value {
        json!({"type": "approval_requested", "step": step, "approvers": ["soc-lead"], "min_approvals": 1,
               "expires_at": "2026-12-09T00:00:00.000Z", "handoff": {}, "bindings": [], "plan": null})
    }
    fn decided(step: &str, d: &str, by: &[&str]) -> Value {
        json!({"type": "approval_decided", "step": step, "decision": d, "by": by, "reason": ""})
    }
    fn voted(step: &str, by: &str, vote: &str) -> Value {
        json!({"type": "approval_voted", "step": step, "by": by, "vote": vote, "reason": ""})
    }
    fn done(status: &str, outputs: Value) -> Value {
        json!({"type": "run_finished", "status": status, "outputs": outputs})
    }

    /// Five runs whose every figure is worked out by hand in the asserts.
    fn journal() -> Vec<Vec<Record>> {
        let repeat =
            |t: &str| json!({"type": t, "key": "h", "alert": {}, "by": "source:edr", "count": 2});
        vec![
            // A: enriched after 2 s, granted by bob 60 s after asking (70 s
            // after the alert), containment authorized and done: "incident".
            run(
                DAY1,
                &[
                    (0, started("mc", "source:edr")),
                    (1, attempt("host", "edr")),
                    (2, finished("host", "succeeded")),
                    (3, attempt("hash", "ti")),
                    (5, finished("hash", "succeeded")),
                    (10, asked("approve")),
                    (70, voted("approve", "bob", "approve")),
                    (70, decided("approve", "granted", &["bob"])),
                    (
                        71,
                        json!({"type": "action_authorized", "step": "isolate", "uses": "edr.isolate_host", "basis": {}, "targets": ["h"], "input_sha256": "0", "plugin_sha256": "0"}),
                    ),
                    (71, attempt("isolate", "edr")),
                    (72, finished("isolate", "succeeded")),
                    (73, done("succeeded", json!({"outcome": "incident"}))),
                ],
            ),
            // B: enriched after 1 s; nobody answered for 30 min: expired, no
            // person involved; closed without an outcome.
            run(
                DAY2,
                &[
                    (0, started("mc", "source:edr")),
                    (0, attempt("host", "edr")),
                    (1, finished("host", "succeeded")),
                    (3, asked("approve")),
                    (1803, decided("approve", "expired", &[])),
                    (
                        1803,
                        json!({"type": "step_skipped", "step": "isolate", "reason": "no"}),
                    ),
                    (1804, done("succeeded", json!({}))),
                ],
            ),
            // C: three repeats; only a state lookup (not enrichment); suppressed.
            run(
                DAY1,
                &[
                    (0, started("mc", "source:edr")),
                    (1, repeat("alert_grouped")),
                    (2, repeat("alert_grouped")),
                    (3, repeat("alert_merged")),
                    (4, attempt("maint", "state")),
                    (4, finished("maint", "succeeded")),
                    (5, done("suppressed", json!({}))),
                ],
            ),
            // D: another playbook and source; denied by carol 96 s after
            // asking (100 s after the alert); a false positive.
            run(
                DAY1,
                &[
                    (0, started("cred", "api:alice")),
                    (1, attempt("user", "idp")),
                    (4, finished("user", "succeeded")),
                    (4, asked("approve")),
                    (100, voted("approve", "carol", "deny")),
                    (100, decided("approve", "denied", &["carol"])),
                    (101, done("failed", json!({"closure": "false_positive"}))),
                ],
            ),
            // E: waits for an operator on a step in doubt.
            run(
                DAY1,
                &[
                    (0, started("mc", "source:edr")),
                    (1, attempt("host", "edr")),
                    (
                        2,
                        json!({"type": "run_paused", "status": "in_doubt", "reason": "x"}),
                    ),
                ],
            ),
        ]
    }

    fn computed() -> Summary {
        let mut s = Summary {
            decision_histogram: DECISION_BUCKETS
                .iter()
                .map(|b| ((*b != u64::MAX).then_some(*b), 0))
                .collect(),
            ..Summary::default()
        };
        for records in journal() {
            s.add(&facts::facts(&records).expect("a run"));
        }
        s.total.finish();
        s.playbooks.values_mut().for_each(Figures::finish);
        s.sources.values_mut().for_each(Figures::finish);
        s
    }

    fn dist(count: usize, p50: f64, p90: f64, max: f64, mean: f64) -> Dist {
        Dist {
            count,
            p50: Some(p50),
            p90: Some(p90),
            max: Some(max),
            mean: Some(mean),
        }
    }

    #[test]
    fn every_figure_matches_the_hand_worked_answer() {
        let s = computed();
        let t = &s.total;
        assert_eq!((t.runs, t.finished, t.automated, t.in_doubt), (5, 4, 2, 1));
        assert_eq!(t.automation_rate, Some(0.5));
        assert_eq!(t.time_to_enriched_s, dist(3, 2.0, 4.0, 4.0, 7.0 / 3.0));
        assert_eq!(
            t.time_to_decision_s,
            dist(3, 100.0, 1803.0, 1803.0, 1973.0 / 3.0)
        );
        let a = &t.approvals;
        assert_eq!((a.requested, a.granted, a.denied, a.expired), (3, 1, 1, 1));
        assert_eq!(a.acceptance_rate, Some(1.0 / 3.0));
        assert_eq!(a.latency_s, dist(3, 96.0, 1800.0, 1800.0, 652.0));
        assert_eq!(
            t.repeat_alerts,
            Repeats {
                alerts: 8,
                repeats: 3,
                rate: Some(0.375)
            }
        );
        let closures: Vec<(&str, u64)> = t.closures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            closures,
            [
                ("closed", 1),
                ("false_positive", 1),
                ("incident", 1),
                ("suppressed", 1)
            ]
        );
        assert_eq!(
            t.response_actions,
            Responses {
                authorized: 1,
                succeeded: 1,
                blocked: 0,
                success_rate: Some(1.0)
            }
        );
        assert_eq!(s.playbooks["mc"].runs, 4);
        assert_eq!(s.playbooks["cred"].approvals.denied, 1);
        assert_eq!(s.sources["api:alice"].runs, 1);
        assert_eq!(s.sources["source:edr"].automation_rate, Some(2.0 / 3.0));
        let days: Vec<(&str, u64)> = s
            .decisions_per_day
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(days, [("2026-12-07", 2), ("2026-12-08", 1)]);
        let counts: Vec<u64> = s.decision_histogram.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [0, 2, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn enrichment_waits_for_the_nth_vendor_step_and_empty_sets_have_no_rates() {
        let a = &journal()[0];
        let f = facts::facts(a).unwrap();
        assert_eq!(f.enriched_after(2), Some(5_000));
        assert_eq!(f.enriched_after(3), None);
        let mut empty = Figures::default();
        empty.finish();
        assert_eq!(
            (empty.automation_rate, empty.approvals.acceptance_rate),
            (None, None)
        );
        assert_eq!(empty.time_to_decision_s, Dist::default());
    }

    #[test]
    fn a_closure_from_outside_is_cut_and_their_number_is_capped() {
        let long = json!({"outcome": "x".repeat(500)});
        assert_eq!(
            closure(RunStatus::Succeeded, &long).len(),
            facts::MAX_REASON_LEN
        );
        assert_eq!(
            closure(RunStatus::Cancelled, &json!({"outcome": "  "})),
            "cancelled"
        );
        let mut f = Figures::default();
        for i in 0..(MAX_REASONS + 10) {
            let facts = RunFacts {
                playbook: "p".into(),
                status: Some(RunStatus::Succeeded),
                closure: Some(format!("r{i}")),
                ..RunFacts::default()
            };
            f.add(&facts, 1);
        }
        assert_eq!(f.closures.len(), MAX_REASONS + 1);
        assert_eq!(f.closures["other"], 10);
    }

    /// Five fixture runs appended to a real journal, as runs r0..r4.
    async fn stored() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), crate::journal::Durability::Process).unwrap();
        for (i, run) in journal().into_iter().enumerate() {
            for r in run {
                j.append(&format!("r{i}"), r.event).await.unwrap();
            }
        }
        (dir, j)
    }

    const ALL: Query = Query {
        from_ms: 0,
        to_ms: u64::MAX,
        playbook: None,
        enriched_steps: 1,
    };

    #[tokio::test]
    async fn the_cache_answers_as_the_records_do_and_an_edited_entry_is_caught() {
        let (_dir, j) = stored().await;
        let first = summary(&j, &ALL).unwrap();
        assert_eq!((first.total.runs, first.total.finished), (5, 4));
        // The four final runs are cached; the one in doubt is not.
        let cache = j.derived("metrics").unwrap();
        let cached: Vec<String> = cache.iter().map(|e| e.unwrap().0).collect();
        assert_eq!(cached, ["r0", "r1", "r2", "r3"]);
        assert_eq!(summary(&j, &ALL).unwrap(), first);
        // The cache is what a summary reads: an edited entry shows...
        let mut entry: Value = serde_json::from_slice(&cache.get("r0").unwrap().unwrap()).unwrap();
        entry["value"]["closure"] = json!("benign");
        cache.put("r0", entry.to_string().as_bytes()).unwrap();
        let edited = summary(&j, &ALL).unwrap();
        assert_eq!(edited.total.closures.get("benign"), Some(&1));
        assert_eq!(edited.total.closures.get("incident"), None);
        // ...until verify recomputes it, names the run and drops it.
        let problems = check_cache(&j).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("run r0: its cached metrics (tree derived:metrics)"));
        assert!(problems[0].contains("does not match"));
        assert_eq!(summary(&j, &ALL).unwrap(), first);
        assert!(check_cache(&j).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stale_unreadable_or_orphaned_entry_is_not_used() {
        let (_dir, j) = stored().await;
        let first = summary(&j, &ALL).unwrap();
        let cache = j.derived("metrics").unwrap();
        // Unreadable: read from the journal again (and named by verify).
        cache.put("r1", b"{not json").unwrap();
        assert_eq!(summary(&j, &ALL).unwrap(), first);
        cache.put("r1", b"{not json").unwrap();
        assert!(check_cache(&j).unwrap()[0]
            .contains("run r1: its cached metrics (tree derived:metrics) is unreadable"));
        // Stale: the run has a record past the entry's seq (an alert
        // merged after the end, say): the entry is not used.
        let mut entry: Value = serde_json::from_slice(&cache.get("r2").unwrap().unwrap()).unwrap();
        entry["value"]["repeats"] = json!(1000);
        entry["seq"] = json!(entry["seq"].as_u64().unwrap() - 1);
        cache.put("r2", entry.to_string().as_bytes()).unwrap();
        assert_eq!(summary(&j, &ALL).unwrap(), first);
        // Orphaned: an entry of a run that is gone is dropped, not counted.
        cache.put("r00", entry.to_string().as_bytes()).unwrap();
        assert_eq!(summary(&j, &ALL).unwrap(), first);
        assert_eq!(cache.get("r00").unwrap(), None);
    }
}
