//! The server's shared state and its one rule about driving: a run is
//! driven by at most one task at a time. A decision, an expiry or a boot
//! "kicks" the run; a kick while it is driven asks that drive to go again
//! when it ends, so nothing decided is left unnoticed.

use super::timers::Timers;
use super::ServeError;
use crate::approvals::Refusal;
use crate::config::{Approver, Config, Policy, Source};
use crate::journal::{now_unix_millis, Journal, Resolution, RunStatus, Vote};
use crate::operations::{self as ops, OpError, Playbooks, VoteResult};
use crate::playbook::Playbook;
use crate::plugin_host::PluginHost;
use crate::scheduler::{Drive, Engine, RunReport, RunState};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Unauthenticated refusals journaled per run before they are only logged.
const MAX_UNAUTHENTICATED: u32 = 20;

/// Runs resumed at once while the server starts.
const BOOT_DRIVES: usize = 64;

/// How many decision locks runs are spread over (see [`App::decision_lock`]).
const DECISION_STRIPES: usize = 64;

/// Everything a request handler needs.
pub struct App {
    /// The config the server started with.
    pub config: Arc<Config>,
    /// The engine (plugin host, journal, policy).
    pub engine: Engine,
    /// Playbooks it may start, by name and path.
    pub playbooks: Playbooks,
    /// Per-source token buckets.
    limiters: HashMap<String, DefaultDirectRateLimiter>,
    /// Runs being driven: `true` when another drive was asked for.
    driving: Mutex<HashMap<String, bool>>,
    /// Bumped each time a run stops being driven, so a waiter (`?wait=`)
    /// wakes on the event rather than polling.
    drives_ended: tokio::sync::watch::Sender<u64>,
    /// Latest known status of each unfinished run (for the gauges).
    statuses: Mutex<HashMap<String, RunStatus>>,
    /// Unauthenticated refusals journaled per run (see
    /// [`App::may_journal_unauthenticated`]).
    unauthenticated: Mutex<HashMap<String, u32>>,
    /// Votes, resolves and expiries of one run happen one at a time.
    decisions: Vec<tokio::sync::Mutex<()>>,
    pub(super) timers: Timers,
    /// Slack signatures seen in the last replay window.
    slack_seen: Mutex<HashMap<String, std::time::Instant>>,
    /// Console sessions.
    pub(super) sessions: super::console::Sessions,
    /// Sign-in attempts per address and sessions per principal.
    pub(super) sign_in: super::console::SignInThrottle,
    /// Refusals that belong to no run.
    pub(super) security: super::security::SecurityLog,
    /// One investigation summary at a time: each reads the period's whole
    /// journal, so a reader asking again and again must not take every core.
    summaries: tokio::sync::Semaphore,
    ready: AtomicBool,
    stopping: AtomicBool,
    metrics: PrometheusHandle,
    /// SNS certificates and confirmations.
    pub(super) sns: super::intake::sns::Sns,
    /// Runs whose chat thread will hear of alerts that joined them.
    grouped_pending: Mutex<std::collections::HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Histogram buckets (seconds): from a journal flush to a slow vendor.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
];

fn install_metrics() -> Result<PrometheusHandle, ServeError> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .map_err(|e| ServeError::Start(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| ServeError::Start(e.to_string()))?;
    Ok(handle)
}

impl App {
    /// Loads the playbooks, builds the engine, installs the metrics recorder.
    pub fn new(
        config: Config,
        host: Arc<PluginHost>,
        journal: Journal,
    ) -> Result<Arc<Self>, ServeError> {
        let mut paths: Vec<_> = config
            .sources
            .values()
            .map(|s| s.playbook.clone())
            .collect();
        paths.extend(config.server.playbooks.iter().cloned());
        let playbooks = Playbooks::load(&paths, &host).map_err(ServeError::Playbooks)?;
        let limiters = config
            .sources
            .values()
            .filter_map(|s| Some((s.name.clone(), limiter(s)?)))
            .collect();
        let policy: Policy = config.policy.clone();
        let session_ttl = config.server.session_ttl;
        let regions: Vec<String> = config
            .sources
            .values()
            .flat_map(|s| s.auth.sns_regions())
            .collect();
        let sns = super::intake::sns::Sns::new(&regions).map_err(ServeError::Start)?;
        let engine = Engine::new(host, journal)
            .with_policy(policy)
            .with_console(config.server.public_url.clone());
        Ok(Arc::new(App {
            config: Arc::new(config),
            engine,
            playbooks,
            limiters,
            driving: Mutex::new(HashMap::new()),
            drives_ended: tokio::sync::watch::Sender::new(0),
            statuses: Mutex::new(HashMap::new()),
            unauthenticated: Mutex::new(HashMap::new()),
            decisions: (0..DECISION_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            timers: Timers::default(),
            sessions: super::console::Sessions::new(session_ttl),
            sign_in: Default::default(),
            security: Default::default(),
            summaries: tokio::sync::Semaphore::new(1),
            slack_seen: Mutex::new(HashMap::new()),
            grouped_pending: Mutex::new(std::collections::HashSet::new()),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            metrics: install_metrics()?,
            sns,
        }))
    }

    /// The investigation summary `q` asks for, computed off the async
    /// workers, one at a time.
    pub async fn summary(
        self: &Arc<Self>,
        q: crate::operations::metrics::Query,
    ) -> Result<crate::operations::metrics::Summary, OpError> {
        let _one = self
            .summaries
            .acquire()
            .await
            .map_err(|e| OpError::Failed(e.to_string()))?;
        let app = self.clone();
        tokio::task::spawn_blocking(move || crate::operations::metrics::summary(app.journal(), &q))
            .await
            .map_err(|e| OpError::Failed(format!("the summary failed: {e}")))?
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        self.engine.journal()
    }

    /// The safety policy (principals, protected assets).
    pub fn policy(&self) -> &Policy {
        &self.config.policy
    }

    /// Ready: journal open and every unfinished run resumed.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub(super) fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Stopping: new work is refused with 503.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Takes a delivery from `source` out of its bucket; `Err(wait)` when
    /// it is empty.
    pub fn rate_check(&self, source: &Source) -> Result<(), Duration> {
        let Some(l) = self.limiters.get(&source.name) else {
            return Ok(());
        };
        l.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Whether another refusal of a caller without a valid token may be
    /// journaled in `run_id`: the first [`MAX_UNAUTHENTICATED`] are, the
    /// rest are refused all the same and only logged and counted.
    pub fn may_journal_unauthenticated(&self, run_id: &str) -> bool {
        let mut seen = lock(&self.unauthenticated);
        if seen.len() > 10_000 {
            // Bounded: forgetting costs at most another few records per run.
            seen.clear();
        }
        let n = seen.entry(run_id.to_string()).or_insert(0);
        *n += 1;
        if *n > MAX_UNAUTHENTICATED {
            tracing::warn!(
                run_id,
                refused = *n,
                "unauthenticated requests for this run: no longer journaled"
            );
            return false;
        }
        true
    }

    /// Whether this Slack signature is new: a replayed interaction within
    /// Slack's 5-minute window carries the same one. Remembered 10 minutes.
    pub fn first_slack_delivery(&self, signature: &str) -> bool {
        let mut seen = lock(&self.slack_seen);
        let now = std::time::Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < Duration::from_secs(600));
        seen.insert(signature.to_string(), now).is_none()
    }

    /// The lock serialising decisions on `run_id`.
    pub fn decision_lock(&self, run_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        run_id.hash(&mut h);
        &self.decisions[(h.finish() as usize) % DECISION_STRIPES]
    }

    /// Folds recorded histogram samples into their buckets. The exporter
    /// keeps raw samples until then, so without this a server nobody
    /// scrapes would grow with every attempt; `serve` calls it every few
    /// seconds.
    pub fn metrics_upkeep(&self) {
        self.metrics.run_upkeep();
    }

    /// The Prometheus text of every metric, gauges brought up to date.
    pub fn render_metrics(&self) -> String {
        let (mut waiting, mut in_doubt) = (0, 0);
        for s in lock(&self.statuses).values() {
            match s {
                RunStatus::WaitingApproval => waiting += 1,
                RunStatus::InDoubt => in_doubt += 1,
                _ => {}
            }
        }
        crate::observe::paused_runs(waiting, in_doubt);
        self.metrics.render()
    }

    /// The playbook of a run being resumed: the loaded one when the hash
    /// matches (the engine checks it again), else the file it names.
    pub(super) fn playbook_for(
        &self,
        records: &[crate::journal::Record],
    ) -> Result<Arc<Playbook>, String> {
        let state = RunState::from_records(records);
        let path = records.iter().find_map(|r| match &r.event {
            crate::journal::Event::RunStarted { playbook_path, .. } => Some(playbook_path.clone()),
            _ => None,
        });
        if let Some(pb) = path.and_then(|p| self.playbooks.at(std::path::Path::new(&p)).cloned()) {
            if pb.sha256 == state.playbook_sha256 {
                return Ok(pb);
            }
        }
        ops::playbook_of(records, self.engine.host()).map(Arc::new)
    }

    /// Drives `run_id` once from its journal.
    async fn resume_once(&self, run_id: &str) -> Result<RunReport, String> {
        let records = match ops::read_run(self.journal(), run_id) {
            Ok(r) => r,
            Err(e) => {
                // On a cluster: let go, for a takeover to try again.
                let interrupted = crate::journal::DriveEnd::Interrupted;
                self.journal().settle(run_id, interrupted).await;
                return Err(e.to_string());
            }
        };
        let pb = match self.playbook_for(&records) {
            Ok(pb) => pb,
            Err(e) => {
                // On a cluster: parked, not held (nor taken over again).
                let failed = crate::journal::DriveEnd::Failed;
                self.journal().settle(run_id, failed).await;
                return Err(e);
            }
        };
        self.engine
            .resume(run_id, pb)
            .await
            .map_err(|e| e.to_string())
    }

    /// Notes where a drive left the run: status for the gauges, expiry
    /// timers for its waiting approvals.
    fn after_drive(&self, run_id: &str, result: Result<RunReport, String>) {
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(run_id, error = %e, "driving the run failed");
                return;
            }
        };
        let mut statuses = lock(&self.statuses);
        if report.status.is_final() {
            statuses.remove(run_id);
        } else {
            statuses.insert(run_id.to_string(), report.status);
        }
        drop(statuses);
        for p in &report.pending_approvals {
            let at = p["expires_at"]
                .as_str()
                .and_then(crate::journal::parse_unix_millis);
            if let Some(at) = at {
                self.timers.add(at, run_id);
            }
        }
    }

    /// Drives `run_id` now, or again after the drive in progress.
    pub fn kick(self: &Arc<Self>, run_id: &str) {
        self.spawn_drive(run_id, None);
    }

    /// Drives a run [`Engine::begin`] just started.
    pub fn drive_new(self: &Arc<Self>, run_id: &str, drive: Drive) {
        lock(&self.statuses).insert(run_id.to_string(), RunStatus::Running);
        self.spawn_drive(run_id, Some(drive));
    }

    fn spawn_drive(self: &Arc<Self>, run_id: &str, first: Option<Drive>) {
        {
            let mut driving = lock(&self.driving);
            if let Some(again) = driving.get_mut(run_id) {
                *again = true;
                return;
            }
            driving.insert(run_id.to_string(), false);
        }
        let app = Arc::clone(self);
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            let mut next = first;
            loop {
                let result = match next.take() {
                    // As a task of its own: a panic in it is an error here,
                    // not the end of this loop (which would leave the run
                    // marked as driven forever).
                    Some(drive) => match tokio::spawn(drive).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("the run's task failed: {e}")),
                    },
                    None => app.resume_once(&run_id).await,
                };
                app.after_drive(&run_id, result);
                let mut driving = lock(&app.driving);
                if driving.get(&run_id) == Some(&true) {
                    driving.insert(run_id.clone(), false);
                    continue;
                }
                driving.remove(&run_id);
                drop(driving);
                app.drives_ended.send_modify(|n| *n = n.wrapping_add(1));
                break;
            }
        });
    }

    /// Whether a task is driving `run_id` now.
    pub fn is_driving(&self, run_id: &str) -> bool {
        lock(&self.driving).contains_key(run_id)
    }

    /// Waits until no task drives `run_id` (it finished or paused), at
    /// most `max`; whether it did. Woken by each drive's end, not a poll.
    pub async fn settled(&self, run_id: &str, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        let mut ended = self.drives_ended.subscribe();
        loop {
            // Subscribed before looking, so an end between the look and
            // the wait still wakes us.
            ended.mark_unchanged();
            if !self.is_driving(run_id) {
                return true;
            }
            tokio::select! {
                changed = ended.changed() => {
                    if changed.is_err() {
                        return !self.is_driving(run_id);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return !self.is_driving(run_id),
            }
        }
    }

    /// Updates the chat message of approval `step` once it is decided (in
    /// the background: nobody waits for the chat vendor).
    pub fn announce_decision(
        self: &Arc<Self>,
        run_id: &str,
        step: &str,
        clicked: Option<(String, String)>,
    ) {
        let app = Arc::clone(self);
        tokio::spawn(super::slack::announce(
            app,
            run_id.to_string(),
            step.to_string(),
            clicked,
        ));
    }

    /// An alert joined `run_id`'s group: its waiting approvals' chat
    /// threads hear of it, once for all alerts that join within a moment.
    pub fn announce_grouped(self: &Arc<Self>, run_id: &str) {
        if !lock(&self.grouped_pending).insert(run_id.to_string()) {
            return;
        }
        let app = Arc::clone(self);
        tokio::spawn(super::slack::announce_grouped(app, run_id.to_string()));
    }

    /// Takes `run_id` off the runs whose threads will hear of new alerts.
    pub fn grouped_announced(&self, run_id: &str) {
        lock(&self.grouped_pending).remove(run_id);
    }

    /// A vote on approval `step` of `run_id`, one decision of the run at a
    /// time. Once it decides, the run continues and its chat message says
    /// so (`clicked`: the Slack message a click came from); an expired gate
    /// is settled as denied. Every front end votes through here.
    pub async fn vote(
        self: &Arc<Self>,
        run_id: &str,
        step: &str,
        who: &Approver,
        vote: Vote,
        reason: &str,
        clicked: Option<(String, String)>,
    ) -> Result<VoteResult, OpError> {
        let guard = self.decision_lock(run_id).lock().await;
        let result = ops::vote(
            self.journal(),
            self.policy(),
            run_id,
            step,
            who,
            vote,
            reason,
        )
        .await;
        drop(guard);
        match &result {
            Ok(VoteResult::Decided { .. }) => {
                self.kick(run_id);
                self.announce_decision(run_id, step, clicked);
            }
            Err(OpError::Refused(Refusal::Expired(_))) => self.expire(run_id).await,
            _ => {}
        }
        result
    }

    /// Settles `run_id`'s in-doubt `step` and continues the run.
    pub async fn resolve(
        self: &Arc<Self>,
        run_id: &str,
        step: &str,
        who: &Approver,
        outcome: Resolution,
        reason: &str,
    ) -> Result<usize, OpError> {
        let guard = self.decision_lock(run_id).lock().await;
        let result = ops::resolve(self.journal(), run_id, step, who, outcome, reason).await;
        drop(guard);
        if result.is_ok() {
            self.kick(run_id);
        }
        result
    }

    /// Asks for `run_id` to be cancelled: the drive journals it (it may be
    /// mid-step); the kick makes one drive the run if none is.
    pub async fn cancel(
        self: &Arc<Self>,
        run_id: &str,
        who: &Approver,
        reason: &str,
    ) -> Result<(), OpError> {
        let guard = self.decision_lock(run_id).lock().await;
        let result = ops::cancel_driven(self.journal(), run_id, who, reason).await;
        drop(guard);
        if result.is_ok() {
            self.kick(run_id);
        }
        result
    }

    /// Denies `run_id`'s expired approvals and continues it.
    pub async fn expire(self: &Arc<Self>, run_id: &str) {
        let guard = self.decision_lock(run_id).lock().await;
        match ops::expire_gates(self.journal(), run_id, now_unix_millis()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(run_id, expired = n, "approval expired: denied");
                drop(guard);
                self.kick(run_id);
                self.announce_expired(run_id);
            }
            Err(OpError::NotFound(_)) => {}
            Err(e) => tracing::error!(run_id, error = %e, "cannot expire approvals"),
        }
    }

    /// Announces every decided gate of `run_id` not yet announced.
    fn announce_expired(self: &Arc<Self>, run_id: &str) {
        let Ok(records) = ops::read_run(self.journal(), run_id) else {
            return;
        };
        let state = RunState::from_records(&records);
        for (step, gate) in &state.gates {
            if gate.decision.is_some() {
                self.announce_decision(run_id, step, None);
            }
        }
    }

    /// Resumes every unfinished run (as `soar resume --all`) and waits
    /// until each has finished or paused; returns how many.
    pub async fn resume_all(self: &Arc<Self>) -> usize {
        // The unfinished-run index, not the history: boot is flat in the
        // number of finished runs.
        let ids = match self.journal().live_run_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list unfinished runs");
                return 0;
            }
        };
        let mut resumed = 0;
        let mut booted = Vec::new();
        for id in ids {
            let unfinished = self
                .journal()
                .summary(&id)
                .map(|s| !s.status.is_final())
                .unwrap_or(false);
            if unfinished {
                resumed += 1;
                // A bounded number at once: 10,000 paused runs resumed in
                // one go would each hold a drive (and, briefly, a plugin
                // instance) at the same time.
                while lock(&self.driving).len() >= BOOT_DRIVES {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                self.kick(&id);
                booted.push(id);
            }
        }
        // Only the runs resumed here: alerts arriving meanwhile must not
        // hold readiness back.
        while booted.iter().any(|id| self.is_driving(id)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        resumed
    }

    /// Graceful stop: refuse new work, let in-flight attempts finish (up
    /// to `server.shutdown_grace`), make the journal durable.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let grace = self.config.server.shutdown_grace;
        if tokio::time::timeout(grace, self.engine.stop())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.engine.in_flight(),
                "shutdown grace over with attempts in flight: they are reconciled at the next start"
            );
        }
        // On a cluster: this node's runs go to the others once their
        // leases expire (a drive stopped mid-run is resumed there).
        self.journal().leave_cluster();
        if let Err(e) = self.journal().sync() {
            tracing::error!(error = %e, "final journal flush failed");
        }
    }
}

fn limiter(source: &Source) -> Option<DefaultDirectRateLimiter> {
    let r = source.rate_limit?;
    let per_second = NonZeroU32::new(r.per_second)?;
    let burst = NonZeroU32::new(r.burst).unwrap_or(per_second);
    Some(RateLimiter::direct(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}
