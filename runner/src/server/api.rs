//! `/api/v1`: the JSON API over [`crate::operations`], plus health,
//! readiness and metrics. Every call but those three carries
//! `Authorization: Bearer TOKEN`; the principal it names is the identity
//! journaled. Refusals answer 401/403/409 with the reasons `soar` prints
//! with exit code 4, and are journaled in the run they concern.

use super::intake::{refusal, start, unavailable};
use super::{auth, App};
use crate::approvals::{self, Refusal};
use crate::config::{roles, Approver};
use crate::journal::{Resolution, Vote};
use crate::operations::{self as ops, OpError, VoteResult};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The principal a response was for, for the request log.
#[derive(Clone)]
struct Caller(String);

pub(super) fn with_caller(mut r: Response, who: &Approver) -> Response {
    r.extensions_mut().insert(Caller(who.name.clone()));
    r
}

/// Request log: method, route, status, latency, principal; never bodies,
/// signatures or tokens (the route template, not the path, is logged).
pub async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let began = Instant::now();
    let response = next.run(req).await;
    let principal = response
        .extensions()
        .get::<Caller>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        latency_ms = began.elapsed().as_secs_f64() * 1000.0,
        principal,
        "request"
    );
    response
}

/// An operation's failure as an answer.
pub(super) fn op_error(e: OpError) -> Response {
    match e {
        OpError::Invalid(m) => refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
        OpError::NotFound(id) => {
            refusal(StatusCode::NOT_FOUND, "not_found", format!("no run `{id}`"))
        }
        OpError::Refused(r) => refused(&r),
        OpError::Failed(m) => {
            tracing::error!(error = %m, "operation failed");
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the operation failed; see the server log",
            )
        }
    }
}

pub(super) fn refused(r: &Refusal) -> Response {
    let status = StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = refusal(status, r.kind(), format!("refused: {r}"));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

/// The caller, who may read.
pub(super) fn reader<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Approver, Response> {
    let who = auth::principal(app.policy(), headers).map_err(|r| refused(&r))?;
    if !approvals::may_read(who) {
        let r = Refusal::NoRole {
            who: who.name.clone(),
            command: "read".into(),
            role: roles::VIEWER.into(),
            has: who.roles.join(", "),
        };
        return Err(refused(&r));
    }
    Ok(who)
}

/// The caller of a command on `run_id`; an unauthenticated one is refused
/// and, when the run exists, journaled.
async fn commander<'a>(
    app: &'a App,
    headers: &HeaderMap,
    run_id: &str,
    command: &str,
    step: Option<&str>,
) -> Result<&'a Approver, Response> {
    match auth::principal(app.policy(), headers) {
        Ok(who) => Ok(who),
        Err(r) => {
            // Journaled, but only so many per run: run ids are not secret
            // (they are in chat messages), and a client without a token
            // must not be able to grow a run's journal without bound.
            if app.may_journal_unauthenticated(run_id)
                && ops::read_run(app.journal(), run_id).is_ok()
            {
                ops::refuse(
                    app.journal(),
                    run_id,
                    command,
                    step,
                    "unauthenticated",
                    r.clone(),
                )
                .await;
            }
            Err(refused(&r))
        }
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_ready() && !app.is_stopping() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.render_metrics(),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

pub async fn whoami(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match auth::principal(app.policy(), &headers) {
        Ok(who) => with_caller(
            Json(json!({"name": who.name, "roles": who.roles})).into_response(),
            who,
        ),
        Err(r) => refused(&r),
    }
}

#[derive(Deserialize)]
pub struct RunsQuery {
    status: Option<String>,
}

pub async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = match ops::list_runs(app.journal(), q.status.as_deref()) {
        Ok(rows) => Json(json!({"runs": rows})).into_response(),
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

#[derive(Deserialize)]
pub struct StartBody {
    playbook: String,
    alert: Value,
    #[serde(default)]
    playbook_sha256: Option<String>,
}

pub async fn start_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: axum::body::Bytes,
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let who = match auth::principal(app.policy(), &headers) {
        Ok(w) => w,
        Err(r) => return refused(&r),
    };
    if let Err(r) = approvals::require_role(who, roles::INGEST, "start a run") {
        return with_caller(refused(&r), who);
    }
    let req: StartBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("the body must be {{\"playbook\": NAME, \"alert\": {{...}}}}: {e}");
            return with_caller(
                refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid", msg),
                who,
            );
        }
    };
    let Some(pb) = app.playbooks.named(&req.playbook).cloned() else {
        let msg = format!(
            "the server has no playbook `{}` (it serves: {})",
            req.playbook,
            app.playbooks.names().join(", ")
        );
        return with_caller(refusal(StatusCode::NOT_FOUND, "unknown_playbook", msg), who);
    };
    if let Some(sha) = &req.playbook_sha256 {
        if sha != &pb.sha256 {
            let msg = format!(
                "the server's playbook `{}` has content {}, yours {sha}: deploy it to the server first",
                pb.name, pb.sha256
            );
            return with_caller(refusal(StatusCode::CONFLICT, "playbook_differs", msg), who);
        }
    }
    let wait = match super::wait::param(query.as_deref()) {
        Ok(w) => w,
        Err(e) => return with_caller(refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e), who),
    };
    let new = crate::scheduler::NewRun::manual(req.alert, &who.name);
    let (r, _) = start(&app, pb, new, wait).await;
    with_caller(r, who)
}

pub async fn run_status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = match ops::status(app.journal(), &run_id) {
        Ok(report) => Json(report).into_response(),
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

/// A record as `soar journal --json` prints it.
fn record_json(r: &crate::journal::Record) -> Value {
    let mut line = serde_json::to_value(&r.event).unwrap_or(Value::Null);
    if let Some(obj) = line.as_object_mut() {
        obj.insert("seq".into(), json!(r.seq));
        obj.insert("at".into(), json!(r.at));
        obj.insert("hash".into(), json!(r.hash));
    }
    line
}

#[derive(Deserialize)]
pub struct JournalQuery {
    #[serde(default)]
    after: u64,
}

pub async fn run_journal(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    Query(q): Query<JournalQuery>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = match ops::read_run(app.journal(), &run_id) {
        Ok(records) => {
            let out: Vec<Value> = records
                .iter()
                .filter(|r| r.seq > q.after)
                .map(record_json)
                .collect();
            Json(json!({"run_id": run_id, "records": out})).into_response()
        }
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

/// Server-sent events: each record of the run once it is durable (`event:
/// record`, `id:` its seq), after `?after=SEQ` or the `Last-Event-ID` a
/// reconnecting client sends (the later of the two); the stream ends after
/// the run's final record.
pub async fn run_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    Query(q): Query<JournalQuery>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w.clone(),
        Err(r) => return r,
    };
    if let Err(e) = ops::read_run(app.journal(), &run_id) {
        return op_error(e);
    }
    let after = q.after.max(last_event_id(&headers));
    with_caller(record_stream(app, run_id, after), &who)
}

/// The `Last-Event-ID` header as a seq (0 when absent or not a number).
pub fn last_event_id(headers: &HeaderMap) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Where a record stream stands.
struct Follow {
    app: Arc<App>,
    run_id: String,
    after: u64,
    written: tokio::sync::watch::Receiver<u64>,
    done: bool,
}

impl Follow {
    /// The next durable records past `after`, waiting for a write to the
    /// run when there are none; `None` once the run is over (or the
    /// journal fails).
    async fn next(&mut self) -> Option<Vec<crate::journal::Record>> {
        let journal = self.app.journal().clone();
        loop {
            if self.done {
                return None;
            }
            // Seen before looking: a write after the look wakes us.
            self.written.mark_unchanged();
            let head = journal.head_seq(&self.run_id).ok()??;
            if head > self.after {
                // Only what a flush made durable is sent.
                journal.durable().await.ok()?;
                let fresh = journal.read_range(&self.run_id, self.after, head).ok()?;
                self.after = fresh.last().map_or(head, |r| r.seq);
                self.done = fresh
                    .iter()
                    .any(|r| matches!(r.event, crate::journal::Event::RunFinished { .. }));
                if !fresh.is_empty() {
                    return Some(fresh);
                }
                continue;
            }
            if journal.is_finished(&self.run_id).unwrap_or(true) {
                return None;
            }
            // A bounded wait: a write this process did not make (none
            // today) would still be seen.
            let _ = tokio::time::timeout(Duration::from_secs(15), self.written.changed()).await;
        }
    }
}

/// The records of `run_id` after `after` as server-sent events (`event:
/// record`, `id:` seq), each pushed once it is written and durable (a
/// journal subscription, not a poll); the stream ends after `run_finished`.
/// Shared with the console's run page.
pub fn record_stream(app: Arc<App>, run_id: String, after: u64) -> Response {
    let written = app.journal().subscribe(&run_id);
    let follow = Follow {
        app,
        run_id,
        after,
        written,
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let fresh = follow.next().await?;
        let events: Vec<Result<SseEvent, std::convert::Infallible>> = fresh
            .iter()
            .map(|r| {
                Ok(SseEvent::default()
                    .event("record")
                    .id(r.seq.to_string())
                    .data(record_json(r).to_string()))
            })
            .collect();
        Some((futures_util::stream::iter(events), follow))
    });
    let flat = futures_util::StreamExt::flatten(stream);
    Sse::new(flat)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub async fn pending(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = match ops::pending(
        app.journal(),
        crate::journal::now_unix_millis(),
        app.config.server.public_url.as_deref(),
    ) {
        Ok(entries) => Json(json!({"pending": entries})).into_response(),
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

#[derive(Deserialize, Default)]
pub struct DecideBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    outcome: Option<Resolution>,
}

#[derive(Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    wait: bool,
}

/// Longest reason journaled with a decision: a paragraph, not a file.
const MAX_REASON: usize = 4096;

fn decide_body(body: &[u8]) -> Result<DecideBody, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecideBody::default());
    }
    let parsed: DecideBody = serde_json::from_slice(body).map_err(|e| {
        refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("the body must be {{\"reason\": TEXT}}: {e}"),
        )
    })?;
    if parsed.reason.len() > MAX_REASON {
        return Err(refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("`reason` is longer than {MAX_REASON} bytes"),
        ));
    }
    Ok(parsed)
}

/// The run's report after the drive a decision started (`?wait=true`), or
/// at once.
async fn answer_after(app: &Arc<App>, run_id: &str, wait: bool, extra: Value) -> Response {
    if wait {
        app.settled(run_id, Duration::from_secs(300)).await;
    }
    match ops::status(app.journal(), run_id) {
        Ok(report) => {
            let mut body = serde_json::to_value(&report).unwrap_or(Value::Null);
            if let (Some(o), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    o.insert(k.clone(), v.clone());
                }
            }
            Json(body).into_response()
        }
        Err(e) => op_error(e),
    }
}

async fn vote(
    app: Arc<App>,
    headers: HeaderMap,
    run_id: String,
    step: String,
    vote: Vote,
    wait: bool,
    body: &[u8],
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let command = match vote {
        Vote::Approve => "approve",
        Vote::Deny => "deny",
    };
    let who = match commander(&app, &headers, &run_id, command, Some(&step)).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req = match decide_body(body) {
        Ok(b) => b,
        Err(r) => return with_caller(r, who),
    };
    let result = app.vote(&run_id, &step, who, vote, &req.reason, None).await;
    let r = match result {
        Ok(VoteResult::Recorded { have, need }) => {
            Json(json!({"run_id": run_id, "step": step, "vote": "recorded", "approvals": have, "needed": need}))
                .into_response()
        }
        Ok(VoteResult::Decided { decision, by }) => {
            let extra = json!({"decision": decision.as_str(), "decided_by": by});
            answer_after(&app, &run_id, wait, extra).await
        }
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

pub async fn approve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((run_id, step)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Response {
    vote(app, headers, run_id, step, Vote::Approve, q.wait, &body).await
}

pub async fn deny(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((run_id, step)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Response {
    vote(app, headers, run_id, step, Vote::Deny, q.wait, &body).await
}

pub async fn resolve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((run_id, step)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let who = match commander(&app, &headers, &run_id, "resolve", Some(&step)).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req = match decide_body(&body) {
        Ok(b) => b,
        Err(r) => return with_caller(r, who),
    };
    let Some(outcome) = req.outcome else {
        let msg = "the body must name an `outcome`: done, failed or retry";
        return with_caller(
            refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid", msg),
            who,
        );
    };
    let r = match app.resolve(&run_id, &step, who, outcome, &req.reason).await {
        Ok(n) => answer_after(&app, &run_id, q.wait, json!({"resolved_items": n})).await,
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

pub async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    Query(q): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let who = match commander(&app, &headers, &run_id, "cancel", None).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req = match decide_body(&body) {
        Ok(b) => b,
        Err(r) => return with_caller(r, who),
    };
    let r = match app.cancel(&run_id, who, &req.reason).await {
        Ok(()) => answer_after(&app, &run_id, q.wait, json!({"cancel": "requested"})).await,
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    run_id: Option<String>,
}

pub async fn verify(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<VerifyQuery>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    // One run: its own standing, without reading the whole journal.
    let signed = match &q.run_id {
        Some(id) => app.journal().run_report(id),
        None => crate::operations::verify_all(app.journal()),
    };
    let mut signed = match signed {
        Ok(r) => r,
        Err(e) => return op_error(e.into()),
    };
    let ids = match q.run_id {
        Some(id) => vec![id],
        None => std::mem::take(&mut signed.stored_runs),
    };
    let mut runs = Vec::new();
    let mut bad = 0;
    for id in ids {
        match app.journal().verify(&id) {
            Ok(report) => {
                let problems: Vec<String> =
                    report.problems.iter().map(ToString::to_string).collect();
                bad += usize::from(!problems.is_empty());
                runs.push(json!({"run_id": id, "records": report.records, "ok": problems.is_empty(), "problems": problems}));
            }
            Err(e) => {
                bad += 1;
                runs.push(json!({"run_id": id, "ok": false, "problems": [e.to_string()]}));
            }
        }
    }
    let ok = bad == 0 && signed.problems.is_empty();
    with_caller(
        Json(json!({"ok": ok, "failed": bad, "runs": runs, "signed": signed})).into_response(),
        who,
    )
}

#[derive(Deserialize)]
pub struct SecurityQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_security_limit")]
    limit: usize,
}

fn default_security_limit() -> usize {
    100
}

/// `GET /api/v1/security/events`: the security log (refusals that belong to
/// no run), oldest first after `after`.
pub async fn security_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<SecurityQuery>,
) -> Response {
    if let Err(r) = reader(&app, &headers) {
        return r;
    }
    match app.journal().security_log(q.after, q.limit) {
        Ok(events) => Json(json!({"events": events})).into_response(),
        Err(e) => op_error(e.into()),
    }
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    playbook: Option<String>,
    #[serde(default)]
    enriched_steps: Option<usize>,
}

/// The period and filters of a summary request: `from`/`to` RFC 3339
/// (default: the last 7 days), or a 422 naming the field.
pub(super) fn summary_query(
    from: Option<&str>,
    to: Option<&str>,
    playbook: Option<String>,
    enriched_steps: Option<usize>,
) -> Result<crate::operations::metrics::Query, String> {
    let now = crate::journal::now_unix_millis();
    let time = |field: &str, v: Option<&str>, default: u64| match v
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Ok(default),
        Some(text) => crate::journal::parse_unix_millis(text).ok_or_else(|| {
            format!(
                "`{field}`: `{}` is not an RFC 3339 time like 2026-12-01T00:00:00Z",
                crate::inert::line(&text.chars().take(64).collect::<String>())
            )
        }),
    };
    let from_ms = time("from", from, now.saturating_sub(7 * 86_400_000))?;
    let to_ms = time("to", to, now.saturating_add(1))?;
    if from_ms >= to_ms {
        return Err("`from` must be before `to`".into());
    }
    let enriched_steps = enriched_steps.unwrap_or(1);
    crate::operations::metrics::check_enriched_steps(enriched_steps)?;
    Ok(crate::operations::metrics::Query {
        from_ms,
        to_ms,
        playbook: playbook.filter(|p| !p.is_empty()),
        enriched_steps,
    })
}

/// `GET /api/v1/metrics/summary`: investigation compression over a period.
pub async fn metrics_summary(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<SummaryQuery>,
) -> Response {
    if let Err(r) = reader(&app, &headers) {
        return r;
    }
    let query = match summary_query(
        q.from.as_deref(),
        q.to.as_deref(),
        q.playbook,
        q.enriched_steps,
    ) {
        Ok(q) => q,
        Err(m) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"error": m}))).into_response();
        }
    };
    match app.summary(query).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => op_error(e),
    }
}

/// `GET /api/v1/playbooks`: the service catalog.
pub async fn playbooks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = reader(&app, &headers) {
        return r;
    }
    let entries =
        crate::operations::catalog::catalog(&app.playbooks, &app.config, app.engine.host());
    Json(json!({"playbooks": entries})).into_response()
}
