//! What workers report (`worker:events`), fed into the state machine.

use crate::audit::{self, Outcome, RequestContext};
use crate::resource::PolicyMode;
use crate::resource::flow::{Crossing, Flow, may};
use crate::worker::{WorkerEvent, WorkerEventKind};
use rap_storage::repo::LeaseChange;
use serde_json::json;

use super::service::{Broker, BrokerError, Transition, notice_topic};
use super::state::Command;
use super::types::SessionNotice;

impl Broker {
    /// Feeds one worker event into the state machine.
    pub async fn on_worker_event(&self, event: WorkerEvent) -> Result<(), BrokerError> {
        let Some(session) = self.inner.repositories.sessions.get(event.session_id).await? else {
            tracing::warn!(session_id = %event.session_id, "Event for an unknown session");
            return Ok(());
        };
        if session.worker_id != Some(event.worker_id) {
            tracing::warn!(session_id = %session.id, worker_id = %event.worker_id, "Event from a worker that does not hold the session");
            return Ok(());
        }
        match event.kind {
            WorkerEventKind::Connected { width, height } => {
                let audit = audit::with(
                    self.event(&RequestContext::default(), None, "session.state_changed", &session, Outcome::Success),
                    json!({"width": width, "height": height}),
                );
                let details = Transition { width: Some(width), height: Some(height), ..Transition::default() };
                match self.apply(&session, Command::Connected, details, audit).await {
                    Ok(_) => tracing::info!(session_id = %session.id, "Session active"),
                    Err(BrokerError::Illegal(_) | BrokerError::Raced) => self.after_end(&session).await,
                    Err(error) => return Err(error),
                }
            }
            WorkerEventKind::Failed { reason } => {
                tracing::info!(session_id = %session.id, %reason, "Session failed");
                self.fail(&session, &reason).await?;
            }
            WorkerEventKind::Clipboard(clipboard) => {
                // Enforced here as well as in the worker and the gateway
                // (the seed: active-state and server-to-client checks); the
                // gateway then gives it to the controller alone.
                let mode = self.clipboard_mode(&session).await.unwrap_or(PolicyMode::Disabled);
                let crossing = Crossing { controller: true, state: session.state, mode };
                match may(Flow::ClipboardOut, crossing) {
                    Ok(()) => {
                        let notice = SessionNotice::Clipboard { session_id: session.id, clipboard };
                        self.inner.live.notices.publish(&notice_topic(session.id), notice).await;
                    }
                    Err(refusal) => {
                        tracing::info!(session_id = %session.id, state = %session.state, reason = refusal.code(), "Remote clipboard withheld");
                    }
                }
            }
            WorkerEventKind::Disconnected { reason } => {
                let audit = audit::with(
                    self.event(&RequestContext::default(), None, "session.state_changed", &session, Outcome::Success),
                    json!({"reason": reason}),
                );
                let details =
                    Transition { lease: LeaseChange::Release("session_ended".into()), ..Transition::default() };
                match self.apply(&session, Command::Terminate, details, audit).await {
                    Ok(_) | Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }
}
