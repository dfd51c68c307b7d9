//! `POST /hooks/{source}`: alert intake. In order: size (413), proof of
//! origin over the raw bytes (401; before the rate limit, so forged
//! requests cannot spend a source's budget), rate (429), JSON (415), the
//! playbook's inputs (422), then a durable start (202). A redelivery, by
//! dedup key or delivery id, answers the run it already started.

use super::auth::{self, BadSignature};
use super::App;
use crate::config::{roles, Source, SourceAuth};
use crate::observe;
use crate::scheduler::{Begun, Claim, EngineError};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest delivery id kept (they are UUIDs or short tokens in practice).
const MAX_DELIVERY_ID: usize = 200;

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

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// The delivery id claim, if the source names a header and it is present.
fn delivery_claim(source: &Source, headers: &HeaderMap) -> Result<Option<Claim>, Response> {
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
    Ok(Some(Claim {
        key: format!("delivery:{}:{id}", source.name),
        window: Some(source.delivery_window),
    }))
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

/// Who starts the run: the source, or the ingest principal of a bearer source.
fn starter(app: &App, source: &Source, headers: &HeaderMap) -> Result<String, Response> {
    match &source.auth {
        SourceAuth::Bearer => {
            let who = auth::principal(app.policy(), headers)
                .map_err(|r| refusal(StatusCode::UNAUTHORIZED, r.kind(), r.to_string()))?;
            crate::approvals::require_role(who, roles::INGEST, "deliver")
                .map_err(|r| refusal(StatusCode::FORBIDDEN, r.kind(), r.to_string()))?;
            Ok(who.name.clone())
        }
        _ => Ok(format!("source:{}", source.name)),
    }
}

/// The handler.
pub async fn deliver(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(source) = app.config.sources.get(&name) else {
        return refusal(StatusCode::NOT_FOUND, "unknown_source", "no such source");
    };
    let (response, outcome) = intake(&app, source, &headers, body).await;
    observe::webhook(&source.name, outcome);
    tracing::info!(source = %source.name, outcome, status = response.status().as_u16(), "delivery");
    response
}

async fn intake(
    app: &Arc<App>,
    source: &Source,
    headers: &HeaderMap,
    body: Body,
) -> (Response, &'static str) {
    if app.is_stopping() {
        return (unavailable(), "unavailable");
    }
    let bytes = match read_body(source, headers, body).await {
        Ok(b) => b,
        Err(r) => return (r, "too_large"),
    };
    let now_s = (crate::journal::now_unix_millis() / 1000) as i64;
    if let Err(bad) = auth::verify_delivery(&source.auth, headers, &bytes, now_s) {
        if bad == BadSignature::NoSecret {
            tracing::error!(source = %source.name, "the source's signing secret cannot be loaded");
        }
        let r = refusal(StatusCode::UNAUTHORIZED, bad.outcome(), bad.message());
        return (r, bad.outcome());
    }
    let started_by = match starter(app, source, headers) {
        Ok(s) => s,
        Err(r) => return (r, "bad_signature"),
    };
    if let Err(wait) = app.rate_check(source) {
        return (rate_limited(wait), "rate_limited");
    }
    if !is_json(headers) {
        let r = refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_json",
            "send the alert as `Content-Type: application/json`",
        );
        return (r, "invalid");
    }
    let alert: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!(
                "the body is not JSON: line {} column {}: {e}",
                e.line(),
                e.column()
            );
            return (
                refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json", msg),
                "invalid",
            );
        }
    };
    let claims = match delivery_claim(source, headers) {
        Ok(c) => c.into_iter().collect(),
        Err(r) => return (r, "invalid"),
    };
    let Some(pb) = app.playbooks.at(&source.playbook).cloned() else {
        let r = refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_playbook",
            "the source's playbook is not loaded",
        );
        return (r, "invalid");
    };
    start(app, pb, alert, &started_by, claims).await
}

/// Starts a run and answers once its start is durable; shared with
/// `POST /api/v1/runs`.
pub async fn start(
    app: &Arc<App>,
    pb: Arc<crate::playbook::Playbook>,
    alert: Value,
    started_by: &str,
    claims: Vec<Claim>,
) -> (Response, &'static str) {
    match app.engine.begin(pb, alert, started_by, claims).await {
        Ok(Begun::Existing(report)) => {
            let body = json!({"run_id": report.run_id, "status": report.status.as_str(), "deduplicated": true});
            (
                (StatusCode::ACCEPTED, Json(body)).into_response(),
                "duplicate",
            )
        }
        Ok(Begun::New { run_id, drive }) => {
            app.drive_new(&run_id, drive);
            let body = json!({"run_id": run_id, "status": "running", "deduplicated": false});
            (
                (StatusCode::ACCEPTED, Json(body)).into_response(),
                "accepted",
            )
        }
        Err(EngineError::Input(problems)) => {
            let body = json!({
                "error": "invalid_alert",
                "message": EngineError::Input(problems.clone()).to_string(),
                "problems": problems,
            });
            (
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response(),
                "invalid",
            )
        }
        Err(e @ EngineError::Dedup(_)) => (
            refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_alert",
                e.to_string(),
            ),
            "invalid",
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a run");
            (
                refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "journal",
                    "the run could not be started durably; deliver again",
                ),
                "error",
            )
        }
    }
}
