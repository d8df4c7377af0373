//! What the broker hands out and keeps in live state.

use rap_storage::{AuthSessionId, DeviceId, ResourceId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use rap_storage::repo::{AttachmentRecord, SessionRecord};
use rap_storage::types::AttachmentRole;

use super::state::SessionState;

/// What an attach token grants, kept in live state until redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachGrant {
    pub session_id: SessionId,
    pub attachment_id: Uuid,
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
    pub role: AttachmentRole,
    /// The auth session the attachment was asked for in; a socket of a
    /// grant without one (older tokens) is held to the user alone.
    pub auth_session_id: Option<AuthSessionId>,
}

/// Who controls a session right now (live state, mirrored in SQLite).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerBinding {
    pub session_id: SessionId,
    pub attachment_id: Uuid,
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
}

/// What a session's subscribers (its sockets) are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionNotice {
    StateChanged {
        session_id: SessionId,
        state: SessionState,
        reason: Option<String>,
    },
    /// `attachment_id` lost control to `by_user_id`.
    TakenOver {
        session_id: SessionId,
        attachment_id: Uuid,
        by_user_id: UserId,
    },
    /// A read-only viewer started or stopped watching: everyone attached
    /// (the controller above all) sees who watches.
    Viewers {
        session_id: SessionId,
        viewers: Vec<UserId>,
    },
    /// The remote clipboard changed and the policy lets it out.
    Clipboard {
        session_id: SessionId,
        clipboard: crate::worker::ClipboardText,
    },
}

/// The attach block of session responses.
#[derive(Debug, Clone, Serialize)]
pub struct AttachOffer {
    /// The attachment this offer is for (internal: data-plane tokens name it).
    #[serde(skip)]
    pub attachment_id: Uuid,
    pub attach_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub gateway_url: String,
}

/// A session with its current controller, as the API shows it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: SessionRecord,
    pub controller: Option<AttachmentRecord>,
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub resource_id: ResourceId,
    pub device_id: Option<DeviceId>,
    pub width: Option<u16>,
    pub height: Option<u16>,
}

impl StartRequest {
    /// A start at the appliance's default size, from no particular device.
    pub fn for_resource(resource_id: ResourceId) -> Self {
        Self { resource_id, device_id: None, width: None, height: None }
    }
}
