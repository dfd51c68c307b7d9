//! Approval expiry without a command: every waiting approval's expiry is a
//! timer; when it fires the approval is denied and the run continues down
//! its denial path. Expiries missed while the server was down are settled
//! by the resume at start.

use super::App;
use crate::journal::now_unix_millis;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pending expiries: (Unix ms, run id).
#[derive(Default)]
pub struct Timers {
    due: Mutex<BTreeSet<(u64, String)>>,
    wake: tokio::sync::Notify,
}

impl Timers {
    /// Expire `run_id`'s approvals at `at_ms`.
    pub fn add(&self, at_ms: u64, run_id: &str) {
        let mut due = self
            .due
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if due.insert((at_ms, run_id.to_string())) {
            self.wake.notify_one();
        }
    }

    /// The due entries, removed; and when the next one is due.
    fn take_due(&self, now_ms: u64) -> (Vec<String>, Option<u64>) {
        let mut due = self
            .due
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut fired = Vec::new();
        while let Some((at, _)) = due.first() {
            if *at > now_ms {
                break;
            }
            if let Some((_, id)) = due.pop_first() {
                fired.push(id);
            }
        }
        (fired, due.first().map(|(at, _)| *at))
    }
}

/// The timer task: runs until the process exits.
pub async fn run(app: Arc<App>) {
    loop {
        let (fired, next) = app.timers.take_due(now_unix_millis());
        for run_id in fired {
            app.expire(&run_id).await;
        }
        let wait = next
            .map(|at| Duration::from_millis(at.saturating_sub(now_unix_millis())))
            .unwrap_or(Duration::from_secs(3600));
        let woken = app.timers.wake.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = woken => {}
        }
    }
}
