//! The web console under `/ui`: sign in with a token, the approval queue,
//! an approval page with the whole handoff, evidence, exact inputs, plan
//! and bindings, runs and their timelines. Server-rendered (minijinja,
//! auto-escaped), no external assets, every decision a POST that works
//! without JavaScript; a GET never decides anything. Every state-changing
//! POST carries the session's CSRF token and is refused cross-site. The
//! rules are [`crate::operations`]'s, as for the API and the CLI.

mod charts;
mod graph;
mod session;
mod throttle;
mod views;
mod words;

pub use session::Sessions;
pub use throttle::SignInThrottle;

use super::security::{client_ip, client_text};
use super::App;
use crate::approvals;
use crate::config::{roles, Approver};
use crate::journal::{now_unix_millis, Resolution, RunStatus, SecurityEvent, SecurityKind, Vote};
use crate::operations::{self as ops, OpError};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

/// The console's routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        // Someone who types the server's address lands in the console.
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(|| async { Redirect::to("/ui/approvals") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/approvals", get(queue))
        .route("/ui/overview", get(overview))
        .route("/ui/catalog", get(catalog))
        .route("/ui/runs", get(runs))
        .route("/ui/runs/{run_id}", get(run))
        .route("/ui/runs/{run_id}/events", get(run_events))
        .route("/ui/runs/{run_id}/approvals/{step}", get(approval))
        .route("/ui/runs/{run_id}/approvals/{step}/approve", post(approve))
        .route("/ui/runs/{run_id}/approvals/{step}/deny", post(deny))
        .route("/ui/runs/{run_id}/steps/{step}/resolve", post(resolve))
        .route("/ui/runs/{run_id}/cancel", post(cancel))
}

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        // `.html` names: every value is HTML-escaped unless marked safe, and
        // nothing is. Text first loses what would reorder or hide it on the
        // page (a right-to-left override turns `report\u{202e}fdp.exe` into
        // "reportexe.pdf"): bidi and zero-width controls show as escapes.
        // (Escapes are plain ASCII, so text already escaped stays safe.)
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(text) => {
                let inert = crate::inert::block(text).into_owned();
                let value = if value.is_safe() {
                    minijinja::Value::from_safe_string(inert)
                } else {
                    minijinja::Value::from(inert)
                };
                minijinja::escape_formatter(out, state, &value)
            }
            None => minijinja::escape_formatter(out, state, value),
        });
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("queue.html", include_str!("templates/queue.html")),
            ("approval.html", include_str!("templates/approval.html")),
            ("timeline.html", include_str!("templates/timeline.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("run.html", include_str!("templates/run.html")),
            ("refused.html", include_str!("templates/refused.html")),
            ("rows.html", include_str!("templates/rows.html")),
            ("overview.html", include_str!("templates/overview.html")),
            ("catalog.html", include_str!("templates/catalog.html")),
        ] {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(template = name, error = %e, "console template does not compile");
            }
        }
        env
    })
}

/// A page, or a plain error when its template fails.
fn page(status: StatusCode, name: &str, ctx: Value) -> Response {
    let rendered = templates().get_template(name).and_then(|t| t.render(&ctx));
    let mut r = match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    };
    let h = r.headers_mut();
    // Nothing from elsewhere, no framing, no caching of decisions' pages.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A page for a signed-in principal: their name and CSRF token added.
fn page_for(status: StatusCode, name: &str, me: &Me, mut ctx: Value) -> Response {
    ctx["who"] = json!(me.who.name);
    ctx["csrf"] = json!(me.session.csrf);
    page(status, name, ctx)
}

/// The signed-in principal of a request.
struct Me {
    session: session::Session,
    who: Approver,
}

fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

/// To sign in, then back to `here` (a deep link, e.g. Slack's "Open in
/// soar", survives sign-in).
fn to_login_then(here: &Uri) -> Response {
    let here = here.path_and_query().map_or("", |p| p.as_str());
    if next_path(here) == "/ui/approvals" && here != "/ui/approvals" {
        return to_login();
    }
    let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
    Redirect::to(&format!("/ui/login?next={next}")).into_response()
}

/// The request's session and principal, or a redirect to sign in and then
/// back to `here`.
fn me(app: &App, headers: &HeaderMap, here: &Uri) -> Result<Me, Response> {
    let session = app
        .sessions
        .get(headers)
        .ok_or_else(|| to_login_then(here))?;
    let who = app
        .policy()
        .approvers
        .get(&session.principal)
        .cloned()
        .ok_or_else(to_login)?;
    Ok(Me { session, who })
}

/// A signed-in principal whose roles let them read runs; else the
/// redirect to sign in, or a page saying why not.
fn reader(app: &App, headers: &HeaderMap, here: &Uri) -> Result<Me, Response> {
    let me = me(app, headers, here)?;
    if !approvals::may_read(&me.who) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "Your roles do not let you read runs.",
        ));
    }
    Ok(me)
}

/// A POST's request line, client and session principal, for the security log.
struct Origin<'a> {
    uri: &'a Uri,
    ext: &'a Extensions,
}

impl Origin<'_> {
    fn refused(&self, app: &App, kind: SecurityKind, principal: Option<String>, detail: &str) {
        let event = SecurityEvent {
            kind,
            client: client_text(self.ext),
            principal,
            request: format!("POST {}", crate::inert::line(self.uri.path())),
            detail: detail.to_string(),
            unlogged_before: 0,
        };
        app.security.record(app.journal(), event);
    }
}

/// The principal of a state-changing POST: signed in, same site, and the
/// session's CSRF token in the form. A refusal is journaled in the
/// security log with the client's address.
fn poster(app: &App, headers: &HeaderMap, origin: &Origin, csrf: &str) -> Result<Me, Response> {
    if session::cross_site(headers) {
        let principal = app.sessions.get(headers).map(|s| s.principal);
        origin.refused(
            app,
            SecurityKind::CrossSiteRefused,
            principal,
            "the browser says it came from another site",
        );
        return Err(refused(StatusCode::FORBIDDEN, CROSS_SITE));
    }
    let me = me(app, headers, origin.uri)?;
    if !session::csrf_matches(&me.session, csrf) {
        let principal = Some(me.who.name.clone());
        origin.refused(
            app,
            SecurityKind::CsrfRefused,
            principal,
            "the form's CSRF token is not its session's",
        );
        return Err(refused(
            StatusCode::FORBIDDEN,
            "The form's CSRF token does not match your session, so nothing was changed. Reload the page and try again.",
        ));
    }
    Ok(me)
}

const CROSS_SITE: &str = "This request came from another site, so it was refused and nothing was changed. If you meant it, open soar directly and do it there.";

/// A page that says what was refused and why; nothing else on it.
fn refused(status: StatusCode, why: &str) -> Response {
    page(status, "refused.html", json!({"error": why}))
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_page(State(app): State<Arc<App>>, Query(q): Query<NextQuery>) -> Response {
    let ttl = views::duration_text(app.sessions.ttl().as_millis() as u64);
    let next = next_path(&q.next);
    page(
        StatusCode::OK,
        "login.html",
        json!({"next": next, "ttl": ttl}),
    )
}

/// The sign-in form again, with why it failed.
fn login_again(app: &App, status: StatusCode, error: &str, next: &str) -> Response {
    let ttl = views::duration_text(app.sessions.ttl().as_millis() as u64);
    let ctx = json!({"error": error, "next": next_path(next), "ttl": ttl});
    page(status, "login.html", ctx)
}

/// 429 with `Retry-After`; the first refusal of a lockout is journaled.
fn locked_out(
    app: &App,
    origin: &Origin,
    lockout: throttle::Lockout,
    principal: Option<String>,
    next: &str,
) -> Response {
    let secs = lockout.retry_after.as_secs();
    if lockout.first {
        let detail = match &principal {
            Some(p) => format!("too many sessions opened for {p}; locked out for {secs} s"),
            None => format!("too many sign-in attempts from this address; locked out for {secs} s"),
        };
        origin.refused(app, SecurityKind::SignInLockedOut, principal, &detail);
    }
    let error = format!("Too many sign-in attempts. Try again in {secs} seconds.");
    let mut r = login_again(app, StatusCode::TOO_MANY_REQUESTS, &error, next);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    r
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ext: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let origin = Origin {
        uri: &uri,
        ext: &ext,
    };
    if session::cross_site(&headers) {
        origin.refused(
            &app,
            SecurityKind::CrossSiteRefused,
            None,
            "a sign-in from another site",
        );
        return refused(StatusCode::FORBIDDEN, CROSS_SITE);
    }
    if let Err(lockout) = app.sign_in.attempt(client_ip(&ext)) {
        return locked_out(&app, &origin, lockout, None, &form.next);
    }
    let ttl = app.sessions.ttl();
    let who = match approvals::authenticate_token(app.policy(), Some(&form.token)) {
        Ok(w) => w,
        Err(_) => {
            let error = "that token is not any principal's";
            return login_again(&app, StatusCode::UNAUTHORIZED, error, &form.next);
        }
    };
    if let Err(lockout) = app.sign_in.session(&who.name) {
        return locked_out(&app, &origin, lockout, Some(who.name.clone()), &form.next);
    }
    let Some(id) = app.sessions.open(&who.name) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no session can be opened now",
        )
            .into_response();
    };
    let mut r = Redirect::to(next_path(&form.next)).into_response();
    let cookie = session::set_cookie(&id, ttl, app.config.server.tls.is_some());
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    tracing::info!(principal = %who.name, "console sign-in");
    r
}

/// Where a sign-in goes next: a console path on this server, in visible
/// ASCII (no line break to become a header, no `\` a browser reads as
/// `/`), else the queue. Never an open redirect, never a 500.
fn next_path(asked: &str) -> &str {
    let safe = asked.starts_with("/ui/")
        && asked.len() <= 2_048
        && asked.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if safe {
        asked
    } else {
        "/ui/approvals"
    }
}

#[derive(Deserialize, Default)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    outcome: String,
}

async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ext: Extensions,
    Form(form): Form<CsrfForm>,
) -> Response {
    let origin = Origin {
        uri: &uri,
        ext: &ext,
    };
    if let Err(r) = poster(&app, &headers, &origin, &form.csrf) {
        return r;
    }
    app.sessions.close(&headers);
    let mut r = to_login();
    if let Ok(v) =
        header::HeaderValue::from_str(&session::clear_cookie(app.config.server.tls.is_some()))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn queue(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let me = match reader(&app, &headers, &uri) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = now_unix_millis();
    let mut entries = ops::pending(app.journal(), now, None).unwrap_or_default();
    entries.sort_by(|a, b| a["requested_at"].as_str().cmp(&b["requested_at"].as_str()));
    let rows: Vec<Value> = entries
        .iter()
        .map(|p| {
            let expires = p["expires_at"]
                .as_str()
                .and_then(crate::journal::parse_unix_millis)
                .unwrap_or(0);
            let voted = p["approved_by"].as_array().cloned().unwrap_or_default();
            let needed = p["min_approvals"]
                .as_u64()
                .unwrap_or(1)
                .saturating_sub(voted.len() as u64);
            json!({
                "run_id": p["run_id"], "step": p["step"], "playbook": p["playbook"],
                "summary": views::shown(&p["handoff"]["summary"]),
                "age": views::duration_text(p["age_seconds"].as_u64().unwrap_or(0) * 1000),
                "left": views::duration_text(expires.saturating_sub(now)),
                "expired": p["expired"], "voted": voted, "needed": needed,
            })
        })
        .collect();
    page_for(StatusCode::OK, "queue.html", &me, json!({"pending": rows}))
}

#[derive(Deserialize)]
pub struct OverviewQuery {
    #[serde(default = "seven")]
    days: u64,
}

fn seven() -> u64 {
    7
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{:.0}%", r * 100.0))
}

fn median(d: &crate::operations::metrics::Dist) -> String {
    match d.p50 {
        None => "n/a".into(),
        Some(s) if s < 10.0 => format!("{s:.1}s"),
        Some(s) => views::duration_text((s * 1000.0) as u64),
    }
}

/// The Overview: is automation helping? Figures and charts from the
/// journal over the last `days` (1 to 366).
async fn overview(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let me = match reader(&app, &headers, &uri) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = now_unix_millis();
    let query = crate::operations::metrics::Query {
        from_ms: now.saturating_sub(q.days.clamp(1, 366) * 86_400_000),
        to_ms: now + 1,
        playbook: None,
        enriched_steps: 1,
    };
    let Ok(s) = app.summary(query).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the summary failed").into_response();
    };
    let t = &s.total;
    let playbooks: Vec<Value> = s
        .playbooks
        .iter()
        .map(|(name, f)| {
            json!({"name": name, "f": f, "automation": pct(f.automation_rate), "acceptance": pct(f.approvals.acceptance_rate),
                   "decision": median(&f.time_to_decision_s), "repeats": pct(f.repeat_alerts.rate)})
        })
        .collect();
    let ctx = json!({
        "s": s, "t": t, "playbooks": playbooks,
        "pct": {"automation": pct(t.automation_rate), "acceptance": pct(t.approvals.acceptance_rate),
                "repeats": pct(t.repeat_alerts.rate), "responses": pct(t.response_actions.success_rate)},
        "secs": {"enriched": median(&t.time_to_enriched_s), "decision": median(&t.time_to_decision_s)},
        "days": charts::per_day(&s), "times": charts::decision_times(&s), "mix": charts::closure_mix(&s),
    });
    page_for(StatusCode::OK, "overview.html", &me, ctx)
}

/// The service catalog: each playbook's owner, purpose, inputs and
/// sources, response actions, escalation and known limits.
async fn catalog(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let me = match reader(&app, &headers, &uri) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let entries = ops::catalog::catalog(&app.playbooks, &app.config, app.engine.host());
    page_for(
        StatusCode::OK,
        "catalog.html",
        &me,
        json!({"playbooks": entries}),
    )
}

#[derive(Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    status: String,
}

async fn runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<RunsQuery>,
) -> Response {
    let me = match reader(&app, &headers, &uri) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let filter = (!q.status.is_empty()).then_some(q.status.as_str());
    let rows = ops::list_runs(app.journal(), filter).unwrap_or_default();
    let statuses: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    page_for(
        StatusCode::OK,
        "runs.html",
        &me,
        json!({"runs": rows, "statuses": statuses, "status": q.status}),
    )
}

fn run_ctx(app: &App, run_id: &str, me: &Me, message: Option<String>) -> Result<Value, Response> {
    let records = ops::read_run(app.journal(), run_id).map_err(not_found)?;
    let state = crate::scheduler::RunState::from_records(&records);
    let report = crate::scheduler::RunReport::from_records(run_id, &records, None);
    let pb = app.playbook_for(&records).ok();
    let skipped = views::skip_reasons(&records);
    let destructive = |uses: &str| is_destructive(app, uses);
    let ids = views::graph_order(pb.as_deref(), &report);
    let steps: Vec<Value> = ids
        .iter()
        .map(|id| {
            let s = report.steps.get(id);
            let status = s.map_or("pending", |s| s.status.as_str());
            let outcome = views::outcome(s, skipped.get(id));
            json!({"id": id, "status": status, "outcome": outcome, "approval": state.gates.contains_key(id)})
        })
        .collect();
    let status: std::collections::BTreeMap<String, String> = report
        .steps
        .iter()
        .map(|(id, s)| (id.clone(), s.status.clone()))
        .collect();
    let graph = pb
        .as_deref()
        .map(|pb| graph::layout(pb, &status, &destructive));
    let banner = pb
        .as_deref()
        .and_then(|pb| views::banner(pb, &report, &state, &skipped, &destructive));
    let in_doubt: Vec<&String> = report
        .steps
        .iter()
        .filter(|(_, s)| s.status == "in_doubt")
        .map(|(id, _)| id)
        .collect();
    Ok(json!({
        "run_id": run_id, "playbook": state.playbook, "started_by": state.started_by,
        "status": report.status.as_str(), "final": report.status.is_final(),
        "steps": steps, "graph": graph, "banner": banner,
        "in_doubt": in_doubt, "operator": me.who.has_role(roles::OPERATOR),
        "timeline": views::timeline(&records), "message": message,
        "last_seq": records.last().map(|r| r.seq).unwrap_or(0),
    }))
}

/// Whether `plugin.action` changes the world (its manifest, as tightened
/// by the operator).
fn is_destructive(app: &App, uses: &str) -> bool {
    uses.split_once('.')
        .and_then(|(p, a)| Some(app.engine.host().plugin(p)?.manifest.action(a)?.destructive))
        .unwrap_or(false)
}

fn not_found(e: OpError) -> Response {
    match e {
        OpError::NotFound(_) => (StatusCode::NOT_FOUND, "no such run").into_response(),
        other => {
            tracing::error!(error = %other, "console read failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the run could not be read",
            )
                .into_response()
        }
    }
}

async fn run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(run_id): Path<String>,
) -> Response {
    let me = match reader(&app, &headers, &uri) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match run_ctx(&app, &run_id, &me, None) {
        Ok(ctx) => page_for(StatusCode::OK, "run.html", &me, ctx),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct AfterQuery {
    #[serde(default)]
    after: u64,
}

/// The run's records as they are journaled, for its page's live timeline.
async fn run_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(run_id): Path<String>,
    Query(q): Query<AfterQuery>,
) -> Response {
    let me = match me(&app, &headers, &uri) {
        Ok(m) => m,
        Err(_) => return (StatusCode::UNAUTHORIZED, "sign in").into_response(),
    };
    if !approvals::may_read(&me.who) {
        return (StatusCode::FORBIDDEN, "your roles do not let you read runs").into_response();
    }
    if let Err(e) = ops::read_run(app.journal(), &run_id) {
        return not_found(e);
    }
    let after = q.after.max(super::api::last_event_id(&headers));
    super::api::record_stream(app, run_id, after)
}

async fn approval(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path((run_id, step)): Path<(String, String)>,
) -> Response {
    let me = match reader(&app, &headers, &uri) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let records = match ops::read_run(app.journal(), &run_id) {
        Ok(r) => r,
        Err(e) => return not_found(e),
    };
    let state = crate::scheduler::RunState::from_records(&records);
    let Some(gate) = state.gates.get(&step) else {
        return (StatusCode::NOT_FOUND, "no such approval").into_response();
    };
    let now = now_unix_millis();
    // The same check the vote will pass, shown before anyone clicks.
    let why_not = approvals::check_vote(app.policy(), &state, &step, &me.who, now)
        .err()
        .map(|r| r.to_string());
    let pb = app.playbook_for(&records).ok();
    let votes: Vec<Value> = gate
        .votes
        .iter()
        .map(|(by, vote, reason)| json!({"by": by, "vote": vote, "reason": reason}))
        .collect();
    let left = (gate.decision.is_none() && now < gate.expires_at_ms)
        .then(|| views::duration_text(gate.expires_at_ms - now));
    let describe = |uses: &str| describe_action(&app, uses);
    let criticality = |keys: &[String]| criticality(&app, keys, now);
    let lookups = views::Lookups {
        describe: &describe,
        criticality: &criticality,
    };
    let (unlocks, blocked) = views::unlocks(
        gate,
        &state,
        &run_id,
        pb.as_deref(),
        (app.policy(), &lookups),
    );
    let ctx = json!({
        "run_id": run_id, "step": step, "playbook": state.playbook, "started_by": state.started_by,
        // A heading, not an essay: the whole summary is in the handoff below.
        "summary": words::cut(&views::shown(&gate.handoff["summary"]), 200),
        "approvers": gate.approvers, "min_approvals": gate.min_approvals,
        "gate_status": views::gate_status(gate, now), "left": left, "votes": votes,
        "decided": gate.decision.is_some(),
        "handoff": views::handoff(gate), "unlocks": unlocks, "blocked": blocked,
        "plan": views::plan(gate), "bindings": gate.bindings,
        "alert": views::rows(&state.alert), "alert_raw": views::shown(&state.alert),
        "upstream": views::upstream(&state), "grouped": views::grouped(&state),
        "timeline": views::timeline(&records), "why_not": why_not,
        "last_seq": records.last().map(|r| r.seq).unwrap_or(0),
    });
    page_for(StatusCode::OK, "approval.html", &me, ctx)
}

/// How `plugin.action` describes itself in its manifest.
fn describe_action(app: &App, uses: &str) -> Option<String> {
    let (plugin, action) = uses.split_once('.')?;
    let p = app.engine.host().plugin(plugin)?;
    let text = p.manifest.action(action)?.description.clone();
    (!text.is_empty()).then_some(text)
}

/// The criticality a state table gives any of `keys` (a target's id or
/// names, looked up lower-cased, as the shipped playbooks key them): the
/// entry's `criticality` field and the table's name.
fn criticality(app: &App, keys: &[String], now_ms: u64) -> Option<String> {
    let store = app.journal().state();
    app.config.tables.keys().find_map(|table| {
        keys.iter().take(8).find_map(|k| {
            let entry = store.get(table, &k.to_lowercase(), now_ms).ok()??;
            let level = entry.value["criticality"].as_str()?;
            Some(format!("{level} (state table `{table}`)"))
        })
    })
}

/// After a POST: the run's page with what happened.
fn after(app: &App, run_id: &str, me: &Me, status: StatusCode, message: String) -> Response {
    match run_ctx(app, run_id, me, Some(message)) {
        Ok(ctx) => page_for(status, "run.html", me, ctx),
        Err(r) => r,
    }
}

fn refused_page(app: &App, run_id: &str, me: &Me, e: OpError) -> Response {
    let (status, message) = match &e {
        OpError::Refused(r) => (
            StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::FORBIDDEN),
            format!("refused: {r} (journaled)"),
        ),
        OpError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
        OpError::NotFound(_) => return not_found(e),
        OpError::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, m.clone()),
    };
    after(app, run_id, me, status, message)
}

async fn decide(
    app: Arc<App>,
    (headers, origin): (HeaderMap, Origin<'_>),
    run_id: String,
    step: String,
    vote: Vote,
    form: CsrfForm,
) -> Response {
    let me = match poster(&app, &headers, &origin, &form.csrf) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if app.is_stopping() {
        return after(
            &app,
            &run_id,
            &me,
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping; try again shortly".into(),
        );
    }
    if form.reason.len() > 4096 {
        return after(
            &app,
            &run_id,
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            "the reason is longer than 4096 bytes".into(),
        );
    }
    let result = app
        .vote(&run_id, &step, &me.who, vote, &form.reason, None)
        .await;
    match result {
        Ok(ops::VoteResult::Recorded { have, need }) => after(
            &app,
            &run_id,
            &me,
            StatusCode::OK,
            format!("vote recorded: {have} of {need} approval(s)"),
        ),
        Ok(ops::VoteResult::Decided { decision, by }) => {
            app.settled(&run_id, std::time::Duration::from_secs(10))
                .await;
            after(
                &app,
                &run_id,
                &me,
                StatusCode::OK,
                format!(
                    "approval `{step}` {} by {}",
                    decision.as_str(),
                    by.join(", ")
                ),
            )
        }
        Err(e) => refused_page(&app, &run_id, &me, e),
    }
}

async fn approve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ext: Extensions,
    Path((run_id, step)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let origin = Origin {
        uri: &uri,
        ext: &ext,
    };
    decide(app, (headers, origin), run_id, step, Vote::Approve, form).await
}

async fn deny(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ext: Extensions,
    Path((run_id, step)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let origin = Origin {
        uri: &uri,
        ext: &ext,
    };
    decide(app, (headers, origin), run_id, step, Vote::Deny, form).await
}

async fn resolve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ext: Extensions,
    Path((run_id, step)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let origin = Origin {
        uri: &uri,
        ext: &ext,
    };
    let me = match poster(&app, &headers, &origin, &form.csrf) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let outcome = match form.outcome.as_str() {
        "done" => Resolution::Done,
        "failed" => Resolution::Failed,
        "retry" => Resolution::Retry,
        _ => {
            return after(
                &app,
                &run_id,
                &me,
                StatusCode::UNPROCESSABLE_ENTITY,
                "choose an outcome: done, failed or retry".into(),
            )
        }
    };
    let result = app
        .resolve(&run_id, &step, &me.who, outcome, &form.reason)
        .await;
    match result {
        Ok(_) => {
            app.settled(&run_id, std::time::Duration::from_secs(10))
                .await;
            after(
                &app,
                &run_id,
                &me,
                StatusCode::OK,
                format!("`{step}` resolved"),
            )
        }
        Err(e) => refused_page(&app, &run_id, &me, e),
    }
}

async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ext: Extensions,
    Path(run_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let origin = Origin {
        uri: &uri,
        ext: &ext,
    };
    let me = match poster(&app, &headers, &origin, &form.csrf) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let result = app.cancel(&run_id, &me.who, &form.reason).await;
    match result {
        Ok(()) => {
            app.settled(&run_id, std::time::Duration::from_secs(10))
                .await;
            after(
                &app,
                &run_id,
                &me,
                StatusCode::OK,
                "cancel requested".into(),
            )
        }
        Err(e) => refused_page(&app, &run_id, &me, e),
    }
}
