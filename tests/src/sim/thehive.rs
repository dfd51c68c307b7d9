//! Simulated TheHive 5 (`/api/v1/...`, shapes from `thehive-case.yaml`):
//! cases with incrementing numbers and tags, their comments and observables,
//! and the query API for `listCase` optionally followed by a `filter` with
//! `_eq` on `tags` (what `open_case` sends), plus `getCase` followed by
//! `comments` or `observables` (to check what was added). Errors are
//! TheHive's `{type, message}`.

use super::{header, json_response};
use serde_json::{json, Value};
use wiremock::{Request, ResponseTemplate};

/// The API key the simulator accepts (`Authorization: Bearer ...`).
pub const THEHIVE_API_KEY: &str = "demo-thehive-key";
/// A case the simulator starts with.
pub const THEHIVE_CASE_ID: &str = "~40960";
/// That case's number (usable in place of its `_id` in URLs).
pub const THEHIVE_CASE_NUMBER: u64 = 1;

/// The user every object is created by.
const USER: &str = "soar@thehive.local";
/// Epoch milliseconds of the simulator's clock at tick 0.
const EPOCH_MS: u64 = 1_795_000_000_000;
/// TheHive's default observable data types.
const DATA_TYPES: [&str; 16] = [
    "autonomous-system",
    "domain",
    "file",
    "filename",
    "fqdn",
    "hash",
    "hostname",
    "ip",
    "mail",
    "mail-subject",
    "other",
    "regexp",
    "registry",
    "uri_path",
    "url",
    "user-agent",
];

/// One case.
struct Case {
    id: String,
    number: u64,
    title: String,
    description: String,
    severity: u64,
    tlp: u64,
    pap: u64,
    tags: Vec<String>,
    created_at: u64,
    comments: Vec<Value>,
    observables: Vec<Value>,
}

/// The organisation's cases.
pub(super) struct State {
    cases: Vec<Case>,
    /// Drives ids and timestamps, so answers are reproducible.
    tick: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            cases: vec![Case {
                id: THEHIVE_CASE_ID.into(),
                number: THEHIVE_CASE_NUMBER,
                title: "Suspicious login from new country".into(),
                description: "Seeded by the simulator.".into(),
                severity: 2,
                tlp: 2,
                pap: 2,
                tags: vec!["seeded".into()],
                created_at: EPOCH_MS,
                comments: Vec::new(),
                observables: Vec::new(),
            }],
            tick: 0,
        }
    }
}

impl State {
    /// A fresh `~`-prefixed id and its creation time.
    fn next(&mut self) -> (String, u64) {
        self.tick += 1;
        (
            format!("~{}", 40960 + 4096 * self.tick),
            EPOCH_MS + 1000 * self.tick,
        )
    }

    /// A case by `_id` or number, as TheHive resolves them in URLs.
    fn case_mut(&mut self, reference: &str) -> Option<&mut Case> {
        let number = reference.parse::<u64>().ok();
        self.cases
            .iter_mut()
            .find(|c| c.id == reference || Some(c.number) == number)
    }
}

fn error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    json_response(status, json!({"type": kind, "message": message}))
}

fn bad_request(message: &str) -> ResponseTemplate {
    error(400, "BadRequest", message)
}

fn label(value: u64, labels: &[&str]) -> String {
    labels
        .get(value as usize)
        .copied()
        .unwrap_or("UNKNOWN")
        .to_string()
}

fn case_json(case: &Case) -> Value {
    json!({
        "_id": case.id,
        "_type": "Case",
        "_createdBy": USER,
        "_createdAt": case.created_at,
        "number": case.number,
        "title": case.title,
        "description": case.description,
        "severity": case.severity,
        "severityLabel": label(case.severity, &["", "LOW", "MEDIUM", "HIGH", "CRITICAL"]),
        "startDate": case.created_at,
        "tags": case.tags,
        "flag": false,
        "tlp": case.tlp,
        "tlpLabel": label(case.tlp, &["WHITE", "GREEN", "AMBER", "RED", "AMBER+STRICT"]),
        "pap": case.pap,
        "papLabel": label(case.pap, &["WHITE", "GREEN", "AMBER", "RED"]),
        "status": "New",
        "stage": "New",
        "access": {"_kind": "OrganisationAccessKind"},
        "customFields": [],
        "extraData": {},
        "newDate": case.created_at,
        "timeToDetect": 0,
    })
}

pub(super) fn respond(state: &mut State, request: &Request) -> ResponseTemplate {
    if header(request, "authorization") != format!("Bearer {THEHIVE_API_KEY}") {
        return error(401, "AuthenticationError", "Authentication failure");
    }
    let path = request.url.path();
    let segments: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let body = || serde_json::from_slice::<Value>(&request.body).ok();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["query"]) => match body() {
            Some(body) => query(state, &body),
            None => bad_request("Invalid json"),
        },
        ("POST", ["case"]) => match body() {
            Some(body) => create_case(state, &body),
            None => bad_request("Invalid json"),
        },
        ("GET", ["case", reference]) => match state.case_mut(reference) {
            Some(case) => json_response(200, case_json(case)),
            None => case_not_found(reference),
        },
        ("POST", ["case", reference, "comment"]) => match body() {
            Some(body) => add_comment(state, reference, &body),
            None => bad_request("Invalid json"),
        },
        ("POST", ["case", reference, "observable"]) => match body() {
            Some(body) => add_observable(state, reference, &body),
            None => bad_request("Invalid json"),
        },
        (method, _) => error(
            404,
            "NotFoundError",
            &format!("{method} {path} is not an endpoint of this simulator"),
        ),
    }
}

fn case_not_found(reference: &str) -> ResponseTemplate {
    error(404, "NotFoundError", &format!("Case {reference} not found"))
}

/// `POST /api/v1/query`: a JSON array. Understands
/// `[{"_name":"listCase"}]`, optionally followed by
/// `{"_name":"filter","_eq":{"_field":"tags","_value":TAG}}` (cases, oldest
/// first), and `[{"_name":"getCase","idOrName":ID},{"_name":"comments"}]` (or
/// `"observables"`). Any other query is refused.
fn query(state: &mut State, body: &Value) -> ResponseTemplate {
    let unsupported = || {
        bad_request(&format!(
            "unsupported query {body}: the simulator answers listCase (optionally followed by \
             a filter with _eq on tags) and getCase followed by comments or observables"
        ))
    };
    let Some(steps) = body["query"].as_array() else {
        return unsupported();
    };
    let list_case = json!({"_name": "listCase"});
    match steps.as_slice() {
        [list] if list == &list_case => list_cases(state, None),
        [list, filter] if list == &list_case => {
            let eq = &filter["_eq"];
            let shape_ok = filter["_name"] == "filter"
                && filter.as_object().map(|o| o.len()) == Some(2)
                && eq["_field"] == "tags"
                && eq.as_object().map(|o| o.len()) == Some(2);
            match eq["_value"].as_str() {
                Some(tag) if shape_ok => list_cases(state, Some(tag)),
                _ => unsupported(),
            }
        }
        [get, what] if get["_name"] == "getCase" => {
            let Some(reference) = get["idOrName"].as_str() else {
                return unsupported();
            };
            let Some(case) = state.case_mut(reference) else {
                return case_not_found(reference);
            };
            match what["_name"].as_str() {
                Some("comments") => json_response(200, Value::Array(case.comments.clone())),
                Some("observables") => json_response(200, Value::Array(case.observables.clone())),
                _ => unsupported(),
            }
        }
        _ => unsupported(),
    }
}

/// All cases, or those carrying `tag`, oldest first.
fn list_cases(state: &State, tag: Option<&str>) -> ResponseTemplate {
    let cases: Vec<Value> = state
        .cases
        .iter()
        .filter(|c| tag.is_none_or(|t| c.tags.iter().any(|x| x == t)))
        .map(case_json)
        .collect();
    json_response(200, Value::Array(cases))
}

/// An optional integer field within `min..=max`, or the spec's default.
fn level(body: &Value, field: &str, min: u64, max: u64, default: u64) -> Result<u64, String> {
    match &body[field] {
        Value::Null => Ok(default),
        v => v
            .as_u64()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("Invalid {field}: {v} (expected {min} to {max})")),
    }
}

/// Tags: an array of 1- to 128-character strings, duplicates dropped.
fn tags(body: &Value) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    match &body["tags"] {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                match item.as_str() {
                    Some(t) if (1..=128).contains(&t.chars().count()) => {
                        if !out.iter().any(|o| o == t) {
                            out.push(t.to_string());
                        }
                    }
                    _ => return Err(format!("Invalid tag: {item}")),
                }
            }
        }
        other => return Err(format!("Invalid tags: {other}")),
    }
    Ok(out)
}

/// `POST /api/v1/case` (`InputCreateCase` -> 201 `OutputCase`).
fn create_case(state: &mut State, body: &Value) -> ResponseTemplate {
    let title = match body["title"].as_str() {
        Some(t) if (1..=512).contains(&t.chars().count()) => t.to_string(),
        _ => return bad_request("Invalid title: a string of 1 to 512 characters is required"),
    };
    let Some(description) = body["description"].as_str() else {
        return bad_request("Invalid description: a string is required");
    };
    let fields = (|| {
        Ok::<_, String>((
            level(body, "severity", 1, 4, 2)?,
            level(body, "tlp", 0, 4, 2)?,
            level(body, "pap", 0, 3, 2)?,
            tags(body)?,
        ))
    })();
    let (severity, tlp, pap, tags) = match fields {
        Ok(fields) => fields,
        Err(message) => return bad_request(&message),
    };
    let (id, created_at) = state.next();
    let number = state.cases.iter().map(|c| c.number).max().unwrap_or(0) + 1;
    let case = Case {
        id,
        number,
        title,
        description: description.to_string(),
        severity,
        tlp,
        pap,
        tags,
        created_at,
        comments: Vec::new(),
        observables: Vec::new(),
    };
    let answer = case_json(&case);
    state.cases.push(case);
    json_response(201, answer)
}

/// `POST /api/v1/case/{id}/comment` (`InputComment` -> 201 `OutputComment`).
fn add_comment(state: &mut State, reference: &str, body: &Value) -> ResponseTemplate {
    let Some(message) = body["message"].as_str().filter(|m| !m.is_empty()) else {
        return bad_request("Invalid message: a non-empty string is required");
    };
    if state.case_mut(reference).is_none() {
        return case_not_found(reference);
    }
    let (id, created_at) = state.next();
    let comment = json!({
        "_id": id, "_type": "Comment", "createdBy": USER, "createdAt": created_at,
        "message": message, "isEdited": false, "extraData": {}, "external": false,
    });
    if let Some(case) = state.case_mut(reference) {
        case.comments.push(comment.clone());
    }
    json_response(201, comment)
}

/// `POST /api/v1/case/{id}/observable` (`InputCreateObservable` -> 201, a
/// list of `OutputObservable`: one per value when `data` is an array).
fn add_observable(state: &mut State, reference: &str, body: &Value) -> ResponseTemplate {
    let data_type = body["dataType"].as_str().unwrap_or("");
    if !DATA_TYPES.contains(&data_type) {
        return bad_request(&format!("Invalid dataType: `{data_type}`"));
    }
    let values: Vec<String> = match &body["data"] {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) if !s.is_empty() => out.push(s.to_string()),
                    _ => return bad_request(&format!("Invalid data: {item}")),
                }
            }
            out
        }
        _ => {
            return bad_request(
                "Invalid data: a string or an array of strings is required (attachments are not simulated)",
            )
        }
    };
    let fields = (|| {
        Ok::<_, String>((
            level(body, "tlp", 0, 4, 2)?,
            level(body, "pap", 0, 3, 2)?,
            tags(body)?,
        ))
    })();
    let (tlp, pap, tags) = match fields {
        Ok(fields) => fields,
        Err(message) => return bad_request(&message),
    };
    let ioc = match &body["ioc"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        other => return bad_request(&format!("Invalid ioc: {other}")),
    };
    let message = body["message"].as_str();
    if state.case_mut(reference).is_none() {
        return case_not_found(reference);
    }
    let mut created = Vec::new();
    for data in values {
        let (id, created_at) = state.next();
        let mut observable = json!({
            "_id": id, "_type": "Observable", "_createdBy": USER, "_createdAt": created_at,
            "dataType": data_type, "data": data, "startDate": created_at,
            "tlp": tlp, "tlpLabel": label(tlp, &["WHITE", "GREEN", "AMBER", "RED", "AMBER+STRICT"]),
            "pap": pap, "papLabel": label(pap, &["WHITE", "GREEN", "AMBER", "RED"]),
            "tags": tags, "ioc": ioc, "sighted": false, "reports": {}, "extraData": {},
            "ignoreSimilarity": false, "external": false,
        });
        if let Some(message) = message {
            observable["message"] = Value::String(message.to_string());
        }
        created.push(observable);
    }
    if let Some(case) = state.case_mut(reference) {
        case.observables.extend(created.iter().cloned());
    }
    json_response(201, Value::Array(created))
}
