//! `POST /slack/interactions`: Approve and Deny buttons clicked in Slack.
//! Verified as Slack documents it: `X-Slack-Signature` is `v0=` + hex
//! HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` under the
//! signing secret, compared in constant time, refused when the timestamp is
//! more than 300 s from now. The clicking user (`user.id` + `team.id`) maps
//! to a principal (`principals.NAME.slack`), whose vote passes exactly the
//! rules of any other ([`crate::operations::vote`]). Answers are ephemeral
//! messages, sent at once (Slack waits 3 s).

use super::auth::hmac_matches;
use super::App;
use crate::approvals::Refusal;
use crate::journal::Vote;
use crate::operations::{self as ops, OpError, VoteResult};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// Slack's replay window.
const TOLERANCE_S: u64 = 300;

/// The action ids of the buttons a playbook's message carries; the
/// button's `value` is `RUN_ID/STEP`.
pub const APPROVE_ACTION: &str = "soar_approve";
/// See [`APPROVE_ACTION`].
pub const DENY_ACTION: &str = "soar_deny";

fn ephemeral(text: impl Into<String>) -> Response {
    Json(json!({"response_type": "ephemeral", "replace_original": false, "text": text.into()}))
        .into_response()
}

fn unauthorized(why: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "bad_signature", "message": why})),
    )
        .into_response()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// Checks Slack's signature over the raw body; the signature on success.
fn verify(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<String, Response> {
    let Some(secret) = &app.config.server.slack_signing_secret else {
        return Err((
            StatusCode::NOT_FOUND,
            "Slack is not configured (server.slack)",
        )
            .into_response());
    };
    let ts_text = header(headers, "x-slack-request-timestamp")
        .ok_or_else(|| unauthorized("missing timestamp"))?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| unauthorized("malformed timestamp"))?;
    let now = (crate::journal::now_unix_millis() / 1000) as i64;
    if now.abs_diff(ts) > TOLERANCE_S {
        return Err(unauthorized("stale timestamp"));
    }
    let sig =
        header(headers, "x-slack-signature").ok_or_else(|| unauthorized("missing signature"))?;
    let given = sig
        .strip_prefix("v0=")
        .filter(|h| h.len() == 64)
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| unauthorized("malformed signature"))?;
    let key = secret.load().map_err(|_| {
        tracing::error!("the Slack signing secret cannot be loaded");
        unauthorized("the signing secret is not available")
    })?;
    let parts: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", body];
    if !hmac_matches(key.expose().as_bytes(), &parts, &given) {
        return Err(unauthorized("the signature does not match"));
    }
    Ok(sig.to_string())
}

/// The interaction's payload (`payload=` of the form body).
fn payload(body: &[u8]) -> Option<Value> {
    let text = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())?;
    serde_json::from_str(&text).ok()
}

/// What was clicked: vote, run, step; and by whom (user, team).
struct Click {
    vote: Vote,
    run_id: String,
    step: String,
    user: String,
    team: String,
    /// The message the button was on (channel, ts), updated once decided.
    message: Option<(String, String)>,
}

fn click(p: &Value) -> Option<Click> {
    let action = p["actions"].as_array()?.first()?;
    let vote = match action["action_id"].as_str()? {
        APPROVE_ACTION => Vote::Approve,
        DENY_ACTION => Vote::Deny,
        _ => return None,
    };
    let (run_id, step) = action["value"].as_str()?.split_once('/')?;
    let user = p["user"]["id"].as_str()?.to_string();
    // The workspace the click came from, as documented: `team.id`. A
    // payload without it (or whose user's own `team_id` names another
    // workspace) is not a click this server can attribute: refused.
    let team = p["team"]["id"].as_str()?.to_string();
    if p["user"]["team_id"].as_str().is_some_and(|t| t != team) {
        return None;
    }
    let channel = p["container"]["channel_id"]
        .as_str()
        .or_else(|| p["channel"]["id"].as_str());
    let ts = p["container"]["message_ts"]
        .as_str()
        .or_else(|| p["message"]["ts"].as_str());
    Some(Click {
        vote,
        run_id: run_id.to_string(),
        step: step.to_string(),
        user,
        team,
        message: channel.zip(ts).map(|(c, t)| (c.to_string(), t.to_string())),
    })
}

/// The chat message a gate's `approval.notify` posted: (plugin, channel, ts).
fn posted_message(
    records: &[crate::journal::Record],
    step: &str,
) -> Option<(String, String, String)> {
    records.iter().rev().find_map(|r| match &r.event {
        crate::journal::Event::ChatMessage {
            step: s,
            uses,
            ok: true,
            detail,
            input,
            ..
        } if s == step && uses.ends_with(".notify") && input.get("thread_ts").is_none() => {
            let plugin = uses.strip_suffix(".notify")?.to_string();
            Some((
                plugin,
                detail["channel"].as_str()?.to_string(),
                detail["ts"].as_str()?.to_string(),
            ))
        }
        _ => None,
    })
}

/// Whether the decision of `step` was already announced.
fn announced(records: &[crate::journal::Record], step: &str) -> bool {
    records.iter().any(|r| {
        matches!(&r.event, crate::journal::Event::ChatMessage { step: s, uses, .. } if s == step && uses.ends_with(".update"))
    })
}

/// Once approval `step` of `run_id` is decided, however it was (console,
/// API, CLI through the server, Slack, expiry), replaces its chat message
/// with who decided and how, buttons gone, through the connector that
/// posted it, like every other vendor call; journals what happened.
/// `clicked` is the Slack message a click came from, for buttons a
/// playbook step posted itself.
pub async fn announce(
    app: Arc<App>,
    run_id: String,
    step: String,
    clicked: Option<(String, String)>,
) {
    let Ok(records) = ops::read_run(app.journal(), &run_id) else {
        return;
    };
    if announced(&records, &step) {
        return;
    }
    let state = crate::scheduler::RunState::from_records(&records);
    let Some((decision, by)) = state.gates.get(&step).and_then(|g| g.decision.clone()) else {
        return;
    };
    let Some((plugin, channel, ts)) = posted_message(&records, &step)
        .or_else(|| clicked.map(|(c, t)| ("chatops".to_string(), c, t)))
    else {
        return;
    };
    let who = if by.is_empty() {
        "nobody in time: counts as denied".to_string()
    } else {
        format!("by {}", by.join(", "))
    };
    let text = format!(
        "approval `{step}` {} {who} (run {run_id})",
        decision.as_str()
    );
    let input = json!({
        "channel": channel,
        "ts": ts,
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "format": "mrkdwn",
    });
    let key = crate::scheduler::idempotency_key(&run_id, &step, None);
    let invocation = crate::plugin_host::Invocation {
        run_id: run_id.clone(),
        step_id: step.clone(),
        attempt: 1,
        idempotency_key: format!("{key}-chat-update"),
        dry_run: false,
    };
    let outcome = app
        .engine
        .host()
        .invoke(&plugin, "update", &input, &invocation)
        .await;
    let (ok, detail) = match &outcome.result {
        Ok(v) => (true, v.clone()),
        Err(e) => (false, json!(e.to_string())),
    };
    if !ok {
        tracing::warn!(run_id = %run_id, error = %detail, "the chat message could not be updated");
    }
    let event = crate::journal::Event::ChatMessage {
        step,
        uses: format!("{plugin}.update"),
        input,
        ok,
        detail,
        exchanges: serde_json::to_value(&outcome.exchanges).unwrap_or(Value::Null),
    };
    if let Err(e) = app.journal().append(&run_id, event).await {
        tracing::error!(run_id = %run_id, error = %e, "cannot journal the message update");
    }
}

/// How long after an alert joins a waiting run its chat thread hears of
/// it: alerts that join meanwhile go into the same reply.
const GROUPED_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Replies in the thread of each waiting approval's chat message that more
/// alerts joined the run, with the latest one (escaped for Slack), and
/// journals the reply (`chat_message` with `thread_ts`).
pub async fn announce_grouped(app: Arc<App>, run_id: String) {
    tokio::time::sleep(GROUPED_SETTLE).await;
    app.grouped_announced(&run_id);
    let Ok(records) = ops::read_run(app.journal(), &run_id) else {
        return;
    };
    let state = crate::scheduler::RunState::from_records(&records);
    let (Some(latest), n) = (state.grouped.last(), state.grouped.len()) else {
        return;
    };
    let waiting = state.gates.iter().filter(|(_, g)| g.decision.is_none());
    for (step, _) in waiting {
        let Some((plugin, channel, ts)) = posted_message(&records, step) else {
            continue;
        };
        let latest = crate::scheduler::notify::slack_text(&json!(latest.to_string()));
        let text = format!(
            "{n} more alert(s) joined this run while approval `{step}` waits. The latest: {latest}"
        );
        let input = json!({"channel": channel, "thread_ts": ts, "text": text, "format": "mrkdwn"});
        let key = crate::scheduler::idempotency_key(&run_id, step, None);
        let invocation = crate::plugin_host::Invocation {
            run_id: run_id.clone(),
            step_id: step.clone(),
            attempt: 1,
            idempotency_key: format!("{key}-chat-grouped-{n}"),
            dry_run: false,
        };
        let outcome = app
            .engine
            .host()
            .invoke(&plugin, "notify", &input, &invocation)
            .await;
        let (ok, detail) = match &outcome.result {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, json!(e.to_string())),
        };
        let event = crate::journal::Event::ChatMessage {
            step: step.clone(),
            uses: format!("{plugin}.notify"),
            input,
            ok,
            detail,
            exchanges: serde_json::to_value(&outcome.exchanges).unwrap_or(Value::Null),
        };
        if let Err(e) = app.journal().append(&run_id, event).await {
            tracing::error!(run_id = %run_id, error = %e, "cannot journal the grouped-alert reply");
        }
    }
}

/// The handler.
pub async fn interactions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = match verify(&app, &headers, &body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(click) = payload(&body).as_ref().and_then(click) else {
        return ephemeral("soar understood nothing in that interaction");
    };
    let who_text = format!("slack:{}", click.user);
    if ops::read_run(app.journal(), &click.run_id).is_err() {
        return ephemeral("no such run");
    }
    let command = match click.vote {
        Vote::Approve => "approve",
        Vote::Deny => "deny",
    };
    let refuse = |r: Refusal| async {
        let r = ops::refuse(
            app.journal(),
            &click.run_id,
            command,
            Some(&click.step),
            &who_text,
            r,
        )
        .await;
        ephemeral(format!("{r} (journaled)"))
    };
    if !app.first_slack_delivery(&signature) {
        return refuse(Refusal::NotWaiting(
            "this interaction was already received (a replay)".into(),
        ))
        .await;
    }
    let principal = app
        .policy()
        .approvers
        .values()
        .find(|a| {
            a.slack
                .as_ref()
                .is_some_and(|s| s.user_id == click.user && s.team_id == click.team)
        })
        .cloned();
    let Some(who) = principal else {
        return refuse(Refusal::UnknownApprover(who_text.clone())).await;
    };
    let reason = format!("{command} from Slack");
    let clicked = click.message.clone();
    let result = app
        .vote(
            &click.run_id,
            &click.step,
            &who,
            click.vote,
            &reason,
            clicked,
        )
        .await;
    tracing::info!(principal = %who.name, run_id = %click.run_id, step = %click.step, "Slack vote");
    match result {
        Ok(VoteResult::Recorded { have, need }) => {
            ephemeral(format!("vote recorded: {have} of {need} approval(s)"))
        }
        // The message update goes on in the background: Slack waits 3 s.
        Ok(VoteResult::Decided { decision, by }) => ephemeral(format!(
            "approval `{}` {} by {}",
            click.step,
            decision.as_str(),
            by.join(", ")
        )),
        Err(OpError::Refused(r)) => ephemeral(format!("refused: {r} (journaled)")),
        Err(e) => ephemeral(format!("not counted: {e}")),
    }
}
