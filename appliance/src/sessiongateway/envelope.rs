//! The JSON envelopes of the live plane (API.md "Live plane").

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::protocol::frame::{ColorMode, Compression, Encoding, FrameHeader, Rect};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderTransport {
    /// Text `render.frame` envelopes with base64 pixels.
    #[default]
    JsonBase64,
    /// Binary messages with the 24-byte header.
    BinaryV1,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachPayload {
    /// At the backend gateway.
    pub attach_token: Option<String>,
    /// At the direct worker endpoint (Data Plane v1).
    pub data_plane_token: Option<String>,
    /// Default: `json_base64` at the gateway, `binary_v1` at a direct endpoint.
    pub render_transport: Option<RenderTransport>,
    #[serde(default)]
    pub color_mode: ColorMode,
    /// `zlib` compresses every frame payload (an addition to the contract).
    #[serde(default)]
    pub compression: Compression,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MousePayload {
    pub x: u16,
    pub y: u16,
    pub buttons: u8,
    pub wheel_delta: Option<i16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPayload {
    pub code: Option<String>,
    pub scancode: Option<u16>,
    pub down: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnicodePayload {
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizePayload {
    pub width: u16,
    pub height: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipboardPayload {
    pub text: String,
    pub sequence_id: u64,
    /// The client's own label; the gateway records where text came from.
    pub origin: Option<String>,
    /// SHA-256 of `text`, hex; checked when given.
    pub content_hash: Option<String>,
}

/// `transfer_id` stays text here so a malformed one is refused with the
/// transfer's own `*.blocked` message rather than a generic parse error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUploadStartPayload {
    pub transfer_id: String,
    pub file_name: String,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUploadChunkPayload {
    pub transfer_id: String,
    pub offset: u64,
    /// Base64 (standard alphabet, padded).
    pub data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDownloadStartPayload {
    pub transfer_id: String,
    pub file_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDownloadAckPayload {
    pub transfer_id: String,
    /// Bytes of the file the client holds so far.
    pub offset: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferIdPayload {
    pub transfer_id: String,
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", content = "payload", deny_unknown_fields)]
pub enum ClientMessage {
    #[serde(rename = "attach")]
    Attach(AttachPayload),
    #[serde(rename = "input.mouse")]
    Mouse(MousePayload),
    #[serde(rename = "input.key")]
    Key(KeyPayload),
    #[serde(rename = "input.unicode")]
    Unicode(UnicodePayload),
    #[serde(rename = "display.resize")]
    Resize(ResizePayload),
    #[serde(rename = "clipboard.text")]
    Clipboard(ClipboardPayload),
    #[serde(rename = "file_upload.start")]
    FileUploadStart(FileUploadStartPayload),
    #[serde(rename = "file_upload.chunk")]
    FileUploadChunk(FileUploadChunkPayload),
    #[serde(rename = "file_upload.cancel")]
    FileUploadCancel(TransferIdPayload),
    #[serde(rename = "file_download.list")]
    FileDownloadList,
    #[serde(rename = "file_download.start")]
    FileDownloadStart(FileDownloadStartPayload),
    #[serde(rename = "file_download.ack")]
    FileDownloadAck(FileDownloadAckPayload),
    #[serde(rename = "file_download.cancel")]
    FileDownloadCancel(TransferIdPayload),
    #[serde(rename = "color_mode")]
    ColorMode { color_mode: ColorMode },
    #[serde(rename = "ping")]
    Ping,
}

/// A user-facing notice: the seed's structured `event` object.
pub fn event(code: &str, fallback_message: &str, details: Value, trace_id: &str) -> Value {
    json!({
        "code": code,
        "message_key": format!("event.{code}"),
        "fallback_message": fallback_message,
        "details": details,
        "trace_id": trace_id,
    })
}

pub fn envelope(kind: &str, payload: Value) -> String {
    json!({"type": kind, "payload": payload}).to_string()
}

pub fn envelope_with_event(kind: &str, payload: Value, event: Value) -> String {
    json!({"type": kind, "payload": payload, "event": event}).to_string()
}

/// An `error` envelope: the HTTP error vocabulary (`error.<code>` keys).
pub fn error(code: &str, fallback_message: &str, details: Value, trace_id: &str) -> String {
    let event = json!({
        "code": code,
        "message_key": format!("error.{code}"),
        "fallback_message": fallback_message,
        "details": details,
        "trace_id": trace_id,
    });
    envelope_with_event("error", json!({"code": code}), event)
}

/// One `binary_v1` message: header then payload (already encoded).
pub fn encode_binary_frame(
    seq: u32,
    rect: Rect,
    color_mode: ColorMode,
    encoding: Encoding,
    last: bool,
    payload: &[u8],
) -> Vec<u8> {
    let header = FrameHeader {
        encoding,
        color_mode,
        last,
        seq,
        rect,
        payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
    };
    let mut message = Vec::with_capacity(crate::protocol::frame::HEADER_LEN + payload.len());
    header.write(&mut message);
    message.extend_from_slice(payload);
    message
}

/// One `render.frame` text message.
pub fn encode_json_frame(
    seq: u32,
    rect: Rect,
    color_mode: ColorMode,
    encoding: Encoding,
    last: bool,
    payload: &[u8],
) -> String {
    let encoding = encoding.name();
    envelope(
        "render.frame",
        json!({
            "seq": seq,
            "x": rect.x,
            "y": rect.y,
            "width": rect.width,
            "height": rect.height,
            "encoding": encoding,
            "color_mode": color_mode,
            "last": last,
            "data": base64::engine::general_purpose::STANDARD.encode(payload),
        }),
    )
}
