//! `/api/v1/state/...`: the state tables over HTTP, the same operations as
//! `soar state` (`operations::state`). Reading needs a principal who may
//! read; writing, one of the table's `writers` roles.

use super::api::{op_error, reader, with_caller};
use super::intake::{refusal, unavailable};
use super::{auth, App};
use crate::operations::state::{self as ops, Format, Write};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn answer(r: Result<Value, crate::operations::OpError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => op_error(e),
    }
}

fn invalid(message: impl Into<String>) -> Response {
    refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message.into())
}

/// `GET /api/v1/state`: the declared tables.
pub async fn tables(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let list: Vec<Value> = app
        .config
        .tables
        .values()
        .map(|t| {
            json!({"name": t.name, "key": t.key, "description": t.description,
                   "ttl": t.ttl.map(|d| humantime::format_duration(d).to_string()),
                   "schema": t.schema.is_some(), "writers": t.writers})
        })
        .collect();
    with_caller(Json(json!({"tables": list})).into_response(), who)
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
}

/// `GET /api/v1/state/{table}/entries?prefix=&limit=`.
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(100);
    let r = ops::list(app.journal(), &app.config.tables, &table, &q.prefix, limit);
    with_caller(answer(r), who)
}

/// `GET /api/v1/state/{table}/entries/{key}`.
pub async fn get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((table, key)): Path<(String, String)>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    with_caller(
        answer(ops::get(app.journal(), &app.config.tables, &table, &key)),
        who,
    )
}

/// `GET /api/v1/state/{table}/entries/{key}/log`: who set it, when, why.
pub async fn log(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((table, key)): Path<(String, String)>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    with_caller(
        answer(ops::log(app.journal(), &app.config.tables, &table, &key)),
        who,
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    value: Value,
    ttl: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    reason: Option<String>,
}

/// Longest `reason` a write takes.
const MAX_REASON: usize = 1_000;

fn ttl_of(text: Option<&str>) -> Result<Option<Duration>, Response> {
    let Some(t) = text else { return Ok(None) };
    match humantime::parse_duration(t.trim()) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        _ => Err(invalid(format!(
            "`ttl`: `{t}` is not a duration like `7d` or `12h`"
        ))),
    }
}

fn reason_ok(reason: Option<&str>) -> Result<(), Response> {
    match reason {
        Some(r) if r.len() > MAX_REASON => {
            Err(invalid(format!("`reason` is at most {MAX_REASON} bytes")))
        }
        _ => Ok(()),
    }
}

/// `PUT /api/v1/state/{table}/entries/{key}` `{"value": ..., "ttl": "7d", "reason": "..."}`.
pub async fn put(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((table, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let who = match auth::principal(app.policy(), &headers) {
        Ok(w) => w,
        Err(r) => return super::api::refused(&r),
    };
    let b: PutBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let why = format!(
                "the body must be {{\"value\": ..., \"ttl\": \"7d\", \"reason\": TEXT}}: {e}"
            );
            return with_caller(invalid(why), who);
        }
    };
    let checked = ttl_of(b.ttl.as_deref()).and_then(|t| reason_ok(b.reason.as_deref()).map(|()| t));
    let ttl = match checked {
        Ok(t) => t,
        Err(r) => return with_caller(r, who),
    };
    let w = Write {
        who,
        reason: b.reason.as_deref(),
    };
    let r = ops::put(
        app.journal(),
        &app.config.tables,
        &w,
        &table,
        &key,
        b.value,
        ttl,
    );
    with_caller(answer(r), who)
}

/// `DELETE /api/v1/state/{table}/entries/{key}` (`{"reason": "..."}`).
pub async fn delete(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((table, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let who = match auth::principal(app.policy(), &headers) {
        Ok(w) => w,
        Err(r) => return super::api::refused(&r),
    };
    let b: DeleteBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                let why = format!("the body must be {{\"reason\": TEXT}}: {e}");
                return with_caller(invalid(why), who);
            }
        }
    };
    if let Err(r) = reason_ok(b.reason.as_deref()) {
        return with_caller(r, who);
    }
    let w = Write {
        who,
        reason: b.reason.as_deref(),
    };
    let r = ops::delete(app.journal(), &app.config.tables, &w, &table, &key);
    with_caller(answer(r), who)
}

#[derive(Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    reason: Option<String>,
}

/// `POST /api/v1/state/{table}/import?dry_run=true` with a CSV
/// (`text/csv`) or JSON-lines (`application/x-ndjson`) body.
pub async fn import(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ImportQuery>,
    body: axum::body::Bytes,
) -> Response {
    if app.is_stopping() {
        return unavailable();
    }
    let who = match auth::principal(app.policy(), &headers) {
        Ok(w) => w,
        Err(r) => return super::api::refused(&r),
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let format = match media {
        "text/csv" => Format::Csv,
        "application/x-ndjson" | "application/jsonl" => Format::JsonLines,
        other => {
            let why = format!("Content-Type `{other}`: send text/csv or application/x-ndjson");
            let r = refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                why,
            );
            return with_caller(r, who);
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return with_caller(invalid("the body is not UTF-8 text"), who);
    };
    if let Err(r) = reason_ok(q.reason.as_deref()) {
        return with_caller(r, who);
    }
    let w = Write {
        who,
        reason: q.reason.as_deref(),
    };
    let tables = &app.config.tables;
    let r = ops::import(app.journal(), tables, &w, &table, (text, format), q.dry_run);
    with_caller(answer(r), who)
}

/// `GET /api/v1/state/{table}/export`: JSON lines.
pub async fn export(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(table): Path<String>,
) -> Response {
    let who = match reader(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = match ops::export(app.journal(), &app.config.tables, &table) {
        Ok(lines) => {
            let mut text = String::new();
            for l in lines {
                text.push_str(&l.to_string());
                text.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response()
        }
        Err(e) => op_error(e),
    };
    with_caller(r, who)
}
