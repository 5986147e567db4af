//! The Open Inference Protocol (KServe V2) over REST, so recur drops into KServe- and
//! Triton-style fleets: health, server and model metadata, model readiness and inference.
//!
//! Tensors of the `escalation` model (`-1` = variable):
//! * input `event_type` BYTES `[B, T]`: event types (the server applies the vocabulary);
//! * input `timestamp` INT64 or FP64 `[B, T]`: epoch seconds (or BYTES: RFC 3339 text);
//! * input `event_features` FP32 `[B, T, F]`, optional: the raw numeric columns in the order
//!   of the metadata's `parameters.numeric_columns` (`null` = missing), scaled by the server;
//! * input `lengths` INT64 `[B]`, optional: real events per row (default `T`);
//! * output `escalation_probability` FP32 `[B, 1]` and `route` BYTES `[B, 1]`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use recur_data::schema::Event;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::request::{self, field, object};
use super::routes::body;
use super::state::AppState;

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({"name": "recur", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
}

/// `GET /v2/health/live`: 200 while the process runs.
pub async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// `GET /v2/health/ready`: 200 when ready, 503 while draining.
pub async fn ready(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    if s.ready() {
        Ok(Json(json!({"ready": true})))
    } else {
        Err(ApiError::Unavailable("shutting down".into()))
    }
}

/// Path parameters: the model name and optionally its version.
fn check_model(s: &AppState, name: &str, version: Option<&str>) -> Result<(), ApiError> {
    if name != s.cfg.name {
        return Err(ApiError::NotFound(format!("unknown model `{}`", name.escape_debug())));
    }
    let served = s.model.load().version.clone();
    match version {
        Some(v) if v != served => Err(ApiError::NotFound(format!(
            "model `{name}` has version `{served}`, not `{}`",
            v.escape_debug()
        ))),
        _ => Ok(()),
    }
}

/// `{name}` or `{name}/versions/{version}` path parameters.
#[derive(Debug, serde::Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

/// `GET /v2/models/{name}[/versions/{v}]`: model metadata.
pub async fn model_metadata(State(s): State<Arc<AppState>>, Path(p): Path<ModelPath>) -> Result<Json<Value>, ApiError> {
    check_model(&s, &p.name, p.version.as_deref())?;
    let m = s.model.load();
    let f = m.pre.numeric_columns.len() as i64;
    Ok(Json(json!({
        "name": s.cfg.name,
        "versions": [m.version],
        "platform": "recur",
        "inputs": [
            {"name": "event_type", "datatype": "BYTES", "shape": [-1, -1]},
            {"name": "timestamp", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "event_features", "datatype": "FP32", "shape": [-1, -1, f], "optional": true},
            {"name": "lengths", "datatype": "INT64", "shape": [-1], "optional": true},
        ],
        "outputs": [
            {"name": "escalation_probability", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "route", "datatype": "BYTES", "shape": [-1, 1]},
        ],
        "parameters": {"numeric_columns": m.pre.numeric_columns, "threshold": m.threshold,
            "streaming": m.streamable()},
    })))
}

/// `GET /v2/models/{name}[/versions/{v}]/ready`.
pub async fn model_ready(State(s): State<Arc<AppState>>, Path(p): Path<ModelPath>) -> Result<Json<Value>, ApiError> {
    check_model(&s, &p.name, p.version.as_deref())?;
    if !s.ready() {
        return Err(ApiError::Unavailable("shutting down".into()));
    }
    Ok(Json(json!({"name": s.cfg.name, "ready": true})))
}

/// `POST /v2/models/{name}[/versions/{v}]/infer`.
pub async fn infer(
    State(s): State<Arc<AppState>>,
    Path(p): Path<ModelPath>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(&s, b)?;
    check_model(&s, &p.name, p.version.as_deref())?;
    let st = s.clone();
    s.run(move || {
        let m = st.model.load_full();
        let v = request::parse_json(&b)?;
        let obj = object(&v, "body")?;
        let id = match obj.get("id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::BadRequest("`id` must be a string".into())),
        };
        let tickets = decode_inputs(obj, m.pre.numeric_columns.len(), st.cfg.max_events, st.cfg.max_batch)?;
        let seqs: Vec<&[Event]> = tickets.iter().map(Vec::as_slice).collect();
        let probs = m.score(&seqs)?;
        let unknown: u64 = seqs.iter().map(|e| m.unknown_types(e)).sum();
        st.metrics.unknown_event_types.fetch_add(unknown, Ordering::Relaxed);
        st.metrics.scores.fetch_add(tickets.len() as u64, Ordering::Relaxed);
        let n = probs.len();
        let routes: Vec<&str> = probs.iter().map(|&p| m.route(p)).collect();
        let probs: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
        let mut out = json!({
            "model_name": st.cfg.name,
            "model_version": m.version,
            "outputs": [
                {"name": "escalation_probability", "datatype": "FP32", "shape": [n, 1], "data": probs},
                {"name": "route", "datatype": "BYTES", "shape": [n, 1], "data": routes},
            ],
        });
        if let Some(id) = id {
            out["id"] = json!(id);
        }
        Ok(Json(out))
    })
    .await
}

struct Tensor<'a> {
    path: String,
    datatype: &'a str,
    shape: Vec<usize>,
    data: Vec<&'a Value>,
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        x => out.push(x),
    }
}

fn tensor<'a>(inputs: &'a [Value], name: &str) -> Result<Option<Tensor<'a>>, ApiError> {
    let Some((i, t)) = inputs
        .iter()
        .enumerate()
        .find(|(_, t)| t.get("name").and_then(Value::as_str) == Some(name))
    else {
        return Ok(None);
    };
    let path = format!("inputs[{i}]");
    let o = object(t, &path)?;
    let bad = |f: &str, why: &str| ApiError::BadRequest(format!("`{path}.{f}` ({name}) {why}"));
    let datatype = field(o, &path, "datatype")?
        .as_str()
        .ok_or_else(|| bad("datatype", "must be a string"))?;
    let shape = field(o, &path, "shape")?
        .as_array()
        .ok_or_else(|| bad("shape", "must be an array"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| bad("shape", "must hold non-negative integers"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut data = Vec::new();
    flatten(field(o, &path, "data")?, &mut data);
    let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if want != Some(data.len()) {
        return Err(bad(
            "data",
            &format!("has {} values but the shape is {shape:?}", data.len()),
        ));
    }
    Ok(Some(Tensor {
        path,
        datatype,
        shape,
        data,
    }))
}

/// The V2 inputs into one event list per row.
fn decode_inputs(
    obj: &Map<String, Value>,
    n_numeric: usize,
    max_events: usize,
    max_batch: usize,
) -> Result<Vec<Vec<Event>>, ApiError> {
    let inputs = field(obj, "", "inputs")?
        .as_array()
        .ok_or_else(|| ApiError::BadRequest("`inputs` must be an array".into()))?;
    let need = |name: &str| {
        tensor(inputs, name)?.ok_or_else(|| ApiError::BadRequest(format!("missing input tensor `{name}`")))
    };
    let types = need("event_type")?;
    let times = need("timestamp")?;
    if types.shape.len() != 2 || types.datatype != "BYTES" {
        return Err(ApiError::BadRequest(format!(
            "`{}` (event_type) must be BYTES [B, T]",
            types.path
        )));
    }
    let (b, t) = (types.shape[0], types.shape[1]);
    if times.shape != [b, t] {
        return Err(ApiError::BadRequest(format!(
            "`{}` (timestamp) must have shape [{b}, {t}]",
            times.path
        )));
    }
    if b == 0 || t == 0 {
        return Err(ApiError::unprocessable("invalid", "empty batch"));
    }
    if b > max_batch {
        return Err(ApiError::unprocessable(
            "too_many_tickets",
            format!("batch of {b}; the limit is {max_batch}"),
        ));
    }
    if t > max_events {
        return Err(ApiError::unprocessable(
            "too_many_events",
            format!("{t} events per row; the limit is {max_events}"),
        ));
    }
    let feats = tensor(inputs, "event_features")?;
    if let Some(f) = &feats {
        if f.shape != [b, t, n_numeric] || !matches!(f.datatype, "FP32" | "FP64") {
            return Err(ApiError::BadRequest(format!(
                "`{}` (event_features) must be FP32 [{b}, {t}, {n_numeric}]",
                f.path
            )));
        }
    }
    let lengths = match tensor(inputs, "lengths")? {
        None => vec![t; b],
        Some(l) if l.shape == [b] => l
            .data
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_u64() {
                Some(n) if (1..=t as u64).contains(&n) => Ok(n as usize),
                _ => Err(ApiError::BadRequest(format!(
                    "`{}.data[{i}]` (lengths) must be in 1..={t}",
                    l.path
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(l) => {
            return Err(ApiError::BadRequest(format!(
                "`{}` (lengths) must have shape [{b}]",
                l.path
            )))
        }
    };
    let mut rows = Vec::with_capacity(b);
    for (r, &len) in lengths.iter().enumerate() {
        let mut events = Vec::with_capacity(len);
        for k in r * t..r * t + len {
            let event_type = match types.data[k] {
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "`{}.data[{k}]` (event_type) must be a non-empty string",
                        types.path
                    )))
                }
            };
            let timestamp_ms = request::timestamp(times.data[k], &format!("{}.data[{k}]", times.path))?;
            let numeric = (0..n_numeric)
                .map(|c| match &feats {
                    Some(f) => request::number(
                        Some(f.data[k * n_numeric + c]),
                        &format!("{}.data[{}]", f.path, k * n_numeric + c),
                    ),
                    None => Ok(f64::NAN),
                })
                .collect::<Result<_, _>>()?;
            events.push(Event {
                timestamp_ms,
                event_type,
                numeric,
            });
        }
        events.sort_by_key(|e| e.timestamp_ms);
        rows.push(events);
    }
    Ok(rows)
}
