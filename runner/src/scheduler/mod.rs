//! The scheduler: runs a playbook's step graph concurrently on tokio,
//! journaling write-ahead (an attempt's start is durable before the plugin
//! is invoked, its result before any dependent starts), and resumes any run
//! from its journal alone. Fresh runs and resumes share one executor.

pub mod cancel;
mod claims;
mod drive;
mod gate;
mod inputs;
mod item;
pub mod notify;
mod state;

pub use claims::{Claim, ClaimKind};
pub use drive::suppression;
pub use gate::{quorum, upstream_of};
pub use state::{
    AttemptError, Authorization, FinishedStep, GateState, ItemState, RunState, StepStatus,
};

use crate::config::Policy;
use crate::journal::{
    now_unix_millis as now_ms, AttemptOutcome, Event, Journal, JournalError, Record, RunStatus,
};
use crate::playbook::{Playbook, Step};
use crate::plugin_host::PluginHost;
use crate::state::StateStore;
use crate::template::Templates;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a run could not be started or continued.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The alert does not map onto the playbook's inputs.
    #[error("the alert does not fit the playbook's inputs:\n  {}", .0.join("\n  "))]
    Input(Vec<String>),
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The dedup template failed.
    #[error("dedup key: {0}")]
    Dedup(String),
    /// A repeat of a run that has already taken [`MERGE_CAP`] repeats.
    #[error("run `{0}` has already taken {MERGE_CAP} repeats of this alert; this one is not journaled: look at the run, or fix the sender's retries")]
    Repeats(String),
    /// Resuming with a playbook other than the one the run started with.
    #[error("run `{run_id}` started with playbook content {expected}, but the file now has {actual}; resume with the original playbook")]
    PlaybookChanged {
        /// Run.
        run_id: String,
        /// Hash in the journal.
        expected: String,
        /// Hash of the file given.
        actual: String,
    },
}

/// A step as reported by `soar run --json` and `soar status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepReport {
    /// `pending`, `running`, or a final status.
    pub status: String,
    /// Output when finished.
    pub output: Option<Value>,
    /// Error when failed or in doubt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// The state of a run, derived from its journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// Playbook name.
    pub playbook: String,
    /// Run status.
    pub status: RunStatus,
    /// True when `soar run` matched an existing run's dedup key.
    pub deduplicated: bool,
    /// Steps by id.
    pub steps: BTreeMap<String, StepReport>,
    /// Playbook outputs (when finished).
    pub outputs: Value,
    /// Approvals the run waits for (see `soar pending`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_approvals: Vec<Value>,
    /// Later deliveries merged into this run (`alert_merged` records).
    pub merged_count: u64,
    /// True when this alert joined the run's group (`alert_grouped`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grouped: bool,
}

impl RunReport {
    /// Builds the report of `run_id` from its records; steps of `playbook`
    /// with no record yet are `pending`.
    pub fn from_records(run_id: &str, records: &[Record], playbook: Option<&Playbook>) -> Self {
        let state = RunState::from_records(records);
        let mut steps = BTreeMap::new();
        if let Some(pb) = playbook {
            for s in &pb.steps {
                steps.insert(
                    s.id.clone(),
                    StepReport {
                        status: "pending".into(),
                        output: None,
                        error: None,
                    },
                );
            }
        }
        for r in records {
            match &r.event {
                Event::StepStarted { step, .. } => {
                    steps.insert(
                        step.clone(),
                        StepReport {
                            status: "running".into(),
                            output: None,
                            error: None,
                        },
                    );
                }
                Event::ApprovalRequested { step, .. } => {
                    steps.insert(
                        step.clone(),
                        StepReport {
                            status: "waiting_approval".into(),
                            output: None,
                            error: None,
                        },
                    );
                }
                Event::StepSkipped { step, reason } => {
                    steps.insert(
                        step.clone(),
                        StepReport {
                            status: "skipped".into(),
                            output: None,
                            error: Some(json!({"reason": reason})),
                        },
                    );
                }
                Event::StepFinished {
                    step,
                    status,
                    output,
                    error,
                } => {
                    steps.insert(
                        step.clone(),
                        StepReport {
                            status: status.clone(),
                            output: output.clone(),
                            error: error.clone(),
                        },
                    );
                }
                _ => {}
            }
        }
        let status = state
            .final_status
            .or(state.paused)
            .unwrap_or(RunStatus::Running);
        RunReport {
            run_id: run_id.to_string(),
            playbook: state.playbook.clone(),
            status,
            deduplicated: false,
            steps,
            pending_approvals: state.pending_approvals(run_id, now_ms()),
            merged_count: state.merged_count,
            grouped: false,
            outputs: state.outputs,
        }
    }
}

/// Drives `run` as a task of the runtime rather than on the caller's thread
/// (`block_on` in the CLI): its step tasks then start and finish on the same
/// worker, without a cross-thread wake-up per step.
async fn on_runtime(
    run: impl std::future::Future<Output = Result<RunReport, EngineError>> + Send + 'static,
) -> Result<RunReport, EngineError> {
    tokio::spawn(run).await.unwrap_or_else(|e| {
        Err(EngineError::Journal(JournalError::Storage(format!(
            "the run's task failed: {e}"
        ))))
    })
}

/// Runs and resumes playbooks.
#[derive(Clone)]
pub struct Engine {
    host: Arc<PluginHost>,
    journal: Journal,
    /// The one template environment (shared with intake's source maps).
    pub templates: Arc<Templates>,
    /// Fault injection for crash tests: after this many durable appends in
    /// this process, stop forever (the test then SIGKILLs the process).
    hang_after: Option<u64>,
    /// Fault injection for grouping tests: how long a new run waits between
    /// claiming its keys and journaling its start (the window a concurrent
    /// alert with the same key must not slip through).
    claim_delay: Option<Duration>,
    appended: Arc<AtomicU64>,
    /// Print a line per step event on stderr.
    progress: bool,
    /// Approvers, protected assets, blast-radius caps.
    policy: Arc<Policy>,
    /// Serializes destructive-step authorizations (see `gate::authorize`).
    authorizing: Arc<tokio::sync::Mutex<()>>,
    /// Records appended to each run being driven, so the report at the end
    /// of a drive needs no second read of the journal (see [`Collecting`]).
    written: Arc<Mutex<HashMap<String, Vec<Record>>>>,
    /// A graceful stop: nothing new starts; attempts in flight finish.
    stop: Arc<Stop>,
    /// The web console's address (`server.public_url`), for chat messages.
    console: Option<Arc<str>>,
    /// `soar test`: a scheduled retry starts at once (its delay is still
    /// computed and journaled), so a case with retries takes no wall time.
    instant_retries: bool,
    /// One claim of a key at a time (see `claims.rs`).
    claiming: Arc<claims::KeyLocks>,
    /// The state tables, kept in the journal's store: a state write and the
    /// record of the step that made it are flushed by the same commit.
    state: StateStore,
}

/// The state of a graceful stop (see [`Engine::stop`]).
#[derive(Default)]
pub struct Stop {
    stopping: std::sync::atomic::AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

/// Counts one attempt as in flight until dropped.
struct Flying(Arc<Stop>);

impl Flying {
    fn new(stop: &Arc<Stop>) -> Self {
        stop.in_flight.fetch_add(1, Ordering::SeqCst);
        Flying(Arc::clone(stop))
    }
}

impl Drop for Flying {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

/// Repeats journaled with their whole alert; later ones keep a digest.
pub const MERGE_EVIDENCE_CAP: u64 = 100;
/// Repeats a run takes at all: past it a repeat is refused (and says so),
/// so a sender looping on one alert cannot grow one run without bound.
pub const MERGE_CAP: u64 = 1_000;

/// What starts a run: the alert as the playbook sees it, the event as
/// delivered (when a source map built the alert), who delivered it, and the
/// claims it makes.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The alert the playbook's inputs are mapped from.
    pub alert: Value,
    /// The delivered event, kept as evidence when `alert` was mapped from it.
    pub raw: Option<Value>,
    /// Who starts it (a principal, or `source:NAME`).
    pub started_by: String,
    /// Keys no other run may hold (delivery ids); the playbook's dedup key
    /// is added to them.
    pub claims: Vec<Claim>,
}

impl NewRun {
    /// A run started by hand: no raw event, no claims.
    pub fn manual(alert: Value, started_by: &str) -> Self {
        NewRun {
            alert,
            raw: None,
            started_by: started_by.to_string(),
            claims: Vec::new(),
        }
    }
}

/// What [`Engine::begin`] came to.
pub enum Begun {
    /// A claim is held by this run: nothing new started.
    Existing(RunReport),
    /// A new run whose start is durable, being driven by `drive`.
    New {
        /// Its id.
        run_id: String,
        /// The drive, until it finishes or pauses: the caller runs it
        /// (after taking whatever per-run turn it keeps).
        drive: Drive,
    },
}

/// A run's drive, not yet started.
pub type Drive =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunReport, EngineError>> + Send>>;

/// Collects what a drive appends to its run until dropped.
struct Collecting {
    written: Arc<Mutex<HashMap<String, Vec<Record>>>>,
    run_id: String,
}

impl Collecting {
    fn start(written: &Arc<Mutex<HashMap<String, Vec<Record>>>>, run_id: &str) -> Self {
        lock(written).insert(run_id.to_string(), Vec::new());
        Collecting {
            written: Arc::clone(written),
            run_id: run_id.to_string(),
        }
    }

    /// The records appended so far, in seq order.
    fn take(&self) -> Vec<Record> {
        let mut records = lock(&self.written)
            .get_mut(&self.run_id)
            .map(std::mem::take)
            .unwrap_or_default();
        // Step tasks append concurrently; their pushes may cross.
        records.sort_by_key(|r| r.seq);
        records
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        lock(&self.written).remove(&self.run_id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A new run id: time-ordered, unique per process and call.
fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{nanos}:{}:{n}", std::process::id()));
    format!(
        "r{:011x}{}",
        (nanos / 1_000_000) as u64,
        &hex::encode(digest)[..8]
    )
}

/// A new run's start, or the run already holding its claim.
enum Opened {
    Existing(RunReport),
    New(String, Vec<Record>, Collecting),
}

/// The idempotency key of a step item: stable across retries and resumes.
pub fn idempotency_key(run_id: &str, step: &str, item: Option<u32>) -> String {
    let material = match item {
        Some(i) => format!("{run_id}/{step}/{i}"),
        None => format!("{run_id}/{step}"),
    };
    format!("soar-{}", &hex::encode(Sha256::digest(material))[..32])
}

/// The template context: inputs, finished steps, the run's id, how many
/// later deliveries merged into it and the alerts that joined its group
/// (as journaled before this drive began: a step that starts after an
/// alert joined sees it).
pub fn context(run_id: &str, state: &RunState, finished: &BTreeMap<String, FinishedStep>) -> Value {
    let (merged_count, inputs) = (state.merged_count, &state.inputs);
    let steps: Map<String, Value> = finished
        .iter()
        .map(|(id, f)| {
            (
                id.clone(),
                json!({"status": f.status.as_str(), "output": f.output, "error": f.error}),
            )
        })
        .collect();
    let run = json!({"id": run_id, "merged_count": merged_count,
                     "grouped_count": state.grouped.len(), "grouped": state.grouped});
    json!({"inputs": inputs, "steps": steps, "run": run})
}

/// The template context of item `index` of a `for_each` step.
pub fn item_context(ctx: &Value, item: Value, index: usize) -> Value {
    let mut c = ctx.clone();
    c["item"] = item;
    c["index"] = json!(index);
    c
}

/// The journal record of an attempt's result, with the exchanges and logs
/// of the invocation that produced it.
fn attempt_finished(
    step: &Step,
    item: Option<u32>,
    attempt: u32,
    outcome: AttemptOutcome,
    duration: Duration,
    exchanges: &[crate::plugin_host::HttpExchange],
    logs: &[crate::plugin_host::PluginLog],
) -> Event {
    let kind = match &outcome {
        AttemptOutcome::Ok { .. } => "ok",
        AttemptOutcome::Err { kind, .. } => kind.as_str(),
    };
    crate::observe::attempt(&step.uses, kind, duration);
    Event::AttemptFinished {
        step: step.id.clone(),
        item,
        attempt,
        outcome,
        duration_ms: duration.as_millis() as u64,
        exchanges: serde_json::to_value(exchanges).unwrap_or(Value::Null),
        logs: serde_json::to_value(logs).unwrap_or(Value::Null),
    }
}

/// What a step item's execution came to.
enum ItemEnd {
    Done(Value),
    Failed(AttemptError),
    InDoubt(String),
}

/// What a step came to.
struct StepEnd {
    status: StepStatus,
    output: Option<Value>,
    error: Option<Value>,
}

impl Engine {
    /// An engine over a loaded plugin host and an open journal.
    pub fn new(host: Arc<PluginHost>, journal: Journal) -> Self {
        let hang_after = std::env::var("SOAR_TEST_HANG_AFTER_APPEND")
            .ok()
            .and_then(|v| v.parse().ok());
        let claim_delay = std::env::var("SOAR_TEST_CLAIM_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        Self {
            host,
            templates: Arc::new(Templates::new()),
            hang_after,
            claim_delay,
            appended: Arc::new(AtomicU64::new(0)),
            progress: false,
            policy: Arc::new(Policy::default()),
            authorizing: Arc::new(tokio::sync::Mutex::new(())),
            written: Arc::new(Mutex::new(HashMap::new())),
            stop: Arc::new(Stop::default()),
            console: None,
            instant_retries: false,
            claiming: Arc::default(),
            state: journal.state(),
            journal,
        }
    }

    /// Retries start at once instead of after their (journaled) delay:
    /// for `soar test`, whose answers are canned.
    pub fn with_instant_retries(mut self) -> Self {
        self.instant_retries = true;
        self
    }

    /// The web console's address, linked from chat messages.
    pub fn with_console(mut self, url: Option<String>) -> Self {
        self.console = url.map(Arc::from);
        self
    }

    /// Begins a graceful stop: from now on no step or attempt starts (its
    /// task parks before journaling the start, which a resume redoes), and
    /// attempts already in flight run to their result. Resolves once none
    /// is in flight; the caller bounds the wait.
    pub async fn stop(&self) {
        self.stop.stopping.store(true, Ordering::SeqCst);
        loop {
            let settled = self.stop.settled.notified();
            if self.stop.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            settled.await;
        }
    }

    /// Attempts invoked and not yet journaled as finished.
    pub fn in_flight(&self) -> usize {
        self.stop.in_flight.load(Ordering::SeqCst)
    }

    /// The operator's safety policy (protected assets, blast radius). The
    /// default protects nothing; destructive steps still need an approval.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Prints step progress on stderr as it is journaled.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    fn show_progress(&self, run_id: &str, event: &Event) {
        let line = match event {
            Event::StepStarted {
                step,
                items: Some(n),
            } => format!("started   {step} ({n} items)"),
            Event::StepStarted { step, .. } => format!("started   {step}"),
            Event::StepFinished { step, status, .. } => format!("{status:<9} {step}"),
            Event::StepSkipped { step, reason } => format!("skipped   {step}: {reason}"),
            Event::RetryScheduled {
                step,
                next_attempt,
                delay_ms,
                reason,
                ..
            } => {
                format!("retry     {step}: attempt {next_attempt} in {delay_ms} ms ({reason})")
            }
            Event::Reconciled {
                step,
                decision,
                detail,
                ..
            } => format!("reconcile {step}: {decision}: {detail}"),
            _ => return,
        };
        eprintln!("[{run_id}] {}", crate::inert::line(&line));
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The state tables.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The plugin host.
    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    /// Appends and waits until durable: for records a side effect or a
    /// decision must not precede (write-ahead).
    async fn append(&self, run_id: &str, event: Event) -> Result<(), JournalError> {
        self.record(run_id, event, true).await
    }

    /// Appends without waiting for the flush: for records the scheduler can
    /// rebuild if a crash loses them. They are durable before anything that
    /// depends on them happens, since the next waited append flushes them too.
    async fn note(&self, run_id: &str, event: Event) -> Result<(), JournalError> {
        self.record(run_id, event, false).await
    }

    async fn record(&self, run_id: &str, event: Event, durable: bool) -> Result<(), JournalError> {
        if let Some(limit) = self.hang_after {
            // Fault injection: after `limit` records, freeze every task at its
            // next append, before writing, as if the process died there. What
            // happens in between (a plugin call, say) still happens.
            if self.appended.load(Ordering::SeqCst) >= limit {
                if let Ok(marker) = std::env::var("SOAR_TEST_HANG_MARKER") {
                    let _ = std::fs::write(marker, limit.to_string());
                }
                tracing::warn!(
                    appends = limit,
                    "SOAR_TEST_HANG_AFTER_APPEND reached: hanging"
                );
                std::future::pending::<()>().await;
            }
        }
        // Attempts check the stop themselves, counted in flight first.
        let starts_work = matches!(event, Event::StepStarted { .. } | Event::RunStarted { .. });
        if starts_work && self.stop.stopping.load(Ordering::SeqCst) {
            // Stopping: this work never starts here. Nothing of it is
            // journaled, so the next process starts it from the journal.
            std::future::pending::<()>().await;
        }
        if self.progress {
            self.show_progress(run_id, &event);
        }
        let record = if durable || !self.journal.buffers() {
            self.journal.append(run_id, event).await?
        } else {
            self.journal.append_buffered(run_id, event)?
        };
        self.appended.fetch_add(1, Ordering::SeqCst);
        // Kept (moved, not copied) only while a drive collects this run's
        // records for its report.
        if let Some(log) = lock(&self.written).get_mut(run_id) {
            log.push(record);
        }
        Ok(())
    }

    /// Starts a run of `playbook` on `alert` and drives it until it finishes
    /// or pauses. A matching dedup key returns the existing run instead.
    pub async fn start(
        &self,
        playbook: Arc<Playbook>,
        alert: Value,
        started_by: &str,
    ) -> Result<RunReport, EngineError> {
        match self
            .begin(playbook, NewRun::manual(alert, started_by))
            .await?
        {
            Begun::Existing(report) => Ok(report),
            Begun::New { drive, .. } => on_runtime(drive).await,
        }
    }

    /// Starts a run and returns once its start is durable, with the drive
    /// running as a task of its own; or the run already holding one of the
    /// claims (checked first) or the playbook's dedup key, into whose
    /// journal this delivery is merged (`alert_merged`) before answering.
    pub async fn begin(&self, playbook: Arc<Playbook>, new: NewRun) -> Result<Begun, EngineError> {
        let engine = self.clone();
        let open = tokio::spawn(async move {
            let active = engine.journal.active_run();
            let opened = engine.open_run(&playbook, new).await?;
            let (run_id, records, collecting) = match opened {
                Opened::Existing(report) => return Ok(Begun::Existing(report)),
                Opened::New(run_id, records, collecting) => (run_id, records, collecting),
            };
            let id = run_id.clone();
            let drive: Drive = Box::pin(async move {
                let _active = active;
                engine.drive(&id, playbook, records, collecting).await
            });
            Ok(Begun::New { run_id, drive })
        });
        open.await.unwrap_or_else(|e| {
            Err(EngineError::Journal(JournalError::Storage(format!(
                "the run's task failed: {e}"
            ))))
        })
    }

    /// Continues an unfinished run from its journal.
    pub async fn resume(
        &self,
        run_id: &str,
        playbook: Arc<Playbook>,
    ) -> Result<RunReport, EngineError> {
        let engine = self.clone();
        let run_id = run_id.to_string();
        on_runtime(async move {
            let result = engine.resume_here(&run_id, playbook).await;
            if result.is_err() {
                // On a cluster: whatever failed, the lease is not kept.
                engine
                    .journal
                    .settle(&run_id, drive::drive_end(&result))
                    .await;
            }
            result
        })
        .await
    }

    async fn resume_here(
        &self,
        run_id: &str,
        playbook: Arc<Playbook>,
    ) -> Result<RunReport, EngineError> {
        let _active = self.journal.active_run();
        // On a cluster, another node may drive the run: claimed first, so
        // nothing here acts on a run this node does not own.
        self.journal.claim(run_id).await?;
        let records = self.journal.read(run_id)?;
        let state = RunState::from_records(&records);
        if state.playbook_sha256 != playbook.sha256 {
            return Err(EngineError::PlaybookChanged {
                run_id: run_id.to_string(),
                expected: state.playbook_sha256,
                actual: playbook.sha256.clone(),
            });
        }
        if state.final_status.is_some() {
            let end = state.final_status.map_or(
                crate::journal::DriveEnd::Interrupted,
                crate::journal::DriveEnd::Status,
            );
            self.journal.settle(run_id, end).await;
            return Ok(RunReport::from_records(run_id, &records, Some(&playbook)));
        }
        let collecting = Collecting::start(&self.written, run_id);
        self.drive(run_id, playbook, records, collecting).await
    }

    fn render_outputs(
        &self,
        run_id: &str,
        playbook: &Playbook,
        state: &RunState,
        finished: &BTreeMap<String, FinishedStep>,
    ) -> Value {
        let ctx = context(run_id, state, finished);
        let mut out = Map::new();
        for (k, t) in &playbook.outputs {
            let v = self
                .templates
                .render_value(&Value::String(t.clone()), &ctx)
                .unwrap_or_else(|e| json!({"error": e.to_string()}));
            out.insert(k.clone(), v);
        }
        Value::Object(out)
    }

    /// Journals a reconciliation decision about an interrupted attempt.
    #[allow(clippy::too_many_arguments)]
    async fn reconciled(
        &self,
        run_id: &str,
        step: &str,
        item: Option<u32>,
        attempt: u32,
        decision: &str,
        detail: String,
        durable: bool,
    ) -> Result<(), JournalError> {
        let event = Event::Reconciled {
            step: step.to_string(),
            item,
            attempt,
            decision: decision.to_string(),
            detail,
        };
        self.record(run_id, event, durable).await
    }

    async fn finish_step(
        &self,
        run_id: &str,
        step: &str,
        end: StepEnd,
    ) -> Result<StepEnd, JournalError> {
        // Buffered: a dependent's first durable record (its attempt, its
        // authorization, its approval request) flushes this one with it, in
        // order; and a lost one is rebuilt from the attempts on resume.
        self.note(
            run_id,
            Event::StepFinished {
                step: step.to_string(),
                status: end.status.as_str().to_string(),
                output: end.output.clone(),
                error: end.error.clone(),
            },
        )
        .await?;
        Ok(end)
    }

    async fn run_step(
        &self,
        run_id: &str,
        step: &Step,
        ctx: Value,
        state: &RunState,
        playbook: &Playbook,
    ) -> Result<Option<StepEnd>, JournalError> {
        let fail = |message: String| StepEnd {
            status: StepStatus::Failed,
            output: None,
            error: Some(json!({"kind": "template", "message": message})),
        };
        if let Some(cond) = &step.r#if {
            match self.templates.eval_condition(cond, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    self.note(
                        run_id,
                        Event::StepSkipped {
                            step: step.id.clone(),
                            reason: format!("condition `{cond}` is false"),
                        },
                    )
                    .await?;
                    return Ok(Some(StepEnd {
                        status: StepStatus::Skipped,
                        output: None,
                        error: None,
                    }));
                }
                Err(e) => {
                    return self
                        .finish_step(run_id, &step.id, fail(format!("`if`: {e}")))
                        .await
                        .map(Some)
                }
            }
        }
        if let Some(gate) = &step.approval {
            if !state.gates.contains_key(&step.id) {
                let started = Event::StepStarted {
                    step: step.id.clone(),
                    items: None,
                };
                self.note(run_id, started).await?;
            }
            return self
                .run_approval(run_id, step, gate, &ctx, state, playbook)
                .await;
        }
        let items = match self.for_each_items(step, &ctx) {
            Ok(items) => items,
            Err(e) => return self.finish_step(run_id, &step.id, fail(e)).await.map(Some),
        };
        self.note(
            run_id,
            Event::StepStarted {
                step: step.id.clone(),
                items: items.as_ref().map(|l| l.len() as u32),
            },
        )
        .await?;
        if self.needs_authorization(step, state) {
            // Fail closed: every check passes, and is journaled, before the
            // first attempt; otherwise the action is never invoked.
            let verdict = match self.render_items(step, &ctx) {
                Ok(rendered) => {
                    self.authorize(run_id, step, &ctx, &rendered, playbook)
                        .await?
                }
                Err(e) => Err(crate::approvals::guard::Blocked {
                    rule: "incomplete_input",
                    message: e,
                }),
            };
            if let Err(blocked) = verdict {
                // An attempt that may already have acted is in doubt, not
                // "not invoked".
                let maybe_acted = state.items.iter().any(|((s, _), st)| {
                    s == &step.id
                        && matches!(st, ItemState::InFlight { .. } | ItemState::InDoubt { .. })
                });
                let end = if maybe_acted {
                    StepEnd {
                        status: StepStatus::InDoubt,
                        output: None,
                        error: Some(json!({"kind": "in_doubt", "message": format!(
                            "an earlier attempt may have acted, and it may not act again: {}", blocked.message
                        ), "rule": blocked.rule})),
                    }
                } else {
                    StepEnd {
                        status: StepStatus::Blocked,
                        output: None,
                        error: Some(blocked.to_json()),
                    }
                };
                return self.finish_step(run_id, &step.id, end).await.map(Some);
            }
        }
        let end = match items {
            None => match self.run_item(run_id, step, &ctx, None, state).await? {
                ItemEnd::Done(output) => StepEnd {
                    status: StepStatus::Succeeded,
                    output: Some(output),
                    error: None,
                },
                ItemEnd::Failed(e) => StepEnd {
                    status: StepStatus::Failed,
                    output: None,
                    error: Some(e.to_json()),
                },
                ItemEnd::InDoubt(m) => StepEnd {
                    status: StepStatus::InDoubt,
                    output: None,
                    error: Some(json!({"kind": "in_doubt", "message": m})),
                },
            },
            Some(list) => {
                let mut outputs = Vec::with_capacity(list.len());
                let mut end = None;
                for (i, item) in list.into_iter().enumerate() {
                    let item_ctx = item_context(&ctx, item, i);
                    match self
                        .run_item(run_id, step, &item_ctx, Some(i as u32), state)
                        .await?
                    {
                        ItemEnd::Done(o) => outputs.push(o),
                        ItemEnd::Failed(e) => {
                            let mut err = e.to_json();
                            err["item"] = json!(i);
                            end = Some(StepEnd {
                                status: StepStatus::Failed,
                                output: None,
                                error: Some(err),
                            });
                            break;
                        }
                        ItemEnd::InDoubt(m) => {
                            end = Some(StepEnd {
                                status: StepStatus::InDoubt,
                                output: None,
                                error: Some(json!({"kind": "in_doubt", "message": m, "item": i})),
                            });
                            break;
                        }
                    }
                }
                end.unwrap_or(StepEnd {
                    status: StepStatus::Succeeded,
                    output: Some(Value::Array(outputs)),
                    error: None,
                })
            }
        };
        self.finish_step(run_id, &step.id, end).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        assert_eq!(
            idempotency_key("r1", "a", None),
            idempotency_key("r1", "a", None)
        );
        assert_ne!(
            idempotency_key("r1", "a", None),
            idempotency_key("r1", "a", Some(0))
        );
        assert_ne!(
            idempotency_key("r1", "a", Some(0)),
            idempotency_key("r1", "a", Some(1))
        );
        assert_ne!(
            idempotency_key("r1", "a", None),
            idempotency_key("r2", "a", None)
        );
    }
}
