//! `cases`: TheHive 5 case management. Opens a case once per step (tagged
//! with the step's idempotency key and found by it on a retry), and adds
//! comments and observables to cases.

use soar_plugin_sdk::http::{encode, join, Request, Response};
use soar_plugin_sdk::{
    export_plugin, json, Action, Context, Deserialize, Error, JsonSchema, LogLevel, Plugin, Result,
    Serialize, Value,
};

/// The connector's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "cases",
        env!("CARGO_PKG_VERSION"),
        "TheHive 5: open cases, add comments and observables",
    )
    .secret("api_key")
    .config_key("base_url")
    .action(
        Action::new(
            "open_case",
            "Open a case; a retry with the same idempotency key finds the case it opened instead of opening another",
            open_case,
        )
        .idempotent(),
    )
    .action(Action::new(
        "add_comment",
        "Add a comment to a case",
        add_comment,
    ))
    .action(Action::new(
        "add_observable",
        "Add an observable (IP, domain, hash, URL...) to a case",
        add_observable,
    ))
}

export_plugin!(plugin);

/// Input of `open_case`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCaseInput {
    /// Case title.
    #[schemars(length(min = 1, max = 512))]
    pub title: String,
    /// Case description (markdown).
    #[schemars(length(max = 1048576))]
    pub description: String,
    /// 1 low, 2 medium, 3 high, 4 critical (default 2).
    #[serde(default)]
    #[schemars(range(min = 1, max = 4))]
    pub severity: Option<u8>,
    /// Tags; the connector adds one derived from the idempotency key.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Traffic Light Protocol: 0 white/clear, 1 green, 2 amber, 3 red, 4 amber+strict (default 2).
    #[serde(default)]
    #[schemars(range(min = 0, max = 4))]
    pub tlp: Option<u8>,
    /// Permissible Actions Protocol: 0 white, 1 green, 2 amber, 3 red (default 2).
    #[serde(default)]
    #[schemars(range(min = 0, max = 3))]
    pub pap: Option<u8>,
}

/// Input of `add_comment`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// The case's `_id` (e.g. `~41000`) or number.
    #[schemars(length(min = 1))]
    pub case_id: String,
    /// Comment text (markdown).
    #[schemars(length(min = 1, max = 1048576))]
    pub message: String,
}

/// Input of `add_observable`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservableInput {
    /// The case's `_id` (e.g. `~41000`) or number.
    #[schemars(length(min = 1))]
    pub case_id: String,
    /// TheHive data type: `ip`, `domain`, `fqdn`, `url`, `hash`, `mail`, `filename`, `other`...
    #[schemars(length(min = 1, max = 64))]
    pub data_type: String,
    /// The value.
    #[schemars(length(min = 1, max = 4096))]
    pub data: String,
    /// Description shown with the observable.
    #[serde(default)]
    pub message: Option<String>,
    /// Traffic Light Protocol, 0 to 4 (TheHive's default is 2).
    #[serde(default)]
    #[schemars(range(min = 0, max = 4))]
    pub tlp: Option<u8>,
    /// Whether it is an indicator of compromise (TheHive's default is false).
    #[serde(default)]
    pub ioc: Option<bool>,
}

/// Output of `open_case`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OpenedCase {
    /// The case's `_id` (absent in a dry run).
    pub case_id: Option<String>,
    /// The case's number, as shown in TheHive (absent in a dry run).
    pub number: Option<u64>,
    /// True when this call created the case.
    pub created: bool,
    /// True when the case already existed (opened by an earlier attempt of
    /// this step, found by its key tag): nothing was created.
    pub already: bool,
    /// The tag that ties the case to this step's idempotency key.
    pub key_tag: String,
    /// The case's status, as TheHive reports it.
    pub status: Option<String>,
    /// Present and true in a dry run: nothing was looked up or created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// Output of `add_comment`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Comment {
    /// The case, as given.
    pub case_id: String,
    /// The new comment's `_id` (absent in a dry run).
    pub comment_id: Option<String>,
    /// Present and true in a dry run: the comment was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// Output of `add_observable`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Observables {
    /// The case, as given.
    pub case_id: String,
    /// `_id`s of the observables TheHive created (it answers with a list).
    pub observable_ids: Vec<String>,
    /// Present and true in a dry run: the observable was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// What we read of TheHive's `OutputCase`.
#[derive(Deserialize)]
struct VendorCase {
    #[serde(rename = "_id")]
    id: String,
    number: u64,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// What we read of `OutputComment` and `OutputObservable`.
#[derive(Deserialize)]
struct Created {
    #[serde(rename = "_id")]
    id: String,
}

/// TheHive's error body.
#[derive(Deserialize)]
struct HiveError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Tags are 1 to 128 characters.
const MAX_TAG: usize = 128;

/// The tag that marks the case opened under idempotency key `key`.
fn key_tag(key: &str) -> Result<String> {
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::permanent(
            "open_case needs an idempotency key to find a case it opened before; the invocation has none",
        ));
    }
    let tag = format!("soar-key:{key}");
    if tag.chars().count() > MAX_TAG {
        return Err(Error::permanent(format!(
            "the idempotency key `{key}` is too long for a TheHive tag ({MAX_TAG} characters at most)"
        )));
    }
    Ok(tag)
}

/// The typed error for a non-2xx answer, naming the call and TheHive's
/// `type` and `message`; the kind (and any `Retry-After`) comes from the status.
fn status_error(response: &Response, what: &str) -> Error {
    let mapped = Error::from_response(response);
    let message = match response.json_body::<HiveError>() {
        Ok(e) if !e.kind.is_empty() || !e.message.is_empty() => format!(
            "TheHive answered HTTP {} to {what}: {}: {}",
            response.status, e.kind, e.message
        ),
        _ => format!("{what} failed: {}", mapped.message),
    };
    Error::new(mapped.kind, message)
}

/// POSTs `body` to `path` with the API key and parses a 2xx JSON answer.
fn post<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    path: &str,
    body: &Value,
    what: &str,
) -> Result<T> {
    let url = join(&ctx.config("base_url")?, path);
    let response = Request::post(url)
        .bearer_secret("api_key")
        .header("accept", "application/json")
        .json(body)
        .send()?;
    if !response.is_success() {
        return Err(status_error(&response, what));
    }
    response.json_body()
}

/// The case reference, trimmed and encoded for the path, or invalid input.
fn case_path(case_id: &str, rest: &str) -> Result<String> {
    let id = case_id.trim();
    if id.is_empty() {
        return Err(Error::invalid_input("`case_id` must not be empty"));
    }
    Ok(format!("api/v1/case/{}/{rest}", encode(id)))
}

/// Trimmed, non-empty, at most 128 characters, without duplicates.
fn clean_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG {
            return Err(Error::invalid_input(format!(
                "tag `{tag}` must be 1 to {MAX_TAG} characters"
            )));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

/// Checks an optional 0..=max level, naming the field.
fn level(value: Option<u8>, name: &str, min: u8, max: u8, default: u8) -> Result<u8> {
    let v = value.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(Error::invalid_input(format!(
            "`{name}` must be between {min} and {max}, not {v}"
        )));
    }
    Ok(v)
}

fn open_case(input: OpenCaseInput, ctx: &Context) -> Result<OpenedCase> {
    let title = input.title.trim();
    if title.is_empty() {
        return Err(Error::invalid_input("`title` must not be empty"));
    }
    let severity = level(input.severity, "severity", 1, 4, 2)?;
    let tlp = level(input.tlp, "tlp", 0, 4, 2)?;
    let pap = level(input.pap, "pap", 0, 3, 2)?;
    let mut tags = clean_tags(&input.tags)?;
    let tag = key_tag(ctx.idempotency_key())?;
    let output = |case: Option<&VendorCase>, created: bool, planned: Option<bool>| OpenedCase {
        case_id: case.map(|c| c.id.clone()),
        number: case.map(|c| c.number),
        created,
        already: case.is_some() && !created,
        key_tag: tag.clone(),
        status: case.and_then(|c| c.status.clone()),
        planned,
    };
    // Even the lookup is a POST (TheHive's query API), which a dry run
    // does not send: plan without looking.
    if ctx.dry_run() {
        return Ok(output(None, false, Some(true)));
    }
    let query = json!({"query": [
        {"_name": "listCase"},
        {"_name": "filter", "_eq": {"_field": "tags", "_value": tag}},
    ]});
    let what = format!("the lookup of cases tagged `{tag}`");
    let found: Vec<VendorCase> = post(ctx, "api/v1/query", &query, &what)?;
    if let Some(case) = found
        .iter()
        .filter(|c| c.tags.contains(&tag))
        .min_by_key(|c| c.number)
    {
        ctx.log(
            LogLevel::Info,
            "the case for this idempotency key exists; nothing created",
            &[("case_id", &case.id), ("tag", &tag)],
        );
        return Ok(output(Some(case), false, None));
    }
    tags.retain(|t| t != &tag);
    tags.push(tag.clone());
    let body = json!({
        "title": title,
        "description": input.description,
        "severity": severity,
        "tags": tags,
        "tlp": tlp,
        "pap": pap,
    });
    let case: VendorCase = post(ctx, "api/v1/case", &body, "the case creation")?;
    ctx.log(
        LogLevel::Info,
        "TheHive created the case",
        &[("case_id", &case.id), ("number", &case.number.to_string())],
    );
    Ok(output(Some(&case), true, None))
}

fn add_comment(input: CommentInput, ctx: &Context) -> Result<Comment> {
    let path = case_path(&input.case_id, "comment")?;
    if input.message.trim().is_empty() {
        return Err(Error::invalid_input("`message` must not be empty"));
    }
    let case_id = input.case_id.trim().to_string();
    if ctx.dry_run() {
        return Ok(Comment {
            case_id,
            comment_id: None,
            planned: Some(true),
        });
    }
    let what = format!("the comment on case `{case_id}`");
    let body = json!({ "message": input.message });
    let comment: Created = post(ctx, &path, &body, &what)?;
    Ok(Comment {
        case_id,
        comment_id: Some(comment.id),
        planned: None,
    })
}

fn add_observable(input: ObservableInput, ctx: &Context) -> Result<Observables> {
    let path = case_path(&input.case_id, "observable")?;
    let data_type = input.data_type.trim();
    if data_type.is_empty() || input.data.trim().is_empty() {
        return Err(Error::invalid_input(
            "`data_type` and `data` must not be empty",
        ));
    }
    if let Some(tlp) = input.tlp {
        level(Some(tlp), "tlp", 0, 4, 2)?;
    }
    let case_id = input.case_id.trim().to_string();
    if ctx.dry_run() {
        return Ok(Observables {
            case_id,
            observable_ids: Vec::new(),
            planned: Some(true),
        });
    }
    let mut body = json!({ "dataType": data_type, "data": input.data.trim() });
    if let Some(message) = input.message {
        body["message"] = Value::String(message);
    }
    if let Some(tlp) = input.tlp {
        body["tlp"] = json!(tlp);
    }
    if let Some(ioc) = input.ioc {
        body["ioc"] = Value::Bool(ioc);
    }
    let what = format!("the `{data_type}` observable on case `{case_id}`");
    // The spec answers 201 with a list: one observable per value.
    let created: Vec<Created> = post(ctx, &path, &body, &what)?;
    if created.is_empty() {
        ctx.log(
            LogLevel::Warn,
            "TheHive created no observable",
            &[("case_id", &case_id), ("data_type", data_type)],
        );
    }
    Ok(Observables {
        case_id,
        observable_ids: created.into_iter().map(|o| o.id).collect(),
        planned: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::testing::MockHost;
    use soar_plugin_sdk::{ErrorKind, Invocation, RetryAfter};

    const BASE: &str = "https://hive.test";
    const QUERY: &str = "https://hive.test/api/v1/query";
    const CASES: &str = "https://hive.test/api/v1/case";
    const KEY: &str = "soar-0123456789abcdef0123456789abcdef";
    const TAG: &str = "soar-key:soar-0123456789abcdef0123456789abcdef";
    const CASE: &str = "~41000";

    fn case(number: u64, tags: &[&str]) -> Value {
        json!({"_id": CASE, "_type": "Case", "_createdBy": "soar@thehive.local",
               "_createdAt": 1795000000000u64, "number": number, "title": "Phishing",
               "description": "d", "severity": 3, "severityLabel": "HIGH",
               "startDate": 1795000000000u64, "flag": false, "tlp": 2, "tlpLabel": "AMBER",
               "pap": 2, "papLabel": "AMBER", "status": "New", "stage": "New",
               "access": {"_kind": "OrganisationAccessKind"}, "extraData": {},
               "newDate": 1795000000000u64, "timeToDetect": 0, "tags": tags})
    }

    fn hive_error(status: u16, kind: &str, message: &str) -> Response {
        Response::json(status, &json!({"type": kind, "message": message}))
    }

    fn run_with(
        mock: MockHost,
        action: &str,
        input: Value,
        inv: Invocation,
    ) -> (Result<Value>, MockHost) {
        mock.config("base_url", BASE)
            .run(|| plugin().call(action, input, inv))
    }

    fn run(mock: MockHost, action: &str, input: Value) -> (Result<Value>, MockHost) {
        run_with(mock, action, input, Invocation::for_test(KEY))
    }

    fn open_input() -> Value {
        json!({"title": "Phishing: invoice.pdf", "description": "Reported by finance",
               "severity": 3, "tags": ["phishing", "phishing", "finance"], "tlp": 1})
    }

    #[test]
    fn open_case_queries_by_key_tag_then_creates() {
        let mock = MockHost::new()
            .respond("POST", QUERY, Response::json(200, &json!([])))
            .respond(
                "POST",
                CASES,
                Response::json(201, &case(7, &["phishing", TAG])),
            );
        let (out, mock) = run(mock, "open_case", open_input());
        assert_eq!(
            out.unwrap(),
            json!({"case_id": CASE, "number": 7, "created": true, "already": false,
                   "key_tag": TAG, "status": "New"})
        );
        let sent = mock.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            (sent[0].method.as_str(), sent[0].url.as_str()),
            ("POST", QUERY)
        );
        assert_eq!(
            sent[0].json(),
            json!({"query": [{"_name": "listCase"},
                             {"_name": "filter", "_eq": {"_field": "tags", "_value": TAG}}]})
        );
        assert_eq!(
            (sent[1].method.as_str(), sent[1].url.as_str()),
            ("POST", CASES)
        );
        assert_eq!(
            sent[1].json(),
            json!({"title": "Phishing: invoice.pdf", "description": "Reported by finance",
                   "severity": 3, "tags": ["phishing", "finance", TAG], "tlp": 1, "pap": 2})
        );
        for request in sent {
            assert_eq!(
                request.header("authorization"),
                Some("Bearer {{secret:api_key}}")
            );
            assert_eq!(request.header("content-type"), Some("application/json"));
        }
    }

    #[test]
    fn open_case_second_call_finds_the_case_and_creates_nothing() {
        let mock = MockHost::new().respond(
            "POST",
            QUERY,
            Response::json(200, &json!([case(7, &["phishing", TAG])])),
        );
        let (out, mock) = run(mock, "open_case", open_input());
        assert_eq!(
            out.unwrap(),
            json!({"case_id": CASE, "number": 7, "created": false, "already": true,
                   "key_tag": TAG, "status": "New"})
        );
        assert_eq!(mock.requests().len(), 1);
        assert!(mock.requests().iter().all(|r| r.url != CASES));
    }

    #[test]
    fn open_case_ignores_query_hits_without_the_tag() {
        // A server that ignored the filter must not make us reuse a stranger's case.
        let mock = MockHost::new()
            .respond(
                "POST",
                QUERY,
                Response::json(200, &json!([case(3, &["other"])])),
            )
            .respond("POST", CASES, Response::json(201, &case(8, &[TAG])));
        let (out, mock) = run(mock, "open_case", open_input());
        assert_eq!(out.unwrap()["created"], true);
        assert_eq!(mock.requests().len(), 2);
    }

    #[test]
    fn open_case_dry_run_sends_nothing() {
        let inv = Invocation {
            dry_run: true,
            ..Invocation::for_test(KEY)
        };
        let (out, mock) = run_with(MockHost::new(), "open_case", open_input(), inv);
        assert_eq!(
            out.unwrap(),
            json!({"case_id": null, "number": null, "created": false, "already": false,
                   "key_tag": TAG, "status": null, "planned": true})
        );
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn open_case_defaults_and_input_checks() {
        let mock = MockHost::new()
            .respond("POST", QUERY, Response::json(200, &json!([])))
            .respond("POST", CASES, Response::json(201, &case(1, &[TAG])));
        let (out, mock) = run(mock, "open_case", json!({"title": "t", "description": ""}));
        out.unwrap();
        assert_eq!(
            mock.requests()[1].json(),
            json!({"title": "t", "description": "", "severity": 2, "tags": [TAG], "tlp": 2, "pap": 2})
        );
        for input in [
            json!({"title": "t", "description": "", "severity": 5}),
            json!({"title": "t", "description": "", "pap": 4}),
            json!({"title": " ", "description": ""}),
            json!({"title": "t", "description": "", "tags": [""]}),
            json!({"title": "t", "description": "", "owner": "x"}),
            json!({"title": "t"}),
        ] {
            let (out, mock) = run(MockHost::new(), "open_case", input.clone());
            assert_eq!(out.unwrap_err().kind, ErrorKind::InvalidInput, "{input}");
            assert!(mock.requests().is_empty());
        }
        let (out, _) = run_with(
            MockHost::new(),
            "open_case",
            json!({"title": "t", "description": ""}),
            Invocation::for_test(""),
        );
        assert_eq!(out.unwrap_err().kind, ErrorKind::Permanent);
    }

    #[test]
    fn add_comment_posts_the_message() {
        let url = "https://hive.test/api/v1/case/~41000/comment";
        let answer = json!({"_id": "~8400", "_type": "Comment", "createdBy": "soar@thehive.local",
                            "createdAt": 1795000000000u64, "message": "Blocked 203.0.113.66",
                            "isEdited": false, "extraData": {}, "external": false});
        let mock = MockHost::new().respond("POST", url, Response::json(201, &answer));
        let (out, mock) = run(
            mock,
            "add_comment",
            json!({"case_id": CASE, "message": "Blocked 203.0.113.66"}),
        );
        assert_eq!(
            out.unwrap(),
            json!({"case_id": CASE, "comment_id": "~8400"})
        );
        assert_eq!(mock.requests().len(), 1);
        assert_eq!(
            mock.requests()[0].json(),
            json!({"message": "Blocked 203.0.113.66"})
        );
        assert_eq!(
            mock.requests()[0].header("authorization"),
            Some("Bearer {{secret:api_key}}")
        );
    }

    #[test]
    fn add_observable_sends_the_fields_and_reads_the_list() {
        let url = "https://hive.test/api/v1/case/42/observable";
        let answer = json!([{"_id": "~9001", "_type": "Observable", "dataType": "ip",
                             "data": "203.0.113.66", "tlp": 3, "ioc": true}]);
        let mock = MockHost::new().respond("POST", url, Response::json(201, &answer));
        let (out, mock) = run(
            mock,
            "add_observable",
            json!({"case_id": "42", "data_type": "ip", "data": "203.0.113.66",
                   "message": "C2", "tlp": 3, "ioc": true}),
        );
        assert_eq!(
            out.unwrap(),
            json!({"case_id": "42", "observable_ids": ["~9001"]})
        );
        assert_eq!(
            mock.requests()[0].json(),
            json!({"dataType": "ip", "data": "203.0.113.66", "message": "C2", "tlp": 3, "ioc": true})
        );
        // Optional fields are left to TheHive's defaults.
        let mock = MockHost::new().respond("POST", url, Response::json(201, &answer));
        let (_, mock) = run(
            mock,
            "add_observable",
            json!({"case_id": "42", "data_type": "domain", "data": "evil.example"}),
        );
        assert_eq!(
            mock.requests()[0].json(),
            json!({"dataType": "domain", "data": "evil.example"})
        );
    }

    #[test]
    fn comment_and_observable_dry_runs_send_nothing() {
        let inv = || Invocation {
            dry_run: true,
            ..Invocation::for_test(KEY)
        };
        let (out, mock) = run_with(
            MockHost::new(),
            "add_comment",
            json!({"case_id": CASE, "message": "m"}),
            inv(),
        );
        assert_eq!(out.unwrap()["planned"], true);
        assert!(mock.requests().is_empty());
        let (out, mock) = run_with(
            MockHost::new(),
            "add_observable",
            json!({"case_id": CASE, "data_type": "ip", "data": "203.0.113.66"}),
            inv(),
        );
        assert_eq!(out.unwrap()["observable_ids"], json!([]));
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn case_ids_are_encoded_in_the_path() {
        let url = "https://hive.test/api/v1/case/a%2Fb/comment";
        let mock = MockHost::new().respond("POST", url, Response::json(201, &json!({"_id": "~1"})));
        let (out, _) = run(
            mock,
            "add_comment",
            json!({"case_id": "a/b", "message": "m"}),
        );
        assert_eq!(out.unwrap()["comment_id"], "~1");
    }

    #[test]
    fn unknown_case_is_not_found_naming_it() {
        let url = "https://hive.test/api/v1/case/~999/comment";
        let mock = MockHost::new().respond(
            "POST",
            url,
            hive_error(404, "NotFoundError", "Case ~999 not found"),
        );
        let err = run(
            mock,
            "add_comment",
            json!({"case_id": "~999", "message": "m"}),
        )
        .0
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(
            err.message.contains("NotFoundError: Case ~999 not found"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unauthorized_stops_before_creating() {
        for status in [401, 403] {
            let mock = MockHost::new().respond(
                "POST",
                QUERY,
                hive_error(status, "AuthenticationError", "Authentication failure"),
            );
            let (out, mock) = run(mock, "open_case", open_input());
            let err = out.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unauthorized, "{status}");
            assert!(
                err.message.contains("AuthenticationError"),
                "{}",
                err.message
            );
            assert_eq!(mock.requests().len(), 1);
        }
    }

    #[test]
    fn rate_limit_server_error_and_bad_request_kinds() {
        let limited = hive_error(429, "RateLimited", "slow down").with_header("Retry-After", "7");
        let mock = MockHost::new()
            .respond("POST", QUERY, Response::json(200, &json!([])))
            .respond("POST", CASES, limited);
        let err = run(mock, "open_case", open_input()).0.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(7_000)))
        );
        let mock = MockHost::new().respond("POST", QUERY, hive_error(500, "InternalError", "db"));
        let err = run(mock, "open_case", open_input()).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        let mock = MockHost::new().respond("POST", QUERY, Response::bytes(503, ""));
        let err = run(mock, "open_case", open_input()).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("soar-key:"), "{}", err.message);
        let url = "https://hive.test/api/v1/case/~41000/observable";
        let mock = MockHost::new().respond(
            "POST",
            url,
            hive_error(400, "BadRequest", "Invalid dataType"),
        );
        let err = run(
            mock,
            "add_observable",
            json!({"case_id": CASE, "data_type": "nope", "data": "x"}),
        )
        .0
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("Invalid dataType"), "{}", err.message);
    }

    #[test]
    fn malformed_answers_are_permanent() {
        let mock =
            MockHost::new().respond("POST", QUERY, Response::json(200, &json!({"cases": []})));
        let err = run(mock, "open_case", open_input()).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        let url = "https://hive.test/api/v1/case/~41000/observable";
        // The spec's answer is a list; a single object is not it.
        let mock = MockHost::new().respond("POST", url, Response::json(201, &json!({"_id": "~1"})));
        let err = run(
            mock,
            "add_observable",
            json!({"case_id": CASE, "data_type": "ip", "data": "1.2.3.4"}),
        )
        .0
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
    }

    #[test]
    fn manifest_flags() {
        let manifest = plugin().manifest();
        let action = |name: &str| {
            manifest
                .actions
                .iter()
                .find(|a| a.name == name)
                .unwrap_or_else(|| panic!("no action {name}"))
                .clone()
        };
        let open = action("open_case");
        assert!(!open.destructive && open.idempotent);
        assert_eq!(open.input_schema["additionalProperties"], false);
        for name in ["add_comment", "add_observable"] {
            let a = action(name);
            assert!(!a.destructive && !a.idempotent, "{name}");
            assert_eq!(a.input_schema["additionalProperties"], false);
        }
        assert_eq!(manifest.secrets, ["api_key"]);
        assert_eq!(manifest.config_keys, ["base_url"]);
    }
}
