//! Backend-neutral repository traits and the records they carry.
//!
//! Services hold these as `Arc<dyn …>`; each domain adds its trait here and
//! its SQLite implementation in [`crate::sqlite`]. Records use plain types
//! (`Uuid`, `OffsetDateTime`, `serde_json::Value`, the vocabularies of
//! [`crate::types`]), never a driver's.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::types::{AttachmentRole, CertificateMode, MembershipStatus, OrgRole, PolicyMode, Protocol, SessionState};
use uuid::Uuid;

/// What can go wrong below a repository. Messages may name tables or SQL
/// errors: they are for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be opened or migrated right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness or reference rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The storage was closed (shutdown in progress).
    #[error("storage is closed")]
    Closed,
    /// Anything else the backend reported.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Whether the durable store can serve requests (for `/readyz`).
#[async_trait]
pub trait HealthRepository: Send + Sync {
    /// Ok when the store is open, migrated and answers a query.
    async fn check_ready(&self) -> Result<(), StorageError>;
}

/// The single installation row: who this appliance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRecord {
    pub installation_id: Uuid,
    pub authority_mode: String,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait InstallationRepository: Send + Sync {
    /// Returns the installation, creating it from `candidate` on first start.
    /// Later calls return the stored row unchanged, whatever the candidate.
    async fn get_or_create(&self, candidate: InstallationRecord) -> Result<InstallationRecord, StorageError>;
    async fn status(&self) -> Result<Option<InstallationStatus>, StorageError>;
    /// Writes the first owner, once: a second bootstrap is `Ok(None)`.
    async fn bootstrap(&self, bootstrap: Bootstrap) -> Result<Option<Bootstrapped>, StorageError>;
}

/// One audited fact: who did what to which object, when, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: OffsetDateTime,
    pub organization_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    /// `user`, `system`, `worker`, `cli`.
    pub actor_kind: String,
    /// Dotted verb, e.g. `auth.login`, `session.state_changed`.
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// `success`, `failure`, `denied`.
    pub outcome: String,
    pub details: serde_json::Value,
    pub trace_id: Option<String>,
    pub ip: Option<String>,
}

/// Filters and paging for [`AuditRepository::list`]. Newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub organization_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub limit: usize,
    /// Continue after this event (the last one of the previous page).
    pub before: Option<AuditCursor>,
}

/// Position in the newest-first audit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub occurred_at: OffsetDateTime,
    pub id: Uuid,
}

#[async_trait]
pub trait AuditRepository: Send + Sync {
    async fn append(&self, event: AuditEvent) -> Result<(), StorageError>;
    async fn list(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StorageError>;
}

/// Every repository the services use, as trait objects.
#[derive(Clone)]
pub struct Repositories {
    pub health: Arc<dyn HealthRepository>,
    pub installation: Arc<dyn InstallationRepository>,
    pub audit: Arc<dyn AuditRepository>,
    pub users: Arc<dyn UserRepository>,
    pub auth: Arc<dyn AuthRepository>,
    pub organizations: Arc<dyn OrganizationRepository>,
    pub identity_sources: Arc<dyn IdentitySourceRepository>,
    pub resources: Arc<dyn ResourceRepository>,
    pub sessions: Arc<dyn SessionRepository>,
}

/// A person who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    /// Stored lowercased; unique case-insensitively.
    pub email: String,
    /// Argon2id PHC string; `None` for users of an external identity source.
    pub password_hash: Option<String>,
    pub display_name: String,
    /// `platform_admin`, `platform_recovery_admin`, or none. In strict mode it
    /// takes effect only with a valid signed [`GrantRecord`].
    pub platform_role: Option<String>,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A platform role grant, signed by the installation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub installation_id: Uuid,
    pub signature: Vec<u8>,
    pub signing_key_id: String,
    pub granted_at: OffsetDateTime,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A user's membership in an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub role: OrgRole,
    pub status: MembershipStatus,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A membership with the organization's names, as a user's own view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    pub membership: MembershipRecord,
    pub organization_slug: String,
    pub organization_name: String,
}

/// Everything the first-owner bootstrap writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub owner: UserRecord,
    pub grant: GrantRecord,
    /// Created unless an organization with its slug exists; the owner joins it.
    pub default_organization: OrganizationRecord,
    pub membership: MembershipRecord,
    pub audit: AuditEvent,
}

/// What a bootstrap wrote: the organization and membership actually used.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub organization: OrganizationRecord,
    pub membership: MembershipRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationStatus {
    pub record: InstallationRecord,
    pub bootstrapped_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates the user (and its grant, if any) with its audit event.
    /// An email already taken is [`StorageError::Conflict`].
    async fn create(&self, user: UserRecord, grant: Option<GrantRecord>, audit: AuditEvent)
    -> Result<(), StorageError>;
    async fn get(&self, id: Uuid) -> Result<Option<UserRecord>, StorageError>;
    async fn find_by_email(&self, email: &str) -> Result<Option<UserRecord>, StorageError>;
    /// Ordered by id (creation order); `after` continues a previous page.
    async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<UserRecord>, StorageError>;
    /// Grants that are not revoked.
    async fn active_grants(&self, user_id: Uuid) -> Result<Vec<GrantRecord>, StorageError>;
    async fn memberships(&self, user_id: Uuid) -> Result<Vec<MembershipView>, StorageError>;
}

/// A client device a user logs in from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub trusted: bool,
    pub trusted_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// One login: a family of refresh tokens and the access tokens issued from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoke_reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A refresh token, known only by the SHA-256 of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub auth_session_id: Uuid,
    pub token_hash: [u8; 32],
    pub parent_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
}

/// The device a login asks for: an id the client remembers, and a name.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub id: Option<Uuid>,
    pub name: Option<String>,
    /// Used if the requested id is absent, revoked, or someone else's.
    pub fresh_id: Uuid,
}

/// Everything a successful login writes, in one transaction.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub device: DeviceRequest,
    pub session: AuthSessionRecord,
    pub refresh_token: RefreshTokenRecord,
    pub audit: AuditEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    /// Someone presented this token before: the caller treats it as reuse.
    AlreadyRotated,
    /// The auth session was revoked or expired meanwhile.
    SessionClosed,
}

#[async_trait]
pub trait AuthRepository: Send + Sync {
    /// Finds or creates the device, then opens the session with its first
    /// refresh token. Returns the device actually used.
    async fn open_session(&self, login: NewLogin) -> Result<DeviceRecord, StorageError>;
    async fn find_refresh_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<(RefreshTokenRecord, AuthSessionRecord)>, StorageError>;
    /// Marks `old` rotated and stores `next` as its successor, extending the
    /// session, only if `old` was not rotated before (checked in the write).
    async fn rotate_refresh_token(
        &self,
        old: Uuid,
        next: RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> Result<RotateOutcome, StorageError>;
    /// Revokes the session if it is open; returns whether it was.
    async fn revoke_session(
        &self,
        id: Uuid,
        reason: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<bool, StorageError>;
    async fn get_session(&self, id: Uuid) -> Result<Option<AuthSessionRecord>, StorageError>;
    async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<AuthSessionRecord>, StorageError>;
    async fn list_devices(&self, user_id: Uuid) -> Result<Vec<DeviceRecord>, StorageError>;
    /// Sets trust on the user's own, unrevoked device.
    async fn set_device_trust(
        &self,
        user_id: Uuid,
        device_id: Uuid,
        trusted: bool,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<DeviceRecord>, StorageError>;
    /// Revokes the user's device and every open session on it; returns the
    /// revoked session ids, or `None` if there is no such device.
    async fn revoke_device(
        &self,
        user_id: Uuid,
        device_id: Uuid,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<Vec<Uuid>>, StorageError>;
}

/// Which organizations a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgScope {
    All,
    Only(Vec<Uuid>),
}

/// Fields of an organization that may change.
#[derive(Debug, Clone, Default)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// Fields of a membership that may change.
#[derive(Debug, Clone, Default)]
pub struct MembershipChanges {
    pub role: Option<OrgRole>,
    pub status: Option<MembershipStatus>,
}

#[async_trait]
pub trait OrganizationRepository: Send + Sync {
    /// A taken slug is [`StorageError::Conflict`].
    async fn create(&self, organization: OrganizationRecord, audit: AuditEvent) -> Result<(), StorageError>;
    async fn get(&self, id: Uuid) -> Result<Option<OrganizationRecord>, StorageError>;
    /// Ordered by id; `after` continues a previous page.
    async fn list(
        &self,
        scope: OrgScope,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<OrganizationRecord>, StorageError>;
    async fn update(
        &self,
        id: Uuid,
        changes: OrganizationChanges,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<OrganizationRecord>, StorageError>;
    /// The user's membership in the organization, active or not.
    async fn membership_of(
        &self,
        organization_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<MembershipRecord>, StorageError>;
    async fn memberships(&self, organization_id: Uuid) -> Result<Vec<MembershipRecord>, StorageError>;
    async fn get_membership(&self, organization_id: Uuid, id: Uuid) -> Result<Option<MembershipRecord>, StorageError>;
    /// A second membership of the same user is [`StorageError::Conflict`].
    async fn add_membership(&self, membership: MembershipRecord, audit: AuditEvent) -> Result<(), StorageError>;
    /// Applies `changes` unless that would leave the organization without
    /// an active owner (`Ok(Err(LastOwner))`); checked inside the write.
    async fn update_membership(
        &self,
        organization_id: Uuid,
        id: Uuid,
        changes: MembershipChanges,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Result<Option<MembershipRecord>, LastOwner>, StorageError>;
    async fn delete_membership(
        &self,
        organization_id: Uuid,
        id: Uuid,
        audit: AuditEvent,
    ) -> Result<Result<bool, LastOwner>, StorageError>;
}

/// The change was refused: the organization would have no active owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastOwner;

#[derive(Debug, Clone, PartialEq)]
pub struct IdentitySourceRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    /// `local`, `ldap`, `oidc`.
    pub kind: String,
    pub name: String,
    /// Without its credentials: those are in `sealed_secrets`.
    pub config: serde_json::Value,
    pub enabled: bool,
    /// The credential-like settings, encrypted.
    pub sealed_secrets: Option<SealedBlob>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An encryption's output as stored: the key it is under, nonce, ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlob {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMappingRecord {
    pub id: Uuid,
    pub identity_source_id: Uuid,
    /// `subject` or `group`.
    pub external_kind: String,
    pub external_id: String,
    pub user_id: Option<Uuid>,
    pub role: Option<OrgRole>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[async_trait]
pub trait IdentitySourceRepository: Send + Sync {
    async fn create(&self, source: IdentitySourceRecord, audit: AuditEvent) -> Result<(), StorageError>;
    async fn list(&self, organization_id: Uuid) -> Result<Vec<IdentitySourceRecord>, StorageError>;
    async fn get(&self, organization_id: Uuid, id: Uuid) -> Result<Option<IdentitySourceRecord>, StorageError>;
    /// A mapping for the same external id is [`StorageError::Conflict`].
    async fn add_mapping(&self, mapping: IdentityMappingRecord, audit: AuditEvent) -> Result<(), StorageError>;
    async fn mappings(&self, identity_source_id: Uuid) -> Result<Vec<IdentityMappingRecord>, StorageError>;
    /// Sources whose secrets are encrypted under any key other than `key_id`.
    async fn sealed_not_under(&self, key_id: &str) -> Result<Vec<IdentitySourceRecord>, StorageError>;
    /// Replaces a source's sealed secrets if they are still under
    /// `previous_key_id` (a concurrent change wins); returns whether it did.
    async fn reseal(
        &self,
        id: Uuid,
        sealed: SealedBlob,
        previous_key_id: &str,
        audit: AuditEvent,
    ) -> Result<bool, StorageError>;
}

/// How a resource lets data cross between the viewer and the remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePolicyRecord {
    pub clipboard_mode: PolicyMode,
    pub file_transfer_mode: PolicyMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub certificate_verification_mode: CertificateMode,
    pub certificate_fingerprint: Option<String>,
    pub metadata: serde_json::Value,
    pub secret_ref: Option<String>,
    pub policy: ResourcePolicyRecord,
    pub created_by_user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An encrypted resource secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait ResourceRepository: Send + Sync {
    /// Writes the resource and its policy row together.
    async fn create(&self, resource: ResourceRecord, audit: AuditEvent) -> Result<(), StorageError>;
    /// Live (not deleted) resources only.
    async fn get(&self, id: Uuid) -> Result<Option<ResourceRecord>, StorageError>;
    async fn list(
        &self,
        scope: OrgScope,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ResourceRecord>, StorageError>;
    /// Replaces every mutable field (the caller merged the patch).
    async fn update(&self, resource: ResourceRecord, audit: AuditEvent) -> Result<bool, StorageError>;
    /// Soft delete; the secret is destroyed with it.
    async fn delete(&self, id: Uuid, now: OffsetDateTime, audit: AuditEvent) -> Result<bool, StorageError>;
    /// Creates or replaces the resource's secret and points `secret_ref` at it.
    async fn put_secret(
        &self,
        secret: SecretRecord,
        secret_ref: String,
        audit: AuditEvent,
    ) -> Result<SecretRecord, StorageError>;
    async fn get_secret(&self, resource_id: Uuid) -> Result<Option<SecretRecord>, StorageError>;
    /// Secrets encrypted under any key other than `key_id` (for rotation).
    async fn secrets_not_under(&self, key_id: &str) -> Result<Vec<SecretRecord>, StorageError>;
    /// Replaces a secret's ciphertext after re-encryption, if it is still
    /// the version that was read (`previous_key_id`).
    async fn reencrypt_secret(
        &self,
        secret: SecretRecord,
        previous_key_id: &str,
        audit: AuditEvent,
    ) -> Result<bool, StorageError>;
}

/// A remote session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub resource_id: Uuid,
    pub owner_user_id: Uuid,
    pub device_id: Option<Uuid>,
    pub state: SessionState,
    pub worker_id: Option<Uuid>,
    pub width: Option<u16>,
    pub height: Option<u16>,
    /// Why a `failed` session failed.
    pub failure_reason: Option<String>,
    /// Why a `detached` session is detached: `detached`,
    /// `transport_closed`, `appliance_restarted`.
    pub detach_reason: Option<String>,
    /// Never credentials: only `secret_ref` and other non-secret facts.
    pub metadata: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub last_attached_at: Option<OffsetDateTime>,
    pub detached_at: Option<OffsetDateTime>,
}

/// A client attached to a session, as controller or read-only viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub id: Uuid,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<Uuid>,
    pub role: AttachmentRole,
    pub attached_at: OffsetDateTime,
    pub detached_at: Option<OffsetDateTime>,
    pub end_reason: Option<String>,
}

/// A worker: one slot that runs one remote session at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub capacity: u32,
    /// `online`, `draining`, `offline`.
    pub status: String,
    pub registered_at: OffsetDateTime,
    pub last_heartbeat_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub id: Uuid,
    pub worker_id: Uuid,
    pub session_id: Uuid,
    pub acquired_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub renewed_at: Option<OffsetDateTime>,
}

/// A worker with its open leases, as the workers listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    pub worker: WorkerRecord,
    pub leases: Vec<LeaseRecord>,
}

/// Which sessions a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionScope {
    pub organizations: OrgScope,
    /// Only this user's sessions, except in `managed` organizations.
    pub owner: Option<Uuid>,
    /// Organizations where every session is visible (owner/admin there).
    pub managed: Vec<Uuid>,
    /// Only sessions in these states; empty means all.
    pub states: Vec<SessionState>,
}

/// One state transition and everything that goes with it, written in one
/// transaction, and only if the session is still in one of `from`.
#[derive(Debug, Clone)]
pub struct SessionTransition {
    pub session_id: Uuid,
    pub from: Vec<SessionState>,
    pub to: SessionState,
    pub now: OffsetDateTime,
    /// The new state's reason: the failure reason for `failed`, the
    /// detach reason for `detached`, ignored otherwise.
    pub reason: Option<String>,
    /// Ends the open controller attachment with this reason.
    pub end_controller: Option<String>,
    /// Opens this attachment (after ending the old controller, if asked).
    pub open_attachment: Option<AttachmentRecord>,
    /// What happens to the session's worker lease.
    pub lease: LeaseChange,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub audit: AuditEvent,
}

/// The lease side of a transition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LeaseChange {
    #[default]
    Keep,
    /// Releases the session's open lease with this reason.
    Release(String),
    /// Releases the lease and forgets the worker: the session keeps no
    /// connection (an appliance restart) until it gets a new lease.
    Surrender(String),
    /// Extends the open lease to `now + ttl`: the worker's clock starts
    /// when it is handed the session, not when the lease was reserved.
    Renew(std::time::Duration),
    /// Reserves a lease on the least loaded online worker of `worker_kind`
    /// that has room (a session resuming after a restart), and records it
    /// as the session's worker; the transition does not happen without one.
    Acquire { worker_kind: String, ttl: std::time::Duration },
}

/// How a conditional transition went.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionOutcome {
    Applied(Box<SessionRecord>),
    /// The session was no longer in one of `from` (or is gone).
    Raced,
    /// [`LeaseChange::Acquire`] found no worker with room; nothing changed.
    NoCapacity,
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoCapacity;

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Writes the session (`pending`) with a lease on the least loaded
    /// online worker of `worker_kind` that has room, and its audit event;
    /// placement and capacity are decided inside the write.
    async fn create(
        &self,
        session: SessionRecord,
        worker_kind: &str,
        lease_ttl: std::time::Duration,
        audit: AuditEvent,
    ) -> Result<Result<(SessionRecord, LeaseRecord), NoCapacity>, StorageError>;
    async fn get(&self, id: Uuid) -> Result<Option<SessionRecord>, StorageError>;
    async fn list(
        &self,
        scope: SessionScope,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StorageError>;
    async fn controller(&self, session_id: Uuid) -> Result<Option<AttachmentRecord>, StorageError>;
    /// Applies the transition if the session is in one of its `from`
    /// states; `None` if it was not (someone else moved it first).
    async fn transition(&self, transition: SessionTransition) -> Result<TransitionOutcome, StorageError>;
    /// Opens a read-only viewer attachment (no state change) with its audit event.
    async fn open_viewer(&self, attachment: AttachmentRecord, audit: AuditEvent) -> Result<(), StorageError>;
    /// Ends an open attachment; returns whether it was open.
    async fn end_attachment(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> Result<bool, StorageError>;
    /// Open viewer attachments of a session.
    async fn viewers(&self, session_id: Uuid) -> Result<Vec<AttachmentRecord>, StorageError>;
    /// Sessions not yet terminated or failed.
    async fn open_sessions(&self) -> Result<Vec<SessionRecord>, StorageError>;
    /// Detached sessions whose last detach is older than `cutoff`.
    async fn detached_before(&self, cutoff: OffsetDateTime) -> Result<Vec<SessionRecord>, StorageError>;
    /// How many sessions are open (for metrics).
    async fn count_open(&self) -> Result<u64, StorageError>;

    /// Registers (or re-registers, by kind and name) a worker as online.
    async fn register_worker(
        &self,
        kind: &str,
        name: &str,
        capacity: u32,
        now: OffsetDateTime,
    ) -> Result<WorkerRecord, StorageError>;
    /// Marks every worker offline (before this process registers its own).
    async fn mark_workers_offline(&self) -> Result<(), StorageError>;
    async fn workers(&self) -> Result<Vec<WorkerStatus>, StorageError>;
    /// Applies a batch of heartbeats in one transaction: each renews its
    /// worker's `last_heartbeat_at` and extends its open lease to `at +
    /// lease_ttl` (never backwards). Returns the beats that found no open
    /// lease: their sessions are over and their workers should stop.
    async fn renew_leases(
        &self,
        beats: Vec<crate::live::LeaseBeat>,
        lease_ttl: std::time::Duration,
    ) -> Result<Vec<crate::live::LeaseBeat>, StorageError>;
    /// Open leases that expired before `now`.
    async fn expired_leases(&self, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StorageError>;
}
