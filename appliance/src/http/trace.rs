//! Trace ids, request metrics, and the envelope safety net.
//!
//! Every request gets a fresh trace id: in the `X-Trace-Id` response header,
//! in the log span, and in any error body (read from a task-local while the
//! handler runs). After the handler, any error status whose body is not
//! already an envelope (a framework rejection, a panic, a tower layer) is
//! rewritten into one, so clients see exactly one error shape.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use super::error::{ApiError, EnvelopeRendered};
use crate::metrics::Metrics;

pub const TRACE_ID_HEADER: &str = "x-trace-id";

tokio::task_local! {
    static TRACE_ID: String;
}

/// The trace id of the request being handled, or an empty string outside one.
pub fn current_trace_id() -> String {
    TRACE_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The trace id of a request, for handlers that record it (audit events).
#[derive(Clone, Debug)]
pub struct TraceId(pub String);

pub(crate) async fn trace_requests(State(metrics): State<Metrics>, mut request: Request, next: Next) -> Response {
    let trace_id = Uuid::now_v7().simple().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| String::from("unmatched"), |path| path.as_str().to_owned());
    let method = request.method().clone();
    request.extensions_mut().insert(TraceId(trace_id.clone()));
    let span = tracing::info_span!("request", %trace_id, %method, %route);
    let started = Instant::now();

    let mut response = TRACE_ID
        .scope(trace_id.clone(), async move {
            let response = next.run(request).await;
            if response.status().as_u16() >= 400 && response.extensions().get::<EnvelopeRendered>().is_none() {
                let mut envelope = ApiError::from_status(response.status()).into_response();
                // Keep headers a client may need (Allow, Retry-After).
                for (name, value) in response.headers() {
                    if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
                        envelope.headers_mut().insert(name.clone(), value.clone());
                    }
                }
                envelope
            } else {
                response
            }
        })
        .instrument(span.clone())
        .await;

    let status = response.status();
    metrics.record_http_request(&route, method.as_str(), status.as_u16());
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "Request failed");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "Request handled");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    response
}
