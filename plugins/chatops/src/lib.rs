//! `chatops`: posts notifications to Slack channels with the Web API's
//! `chat.postMessage`, as a bot whose token the host holds.
//!
//! Slack answers most failures with HTTP 200 and `{"ok": false, "error": ...}`:
//! this connector reads that envelope and maps the error string to a typed
//! error, so a revoked token fails the step and a rate limit is retried.

use soar_plugin_sdk::http::{join, Body, Request, Response};
use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, Error, JsonSchema, LogLevel, Plugin, Result,
    Serialize, Value,
};

/// Slack truncates messages longer than this many characters.
const MAX_TEXT: usize = 40_000;
/// Slack accepts at most this many blocks in one message.
const MAX_BLOCKS: usize = 50;

/// The connector's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "chatops",
        env!("CARGO_PKG_VERSION"),
        "Slack: post notifications to channels",
    )
    .secret("bot_token")
    .config_key("base_url")
    .action(
        // Not idempotent: Slack has no idempotency key for chat.postMessage,
        // so a retry after an unknown outcome may post the message twice.
        Action::new(
            "notify",
            "Post a message to a Slack channel (or a thread); a dry run posts nothing",
            notify,
        ),
    )
    .action(
        // Idempotent: the same update twice leaves the message as once.
        Action::new(
            "update",
            "Replace the text and blocks of a message the bot posted (chat.update), e.g. to show who decided an approval and remove its buttons",
            update,
        )
        .idempotent(),
    )
}

export_plugin!(plugin);

/// Input of `notify`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyInput {
    /// Channel id (`C0123456789`) or name (`#soc-alerts`); the bot must be a
    /// member of the channel.
    #[schemars(length(min = 1))]
    pub channel: String,
    /// Message text; with `blocks`, it is the fallback shown in
    /// notifications. See `format`.
    #[schemars(length(min = 1, max = 40000))]
    pub text: String,
    /// Block Kit blocks, each an object with a `type`.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub blocks: Option<Vec<serde_json::Map<String, Value>>>,
    /// How Slack may read `text` and the blocks' `mrkdwn` texts.
    #[serde(default)]
    pub format: TextFormat,
    /// Post as a reply in the thread of this message (its `ts`).
    #[serde(default)]
    #[schemars(regex(pattern = r"^\d{10}\.\d{6}$"))]
    pub thread_ts: Option<String>,
}

/// Input of `update`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    /// The channel id the message is in, as `notify` returned it.
    #[schemars(length(min = 1))]
    pub channel: String,
    /// The message's timestamp id, as `notify` returned it.
    #[schemars(regex(pattern = r"^\d{10}\.\d{6}$"))]
    pub ts: String,
    /// The new text. See `format`.
    #[schemars(length(min = 1, max = 40000))]
    pub text: String,
    /// The new blocks; `[]` removes the old ones (and any buttons).
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub blocks: Option<Vec<serde_json::Map<String, Value>>>,
    /// How Slack may read `text` and the blocks' `mrkdwn` texts.
    #[serde(default)]
    pub format: TextFormat,
}

/// How Slack may read a message's text.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// As text (the default): `&`, `<` and `>` are escaped as Slack
    /// documents, so what an alert put in the text is shown, never turned
    /// into a mention (`<!channel>`) or a disguised link
    /// (`<http://evil|invoice.pdf>`). Emphasis and emoji still show.
    #[default]
    Text,
    /// Slack `mrkdwn` as written: for text whose every value the playbook
    /// escaped itself (it opts in to `<...>` links and mentions).
    Mrkdwn,
}

/// `text` escaped as Slack documents for `mrkdwn` (`&`, `<`, `>`).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text and blocks as they are sent: under [`TextFormat::Text`],
/// `text` and every `mrkdwn` text object in the blocks escaped.
fn formatted(
    format: TextFormat,
    text: &str,
    blocks: Option<&[serde_json::Map<String, Value>]>,
) -> (String, Option<Vec<serde_json::Map<String, Value>>>) {
    if format == TextFormat::Mrkdwn {
        return (text.to_string(), blocks.map(<[_]>::to_vec));
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                    if let Some(Value::String(t)) = o.get_mut("text") {
                        *t = escape(t);
                    }
                }
                o.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let blocks = blocks.map(|bs| {
        bs.iter()
            .map(|b| {
                let mut v = Value::Object(b.clone());
                walk(&mut v);
                match v {
                    Value::Object(o) => o,
                    _ => serde_json::Map::new(),
                }
            })
            .collect()
    });
    (escape(text), blocks)
}

/// The body sent to `chat.update`.
#[derive(Serialize)]
struct UpdateMessage<'a> {
    channel: &'a str,
    ts: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks: Option<&'a [serde_json::Map<String, Value>]>,
}

/// Output of `notify`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Notification {
    /// The channel id Slack posted to (the input channel in a dry run).
    pub channel: String,
    /// The message's timestamp id: pass it as `thread_ts` to reply in its
    /// thread. Absent in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// The thread the message was posted in, when it is a reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// Present and true in a dry run: the message was planned, not posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// The body sent to `chat.postMessage`.
#[derive(Serialize)]
struct PostMessage<'a> {
    channel: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks: Option<&'a [serde_json::Map<String, Value>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_ts: Option<&'a str>,
}

/// Slack's envelope: `ok` plus either the result or an `error` string.
#[derive(Deserialize)]
struct SlackReply {
    ok: bool,
    error: Option<String>,
    channel: Option<String>,
    ts: Option<String>,
    /// With `missing_scope`: the scope the token lacks.
    needed: Option<String>,
}

fn is_ts(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 17
        && bytes[10] == b'.'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 10 || b.is_ascii_digit())
}

/// Checks what the schema cannot express, before anything is sent.
fn validate(input: &NotifyInput) -> Result<()> {
    if input.channel.trim().is_empty() {
        return Err(Error::invalid_input("`channel` must not be empty"));
    }
    if input.text.trim().is_empty() {
        return Err(Error::invalid_input("`text` must not be empty"));
    }
    if input.text.chars().count() > MAX_TEXT {
        return Err(Error::invalid_input(format!(
            "`text` is longer than Slack's {MAX_TEXT} characters"
        )));
    }
    if let Some(blocks) = &input.blocks {
        if blocks.len() > MAX_BLOCKS {
            return Err(Error::invalid_input(format!(
                "{} blocks given; Slack accepts at most {MAX_BLOCKS}",
                blocks.len()
            )));
        }
        if let Some(i) = blocks
            .iter()
            .position(|b| !b.get("type").is_some_and(Value::is_string))
        {
            return Err(Error::invalid_input(format!(
                "`blocks[{i}]` has no string `type`: every Block Kit block needs one"
            )));
        }
    }
    if let Some(ts) = &input.thread_ts {
        if !is_ts(ts) {
            return Err(Error::invalid_input(format!(
                "`thread_ts` `{ts}` is not a Slack message timestamp like `1712345678.123456`"
            )));
        }
    }
    Ok(())
}

/// The typed error for Slack's `"ok": false` answer with `error`.
fn slack_error(response: &Response, reply: &SlackReply, channel: &str) -> Error {
    let code = reply.error.as_deref().unwrap_or("(no error given)");
    let message = format!("Slack refused the message to `{channel}`: {code}");
    match code {
        // Slack's limiter answers 429, but a 200 carrying the error is read
        // the same way, honouring `Retry-After` when present.
        "ratelimited" | "rate_limited" => {
            let as_429 = Response {
                status: 429,
                ..response.clone()
            };
            Error::new(Error::from_response(&as_429).kind, message)
        }
        "invalid_auth"
        | "not_authed"
        | "token_revoked"
        | "token_expired"
        | "account_inactive"
        | "no_permission"
        | "not_allowed_token_type" => Error::unauthorized(format!(
            "{message} (check the `bot_token` secret granted to this connector)"
        )),
        "missing_scope" => Error::unauthorized(format!(
            "{message}: the bot token lacks the `{}` scope",
            reply.needed.as_deref().unwrap_or("chat:write")
        )),
        "channel_not_found" => Error::not_found(message),
        "not_in_channel" => {
            Error::permanent(format!("{message}: invite the bot to the channel first"))
        }
        // Slack's own transient failures.
        "service_unavailable" | "internal_error" | "fatal_error" => Error::unavailable(message),
        _ => Error::permanent(message),
    }
}

/// Calls Web API `method` with a JSON `body` as the bot; Slack's envelope
/// read into a typed error when it says no.
fn call_slack(
    base: &str,
    method: &str,
    body: &impl Serialize,
    channel: &str,
) -> Result<SlackReply> {
    // Slack asks for the charset on JSON bodies; `Request::json` would set a
    // bare `application/json`, so the body and its type are set here.
    let mut request = Request::post(join(base, &format!("api/{method}")))
        .bearer_secret("bot_token")
        .header("content-type", "application/json; charset=utf-8")
        .header("accept", "application/json");
    request.body = Body::Bytes(serde_json::to_vec(body).unwrap_or_default());
    let response = request.send()?;
    if !response.is_success() {
        let e = Error::from_response(&response);
        return Err(Error::new(
            e.kind,
            format!("Slack refused the message to `{channel}`: {}", e.message),
        ));
    }
    let reply: SlackReply = response.json_body()?;
    if !reply.ok {
        return Err(slack_error(&response, &reply, channel));
    }
    Ok(reply)
}

fn notify(input: NotifyInput, ctx: &Context) -> Result<Notification> {
    validate(&input)?;
    let channel = input.channel.trim();
    let base = ctx.config("base_url")?;
    if ctx.dry_run() {
        ctx.log(
            LogLevel::Info,
            "dry run: message planned, not posted",
            &[("channel", channel)],
        );
        return Ok(Notification {
            channel: channel.to_string(),
            ts: None,
            thread_ts: input.thread_ts,
            planned: Some(true),
        });
    }
    let (text, blocks) = formatted(input.format, &input.text, input.blocks.as_deref());
    let body = PostMessage {
        channel,
        text: &text,
        blocks: blocks.as_deref(),
        thread_ts: input.thread_ts.as_deref(),
    };
    let reply = call_slack(&base, "chat.postMessage", &body, channel)?;
    let ts = reply
        .ts
        .ok_or_else(|| Error::permanent("Slack answered `ok: true` without the message `ts`"))?;
    let posted_to = reply.channel.unwrap_or_else(|| channel.to_string());
    ctx.log(
        LogLevel::Info,
        "Slack posted the message",
        &[("channel", &posted_to), ("ts", &ts)],
    );
    Ok(Notification {
        channel: posted_to,
        ts: Some(ts),
        thread_ts: input.thread_ts,
        planned: None,
    })
}

fn update(input: UpdateInput, ctx: &Context) -> Result<Notification> {
    let as_notify = NotifyInput {
        channel: input.channel.clone(),
        text: input.text.clone(),
        blocks: input.blocks.clone(),
        format: input.format,
        thread_ts: None,
    };
    validate(&as_notify)?;
    if !is_ts(&input.ts) {
        return Err(Error::invalid_input(format!(
            "`ts` `{}` is not a Slack message timestamp like `1712345678.123456`",
            input.ts
        )));
    }
    let channel = input.channel.trim();
    if ctx.dry_run() {
        return Ok(Notification {
            channel: channel.to_string(),
            ts: Some(input.ts),
            thread_ts: None,
            planned: Some(true),
        });
    }
    let base = ctx.config("base_url")?;
    let (text, blocks) = formatted(input.format, &input.text, input.blocks.as_deref());
    let body = UpdateMessage {
        channel,
        ts: &input.ts,
        text: &text,
        blocks: blocks.as_deref(),
    };
    let reply = call_slack(&base, "chat.update", &body, channel)?;
    Ok(Notification {
        channel: reply.channel.unwrap_or_else(|| channel.to_string()),
        ts: Some(input.ts),
        thread_ts: None,
        planned: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::http::HttpError;
    use soar_plugin_sdk::testing::MockHost;
    use soar_plugin_sdk::{json, ErrorKind, Invocation, RetryAfter};

    const BASE: &str = "https://slack.test";
    const URL: &str = "https://slack.test/api/chat.postMessage";
    const TS: &str = "1767225600.000100";

    fn posted() -> Response {
        Response::json(
            200,
            &json!({"ok": true, "channel": "C0123456789", "ts": TS,
                "message": {"type": "message", "subtype": "bot_message", "text": "hi",
                    "ts": TS, "bot_id": "B0SOARBOT01"}}),
        )
    }

    fn refused(error: &str) -> Response {
        Response::json(200, &json!({"ok": false, "error": error}))
    }

    fn call_with(
        mock: MockHost,
        input: Value,
        invocation: Invocation,
    ) -> (Result<Value>, MockHost) {
        mock.config("base_url", BASE)
            .run(|| plugin().call("notify", input, invocation))
    }

    fn call(mock: MockHost, input: Value) -> (Result<Value>, MockHost) {
        call_with(mock, input, Invocation::for_test("k1"))
    }

    fn simple() -> Value {
        json!({"channel": "#soc-alerts", "text": "Host FIN-WS-042 isolated"})
    }

    #[test]
    fn update_replaces_a_message_and_reads_slack_errors() {
        let url = "https://slack.test/api/chat.update";
        let ok = Response::json(
            200,
            &json!({"ok": true, "channel": "C0123456789", "ts": TS, "text": "done"}),
        );
        let input =
            json!({"channel": "C0123456789", "ts": TS, "text": "Approved by bob", "blocks": []});
        let (out, mock) = MockHost::new()
            .respond("POST", url, ok)
            .config("base_url", BASE)
            .run(|| plugin().call("update", input.clone(), Invocation::for_test("k")));
        assert_eq!(out.unwrap(), json!({"channel": "C0123456789", "ts": TS}));
        let sent = &mock.requests()[0];
        assert_eq!(sent.url, url);
        assert_eq!(sent.json(), input);
        assert_eq!(
            sent.header("authorization"),
            Some("Bearer {{secret:bot_token}}")
        );
        let (err, _) = MockHost::new()
            .respond("POST", url, refused("message_not_found"))
            .config("base_url", BASE)
            .run(|| plugin().call("update", input.clone(), Invocation::for_test("k")));
        assert!(err.unwrap_err().message.contains("message_not_found"));
        let bad = json!({"channel": "C0123456789", "ts": "yesterday", "text": "x"});
        let (err, mock) = MockHost::new()
            .config("base_url", BASE)
            .run(|| plugin().call("update", bad, Invocation::for_test("k")));
        assert!(err.is_err());
        assert!(mock.requests().is_empty(), "nothing is sent for bad input");
    }

    #[test]
    fn notify_posts_json_with_the_bot_token_by_name() {
        let blocks =
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Host isolated*"}}]);
        let input = json!({"channel": "#soc-alerts", "text": "Host isolated", "blocks": blocks});
        let (out, mock) = call(MockHost::new().respond("POST", URL, posted()), input);
        assert_eq!(out.unwrap(), json!({"channel": "C0123456789", "ts": TS}));
        assert_eq!(mock.requests().len(), 1);
        let post = &mock.requests()[0];
        assert_eq!((post.method.as_str(), post.url.as_str()), ("POST", URL));
        assert_eq!(
            post.header("authorization"),
            Some("Bearer {{secret:bot_token}}")
        );
        assert_eq!(
            post.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            post.headers
                .iter()
                .filter(|(n, _)| n == "content-type")
                .count(),
            1
        );
        assert_eq!(
            post.json(),
            json!({"channel": "#soc-alerts", "text": "Host isolated", "blocks": blocks})
        );
    }

    #[test]
    fn text_from_an_alert_cannot_mention_or_disguise_a_link_unless_the_playbook_opts_in() {
        let hostile = "<!channel> see <http://evil.example|invoice.pdf> & co";
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": hostile},
            "fields": [{"type": "mrkdwn", "text": "<@U0BOSS>"}, {"type": "plain_text", "text": "<kept>"}]}]);
        let input = json!({"channel": "#c", "text": hostile, "blocks": blocks});
        let (out, mock) = call(MockHost::new().respond("POST", URL, posted()), input);
        assert!(out.is_ok());
        let sent = mock.requests()[0].json();
        let escaped = "&lt;!channel&gt; see &lt;http://evil.example|invoice.pdf&gt; &amp; co";
        assert_eq!(sent["text"], escaped);
        assert_eq!(sent["blocks"][0]["text"]["text"], escaped);
        assert_eq!(sent["blocks"][0]["fields"][0]["text"], "&lt;@U0BOSS&gt;");
        assert_eq!(sent["blocks"][0]["fields"][1]["text"], "<kept>");
        // Opted in: sent as written.
        let input = json!({"channel": "#c", "text": "<!here> *done*", "format": "mrkdwn"});
        let (_, mock) = call(MockHost::new().respond("POST", URL, posted()), input);
        assert_eq!(mock.requests()[0].json()["text"], "<!here> *done*");
        let bad = json!({"channel": "#c", "text": "x", "format": "html"});
        let (out, mock) = call(MockHost::new(), bad);
        assert!(out.is_err() && mock.requests().is_empty());
    }

    #[test]
    fn thread_replies_carry_thread_ts_and_plain_messages_omit_blocks() {
        let input =
            json!({"channel": "C0123456789", "text": "update", "thread_ts": "1767225500.000001"});
        let (out, mock) = call(MockHost::new().respond("POST", URL, posted()), input);
        assert_eq!(out.unwrap()["thread_ts"], "1767225500.000001");
        assert_eq!(
            mock.requests()[0].json(),
            json!({"channel": "C0123456789", "text": "update", "thread_ts": "1767225500.000001"})
        );
    }

    #[test]
    fn ok_false_errors_map_to_kinds() {
        for (error, kind) in [
            ("invalid_auth", ErrorKind::Unauthorized),
            ("not_authed", ErrorKind::Unauthorized),
            ("token_revoked", ErrorKind::Unauthorized),
            ("account_inactive", ErrorKind::Unauthorized),
            ("missing_scope", ErrorKind::Unauthorized),
            ("channel_not_found", ErrorKind::NotFound),
            ("not_in_channel", ErrorKind::Permanent),
            ("is_archived", ErrorKind::Permanent),
            ("msg_too_long", ErrorKind::Permanent),
            ("service_unavailable", ErrorKind::Unavailable),
            ("ratelimited", ErrorKind::RateLimited(None)),
        ] {
            let (out, _) = call(
                MockHost::new().respond("POST", URL, refused(error)),
                simple(),
            );
            let err = out.unwrap_err();
            assert_eq!(err.kind, kind, "{error}");
            assert!(err.message.contains(error), "{}", err.message);
            assert!(err.message.contains("#soc-alerts"), "{}", err.message);
        }
        let (out, _) = call(
            MockHost::new().respond("POST", URL, refused("invalid_auth")),
            simple(),
        );
        assert!(out.unwrap_err().message.contains("bot_token"));
    }

    #[test]
    fn rate_limits_honour_retry_after_on_429_and_on_ok_false() {
        let limited = Response::json(429, &json!({"ok": false, "error": "ratelimited"}))
            .with_header("Retry-After", "30");
        let (out, _) = call(MockHost::new().respond("POST", URL, limited), simple());
        assert_eq!(
            out.unwrap_err().kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(30_000)))
        );
        let soft = refused("ratelimited").with_header("Retry-After", "4");
        let (out, _) = call(MockHost::new().respond("POST", URL, soft), simple());
        let err = out.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(4_000)))
        );
        assert!(err.message.contains("ratelimited"), "{}", err.message);
    }

    #[test]
    fn http_errors_map_to_kinds() {
        for (status, kind) in [
            (401, ErrorKind::Unauthorized),
            (404, ErrorKind::NotFound),
            (500, ErrorKind::Unavailable),
            (503, ErrorKind::Unavailable),
        ] {
            let (out, _) = call(
                MockHost::new().respond("POST", URL, Response::bytes(status, "")),
                simple(),
            );
            assert_eq!(out.unwrap_err().kind, kind, "status {status}");
        }
        let (out, _) = call(
            MockHost::new().fail("POST", URL, HttpError::Timeout),
            simple(),
        );
        assert_eq!(out.unwrap_err().kind, ErrorKind::Unavailable);
        let (out, _) = call(
            MockHost::new().respond("POST", URL, Response::bytes(200, "<html>")),
            simple(),
        );
        assert_eq!(out.unwrap_err().kind, ErrorKind::Permanent);
        let (out, _) = call(
            MockHost::new().respond("POST", URL, Response::json(200, &json!({"ok": true}))),
            simple(),
        );
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("ts"), "{}", err.message);
    }

    #[test]
    fn dry_run_plans_without_posting() {
        let invocation = Invocation {
            dry_run: true,
            ..Invocation::for_test("k1")
        };
        let (out, mock) = call_with(MockHost::new(), simple(), invocation);
        assert_eq!(
            out.unwrap(),
            json!({"channel": "#soc-alerts", "planned": true})
        );
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn bad_input_sends_nothing() {
        let too_many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        for input in [
            json!({"channel": " ", "text": "x"}),
            json!({"channel": "#c", "text": "  "}),
            json!({"channel": "#c"}),
            json!({"channel": "#c", "text": "x", "blocks": [{"text": "no type"}]}),
            json!({"channel": "#c", "text": "x", "blocks": ["not an object"]}),
            json!({"channel": "#c", "text": "x", "blocks": too_many}),
            json!({"channel": "#c", "text": "x", "thread_ts": "yesterday"}),
            json!({"channel": "#c", "text": "x", "username": "evil"}),
            json!({"channel": "#c", "text": "x".repeat(MAX_TEXT + 1)}),
        ] {
            let (out, mock) = call(MockHost::new(), input.clone());
            let err = out.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
            assert!(mock.requests().is_empty());
        }
        let (out, mock) =
            MockHost::new().run(|| plugin().call("notify", simple(), Invocation::for_test("k")));
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("base_url"), "{}", err.message);
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn manifest_declares_a_non_destructive_non_idempotent_notify() {
        let manifest = plugin().manifest();
        assert_eq!(manifest.actions.len(), 2);
        let update = &manifest.actions[1];
        assert_eq!(update.name, "update");
        assert!(!update.destructive && update.idempotent);
        assert_eq!(
            update.input_schema["required"],
            json!(["channel", "ts", "text"])
        );
        let notify = &manifest.actions[0];
        assert_eq!(notify.name, "notify");
        assert!(!notify.destructive && !notify.idempotent);
        assert!(notify.probe.is_none() && notify.targets.is_empty());
        assert_eq!(notify.input_schema["required"], json!(["channel", "text"]));
        assert_eq!(notify.input_schema["additionalProperties"], false);
        assert_eq!(manifest.secrets, ["bot_token"]);
        assert_eq!(manifest.config_keys, ["base_url"]);
    }
}
