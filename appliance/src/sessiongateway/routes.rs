//! `GET /api/v1/gateway/ws`.

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;

use crate::http::TraceId;
use crate::state::AppState;

/// Largest message a client may send (input envelopes are small; file
/// chunks of 256 KiB, base64-encoded, fit).
pub(crate) const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/gateway/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    trace: Option<axum::Extension<TraceId>>,
    ws: WebSocketUpgrade,
) -> Response {
    let trace_id = trace.map(|axum::Extension(TraceId(id))| id).unwrap_or_default();
    let shutdown = state.sockets_shutdown().clone();
    ws.max_message_size(MAX_CLIENT_MESSAGE).on_upgrade(move |socket| {
        super::attach::serve(socket, state, super::attach::Entry::Gateway, trace_id, shutdown)
    })
}
