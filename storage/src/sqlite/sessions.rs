//! Remote sessions, attachments, workers and leases.

use std::time::Duration;

use crate::ids::{OrgId, SessionId, WorkerId};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::identity::limit_param;
use super::tenancy::scope_params;
use super::{
    SqliteStore, Write, backend, json_column, optional_timestamp, optional_timestamp_column, optional_uuid_column,
    timestamp_column, uuid_column,
};
use crate::format_timestamp;
use crate::repo::{
    AttachmentRecord, AuditEvent, LeaseChange, LeaseRecord, NoCapacity, SessionRecord, SessionRepository, SessionScope,
    SessionTransition, StorageError, TransitionOutcome, WorkerRecord,
};

const SESSION_COLUMNS: &str =
    "id, organization_id, resource_id, owner_user_id, device_id, state, worker_id, width, height,
     failure_reason, metadata, created_at, updated_at, started_at, ended_at, last_attached_at, detached_at,
     detach_reason";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: uuid_column(row, 0)?,
        organization_id: uuid_column(row, 1)?,
        resource_id: uuid_column(row, 2)?,
        owner_user_id: uuid_column(row, 3)?,
        device_id: optional_uuid_column(row, 4)?,
        state: row.get(5)?,
        worker_id: optional_uuid_column(row, 6)?,
        width: row.get(7)?,
        height: row.get(8)?,
        failure_reason: row.get(9)?,
        metadata: json_column(row, 10)?,
        created_at: timestamp_column(row, 11)?,
        updated_at: timestamp_column(row, 12)?,
        started_at: optional_timestamp_column(row, 13)?,
        ended_at: optional_timestamp_column(row, 14)?,
        last_attached_at: optional_timestamp_column(row, 15)?,
        detached_at: optional_timestamp_column(row, 16)?,
        detach_reason: row.get(17)?,
    })
}

fn select_session(conn: &Connection, id: SessionId) -> Result<Option<SessionRecord>, StorageError> {
    conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM remote_sessions WHERE id = ?1"))
        .and_then(|mut statement| statement.query_row(params![id.to_string()], session_from_row).optional())
        .map_err(backend)
}

const ATTACHMENT_COLUMNS: &str = "id, session_id, user_id, device_id, role, attached_at, detached_at, end_reason";

fn attachment_from_row(row: &Row<'_>) -> rusqlite::Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        id: uuid_column(row, 0)?,
        session_id: uuid_column(row, 1)?,
        user_id: uuid_column(row, 2)?,
        device_id: optional_uuid_column(row, 3)?,
        role: row.get(4)?,
        attached_at: timestamp_column(row, 5)?,
        detached_at: optional_timestamp_column(row, 6)?,
        end_reason: row.get(7)?,
    })
}

pub(super) const WORKER_COLUMNS: &str = "id, kind, name, capacity, status, registered_at, last_heartbeat_at";

pub(super) fn worker_from_row(row: &Row<'_>) -> rusqlite::Result<WorkerRecord> {
    Ok(WorkerRecord {
        id: uuid_column(row, 0)?,
        kind: row.get(1)?,
        name: row.get(2)?,
        capacity: row.get(3)?,
        status: row.get(4)?,
        registered_at: timestamp_column(row, 5)?,
        last_heartbeat_at: optional_timestamp_column(row, 6)?,
    })
}

pub(super) const LEASE_COLUMNS: &str = "id, worker_id, session_id, acquired_at, expires_at, renewed_at";

pub(super) fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<LeaseRecord> {
    Ok(LeaseRecord {
        id: uuid_column(row, 0)?,
        worker_id: uuid_column(row, 1)?,
        session_id: uuid_column(row, 2)?,
        acquired_at: timestamp_column(row, 3)?,
        expires_at: timestamp_column(row, 4)?,
        renewed_at: optional_timestamp_column(row, 5)?,
    })
}

pub(super) fn after(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    now + time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX)
}

pub(super) fn collect<T>(
    conn: &Connection,
    sql: &str,
    values: impl rusqlite::Params,
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StorageError> {
    let mut statement = conn.prepare_cached(sql).map_err(backend)?;
    let rows = statement.query_map(values, map).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

fn insert_attachment(conn: &Connection, attachment: &AttachmentRecord) -> Result<(), StorageError> {
    conn.execute(
        &format!("INSERT INTO session_attachments ({ATTACHMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            attachment.id.to_string(),
            attachment.session_id.to_string(),
            attachment.user_id.to_string(),
            attachment.device_id.map(|id| id.to_string()),
            attachment.role,
            format_timestamp(attachment.attached_at),
            optional_timestamp(attachment.detached_at),
            attachment.end_reason,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// The least loaded online worker of `kind` with room; the single writer
/// makes this check and the lease insert that follows atomic.
fn free_worker(conn: &Connection, kind: &str) -> Result<Option<WorkerId>, StorageError> {
    let worker: Option<String> = conn
        .query_row(
            "SELECT w.id FROM workers w
             LEFT JOIN worker_leases l ON l.worker_id = w.id AND l.released_at IS NULL
             WHERE w.status = 'online' AND w.kind = ?1
             GROUP BY w.id
             HAVING count(l.id) < w.capacity
             ORDER BY count(l.id), w.name
             LIMIT 1",
            params![kind],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    worker.map(|id| id.parse::<WorkerId>().map_err(|error| StorageError::Backend(error.to_string()))).transpose()
}

fn insert_lease(
    conn: &Connection,
    worker_id: WorkerId,
    session_id: SessionId,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<LeaseRecord, StorageError> {
    let lease = LeaseRecord {
        id: Uuid::now_v7(),
        worker_id,
        session_id,
        acquired_at: now,
        expires_at: after(now, ttl),
        renewed_at: None,
    };
    conn.execute(
        &format!("INSERT INTO worker_leases ({LEASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL)"),
        params![
            lease.id.to_string(),
            lease.worker_id.to_string(),
            lease.session_id.to_string(),
            format_timestamp(lease.acquired_at),
            format_timestamp(lease.expires_at),
        ],
    )
    .map_err(backend)?;
    Ok(lease)
}

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn create(
        &self,
        session: SessionRecord,
        worker_kind: &str,
        lease_ttl: Duration,
        audit: AuditEvent,
    ) -> Result<Result<(SessionRecord, LeaseRecord), NoCapacity>, StorageError> {
        let worker_kind = worker_kind.to_owned();
        self.pool
            .audited(audit, move |tx, _| {
                let Some(worker_id) = free_worker(tx, &worker_kind)? else { return Ok(Write::Abort(Err(NoCapacity))) };
                let session = SessionRecord { worker_id: Some(worker_id), ..session };
                tx.execute(
                    &format!("INSERT INTO remote_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"),
                    params![
                        session.id.to_string(),
                        session.organization_id.to_string(),
                        session.resource_id.to_string(),
                        session.owner_user_id.to_string(),
                        session.device_id.map(|id| id.to_string()),
                        session.state,
                        worker_id.to_string(),
                        session.width,
                        session.height,
                        session.failure_reason,
                        session.metadata.to_string(),
                        format_timestamp(session.created_at),
                        format_timestamp(session.updated_at),
                        optional_timestamp(session.started_at),
                        optional_timestamp(session.ended_at),
                        optional_timestamp(session.last_attached_at),
                        optional_timestamp(session.detached_at),
                        session.detach_reason,
                    ],
                )
                .map_err(backend)?;
                let lease = insert_lease(tx, worker_id, session.id, session.created_at, lease_ttl)?;
                Ok(Write::Commit(Ok((session, lease))))
            })
            .await
    }

    async fn get(&self, id: SessionId) -> Result<Option<SessionRecord>, StorageError> {
        self.pool.read(move |conn| select_session(conn, id)).await
    }

    async fn list(
        &self,
        scope: SessionScope,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let (all, organizations) = scope_params(&scope.organizations);
                let managed = serde_json::Value::from(scope.managed.iter().map(OrgId::to_string).collect::<Vec<_>>()).to_string();
                let states = serde_json::to_string(&scope.states).map_err(|error| StorageError::Backend(error.to_string()))?;
                collect(
                    conn,
                    &format!(
                        "SELECT {SESSION_COLUMNS} FROM remote_sessions
                         WHERE (?1 OR organization_id IN (SELECT value FROM json_each(?2)))
                           AND (?3 IS NULL OR owner_user_id = ?3 OR organization_id IN (SELECT value FROM json_each(?4)))
                           AND (json_array_length(?5) = 0 OR state IN (SELECT value FROM json_each(?5)))
                           AND (?6 IS NULL OR id < ?6)
                         ORDER BY id DESC LIMIT ?7"
                    ),
                    params![
                        all,
                        organizations,
                        scope.owner.map(|id| id.to_string()),
                        managed,
                        states,
                        after.map(|id| id.to_string()),
                        limit_param(limit)
                    ],
                    session_from_row,
                )
            })
            .await
    }

    async fn controller(&self, session_id: SessionId) -> Result<Option<AttachmentRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                conn.query_row(
                    &format!(
                        "SELECT {ATTACHMENT_COLUMNS} FROM session_attachments
                         WHERE session_id = ?1 AND role = 'controller' AND detached_at IS NULL"
                    ),
                    params![session_id.to_string()],
                    attachment_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn transition(&self, transition: SessionTransition) -> Result<TransitionOutcome, StorageError> {
        self.pool
            .audited(transition.audit, move |tx, _| {
                let now = format_timestamp(transition.now);
                let from = serde_json::to_string(&transition.from).map_err(|error| StorageError::Backend(error.to_string()))?;
                let terminal = transition.to.is_terminal();
                let changed = tx
                    .execute(
                        "UPDATE remote_sessions SET
                             state = ?2,
                             updated_at = ?3,
                             failure_reason = CASE WHEN ?2 = 'failed' THEN ?4 ELSE NULL END,
                             detach_reason = CASE WHEN ?2 = 'detached' THEN ?4 ELSE NULL END,
                             ended_at = CASE WHEN ?5 THEN ?3 ELSE NULL END,
                             started_at = CASE WHEN ?2 = 'active' AND started_at IS NULL THEN ?3 ELSE started_at END,
                             detached_at = CASE WHEN ?2 = 'detached' AND state <> 'detached' THEN ?3 ELSE detached_at END,
                             last_attached_at = CASE WHEN ?6 THEN ?3 ELSE last_attached_at END,
                             width = coalesce(?7, width),
                             height = coalesce(?8, height)
                         WHERE id = ?1 AND state IN (SELECT value FROM json_each(?9))",
                        params![
                            transition.session_id.to_string(),
                            transition.to,
                            now,
                            transition.reason,
                            terminal,
                            transition.open_attachment.is_some(),
                            transition.width,
                            transition.height,
                            from,
                        ],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(TransitionOutcome::Raced));
                }
                let session = transition.session_id.to_string();
                if let Some(reason) = &transition.end_controller {
                    tx.execute(
                        "UPDATE session_attachments SET detached_at = ?2, end_reason = ?3
                         WHERE session_id = ?1 AND role = 'controller' AND detached_at IS NULL",
                        params![session, now, reason],
                    )
                    .map_err(backend)?;
                }
                if terminal {
                    tx.execute(
                        "UPDATE session_attachments SET detached_at = ?2, end_reason = ?3 WHERE session_id = ?1 AND detached_at IS NULL",
                        params![session, now, transition.to],
                    )
                    .map_err(backend)?;
                }
                if let Some(attachment) = &transition.open_attachment {
                    insert_attachment(tx, attachment)?;
                }
                match &transition.lease {
                    LeaseChange::Keep => {}
                    LeaseChange::Release(reason) | LeaseChange::Surrender(reason) => {
                        tx.execute(
                            "UPDATE worker_leases SET released_at = ?2, release_reason = ?3 WHERE session_id = ?1 AND released_at IS NULL",
                            params![session, now, reason],
                        )
                        .map_err(backend)?;
                        if matches!(transition.lease, LeaseChange::Surrender(_)) {
                            tx.execute("UPDATE remote_sessions SET worker_id = NULL WHERE id = ?1", params![session])
                                .map_err(backend)?;
                        }
                    }
                    LeaseChange::Renew(ttl) => {
                        tx.execute(
                            "UPDATE worker_leases SET expires_at = max(expires_at, ?2) WHERE session_id = ?1 AND released_at IS NULL",
                            params![session, format_timestamp(after(transition.now, *ttl))],
                        )
                        .map_err(backend)?;
                    }
                    LeaseChange::Acquire { worker_kind, ttl } => {
                        // Dropping `tx` without commit undoes the state change.
                        let Some(worker_id) = free_worker(tx, worker_kind)? else {
                            return Ok(Write::Abort(TransitionOutcome::NoCapacity));
                        };
                        insert_lease(tx, worker_id, transition.session_id, transition.now, *ttl)?;
                        tx.execute(
                            "UPDATE remote_sessions SET worker_id = ?2 WHERE id = ?1",
                            params![session, worker_id.to_string()],
                        )
                        .map_err(backend)?;
                    }
                }
                let updated = select_session(tx, transition.session_id)?;
                Ok(Write::Commit(updated.map_or(TransitionOutcome::Raced, |session| TransitionOutcome::Applied(Box::new(session)))))
            })
            .await
    }

    async fn open_viewer(&self, attachment: AttachmentRecord, audit: AuditEvent) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                insert_attachment(tx, &attachment)?;
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn end_attachment(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> Result<bool, StorageError> {
        let reason = reason.to_owned();
        self.pool
            .write(move |conn| {
                conn.execute(
                    "UPDATE session_attachments SET detached_at = ?2, end_reason = ?3 WHERE id = ?1 AND detached_at IS NULL",
                    params![id.to_string(), format_timestamp(now), reason],
                )
                .map(|changed| changed > 0)
                .map_err(backend)
            })
            .await
    }

    async fn viewers(&self, session_id: SessionId) -> Result<Vec<AttachmentRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                collect(
                    conn,
                    &format!(
                        "SELECT {ATTACHMENT_COLUMNS} FROM session_attachments
                         WHERE session_id = ?1 AND role = 'viewer' AND detached_at IS NULL ORDER BY attached_at"
                    ),
                    params![session_id.to_string()],
                    attachment_from_row,
                )
            })
            .await
    }

    async fn open_sessions(&self) -> Result<Vec<SessionRecord>, StorageError> {
        self.pool
            .read(|conn| {
                collect(
                    conn,
                    &format!("SELECT {SESSION_COLUMNS} FROM remote_sessions WHERE state NOT IN ('terminated', 'failed') ORDER BY id"),
                    [],
                    session_from_row,
                )
            })
            .await
    }

    async fn detached_before(&self, cutoff: OffsetDateTime) -> Result<Vec<SessionRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                collect(
                    conn,
                    &format!("SELECT {SESSION_COLUMNS} FROM remote_sessions WHERE state = 'detached' AND detached_at < ?1 ORDER BY id"),
                    params![format_timestamp(cutoff)],
                    session_from_row,
                )
            })
            .await
    }

    async fn count_open(&self) -> Result<u64, StorageError> {
        self.pool
            .read(|conn| {
                conn.query_row(
                    "SELECT count(*) FROM remote_sessions WHERE state NOT IN ('terminated', 'failed')",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .map(|count| count.unsigned_abs())
                .map_err(backend)
            })
            .await
    }
}
