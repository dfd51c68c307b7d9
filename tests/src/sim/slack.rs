//! Simulated Slack Web API `chat.postMessage` (`slack-chat.json`, with the
//! README's note: JSON bodies and `Authorization: Bearer`). Like real Slack it
//! answers HTTP 200 with `{"ok": false, "error": ...}` for most failures, and
//! it records every message it accepted.

use super::{header, json_response};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use wiremock::{Request, ResponseTemplate};

/// The bot token the simulator accepts (`Authorization: Bearer {token}`).
pub const SLACK_BOT_TOKEN: &str = "demo-slack-token";
/// The SOC's alert channel, by name (also accepted without the `#`).
pub const SLACK_CHANNEL: &str = "#soc-alerts";
/// The id of [`SLACK_CHANNEL`]: Slack answers with ids.
pub const SLACK_CHANNEL_ID: &str = "C0123456789";
/// An archived channel: posting answers `is_archived`.
pub const SLACK_ARCHIVED_CHANNEL: &str = "#old-alerts";
/// A private channel the bot is not a member of: posting answers `not_in_channel`.
pub const SLACK_FOREIGN_CHANNEL: &str = "#hr-private";

/// The simulated bot's id, shown on the messages it posts.
const BOT_ID: &str = "B0SOARBOT01";
/// Slack truncates longer texts; the API refuses them with `msg_too_long`.
const MAX_TEXT: usize = 40_000;
/// At most this many blocks per message.
const MAX_BLOCKS: usize = 50;

/// A channel of the simulated workspace.
struct Channel {
    id: &'static str,
    name: &'static str,
    archived: bool,
    bot_is_member: bool,
}

/// A message the simulator accepted.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read through `State::messages` by the demo and tests
pub(super) struct PostedMessage {
    /// Channel id.
    pub(super) channel: String,
    /// Message timestamp id.
    pub(super) ts: String,
    /// Text.
    pub(super) text: String,
    /// Block Kit blocks, when given.
    pub(super) blocks: Option<Value>,
    /// Parent message, for thread replies.
    pub(super) thread_ts: Option<String>,
}

/// The simulated workspace.
pub(super) struct State {
    channels: Vec<Channel>,
    messages: Vec<PostedMessage>,
}

/// A channel name without its `#`.
fn name(channel: &'static str) -> &'static str {
    channel.trim_start_matches('#')
}

impl Default for State {
    fn default() -> Self {
        let channel = |id, name, archived, bot_is_member| Channel {
            id,
            name,
            archived,
            bot_is_member,
        };
        Self {
            channels: vec![
                channel(SLACK_CHANNEL_ID, name(SLACK_CHANNEL), false, true),
                channel("C0987654321", "incident-room", false, true),
                channel("C0ARCHIVED1", name(SLACK_ARCHIVED_CHANNEL), true, true),
                channel("G0PRIVATE11", name(SLACK_FOREIGN_CHANNEL), false, false),
            ],
            messages: Vec::new(),
        }
    }
}

// Read by the demo and the end-to-end tests to show what was posted.
#[allow(dead_code)]
impl State {
    /// Every message accepted, in order.
    pub(super) fn messages(&self) -> &[PostedMessage] {
        &self.messages
    }
}

impl State {
    /// A channel by id, or by name with or without `#`.
    fn channel(&self, key: &str) -> Option<&Channel> {
        let name = key.strip_prefix('#').unwrap_or(key);
        self.channels.iter().find(|c| c.id == key || c.name == name)
    }

    /// A `ts` unique in this workspace: the current second and a sequence.
    fn next_ts(&self) -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{secs:010}.{:06}", (self.messages.len() + 1) % 1_000_000)
    }
}

/// Slack's failure envelope, with HTTP 200 as Slack sends it.
fn refuse(error: &str) -> ResponseTemplate {
    json_response(200, json!({"ok": false, "error": error}))
}

/// Routes `/api/<method>` like Slack; `chat.postMessage` and `chat.update`.
pub(super) fn respond(state: &mut State, request: &Request) -> ResponseTemplate {
    let path = request.url.path();
    if path != "/api/chat.postMessage" && path != "/api/chat.update" {
        return json_response(404, json!({"ok": false, "error": "unknown_method"}));
    }
    let auth = header(request, "authorization");
    if auth.is_empty() {
        return refuse("not_authed");
    }
    if auth != format!("Bearer {SLACK_BOT_TOKEN}") {
        return refuse("invalid_auth");
    }
    if request.method.as_str() != "POST" {
        return refuse("invalid_post_type");
    }
    // Real Slack also takes form bodies; this simulator speaks JSON only.
    if !header(request, "content-type").starts_with("application/json") {
        return refuse("invalid_post_type");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return refuse("invalid_json");
    };
    if path == "/api/chat.update" {
        return update_message(state, &body);
    }
    post_message(state, &body)
}

/// `chat.update`: replaces the text (and blocks) of a message the bot posted.
fn update_message(state: &mut State, body: &Map<String, Value>) -> ResponseTemplate {
    let key = body.get("channel").and_then(Value::as_str).unwrap_or("");
    let Some(channel_id) = state.channel(key).map(|c| c.id.to_string()) else {
        return refuse("channel_not_found");
    };
    let ts = body.get("ts").and_then(Value::as_str).unwrap_or("");
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let blocks = body.get("blocks").cloned();
    if text.trim().is_empty() && blocks.is_none() {
        return refuse("no_text");
    }
    let Some(message) = state
        .messages
        .iter_mut()
        .find(|m| m.channel == channel_id && m.ts == ts)
    else {
        return refuse("message_not_found");
    };
    message.text = text.clone();
    message.blocks = blocks;
    json_response(
        200,
        json!({"ok": true, "channel": channel_id, "ts": ts, "text": text, "message": {"text": text}}),
    )
}

fn post_message(state: &mut State, body: &Map<String, Value>) -> ResponseTemplate {
    let key = body.get("channel").and_then(Value::as_str).unwrap_or("");
    let Some(channel) = state.channel(key) else {
        return refuse("channel_not_found");
    };
    if channel.archived {
        return refuse("is_archived");
    }
    if !channel.bot_is_member {
        return refuse("not_in_channel");
    }
    let channel_id = channel.id.to_string();
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    let blocks = body.get("blocks").cloned();
    if let Some(blocks) = &blocks {
        let valid = blocks.as_array().is_some_and(|list| {
            list.len() <= MAX_BLOCKS
                && list
                    .iter()
                    .all(|b| b.get("type").is_some_and(Value::is_string))
        });
        if !valid {
            return refuse("invalid_blocks");
        }
    }
    let no_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_none_or(|list| list.is_empty());
    if text.trim().is_empty() && no_blocks {
        return refuse("no_text");
    }
    if text.chars().count() > MAX_TEXT {
        return refuse("msg_too_long");
    }
    let thread_ts = body
        .get("thread_ts")
        .and_then(Value::as_str)
        .map(String::from);
    let ts = state.next_ts();
    let mut message = json!({
        "type": "message",
        "subtype": "bot_message",
        "text": text,
        "ts": ts,
        "bot_id": BOT_ID,
    });
    if let Some(blocks) = &blocks {
        message["blocks"] = blocks.clone();
    }
    if let Some(parent) = &thread_ts {
        message["thread_ts"] = json!(parent);
    }
    state.messages.push(PostedMessage {
        channel: channel_id.clone(),
        ts: ts.clone(),
        text: text.to_string(),
        blocks,
        thread_ts,
    });
    json_response(
        200,
        json!({"ok": true, "channel": channel_id, "ts": ts, "message": message}),
    )
}
