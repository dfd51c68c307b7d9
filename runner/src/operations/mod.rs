//! The operations both front ends call: the CLI (`cli/`) and the HTTP
//! server (`server/`). Each rule about who may do what to a run lives here
//! once; the front ends only authenticate the caller their way, call, and
//! render the answer (exit code or HTTP status).

pub mod catalog;
mod decide;
mod derived;
pub mod evidence;
pub mod metrics;
mod read;
pub mod retention;
mod start;
pub mod state;
mod state_import;

pub use decide::{cancel, cancel_driven, expire_gates, request_cancel, resolve, vote, VoteResult};
pub use read::{console_link, keep_report, list_runs, pending, status};
pub use start::{checked_playbook, playbook_of, Playbooks};

use crate::approvals::Refusal;
use crate::journal::{Event, Journal, Record};

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Bad usage or input (exit 2, HTTP 400/422).
    #[error("{0}")]
    Invalid(String),
    /// No such run (exit 2, HTTP 404).
    #[error("no run `{0}`")]
    NotFound(String),
    /// Refused and journaled where there is a run to journal it in (exit 4,
    /// HTTP 401/403/409).
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The journal or a file failed (exit 1, HTTP 500).
    #[error("{0}")]
    Failed(String),
}

impl From<crate::journal::JournalError> for OpError {
    fn from(e: crate::journal::JournalError) -> Self {
        match e {
            crate::journal::JournalError::UnknownRun(id) => OpError::NotFound(id),
            other => OpError::Failed(other.to_string()),
        }
    }
}

/// The run's records; an unknown run is [`OpError::NotFound`].
pub fn read_run(journal: &Journal, run_id: &str) -> Result<Vec<Record>, OpError> {
    match journal.read(run_id) {
        Ok(r) if !r.is_empty() => Ok(r),
        Ok(_) => Err(OpError::NotFound(run_id.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// What `journal verify --all` checks beyond each run's chain: the
/// journal's signed standing, and every value derived from it recomputed.
pub fn verify_all(
    journal: &Journal,
) -> Result<crate::journal::SignedReport, crate::journal::JournalError> {
    let mut report = journal.verify_signed()?;
    report.problems.extend(metrics::check_cache(journal)?);
    report.problems.extend(read::check_reports(journal)?);
    Ok(report)
}

/// How a name someone claimed (`--as NAME`) is recorded when the command
/// is refused: as given, unless it may be a secret typed in the wrong
/// place: a principal's token (by its hash), more than 32 characters, or
/// outside the name alphabet. Then only its length is kept.
pub fn recordable_name(policy: &crate::config::Policy, claimed: &str) -> String {
    let is_token = policy.approvers.values().any(|a| a.token_matches(claimed));
    shown_claim(claimed, is_token)
}

/// `claimed`, or only its length when it is (`is_token`) or looks like a
/// secret: more than 32 characters, or outside the name alphabet.
pub fn shown_claim(claimed: &str, is_token: bool) -> String {
    let long = claimed.chars().count() > 32;
    if is_token || long || crate::names::normalise(claimed).is_err() {
        format!("<redacted: {} chars>", claimed.chars().count())
    } else {
        claimed.to_string()
    }
}

/// `refusal` with a claimed name in it replaced by its recordable form.
pub fn recordable_refusal(refusal: Refusal, recorded: &str) -> Refusal {
    match refusal {
        Refusal::UnknownApprover(_) => Refusal::UnknownApprover(recorded.to_string()),
        Refusal::WrongToken(_) => Refusal::WrongToken(recorded.to_string()),
        other => other,
    }
}

/// Journals `refusal` of `command` in the run and returns it as the error.
/// `who` may be unauthenticated text: only its first 32 characters are
/// kept (a token pasted as a name must not end up whole in the journal).
pub async fn refuse(
    journal: &Journal,
    run_id: &str,
    command: &str,
    step: Option<&str>,
    who: &str,
    refusal: Refusal,
) -> OpError {
    let by: String = who.chars().take(32).collect();
    let event = Event::CommandRefused {
        command: command.to_string(),
        step: step.map(str::to_string),
        by,
        reason: refusal.to_string(),
    };
    if let Err(e) = journal.append(run_id, event).await {
        tracing::error!(run_id, error = %e, "could not journal a refusal");
    }
    OpError::Refused(refusal)
}
