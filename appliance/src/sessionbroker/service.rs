use std::sync::Arc;

use rap_storage::StorageError;
use rap_storage::live::{Topics, TtlMap};
use rap_storage::repo::{
    AttachmentRecord, AuditEvent, LeaseChange, NoCapacity, OrgScope, Repositories, ResourceRecord, SessionRecord,
    SessionScope, SessionTransition, TransitionOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::state::{Command, IllegalTransition, SessionState, next, rule};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::Principal;
use crate::config::{AppEnv, BrokerConfig};
use crate::keys::random_bytes;
use crate::organization::policy::{Action, Decision, authorize};
use crate::organization::{Denied, Gate};
use crate::resource::credential_like_paths;
use crate::secrets::{Credentials, SecretService};
use crate::worker::pool::WorkerQueues;
use crate::worker::{Assignment, WorkerControl, WorkerEvent, WorkerEventKind, control_queue, input_queue};

/// Size used when a client does not say (and the bounds it may ask for).
const DEFAULT_SIZE: (u16, u16) = (1280, 800);
const MIN_SIZE: u16 = 64;
const MAX_WIDTH: u16 = 7680;
const MAX_HEIGHT: u16 = 4320;
/// How long a controller binding lives without being renewed by a transition.
const CONTROLLER_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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

/// What an attach token grants, kept in live state until redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachGrant {
    pub session_id: Uuid,
    pub attachment_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<Uuid>,
    /// `controller` or `viewer`.
    pub role: String,
}

/// Who controls a session right now (live state, mirrored in SQLite).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerBinding {
    pub session_id: Uuid,
    pub attachment_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<Uuid>,
}

/// What a session's subscribers (its sockets) are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionNotice {
    StateChanged {
        session_id: Uuid,
        state: SessionState,
        reason: Option<String>,
    },
    /// `attachment_id` lost control to `by_user_id`.
    TakenOver {
        session_id: Uuid,
        attachment_id: Uuid,
        by_user_id: Uuid,
    },
    /// A read-only viewer started or stopped watching: everyone attached
    /// (the controller above all) sees who watches.
    Viewers {
        session_id: Uuid,
        viewers: Vec<Uuid>,
    },
    /// The remote clipboard changed and the policy lets it out.
    Clipboard {
        session_id: Uuid,
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

#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub resource_id: Uuid,
    pub device_id: Option<Uuid>,
    pub width: Option<u16>,
    pub height: Option<u16>,
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

pub fn controller_key(session_id: Uuid) -> String {
    format!("controller:{session_id}")
}

pub fn notice_topic(session_id: Uuid) -> String {
    format!("session:{session_id}")
}

fn attach_key(token: &str) -> String {
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
    inner: Arc<Inner>,
}

struct Inner {
    repositories: Repositories,
    gate: Gate,
    secrets: SecretService,
    live: BrokerLive,
    config: BrokerConfig,
    app_env: AppEnv,
    worker_kind: &'static str,
    gateway_url: String,
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

    fn event(
        &self,
        context: &RequestContext,
        actor: Option<Uuid>,
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
    async fn accessible(&self, principal: &Principal, id: Uuid) -> Result<SessionRecord, BrokerError> {
        let session = self.inner.repositories.sessions.get(id).await?.ok_or(BrokerError::SessionNotFound)?;
        let standing = self.inner.gate.standing(principal, session.organization_id).await?;
        if authorize(standing, Action::ManageSessions) == Decision::Allow {
            return Ok(session);
        }
        if session.owner_user_id == principal.user_id() && authorize(standing, Action::UseResources) == Decision::Allow
        {
            return Ok(session);
        }
        Err(BrokerError::SessionNotFound)
    }

    pub async fn view(&self, session: SessionRecord) -> Result<SessionView, StorageError> {
        let controller = self.inner.repositories.sessions.controller(session.id).await?;
        Ok(SessionView { session, controller })
    }

    pub async fn get(&self, principal: &Principal, id: Uuid) -> Result<SessionView, BrokerError> {
        let session = self.accessible(principal, id).await?;
        Ok(self.view(session).await?)
    }

    /// Sessions the caller may see: their own, plus every session of the
    /// organizations they manage (all for platform admins).
    pub async fn list(
        &self,
        principal: &Principal,
        organization_id: Option<Uuid>,
        states: Vec<String>,
        after: Option<Uuid>,
        limit: usize,
        context: &RequestContext,
    ) -> Result<Vec<SessionRecord>, BrokerError> {
        let scope = if principal.is_platform_admin() {
            SessionScope {
                organizations: organization_id.map_or(OrgScope::All, |id| OrgScope::Only(vec![id])),
                owner: None,
                managed: Vec::new(),
                states,
            }
        } else {
            let organizations = match organization_id {
                Some(id) => {
                    self.inner.gate.check(principal, id, Action::ReadOrganization, context).await.map_err(
                        |denied| match denied {
                            Denied::Hidden => BrokerError::InvalidField(("organization_id", "no such organization")),
                            other => other.into(),
                        },
                    )?;
                    vec![id]
                }
                None => self.inner.gate.member_organizations(principal).await?,
            };
            let mut managed = Vec::new();
            for id in &organizations {
                let standing = self.inner.gate.standing(principal, *id).await?;
                if authorize(standing, Action::ManageSessions) == Decision::Allow {
                    managed.push(*id);
                }
            }
            SessionScope {
                organizations: OrgScope::Only(organizations),
                owner: Some(principal.user_id()),
                managed,
                states,
            }
        };
        Ok(self.inner.repositories.sessions.list(scope, after, limit).await?)
    }

    fn new_token() -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
    }

    /// Issues a single-use attach token for `attachment`.
    async fn offer(&self, attachment: &AttachmentRecord) -> AttachOffer {
        let token = Self::new_token();
        let grant = AttachGrant {
            session_id: attachment.session_id,
            attachment_id: attachment.id,
            user_id: attachment.user_id,
            device_id: attachment.device_id,
            role: attachment.role.clone(),
        };
        let ttl = self.inner.config.attach_token_ttl;
        self.inner.live.attach_tokens.insert(&attach_key(&token), grant, ttl).await;
        let expires_at = OffsetDateTime::now_utc() + time::Duration::try_from(ttl).unwrap_or(time::Duration::MINUTE);
        AttachOffer {
            attachment_id: attachment.id,
            attach_token: token,
            expires_at,
            gateway_url: self.inner.gateway_url.clone(),
        }
    }

    /// Redeems an attach token: valid once, until it expires.
    pub async fn redeem(&self, token: &str) -> Option<AttachGrant> {
        self.inner.live.attach_tokens.take(&attach_key(token)).await
    }

    fn controller_attachment(
        session: &SessionRecord,
        principal: &Principal,
        device_id: Option<Uuid>,
        now: OffsetDateTime,
    ) -> AttachmentRecord {
        AttachmentRecord {
            id: Uuid::now_v7(),
            session_id: session.id,
            user_id: principal.user_id(),
            device_id,
            role: "controller".into(),
            attached_at: now,
            detached_at: None,
            end_reason: None,
        }
    }

    /// Applies `command` to `session` as computed from its current state.
    async fn apply(
        &self,
        session: &SessionRecord,
        command: Command,
        details: Transition,
        audit: AuditEvent,
    ) -> Result<SessionRecord, BrokerError> {
        let current = SessionState::parse(&session.state).ok_or(BrokerError::Raced)?;
        let to = next(current, command)?;
        let (from, _) = rule(command);
        let mut audit = audit;
        audit.details["from"] = json!(current.as_str());
        audit.details["to"] = json!(to.as_str());
        audit.details["command"] = json!(command.as_str());
        let transition = SessionTransition {
            session_id: session.id,
            from: from.iter().map(|state| state.as_str()).collect(),
            to: to.as_str(),
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
    async fn after_end(&self, session: &SessionRecord) {
        self.inner.live.controllers.remove(&controller_key(session.id)).await;
        self.inner.live.queues.inputs.purge(&input_queue(session.id)).await;
        if let Some(worker_id) = session.worker_id {
            self.stop_worker(worker_id, session.id).await;
        }
    }

    async fn stop_worker(&self, worker_id: Uuid, session_id: Uuid) {
        let cancel = WorkerControl::Cancel { session_id };
        if let Err(error) = self.inner.live.queues.control.push(&control_queue(worker_id), cancel).await {
            tracing::warn!(%session_id, %error, "Cancellation not delivered to the worker");
        }
    }

    async fn bind_controller(&self, attachment: &AttachmentRecord) {
        let binding = ControllerBinding {
            session_id: attachment.session_id,
            attachment_id: attachment.id,
            user_id: attachment.user_id,
            device_id: attachment.device_id,
        };
        self.inner.live.controllers.insert(&controller_key(attachment.session_id), binding, CONTROLLER_TTL).await;
    }

    /// Starts a session on `resource_id` for `principal`: authorizes against
    /// the resource's organization before any worker is reserved.
    pub async fn start(
        &self,
        principal: &Principal,
        request: StartRequest,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        let resource =
            self.inner.repositories.resources.get(request.resource_id).await?.ok_or(BrokerError::ResourceNotFound)?;
        self.inner.gate.check(principal, resource.organization_id, Action::UseResources, context).await.map_err(
            |denied| match denied {
                Denied::Hidden => BrokerError::ResourceNotFound,
                other => other.into(),
            },
        )?;
        self.check_startable(&resource)?;
        if let Some(device_id) = request.device_id {
            let own = self.inner.repositories.auth.list_devices(principal.user_id()).await?;
            if !own.iter().any(|device| device.id == device_id) {
                return Err(BrokerError::InvalidField(("device_id", "is not one of your devices")));
            }
        }
        let width = request.width.unwrap_or(DEFAULT_SIZE.0);
        let height = request.height.unwrap_or(DEFAULT_SIZE.1);
        if !(MIN_SIZE..=MAX_WIDTH).contains(&width) {
            return Err(BrokerError::InvalidField(("width", "must be between 64 and 7680")));
        }
        if !(MIN_SIZE..=MAX_HEIGHT).contains(&height) {
            return Err(BrokerError::InvalidField(("height", "must be between 64 and 4320")));
        }

        let now = OffsetDateTime::now_utc();
        let session = SessionRecord {
            id: Uuid::now_v7(),
            organization_id: resource.organization_id,
            resource_id: resource.id,
            owner_user_id: principal.user_id(),
            device_id: request.device_id,
            state: SessionState::Pending.as_str().into(),
            worker_id: None,
            width: Some(width),
            height: Some(height),
            failure_reason: None,
            detach_reason: None,
            // Only the reference: resolved credentials live in the assignment alone.
            metadata: json!({"secret_ref": resource.secret_ref, "protocol": resource.protocol, "host": resource.host, "port": resource.port}),
            created_at: now,
            updated_at: now,
            started_at: None,
            ended_at: None,
            last_attached_at: None,
            detached_at: None,
        };
        let created = audit::with(
            self.event(context, Some(principal.user_id()), "session.created", &session, Outcome::Success),
            json!({"resource_id": resource.id, "to": "pending"}),
        );
        let (session, lease) = match self
            .inner
            .repositories
            .sessions
            .create(session, self.inner.worker_kind, self.inner.config.lease_ttl, created)
            .await?
        {
            Ok(created) => created,
            Err(NoCapacity) => {
                tracing::warn!(resource_id = %resource.id, "No worker slot free");
                return Err(BrokerError::NoCapacity);
            }
        };

        let credentials = match self.credentials_for(&resource).await {
            Ok(credentials) => credentials,
            Err(reason) => {
                let failed =
                    self.event(context, Some(principal.user_id()), "session.state_changed", &session, Outcome::Failure);
                self.apply(&session, Command::Fail, Transition::failed(&reason), failed).await?;
                return Err(BrokerError::SecretUnavailable(reason));
            }
        };
        let attachment = Self::controller_attachment(&session, principal, request.device_id, now);
        let assigned =
            self.event(context, Some(principal.user_id()), "session.state_changed", &session, Outcome::Success);
        let details = Transition {
            open_attachment: Some(attachment.clone()),
            lease: LeaseChange::Renew(self.inner.config.lease_ttl),
            ..Transition::default()
        };
        let session = self.apply(&session, Command::Assign, details, assigned).await?;
        self.dispatch(&session, &resource, lease.worker_id, credentials, context).await?;
        self.bind_controller(&attachment).await;
        let offer = self.offer(&attachment).await;
        tracing::info!(session_id = %session.id, worker_id = %lease.worker_id, "Session starting");
        Ok((self.view(session).await?, offer))
    }

    /// Queues the transient assignment (credentials included) for the
    /// session's worker; a worker that cannot take it fails the session.
    async fn dispatch(
        &self,
        session: &SessionRecord,
        resource: &ResourceRecord,
        worker_id: Uuid,
        credentials: Option<Credentials>,
        context: &RequestContext,
    ) -> Result<(), BrokerError> {
        let (width, height) = (session.width.unwrap_or(DEFAULT_SIZE.0), session.height.unwrap_or(DEFAULT_SIZE.1));
        let assignment = Assignment {
            session_id: session.id,
            worker_id,
            organization_id: session.organization_id,
            protocol: resource.protocol.clone(),
            host: resource.host.clone(),
            port: resource.port,
            credentials,
            certificate_verification_mode: resource.certificate_verification_mode.clone(),
            certificate_fingerprint: resource.certificate_fingerprint.clone(),
            clipboard_mode: resource.policy.clipboard_mode.clone(),
            file_transfer_mode: resource.policy.file_transfer_mode.clone(),
            width,
            height,
        };
        let control = WorkerControl::Assign(Box::new(assignment));
        if let Err(error) = self.inner.live.queues.control.push(&control_queue(worker_id), control).await {
            tracing::error!(session_id = %session.id, %error, "Assignment not delivered");
            let failed = self.event(context, None, "session.state_changed", session, Outcome::Failure);
            self.apply(session, Command::Fail, Transition::failed("worker_unavailable"), failed).await?;
            return Err(BrokerError::NoCapacity);
        }
        Ok(())
    }

    /// Checks that `resource` may be started here now: a runtime for its
    /// protocol, and in production no plaintext credentials and a secret.
    fn check_startable(&self, resource: &ResourceRecord) -> Result<(), BrokerError> {
        // Before anything is written: a protocol without a runtime must not
        // be reached through another one's.
        if !self.inner.config.runtime.protocols().contains(&resource.protocol.as_str()) {
            return Err(BrokerError::ProtocolUnsupported(resource.protocol.clone()));
        }
        if self.inner.app_env.is_production() {
            let paths = credential_like_paths(&resource.metadata, "metadata");
            if !paths.is_empty() {
                return Err(BrokerError::PlaintextSecretForbidden(paths));
            }
            if resource.secret_ref.is_none() {
                return Err(BrokerError::SecretRequired);
            }
        }
        Ok(())
    }

    /// Resumes a session that kept its row but lost its connection (the
    /// appliance restarted): a new lease, the same host and resolved
    /// secret, a new connection; the host's own session persistence
    /// brings the user's desktop back. The caller becomes the controller.
    async fn resume(
        &self,
        principal: &Principal,
        session: SessionRecord,
        command: Command,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        let resource =
            self.inner.repositories.resources.get(session.resource_id).await?.ok_or(BrokerError::ResourceNotFound)?;
        self.check_startable(&resource)?;
        let credentials = self.credentials_for(&resource).await.map_err(BrokerError::SecretUnavailable)?;
        let now = OffsetDateTime::now_utc();
        let device_id = session.device_id.filter(|_| session.owner_user_id == principal.user_id());
        let attachment = Self::controller_attachment(&session, principal, device_id, now);
        let event = audit::with(
            self.event(context, Some(principal.user_id()), "session.resumed", &session, Outcome::Success),
            json!({"attachment_id": attachment.id, "by": command.as_str()}),
        );
        let details = Transition {
            end_controller: Some("resumed".into()),
            open_attachment: Some(attachment.clone()),
            lease: LeaseChange::Acquire {
                worker_kind: self.inner.worker_kind.to_owned(),
                ttl: self.inner.config.lease_ttl,
            },
            ..Transition::default()
        };
        let session = self.apply(&session, Command::Resume, details, event).await?;
        let worker_id = session.worker_id.ok_or(BrokerError::Raced)?;
        self.dispatch(&session, &resource, worker_id, credentials, context).await?;
        self.bind_controller(&attachment).await;
        let offer = self.offer(&attachment).await;
        tracing::info!(session_id = %session.id, %worker_id, "Session resuming on a new connection");
        Ok((self.view(session).await?, offer))
    }

    /// The credentials to put in the assignment: the secret store first; in
    /// development, plaintext metadata (`username`/`password`/`domain`).
    async fn credentials_for(&self, resource: &ResourceRecord) -> Result<Option<Credentials>, String> {
        match self.inner.secrets.resolve(resource).await {
            Ok(Some(credentials)) => return Ok(Some(credentials)),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(resource_id = %resource.id, %error, "Resource secret cannot be opened");
                return Err("secret_unavailable".into());
            }
        }
        if self.inner.app_env.is_production() {
            return Ok(None);
        }
        let text = |key: &str| resource.metadata.get(key).and_then(|value| value.as_str()).map(str::to_owned);
        Ok(match (text("username"), text("password")) {
            (Some(username), Some(password)) => Some(Credentials { username, password, domain: text("domain") }),
            _ => None,
        })
    }

    /// A new controller attachment for the caller, replacing the current one.
    async fn rebind(
        &self,
        principal: &Principal,
        id: Uuid,
        command: Command,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        let session = self.accessible(principal, id).await?;
        if session.state == SessionState::Detached.as_str() && session.worker_id.is_none() {
            return self.resume(principal, session, command, context).await;
        }
        let current = self.inner.repositories.sessions.controller(id).await?;
        if command == Command::Attach
            && let Some(controller) = &current
            && controller.user_id != principal.user_id()
        {
            // Someone else holds it: taking it is a takeover, said explicitly.
            return Err(IllegalTransition { state: SessionState::Active, command }.into());
        }
        let now = OffsetDateTime::now_utc();
        let device_id = session.device_id.filter(|_| session.owner_user_id == principal.user_id());
        let attachment = Self::controller_attachment(&session, principal, device_id, now);
        let reason = if command == Command::Takeover { "taken_over" } else { "reattached" };
        let action = if command == Command::Takeover { "session.taken_over" } else { "session.attached" };
        let event = audit::with(
            self.event(context, Some(principal.user_id()), action, &session, Outcome::Success),
            json!({"attachment_id": attachment.id, "previous_attachment_id": current.as_ref().map(|controller| controller.id)}),
        );
        let details = Transition {
            end_controller: Some(reason.into()),
            open_attachment: Some(attachment.clone()),
            ..Transition::default()
        };
        let session = self.apply(&session, command, details, event).await?;
        self.bind_controller(&attachment).await;
        if command == Command::Takeover
            && let Some(previous) = current
        {
            let notice = SessionNotice::TakenOver {
                session_id: id,
                attachment_id: previous.id,
                by_user_id: principal.user_id(),
            };
            self.inner.live.notices.publish(&notice_topic(id), notice).await;
        }
        let offer = self.offer(&attachment).await;
        Ok((self.view(session).await?, offer))
    }

    /// A read-only viewer attachment for an organization owner/admin (or a
    /// platform admin): watch without taking control. The session's state
    /// does not change; the controller is told who watches.
    pub async fn shadow(
        &self,
        principal: &Principal,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        let session = self.inner.repositories.sessions.get(id).await?.ok_or(BrokerError::SessionNotFound)?;
        self.inner.gate.check(principal, session.organization_id, Action::ManageSessions, context).await.map_err(
            |denied| match denied {
                // The owner may see the session but not shadow it.
                Denied::Forbidden if session.owner_user_id == principal.user_id() => BrokerError::Forbidden,
                Denied::Forbidden | Denied::Hidden => BrokerError::SessionNotFound,
                Denied::Storage(error) => BrokerError::Storage(error),
            },
        )?;
        let state = SessionState::parse(&session.state).ok_or(BrokerError::Raced)?;
        if state.is_terminal() || state == SessionState::Pending {
            return Err(IllegalTransition { state, command: Command::Attach }.into());
        }
        let attachment = AttachmentRecord {
            role: "viewer".into(),
            ..Self::controller_attachment(&session, principal, None, OffsetDateTime::now_utc())
        };
        let event = audit::with(
            self.event(context, Some(principal.user_id()), "session.shadow_started", &session, Outcome::Success),
            json!({"attachment_id": attachment.id}),
        );
        self.inner.repositories.sessions.open_viewer(attachment.clone(), event).await?;
        let offer = self.offer(&attachment).await;
        Ok((self.view(session).await?, offer))
    }

    /// A viewer's socket is gone: its attachment ends.
    pub async fn viewer_left(&self, session_id: Uuid, attachment_id: Uuid) {
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
    pub async fn announce_viewers(&self, session_id: Uuid) {
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

    pub async fn attach(
        &self,
        principal: &Principal,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        self.rebind(principal, id, Command::Attach, context).await
    }

    pub async fn takeover(
        &self,
        principal: &Principal,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        self.rebind(principal, id, Command::Takeover, context).await
    }

    pub async fn detach(
        &self,
        principal: &Principal,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<SessionView, BrokerError> {
        let session = self.accessible(principal, id).await?;
        let event = self.event(context, Some(principal.user_id()), "session.detached", &session, Outcome::Success);
        let session = self.detach_record(&session, "detached", event).await?;
        Ok(self.view(session).await?)
    }

    /// Detaches the controller (by request, or because its transport died).
    pub async fn detach_record(
        &self,
        session: &SessionRecord,
        reason: &str,
        event: AuditEvent,
    ) -> Result<SessionRecord, BrokerError> {
        let details =
            Transition { reason: Some(reason.into()), end_controller: Some(reason.into()), ..Transition::default() };
        let updated = self.apply(session, Command::Detach, details, event).await?;
        self.inner.live.controllers.remove(&controller_key(session.id)).await;
        Ok(updated)
    }

    pub async fn terminate(
        &self,
        principal: &Principal,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<SessionView, BrokerError> {
        let session = self.accessible(principal, id).await?;
        let event = self.event(context, Some(principal.user_id()), "session.terminated", &session, Outcome::Success);
        let details = Transition { lease: LeaseChange::Release("session_ended".into()), ..Transition::default() };
        let session = self.apply(&session, Command::Terminate, details, event).await?;
        Ok(self.view(session).await?)
    }

    /// Fails an open session for a system reason (worker lost, restart).
    async fn fail(&self, session: &SessionRecord, reason: &str) -> Result<Option<SessionRecord>, BrokerError> {
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
                // (the seed: active-state and server-to-client checks).
                let active = session.state == SessionState::Active.as_str();
                if !active {
                    tracing::info!(session_id = %session.id, state = %session.state, "Remote clipboard withheld: the session is not active");
                } else if self.clipboard_mode(&session).await.is_some_and(|mode| mode.allows_server_to_client()) {
                    let notice = SessionNotice::Clipboard { session_id: session.id, clipboard };
                    self.inner.live.notices.publish(&notice_topic(session.id), notice).await;
                } else {
                    tracing::info!(session_id = %session.id, "Remote clipboard withheld by policy");
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

    /// The session as stored, for the gateway (which authorized the caller
    /// through the attach token).
    pub async fn session(&self, id: Uuid) -> Option<SessionRecord> {
        self.inner.repositories.sessions.get(id).await.ok().flatten()
    }

    /// Subscribes to a session's notices (state changes, takeovers).
    pub async fn subscribe(&self, session_id: Uuid) -> rap_storage::live::Subscription<SessionNotice> {
        self.inner.live.notices.subscribe(&notice_topic(session_id)).await
    }

    /// Who controls the session right now.
    pub async fn controller(&self, session_id: Uuid) -> Option<ControllerBinding> {
        self.inner.live.controllers.get(&controller_key(session_id)).await
    }

    /// Queues controller input for the session's worker.
    pub async fn route_input(
        &self,
        session_id: Uuid,
        input: crate::worker::SessionInput,
    ) -> Result<(), rap_storage::live::QueueError> {
        self.inner.live.queues.inputs.push(&input_queue(session_id), input).await
    }

    /// The controller's transport is gone (closed, or silent past the
    /// heartbeat): the session stays up, detached, ready to be resumed.
    pub async fn transport_lost(&self, session_id: Uuid, attachment_id: Uuid) {
        let Some(session) = self.session(session_id).await else { return };
        if self.controller(session_id).await.is_none_or(|binding| binding.attachment_id != attachment_id) {
            return;
        }
        let event = audit::with(
            self.event(&RequestContext::default(), None, "session.detached", &session, Outcome::Success),
            json!({"reason": "transport_closed", "attachment_id": attachment_id}),
        );
        match self.detach_record(&session, "transport_closed", event).await {
            Ok(_) => tracing::info!(%session_id, "Controller transport lost; session detached"),
            Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
            Err(error) => tracing::error!(%session_id, %error, "Detaching after a lost transport failed"),
        }
    }

    /// Records a finished file transfer: who, which file, how big, its
    /// SHA-256; never its contents. A failed write is logged, not fatal:
    /// the file has already moved.
    pub async fn audit_file_transfer(&self, session_id: Uuid, actor: Uuid, action: &str, details: serde_json::Value) {
        let Some(session) = self.session(session_id).await else { return };
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
        PolicyMode::parse(&self.policy(session).await?.clipboard_mode)
    }

    /// The file transfer policy of the session's resource, read at each
    /// request so an admin's change applies to running sessions too.
    pub async fn file_transfer_mode(&self, session: &SessionRecord) -> Option<PolicyMode> {
        PolicyMode::parse(&self.policy(session).await?.file_transfer_mode)
    }

    /// Every worker with its open leases (platform admins only; the route
    /// requires it).
    pub async fn workers(&self) -> Result<Vec<rap_storage::repo::WorkerStatus>, StorageError> {
        self.inner.repositories.sessions.workers().await
    }

    /// Open sessions and online workers, for the metrics gauges.
    pub async fn gauges(&self) -> Result<(u64, usize), StorageError> {
        let open = self.inner.repositories.sessions.count_open().await?;
        let online = self
            .inner
            .repositories
            .sessions
            .workers()
            .await?
            .iter()
            .filter(|status| status.worker.status == "online")
            .count();
        Ok((open, online))
    }

    /// Renews leases from the heartbeat board, then fails the sessions of
    /// workers whose leases ran out. Expiry is judged as of the moment the
    /// beats were collected, so however long the renewal write waits for
    /// the database, a worker that beat in time is never taken for dead.
    pub async fn expire_leases(&self) -> Result<usize, BrokerError> {
        let now = OffsetDateTime::now_utc();
        let heartbeats = &self.inner.live.queues.heartbeats;
        let beats = heartbeats.take_all().await;
        let stale =
            match self.inner.repositories.sessions.renew_leases(beats.clone(), self.inner.config.lease_ttl).await {
                Ok(stale) => stale,
                Err(error) => {
                    // Keep the beats for the next round (newer ones win).
                    for beat in beats {
                        let _ = heartbeats.beat(beat).await;
                    }
                    return Err(error.into());
                }
            };
        for beat in stale {
            // Its session is over for the broker: the worker must stop.
            self.stop_worker(beat.worker_id, beat.session_id).await;
        }
        let mut failed = 0;
        for lease in self.inner.repositories.sessions.expired_leases(now).await? {
            if let Some(session) = self.inner.repositories.sessions.get(lease.session_id).await? {
                tracing::warn!(session_id = %session.id, worker_id = %lease.worker_id, "Worker lease expired");
                if self.fail(&session, "worker_lost").await?.is_some() {
                    failed += 1;
                }
            }
        }
        Ok(failed)
    }

    /// Terminates sessions left detached longer than the configured timeout.
    pub async fn reap_detached(&self) -> Result<usize, BrokerError> {
        let timeout = time::Duration::try_from(self.inner.config.detached_timeout).unwrap_or(time::Duration::DAY);
        let mut reaped = 0;
        for session in self.inner.repositories.sessions.detached_before(OffsetDateTime::now_utc() - timeout).await? {
            let event = audit::with(
                self.event(&RequestContext::default(), None, "session.terminated", &session, Outcome::Success),
                json!({"reason": "detached_timeout"}),
            );
            let details =
                Transition { lease: LeaseChange::Release("detached_timeout".into()), ..Transition::default() };
            match self.apply(&session, Command::Terminate, details, event).await {
                Ok(_) => reaped += 1,
                Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(reaped)
    }

    /// At start-up: no session can have a live connection (workers are in
    /// process). `active` and `detached` ones become `detached`
    /// (`appliance_restarted`) without a worker, to be resumed on their
    /// next attach; `pending` and `starting` ones fail.
    pub async fn recover_after_restart(&self) -> Result<Recovered, BrokerError> {
        let mut recovered = Recovered::default();
        for session in self.inner.repositories.sessions.open_sessions().await? {
            let state = SessionState::parse(&session.state);
            if matches!(state, Some(SessionState::Active | SessionState::Detached)) {
                let event = audit::with(
                    self.event(&RequestContext::default(), None, "session.detached", &session, Outcome::Success),
                    json!({"reason": "appliance_restarted"}),
                );
                let details = Transition {
                    reason: Some("appliance_restarted".into()),
                    end_controller: Some("appliance_restarted".into()),
                    lease: LeaseChange::Surrender("appliance_restarted".into()),
                    ..Transition::default()
                };
                match self.apply(&session, Command::Recover, details, event).await {
                    Ok(_) => recovered.detached += 1,
                    Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
                    Err(error) => return Err(error),
                }
            } else if self.fail(&session, "appliance_restarted").await?.is_some() {
                recovered.failed += 1;
            }
        }
        Ok(recovered)
    }
}

/// What start-up recovery did to the previous run's open sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// `active`/`detached` sessions kept, detached, for resuming.
    pub detached: usize,
    /// `pending`/`starting` sessions failed.
    pub failed: usize,
}

/// The side effects of one transition.
#[derive(Debug, Clone, Default)]
struct Transition {
    reason: Option<String>,
    end_controller: Option<String>,
    open_attachment: Option<AttachmentRecord>,
    lease: LeaseChange,
    width: Option<u16>,
    height: Option<u16>,
}

impl Transition {
    fn failed(reason: &str) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            lease: LeaseChange::Release("session_failed".into()),
            ..Self::default()
        }
    }
}

/// Which way clipboard text or files may cross (a resource's
/// `clipboard_mode` and `file_transfer_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    Disabled,
    ClientToServer,
    ServerToClient,
    Bidirectional,
}

impl PolicyMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "disabled" => Some(Self::Disabled),
            "client_to_server" => Some(Self::ClientToServer),
            "server_to_client" => Some(Self::ServerToClient),
            "bidirectional" => Some(Self::Bidirectional),
            _ => None,
        }
    }

    pub fn allows_client_to_server(self) -> bool {
        matches!(self, Self::ClientToServer | Self::Bidirectional)
    }

    pub fn allows_server_to_client(self) -> bool {
        matches!(self, Self::ServerToClient | Self::Bidirectional)
    }
}
