//! The HTTP layer: the error envelope, trace ids, the JSON extractor, and the
//! middleware stack every route runs behind (the seed's `httpx`).
//!
//! Architecture invariant: only this module, `routes.rs` files, the
//! gateway's socket code and [`crate::app`] import axum; services never see
//! HTTP types. The router is assembled above the handlers, in
//! [`crate::app`]: this module knows no domain.

mod error;
pub mod extract;
mod headers;
pub(crate) mod health;
mod json;
pub mod page;
pub mod ratelimit;
mod trace;
mod ui;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;
pub use json::{ApiJson, FieldProblem, MAX_BODY_BYTES, decode};
pub use trace::{TRACE_ID_HEADER, TraceId, current_trace_id};

use crate::state::AppState;

/// A request still running after this long is cut off with 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Wraps `routes` in the middleware every route shares: body limit, panic
/// and timeout handling, the per-address request limit, security headers,
/// trace ids, metrics, the envelope safety net, and enveloped 404/405
/// fallbacks. Public so tests can mount extra routes
/// behind the exact production stack.
pub fn with_common_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(ui::serve)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            // The payload may hold anything; it is logged by the panic hook.
            axum::response::IntoResponse::into_response(ApiError::internal(&"handler panicked"))
        }))
        .layer(middleware::from_fn_with_state(state.clone(), ratelimit::limit_requests))
        .layer(middleware::from_fn_with_state(state.clone(), headers::security_headers))
        .layer(middleware::from_fn_with_state(state.metrics().clone(), trace::trace_requests))
        .with_state(state)
}
