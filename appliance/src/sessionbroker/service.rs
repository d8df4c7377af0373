//! The broker's core: its state, its errors, and the one way a session's
//! state changes ([`Broker::apply`]). The rooms around it: `commands`
//! (what users ask), `events` (what workers report), `live` (what the
//! gateway may ask), `upkeep` (leases, the reaper, restart recovery).

use rap_storage::{SessionId, UserId, WorkerId};
use std::sync::Arc;

use rap_storage::StorageError;
use rap_storage::live::{Topics, TtlMap};
use rap_storage::repo::{
    AttachmentRecord, AuditEvent, LeaseChange, Repositories, SessionRecord, SessionTransition, TransitionOutcome,
};
use rap_storage::types::AttachmentRole;
use serde_json::json;
use time::OffsetDateTime;

use super::state::{Command, IllegalTransition, next, rule};
use super::types::{AttachGrant, ControllerBinding, SessionNotice, SessionView};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::Principal;
use crate::config::{AppEnv, BrokerConfig};
use crate::organization::policy::{Action, Decision, Standing, authorize};
use crate::organization::{Denied, Gate};
use crate::secrets::SecretService;
use crate::worker::pool::WorkerQueues;
use crate::worker::{WorkerControl, control_queue, input_queue};

/// How long a controller binding lives without being renewed by a transition.
pub(super) const CONTROLLER_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("resource not found")]
    ResourceNotFound,
    #[error("session not found")]
    SessionNotFound,
    #[error("forbidden")]
    Forbidden,
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("the session changed meanwhile")]
    Raced,
    #[error("resource needs a secret")]
    SecretRequired,
    #[error("no runtime for protocol {0}")]
    ProtocolUnsupported(String),
    #[error("plaintext credentials in metadata")]
    PlaintextSecretForbidden(Vec<String>),
    #[error("no worker slot is free")]
    NoCapacity,
    #[error("invalid field {}: {}", .0.0, .0.1)]
    InvalidField((&'static str, &'static str)),
    #[error("the resource's secret cannot be used: {0}")]
    SecretUnavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<Denied> for BrokerError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Hidden => Self::SessionNotFound,
            Denied::Forbidden => Self::Forbidden,
            Denied::Storage(error) => Self::Storage(error),
        }
    }
}

/// Live state the broker keeps (the seed's Redis keys).
#[derive(Clone)]
pub struct BrokerLive {
    /// `attach:<token>` → grant, single use.
    pub attach_tokens: Arc<dyn TtlMap<AttachGrant>>,
    /// `controller:<session_id>` → binding.
    pub controllers: Arc<dyn TtlMap<ControllerBinding>>,
    /// `session:<session_id>` topic.
    pub notices: Arc<dyn Topics<SessionNotice>>,
    pub queues: WorkerQueues,
}

pub fn controller_key(session_id: SessionId) -> String {
    format!("controller:{session_id}")
}

pub fn notice_topic(session_id: SessionId) -> String {
    format!("session:{session_id}")
}

pub(super) fn attach_key(token: &str) -> String {
    format!("attach:{token}")
}

/// The broker's settings, from configuration.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub config: BrokerConfig,
    pub app_env: AppEnv,
    /// The kind of worker sessions are placed on (`scripted`, `rdp`).
    pub worker_kind: &'static str,
    /// Where attach tokens are redeemed.
    pub gateway_url: String,
}

#[derive(Clone)]
pub struct Broker {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) repositories: Repositories,
    pub(super) gate: Gate,
    pub(super) secrets: SecretService,
    pub(super) live: BrokerLive,
    pub(super) config: BrokerConfig,
    pub(super) app_env: AppEnv,
    pub(super) worker_kind: &'static str,
    pub(super) gateway_url: String,
}

impl Broker {
    pub fn new(
        repositories: Repositories,
        gate: Gate,
        secrets: SecretService,
        live: BrokerLive,
        settings: BrokerSettings,
    ) -> Self {
        let BrokerSettings { config, app_env, worker_kind, gateway_url } = settings;
        Self { inner: Arc::new(Inner { repositories, gate, secrets, live, config, app_env, worker_kind, gateway_url }) }
    }

    pub fn live(&self) -> &BrokerLive {
        &self.inner.live
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    pub(super) fn event(
        &self,
        context: &RequestContext,
        actor: Option<UserId>,
        action: &str,
        session: &SessionRecord,
        outcome: Outcome,
    ) -> AuditEvent {
        let mut event =
            audit::on(audit::event(context, actor, action, outcome, OffsetDateTime::now_utc()), "session", session.id);
        if actor.is_none() {
            event.actor_kind = "system".into();
        }
        AuditEvent { organization_id: Some(session.organization_id), session_id: Some(session.id), ..event }
    }

    /// The session, if `principal` may act on it: its owner (while they may
    /// use the organization's resources) or an owner/admin of its
    /// organization. Everyone else is told it does not exist.
    pub(super) async fn accessible(&self, principal: &Principal, id: SessionId) -> Result<SessionRecord, BrokerError> {
        let session = self.inner.repositories.sessions.get(id).await?.ok_or(BrokerError::SessionNotFound)?;
        let standing = self.inner.gate.standing(principal, session.organization_id).await?;
        if may_act(standing, &session, principal) { Ok(session) } else { Err(BrokerError::SessionNotFound) }
    }

    /// Whether `principal` may still hold a socket of `role` open on session
    /// `id`: a controller as [`Self::accessible`] allows, a watching viewer
    /// only as a manager of the session's organization (as shadowing asks).
    pub async fn may_hold(
        &self,
        principal: &Principal,
        id: SessionId,
        role: AttachmentRole,
    ) -> Result<bool, BrokerError> {
        let Some(session) = self.inner.repositories.sessions.get(id).await? else { return Ok(false) };
        let standing = self.inner.gate.standing(principal, session.organization_id).await?;
        Ok(match role {
            AttachmentRole::Controller => may_act(standing, &session, principal),
            AttachmentRole::Viewer => authorize(standing, Action::ManageSessions) == Decision::Allow,
        })
    }

    /// Applies `command` to `session` as computed from its current state.
    pub(super) async fn apply(
        &self,
        session: &SessionRecord,
        command: Command,
        details: Transition,
        audit: AuditEvent,
    ) -> Result<SessionRecord, BrokerError> {
        let current = session.state;
        let to = next(current, command)?;
        let (from, _) = rule(command);
        let mut audit = audit;
        audit.details["from"] = json!(current.as_str());
        audit.details["to"] = json!(to.as_str());
        audit.details["command"] = json!(command.as_str());
        let transition = SessionTransition {
            session_id: session.id,
            from: from.to_vec(),
            to,
            now: OffsetDateTime::now_utc(),
            reason: details.reason.clone(),
            end_controller: details.end_controller,
            open_attachment: details.open_attachment,
            lease: details.lease,
            width: details.width,
            height: details.height,
            audit,
        };
        let updated = match self.inner.repositories.sessions.transition(transition).await? {
            TransitionOutcome::Applied(updated) => *updated,
            TransitionOutcome::Raced => return Err(BrokerError::Raced),
            TransitionOutcome::NoCapacity => return Err(BrokerError::NoCapacity),
        };
        if to != current || command == Command::Attach {
            let notice = SessionNotice::StateChanged { session_id: session.id, state: to, reason: details.reason };
            self.inner.live.notices.publish(&notice_topic(session.id), notice).await;
        }
        if to.is_terminal() {
            self.after_end(&updated).await;
        }
        Ok(updated)
    }

    /// Cleans live state and stops the worker once a session has ended.
    pub(super) async fn after_end(&self, session: &SessionRecord) {
        self.inner.live.controllers.remove(&controller_key(session.id)).await;
        self.inner.live.queues.inputs.purge(&input_queue(session.id)).await;
        if let Some(worker_id) = session.worker_id {
            self.stop_worker(worker_id, session.id).await;
        }
    }

    pub(super) async fn stop_worker(&self, worker_id: WorkerId, session_id: SessionId) {
        let cancel = WorkerControl::Cancel { session_id };
        if let Err(error) = self.inner.live.queues.control.push(&control_queue(worker_id), cancel).await {
            tracing::warn!(%session_id, %error, "Cancellation not delivered to the worker");
        }
    }

    /// Fails an open session for a system reason (worker lost, restart).
    pub(super) async fn fail(
        &self,
        session: &SessionRecord,
        reason: &str,
    ) -> Result<Option<SessionRecord>, BrokerError> {
        let event = audit::with(
            self.event(&RequestContext::default(), None, "session.state_changed", session, Outcome::Failure),
            json!({"reason": reason}),
        );
        match self.apply(session, Command::Fail, Transition::failed(reason), event).await {
            Ok(updated) => Ok(Some(updated)),
            // Already ended by someone else: nothing to fail.
            Err(BrokerError::Illegal(_) | BrokerError::Raced) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn view(&self, session: SessionRecord) -> Result<SessionView, StorageError> {
        let controller = self.inner.repositories.sessions.controller(session.id).await?;
        Ok(SessionView { session, controller })
    }
}

/// The side effects of one transition.
#[derive(Debug, Clone, Default)]
pub(super) struct Transition {
    pub(super) reason: Option<String>,
    pub(super) end_controller: Option<String>,
    pub(super) open_attachment: Option<AttachmentRecord>,
    pub(super) lease: LeaseChange,
    pub(super) width: Option<u16>,
    pub(super) height: Option<u16>,
}

impl Transition {
    pub(super) fn failed(reason: &str) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            lease: LeaseChange::Release("session_failed".into()),
            ..Self::default()
        }
    }
}

/// Its owner (while they may use the organization's resources) or a manager
/// of its organization may act on a session.
fn may_act(standing: Standing, session: &SessionRecord, principal: &Principal) -> bool {
    authorize(standing, Action::ManageSessions) == Decision::Allow
        || (session.owner_user_id == principal.user_id()
            && authorize(standing, Action::UseResources) == Decision::Allow)
}
