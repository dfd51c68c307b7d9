//! `POST /hooks/{source}` (and `/hooks/{source}/{token}`): alert intake.
//! In order: size (413), proof of origin (401; before the rate limit, so
//! forged requests cannot spend a source's budget; SNS's from its body),
//! rate (429), the event filter (2xx, ignored), the media type (415), the
//! split into events (413 over the cap, 422 for none), then per event:
//! map, the playbook's inputs (422), a durable start (202), each in a task
//! of its own so a sender hanging up cannot strand a started run. A repeat, by dedup key or delivery id, is merged
//! into the run it already started (`alert_merged`). `GET /hooks/{source}`
//! answers Okta's one-time verification.

mod events;
mod proof;
pub mod sns;

use super::auth;
use super::App;
use crate::config::{roles, BasicAuth, Source, SourceAuth};
use crate::observe;
use crate::playbook::Playbook;
use crate::scheduler::{Begun, Claim, ClaimKind, EngineError, NewRun};
use crate::template::CompiledFields;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::{Events, SplitError};
use proof::Refused;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest delivery id kept (they are UUIDs or short tokens in practice).
const MAX_DELIVERY_ID: usize = 200;
/// Longest Okta verification challenge answered.
const MAX_CHALLENGE: usize = 512;
/// Events of one delivery started at once.
const START_CONCURRENCY: usize = 64;

/// An answer with a JSON body `{"error": kind, "message": ...}`.
pub fn refusal(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": kind, "message": message.into()})),
    )
        .into_response()
}

/// 503 while stopping, with the time to come back.
pub fn unavailable() -> Response {
    let mut r = refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the server is stopping; deliver again shortly",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn rate_limited(wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("the source's rate limit is reached; retry in {secs}s"),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The body's media type: JSON, NDJSON, or (for SNS, which sends it so)
/// text/plain holding JSON. Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Ndjson,
}

fn media(source: &Source, headers: &HeaderMap) -> Option<Media> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())?;
    match value.as_str() {
        "application/json" => Some(Media::Json),
        v if v.starts_with("application/") && v.ends_with("+json") => Some(Media::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Some(Media::Ndjson),
        "text/plain" if matches!(source.auth, SourceAuth::Sns { .. }) => Some(Media::Json),
        _ => None,
    }
}

/// A delivery-id claim: one per event, so a redelivered batch finds each
/// event's own run.
fn delivery_id(source: &Source, headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(name) = &source.delivery_id_header else {
        return Ok(None);
    };
    let Some(value) = headers.get(name.as_str()) else {
        return Ok(None);
    };
    let id = value.to_str().unwrap_or("").trim();
    if id.is_empty() || id.len() > MAX_DELIVERY_ID || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("header `{name}` must be 1 to {MAX_DELIVERY_ID} printable ASCII characters"),
        ));
    }
    Ok(Some(id.to_string()))
}

fn claims(source: &Source, id: Option<&str>, index: usize, batch: bool) -> Vec<Claim> {
    let Some(id) = id else { return Vec::new() };
    let key = if batch {
        // A space cannot be in an id (printable ASCII), so no single
        // delivery's id collides with an event of a batch.
        format!("delivery:{}:{id} #{index}", source.name)
    } else {
        format!("delivery:{}:{id}", source.name)
    };
    vec![Claim {
        key,
        window: Some(source.delivery_window),
        kind: ClaimKind::Repeat,
    }]
}

/// Reads the body up to the source's cap.
async fn read_body(source: &Source, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {} bytes", source.max_body),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > source.max_body as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, source.max_body)
        .await
        .map_err(|_| too_large())
}

fn unauthorized(r: &Refused) -> (Response, &'static str) {
    let resp = refusal(StatusCode::UNAUTHORIZED, r.outcome(), r.message());
    (resp, r.outcome())
}

/// An ingest principal, by bearer token or Basic password.
fn ingest_principal(app: &App, token: Option<&str>) -> Result<String, (Response, &'static str)> {
    let who = crate::approvals::authenticate_token(app.policy(), token).map_err(|r| {
        let m = "send the token of a principal with the `ingest` role".to_string();
        (
            refusal(StatusCode::UNAUTHORIZED, r.kind(), m),
            "bad_signature",
        )
    })?;
    crate::approvals::require_role(who, roles::INGEST, "deliver").map_err(|r| {
        (
            refusal(StatusCode::FORBIDDEN, r.kind(), r.to_string()),
            "bad_signature",
        )
    })?;
    Ok(who.name.clone())
}

/// Who delivers, once proven (SNS is proven later, from its body).
fn prove(
    app: &App,
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
    token: Option<&str>,
) -> Result<String, (Response, &'static str)> {
    let as_source = || format!("source:{}", source.name);
    if token.is_some() && !matches!(source.auth, SourceAuth::UrlToken { .. }) {
        let r = Refused::Malformed(
            "this source takes no token in the URL path: deliver to /hooks/<source>".into(),
        );
        return Err(unauthorized(&r));
    }
    let now_s = (crate::journal::now_unix_millis() / 1000) as i64;
    let checked = match &source.auth {
        SourceAuth::Hmac(scheme) => proof::hmac(scheme, headers, body, now_s),
        SourceAuth::OktaEventHook { secret, header } => {
            proof::shared_header(secret, header, headers)
        }
        SourceAuth::UrlToken { secret } => proof::url_token(secret, token),
        SourceAuth::Basic(BasicAuth::Secret { username, secret }) => {
            proof::basic_secret(username, secret, headers)
        }
        SourceAuth::Basic(BasicAuth::Principal) => {
            let password = proof::basic_credentials(headers).map(|(_, p)| p);
            return ingest_principal(app, password.as_deref());
        }
        SourceAuth::Bearer => return ingest_principal(app, auth::bearer(headers)),
        SourceAuth::Sns { .. } => Ok(()),
    };
    match checked {
        Ok(()) => Ok(as_source()),
        Err(r) => {
            if r == Refused::NoSecret {
                tracing::error!(source = %source.name, "the source's secret cannot be loaded");
            }
            Err(unauthorized(&r))
        }
    }
}

/// `POST /hooks/{source}`.
pub async fn deliver(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, &name, None, query.as_deref(), headers, body).await
}

/// `POST /hooks/{source}/{token}` (the route template, not the token, is
/// what request logging sees).
pub async fn deliver_with_token(
    State(app): State<Arc<App>>,
    Path((name, token)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, &name, Some(&token), query.as_deref(), headers, body).await
}

async fn handle(
    app: Arc<App>,
    name: &str,
    token: Option<&str>,
    query: Option<&str>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(source) = app.config.sources.get(name) else {
        return refusal(StatusCode::NOT_FOUND, "unknown_source", "no such source");
    };
    let wait = match super::wait::param(query) {
        Ok(w) => w,
        Err(e) => return refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e),
    };
    let (response, outcome) = intake(&app, source, token, &headers, body, wait).await;
    observe::webhook(&source.name, outcome);
    tracing::info!(source = %source.name, outcome, status = response.status().as_u16(), "delivery");
    response
}

/// `GET /hooks/{source}`: Okta's one-time verification. The challenge is
/// echoed only to a request that carries the hook's secret.
pub async fn verify(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(source) = app.config.sources.get(&name) else {
        return refusal(StatusCode::NOT_FOUND, "unknown_source", "no such source");
    };
    let SourceAuth::OktaEventHook { secret, header } = &source.auth else {
        return refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "deliver alerts with POST",
        );
    };
    if let Err(r) = proof::shared_header(secret, header, &headers) {
        observe::webhook(&source.name, r.outcome());
        return unauthorized(&r).0;
    }
    let challenge = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.len() <= MAX_CHALLENGE);
    let Some(challenge) = challenge else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!(
                "expected header X-Okta-Verification-Challenge (1 to {MAX_CHALLENGE} characters)"
            ),
        );
    };
    tracing::info!(source = %source.name, "answered Okta's event hook verification");
    Json(json!({ "verification": challenge })).into_response()
}

/// Whether the source's event filter lets this delivery through; the
/// answer that ignores it otherwise.
fn filtered(source: &Source, headers: &HeaderMap) -> Option<Response> {
    let filter = source.events.as_ref()?;
    let value = headers
        .get(filter.header.as_str())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if filter.allow.iter().any(|a| a == value) {
        return None;
    }
    let body = json!({"ignored": value, "message": format!("{} `{value}` does not start runs at this source", filter.header)});
    Some((StatusCode::OK, Json(body)).into_response())
}

/// An SNS delivery proven and handled: a confirmation is confirmed, an
/// unsubscribe noted, a notification's message is the document to split.
async fn sns_document(
    app: &App,
    source: &Source,
    topics: &[String],
    bytes: &[u8],
) -> Result<(Value, Value, Option<String>), (Response, &'static str)> {
    let regions = source.auth.sns_regions();
    let refuse = |e: sns::SnsError| match e {
        // SNS delivers again only after a 5xx: a certificate soar could not
        // fetch must not lose the message.
        sns::SnsError::Certificate(_) => {
            let mut r = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "certificate",
                e.to_string(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            (r, "unavailable")
        }
        sns::SnsError::Stale(_) => unauthorized(&Refused::Stale(e.to_string())),
        _ => unauthorized(&Refused::Mismatch(e.to_string())),
    };
    let envelope = sns::Envelope::parse(bytes).map_err(refuse)?;
    if envelope.message_id.is_empty()
        || envelope.message_id.len() > MAX_DELIVERY_ID
        || !envelope.message_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(refuse(sns::SnsError::Envelope(
            "MessageId is not an SNS message id".into(),
        )));
    }
    app.sns
        .verify(&envelope, topics, &regions, source.delivery_window)
        .await
        .map_err(refuse)?;
    match envelope.r#type.as_str() {
        "SubscriptionConfirmation" => {
            let done = app.sns.confirm(&envelope, &regions).await;
            let r = match done {
                Ok(()) => {
                    tracing::info!(source = %source.name, topic = %envelope.topic_arn, "confirmed the SNS subscription");
                    (
                        StatusCode::OK,
                        Json(json!({"confirmed": envelope.topic_arn})),
                    )
                        .into_response()
                }
                // A SubscribeURL soar will not fetch is the message's fault;
                // SNS failing to answer is not.
                Err(e @ sns::SnsError::Host(_)) => refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not_confirmed",
                    e.to_string(),
                ),
                Err(e) => refusal(StatusCode::BAD_GATEWAY, "not_confirmed", e.to_string()),
            };
            Err((r, "handshake"))
        }
        "UnsubscribeConfirmation" => {
            tracing::warn!(source = %source.name, topic = %envelope.topic_arn, "SNS says this endpoint was unsubscribed");
            Err((
                (
                    StatusCode::OK,
                    Json(json!({"ignored": "UnsubscribeConfirmation"})),
                )
                    .into_response(),
                "handshake",
            ))
        }
        _ => {
            let message = serde_json::from_str(&envelope.message)
                .unwrap_or(Value::String(envelope.message.clone()));
            let raw: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let mut shown = raw.clone();
            if let Some(o) = shown.as_object_mut() {
                // The map sees the envelope, not the payload twice, nor the
                // URL that unsubscribes this endpoint for anyone holding it.
                o.remove("Message");
                o.remove("UnsubscribeURL");
            }
            Ok((message, shown, Some(envelope.message_id)))
        }
    }
}

async fn intake(
    app: &Arc<App>,
    source: &Source,
    token: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    wait: Option<Duration>,
) -> (Response, &'static str) {
    if app.is_stopping() {
        return (unavailable(), "unavailable");
    }
    let bytes = match read_body(source, headers, body).await {
        Ok(b) => b,
        Err(r) => return (r, "too_large"),
    };
    let started_by = match prove(app, source, headers, &bytes, token) {
        Ok(s) => s,
        Err(e) => return e,
    };
    // SNS is proven by its body (signature, certificate, topic), before
    // the rate limit like every other proof; its handshakes end here.
    let sns = match &source.auth {
        SourceAuth::Sns { topic_arns } => {
            match sns_document(app, source, topic_arns, &bytes).await {
                Ok(proven) => Some(proven),
                Err(e) => return e,
            }
        }
        _ => None,
    };
    if let Err(wait) = app.rate_check(source) {
        return (rate_limited(wait), "rate_limited");
    }
    if let Some(r) = filtered(source, headers) {
        return (r, "ignored");
    }
    let Some(media) = media(source, headers) else {
        let r = refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_json",
            "send the alert as `Content-Type: application/json` (or application/x-ndjson for one event per line)",
        );
        return (r, "invalid");
    };
    let templates = &app.engine.templates;
    let (events, envelope, sns_id) = match sns {
        Some((message, envelope, id)) => (
            events::split_document(message, &source.batch, templates),
            Some(envelope),
            id,
        ),
        None => (
            events::split(&bytes, media == Media::Ndjson, &source.batch, templates),
            None,
            None,
        ),
    };
    let events = match events {
        Ok(e) => e,
        Err(e) => return split_refusal(&e),
    };
    let delivery = match sns_id
        .map(Ok)
        .or_else(|| delivery_id(source, headers).transpose())
    {
        Some(Ok(id)) => Some(id),
        Some(Err(r)) => return (r, "invalid"),
        None => None,
    };
    let Some(pb) = app.playbooks.at(&source.playbook).cloned() else {
        let r = refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_playbook",
            "the source's playbook is not loaded",
        );
        return (r, "invalid");
    };
    let delivered = Delivered {
        started_by,
        delivery,
        envelope,
        wait,
    };
    start_events(app, source, pb, events, delivered).await
}

fn split_refusal(e: &SplitError) -> (Response, &'static str) {
    let (status, kind) = match e {
        SplitError::TooMany { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_events"),
        SplitError::NotJson(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
        SplitError::NoArray(_) | SplitError::Empty => {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_alert")
        }
    };
    (refusal(status, kind, e.message()), "invalid")
}

/// What every event of one delivery shares.
struct Delivered {
    started_by: String,
    delivery: Option<String>,
    envelope: Option<Value>,
    /// `?wait=`: answer with the run's report once it settles.
    wait: Option<Duration>,
}

/// One event's result.
enum Outcome {
    Started(String),
    Merged(String, &'static str, bool),
    Invalid(String, Vec<String>),
    /// Not started, not merged, and told so (a run's repeat cap).
    Refused(String),
    Failed,
}

impl Outcome {
    fn json(&self, index: usize) -> Value {
        match self {
            Outcome::Started(id) => {
                json!({"index": index, "run_id": id, "status": "running", "deduplicated": false})
            }
            Outcome::Merged(id, status, grouped) => {
                json!({"index": index, "run_id": id, "status": status, "deduplicated": true, "grouped": grouped})
            }
            Outcome::Invalid(message, problems) => {
                json!({"index": index, "error": "invalid_alert", "message": message, "problems": problems})
            }
            Outcome::Refused(message) => {
                json!({"index": index, "error": "too_many_repeats", "message": message})
            }
            Outcome::Failed => {
                json!({"index": index, "error": "journal", "message": "the run could not be started durably; deliver again"})
            }
        }
    }

    /// The run it started or joined.
    fn run_id(&self) -> Option<&str> {
        match self {
            Outcome::Started(id) | Outcome::Merged(id, ..) => Some(id),
            _ => None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Outcome::Started(_) => "accepted",
            Outcome::Merged(..) => "duplicate",
            Outcome::Invalid(..) | Outcome::Refused(_) => "invalid",
            Outcome::Failed => "error",
        }
    }
}

/// The alert (mapped) and raw event of one delivered event.
fn prepare(
    source: &Source,
    compiled: Option<&CompiledFields<'_>>,
    event: Value,
    envelope: Option<&Value>,
) -> Result<(Value, Option<Value>), Vec<String>> {
    let (Some(map), Some(compiled)) = (&source.map, compiled) else {
        return Ok((event, None));
    };
    let (alert, event) = events::map_event(map, compiled, event, envelope);
    Ok((alert?, Some(event)))
}

/// Starts one run per event (a bounded number at once) and answers once
/// every accepted start is durable.
async fn start_events(
    app: &Arc<App>,
    source: &Source,
    pb: Arc<Playbook>,
    events: Events,
    delivered: Delivered,
) -> (Response, &'static str) {
    let batch = events.batch;
    let total = events.items.len();
    let mut outcomes: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
    // The map's templates are compiled once per delivery, not per event.
    let templates = app.engine.templates.clone();
    let compiled = source
        .map
        .as_ref()
        .map(|m| templates.compile_fields(&m.fields));
    let mut pending = events.items.into_iter().enumerate().peekable();
    while pending.peek().is_some() {
        // Detached tasks, not a JoinSet: if the sender hangs up, a start
        // already under way still finishes and its run is driven.
        let mut started = Vec::new();
        for (index, item) in pending.by_ref().take(START_CONCURRENCY) {
            let prepared = item.map_err(|e| vec![e]).and_then(|event| {
                prepare(
                    source,
                    compiled.as_ref(),
                    event,
                    delivered.envelope.as_ref(),
                )
            });
            let (alert, raw) = match prepared {
                Ok(p) => p,
                Err(problems) => {
                    outcomes[index] = Some(Outcome::Invalid(
                        "the event could not be read or mapped".into(),
                        problems,
                    ));
                    continue;
                }
            };
            let new = NewRun {
                alert,
                raw,
                started_by: delivered.started_by.clone(),
                claims: claims(source, delivered.delivery.as_deref(), index, batch),
            };
            let (app, pb) = (app.clone(), pb.clone());
            started.push((index, begin_detached(&app, pb, new)));
        }
        for (index, task) in started {
            outcomes[index] = Some(task.await.unwrap_or(Outcome::Failed));
        }
    }
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Failed))
        .collect();
    for label in ["accepted", "duplicate", "invalid", "error"] {
        let n = outcomes.iter().filter(|o| o.label() == label).count() as u64;
        if n > 0 {
            observe::webhook_events(&source.name, label, n);
        }
    }
    if batch {
        batch_answer(&outcomes, delivered.wait.is_some())
    } else {
        let outcome = outcomes.into_iter().next().unwrap_or(Outcome::Failed);
        single_answer(app, outcome, delivered.wait).await
    }
}

/// [`begin`] as a task of its own, which runs to the end (and hands the
/// new run to its driver) even when the request that asked is dropped.
fn begin_detached(
    app: &Arc<App>,
    pb: Arc<Playbook>,
    new: NewRun,
) -> tokio::task::JoinHandle<Outcome> {
    let app = app.clone();
    tokio::spawn(async move { begin(&app, pb, new).await })
}

/// One event's durable start, or the run it merged into.
async fn begin(app: &Arc<App>, pb: Arc<Playbook>, new: NewRun) -> Outcome {
    match app.engine.begin(pb, new).await {
        Ok(Begun::Existing(report)) => {
            if report.grouped {
                app.announce_grouped(&report.run_id);
            }
            Outcome::Merged(report.run_id, report.status.as_str(), report.grouped)
        }
        Ok(Begun::New { run_id, drive }) => {
            app.drive_new(&run_id, drive);
            Outcome::Started(run_id)
        }
        Err(EngineError::Input(problems)) => {
            let message = EngineError::Input(problems.clone()).to_string();
            Outcome::Invalid(message, problems)
        }
        Err(e @ EngineError::Dedup(_)) => Outcome::Invalid(e.to_string(), Vec::new()),
        Err(e @ EngineError::Repeats(_)) => {
            tracing::warn!(error = %e, "a repeat was refused");
            Outcome::Refused(e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start a run");
            Outcome::Failed
        }
    }
}

/// A single event answers as it always has: the run, or why not.
/// One event's answer: with `wait`, the run's report once it finishes or
/// pauses (200), else (or at the deadline) 202 once its start is durable.
async fn single_answer(
    app: &App,
    outcome: Outcome,
    wait: Option<Duration>,
) -> (Response, &'static str) {
    let label = outcome.label();
    if let (Some(wait), Some(run_id)) = (wait, outcome.run_id()) {
        if let Some(mut report) = super::wait::report(app, run_id, wait).await {
            if let Outcome::Merged(_, _, grouped) = outcome {
                report.deduplicated = true;
                report.grouped = grouped;
            }
            return ((StatusCode::OK, Json(report)).into_response(), label);
        }
    }
    let status = match outcome {
        Outcome::Started(_) | Outcome::Merged(..) => StatusCode::ACCEPTED,
        Outcome::Invalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::Refused(_) => StatusCode::CONFLICT,
        Outcome::Failed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = outcome.json(0);
    if let Some(o) = body.as_object_mut() {
        o.remove("index");
    }
    ((status, Json(body)).into_response(), label)
}

/// A batch answers with one result per event, in order. 202 once every
/// accepted event is durable; 500 if any could not be journaled (the
/// sender delivers again, and what was started merges); 422 if none was
/// accepted.
fn batch_answer(outcomes: &[Outcome], asked_to_wait: bool) -> (Response, &'static str) {
    let count = |label: &str| outcomes.iter().filter(|o| o.label() == label).count();
    let (accepted, merged, invalid, failed) = (
        count("accepted"),
        count("duplicate"),
        count("invalid"),
        count("error"),
    );
    let (status, label) = if failed > 0 {
        (StatusCode::INTERNAL_SERVER_ERROR, "error")
    } else if accepted + merged == 0 && invalid > 0 {
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    } else {
        (StatusCode::ACCEPTED, "accepted")
    };
    let mut body = json!({
        "events": outcomes.len(),
        "accepted": accepted,
        "deduplicated": merged,
        "invalid": invalid,
        "failed": failed,
        "results": outcomes.iter().enumerate().map(|(i, o)| o.json(i)).collect::<Vec<_>>(),
    });
    if asked_to_wait {
        // Said, not silently dropped: a batch's runs are many.
        body["wait"] = json!("not applied: a batch is answered once its events are durable; wait for each run with GET /api/v1/runs/{id}/events");
    }
    ((status, Json(body)).into_response(), label)
}

/// Starts a run for `POST /api/v1/runs` and answers once its start is durable.
pub async fn start(
    app: &Arc<App>,
    pb: Arc<Playbook>,
    new: NewRun,
    wait: Option<Duration>,
) -> (Response, &'static str) {
    let outcome = begin_detached(app, pb, new).await;
    single_answer(app, outcome.unwrap_or(Outcome::Failed), wait).await
}
