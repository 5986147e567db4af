//! The one HTTP error type: every failure becomes a status and a JSON body `{"error": ...}`,
//! detailed for 4xx and generic for 5xx, plus a `reason` label for the rejection counter.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A request that could not be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON or a field of the wrong type (400); the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong admin token (401).
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// Unknown route, model or ticket (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the server's state, e.g. streaming on a bidirectional model (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit (413).
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Valid JSON whose content cannot be scored (422); `reason` is the counter label.
    #[error("{message}")]
    Unprocessable {
        /// Counter label: `too_many_events`, `non_finite`, `invalid`.
        reason: &'static str,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The CPU pool's queue is full (503, answered at once).
    #[error("server overloaded: the scoring queue is full")]
    Overloaded,
    /// Not ready: shutting down or no model (503).
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed (504).
    #[error("deadline of {0} ms exceeded")]
    Timeout(u64),
    /// A bug or an I/O failure (500); details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 422 with a reason label.
    pub fn unprocessable(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            reason,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The rejection counter's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "malformed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::Unprocessable { reason, .. } => reason,
            ApiError::Overloaded => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Marks a response as a rejection with this reason (read by the metrics middleware).
#[derive(Clone, Copy, Debug)]
pub struct Rejection(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            eprintln!("recur serve: internal error: {detail}");
        }
        let mut r = (self.status(), Json(json!({"error": self.to_string()}))).into_response();
        r.extensions_mut().insert(Rejection(self.reason()));
        r
    }
}
