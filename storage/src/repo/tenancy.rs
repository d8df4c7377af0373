//! Organizations, memberships and identity sources.

use super::*;

/// Which organizations a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgScope {
    All,
    Only(Vec<OrgId>),
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
    async fn get(&self, id: OrgId) -> Result<Option<OrganizationRecord>, StorageError>;
    /// Ordered by id; `after` continues a previous page.
    async fn list(
        &self,
        scope: OrgScope,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<OrganizationRecord>, StorageError>;
    async fn update(
        &self,
        id: OrgId,
        changes: OrganizationChanges,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<OrganizationRecord>, StorageError>;
    /// The user's membership in the organization, active or not.
    async fn membership_of(
        &self,
        organization_id: OrgId,
        user_id: UserId,
    ) -> Result<Option<MembershipRecord>, StorageError>;
    async fn memberships(&self, organization_id: OrgId) -> Result<Vec<MembershipRecord>, StorageError>;
    async fn get_membership(&self, organization_id: OrgId, id: Uuid) -> Result<Option<MembershipRecord>, StorageError>;
    /// A second membership of the same user is [`StorageError::Conflict`].
    async fn add_membership(&self, membership: MembershipRecord, audit: AuditEvent) -> Result<(), StorageError>;
    /// Applies `changes` unless that would leave the organization without
    /// an active owner (`Ok(Err(LastOwner))`); checked inside the write.
    async fn update_membership(
        &self,
        organization_id: OrgId,
        id: Uuid,
        changes: MembershipChanges,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Result<Option<MembershipRecord>, LastOwner>, StorageError>;
    async fn delete_membership(
        &self,
        organization_id: OrgId,
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
    pub organization_id: OrgId,
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
    pub user_id: Option<UserId>,
    pub role: Option<OrgRole>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[async_trait]
pub trait IdentitySourceRepository: Send + Sync {
    async fn create(&self, source: IdentitySourceRecord, audit: AuditEvent) -> Result<(), StorageError>;
    async fn list(&self, organization_id: OrgId) -> Result<Vec<IdentitySourceRecord>, StorageError>;
    async fn get(&self, organization_id: OrgId, id: Uuid) -> Result<Option<IdentitySourceRecord>, StorageError>;
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
