//! Backend-neutral repository traits and the records they carry.
//!
//! Services hold these as `Arc<dyn …>`; each domain adds its trait here and
//! its SQLite implementation in [`crate::sqlite`]. Records use plain types
//! (the ids of [`crate::ids`], `Uuid` for ids local to one repository,
//! `OffsetDateTime`, `serde_json::Value`, the vocabularies of
//! [`crate::types`]), never a driver's.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{AuthSessionId, DeviceId, OrgId, ResourceId, SessionId, UserId, WorkerId};
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
    /// Writes the first owner, once: a second bootstrap is `Ok(None)`. The
    /// installation must exist first ([`Self::get_or_create`]); without it
    /// there is nothing to bootstrap, which is `Ok(None)` too.
    async fn bootstrap(&self, bootstrap: Bootstrap) -> Result<Option<Bootstrapped>, StorageError>;
}

/// One audited fact: who did what to which object, when, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: OffsetDateTime,
    pub organization_id: Option<OrgId>,
    pub session_id: Option<SessionId>,
    pub actor_user_id: Option<UserId>,
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
    pub organization_id: Option<OrgId>,
    pub session_id: Option<SessionId>,
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
    pub workers: Arc<dyn WorkerRepository>,
}

mod identity;
mod resources;
mod sessions;
mod tenancy;

pub use identity::*;
pub use resources::*;
pub use sessions::*;
pub use tenancy::*;
