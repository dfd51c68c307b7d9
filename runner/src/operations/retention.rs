//! Retention by use case: which finished runs the config's
//! `journal.retention` rules prune now, and pruning them (each leaves a
//! signed tombstone). A run waits until every SIEM sink has exported its
//! last record. `soar journal prune` and `soar serve` both call this.

use super::OpError;
use crate::config::RetentionRule;
use crate::journal::{parse_unix_millis, Journal, Tombstone};

/// A run a rule prunes now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Planned {
    /// The run.
    pub run_id: String,
    /// Its playbook.
    pub playbook: String,
    /// Its final status.
    pub status: String,
    /// When it ended.
    pub ended_at: String,
    /// The rule.
    pub rule: String,
    /// SIEM sinks that have not exported its last record yet: it waits.
    pub waits_for: Vec<String>,
}

impl Planned {
    /// Whether it is pruned now (every sink has it).
    pub fn ready(&self) -> bool {
        self.waits_for.is_empty()
    }
}

pub use crate::siem::Exports;

/// The sinks of `exports` that have not reached `seq` of `run_id`.
fn behind(exports: &Exports, run_id: &str, seq: u64) -> Vec<String> {
    exports
        .iter()
        .filter(|(_, runs)| runs.get(run_id).copied().unwrap_or(0) < seq)
        .map(|(sink, runs)| {
            format!(
                "siem {sink} (exported to seq {} of {seq})",
                runs.get(run_id).copied().unwrap_or(0)
            )
        })
        .collect()
}

/// The first rule that matches a run of `playbook` that ended `status`.
fn rule_for<'r>(
    rules: &'r [RetentionRule],
    playbook: &str,
    status: crate::journal::RunStatus,
) -> Option<&'r RetentionRule> {
    rules.iter().find(|r| {
        r.playbook.as_deref().is_none_or(|p| p == playbook)
            && (r.statuses.is_empty() || r.statuses.contains(&status))
    })
}

/// The finished runs `rules` prune at `now_ms` (first matching rule decides;
/// no rule, or a run not final: kept), each saying which sinks of `exports`
/// it waits for; then the prunes a crash interrupted, to finish.
pub fn plan(
    journal: &Journal,
    rules: &[RetentionRule],
    now_ms: u64,
    exports: &Exports,
) -> Result<Vec<Planned>, OpError> {
    let mut out = Vec::new();
    if rules.is_empty() {
        return Ok(out);
    }
    for (run_id, t) in journal.interrupted_prunes()? {
        out.push(Planned {
            waits_for: behind(exports, &run_id, t.final_seq),
            run_id,
            playbook: t.playbook,
            status: t.status,
            ended_at: t.ended_at,
            rule: format!("{} (finishing a prune a crash interrupted)", t.rule),
        });
    }
    for run_id in journal.run_ids()? {
        let Ok(s) = journal.summary(&run_id) else {
            continue; // A damaged run is verify's to report, never pruned.
        };
        if !s.status.is_final() {
            continue;
        }
        let Some(rule) = rule_for(rules, &s.playbook, s.status) else {
            continue;
        };
        let ended = parse_unix_millis(&s.updated_at).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(ended) < rule.keep.as_millis() as u64 {
            continue;
        }
        let last = journal.head_seq(&run_id)?.unwrap_or(u64::MAX);
        out.push(Planned {
            waits_for: behind(exports, &run_id, last),
            run_id,
            playbook: s.playbook,
            status: s.status.to_string(),
            ended_at: s.updated_at,
            rule: rule.name.clone(),
        });
    }
    Ok(out)
}

/// Prunes every planned run that is [`Planned::ready`]; each with its
/// tombstone or why it was not pruned (the journal checks each run, and
/// the checkpoints once, before it removes anything).
pub fn prune<'p>(
    journal: &Journal,
    planned: &'p [Planned],
) -> Vec<(&'p Planned, Result<Tombstone, OpError>)> {
    let ready: Vec<&Planned> = planned.iter().filter(|p| p.ready()).collect();
    let runs: Vec<(String, String)> = ready
        .iter()
        .map(|p| (p.run_id.clone(), p.rule.clone()))
        .collect();
    let results = journal.prune_many(&runs);
    ready
        .into_iter()
        .zip(results.into_iter().map(|r| r.map_err(OpError::from)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Durability, Event, JournalKeys, RunStatus};
    use serde_json::json;
    use std::time::Duration;

    fn started(playbook: &str) -> Event {
        Event::RunStarted {
            playbook: playbook.into(),
            version: "1".into(),
            playbook_sha256: "ab".repeat(32),
            playbook_path: format!("{playbook}.yaml"),
            inputs: json!({}),
            alert: json!({}),
            started_by: "t".into(),
            dedup_key: None,
            raw: None,
            group_key: None,
            previous_run: None,
        }
    }

    async fn run(journal: &Journal, id: &str, playbook: &str, status: RunStatus) {
        journal.append(id, started(playbook)).await.unwrap();
        let end = if status.is_final() {
            Event::RunFinished {
                status,
                outputs: json!({}),
                error: None,
            }
        } else {
            Event::RunPaused {
                status,
                reason: "waiting".into(),
            }
        };
        journal.append(id, end).await.unwrap();
    }

    fn rule(
        name: &str,
        playbook: Option<&str>,
        statuses: &[RunStatus],
        days: u64,
    ) -> RetentionRule {
        RetentionRule {
            name: name.into(),
            playbook: playbook.map(str::to_string),
            statuses: statuses.to_vec(),
            keep: Duration::from_secs(days * 86_400),
        }
    }

    #[tokio::test]
    async fn runs_are_pruned_exactly_per_the_rules_and_their_tombstones_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let keys = JournalKeys {
            public: vec![key.verifying_key()],
            signing: Some(key),
        };
        let journal = Journal::open_keyed(dir.path(), Durability::Process, keys).unwrap();
        run(&journal, "benign", "phishing", RunStatus::Succeeded).await;
        run(&journal, "contained", "malware", RunStatus::Succeeded).await;
        run(&journal, "failed", "phishing", RunStatus::Failed).await;
        run(&journal, "cancelled", "malware", RunStatus::Cancelled).await;
        run(&journal, "waiting", "phishing", RunStatus::WaitingApproval).await;
        run(&journal, "doubt", "malware", RunStatus::InDoubt).await;
        let rules = [
            rule("benign-30d", Some("phishing"), &[RunStatus::Succeeded], 30),
            rule(
                "problems-1y",
                None,
                &[RunStatus::Failed, RunStatus::Cancelled],
                365,
            ),
        ];
        let day = 86_400_000;
        let now = crate::journal::now_unix_millis();
        let ids = |p: Vec<Planned>| {
            p.into_iter()
                .map(|p| (p.run_id, p.rule))
                .collect::<Vec<_>>()
        };
        let none = Exports::new();
        // What was derived from a run goes with it.
        let reports = journal.derived("report").unwrap();
        for id in ["failed", "waiting"] {
            crate::operations::status(&journal, id).unwrap();
            reports.put(id, b"{}").unwrap();
        }
        assert!(plan(&journal, &rules, now, &none).unwrap().is_empty());
        let in_40_days = plan(&journal, &rules, now + 40 * day, &none).unwrap();
        assert_eq!(
            ids(in_40_days.clone()),
            [("benign".to_string(), "benign-30d".to_string())]
        );
        let mut in_400_days = ids(plan(&journal, &rules, now + 400 * day, &none).unwrap());
        in_400_days.sort();
        assert_eq!(
            in_400_days,
            [
                ("benign".to_string(), "benign-30d".to_string()),
                ("cancelled".to_string(), "problems-1y".to_string()),
                ("failed".to_string(), "problems-1y".to_string()),
            ]
        );
        // Prune what is due in 400 days; the malware success (no rule) and
        // the runs that are not final stay whatever their age.
        // A sink that has exported all but the benign run's last record
        // holds that run back, and only that run.
        let mut cursor = std::collections::BTreeMap::new();
        for id in ["benign", "cancelled", "failed"] {
            cursor.insert(id.to_string(), journal.head_seq(id).unwrap().unwrap());
        }
        *cursor.get_mut("benign").unwrap() -= 1;
        let behind_sink: Exports = vec![("http", cursor.clone())];
        let due = plan(&journal, &rules, now + 400 * day, &behind_sink).unwrap();
        let mut pruned: Vec<_> = prune(&journal, &due)
            .into_iter()
            .map(|(p, r)| (p.run_id.clone(), r.is_ok()))
            .collect();
        pruned.sort();
        assert_eq!(
            pruned,
            [
                ("cancelled".to_string(), true),
                ("failed".to_string(), true)
            ]
        );
        assert!(journal.read("benign").is_ok());
        *cursor.get_mut("benign").unwrap() += 1;
        let due = plan(&journal, &rules, now + 400 * day, &vec![("http", cursor)]).unwrap();
        for (_, r) in prune(&journal, &due) {
            r.unwrap();
        }
        let mut left = journal.run_ids().unwrap();
        left.sort();
        assert_eq!(left, ["contained", "doubt", "waiting"]);
        assert_eq!(journal.tombstones().unwrap().len(), 3);
        assert_eq!(reports.get("failed").unwrap(), None);
        assert!(reports.get("waiting").unwrap().is_some());
        let report = journal.verify_signed().unwrap();
        assert!(report.problems.is_empty(), "{report:#?}");
        // A run that is not final is refused even when asked directly.
        assert!(journal.prune("waiting", "manual").is_err());
        assert!(journal.read("waiting").is_ok());
    }
}
