//! What users ask of sessions: start, attach, takeover, shadow, detach,
//! terminate, and reading them. Each authorizes first, then changes state
//! through `apply`.

use rap_storage::repo::{AttachmentRecord, AuditEvent, LeaseChange, ResourceRecord, SessionRecord};
use rap_storage::repo::{NoCapacity, OrgScope, SessionScope};
use rap_storage::types::AttachmentRole;
use rap_storage::{AuthSessionId, DeviceId, OrgId, SessionId, WorkerId};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Outcome, RequestContext};
use crate::auth::Principal;
use crate::keys::random_bytes;
use crate::organization::Denied;
use crate::organization::policy::{Action, Decision, authorize};
use crate::protocol::DesktopSize;
use crate::secrets::Credentials;
use crate::secrets::credential_like_paths;
use crate::worker::{Assignment, WorkerControl, control_queue};

use super::service::{Broker, BrokerError, CONTROLLER_TTL, Transition, attach_key, controller_key, notice_topic};
use super::state::{Command, IllegalTransition, SessionState};
use super::types::{AttachGrant, AttachOffer, ControllerBinding, SessionNotice, SessionView, StartRequest};

impl Broker {
    pub async fn get(&self, principal: &Principal, id: SessionId) -> Result<SessionView, BrokerError> {
        let session = self.accessible(principal, id).await?;
        Ok(self.view(session).await?)
    }

    /// Sessions the caller may see: their own, plus every session of the
    /// organizations they manage (all for platform admins).
    pub async fn list(
        &self,
        principal: &Principal,
        organization_id: Option<OrgId>,
        states: Vec<SessionState>,
        after: Option<SessionId>,
        limit: usize,
        context: &RequestContext,
    ) -> Result<Vec<SessionRecord>, BrokerError> {
        let organizations =
            self.inner.gate.list_scope(principal, organization_id, Action::ReadOrganization, context).await.map_err(
                |denied| match denied {
                    Denied::Hidden => BrokerError::InvalidField(("organization_id", "no such organization")),
                    other => other.into(),
                },
            )?;
        let scope = match organizations {
            // Every session everywhere (or in the one asked for).
            OrgScope::All => SessionScope { organizations, owner: None, managed: Vec::new(), states },
            OrgScope::Only(_) if principal.is_platform_admin() => {
                SessionScope { organizations, owner: None, managed: Vec::new(), states }
            }
            OrgScope::Only(ref ids) => {
                // Their own sessions, and every session where they manage them.
                let mut managed = Vec::new();
                for id in ids {
                    let standing = self.inner.gate.standing(principal, *id).await?;
                    if authorize(standing, Action::ManageSessions) == Decision::Allow {
                        managed.push(*id);
                    }
                }
                SessionScope { organizations, owner: Some(principal.user_id()), managed, states }
            }
        };
        Ok(self.inner.repositories.sessions.list(scope, after, limit).await?)
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
        let DesktopSize { width, height } = DesktopSize::requested(
            request.width.unwrap_or(DesktopSize::DEFAULT.width),
            request.height.unwrap_or(DesktopSize::DEFAULT.height),
        )
        .map_err(BrokerError::InvalidField)?;

        let now = OffsetDateTime::now_utc();
        let session = SessionRecord {
            id: SessionId::generate(),
            organization_id: resource.organization_id,
            resource_id: resource.id,
            owner_user_id: principal.user_id(),
            device_id: request.device_id,
            state: SessionState::Pending,
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
        let offer = self.offer(&attachment, principal.auth_session_id).await;
        tracing::info!(session_id = %session.id, worker_id = %lease.worker_id, "Session starting");
        Ok((self.view(session).await?, offer))
    }

    /// Queues the transient assignment (credentials included) for the
    /// session's worker; a worker that cannot take it fails the session.
    pub(super) async fn dispatch(
        &self,
        session: &SessionRecord,
        resource: &ResourceRecord,
        worker_id: WorkerId,
        credentials: Option<Credentials>,
        context: &RequestContext,
    ) -> Result<(), BrokerError> {
        let (width, height) = (
            session.width.unwrap_or(DesktopSize::DEFAULT.width),
            session.height.unwrap_or(DesktopSize::DEFAULT.height),
        );
        let assignment = Assignment {
            session_id: session.id,
            worker_id,
            organization_id: session.organization_id,
            protocol: resource.protocol,
            host: resource.host.clone(),
            port: resource.port,
            credentials,
            certificate_verification_mode: resource.certificate_verification_mode,
            certificate_fingerprint: resource.certificate_fingerprint.clone(),
            clipboard_mode: resource.policy.clipboard_mode,
            file_transfer_mode: resource.policy.file_transfer_mode,
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
    pub(super) fn check_startable(&self, resource: &ResourceRecord) -> Result<(), BrokerError> {
        // Before anything is written: a protocol without a runtime must not
        // be reached through another one's.
        if !self.inner.config.runtime.protocols().contains(&resource.protocol.as_str()) {
            return Err(BrokerError::ProtocolUnsupported(resource.protocol.as_str().to_owned()));
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
    pub(super) async fn resume(
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
        let offer = self.offer(&attachment, principal.auth_session_id).await;
        tracing::info!(session_id = %session.id, %worker_id, "Session resuming on a new connection");
        Ok((self.view(session).await?, offer))
    }

    /// The credentials to put in the assignment: the secret store first; in
    /// development, plaintext metadata (`username`/`password`/`domain`).
    pub(super) async fn credentials_for(&self, resource: &ResourceRecord) -> Result<Option<Credentials>, String> {
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
    pub(super) async fn rebind(
        &self,
        principal: &Principal,
        id: SessionId,
        command: Command,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        let session = self.accessible(principal, id).await?;
        if session.state == SessionState::Detached && session.worker_id.is_none() {
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
        let offer = self.offer(&attachment, principal.auth_session_id).await;
        Ok((self.view(session).await?, offer))
    }

    /// A read-only viewer attachment for an organization owner/admin (or a
    /// platform admin): watch without taking control. The session's state
    /// does not change; the controller is told who watches.
    pub async fn shadow(
        &self,
        principal: &Principal,
        id: SessionId,
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
        let state = session.state;
        if state.is_terminal() || state == SessionState::Pending {
            return Err(IllegalTransition { state, command: Command::Attach }.into());
        }
        let attachment = AttachmentRecord {
            role: AttachmentRole::Viewer,
            ..Self::controller_attachment(&session, principal, None, OffsetDateTime::now_utc())
        };
        let event = audit::with(
            self.event(context, Some(principal.user_id()), "session.shadow_started", &session, Outcome::Success),
            json!({"attachment_id": attachment.id}),
        );
        self.inner.repositories.sessions.open_viewer(attachment.clone(), event).await?;
        let offer = self.offer(&attachment, principal.auth_session_id).await;
        Ok((self.view(session).await?, offer))
    }

    pub async fn attach(
        &self,
        principal: &Principal,
        id: SessionId,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        self.rebind(principal, id, Command::Attach, context).await
    }

    pub async fn takeover(
        &self,
        principal: &Principal,
        id: SessionId,
        context: &RequestContext,
    ) -> Result<(SessionView, AttachOffer), BrokerError> {
        self.rebind(principal, id, Command::Takeover, context).await
    }

    pub async fn detach(
        &self,
        principal: &Principal,
        id: SessionId,
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
        id: SessionId,
        context: &RequestContext,
    ) -> Result<SessionView, BrokerError> {
        let session = self.accessible(principal, id).await?;
        let event = self.event(context, Some(principal.user_id()), "session.terminated", &session, Outcome::Success);
        let details = Transition { lease: LeaseChange::Release("session_ended".into()), ..Transition::default() };
        let session = self.apply(&session, Command::Terminate, details, event).await?;
        Ok(self.view(session).await?)
    }

    pub(super) fn new_token() -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
    }

    /// Issues a single-use attach token for `attachment`, on behalf of
    /// the auth session that asked (the socket lives only as long as it).
    pub(super) async fn offer(&self, attachment: &AttachmentRecord, auth_session_id: AuthSessionId) -> AttachOffer {
        let token = Self::new_token();
        let grant = AttachGrant {
            session_id: attachment.session_id,
            attachment_id: attachment.id,
            user_id: attachment.user_id,
            device_id: attachment.device_id,
            role: attachment.role,
            auth_session_id: Some(auth_session_id),
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

    pub(super) fn controller_attachment(
        session: &SessionRecord,
        principal: &Principal,
        device_id: Option<DeviceId>,
        now: OffsetDateTime,
    ) -> AttachmentRecord {
        AttachmentRecord {
            id: Uuid::now_v7(),
            session_id: session.id,
            user_id: principal.user_id(),
            device_id,
            role: AttachmentRole::Controller,
            attached_at: now,
            detached_at: None,
            end_reason: None,
        }
    }

    pub(super) async fn bind_controller(&self, attachment: &AttachmentRecord) {
        let binding = ControllerBinding {
            session_id: attachment.session_id,
            attachment_id: attachment.id,
            user_id: attachment.user_id,
            device_id: attachment.device_id,
        };
        self.inner.live.controllers.insert(&controller_key(attachment.session_id), binding, CONTROLLER_TTL).await;
    }
}
