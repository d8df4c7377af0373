//! A socket lives only as long as its principal's right to it. Whenever
//! rights may have shrunk ([`crate::auth::AccessChanges`]), the socket
//! checks again: its auth session still open, its user still enabled, and
//! its role on the session still allowed by the organization. If not, it
//! is told why (`session.access_revoked`) and closed, and nothing it sends
//! after the change reaches the session: every client message waits for
//! that check first.

use super::connection::Connection;
use super::envelope::{ServerMessage, details};
use super::socket::{Sink, close, close_with, send};
use crate::auth::PrincipalLost;
use crate::throttle::TokenBucket;

/// What a socket may send: `RAP_SOCKET_MESSAGES_PER_SECOND`, with bursts up
/// to `RAP_SOCKET_MESSAGE_BURST`.
pub(super) fn message_budget(state: &crate::state::AppState) -> TokenBucket {
    let edge = &state.config().edge;
    TokenBucket::new(edge.socket_messages_per_second, edge.socket_message_burst)
}

impl Connection {
    /// `Ok` while the right holds; checked again only after a change.
    pub(super) async fn still_entitled(&mut self) -> Result<(), &'static str> {
        if !self.access.has_changed().unwrap_or(false) {
            return Ok(());
        }
        self.access.mark_unchanged();
        self.entitlement().await
    }

    pub(super) async fn entitlement(&self) -> Result<(), &'static str> {
        let principal = self
            .state
            .auth()
            .principal_for(self.grant.user_id, self.grant.auth_session_id)
            .await
            .map_err(PrincipalLost::reason)?;
        match self.state.broker().may_hold(&principal, self.session_id(), self.grant.role).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("access_removed"),
            Err(error) => {
                // Fail closed: a right that cannot be confirmed is not held.
                tracing::warn!(session_id = %self.session_id(), %error, "Could not re-check a socket's access; closing it");
                Err("access_unverified")
            }
        }
    }

    /// Tells the client its access ended, and why, then closes the socket.
    pub(super) async fn revoke(&self, sink: &mut Sink, reason: &'static str) {
        self.state.metrics().socket_revoked(reason);
        tracing::info!(
            session_id = %self.session_id(),
            attachment_id = %self.grant.attachment_id,
            user_id = %self.grant.user_id,
            reason,
            "Socket closed: its access ended"
        );
        let words = match reason {
            "signed_out" => "You were signed out, so this connection was closed.",
            "user_disabled" => "Your account was disabled, so this connection was closed.",
            _ => "You no longer have access to this session, so this connection was closed.",
        };
        let event = self.notice("access_revoked", words, details::reason(reason));
        send(sink, ServerMessage::AccessRevoked { session_id: self.session_id(), reason, event }).await;
        close_with(sink, close::ACCESS_REVOKED, "access_revoked").await;
    }

    /// Cuts a socket that sends faster than any person types or moves a
    /// mouse; its session stays (detached, if it was the controller).
    pub(super) async fn cut_flood(&self, sink: &mut Sink) {
        self.state.metrics().rate_limited("socket_messages");
        static FLOODS_LOGGED: crate::throttle::LogThrottle =
            crate::throttle::LogThrottle::new(std::time::Duration::from_secs(10));
        if let Some(held_back) = FLOODS_LOGGED.admit() {
            tracing::warn!(session_id = %self.session_id(), held_back, "A socket sent messages too fast; it was closed");
        }
        let error = self.error(
            "rate_limited",
            "Messages arrived faster than allowed, so the connection was closed.",
            details::reason("socket_messages"),
        );
        send(sink, error).await;
        close_with(sink, close::RATE_LIMITED, "rate_limited").await;
    }
}
