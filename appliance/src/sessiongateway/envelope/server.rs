//! What the server sends on the live plane, as types: each message is one
//! variant of [`ServerMessage`] with a typed payload, and user-facing
//! notices carry the seed's [`Event`]. Frames are encoded here too.

use base64::Engine;
use rap_storage::{SessionId, UserId};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::RenderTransport;
use crate::protocol::frame::{ColorMode, Compression, Encoding, FrameHeader, Rect};
use crate::sessionbroker::state::SessionState;
use crate::transfer::Offered;
use rap_storage::types::AttachmentRole;

/// The seed's structured notice: a stable code, its message key, English
/// fallback words, details, and the socket's trace id.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub code: String,
    pub message_key: String,
    pub fallback_message: String,
    pub details: Value,
    pub trace_id: String,
}

impl Event {
    /// A notice (`event.<code>`).
    pub fn notice(code: &str, fallback_message: &str, details: Value, trace_id: &str) -> Self {
        Self::keyed(format!("event.{code}"), code, fallback_message, details, trace_id)
    }

    /// An error, in the HTTP error vocabulary (`error.<code>`).
    pub fn error(code: &str, fallback_message: &str, details: Value, trace_id: &str) -> Self {
        Self::keyed(format!("error.{code}"), code, fallback_message, details, trace_id)
    }

    fn keyed(message_key: String, code: &str, fallback_message: &str, details: Value, trace_id: &str) -> Self {
        Self {
            code: code.to_owned(),
            message_key,
            fallback_message: fallback_message.to_owned(),
            details,
            trace_id: trace_id.to_owned(),
        }
    }
}

/// `session.attached`.
#[derive(Debug, Clone, Serialize)]
pub struct Attached {
    pub session_id: SessionId,
    pub attachment_id: Uuid,
    pub role: AttachmentRole,
    pub width: u16,
    pub height: u16,
    pub render_transport: RenderTransport,
    pub color_mode: ColorMode,
    pub compression: Compression,
    /// The codecs of the client's list this socket gets (`h264` only over
    /// `binary_v1` in full colour).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<&'static str>,
    /// What the viewer may offer its user (every use is checked again).
    pub policy: Option<AttachedPolicy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachedPolicy {
    pub clipboard_mode: crate::resource::PolicyMode,
    pub file_transfer_mode: crate::resource::PolicyMode,
    /// Where files are on the remote desktop, for the viewer to say.
    pub transfer_drive: &'static str,
    pub download_folder: &'static str,
}

/// Why a file transfer request was refused, with where an upload stands.
#[derive(Debug, Clone, Serialize)]
pub struct FileBlocked {
    /// Null for a refused list request, which has no transfer.
    pub transfer_id: Option<String>,
    pub reason: &'static str,
    /// Uploads only: the bytes kept, to resend from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<Option<u64>>,
    /// A malformed request: what is wrong, in words and by field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<&'static str>,
}

/// Every message the server sends as text.
#[derive(Debug, Clone)]
pub enum ServerMessage {
    Attached(Attached),
    State {
        session_id: SessionId,
        state: Option<SessionState>,
        reason: Option<String>,
        event: Option<Event>,
    },
    DisplaySize {
        session_id: SessionId,
        width: u16,
        height: u16,
    },
    Viewers {
        session_id: SessionId,
        viewers: Vec<UserId>,
    },
    TakenOver {
        session_id: SessionId,
        by_user_id: UserId,
        event: Event,
    },
    /// The socket's principal lost the right to it; the socket closes next.
    AccessRevoked {
        session_id: SessionId,
        reason: &'static str,
        event: Event,
    },
    Clipboard(crate::worker::ClipboardText),
    TransportClosed {
        reason: &'static str,
        event: Event,
    },
    Pong,
    Error {
        event: Event,
    },
    UploadProgress {
        transfer_id: String,
        received: u64,
        size: u64,
    },
    UploadCompleted {
        transfer_id: String,
        file_name: String,
        size: u64,
        sha256: String,
    },
    UploadCancelled {
        transfer_id: String,
        cancelled: bool,
    },
    UploadBlocked {
        blocked: FileBlocked,
        event: Event,
    },
    DownloadsAvailable {
        session_id: SessionId,
        files: Vec<Offered>,
    },
    DownloadStarted {
        transfer_id: Uuid,
        file_name: String,
        size: u64,
        chunk_size: usize,
    },
    DownloadChunk {
        transfer_id: Uuid,
        offset: u64,
        data: Vec<u8>,
    },
    DownloadCompleted {
        transfer_id: Uuid,
        size: u64,
        sha256: String,
    },
    DownloadCancelled {
        transfer_id: String,
        cancelled: bool,
    },
    DownloadBlocked {
        blocked: FileBlocked,
        event: Event,
    },
}

impl ServerMessage {
    /// An `error` envelope.
    pub fn error(code: &str, fallback_message: &str, details: Value, trace_id: &str) -> Self {
        Self::Error { event: Event::error(code, fallback_message, details, trace_id) }
    }

    /// The envelope's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Attached(_) => "session.attached",
            Self::State { .. } => "session.state",
            Self::DisplaySize { .. } => "display.size",
            Self::Viewers { .. } => "session.viewers",
            Self::TakenOver { .. } => "session.taken_over",
            Self::AccessRevoked { .. } => "session.access_revoked",
            Self::Clipboard(_) => "clipboard.text",
            Self::TransportClosed { .. } => "transport.closed",
            Self::Pong => "pong",
            Self::Error { .. } => "error",
            Self::UploadProgress { .. } => "file_upload.progress",
            Self::UploadCompleted { .. } => "file_upload.completed",
            Self::UploadCancelled { .. } => "file_upload.cancelled",
            Self::UploadBlocked { .. } => "file_upload.blocked",
            Self::DownloadsAvailable { .. } => "file_download.available",
            Self::DownloadStarted { .. } => "file_download.started",
            Self::DownloadChunk { .. } => "file_download.chunk",
            Self::DownloadCompleted { .. } => "file_download.completed",
            Self::DownloadCancelled { .. } => "file_download.cancelled",
            Self::DownloadBlocked { .. } => "file_download.blocked",
        }
    }

    /// `{"type", "payload", "event"?}` as text (`{"type":"pong"}` alone).
    pub fn to_text(&self) -> String {
        let (payload, event) = match self {
            Self::Attached(attached) => (json!(attached), None),
            Self::State { session_id, state, reason, event } => {
                (json!({"session_id": session_id, "state": state, "reason": reason}), event.as_ref())
            }
            Self::DisplaySize { session_id, width, height } => {
                (json!({"session_id": session_id, "width": width, "height": height}), None)
            }
            Self::Viewers { session_id, viewers } => {
                (json!({"session_id": session_id, "viewers": viewers, "count": viewers.len()}), None)
            }
            Self::TakenOver { session_id, by_user_id, event } => {
                (json!({"session_id": session_id, "by_user_id": by_user_id}), Some(event))
            }
            Self::AccessRevoked { session_id, reason, event } => {
                (json!({"session_id": session_id, "reason": reason}), Some(event))
            }
            Self::Clipboard(clipboard) => (json!(clipboard), None),
            Self::TransportClosed { reason, event } => (json!({"reason": reason}), Some(event)),
            Self::Pong => return json!({"type": "pong"}).to_string(),
            Self::Error { event } => (json!({"code": event.code}), Some(event)),
            Self::UploadProgress { transfer_id, received, size } => {
                (json!({"transfer_id": transfer_id, "received": received, "size": size}), None)
            }
            Self::UploadCompleted { transfer_id, file_name, size, sha256 } => {
                (json!({"transfer_id": transfer_id, "file_name": file_name, "size": size, "sha256": sha256}), None)
            }
            Self::UploadCancelled { transfer_id, cancelled } | Self::DownloadCancelled { transfer_id, cancelled } => {
                (json!({"transfer_id": transfer_id, "cancelled": cancelled}), None)
            }
            Self::UploadBlocked { blocked, event } | Self::DownloadBlocked { blocked, event } => {
                (json!(blocked), Some(event))
            }
            Self::DownloadsAvailable { session_id, files } => (json!({"session_id": session_id, "files": files}), None),
            Self::DownloadStarted { transfer_id, file_name, size, chunk_size } => (
                json!({"transfer_id": transfer_id, "file_name": file_name, "size": size, "chunk_size": chunk_size}),
                None,
            ),
            Self::DownloadChunk { transfer_id, offset, data } => (
                json!({
                    "transfer_id": transfer_id,
                    "offset": offset,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                }),
                None,
            ),
            Self::DownloadCompleted { transfer_id, size, sha256 } => {
                (json!({"transfer_id": transfer_id, "size": size, "sha256": sha256}), None)
            }
        };
        match event {
            Some(event) => json!({"type": self.kind(), "payload": payload, "event": event}),
            None => json!({"type": self.kind(), "payload": payload}),
        }
        .to_string()
    }
}

/// `details` objects, made here so the rest of the gateway builds no JSON
/// by hand.
pub mod details {
    use serde::Serialize;
    use serde_json::{Value, json};

    pub fn none() -> Value {
        json!({})
    }

    /// `{"reason": reason}`, the usual shape.
    pub fn reason(reason: impl Serialize) -> Value {
        json!({ "reason": reason })
    }

    /// An object of one field.
    pub fn one(key: &str, value: impl Serialize) -> Value {
        json!({ key: value })
    }
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
        key_frame: false,
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
    json!({
        "type": "render.frame",
        "payload": {
            "seq": seq,
            "x": rect.x,
            "y": rect.y,
            "width": rect.width,
            "height": rect.height,
            "encoding": encoding.name(),
            "color_mode": color_mode,
            "last": last,
            "data": base64::engine::general_purpose::STANDARD.encode(payload),
        },
    })
    .to_string()
}

/// What a failed session's reason code means to the person in front of the
/// viewer (the code stays in `details.reason` for localisation).
pub fn failure_message(reason: Option<&str>) -> &'static str {
    match reason.unwrap_or_default() {
        "invalid_credentials" => {
            "The remote computer refused the sign-in stored for this resource. Ask an administrator to update its credentials."
        }
        "secret_unavailable" => {
            "The credentials for this resource could not be read. Ask an administrator to set them again."
        }
        "certificate_untrusted" => {
            "The remote computer's certificate is not trusted. An administrator can pin it or trust its CA."
        }
        "certificate_name_mismatch" => {
            "The remote computer's certificate is for another name than this resource's host."
        }
        "tls_failed" | "security_negotiation_failed" => {
            "A secure connection to the remote computer could not be set up."
        }
        "credentials_missing" => "This resource has no credentials to sign in with. Ask an administrator to set them.",
        "server_denied" => "The remote computer refused the session.",
        "reactivation_timeout" => "The remote computer stopped answering while changing the display.",
        "codec_setup_failed" => "The remote computer's graphics could not be set up.",
        "connection_refused" => "The remote computer refused the connection. Is remote desktop enabled on it?",
        "host_unreachable" | "connection_failed" => "The remote computer could not be reached from the appliance.",
        "connect_timeout" => "The remote computer did not answer in time.",
        "connection_lost" => "The connection to the remote computer was lost.",
        "desktop_too_large" => "The remote desktop is larger than the appliance accepts.",
        "protocol_error" | "redirect_unsupported" => "The remote computer sent something the appliance cannot handle.",
        "worker_lost" | "worker_panicked" | "worker_busy" | "worker_unavailable" | "event_queue_full" => {
            "The appliance lost this session's connection worker. Start the session again."
        }
        "appliance_restarted" => "The appliance restarted before this session was up. Start it again.",
        _ => "The remote session failed.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every failure reason PROTOCOL.md documents gets words of its own.
    #[test]
    fn each_documented_failure_reason_is_explained() {
        let protocol = include_str!("../../../../docs/PROTOCOL.md");
        let section = protocol.split("- Failure reasons").nth(1).expect("the failure reasons list");
        let section = section.split("- `GET /api/v1/workers`").next().expect("its end");
        let reasons: Vec<&str> = section
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_') && code.contains('_'))
            .filter(|code| !["failure_reason", "remote_logoff"].contains(code))
            .collect();
        assert!(reasons.len() >= 18, "{reasons:?}");
        let generic = failure_message(None);
        for reason in reasons {
            assert_ne!(failure_message(Some(reason)), generic, "{reason} has no message of its own");
        }
    }

    #[test]
    fn messages_keep_the_envelope_shape_clients_rely_on() {
        let trace = "t1";
        let cases = [
            (ServerMessage::Pong, json!({"type": "pong"})),
            (
                ServerMessage::error("forbidden", "No.", json!({"reason": "not_controller"}), trace),
                json!({"type": "error", "payload": {"code": "forbidden"}, "event": {"code": "forbidden",
                    "message_key": "error.forbidden", "fallback_message": "No.", "details": {"reason": "not_controller"}, "trace_id": "t1"}}),
            ),
            (
                ServerMessage::TransportClosed {
                    reason: "heartbeat_timeout",
                    event: Event::notice("transport_closed", "Silent.", json!({}), trace),
                },
                json!({"type": "transport.closed", "payload": {"reason": "heartbeat_timeout"}, "event": {"code": "transport_closed",
                    "message_key": "event.transport_closed", "fallback_message": "Silent.", "details": {}, "trace_id": "t1"}}),
            ),
            (
                ServerMessage::DownloadBlocked {
                    blocked: FileBlocked {
                        transfer_id: None,
                        reason: "not_active",
                        received: None,
                        error: None,
                        field: None,
                        error_reason: None,
                    },
                    event: Event::notice("not_active", "Later.", json!({"transfer_id": null}), trace),
                },
                json!({"type": "file_download.blocked", "payload": {"transfer_id": null, "reason": "not_active"},
                    "event": {"code": "not_active", "message_key": "event.not_active", "fallback_message": "Later.",
                    "details": {"transfer_id": null}, "trace_id": "t1"}}),
            ),
            (
                ServerMessage::Viewers {
                    session_id: SessionId::from_uuid(Uuid::nil()),
                    viewers: vec![UserId::from_uuid(Uuid::nil())],
                },
                json!({"type": "session.viewers", "payload": {"session_id": Uuid::nil(), "viewers": [Uuid::nil()], "count": 1}}),
            ),
        ];
        for (message, expected) in cases {
            let text = message.to_text();
            assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), expected, "{}", message.kind());
        }
    }
}
