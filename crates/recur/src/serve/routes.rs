//! recur's own endpoints: `/v1/score`, `/v1/score/batch`, the streaming `/v1/tickets/{id}`
//! routes, `/metrics` and the admin reload.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use recur_data::schema::Ticket;
use serde_json::{json, Value};

use super::error::ApiError;
use super::request::{self, field, object};
use super::state::AppState;

/// The body, or 413/400 as JSON.
pub fn body(s: &AppState, b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(s.cfg.max_body_bytes),
        _ => ApiError::BadRequest(format!("cannot read the body: {e}")),
    })
}

/// `POST /v1/score`: `{"ticket_id", "events": [...]}` → `{"ticket_id", "probability", "route", "model_version"}`.
/// The body is parsed here; the model work is queued on the pool (micro-batched).
pub async fn score(State(s): State<Arc<AppState>>, b: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let b = body(&s, b)?;
    let m = s.model.load_full();
    let t = request::ticket(&request::parse_json(&b)?, "", &m.pre.numeric_columns, s.cfg.max_events)?;
    let unknown = m.unknown_types(&t.events);
    let ticket = Ticket {
        id: t.ticket_id,
        events: t.events,
        escalated_at_ms: None,
    };
    let id = ticket.id.clone();
    let p = s.pool.score(s.cfg.timeout, m.clone(), ticket).await?;
    s.metrics.unknown_event_types.fetch_add(unknown, Ordering::Relaxed);
    s.metrics.scores.fetch_add(1, Ordering::Relaxed);
    Ok(Json(
        json!({"ticket_id": id, "probability": p, "route": m.route(p), "model_version": m.version}),
    ))
}

/// `POST /v1/score/batch`: `{"tickets": [...]}` → `{"results": [...]}`, scored as one batch.
pub async fn score_batch(
    State(s): State<Arc<AppState>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(&s, b)?;
    let st = s.clone();
    let v = s
        .run(move || {
            let m = st.model.load_full();
            let v = request::parse_json(&b)?;
            let arr = field(object(&v, "body")?, "", "tickets")?
                .as_array()
                .ok_or_else(|| ApiError::BadRequest("`tickets` must be an array".into()))?;
            if arr.len() > st.cfg.max_batch {
                return Err(ApiError::unprocessable(
                    "too_many_tickets",
                    format!("`tickets` has {} tickets; the limit is {}", arr.len(), st.cfg.max_batch),
                ));
            }
            let cols = &m.pre.numeric_columns;
            let tickets = arr
                .iter()
                .enumerate()
                .map(|(i, t)| request::ticket(t, &format!("tickets[{i}]"), cols, st.cfg.max_events))
                .collect::<Result<Vec<_>, _>>()?;
            let seqs: Vec<&[_]> = tickets.iter().map(|t| t.events.as_slice()).collect();
            let probs = m.score(&seqs)?;
            let unknown: u64 = seqs.iter().map(|e| m.unknown_types(e)).sum();
            st.metrics.unknown_event_types.fetch_add(unknown, Ordering::Relaxed);
            st.metrics.scores.fetch_add(tickets.len() as u64, Ordering::Relaxed);
            let results: Vec<Value> = tickets
                .iter()
                .zip(probs)
                .map(|(t, p)| json!({"ticket_id": t.ticket_id, "probability": p, "route": m.route(p), "model_version": m.version}))
                .collect();
            Ok(json!({ "results": results }))
        })
        .await?;
    Ok(Json(v))
}

fn check_ticket_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 256 {
        return Err(ApiError::BadRequest("ticket id must have 1 to 256 bytes".into()));
    }
    Ok(())
}

fn store(s: &AppState) -> Result<Arc<super::store::TicketStore>, ApiError> {
    s.store
        .clone()
        .ok_or_else(|| ApiError::Conflict("streaming is off: start the server with --state FILE".into()))
}

/// `POST /v1/tickets/{id}/events`: `{"events": [...]}` (or one event object) appended to an
/// open ticket (opened on first use) → `{"ticket_id", "probability", "route", "events", "model_version"}`.
pub async fn append(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(&s, b)?;
    check_ticket_id(&id)?;
    let store = store(&s)?;
    let st = s.clone();
    let v = s
        .run(move || {
            let m = st.model.load_full();
            if !m.streamable() {
                return Err(ApiError::Conflict(
                    "streaming needs a unidirectional model; the served model is bidirectional (use /v1/score)".into(),
                ));
            }
            let v = request::parse_json(&b)?;
            let cols = &m.pre.numeric_columns;
            let events = match object(&v, "body")?.get("events") {
                Some(e) => request::events(e, "events", cols, st.cfg.max_events)?,
                None => vec![request::event(&v, "body", cols)?],
            };
            let a = store.append(&m, &id, &events, st.cfg.max_events)?;
            st.metrics
                .unknown_event_types
                .fetch_add(m.unknown_types(&events), Ordering::Relaxed);
            st.metrics.scores.fetch_add(1, Ordering::Relaxed);
            let p = a.record.probability;
            Ok(
                json!({"ticket_id": id, "probability": p, "route": m.route(p), "events": a.record.state.steps,
                "model_version": m.version, "replayed": a.replayed}),
            )
        })
        .await?;
    Ok(Json(v))
}

/// `GET /v1/tickets/{id}`: the open ticket's latest probability.
pub async fn get_ticket(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    check_ticket_id(&id)?;
    let store = store(&s)?;
    let st = s.clone();
    s.run(move || {
        let r = store
            .get(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("ticket `{id}` is not open")))?;
        let m = st.model.load();
        Ok(Json(
            json!({"ticket_id": id, "probability": r.probability, "route": m.route(r.probability),
            "events": r.state.steps, "model_version": r.version}),
        ))
    })
    .await
}

/// `DELETE /v1/tickets/{id}`: closes the ticket and forgets its state.
pub async fn close_ticket(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    check_ticket_id(&id)?;
    let store = store(&s)?;
    s.run(move || match store.close(&id)? {
        true => Ok(Json(json!({"ticket_id": id, "closed": true}))),
        false => Err(ApiError::NotFound(format!("ticket `{id}` is not open"))),
    })
    .await
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let m = s.model.load();
    let open = match &s.store {
        Some(st) => {
            let st = st.clone();
            tokio::task::spawn_blocking(move || st.open_tickets().unwrap_or(0))
                .await
                .unwrap_or(0) as f64
        }
        None => 0.0,
    };
    let gauges = [
        (
            "recur_ready",
            "1 when ready for traffic, 0 while draining.",
            f64::from(u8::from(s.ready())),
        ),
        (
            "recur_in_flight_requests",
            "Requests being served.",
            s.in_flight.load(Ordering::Relaxed) as f64,
        ),
        (
            "recur_pool_queued_jobs",
            "Scoring jobs waiting for a thread.",
            s.pool.queued() as f64,
        ),
        ("recur_pool_workers", "Scoring threads.", s.pool.workers() as f64),
        ("recur_open_tickets", "Open streaming tickets.", open),
    ];
    let text = s.metrics.render((&s.cfg.name, &m.version), &gauges);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Constant-time comparison of the bearer token.
fn authorized(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.cfg.admin_token else {
        return Err(ApiError::NotFound("no such route".into()));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |d, (x, y)| d | usize::from(x ^ y));
    if diff == 0 {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `POST /admin/reload` (only with an admin token): reload the model directory now.
pub async fn admin_reload(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorized(&s, &headers)?;
    let previous = s.model.load().version.clone();
    match s.reload().await {
        Ok(v) => Ok(Json(json!({"model_version": v, "previous_version": previous}))),
        Err(e) => Err(ApiError::unprocessable(
            "reload_rejected",
            format!("candidate rejected, version {previous} keeps serving: {e}"),
        )),
    }
}
