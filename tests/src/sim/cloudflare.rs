//! Simulated Cloudflare API v4 (`/client/v4/...`, shapes from
//! `cloudflare-firewall-gateway.json`): one account's IP Access rules and one
//! Zero Trust Gateway domain list, every answer in Cloudflare's
//! `{success, errors, messages, result}` envelope.

use super::{header, json_response, query};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wiremock::{Request, ResponseTemplate};

/// The API token the simulator accepts (`Authorization: Bearer ...`).
pub const CLOUDFLARE_TOKEN: &str = "demo-cloudflare-token";
/// The one account the simulator knows.
pub const CLOUDFLARE_ACCOUNT_ID: &str = "699d98642c564d2e855e9661899b7252";
/// The account's Zero Trust Gateway list of blocked domains (type `DOMAIN`).
pub const CLOUDFLARE_DOMAIN_LIST_ID: &str = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415";
/// An address with a seeded `whitelist` rule (a partner): blocking it is a conflict.
pub const CLOUDFLARE_ALLOWED_IP: &str = "198.51.100.10";
/// The id of that seeded `whitelist` rule.
pub const CLOUDFLARE_ALLOW_RULE_ID: &str = "5eed0000000000000000000000000001";
/// A domain the seeded list already holds.
pub const CLOUDFLARE_LISTED_DOMAIN: &str = "known-bad.example";

const MODES: [&str; 5] = [
    "block",
    "challenge",
    "whitelist",
    "js_challenge",
    "managed_challenge",
];

/// One account-level IP Access rule.
struct Rule {
    id: String,
    mode: String,
    target: String,
    value: String,
    notes: String,
    created_on: String,
    modified_on: String,
}

/// One item of the Zero Trust list.
struct Item {
    value: String,
    description: Option<String>,
    created_at: String,
}

/// The account's rules and list.
pub(super) struct State {
    rules: Vec<Rule>,
    items: Vec<Item>,
    list_updated_at: String,
    /// Drives ids and timestamps, so answers are reproducible.
    tick: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            rules: vec![Rule {
                id: CLOUDFLARE_ALLOW_RULE_ID.into(),
                mode: "whitelist".into(),
                target: "ip".into(),
                value: CLOUDFLARE_ALLOWED_IP.into(),
                notes: "partner VPN egress: never block".into(),
                created_on: timestamp(0),
                modified_on: timestamp(0),
            }],
            items: vec![Item {
                value: CLOUDFLARE_LISTED_DOMAIN.into(),
                description: Some("seeded".into()),
                created_at: timestamp(0),
            }],
            list_updated_at: timestamp(0),
            tick: 1,
        }
    }
}

impl State {
    fn next(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

/// A reproducible RFC 3339 time, `n` seconds after the simulator's epoch.
fn timestamp(n: u64) -> String {
    format!(
        "2026-11-27T{:02}:{:02}:{:02}Z",
        (9 + n / 3600) % 24,
        (n / 60) % 60,
        n % 60
    )
}

fn success(result: Value) -> ResponseTemplate {
    json_response(
        200,
        json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn failure(status: u16, code: u32, message: &str) -> ResponseTemplate {
    json_response(
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}],
               "messages": [], "result": null}),
    )
}

/// Cloudflare's answer for an unknown account, list, rule or route.
fn no_route(path: &str) -> ResponseTemplate {
    failure(
        404,
        7003,
        &format!("Could not route to {path}, perhaps your object identifier is invalid?"),
    )
}

fn rule_json(rule: &Rule) -> Value {
    json!({
        "id": rule.id,
        "paused": false,
        "mode": rule.mode,
        "allowed_modes": MODES,
        "configuration": {"target": rule.target, "value": rule.value},
        "notes": rule.notes,
        "scope": {"id": CLOUDFLARE_ACCOUNT_ID, "type": "organization"},
        "created_on": rule.created_on,
        "modified_on": rule.modified_on,
    })
}

fn list_json(state: &State) -> Value {
    json!({
        "id": CLOUDFLARE_DOMAIN_LIST_ID,
        "name": "soar blocked domains",
        "description": "Domains blocked by playbooks",
        "type": "DOMAIN",
        "count": state.items.len(),
        "created_at": timestamp(0),
        "updated_at": state.list_updated_at,
    })
}

/// Values match as addresses when both parse (so IPv6 spelling does not
/// matter), else as case-insensitive text.
fn same_value(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

pub(super) fn respond(state: &mut State, request: &Request) -> ResponseTemplate {
    if header(request, "authorization") != format!("Bearer {CLOUDFLARE_TOKEN}") {
        return failure(401, 10000, "Authentication error");
    }
    let path = request.url.path();
    let Some(rest) = path.strip_prefix("/client/v4/accounts/") else {
        return no_route(path);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (account, segments) = match segments.split_first() {
        Some((account, segments)) => (*account, segments),
        None => return no_route(path),
    };
    if account != CLOUDFLARE_ACCOUNT_ID {
        return no_route(path);
    }
    match (request.method.as_str(), segments) {
        ("GET", ["firewall", "access_rules", "rules"]) => list_rules(state, request),
        ("POST", ["firewall", "access_rules", "rules"]) => create_rule(state, request),
        ("GET", ["firewall", "access_rules", "rules", id]) => {
            match state.rules.iter().find(|r| r.id == *id) {
                Some(rule) => success(rule_json(rule)),
                None => no_route(path),
            }
        }
        // The spec declares a body for this DELETE; the API needs none and
        // ignores any.
        ("DELETE", ["firewall", "access_rules", "rules", id]) => {
            match state.rules.iter().position(|r| r.id == *id) {
                Some(i) => {
                    let rule = state.rules.remove(i);
                    success(json!({ "id": rule.id }))
                }
                None => no_route(path),
            }
        }
        ("GET", ["gateway", "lists", id]) if *id == CLOUDFLARE_DOMAIN_LIST_ID => {
            success(list_json(state))
        }
        ("PATCH", ["gateway", "lists", id]) if *id == CLOUDFLARE_DOMAIN_LIST_ID => {
            patch_list(state, request)
        }
        // Not in the trimmed spec (the real API has it): lets tests and the
        // demo see what the list holds.
        ("GET", ["gateway", "lists", id, "items"]) if *id == CLOUDFLARE_DOMAIN_LIST_ID => {
            let items: Vec<Value> = state
                .items
                .iter()
                .map(|i| json!({"value": i.value, "description": i.description, "created_at": i.created_at}))
                .collect();
            let n = items.len();
            json_response(
                200,
                json!({"success": true, "errors": [], "messages": [], "result": items,
                       "result_info": {"page": 1, "per_page": n, "count": n, "total_count": n}}),
            )
        }
        _ => no_route(path),
    }
}

/// `GET .../rules`: the spec's filters (`mode`, `configuration.target`,
/// `configuration.value`, `notes`, `match`) and pagination.
fn list_rules(state: &State, request: &Request) -> ResponseTemplate {
    let mode = query(request, "mode");
    let target = query(request, "configuration.target");
    let value = query(request, "configuration.value");
    let notes = query(request, "notes").map(|n| n.to_lowercase());
    let any = query(request, "match").as_deref() == Some("any");
    if let Some(t) = &target {
        if !["ip", "ip_range", "asn", "country"].contains(&t.as_str()) {
            return failure(400, 10001, &format!("invalid configuration.target `{t}`"));
        }
    }
    let page = query(request, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per_page = query(request, "per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let matching: Vec<&Rule> = state
        .rules
        .iter()
        .filter(|r| {
            let tests = [
                mode.as_ref().map(|m| &r.mode == m),
                target.as_ref().map(|t| &r.target == t),
                value.as_ref().map(|v| same_value(&r.value, v)),
                notes
                    .as_ref()
                    .map(|n| r.notes.to_lowercase().contains(n.as_str())),
            ];
            let mut given = tests.iter().flatten().peekable();
            if given.peek().is_none() {
                return true;
            }
            if any {
                given.any(|ok| *ok)
            } else {
                given.all(|ok| *ok)
            }
        })
        .collect();
    let total = matching.len();
    let shown: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(rule_json)
        .collect();
    json_response(
        200,
        json!({"success": true, "errors": [], "messages": [], "result": shown,
               "result_info": {"page": page, "per_page": per_page, "count": shown.len(),
                               "total_count": total}}),
    )
}

/// `POST .../rules`: validates mode and configuration, refuses a second
/// rule for the same target and value, as Cloudflare does.
fn create_rule(state: &mut State, request: &Request) -> ResponseTemplate {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(_) => return failure(400, 10026, "request body is not valid JSON"),
    };
    let mode = body["mode"].as_str().unwrap_or("");
    if !MODES.contains(&mode) {
        return failure(
            400,
            10014,
            &format!("firewallaccessrules.api.validation_error: invalid mode `{mode}`"),
        );
    }
    let target = body["configuration"]["target"].as_str().unwrap_or("");
    let value = body["configuration"]["value"].as_str().unwrap_or("");
    let valid = match target {
        "ip" => value.parse::<Ipv4Addr>().is_ok(),
        "ip6" => value.parse::<Ipv6Addr>().is_ok(),
        "ip_range" => value.contains('/'),
        "asn" | "country" => !value.is_empty(),
        _ => false,
    };
    if !valid {
        return failure(
            400,
            10014,
            &format!(
                "firewallaccessrules.api.validation_error: invalid configuration `{target}` = `{value}`"
            ),
        );
    }
    let notes = match &body["notes"] {
        Value::Null => String::new(),
        Value::String(n) => n.clone(),
        _ => return failure(400, 10014, "notes must be a string"),
    };
    if state
        .rules
        .iter()
        .any(|r| r.target == target && same_value(&r.value, value))
    {
        return failure(400, 10009, "firewallaccessrules.api.duplicate_of_existing");
    }
    let n = state.next();
    let rule = Rule {
        id: format!("{:032x}", (0xc0ffee_u128 << 104) | u128::from(n)),
        mode: mode.into(),
        target: target.into(),
        value: value.into(),
        notes,
        created_on: timestamp(n),
        modified_on: timestamp(n),
    };
    let answer = rule_json(&rule);
    state.rules.push(rule);
    success(answer)
}

/// `PATCH .../gateway/lists/{id}`: `append` items and `remove` values.
/// Appending a value the list already holds keeps one copy and succeeds
/// (the spec does not say what Cloudflare does; the connector copes with a
/// duplicate refusal too).
fn patch_list(state: &mut State, request: &Request) -> ResponseTemplate {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(Value::Object(body)) => Value::Object(body),
        _ => return failure(400, 10026, "request body must be a JSON object"),
    };
    let append = body["append"].as_array().cloned().unwrap_or_default();
    let remove = body["remove"].as_array().cloned().unwrap_or_default();
    let mut added = Vec::new();
    for item in &append {
        let Some(value) = item["value"].as_str().filter(|v| is_domain(v)) else {
            return failure(400, 2034, &format!("invalid DOMAIN list item: {item}"));
        };
        added.push(Item {
            value: value.to_string(),
            description: item["description"].as_str().map(String::from),
            created_at: String::new(),
        });
    }
    let mut removed = Vec::new();
    for value in &remove {
        let Some(value) = value.as_str() else {
            return failure(400, 2034, &format!("invalid list item value: {value}"));
        };
        removed.push(value.to_string());
    }
    let n = state.next();
    state
        .items
        .retain(|i| !removed.iter().any(|r| r.eq_ignore_ascii_case(&i.value)));
    for mut item in added {
        if !state
            .items
            .iter()
            .any(|i| i.value.eq_ignore_ascii_case(&item.value))
        {
            item.created_at = timestamp(n);
            state.items.push(item);
        }
    }
    state.list_updated_at = timestamp(n);
    success(list_json(state))
}

/// What a `DOMAIN` list accepts: ASCII letters, digits, `-`, `_` and `.`,
/// no empty label.
fn is_domain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value.split('.').all(|label| !label.is_empty())
}
