//! Remote sessions, attachments, workers and leases.

use super::*;

/// A remote session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub organization_id: OrgId,
    pub resource_id: ResourceId,
    pub owner_user_id: UserId,
    pub device_id: Option<DeviceId>,
    pub state: SessionState,
    pub worker_id: Option<WorkerId>,
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
    pub session_id: SessionId,
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
    pub role: AttachmentRole,
    pub attached_at: OffsetDateTime,
    pub detached_at: Option<OffsetDateTime>,
    pub end_reason: Option<String>,
}

/// A worker: one slot that runs one remote session at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    pub id: WorkerId,
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
    pub worker_id: WorkerId,
    pub session_id: SessionId,
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
    pub owner: Option<UserId>,
    /// Organizations where every session is visible (owner/admin there).
    pub managed: Vec<OrgId>,
    /// Only sessions in these states; empty means all.
    pub states: Vec<SessionState>,
}

/// One state transition and everything that goes with it, written in one
/// transaction, and only if the session is still in one of `from`.
#[derive(Debug, Clone)]
pub struct SessionTransition {
    pub session_id: SessionId,
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
    /// placement and capacity are decided inside the write. Timestamps are
    /// kept to the microsecond: the records returned are what was given, a
    /// later `get` has them at that precision.
    async fn create(
        &self,
        session: SessionRecord,
        worker_kind: &str,
        lease_ttl: std::time::Duration,
        audit: AuditEvent,
    ) -> Result<Result<(SessionRecord, LeaseRecord), NoCapacity>, StorageError>;
    async fn get(&self, id: SessionId) -> Result<Option<SessionRecord>, StorageError>;
    async fn list(
        &self,
        scope: SessionScope,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StorageError>;
    async fn controller(&self, session_id: SessionId) -> Result<Option<AttachmentRecord>, StorageError>;
    /// Applies the transition (with its audit event) if the session is in
    /// one of its `from` states; [`TransitionOutcome::Raced`] if it was not
    /// (someone else moved it first) and [`TransitionOutcome::NoCapacity`]
    /// if its [`LeaseChange::Acquire`] found no room: then nothing is
    /// written, the audit event neither.
    async fn transition(&self, transition: SessionTransition) -> Result<TransitionOutcome, StorageError>;
    /// Opens a read-only viewer attachment (no state change) with its audit event.
    async fn open_viewer(&self, attachment: AttachmentRecord, audit: AuditEvent) -> Result<(), StorageError>;
    /// Ends an open attachment; returns whether it was open.
    async fn end_attachment(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> Result<bool, StorageError>;
    /// Open viewer attachments of a session.
    async fn viewers(&self, session_id: SessionId) -> Result<Vec<AttachmentRecord>, StorageError>;
    /// Sessions not yet terminated or failed.
    async fn open_sessions(&self) -> Result<Vec<SessionRecord>, StorageError>;
    /// Detached sessions whose last detach is older than `cutoff`.
    async fn detached_before(&self, cutoff: OffsetDateTime) -> Result<Vec<SessionRecord>, StorageError>;
    /// How many sessions are open (for metrics).
    async fn count_open(&self) -> Result<u64, StorageError>;
}

/// Workers and their leases: registration, heartbeats in batches, expiry.
#[async_trait]
pub trait WorkerRepository: Send + Sync {
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
