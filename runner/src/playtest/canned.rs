//! Canned answers in place of the connectors: the plugin host asks
//! [`Switch`] (after its real input checks), which answers from the case
//! being run and records every call for the expectations.

use super::case::{Answer, Case};
use crate::plugin_host::{Answers, ErrorKind, Invocation, InvokeError};
use crate::scheduler::idempotency_key;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One call the engine made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Call {
    /// Step id.
    pub step: String,
    /// `plugin.action`.
    pub uses: String,
    /// The rendered input.
    pub input: Value,
    /// Attempt (0 for a plan).
    pub attempt: u32,
    /// A dry run (an approval's plan).
    pub dry_run: bool,
}

/// The answers of the case being run, and what it was asked.
pub struct Canned {
    answers: BTreeMap<String, Answer>,
    /// Approval steps: their chat messages answer `{"ok": true}` unless
    /// a case says otherwise.
    gates: Vec<String>,
    calls: Mutex<Vec<Call>>,
    unanswered: Mutex<Vec<String>>,
}

impl Canned {
    /// The answers of `case`; `gates` are the playbook's approval steps.
    pub fn new(case: &Case, gates: Vec<String>) -> Self {
        Canned {
            answers: case.answers.clone(),
            gates,
            calls: Mutex::new(Vec::new()),
            unanswered: Mutex::new(Vec::new()),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// Calls no answer covered (each failed as `permanent`).
    pub fn unanswered(&self) -> Vec<String> {
        lock(&self.unanswered).clone()
    }

    /// The item of `invocation` among up to 10,000 (its idempotency key
    /// names it); `None` for a step without `for_each`.
    fn item_of(&self, invocation: &Invocation) -> Option<usize> {
        let max = 10_000;
        let key = invocation.idempotency_key.trim_end_matches("-plan");
        (0..max).find(|&i| {
            idempotency_key(&invocation.run_id, &invocation.step_id, Some(i as u32)) == key
        })
    }

    fn pick<'a>(&self, answer: &'a Answer, invocation: &Invocation) -> &'a Answer {
        if let Some(list) = &answer.items {
            let i = self.item_of(invocation).unwrap_or(0);
            return match list.get(i).or(list.last()) {
                Some(a) => self.pick(a, invocation),
                None => answer,
            };
        }
        if let Some(list) = &answer.attempts {
            let i = invocation.attempt.max(1) as usize - 1;
            return match list.get(i).or(list.last()) {
                Some(a) => self.pick(a, invocation),
                None => answer,
            };
        }
        answer
    }
}

impl Answers for Canned {
    fn answer(
        &self,
        plugin: &str,
        action: &str,
        input: &Value,
        invocation: &Invocation,
    ) -> Result<Value, InvokeError> {
        let uses = format!("{plugin}.{action}");
        lock(&self.calls).push(Call {
            step: invocation.step_id.clone(),
            uses: uses.clone(),
            input: input.clone(),
            attempt: invocation.attempt,
            dry_run: invocation.dry_run,
        });
        let found = self
            .answers
            .get(&invocation.step_id)
            .or_else(|| self.answers.get(&uses));
        let Some(answer) = found else {
            return self.default_answer(&uses, invocation);
        };
        let answer = self.pick(answer, invocation);
        if invocation.dry_run {
            return Ok(answer.plan.clone().unwrap_or(json!({"planned": true})));
        }
        if let Some(e) = &answer.error {
            return Err(error(&e.kind, &e.message, e.retry_after));
        }
        match &answer.output {
            Some(output) => Ok(output.clone()),
            None => self.default_answer(&uses, invocation),
        }
    }
}

impl Canned {
    /// A plan, or a gate's chat message, needs no answer; anything else
    /// unanswered fails, and the case reports it.
    fn default_answer(&self, uses: &str, invocation: &Invocation) -> Result<Value, InvokeError> {
        if invocation.dry_run {
            return Ok(json!({"planned": true}));
        }
        if self.gates.contains(&invocation.step_id) {
            return Ok(json!({"ok": true, "ts": "1700000000.000100", "channel": "C0TEST"}));
        }
        let what = format!("`{uses}` (step `{}`)", invocation.step_id);
        lock(&self.unanswered).push(what.clone());
        Err(InvokeError::Plugin {
            kind: ErrorKind::Permanent,
            message: format!("no canned answer for {what} in this case"),
        })
    }
}

/// The connector error of a canned `kind`.
fn error(kind: &str, message: &str, retry_after: Option<std::time::Duration>) -> InvokeError {
    let message = if message.is_empty() {
        format!("{kind} (canned)")
    } else {
        message.to_string()
    };
    let kind = match kind {
        "timeout" => return InvokeError::Timeout { limit_ms: 30_000 },
        "invalid_input" => ErrorKind::InvalidInput,
        "unauthorized" => ErrorKind::Unauthorized,
        "not_found" => ErrorKind::NotFound,
        "conflict" => ErrorKind::Conflict,
        "rate_limited" => ErrorKind::RateLimited {
            retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
        },
        "unavailable" => ErrorKind::Unavailable,
        "denied" => ErrorKind::Denied,
        _ => ErrorKind::Permanent,
    };
    InvokeError::Plugin { kind, message }
}

/// The kinds a canned error may name.
pub const ERROR_KINDS: [&str; 9] = [
    "invalid_input",
    "unauthorized",
    "not_found",
    "conflict",
    "rate_limited",
    "unavailable",
    "permanent",
    "denied",
    "timeout",
];

/// Routes the shared plugin host's calls to the case being run (cases
/// run one at a time, each with its own journal).
#[derive(Default)]
pub struct Switch {
    current: Mutex<Option<Arc<Canned>>>,
}

impl Switch {
    /// From now on, `canned` answers.
    pub fn set(&self, canned: Arc<Canned>) {
        *lock(&self.current) = Some(canned);
    }
}

impl Answers for Switch {
    fn answer(
        &self,
        plugin: &str,
        action: &str,
        input: &Value,
        invocation: &Invocation,
    ) -> Result<Value, InvokeError> {
        let current = lock(&self.current).clone();
        match current {
            Some(c) => c.answer(plugin, action, input, invocation),
            None => Err(InvokeError::Plugin {
                kind: ErrorKind::Permanent,
                message: "no test case is running".into(),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
