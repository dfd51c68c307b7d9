//! `blocklist`: Cloudflare API v4. Blocks and unblocks IP addresses with
//! account-level IP Access rules, and adds domains to a Zero Trust Gateway list.

use soar_plugin_sdk::http::{encode, join, Request, Response};
use soar_plugin_sdk::{
    export_plugin, json, Action, Context, Deserialize, Error, ErrorKind, JsonSchema, LogLevel,
    Plugin, Result, Serialize, TargetKind, Value,
};
use std::net::IpAddr;

/// The connector's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "blocklist",
        env!("CARGO_PKG_VERSION"),
        "Cloudflare: account IP Access rules (block/unblock an IP) and a Zero Trust Gateway domain list",
    )
    .secret("api_token")
    .config_key("base_url")
    .config_key("account_id")
    .config_key("domain_list_id")
    .action(
        Action::new(
            "get_ip_rule",
            "The account's IP Access rule for an IP address, and whether it blocks it",
            get_ip_rule,
        )
        .idempotent()
        .target("ip", TargetKind::Ip),
    )
    .action(
        Action::new(
            "block_ip",
            "Block an IP address account-wide; nothing is sent when a block rule already exists",
            block_ip,
        )
        .destructive()
        .idempotent()
        .probe("get_ip_rule")
        .target("ip", TargetKind::Ip),
    )
    .action(
        Action::new(
            "unblock_ip",
            "Delete the account's block rule for an IP address; nothing is sent when there is none",
            unblock_ip,
        )
        .destructive()
        .idempotent()
        .probe("get_ip_rule")
        .target("ip", TargetKind::Ip),
    )
    .action(
        Action::new(
            "block_domain",
            "Append a domain to the Zero Trust Gateway block list named by `domain_list_id`",
            block_domain,
        )
        .destructive()
        // Appending a value the list already holds leaves the list as it was
        // (see `append_domain`), so repeating the call with the same input is safe.
        .idempotent()
        .target("domain", TargetKind::Domain),
    )
}

export_plugin!(plugin);

/// Input of `block_ip` and of its probe `get_ip_rule`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpInput {
    /// IPv4 or IPv6 address.
    #[schemars(length(min = 1))]
    pub ip: String,
    /// Why it is blocked; written into the rule's notes by `block_ip`.
    /// `get_ip_rule` ignores it (it accepts it so it can probe `block_ip`).
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub reason: Option<String>,
}

/// Input of `unblock_ip`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnblockInput {
    /// IPv4 or IPv6 address.
    #[schemars(length(min = 1))]
    pub ip: String,
}

/// Input of `block_domain`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// Domain name (ASCII; use punycode for internationalised names).
    #[schemars(length(min = 1, max = 253))]
    pub domain: String,
    /// Why it is blocked; stored as the list item's description.
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub reason: Option<String>,
}

/// One IP Access rule, as Cloudflare reports it (only what playbooks need).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AccessRule {
    /// Rule id.
    pub id: String,
    /// `block`, `challenge`, `whitelist`, `js_challenge` or `managed_challenge`.
    pub mode: String,
    /// The rule's notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// When the rule was created (RFC 3339).
    #[serde(default)]
    pub created_on: Option<String>,
}

/// Output of `get_ip_rule`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IpRule {
    /// The address, normalised.
    pub ip: String,
    /// True when a `block` rule exists for the address.
    pub blocked: bool,
    /// The account's rule for the address, whatever its mode, if any.
    pub rule: Option<AccessRule>,
    /// The probe answer for crash reconciliation.
    pub effects: Effects,
}

/// Whether the effect of each destructive IP action is in place.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Effects {
    /// A `block` rule exists for the address.
    pub block_ip: bool,
    /// No `block` rule exists for the address.
    pub unblock_ip: bool,
}

/// Output of `block_ip`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Blocked {
    /// The address, normalised.
    pub ip: String,
    /// The block rule's id (absent in a dry run when none exists yet).
    pub rule_id: Option<String>,
    /// True when this call created the rule.
    pub created: bool,
    /// True when a block rule already existed: nothing was sent.
    pub already: bool,
    /// True when the rule is this step's: its notes carry this invocation's
    /// idempotency key (created now, or by an earlier attempt of the same step).
    pub owned: bool,
    /// Present and true in a dry run: the rule was planned, not created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// Output of `unblock_ip`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Unblocked {
    /// The address, normalised.
    pub ip: String,
    /// The id of the block rule that was (or, in a dry run, would be) deleted.
    pub rule_id: Option<String>,
    /// True when a block rule was deleted by this call.
    pub removed: bool,
    /// True when there was no block rule: nothing was sent.
    pub already: bool,
    /// Present and true in a dry run: the deletion was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// Output of `block_domain`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DomainBlocked {
    /// The domain, normalised (lower case, no trailing dot).
    pub domain: String,
    /// The Zero Trust list it was appended to.
    pub list_id: String,
    /// The list's name, as Cloudflare reports it.
    pub list_name: Option<String>,
    /// Items in the list after the change, as Cloudflare reports it.
    pub list_count: Option<u64>,
    /// True when Cloudflare refused the append as a duplicate: the domain
    /// was already listed.
    pub already: bool,
    /// Present and true in a dry run: the append was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// Cloudflare's response envelope.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<Message>,
    #[serde(default)]
    result: Value,
}

/// One entry of `errors`.
#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// Rule fields we read besides [`AccessRule`]'s.
#[derive(Deserialize)]
struct VendorRule {
    #[serde(flatten)]
    rule: AccessRule,
    configuration: Configuration,
}

/// A rule's `configuration`.
#[derive(Deserialize)]
struct Configuration {
    target: String,
    value: String,
}

/// A Zero Trust list (the PATCH answer).
#[derive(Deserialize)]
struct GatewayList {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    count: Option<f64>,
}

/// Cloudflare's authentication-error code.
const AUTH_ERROR: i64 = 10000;

/// Marks a rule's notes as created under an idempotency key.
fn key_marker(key: &str) -> String {
    format!("[soar:{key}]")
}

/// `errors` rendered as `[code] message; ...`.
fn describe(errors: &[Message]) -> String {
    errors
        .iter()
        .map(|e| format!("[{}] {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The typed error for a non-2xx answer, naming the call and Cloudflare's
/// own error codes; the kind (and any `Retry-After`) comes from the status.
fn status_error(response: &Response, what: &str) -> Error {
    let mapped = Error::from_response(response);
    let detail = response
        .json_body::<Envelope>()
        .ok()
        .map(|e| describe(&e.errors))
        .filter(|d| !d.is_empty());
    let message = match detail {
        Some(detail) => format!(
            "Cloudflare answered HTTP {} to {what}: {detail}",
            response.status
        ),
        None => format!("{what} failed: {}", mapped.message),
    };
    Error::new(mapped.kind, message)
}

/// Sends `request` and unwraps the envelope's `result`: non-2xx answers and
/// `success: false` become typed errors naming `what`.
fn call(request: Request, what: &str) -> Result<Value> {
    let response = request
        .bearer_secret("api_token")
        .header("accept", "application/json")
        .send()?;
    if !response.is_success() {
        return Err(status_error(&response, what));
    }
    let envelope: Envelope = response.json_body()?;
    if !envelope.success {
        let detail = describe(&envelope.errors);
        let message = format!(
            "Cloudflare reported failure (HTTP {}) for {what}: {detail}",
            response.status
        );
        return Err(if envelope.errors.iter().any(|e| e.code == AUTH_ERROR) {
            Error::unauthorized(message)
        } else {
            Error::permanent(message)
        });
    }
    Ok(envelope.result)
}

/// Decodes a `result` into `T`, or a permanent error naming what it was.
fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    soar_plugin_sdk::serde_json::from_value(value)
        .map_err(|e| Error::permanent(format!("Cloudflare's answer to {what} is malformed: {e}")))
}

/// The configured account, reached through the configured base URL.
struct Cloudflare {
    base: String,
    account: String,
}

impl Cloudflare {
    fn connect(ctx: &Context) -> Result<Self> {
        let base = ctx.config("base_url")?;
        let account = ctx.config("account_id")?;
        if account.trim().is_empty() {
            return Err(Error::permanent("config key `account_id` is empty"));
        }
        Ok(Self {
            base,
            account: account.trim().to_string(),
        })
    }

    fn url(&self, rest: &str) -> String {
        join(
            &self.base,
            &format!("client/v4/accounts/{}/{rest}", encode(&self.account)),
        )
    }

    /// The account's rule for `ip`, if any. IPv4 rules are searched by
    /// target and value; the spec's filter has no `ip6` target, so IPv6 ones
    /// are searched by value and picked by target here.
    fn find_rule(&self, ip: IpAddr) -> Result<Option<AccessRule>> {
        let value = ip.to_string();
        let query = match ip {
            IpAddr::V4(_) => format!(
                "configuration.target=ip&configuration.value={}",
                encode(&value)
            ),
            IpAddr::V6(_) => format!("configuration.value={}", encode(&value)),
        };
        let what = format!("the access-rule lookup for `{value}`");
        let url = self.url(&format!("firewall/access_rules/rules?{query}"));
        let result = call(Request::get(url), &what).map_err(|e| self.account_hint(e))?;
        let rules: Vec<VendorRule> = decode(result, &what)?;
        Ok(rules
            .into_iter()
            .find(|r| {
                r.configuration.target == target(ip)
                    && r.configuration.value.parse::<IpAddr>().ok() == Some(ip)
            })
            .map(|r| r.rule))
    }

    /// Creates a `block` rule for `ip`.
    fn create_block(&self, ip: IpAddr, notes: &str) -> Result<AccessRule> {
        let value = ip.to_string();
        let what = format!("the block-rule creation for `{value}`");
        let body = json!({
            "mode": "block",
            "configuration": {"target": target(ip), "value": value},
            "notes": notes,
        });
        let url = self.url("firewall/access_rules/rules");
        let result = call(Request::post(url).json(&body), &what)?;
        decode(result, &what)
    }

    /// Deletes rule `id`; the API takes no body (whatever the spec declares).
    fn delete_rule(&self, id: &str) -> Result<()> {
        let what = format!("the deletion of access rule `{id}`");
        let url = self.url(&format!("firewall/access_rules/rules/{}", encode(id)));
        call(Request::delete(url), &what)?;
        Ok(())
    }

    /// A not-found on the account's collection most likely means a wrong `account_id`.
    fn account_hint(&self, e: Error) -> Error {
        if e.kind != ErrorKind::NotFound {
            return e;
        }
        Error::not_found(format!(
            "{} (is config key `account_id` = `{}` right?)",
            e.message, self.account
        ))
    }
}

/// Cloudflare's configuration target for an address.
fn target(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// The parsed address, or invalid input before anything is sent.
fn parse_ip(ip: &str) -> Result<IpAddr> {
    ip.trim()
        .parse::<IpAddr>()
        .map_err(|_| Error::invalid_input(format!("`{ip}` is not an IPv4 or IPv6 address")))
}

/// Lower case, no trailing dot, ASCII letters/digits/`-`/`_`/`.` only, no
/// empty label: or invalid input before anything is sent.
fn parse_domain(domain: &str) -> Result<String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_chars = d
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if d.is_empty() || d.len() > 253 || !valid_chars || d.split('.').any(str::is_empty) {
        return Err(Error::invalid_input(format!(
            "`{domain}` is not a domain name (ASCII letters, digits, `-` and `.`; \
             use punycode for internationalised names)"
        )));
    }
    Ok(d)
}

fn get_ip_rule(input: IpInput, ctx: &Context) -> Result<IpRule> {
    let ip = parse_ip(&input.ip)?;
    let rule = Cloudflare::connect(ctx)?.find_rule(ip)?;
    let blocked = rule.as_ref().is_some_and(|r| r.mode == "block");
    Ok(IpRule {
        ip: ip.to_string(),
        blocked,
        rule,
        effects: Effects {
            block_ip: blocked,
            unblock_ip: !blocked,
        },
    })
}

fn block_ip(input: IpInput, ctx: &Context) -> Result<Blocked> {
    let ip = parse_ip(&input.ip)?;
    let shown = ip.to_string();
    let marker = key_marker(ctx.idempotency_key());
    let cloudflare = Cloudflare::connect(ctx)?;
    if let Some(rule) = cloudflare.find_rule(ip)? {
        if rule.mode != "block" {
            // Cloudflare keeps one rule per address: turning an allow or
            // challenge rule into a block is a decision for a person.
            return Err(Error::conflict(format!(
                "`{shown}` already has a `{}` IP Access rule (id `{}`); refusing to replace it \
                 with a block: change or delete that rule in Cloudflare first",
                rule.mode, rule.id
            )));
        }
        ctx.log(
            LogLevel::Info,
            "a block rule already exists; nothing sent",
            &[("ip", &shown), ("rule_id", &rule.id)],
        );
        let owned = rule.notes.as_deref().is_some_and(|n| n.contains(&marker));
        return Ok(Blocked {
            ip: shown,
            rule_id: Some(rule.id),
            created: false,
            already: true,
            owned,
            planned: None,
        });
    }
    if ctx.dry_run() {
        return Ok(Blocked {
            ip: shown,
            rule_id: None,
            created: false,
            already: false,
            owned: false,
            planned: Some(true),
        });
    }
    let reason = input
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("blocked by soar");
    let rule = cloudflare.create_block(ip, &format!("{reason} {marker}"))?;
    ctx.log(
        LogLevel::Info,
        "Cloudflare created the block rule",
        &[("ip", &shown), ("rule_id", &rule.id)],
    );
    Ok(Blocked {
        ip: shown,
        rule_id: Some(rule.id),
        created: true,
        already: false,
        owned: true,
        planned: None,
    })
}

fn unblock_ip(input: UnblockInput, ctx: &Context) -> Result<Unblocked> {
    let ip = parse_ip(&input.ip)?;
    let shown = ip.to_string();
    let cloudflare = Cloudflare::connect(ctx)?;
    let rule = match cloudflare.find_rule(ip)? {
        Some(rule) if rule.mode == "block" => rule,
        other => {
            // An allow or challenge rule is not ours to delete.
            let mode = other.map(|r| r.mode).unwrap_or_else(|| "none".into());
            ctx.log(
                LogLevel::Info,
                "no block rule for the address; nothing sent",
                &[("ip", &shown), ("rule_mode", &mode)],
            );
            return Ok(Unblocked {
                ip: shown,
                rule_id: None,
                removed: false,
                already: true,
                planned: None,
            });
        }
    };
    if ctx.dry_run() {
        return Ok(Unblocked {
            ip: shown,
            rule_id: Some(rule.id),
            removed: false,
            already: false,
            planned: Some(true),
        });
    }
    match cloudflare.delete_rule(&rule.id) {
        Ok(()) => {}
        // Deleted in between (by a person or a concurrent run): the effect is in place.
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Ok(Unblocked {
                ip: shown,
                rule_id: Some(rule.id),
                removed: false,
                already: true,
                planned: None,
            })
        }
        Err(e) => return Err(e),
    }
    ctx.log(
        LogLevel::Info,
        "Cloudflare deleted the block rule",
        &[("ip", &shown), ("rule_id", &rule.id)],
    );
    Ok(Unblocked {
        ip: shown,
        rule_id: Some(rule.id),
        removed: true,
        already: false,
        planned: None,
    })
}

/// True for a refusal that says the value is already in the list. The
/// trimmed spec documents no such error; some Cloudflare list endpoints
/// reject duplicate items with a 400, so a retry after a lost answer must
/// not turn into a failure.
fn is_duplicate(e: &Error) -> bool {
    let m = e.message.to_ascii_lowercase();
    e.kind == ErrorKind::InvalidInput && (m.contains("duplicate") || m.contains("already exist"))
}

fn block_domain(input: DomainInput, ctx: &Context) -> Result<DomainBlocked> {
    let domain = parse_domain(&input.domain)?;
    let cloudflare = Cloudflare::connect(ctx)?;
    let list_id = ctx.config("domain_list_id")?.trim().to_string();
    if list_id.is_empty() {
        return Err(Error::permanent("config key `domain_list_id` is empty"));
    }
    let output = |list_name, list_count, already, planned| DomainBlocked {
        domain: domain.clone(),
        list_id: list_id.clone(),
        list_name,
        list_count,
        already,
        planned,
    };
    // The spec offers no read of a list's items, so there is nothing to
    // check first and nothing a dry run may read: plan the PATCH.
    if ctx.dry_run() {
        return Ok(output(None, None, false, Some(true)));
    }
    let mut item = json!({ "value": domain });
    if let Some(reason) = input
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        item["description"] = Value::String(reason.to_string());
    }
    let what = format!("appending `{domain}` to Zero Trust list `{list_id}`");
    let url = cloudflare.url(&format!("gateway/lists/{}", encode(&list_id)));
    let result = match call(
        Request::patch(url).json(&json!({ "append": [item] })),
        &what,
    ) {
        Ok(result) => result,
        Err(e) if is_duplicate(&e) => {
            ctx.log(
                LogLevel::Info,
                "the domain is already listed",
                &[("domain", &domain), ("list_id", &list_id)],
            );
            return Ok(output(None, None, true, None));
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "{} (are config keys `account_id` and `domain_list_id` right?)",
                e.message
            )))
        }
        Err(e) => return Err(e),
    };
    let list: GatewayList = decode(result, &what)?;
    ctx.log(
        LogLevel::Info,
        "Cloudflare appended the domain to the list",
        &[("domain", &domain), ("list_id", &list_id)],
    );
    Ok(output(
        list.name,
        list.count.map(|c| c.max(0.0) as u64),
        false,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::testing::{MockHost, RecordedRequest};
    use soar_plugin_sdk::{Invocation, RetryAfter};

    const BASE: &str = "https://cf.test";
    const ACCOUNT: &str = "699d98642c564d2e855e9661899b7252";
    const LIST: &str = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415";
    const IP: &str = "203.0.113.66";
    const RULE: &str = "92f17202ed8bd63d69a66b86a49a8f6b";

    fn rules_url() -> String {
        format!("{BASE}/client/v4/accounts/{ACCOUNT}/firewall/access_rules/rules")
    }

    fn lookup_url(ip: &str) -> String {
        format!(
            "{}?configuration.target=ip&configuration.value={}",
            rules_url(),
            encode(ip)
        )
    }

    fn rule_url(id: &str) -> String {
        format!("{}/{id}", rules_url())
    }

    fn list_url() -> String {
        format!("{BASE}/client/v4/accounts/{ACCOUNT}/gateway/lists/{LIST}")
    }

    fn ok(result: Value) -> Response {
        Response::json(
            200,
            &json!({"success": true, "errors": [], "messages": [], "result": result}),
        )
    }

    fn failure(status: u16, code: i64, message: &str) -> Response {
        Response::json(
            status,
            &json!({"success": false, "errors": [{"code": code, "message": message}],
                    "messages": [], "result": null}),
        )
    }

    fn rule(mode: &str, ip: &str, notes: &str) -> Value {
        let target = if ip.contains(':') { "ip6" } else { "ip" };
        json!({"id": RULE, "mode": mode, "notes": notes,
               "allowed_modes": ["block", "challenge", "whitelist", "js_challenge", "managed_challenge"],
               "configuration": {"target": target, "value": ip},
               "scope": {"id": ACCOUNT, "type": "organization"},
               "created_on": "2026-11-27T09:00:00Z", "modified_on": "2026-11-27T09:00:00Z"})
    }

    fn listing(rules: Vec<Value>) -> Response {
        let n = rules.len();
        Response::json(
            200,
            &json!({"success": true, "errors": [], "messages": [], "result": rules,
                    "result_info": {"page": 1, "per_page": 20, "count": n, "total_count": n}}),
        )
    }

    fn host() -> MockHost {
        MockHost::new()
            .config("base_url", BASE)
            .config("account_id", ACCOUNT)
            .config("domain_list_id", LIST)
    }

    fn run(mock: MockHost, action: &str, input: Value) -> (Result<Value>, MockHost) {
        run_with(mock, action, input, Invocation::for_test("soar-k1"))
    }

    fn run_with(
        mock: MockHost,
        action: &str,
        input: Value,
        invocation: Invocation,
    ) -> (Result<Value>, MockHost) {
        mock.run(|| plugin().call(action, input, invocation))
    }

    fn dry() -> Invocation {
        Invocation {
            dry_run: true,
            ..Invocation::for_test("soar-k1")
        }
    }

    fn writes(mock: &MockHost) -> Vec<&RecordedRequest> {
        mock.requests()
            .iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    #[test]
    fn block_ip_looks_up_then_posts_one_block_rule() {
        let mock = host()
            .respond("GET", &lookup_url(IP), listing(vec![]))
            .respond(
                "POST",
                &rules_url(),
                ok(rule("block", IP, "phishing C2 [soar:soar-k1]")),
            );
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP, "reason": "phishing C2"}));
        assert_eq!(
            out.unwrap(),
            json!({"ip": IP, "rule_id": RULE, "created": true, "already": false, "owned": true})
        );
        let sent = mock.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            (sent[0].method.as_str(), sent[0].url.as_str()),
            ("GET", lookup_url(IP).as_str())
        );
        for request in sent {
            assert_eq!(
                request.header("authorization"),
                Some("Bearer {{secret:api_token}}")
            );
        }
        assert_eq!(sent[1].method, "POST");
        assert_eq!(sent[1].url, rules_url());
        assert_eq!(sent[1].header("content-type"), Some("application/json"));
        assert_eq!(
            sent[1].json(),
            json!({"mode": "block", "configuration": {"target": "ip", "value": IP},
                   "notes": "phishing C2 [soar:soar-k1]"})
        );
    }

    #[test]
    fn block_ip_without_reason_still_carries_the_key() {
        let mock = host()
            .respond("GET", &lookup_url(IP), listing(vec![]))
            .respond("POST", &rules_url(), ok(rule("block", IP, "x")));
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP}));
        out.unwrap();
        assert_eq!(
            mock.requests()[1].json()["notes"],
            "blocked by soar [soar:soar-k1]"
        );
    }

    #[test]
    fn block_ip_when_a_block_rule_exists_sends_no_write() {
        // Someone else's rule: already blocked, not created by this step.
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            listing(vec![rule("block", IP, "manual block")]),
        );
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP, "reason": "again"}));
        assert_eq!(
            out.unwrap(),
            json!({"ip": IP, "rule_id": RULE, "created": false, "already": true, "owned": false})
        );
        assert!(writes(&mock).is_empty());
        // This step's own rule from an earlier attempt: reported as owned.
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            listing(vec![rule("block", IP, "phishing [soar:soar-k1]")]),
        );
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP}));
        let out = out.unwrap();
        assert_eq!(
            (&out["created"], &out["already"], &out["owned"]),
            (&json!(false), &json!(true), &json!(true))
        );
        assert!(writes(&mock).is_empty());
    }

    #[test]
    fn block_ip_refuses_to_override_an_allow_rule() {
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            listing(vec![rule("whitelist", IP, "partner")]),
        );
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP}));
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(
            err.message.contains("whitelist") && err.message.contains(RULE),
            "{}",
            err.message
        );
        assert!(writes(&mock).is_empty());
    }

    #[test]
    fn lookup_ignores_rules_for_other_values() {
        // A filter that matched loosely must not be taken for this address.
        let mock = host()
            .respond(
                "GET",
                &lookup_url(IP),
                listing(vec![rule("block", "203.0.113.6", "other")]),
            )
            .respond("POST", &rules_url(), ok(rule("block", IP, "x")));
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP}));
        assert_eq!(out.unwrap()["already"], false);
        assert_eq!(writes(&mock).len(), 1);
    }

    #[test]
    fn ipv6_is_searched_by_value_and_blocked_as_ip6() {
        let ip = "2001:db8::cf";
        let lookup = format!("{}?configuration.value=2001%3Adb8%3A%3Acf", rules_url());
        let mock = host().respond("GET", &lookup, listing(vec![])).respond(
            "POST",
            &rules_url(),
            ok(rule("block", ip, "x")),
        );
        let (out, mock) = run(mock, "block_ip", json!({"ip": "2001:DB8:0::CF"}));
        assert_eq!(out.unwrap()["ip"], ip);
        assert_eq!(
            mock.requests()[1].json()["configuration"],
            json!({"target": "ip6", "value": ip})
        );
        let mock = host().respond(
            "GET",
            &lookup,
            listing(vec![rule("block", "2001:DB8::CF", "x")]),
        );
        let out = run(mock, "get_ip_rule", json!({"ip": ip})).0.unwrap();
        assert_eq!(out["blocked"], true);
    }

    #[test]
    fn dry_run_block_plans_without_posting() {
        let mock = host().respond("GET", &lookup_url(IP), listing(vec![]));
        let (out, mock) = run_with(mock, "block_ip", json!({"ip": IP}), dry());
        assert_eq!(
            out.unwrap(),
            json!({"ip": IP, "rule_id": null, "created": false, "already": false, "owned": false, "planned": true})
        );
        assert_eq!(mock.requests().len(), 1);
        assert!(writes(&mock).is_empty());
    }

    #[test]
    fn get_ip_rule_reports_rule_and_effects() {
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            listing(vec![rule("block", IP, "phishing [soar:soar-k1]")]),
        );
        let (out, mock) = run(mock, "get_ip_rule", json!({"ip": IP, "reason": "phishing"}));
        assert_eq!(
            out.unwrap(),
            json!({"ip": IP, "blocked": true,
                   "rule": {"id": RULE, "mode": "block", "notes": "phishing [soar:soar-k1]",
                            "created_on": "2026-11-27T09:00:00Z"},
                   "effects": {"block_ip": true, "unblock_ip": false}})
        );
        assert_eq!(mock.requests().len(), 1);
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            listing(vec![rule("challenge", IP, "")]),
        );
        let out = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap();
        assert_eq!(out["blocked"], false);
        assert_eq!(out["rule"]["mode"], "challenge");
        assert_eq!(
            out["effects"],
            json!({"block_ip": false, "unblock_ip": true})
        );
        let mock = host().respond("GET", &lookup_url(IP), listing(vec![]));
        let out = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap();
        assert_eq!(out["rule"], Value::Null);
        assert_eq!(
            out["effects"],
            json!({"block_ip": false, "unblock_ip": true})
        );
    }

    #[test]
    fn unblock_deletes_the_block_rule_with_no_body() {
        let mock = host()
            .respond(
                "GET",
                &lookup_url(IP),
                listing(vec![rule("block", IP, "x")]),
            )
            .respond("DELETE", &rule_url(RULE), ok(json!({"id": RULE})));
        let (out, mock) = run(mock, "unblock_ip", json!({"ip": IP}));
        assert_eq!(
            out.unwrap(),
            json!({"ip": IP, "rule_id": RULE, "removed": true, "already": false})
        );
        let delete = &mock.requests()[1];
        assert_eq!(delete.method, "DELETE");
        assert_eq!(delete.url, rule_url(RULE));
        assert!(delete.body.is_empty());
        assert_eq!(delete.header("content-type"), None);
        assert_eq!(
            delete.header("authorization"),
            Some("Bearer {{secret:api_token}}")
        );
    }

    #[test]
    fn unblock_without_a_block_rule_sends_nothing() {
        for existing in [vec![], vec![rule("whitelist", IP, "partner")]] {
            let mock = host().respond("GET", &lookup_url(IP), listing(existing));
            let (out, mock) = run(mock, "unblock_ip", json!({"ip": IP}));
            assert_eq!(
                out.unwrap(),
                json!({"ip": IP, "rule_id": null, "removed": false, "already": true})
            );
            assert!(writes(&mock).is_empty());
        }
    }

    #[test]
    fn unblock_dry_run_and_vanished_rule() {
        let found = listing(vec![rule("block", IP, "x")]);
        let mock = host().respond("GET", &lookup_url(IP), found.clone());
        let (out, mock) = run_with(mock, "unblock_ip", json!({"ip": IP}), dry());
        assert_eq!(out.unwrap()["planned"], true);
        assert!(writes(&mock).is_empty());
        let mock = host().respond("GET", &lookup_url(IP), found).respond(
            "DELETE",
            &rule_url(RULE),
            failure(404, 10001, "not found"),
        );
        let out = run(mock, "unblock_ip", json!({"ip": IP})).0.unwrap();
        assert_eq!(
            (out["removed"].clone(), out["already"].clone()),
            (json!(false), json!(true))
        );
    }

    #[test]
    fn block_domain_patches_the_list_with_an_append() {
        let list = json!({"id": LIST, "name": "soar blocked domains", "type": "DOMAIN",
                          "count": 3, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-11-27T09:00:00Z"});
        let mock = host().respond("PATCH", &list_url(), ok(list));
        let (out, mock) = run(
            mock,
            "block_domain",
            json!({"domain": "Evil.Example.", "reason": "phishing kit"}),
        );
        assert_eq!(
            out.unwrap(),
            json!({"domain": "evil.example", "list_id": LIST, "list_name": "soar blocked domains",
                   "list_count": 3, "already": false})
        );
        let patch = &mock.requests()[0];
        assert_eq!(mock.requests().len(), 1);
        assert_eq!(patch.method, "PATCH");
        assert_eq!(
            patch.json(),
            json!({"append": [{"value": "evil.example", "description": "phishing kit"}]})
        );
        assert_eq!(
            patch.header("authorization"),
            Some("Bearer {{secret:api_token}}")
        );
    }

    #[test]
    fn block_domain_treats_a_duplicate_refusal_as_done_and_plans_in_dry_run() {
        let mock = host().respond(
            "PATCH",
            &list_url(),
            failure(400, 2045, "duplicate list item: evil.example"),
        );
        let out = run(mock, "block_domain", json!({"domain": "evil.example"}))
            .0
            .unwrap();
        assert_eq!(out["already"], true);
        let (out, mock) = run_with(
            host(),
            "block_domain",
            json!({"domain": "evil.example"}),
            dry(),
        );
        assert_eq!(out.unwrap()["planned"], true);
        assert!(mock.requests().is_empty());
        // Any other 400 is the input's fault.
        let mock = host().respond("PATCH", &list_url(), failure(400, 1003, "invalid value"));
        let err = run(mock, "block_domain", json!({"domain": "evil.example"}))
            .0
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message.contains("[1003] invalid value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn block_domain_unknown_list_names_the_config_keys() {
        let mock = host().respond(
            "PATCH",
            &list_url(),
            failure(
                404,
                7003,
                "Could not route to /client/v4/accounts/x/gateway/lists/y",
            ),
        );
        let err = run(mock, "block_domain", json!({"domain": "evil.example"}))
            .0
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("domain_list_id"), "{}", err.message);
    }

    #[test]
    fn unauthorized_is_typed_with_cloudflare_codes() {
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            failure(401, 10000, "Authentication error"),
        );
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP}));
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        assert!(
            err.message.contains("[10000] Authentication error"),
            "{}",
            err.message
        );
        assert_eq!(mock.requests().len(), 1);
        // `success: false` under HTTP 200 is a failure too.
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            failure(200, 10000, "Authentication error"),
        );
        let err = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        let mock = host().respond("GET", &lookup_url(IP), failure(200, 1000, "odd"));
        let err = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
    }

    #[test]
    fn unknown_account_is_not_found_naming_the_config_key() {
        let mock = host().respond(
            "GET",
            &lookup_url(IP),
            failure(404, 7003, "Could not route to /client/v4/accounts/..."),
        );
        let err = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("account_id"), "{}", err.message);
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let limited = failure(429, 10429, "rate limited").with_header("Retry-After", "30");
        let mock = host().respond("GET", &lookup_url(IP), limited.clone());
        let err = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(30_000)))
        );
        let mock = host()
            .respond("GET", &lookup_url(IP), listing(vec![]))
            .respond("POST", &rules_url(), limited.clone());
        let err = run(mock, "block_ip", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(30_000)))
        );
        let mock = host().respond("PATCH", &list_url(), limited);
        let err = run(mock, "block_domain", json!({"domain": "evil.example"}))
            .0
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(30_000)))
        );
    }

    #[test]
    fn server_errors_are_unavailable_and_garbage_is_permanent() {
        for answer in [
            failure(503, 1000, "down"),
            Response::bytes(502, "<html>bad gateway"),
        ] {
            let mock = host()
                .respond("GET", &lookup_url(IP), listing(vec![]))
                .respond("POST", &rules_url(), answer);
            let err = run(mock, "block_ip", json!({"ip": IP})).0.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unavailable);
            assert!(err.message.contains(IP), "{}", err.message);
        }
        let mock = host().respond("GET", &lookup_url(IP), Response::bytes(200, "<html>"));
        let err = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        let mock = host().respond("GET", &lookup_url(IP), ok(json!({"not": "a list"})));
        let err = run(mock, "get_ip_rule", json!({"ip": IP})).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("malformed"), "{}", err.message);
    }

    #[test]
    fn bad_input_and_missing_config_send_nothing() {
        for (action, input) in [
            ("block_ip", json!({"ip": "not-an-ip"})),
            ("unblock_ip", json!({"ip": "10.0.0.0/8"})),
            ("block_domain", json!({"domain": "https://evil.example/x"})),
            ("block_domain", json!({"domain": "a..b"})),
            ("block_ip", json!({"ip": IP, "mode": "whitelist"})),
        ] {
            let (out, mock) = run(host(), action, input.clone());
            assert_eq!(out.unwrap_err().kind, ErrorKind::InvalidInput, "{input}");
            assert!(mock.requests().is_empty());
        }
        let mock = MockHost::new().config("base_url", BASE);
        let (out, mock) = run(mock, "block_ip", json!({"ip": IP}));
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("account_id"), "{}", err.message);
        assert!(mock.requests().is_empty());
        let mock = MockHost::new()
            .config("base_url", BASE)
            .config("account_id", ACCOUNT);
        let err = run(mock, "block_domain", json!({"domain": "evil.example"}))
            .0
            .unwrap_err();
        assert!(err.message.contains("domain_list_id"), "{}", err.message);
    }

    #[test]
    fn manifest_marks_destructive_actions_targets_and_probes() {
        let manifest = plugin().manifest();
        let action = |name: &str| {
            manifest
                .actions
                .iter()
                .find(|a| a.name == name)
                .unwrap_or_else(|| panic!("no action {name}"))
                .clone()
        };
        let get = action("get_ip_rule");
        assert!(!get.destructive && get.idempotent && get.probe.is_none());
        for name in ["block_ip", "unblock_ip"] {
            let a = action(name);
            assert!(a.destructive && a.idempotent, "{name}");
            assert_eq!(a.probe.as_deref(), Some("get_ip_rule"));
            assert_eq!(
                (a.targets[0].field.as_str(), a.targets[0].kind),
                ("ip", TargetKind::Ip)
            );
            assert_eq!(a.input_schema["additionalProperties"], false);
        }
        let domain = action("block_domain");
        assert!(domain.destructive && domain.idempotent);
        assert_eq!(domain.targets[0].kind, TargetKind::Domain);
        assert_eq!(manifest.secrets, ["api_token"]);
        assert_eq!(
            manifest.config_keys,
            ["base_url", "account_id", "domain_list_id"]
        );
    }
}
