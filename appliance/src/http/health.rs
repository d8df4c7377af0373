//! `/healthz`, `/readyz`, `/metrics`: unauthenticated, for supervisors and
//! scrapers.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is up and answering.
async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// The database is open, migrated and answering a query.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.repositories().health.check_ready().await {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "Not ready");
            ApiError::service_unavailable().into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Gauges of durable state are read at scrape time, so they cannot drift.
    match state.broker().gauges().await {
        Ok((open_sessions, online_workers)) => {
            state.metrics().set_active_sessions(i64::try_from(open_sessions).unwrap_or(i64::MAX));
            state.metrics().set_workers(i64::try_from(online_workers).unwrap_or(i64::MAX));
        }
        Err(error) => tracing::warn!(%error, "Session gauges not refreshed"),
    }
    let queues = &state.broker().live().queues;
    state.metrics().set_screen_updates(queues.screens.published());
    state.metrics().set_video_encoded(queues.screens.encoded());
    state.metrics().set_undelivered_worker_events(queues.undelivered_events.load(std::sync::atomic::Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics().render())
        .into_response()
}
