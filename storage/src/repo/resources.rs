//! Resources, their policies and sealed secrets.

use super::*;

/// How a resource lets data cross between the viewer and the remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePolicyRecord {
    pub clipboard_mode: PolicyMode,
    pub file_transfer_mode: PolicyMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRecord {
    pub id: ResourceId,
    pub organization_id: OrgId,
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub certificate_verification_mode: CertificateMode,
    pub certificate_fingerprint: Option<String>,
    pub metadata: serde_json::Value,
    pub secret_ref: Option<String>,
    pub policy: ResourcePolicyRecord,
    pub created_by_user_id: Option<UserId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An encrypted resource secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub id: Uuid,
    pub resource_id: ResourceId,
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
    async fn get(&self, id: ResourceId) -> Result<Option<ResourceRecord>, StorageError>;
    async fn list(
        &self,
        scope: OrgScope,
        after: Option<ResourceId>,
        limit: usize,
    ) -> Result<Vec<ResourceRecord>, StorageError>;
    /// Replaces every mutable field (the caller merged the patch).
    async fn update(&self, resource: ResourceRecord, audit: AuditEvent) -> Result<bool, StorageError>;
    /// Soft delete; the secret is destroyed with it.
    async fn delete(&self, id: ResourceId, now: OffsetDateTime, audit: AuditEvent) -> Result<bool, StorageError>;
    /// Creates or replaces the resource's secret and points `secret_ref` at it.
    async fn put_secret(
        &self,
        secret: SecretRecord,
        secret_ref: String,
        audit: AuditEvent,
    ) -> Result<SecretRecord, StorageError>;
    async fn get_secret(&self, resource_id: ResourceId) -> Result<Option<SecretRecord>, StorageError>;
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
