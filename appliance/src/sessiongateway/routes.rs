//! `GET /api/v1/gateway/ws`.

use std::net::SocketAddr;

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::{ApiError, TraceId};
use crate::net::ConnectionHold;
use crate::state::AppState;

/// Largest message a client may send (input envelopes are small; file
/// chunks of 256 KiB, base64-encoded, fit).
pub(crate) const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/gateway/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    trace: Option<Extension<TraceId>>,
    remote: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    connection: Option<Extension<ConnectionHold>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let admission = match admit(
        &state,
        &headers,
        remote.map(|axum::Extension(ConnectInfo(addr))| addr),
        connection.map(|Extension(hold)| hold),
    ) {
        Ok(admission) => admission,
        Err(refused) => return refused.into_response(),
    };
    let trace_id = trace.map(|Extension(TraceId(id))| id).unwrap_or_default();
    ws.max_message_size(MAX_CLIENT_MESSAGE).on_upgrade(move |socket| {
        super::attach::serve(socket, state, super::attach::Entry::Gateway, trace_id, admission)
    })
}

/// What a socket was admitted with, held for its whole life.
pub struct Admission {
    _address: Option<super::admission::Claim>,
    _connection: Option<ConnectionHold>,
}

/// Checks an upgrade request before it is upgraded: 403 for a foreign
/// `Origin`, 429 over the address's socket limit.
pub(crate) fn admit(
    state: &AppState,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    connection: Option<ConnectionHold>,
) -> Result<Admission, ApiError> {
    let origin = headers.get(header::ORIGIN).map(|value| value.to_str().unwrap_or("\u{0}"));
    if !state.admits_origin(origin) {
        state.metrics().connection_closed("foreign_origin");
        tracing::warn!(origin = origin.unwrap_or_default(), "WebSocket from a foreign origin refused");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This page's origin may not open sockets to the appliance.",
        )
        .with_details(super::envelope::details::reason("origin_not_allowed")));
    }
    let address = match remote {
        Some(remote) => match state.sockets().claim_address(remote.ip()) {
            Some(claim) => Some(claim),
            None => {
                state.metrics().rate_limited("websockets_per_address");
                return Err(ApiError::rate_limited(
                    "Too many open sockets from this address.",
                    "websockets_per_address",
                    5,
                ));
            }
        },
        None => None,
    };
    Ok(Admission { _address: address, _connection: connection })
}
