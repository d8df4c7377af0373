//! Users, their platform grants, organizations and memberships as the
//! first-owner bootstrap writes them, logins, auth sessions and devices.

use super::*;

/// A person who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
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
    pub user_id: UserId,
    pub role: String,
    pub installation_id: Uuid,
    pub signature: Vec<u8>,
    pub signing_key_id: String,
    pub granted_at: OffsetDateTime,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A user's membership in an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub id: Uuid,
    pub organization_id: OrgId,
    pub user_id: UserId,
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
    async fn get(&self, id: UserId) -> Result<Option<UserRecord>, StorageError>;
    async fn find_by_email(&self, email: &str) -> Result<Option<UserRecord>, StorageError>;
    /// Ordered by id (creation order); `after` continues a previous page.
    async fn list(&self, after: Option<UserId>, limit: usize) -> Result<Vec<UserRecord>, StorageError>;
    /// Grants that are not revoked.
    async fn active_grants(&self, user_id: UserId) -> Result<Vec<GrantRecord>, StorageError>;
    async fn memberships(&self, user_id: UserId) -> Result<Vec<MembershipView>, StorageError>;
}

/// A client device a user logs in from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub user_id: UserId,
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
    pub id: AuthSessionId,
    pub user_id: UserId,
    pub device_id: DeviceId,
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
    pub auth_session_id: AuthSessionId,
    pub token_hash: [u8; 32],
    pub parent_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
}

/// The device a login asks for: an id the client remembers, and a name.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub id: Option<DeviceId>,
    pub name: Option<String>,
    /// Used if the requested id is absent, revoked, or someone else's.
    pub fresh_id: DeviceId,
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
    /// Revokes the session unless it already is (an expired one too, so
    /// that its revocation is recorded); returns whether it did.
    async fn revoke_session(
        &self,
        id: AuthSessionId,
        reason: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<bool, StorageError>;
    async fn get_session(&self, id: AuthSessionId) -> Result<Option<AuthSessionRecord>, StorageError>;
    async fn list_sessions(&self, user_id: UserId) -> Result<Vec<AuthSessionRecord>, StorageError>;
    async fn list_devices(&self, user_id: UserId) -> Result<Vec<DeviceRecord>, StorageError>;
    /// Sets trust on the user's own, unrevoked device.
    async fn set_device_trust(
        &self,
        user_id: UserId,
        device_id: DeviceId,
        trusted: bool,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<DeviceRecord>, StorageError>;
    /// Disables or enables the user; disabling also revokes every open auth
    /// session of theirs, in the same write. Returns the updated user and
    /// the revoked session ids, or `None` if there is no such user.
    async fn set_user_disabled(
        &self,
        user_id: UserId,
        disabled: bool,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<(UserRecord, Vec<AuthSessionId>)>, StorageError>;
    /// Revokes the user's device and every open session on it; returns the
    /// revoked session ids, or `None` if there is no such device.
    async fn revoke_device(
        &self,
        user_id: UserId,
        device_id: DeviceId,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<Vec<AuthSessionId>>, StorageError>;
}
