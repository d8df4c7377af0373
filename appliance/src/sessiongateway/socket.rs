//! The socket's plumbing: sending typed messages and close frames, and
//! reading a session's screen without parking an async worker.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, SplitStream};

use super::envelope::ServerMessage;
use crate::protocol::frame::{ColorMode, Rect, zlib};
use crate::protocol::framebuffer::{PayloadKey, Screen, read_screen};

pub(super) type Sink = SplitSink<WebSocket, Message>;
pub(super) type Stream = SplitStream<WebSocket>;

/// Close codes (4000–4999 are the application's; documented in PROTOCOL.md).
pub(super) mod close {
    pub const ATTACH_REFUSED: u16 = 4401;
    pub const ATTACH_TIMEOUT: u16 = 4408;
    pub const PROTOCOL: u16 = 4400;
    pub const SESSION_ENDED: u16 = 4409;
    pub const HEARTBEAT: u16 = 4410;
    pub const ACCESS_REVOKED: u16 = 4403;
    pub const TAKEN_OVER: u16 = 4411;
    pub const RATE_LIMITED: u16 = 4429;
    pub const GOING_AWAY: u16 = 1001;
}

/// Sends one message; `false` once the client is gone.
pub(super) async fn send(sink: &mut Sink, message: ServerMessage) -> bool {
    sink.send(Message::Text(Utf8Bytes::from(message.to_text()))).await.is_ok()
}

pub(super) async fn close_with(sink: &mut Sink, code: u16, reason: &'static str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
}

/// Payloads past this size are compressed on the blocking pool, so a
/// full-screen frame never holds up the async workers.
const INLINE_COMPRESSION_LIMIT: usize = 64 * 1024;

async fn compress(payload: Vec<u8>) -> Vec<u8> {
    if payload.len() <= INLINE_COMPRESSION_LIMIT {
        return zlib(&payload);
    }
    tokio::task::spawn_blocking(move || zlib(&payload)).await.unwrap_or_default()
}

/// The compressed current pixels of `rect`, shared with every other viewer
/// asking for the same state of the same rectangle.
pub(super) async fn compressed(screen: &Arc<Screen>, rect: Rect, color_mode: ColorMode) -> Arc<Vec<u8>> {
    let key = PayloadKey { seq: read_screen(screen, |screen, wait| screen.seq_with(wait)).await, rect, color_mode };
    if let Some(payload) = screen.cached_payload(key) {
        return payload;
    }
    let (seq, pixels) = read_screen(screen, move |screen, wait| screen.read_rect_with(rect, color_mode, wait)).await;
    let payload = Arc::new(compress(pixels).await);
    screen.remember_payload(PayloadKey { seq, rect, color_mode }, payload.clone());
    payload
}
