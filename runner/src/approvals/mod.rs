//! Who may decide what: approver authentication, the rules a vote must pass
//! (role, four-eyes, one vote per person, a gate that is waiting), and the
//! checks a destructive step must pass before it acts ([`guard`]).
//! Pure functions over the config's [`Policy`] and a run's [`RunState`].

pub mod guard;
pub mod preview;

use crate::config::{Approver, Policy};
use crate::journal::{Decision, Vote};
use crate::scheduler::{GateState, RunState};

/// Why an operator command was refused. Every refusal is journaled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token was given.
    #[error("no token: set SOAR_TOKEN or pass --token-file")]
    NoToken,
    /// The name is not a configured approver.
    #[error("`{0}` is not an approver in the config")]
    UnknownApprover(String),
    /// The token does not match the approver's hash.
    #[error("wrong token for `{0}`")]
    WrongToken(String),
    /// The approver has none of the roles the gate asks for.
    #[error("`{who}` has roles [{has}], and approval `{step}` needs one of [{needs}]")]
    MissingRole {
        /// Approver.
        who: String,
        /// The gate.
        step: String,
        /// Their roles.
        has: String,
        /// Roles the gate asks for.
        needs: String,
    },
    /// Four-eyes: the run's starter may not approve it.
    #[error("`{0}` started this run and may not decide its approvals (four-eyes; see approvals.allow_self_approval)")]
    OwnRun(String),
    /// A second vote by the same person.
    #[error("`{who}` already voted on `{step}`")]
    AlreadyVoted {
        /// Approver.
        who: String,
        /// The gate.
        step: String,
    },
    /// The step is not an approval that is waiting.
    #[error("{0}")]
    NotWaiting(String),
    /// The request expired before this vote.
    #[error("approval `{0}` expired before this decision; it counts as denied")]
    Expired(String),
    /// The run is over.
    #[error("run is {0}: nothing to decide")]
    RunOver(String),
    /// The claimed name is outside the safe alphabet (a look-alike, say).
    #[error("{0}")]
    BadName(String),
    /// The token matches no principal.
    #[error("the token is not any principal's")]
    UnknownToken,
    /// The principal lacks a built-in role the command needs.
    #[error("`{who}` has roles [{has}], and `{command}` needs the `{role}` role")]
    NoRole {
        /// Principal.
        who: String,
        /// The command.
        command: String,
        /// The role it needs.
        role: String,
        /// Their roles.
        has: String,
    },
    /// The principal has none of a state table's `writers` roles.
    #[error("`{who}` has roles [{has}], and state table `{table}` may be changed from outside runs only by {writers}")]
    NotAWriter {
        /// Principal.
        who: String,
        /// The table.
        table: String,
        /// Its writer roles, in words.
        writers: String,
        /// Their roles.
        has: String,
    },
}

/// How an HTTP API answers a refusal: who you are (401), what you may do
/// (403), or the state of the run (409).
impl Refusal {
    /// The HTTP status of this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::NoToken
            | Refusal::UnknownApprover(_)
            | Refusal::WrongToken(_)
            | Refusal::UnknownToken => 401,
            Refusal::MissingRole { .. }
            | Refusal::OwnRun(_)
            | Refusal::BadName(_)
            | Refusal::NoRole { .. }
            | Refusal::NotAWriter { .. } => 403,
            Refusal::AlreadyVoted { .. }
            | Refusal::NotWaiting(_)
            | Refusal::Expired(_)
            | Refusal::RunOver(_) => 409,
        }
    }

    /// A stable machine-readable name (`reason` in API answers).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::UnknownApprover(_) => "unknown_principal",
            Refusal::WrongToken(_) => "wrong_token",
            Refusal::UnknownToken => "unknown_token",
            Refusal::MissingRole { .. } => "missing_role",
            Refusal::NoRole { .. } | Refusal::NotAWriter { .. } => "missing_role",
            Refusal::OwnRun(_) => "own_run",
            Refusal::BadName(_) => "bad_name",
            Refusal::AlreadyVoted { .. } => "already_voted",
            Refusal::NotWaiting(_) => "not_waiting",
            Refusal::Expired(_) => "expired",
            Refusal::RunOver(_) => "run_over",
        }
    }
}

/// The principal whose token this is. Every principal's hash is compared,
/// each in constant time, so the answer's timing tells nothing about which
/// (or how much of one) matched.
pub fn authenticate_token<'p>(
    policy: &'p Policy,
    token: Option<&str>,
) -> Result<&'p Approver, Refusal> {
    let token = token
        .filter(|t| !t.trim().is_empty())
        .ok_or(Refusal::NoToken)?;
    let mut found = None;
    for p in policy.approvers.values() {
        if p.token_matches(token) && found.is_none() {
            found = Some(p);
        }
    }
    found.ok_or(Refusal::UnknownToken)
}

/// Checks that `who` holds the built-in `role` that `command` needs.
pub fn require_role(who: &Approver, role: &str, command: &str) -> Result<(), Refusal> {
    if who.has_role(role) {
        return Ok(());
    }
    Err(Refusal::NoRole {
        who: who.name.clone(),
        command: command.to_string(),
        role: role.to_string(),
        has: who.roles.join(", "),
    })
}

/// Whether `who` may read runs: any role but `ingest` alone (a SIEM's
/// delivery token reads nothing back).
pub fn may_read(who: &Approver) -> bool {
    who.roles.iter().any(|r| r != crate::config::roles::INGEST)
}

/// The identity a run is started by. With approvers in the config, it is
/// an approver who proved it with their token (four-eyes compares proven
/// identities, not what `--as` says); without, a name in the safe alphabet,
/// so a look-alike of a real name cannot be recorded either.
pub fn starter(policy: &Policy, claimed: &str, token: Option<&str>) -> Result<String, Refusal> {
    let name = crate::names::normalise(claimed).map_err(|e| Refusal::BadName(e.to_string()))?;
    if policy.approvers.is_empty() {
        return Ok(name);
    }
    let who = authenticate(policy, &name, token)?;
    require_role(who, crate::config::roles::INGEST, "run")?;
    Ok(who.name.clone())
}

/// Checks that `who` is an approver and `token` is theirs.
pub fn authenticate<'p>(
    policy: &'p Policy,
    who: &str,
    token: Option<&str>,
) -> Result<&'p Approver, Refusal> {
    let shown = || who.chars().take(32).collect::<String>();
    // Names are compared in their normal form: `ALICE` and a full-width
    // `ａｌｉｃｅ` are alice; a Cyrillic look-alike is no name at all.
    let name = crate::names::normalise(who).map_err(|_| Refusal::UnknownApprover(shown()))?;
    let approver = policy
        .approvers
        .get(&name)
        .ok_or_else(|| Refusal::UnknownApprover(shown()))?;
    let token = token
        .filter(|t| !t.trim().is_empty())
        .ok_or(Refusal::NoToken)?;
    if !approver.token_matches(token) {
        return Err(Refusal::WrongToken(who.to_string()));
    }
    Ok(approver)
}

/// Checks everything about a vote except the token (see [`authenticate`]):
/// the gate is waiting and unexpired, the approver holds a role it asks
/// for, did not start the run (unless allowed), and has not voted yet.
pub fn check_vote<'s>(
    policy: &Policy,
    state: &'s RunState,
    step: &str,
    approver: &Approver,
    now_ms: u64,
) -> Result<&'s GateState, Refusal> {
    // A late voter learns who decided and when, even once the run is over.
    if let Some(gate) = state.gates.get(step) {
        if let Some((decision, by)) = &gate.decision {
            let who = if by.is_empty() {
                String::from("nobody (it timed out)")
            } else {
                by.join(", ")
            };
            let when = gate.decided_at.as_deref().unwrap_or("an unknown time");
            return Err(Refusal::NotWaiting(format!(
                "approval `{step}` is already decided: {} by {who} at {when}",
                decision.as_str()
            )));
        }
    }
    if let Some(status) = state.final_status {
        return Err(Refusal::RunOver(status.to_string()));
    }
    if state.cancelled.is_some() {
        return Err(Refusal::RunOver("cancelled".into()));
    }
    let gate = state.gates.get(step).ok_or_else(|| {
        let waiting: Vec<&str> = state
            .gates
            .iter()
            .filter(|(_, g)| g.is_waiting())
            .map(|(id, _)| id.as_str())
            .collect();
        Refusal::NotWaiting(format!(
            "step `{step}` is not an approval waiting for a decision (waiting: {})",
            if waiting.is_empty() {
                "none".to_string()
            } else {
                waiting.join(", ")
            }
        ))
    })?;
    if now_ms >= gate.expires_at_ms {
        return Err(Refusal::Expired(step.to_string()));
    }
    if !approver.roles.iter().any(|r| gate.approvers.contains(r)) {
        return Err(Refusal::MissingRole {
            who: approver.name.clone(),
            step: step.to_string(),
            has: approver.roles.join(", "),
            needs: gate.approvers.join(", "),
        });
    }
    if !policy.allow_self_approval && state.started_by.trim().eq_ignore_ascii_case(&approver.name) {
        return Err(Refusal::OwnRun(approver.name.clone()));
    }
    if gate.votes.iter().any(|(by, _, _)| by == &approver.name) {
        return Err(Refusal::AlreadyVoted {
            who: approver.name.clone(),
            step: step.to_string(),
        });
    }
    Ok(gate)
}

/// The gate's decision once `vote` by `who` is counted, if it decides it:
/// any denial denies; enough distinct approvals grant.
pub fn tally(gate: &GateState, who: &str, vote: Vote) -> Option<(Decision, Vec<String>)> {
    match vote {
        Vote::Deny => Some((Decision::Denied, vec![who.to_string()])),
        Vote::Approve => {
            let mut by = gate.approved_by();
            if !by.iter().any(|b| b == who) {
                by.push(who.to_string());
                by.sort();
            }
            (by.len() as u32 >= gate.min_approvals).then_some((Decision::Granted, by))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn approver(name: &str, roles: &[&str], token: &str) -> Approver {
        Approver {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            token_sha256: sha2::Sha256::digest(token.as_bytes()).into(),
            slack: None,
        }
    }

    fn policy() -> Policy {
        let mut p = Policy::default();
        for a in [
            approver("alice", &["soc-lead"], "ta"),
            approver("bob", &["soc-lead"], "tb"),
            approver("carol", &["analyst"], "tc"),
        ] {
            p.approvers.insert(a.name.clone(), a);
        }
        p
    }

    fn state(min: u32) -> RunState {
        let mut s = RunState {
            started_by: "alice".into(),
            ..Default::default()
        };
        s.gates.insert(
            "approve".into(),
            GateState {
                approvers: vec!["soc-lead".into()],
                min_approvals: min,
                requested_at: String::new(),
                expires_at_ms: 1_000,
                handoff: serde_json::Value::Null,
                bindings: vec![],
                plan: serde_json::Value::Null,
                votes: vec![],
                decision: None,
                decided_at: None,
            },
        );
        s
    }

    #[test]
    fn authentication_needs_known_name_and_matching_token() {
        let p = policy();
        assert_eq!(authenticate(&p, "bob", Some("tb")).unwrap().name, "bob");
        assert_eq!(
            authenticate(&p, "bob", Some("ta")),
            Err(Refusal::WrongToken("bob".into()))
        );
        assert_eq!(authenticate(&p, "bob", None), Err(Refusal::NoToken));
        assert_eq!(
            authenticate(&p, "mallory", Some("tb")),
            Err(Refusal::UnknownApprover("mallory".into()))
        );
    }

    #[test]
    fn vote_rules() {
        let p = policy();
        let s = state(2);
        let bob = &p.approvers["bob"];
        assert!(check_vote(&p, &s, "approve", bob, 10).is_ok());
        // Expired.
        assert_eq!(
            check_vote(&p, &s, "approve", bob, 1_000),
            Err(Refusal::Expired("approve".into()))
        );
        // Four-eyes.
        let alice = &p.approvers["alice"];
        assert_eq!(
            check_vote(&p, &s, "approve", alice, 10),
            Err(Refusal::OwnRun("alice".into()))
        );
        let mut shouting = s.clone();
        shouting.started_by = "ALICE ".into();
        assert_eq!(
            check_vote(&p, &shouting, "approve", alice, 10),
            Err(Refusal::OwnRun("alice".into()))
        );
        let mut lenient = p.clone();
        lenient.allow_self_approval = true;
        assert!(check_vote(&lenient, &s, "approve", alice, 10).is_ok());
        // Missing role.
        let carol = &p.approvers["carol"];
        assert!(matches!(
            check_vote(&p, &s, "approve", carol, 10),
            Err(Refusal::MissingRole { .. })
        ));
        // Not a gate.
        assert!(matches!(
            check_vote(&p, &s, "isolate", bob, 10),
            Err(Refusal::NotWaiting(_))
        ));
        // Second vote.
        let mut voted = s.clone();
        voted.gates.get_mut("approve").unwrap().votes.push((
            "bob".into(),
            Vote::Approve,
            String::new(),
        ));
        assert!(matches!(
            check_vote(&p, &voted, "approve", bob, 10),
            Err(Refusal::AlreadyVoted { .. })
        ));
    }

    #[test]
    fn quorum_counts_distinct_people_and_one_denial_decides() {
        let s = state(2);
        let gate = &s.gates["approve"];
        assert_eq!(tally(gate, "bob", Vote::Approve), None);
        let mut g = gate.clone();
        g.votes.push(("bob".into(), Vote::Approve, String::new()));
        assert_eq!(
            tally(&g, "dave", Vote::Approve),
            Some((Decision::Granted, vec!["bob".into(), "dave".into()]))
        );
        assert_eq!(tally(&g, "bob", Vote::Approve), None);
        assert_eq!(
            tally(&g, "dave", Vote::Deny),
            Some((Decision::Denied, vec!["dave".into()]))
        );
    }
}
