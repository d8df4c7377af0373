//! What the gateway may ask of the broker for a socket it admitted:
//! the session, its notices and controller, routing input, policy.

use rap_storage::repo::SessionRecord;
use rap_storage::{SessionId, UserId};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Outcome, RequestContext};
use crate::resource::PolicyMode;
use crate::worker::input_queue;

use super::service::{Broker, BrokerError, attach_key, controller_key, notice_topic};
use super::state::SessionState;
use super::types::{AttachGrant, ControllerBinding, SessionNotice};

/// How long a lost controller waits for its starting session to settle.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Broker {
    /// Redeems an attach token: valid once, until it expires.
    pub async fn redeem(&self, token: &str) -> Option<AttachGrant> {
        self.inner.live.attach_tokens.take(&attach_key(token)).await
    }

    /// The session as stored, for the gateway (which authorized the caller
    /// through the attach token).
    pub async fn session(&self, id: SessionId) -> Option<SessionRecord> {
        self.inner.repositories.sessions.get(id).await.ok().flatten()
    }

    /// Subscribes to a session's notices (state changes, takeovers).
    pub async fn subscribe(&self, session_id: SessionId) -> rap_storage::live::Subscription<SessionNotice> {
        self.inner.live.notices.subscribe(&notice_topic(session_id)).await
    }

    /// Who controls the session right now.
    pub async fn controller(&self, session_id: SessionId) -> Option<ControllerBinding> {
        self.inner.live.controllers.get(&controller_key(session_id)).await
    }

    /// Queues controller input for the session's worker.
    pub async fn route_input(
        &self,
        session_id: SessionId,
        input: crate::worker::SessionInput,
    ) -> Result<(), rap_storage::live::QueueError> {
        self.inner.live.queues.inputs.push(&input_queue(session_id), input).await
    }

    /// The controller's transport is gone (closed, or silent past the
    /// heartbeat): the session stays up, detached, ready to be resumed.
    pub async fn transport_lost(&self, session_id: SessionId, attachment_id: Uuid, reason: &'static str) {
        let Some(session) = self.settled(session_id).await else { return };
        if self.controller(session_id).await.is_none_or(|binding| binding.attachment_id != attachment_id) {
            return;
        }
        let event = audit::with(
            self.event(&RequestContext::default(), None, "session.detached", &session, Outcome::Success),
            json!({"reason": reason, "attachment_id": attachment_id}),
        );
        match self.detach_record(&session, reason, event).await {
            Ok(_) => tracing::info!(%session_id, reason, "Controller socket gone; session detached"),
            Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
            Err(error) => tracing::error!(%session_id, %error, "Detaching after a lost transport failed"),
        }
    }

    /// The session once it is past `pending`/`starting`. A controller can
    /// see the desktop, and leave, before the worker reports it started;
    /// only an `active` session can be detached, so its loss waits for
    /// that (bounded, and over at once if the session ends instead).
    async fn settled(&self, session_id: SessionId) -> Option<SessionRecord> {
        use futures_util::StreamExt;
        // The usual case, an active session, needs no subscription.
        let session = self.session(session_id).await?;
        if !matches!(session.state, SessionState::Pending | SessionState::Starting) {
            return Some(session);
        }
        // Subscribed before reading again, so a change in between is seen.
        let mut notices = self.subscribe(session_id).await;
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let session = self.session(session_id).await?;
            if !matches!(session.state, SessionState::Pending | SessionState::Starting) {
                return Some(session);
            }
            match tokio::time::timeout_at(deadline, notices.next()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// A viewer's socket is gone: its attachment ends.
    pub async fn viewer_left(&self, session_id: SessionId, attachment_id: Uuid) {
        match self
            .inner
            .repositories
            .sessions
            .end_attachment(attachment_id, "viewer_left", OffsetDateTime::now_utc())
            .await
        {
            Ok(true) => self.announce_viewers(session_id).await,
            Ok(false) => {}
            Err(error) => tracing::warn!(%session_id, %error, "Viewer attachment not ended"),
        }
    }

    /// Tells the session's sockets who is watching.
    pub async fn announce_viewers(&self, session_id: SessionId) {
        match self.inner.repositories.sessions.viewers(session_id).await {
            Ok(viewers) => {
                let viewers = viewers.into_iter().map(|viewer| viewer.user_id).collect();
                self.inner
                    .live
                    .notices
                    .publish(&notice_topic(session_id), SessionNotice::Viewers { session_id, viewers })
                    .await;
            }
            Err(error) => tracing::warn!(%session_id, %error, "Viewers not announced"),
        }
    }

    /// Records a finished file transfer: who, which file, how big, its
    /// SHA-256; never its contents. A failed write is logged, not fatal:
    /// the file has already moved.
    pub async fn audit_file_transfer(
        &self,
        session_id: SessionId,
        actor: UserId,
        action: &str,
        moved: &crate::transfer::Moved,
    ) {
        let Some(session) = self.session(session_id).await else { return };
        let details = serde_json::to_value(moved).unwrap_or_default();
        let event = audit::with(
            self.event(&RequestContext::default(), Some(actor), action, &session, Outcome::Success),
            details,
        );
        if let Err(error) = self.inner.repositories.audit.append(event).await {
            tracing::error!(%session_id, %error, action, "File transfer audit event not written");
        }
    }

    /// The session's resource policy as stored.
    pub async fn policy(&self, session: &SessionRecord) -> Option<rap_storage::repo::ResourcePolicyRecord> {
        let resource = self.inner.repositories.resources.get(session.resource_id).await.ok().flatten()?;
        Some(resource.policy)
    }

    /// The clipboard policy of the session's resource.
    pub async fn clipboard_mode(&self, session: &SessionRecord) -> Option<PolicyMode> {
        Some(self.policy(session).await?.clipboard_mode)
    }

    /// The file transfer policy of the session's resource, read at each
    /// request so an admin's change applies to running sessions too.
    pub async fn file_transfer_mode(&self, session: &SessionRecord) -> Option<PolicyMode> {
        Some(self.policy(session).await?.file_transfer_mode)
    }

    /// The running sessions' screens (the gateway reads them, workers draw).
    pub fn screens(&self) -> &crate::protocol::framebuffer::Screens {
        &self.inner.live.queues.screens
    }

    /// The session's transfer folder (it exists only while its policy
    /// allows file transfer and the session runs).
    pub fn transfer_dir(&self, session_id: SessionId) -> std::path::PathBuf {
        self.inner.live.queues.transfers.dir(session_id)
    }
}
