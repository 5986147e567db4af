//! `recur serve`: the escalation forecaster as a routing webhook over HTTP (axum + tokio).
//!
//! * [`app`] builds the router from shared [`AppState`] (testable without a socket); [`run`]
//!   serves it on a listener with signal handling (SIGTERM/SIGINT drain, SIGHUP reload).
//! * Routes: recur's own (`/v1/score`, `/v1/score/batch`, streaming `/v1/tickets/{id}`,
//!   `/metrics`, `/admin/reload`) in [`routes`], the Open Inference Protocol (KServe V2) in
//!   [`kserve`].
//! * Model work runs on a bounded CPU [`pool`] (a full queue is a fast 503); `/v1/score`
//!   parses its body ([`request`]) on the async thread and queues only the model call, which
//!   the pool micro-batches; the other routes parse on the pool too.
//! * Every error is JSON `{"error": ...}` ([`error::ApiError`]); see docs/serving.md for the
//!   status codes, metrics, streaming and reload.
//!
//! This module never trains: it loads checkpoints written by `recur demo`/`train`.

pub mod error;
pub mod features;
pub mod kserve;
pub mod loadtest;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod request;
pub mod routes;
pub mod state;
pub mod store;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use error::ApiError;
pub use model::{LoadError, LoadedModel};
pub use state::{AppState, ServeConfig};
pub use store::TicketStore;

/// The router with every route and middleware: JSON errors and metrics outermost, then the
/// drain gate and the global in-flight limit, then the body limit.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/score", post(routes::score))
        .route("/v1/score/batch", post(routes::score_batch))
        .route("/v1/tickets/{id}/events", post(routes::append))
        .route("/v1/tickets/{id}", get(routes::get_ticket).delete(routes::close_ticket))
        .route("/v2", get(kserve::server_metadata))
        .route("/v2/health/live", get(kserve::live))
        .route("/v2/health/ready", get(kserve::ready))
        .route("/v2/models/{name}", get(kserve::model_metadata))
        .route("/v2/models/{name}/ready", get(kserve::model_ready))
        .route("/v2/models/{name}/infer", post(kserve::infer))
        .route("/v2/models/{name}/versions/{version}", get(kserve::model_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", get(kserve::model_ready))
        .route("/v2/models/{name}/versions/{version}/infer", post(kserve::infer))
        .route("/metrics", get(routes::metrics))
        .route("/admin/reload", post(routes::admin_reload))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

fn exempt(path: &str) -> bool {
    path.starts_with("/v2/health/") || path == "/metrics"
}

struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Refuses new work while draining and beyond the in-flight limit (fast 503s); health and
/// metrics always pass.
async fn gate(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    if !s.ready() {
        return closing(ApiError::Unavailable("shutting down".into()).into_response());
    }
    let n = s.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&s);
    if n >= s.cfg.max_in_flight {
        return ApiError::Overloaded.into_response();
    }
    let resp = next.run(req).await;
    if s.ready() {
        resp
    } else {
        closing(resp)
    }
}

/// While draining, answers carry `Connection: close` so clients leave keep-alive connections
/// before the listener closes (instead of racing a request against the close).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    resp
}

/// Times and counts every request by route template, and turns any non-JSON error response
/// (unknown method, framework rejections) into `{"error": ...}`.
async fn observe(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let mut resp = next.run(req).await;
    let status = resp.status();
    let mut reason = resp.extensions().get::<error::Rejection>().map(|r| r.0);
    if status.as_u16() >= 400 && reason.is_none() {
        let r = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_server_error() => "internal",
            _ => "malformed",
        };
        reason = Some(r);
        let json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !json {
            let msg = status.canonical_reason().unwrap_or("error").to_lowercase();
            resp = (status, Json(json!({ "error": msg }))).into_response();
        }
    }
    s.metrics
        .record(&route, status.as_u16(), start.elapsed().as_secs_f64(), reason);
    resp
}

/// How the server stops.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownPlan {
    /// After SIGTERM: readiness false and new requests refused for this long before the
    /// listener closes (lets a load balancer see the readiness change).
    pub delay: Duration,
    /// The most that in-flight requests get to finish after the listener closes.
    pub drain_cap: Duration,
}

/// Serves `state` on `listener` until SIGTERM or SIGINT (or `stop` resolves), then drains:
/// readiness goes false, after `plan.delay` the listener closes, in-flight requests finish
/// within `plan.drain_cap`. SIGHUP reloads the model.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    plan: ShutdownPlan,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut hup) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::hangup())?,
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let st = state.clone();
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = &mut stop => break,
                _ = hup.recv() => { let _ = st.reload().await; }
            }
        }
        eprintln!("recur serve: draining (readiness false)");
        st.start_draining();
        tokio::time::sleep(plan.delay).await;
        let _ = tx.send(true);
    });
    let mut rx2 = rx.clone();
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        let _ = rx2.wait_for(|v| *v).await;
    });
    let mut rx3 = rx;
    let cap = async move {
        let _ = rx3.wait_for(|v| *v).await;
        tokio::time::sleep(plan.drain_cap).await;
    };
    tokio::select! {
        r = std::future::IntoFuture::into_future(server) => r,
        _ = cap => {
            eprintln!("recur serve: drain cap of {:?} reached, exiting", plan.drain_cap);
            Ok(())
        }
    }
}
