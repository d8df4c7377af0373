//! The direct worker endpoint: `GET /api/v1/data-plane/workers/{worker_id}/ws`.
//!
//! Same envelope as the backend gateway, `binary_v1` render by default; a
//! client attaches with the `data_plane` token of a session answer, which
//! is checked with the public key alone, is good for this worker only, and
//! works once.

use axum::Router;
use rap_storage::WorkerId;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use serde_json::json;

use crate::http::extract::PathId;
use crate::http::{ApiError, TraceId};
use crate::net::ConnectionHold;
use crate::sessiongateway::attach::{Entry, serve};
use crate::sessiongateway::routes::admit;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/data-plane/workers/{worker_id}/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    PathId(worker_id): PathId<WorkerId>,
    trace: Option<axum::Extension<TraceId>>,
    remote: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    connection: Option<axum::Extension<ConnectionHold>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // Refused before the upgrade when the configuration does not let it
    // serve (API.md "Data plane v1"; the seed's flags).
    let service =
        match state.data_plane().ok_or("data_plane_disabled").and_then(|data_plane| data_plane.direct_service()) {
            Ok(service) => service,
            Err(reason) => return ApiError::not_found().with_details(json!({"reason": reason})).into_response(),
        };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let admission = match admit(
        &state,
        &headers,
        remote.map(|axum::Extension(ConnectInfo(addr))| addr),
        connection.map(|axum::Extension(hold)| hold),
    ) {
        Ok(admission) => admission,
        Err(refused) => return refused.into_response(),
    };
    let trace_id = trace.map(|axum::Extension(TraceId(id))| id).unwrap_or_default();
    ws.max_message_size(crate::sessiongateway::routes::MAX_CLIENT_MESSAGE).on_upgrade(move |socket| {
        serve(socket, state, Entry::Direct { worker_id, binary_render: service.binary_render }, trace_id, admission)
    })
}
