//! From upgrade to attached: the first message must be `attach`, with the
//! credential its entry asks for (an attach token at the gateway, a
//! data-plane token at a direct worker endpoint); then the socket runs.

use rap_storage::WorkerId;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use serde_json::Value;

use super::connection::Connection;
use super::envelope::{AttachPayload, ClientMessage, EnvelopeError, RenderTransport, ServerMessage, details};
use super::routes::Admission;
use super::socket::{Stream, close, close_with, send};
use crate::sessionbroker::AttachGrant;
use crate::state::AppState;
use rap_storage::types::AttachmentRole;

/// A client must attach this soon after connecting.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closed socket waits for the client's answering close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Where a socket came in, which decides how it must attach.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// `GET /api/v1/gateway/ws`: an attach token from the broker.
    Gateway,
    /// The direct worker endpoint: a Data Plane v1 token for this worker;
    /// `binary_v1` render only if the configuration allows it.
    Direct { worker_id: WorkerId, binary_render: bool },
}

/// A refusal before the socket is attached: what the client is told and
/// how the socket closes.
struct Refused {
    code: &'static str,
    words: &'static str,
    details: Value,
    close_code: u16,
    close_reason: &'static str,
}

impl Refused {
    fn token(reason: &'static str) -> Self {
        Self {
            code: "unauthorized",
            words: "The token is invalid, expired or already used.",
            details: details::reason(reason),
            close_code: close::ATTACH_REFUSED,
            close_reason: reason,
        }
    }

    fn missing(words: &'static str, reason: &'static str) -> Self {
        Self {
            code: "invalid_request",
            words,
            details: details::reason(reason),
            close_code: close::ATTACH_REFUSED,
            close_reason: reason,
        }
    }
}

pub(crate) async fn serve(socket: WebSocket, state: AppState, entry: Entry, trace_id: String, admission: Admission) {
    let shutdown = state.sockets_shutdown().clone();
    let (mut sink, mut stream) = socket.split();
    let attached = attach(&mut stream, &state, entry).await.and_then(|(grant, attach)| {
        // Counted per user once the user is known, for the socket's life.
        let claim = state.sockets().claim_user(grant.user_id).ok_or_else(|| {
            state.metrics().rate_limited("websockets_per_user");
            Refused {
                code: "rate_limited",
                words: "Too many open sockets for this user; close another viewer first.",
                details: details::reason("websockets_per_user"),
                close_code: close::RATE_LIMITED,
                close_reason: "websockets_per_user",
            }
        })?;
        Ok((grant, attach, claim))
    });
    let _admission = admission;
    match attached {
        Ok((grant, attach, _claim)) => {
            let transport = match entry {
                Entry::Gateway => attach.render_transport.unwrap_or(RenderTransport::JsonBase64),
                Entry::Direct { binary_render: true, .. } => {
                    attach.render_transport.unwrap_or(RenderTransport::BinaryV1)
                }
                // The seed: without binary render the direct endpoint stays
                // JSON; `session.attached` says which transport the socket got.
                Entry::Direct { binary_render: false, .. } => RenderTransport::JsonBase64,
            };
            let mut connection = Connection::new(state, grant, trace_id, transport, &attach);
            connection.run(&mut sink, &mut stream, shutdown).await;
        }
        Err(refused) => {
            send(&mut sink, ServerMessage::error(refused.code, refused.words, refused.details, &trace_id)).await;
            close_with(&mut sink, refused.close_code, refused.close_reason).await;
        }
    }
    linger(&mut stream).await;
}

/// Completes the close handshake: reads (and drops) what the client still
/// sends until its close frame, so the TCP connection ends with FIN, not
/// with a reset that could destroy the close frame and its reason before
/// the client reads them.
async fn linger(stream: &mut Stream) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn attach(stream: &mut Stream, state: &AppState, entry: Entry) -> Result<(AttachGrant, AttachPayload), Refused> {
    let attach = read_attach(stream).await?;
    let grant = admit(state, entry, &attach).await?;
    Ok((grant, attach))
}

/// Waits for the first text message and parses it as `attach`.
async fn read_attach(stream: &mut Stream) -> Result<AttachPayload, Refused> {
    let first = tokio::time::timeout(ATTACH_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let protocol = |words, details| Refused {
        code: "invalid_request",
        words,
        details,
        close_code: close::PROTOCOL,
        close_reason: "attach_required",
    };
    let text = match first {
        Err(_) => {
            return Err(Refused {
                code: "attach_timeout",
                words: "Send an attach message first.",
                details: details::none(),
                close_code: close::ATTACH_TIMEOUT,
                close_reason: "attach_required",
            });
        }
        Ok(None) => return Err(protocol("Send an attach message first.", details::none())),
        Ok(Some(text)) => text,
    };
    let first = "The first message must be a valid attach.";
    match ClientMessage::parse(&text) {
        Ok(ClientMessage::Attach(payload)) => match payload.decodes_h264() {
            Ok(_) => Ok(payload),
            Err(field) => {
                let words = "List at most 8 codec names, each at most 32 characters.";
                Err(protocol(first, EnvelopeError::invalid_value(field, words).details()))
            }
        },
        Ok(_) => Err(protocol(first, details::reason("attach_required"))),
        Err(error) => Err(protocol(first, error.details())),
    }
}

/// Turns the attach message's credential into a grant.
async fn admit(state: &AppState, entry: Entry, attach: &AttachPayload) -> Result<AttachGrant, Refused> {
    match entry {
        Entry::Gateway => {
            let token = attach
                .attach_token
                .as_deref()
                .ok_or(Refused::missing("attach_token is required here.", "attach_token_missing"))?;
            state.broker().redeem(token).await.ok_or(Refused::token("attach_token_invalid"))
        }
        Entry::Direct { worker_id, .. } => {
            let token = attach
                .data_plane_token
                .as_deref()
                .ok_or(Refused::missing("data_plane_token is required here.", "data_plane_token_missing"))?;
            let data_plane = state.data_plane().ok_or(Refused::token("data_plane_disabled"))?;
            let claims = data_plane.redeem(token, worker_id).await.map_err(Refused::token)?;
            let session = state.broker().session(claims.sid).await.ok_or(Refused::token("data_plane_token_invalid"))?;
            if session.worker_id != Some(worker_id) {
                return Err(Refused::token("data_plane_wrong_worker"));
            }
            let controls =
                state.broker().controller(claims.sid).await.is_some_and(|binding| binding.attachment_id == claims.aid);
            Ok(AttachGrant {
                session_id: claims.sid,
                attachment_id: claims.aid,
                user_id: claims.sub,
                device_id: None,
                role: if controls { AttachmentRole::Controller } else { AttachmentRole::Viewer },
                auth_session_id: claims.asid,
            })
        }
    }
}
