//! `approval.notify`: when an approval is requested, its handoff, expiry,
//! console link and Approve/Deny buttons (with a confirm dialog) are posted
//! through the chat connector's `notify` action. A failure to post never
//! fails the gate: the console and the CLI still decide it. What was posted,
//! or why not, is journaled (`chat_message`).

use super::Engine;
use crate::journal::{Event, JournalError};
use crate::playbook::{Notify, Step};
use crate::plugin_host::Invocation;
use serde_json::{json, Map, Value};

/// Slack's limit for a section's text is 3,000 characters.
const MAX_FIELD: usize = 2_900;

/// Text from an alert or a vendor, made inert for Slack's `mrkdwn`: `&`,
/// `<` and `>` escaped as Slack documents, so a hostname like
/// `<!channel>` or `<https://evil|click>` is shown, not acted on; cut to
/// what a section holds.
pub fn slack_text(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if escaped.chars().count() <= MAX_FIELD {
        return escaped;
    }
    let cut: String = escaped.chars().take(MAX_FIELD).collect();
    format!("{cut}…")
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text})
}

/// The message's blocks.
pub fn blocks(
    run_id: &str,
    step: &str,
    handoff: &Map<String, Value>,
    expires_at: &str,
    console: Option<&str>,
) -> Vec<Value> {
    let field = |name: &str| slack_text(handoff.get(name).unwrap_or(&Value::Null));
    let value = format!("{run_id}/{step}");
    let confirm = |title: &str, text: &str, yes: &str| json!({"title": plain(title), "text": plain(text), "confirm": plain(yes), "deny": plain("Cancel")});
    let mut buttons = vec![
        json!({"type": "button", "style": "primary", "action_id": crate::server::slack_actions::APPROVE,
               "value": value, "text": plain("Approve"),
               "confirm": confirm("Approve?", "The gated action runs once the approval is complete.", "Approve")}),
        json!({"type": "button", "style": "danger", "action_id": crate::server::slack_actions::DENY,
               "value": value, "text": plain("Deny"),
               "confirm": confirm("Deny?", "The gated action will not run.", "Deny")}),
    ];
    if let Some(base) = console {
        buttons.push(
            json!({"type": "button", "action_id": "soar_open", "text": plain("Open in soar"),
                            "url": crate::operations::console_link(base, run_id, step)}),
        );
    }
    vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", field("summary"), field("why"))}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Affected*\n{}", field("affected"))},
            {"type": "mrkdwn", "text": format!("*Recommended*\n{}", field("recommended_action"))},
            {"type": "mrkdwn", "text": format!("*Expires (then denied)*\n{}", slack_text(&json!(expires_at)))},
            {"type": "mrkdwn", "text": format!("*Run*\n{}", slack_text(&json!(run_id)))},
        ]}),
        json!({"type": "actions", "elements": buttons}),
    ]
}

impl Engine {
    /// Posts the approval request of `step` to `notify.channel` and
    /// journals what happened.
    pub(super) async fn notify_gate(
        &self,
        run_id: &str,
        step: &Step,
        notify: &Notify,
        handoff: &Map<String, Value>,
        expires_at: &str,
    ) -> Result<(), JournalError> {
        let summary = slack_text(
            handoff
                .get("summary")
                .unwrap_or(&json!("Approval requested")),
        );
        let input = json!({
            "channel": notify.channel,
            "text": if summary.is_empty() { format!("Approval `{}` requested", step.id) } else { summary },
            "blocks": blocks(run_id, &step.id, handoff, expires_at, self.console.as_deref()),
            // Every value in them is escaped here ([`slack_text`]).
            "format": "mrkdwn",
        });
        let invocation = Invocation {
            run_id: run_id.to_string(),
            step_id: step.id.clone(),
            attempt: 1,
            idempotency_key: format!("{}-notify", super::idempotency_key(run_id, &step.id, None)),
            dry_run: false,
        };
        let outcome = self
            .host
            .invoke(&notify.plugin, "notify", &input, &invocation)
            .await;
        let (ok, detail) = match &outcome.result {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, json!(e.to_string())),
        };
        if !ok {
            tracing::warn!(run_id, step = %step.id, error = %detail, "the approval request could not be posted to chat");
        }
        let event = Event::ChatMessage {
            step: step.id.clone(),
            uses: format!("{}.notify", notify.plugin),
            input,
            ok,
            detail,
            exchanges: serde_json::to_value(&outcome.exchanges).unwrap_or(Value::Null),
        };
        self.note(run_id, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_text_cannot_mention_or_link_in_slack() {
        let hostile = json!("<!channel> <https://evil.example|click> & co");
        assert_eq!(
            slack_text(&hostile),
            "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; co"
        );
        let long = json!("x".repeat(10_000));
        assert!(slack_text(&long).chars().count() <= MAX_FIELD + 1);
    }

    #[test]
    fn the_buttons_carry_the_run_and_step_and_ask_for_confirmation() {
        let mut handoff = Map::new();
        handoff.insert("summary".into(), json!("Isolate <host>?"));
        let b = blocks(
            "r1",
            "approve",
            &handoff,
            "2026-12-02T10:00:00.000Z",
            Some("https://soar.example"),
        );
        let actions = &b[2]["elements"];
        assert_eq!(actions[0]["action_id"], "soar_approve");
        assert_eq!(actions[0]["value"], "r1/approve");
        assert_eq!(actions[1]["action_id"], "soar_deny");
        assert!(actions[0]["confirm"].is_object() && actions[1]["confirm"].is_object());
        assert_eq!(
            actions[2]["url"],
            "https://soar.example/ui/runs/r1/approvals/approve"
        );
        assert!(b[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("&lt;host&gt;"));
    }
}
