//! One step item from its journaled state to its end: the attempt loop.
//! Each state has its piece: a retry is scheduled ([`Engine::schedule_retry`])
//! and waited for; an attempt whose result is unknown is reconciled
//! ([`Engine::reconcile`]: probe, idempotent repeat, else in doubt); a new
//! attempt is journaled write-ahead, invoked and recorded
//! ([`Engine::attempt`]).

use super::{
    attempt_finished, idempotency_key, AttemptError, Engine, Flying, ItemEnd, ItemState, RunState,
};
use crate::journal::{now_unix_millis as now_ms, AttemptOutcome, Event, JournalError};
use crate::playbook::Step;
use crate::plugin_host::{ActionManifest, Invocation, InvokeError, Outcome};
use crate::retry;
use crate::state::actions as state;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What every piece of one item's loop needs to know.
struct Item<'a> {
    run_id: &'a str,
    step: &'a Step,
    item: Option<u32>,
    plugin: &'a str,
    action: &'a str,
    manifest: &'a ActionManifest,
    /// The plugin file's digest, bound into the start record.
    digest: &'a str,
    key: String,
    policy: retry::Policy,
    /// The rendered `with` (deterministic: upstream outputs are journaled,
    /// so a resume renders the input the interrupted attempt had).
    rendered: Result<Value, String>,
}

impl Item<'_> {
    fn invocation(&self, attempt: u32) -> Invocation {
        Invocation {
            run_id: self.run_id.to_string(),
            step_id: self.step.id.clone(),
            attempt,
            idempotency_key: self.key.clone(),
            dry_run: false,
        }
    }
}

/// Where reconciling an attempt with no recorded result leads.
enum Reconciled {
    /// The probe shows the effect in place.
    Done(Value),
    /// Invoke again as attempt `n`.
    Again(u32),
    /// The effect is unknown and may not be repeated.
    InDoubt(String),
}

/// What a retryable error comes to.
enum AfterError {
    /// No more attempts.
    Fail(AttemptError),
    /// Next attempt at a time.
    Retry { next_attempt: u32, at_ms: u64 },
}

fn failed(kind: &str, message: String) -> ItemEnd {
    ItemEnd::Failed(AttemptError {
        kind: kind.into(),
        message,
        retry_after_ms: None,
    })
}

impl Engine {
    /// Drives one item of `step` from where the journal left it to its end.
    pub(super) async fn run_item(
        &self,
        run_id: &str,
        step: &Step,
        ctx: &Value,
        item: Option<u32>,
        state: &RunState,
    ) -> Result<ItemEnd, JournalError> {
        let (plugin, action) = step
            .uses
            .split_once('.')
            .unwrap_or((step.uses.as_str(), ""));
        // Borrowed, not cloned: this runs for every item of every step.
        let found = if plugin == state::PLUGIN {
            state::manifest().action(action).map(|a| (a, state::DIGEST))
        } else {
            self.host
                .plugin(plugin)
                .and_then(|p| p.manifest.action(action).map(|a| (a, p.digest.as_str())))
        };
        let Some((manifest, digest)) = found else {
            return Ok(match self.host.load_error(plugin) {
                Some(e) => failed(
                    "plugin_unavailable",
                    format!("plugin `{plugin}` failed to load: {e}"),
                ),
                None => failed(
                    "unknown_action",
                    format!("`{}` is not installed", step.uses),
                ),
            });
        };
        let it = Item {
            run_id,
            step,
            item,
            plugin,
            action,
            manifest,
            digest,
            key: idempotency_key(run_id, &step.id, item),
            policy: retry::Policy {
                max_attempts: step.retry.max_attempts.max(1),
                initial_delay: step.retry.initial_delay,
                max_delay: step.retry.max_delay,
                multiplier: step.retry.multiplier,
                jitter: step.retry.jitter,
            },
            rendered: self
                .templates
                .render_value(&step.with, ctx)
                .map_err(|e| e.to_string()),
        };
        self.item_loop(&it, state.item(&step.id, item)).await
    }

    async fn item_loop(&self, it: &Item<'_>, start: ItemState) -> Result<ItemEnd, JournalError> {
        let mut current = start;
        loop {
            let attempt = match current {
                ItemState::Done(output) => return Ok(ItemEnd::Done(output)),
                ItemState::InDoubt { .. } => {
                    return Ok(ItemEnd::InDoubt(
                        "recorded as in doubt; waiting for an operator".into(),
                    ))
                }
                ItemState::NotStarted => 1,
                ItemState::Errored { attempt, error } => {
                    current = match self.schedule_retry(it, attempt, error).await? {
                        AfterError::Fail(e) => return Ok(ItemEnd::Failed(e)),
                        AfterError::Retry {
                            next_attempt,
                            at_ms,
                        } => ItemState::RetryAt {
                            next_attempt,
                            at_ms,
                        },
                    };
                    continue;
                }
                ItemState::RetryAt {
                    next_attempt,
                    at_ms,
                } => {
                    let _idle = self.journal.idle();
                    tokio::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms()))).await;
                    next_attempt
                }
                ItemState::InFlight { attempt } => match self.reconcile(it, attempt).await? {
                    Reconciled::Done(output) => return Ok(ItemEnd::Done(output)),
                    Reconciled::InDoubt(detail) => return Ok(ItemEnd::InDoubt(detail)),
                    Reconciled::Again(n) => n,
                },
            };
            let input = match &it.rendered {
                Ok(v) => v.clone(),
                Err(e) => return Ok(failed("template", format!("`with`: {e}"))),
            };
            current = self.attempt(it, attempt, input).await?;
        }
    }

    /// Journals the retry of a retryable error, or ends the item.
    async fn schedule_retry(
        &self,
        it: &Item<'_>,
        attempt: u32,
        error: AttemptError,
    ) -> Result<AfterError, JournalError> {
        if !error.retryable() || attempt >= it.policy.max_attempts {
            return Ok(AfterError::Fail(error));
        }
        let delay = it
            .policy
            .delay_before(attempt + 1, error.retry_after_ms.map(Duration::from_millis));
        let wait = if self.instant_retries {
            Duration::ZERO
        } else {
            delay
        };
        let at_ms = now_ms() + wait.as_millis() as u64;
        let event = Event::RetryScheduled {
            step: it.step.id.clone(),
            item: it.item,
            next_attempt: attempt + 1,
            at: crate::journal::format_unix_millis(at_ms),
            delay_ms: delay.as_millis() as u64,
            reason: format!("{}: {}", error.kind, error.message),
        };
        self.note(it.run_id, event).await?;
        Ok(AfterError::Retry {
            next_attempt: attempt + 1,
            at_ms,
        })
    }

    /// An attempt started with no recorded result: its effect is unknown.
    /// Ask the action's probe first, then repeat only what is safe to
    /// repeat with the same key; otherwise it is in doubt.
    async fn reconcile(&self, it: &Item<'_>, attempt: u32) -> Result<Reconciled, JournalError> {
        let (step, uses, key) = (&it.step.id, &it.step.uses, &it.key);
        let probe_detail = match self.probe(it, attempt).await? {
            Ok(found) => return Ok(found),
            Err(detail) => detail,
        };
        // Bounded: an action that keeps timing out ends in doubt.
        if it.manifest.idempotent && attempt < it.policy.max_attempts.max(2) {
            let detail =
                format!("`{uses}` is idempotent: invoking again with key {key}{probe_detail}");
            self.reconciled(it.run_id, step, it.item, attempt, "reinvoke", detail, false)
                .await?;
            return Ok(Reconciled::Again(attempt + 1));
        }
        let detail = format!(
            "attempt {attempt} of `{uses}` started but has no recorded result, and the action is not idempotent{probe_detail}"
        );
        self.reconciled(
            it.run_id,
            step,
            it.item,
            attempt,
            "in_doubt",
            detail.clone(),
            true,
        )
        .await?;
        Ok(Reconciled::InDoubt(detail))
    }

    /// Asks the action's probe whether the effect is in place: a decision,
    /// or (`Err`) why the probe could not tell, for the reconcile record.
    async fn probe(
        &self,
        it: &Item<'_>,
        attempt: u32,
    ) -> Result<Result<Reconciled, String>, JournalError> {
        let (Some(probe), Ok(input)) = (&it.manifest.probe, &it.rendered) else {
            return Ok(Err(String::new()));
        };
        let (plugin, action, uses, key) = (it.plugin, it.action, &it.step.uses, &it.key);
        let Outcome {
            result,
            exchanges,
            logs,
            duration,
        } = self
            .host
            .invoke(plugin, probe, input, &it.invocation(attempt))
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) => return Ok(Err(format!("; probe `{probe}` failed: {e}"))),
        };
        let (step, item) = (&it.step.id, it.item);
        match output["effects"][action] {
            Value::Bool(true) => {
                let detail = format!(
                    "probe `{plugin}.{probe}` shows the effect of `{uses}` in place; not acting again"
                );
                self.reconciled(
                    it.run_id,
                    step,
                    item,
                    attempt,
                    "done_by_probe",
                    detail,
                    true,
                )
                .await?;
                let ok = AttemptOutcome::Ok {
                    output: output.clone(),
                };
                let event =
                    attempt_finished(it.step, item, attempt, ok, duration, &exchanges, &logs);
                self.append(it.run_id, event).await?;
                Ok(Ok(Reconciled::Done(output)))
            }
            Value::Bool(false) => {
                let detail = format!(
                    "probe `{plugin}.{probe}` shows no effect of `{uses}`: invoking again with key {key}; probe answered {output}"
                );
                let decision = "reinvoke_after_probe";
                self.reconciled(it.run_id, step, item, attempt, decision, detail, true)
                    .await?;
                Ok(Ok(Reconciled::Again(attempt + 1)))
            }
            _ => Ok(Err(format!(
                "; probe `{probe}` gave no `effects.{action}` answer: {output}"
            ))),
        }
    }

    /// One attempt: journaled write-ahead, invoked, its result journaled;
    /// the item's next state.
    async fn attempt(
        &self,
        it: &Item<'_>,
        attempt: u32,
        input: Value,
    ) -> Result<ItemState, JournalError> {
        // From before its start record to its result's record, this attempt
        // is what a graceful stop waits for (see `Engine::stop`). Counted
        // first, then the stop checked: a stop either sees this attempt or
        // this attempt sees the stop and never starts.
        let flying = Flying::new(&self.stop);
        if self.stop.stopping.load(Ordering::SeqCst) {
            drop(flying);
            return std::future::pending().await;
        }
        // Write-ahead where a lost start could hide an effect: this record is
        // durable before the plugin runs. An idempotent, non-destructive
        // action needs no wait: if a crash loses the start, the resume
        // invokes it again with the same key, as it does for a lost result.
        let started = Event::AttemptStarted {
            step: it.step.id.clone(),
            item: it.item,
            attempt,
            idempotency_key: it.key.clone(),
            input: input.clone(),
            plugin: it.plugin.to_string(),
            action: it.action.to_string(),
            plugin_sha256: it.digest.to_string(),
            dry_run: false,
        };
        let repeatable = it.manifest.idempotent && !it.manifest.destructive;
        if repeatable {
            self.note(it.run_id, started).await?;
        } else {
            self.append(it.run_id, started).await?;
        }
        let outcome = self.invoke_bounded(it, attempt, &input).await;
        let timed_out = matches!(outcome.result, Err(InvokeError::Timeout { .. }));
        // The host failed the invocation (a cap, a refused request) after
        // some of its requests went out: a destructive one may have acted.
        let refused_after_sending = matches!(outcome.result, Err(InvokeError::Refused(_)))
            && outcome
                .exchanges
                .iter()
                .any(|x| x.outcome == crate::plugin_host::ExchangeOutcome::Sent);
        let Outcome {
            result,
            exchanges,
            logs,
            duration,
        } = outcome;
        let (recorded, next) = classify(it.manifest, attempt, result, timed_out);
        let event = attempt_finished(
            it.step, it.item, attempt, recorded, duration, &exchanges, &logs,
        );
        // A lost result of an idempotent action is recovered by invoking it
        // again; any other result must be durable before moving on.
        if repeatable {
            self.note(it.run_id, event).await?;
        } else {
            self.append(it.run_id, event).await?;
        }
        drop(flying);
        // A destructive action that timed out, or failed in transit or at a
        // 5xx gateway, may have acted: treat it as a crash mid-attempt
        // (probe, idempotent repeat, else in doubt), never a blind retry.
        let ambiguous = timed_out
            || refused_after_sending
            || matches!(&next, ItemState::Errored { error, .. } if error.kind == "unavailable");
        Ok(if ambiguous && it.manifest.destructive {
            ItemState::InFlight { attempt }
        } else {
            next
        })
    }

    /// The invocation, within the step's `timeout` when it has one.
    async fn invoke_bounded(&self, it: &Item<'_>, attempt: u32, input: &Value) -> Outcome {
        // Vendor calls take tens of ms: flushes do not hold for this run.
        let _idle = self.journal.idle();
        let invocation = it.invocation(attempt);
        if it.plugin == state::PLUGIN {
            return self.state_call(it, input);
        }
        let call = self.host.invoke(it.plugin, it.action, input, &invocation);
        let Some(limit) = it.step.timeout else {
            return call.await;
        };
        match tokio::time::timeout(limit, call).await {
            Ok(o) => o,
            Err(_) => Outcome {
                result: Err(InvokeError::Timeout {
                    limit_ms: limit.as_millis() as u64,
                }),
                exchanges: Vec::new(),
                logs: Vec::new(),
                duration: limit,
            },
        }
    }
}

impl Engine {
    /// A built-in `state.*` action: atomic in the store, applied once per
    /// step item (its idempotency key), answered with what it read and wrote.
    fn state_call(&self, it: &Item<'_>, input: &Value) -> Outcome {
        let started = std::time::Instant::now();
        // The operation key is the item's (stable across attempts and
        // resumes), spelled from the run id so pruning the run forgets it.
        let op = match it.item {
            Some(i) => format!("{}/{}/{i}", it.run_id, it.step.id),
            None => format!("{}/{}", it.run_id, it.step.id),
        };
        let by = format!("run:{op}");
        let call = state::Call {
            store: &self.state,
            tables: self.host.tables(),
            actor: crate::state::Actor {
                by: &by,
                now_ms: now_ms(),
                op_key: Some(&op),
                reason: input["reason"].as_str(),
            },
        };
        let result = state::check_input(it.action, input).and_then(|()| call.run(it.action, input));
        Outcome {
            result,
            exchanges: Vec::new(),
            logs: Vec::new(),
            duration: started.elapsed(),
        }
    }
}

/// An invocation's result as journaled, and the item state it leads to.
fn classify(
    manifest: &ActionManifest,
    attempt: u32,
    result: Result<Value, InvokeError>,
    timed_out: bool,
) -> (AttemptOutcome, ItemState) {
    match result {
        Ok(output) => (
            AttemptOutcome::Ok {
                output: output.clone(),
            },
            ItemState::Done(output),
        ),
        Err(e) => {
            let retry_after_ms = match &e {
                InvokeError::Plugin {
                    kind: crate::plugin_host::ErrorKind::RateLimited { retry_after_ms },
                    ..
                } => *retry_after_ms,
                _ => None,
            };
            // A read that timed out is worth retrying like any outage.
            let kind = if timed_out && !manifest.destructive {
                "unavailable".to_string()
            } else {
                e.kind_name().to_string()
            };
            let error = AttemptError {
                kind,
                message: e.to_string(),
                retry_after_ms,
            };
            (
                AttemptOutcome::Err {
                    kind: error.kind.clone(),
                    message: error.message.clone(),
                    retry_after_ms,
                },
                ItemState::Errored { attempt, error },
            )
        }
    }
}
