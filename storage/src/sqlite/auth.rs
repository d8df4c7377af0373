//! Logins: devices, auth sessions and their refresh tokens.

use crate::ids::{AuthSessionId, DeviceId, UserId};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::identity::{USER_COLUMNS, user_from_row};
use super::{
    SqliteStore, Write, backend, optional_timestamp, optional_timestamp_column, optional_uuid_column, timestamp_column,
    uuid_column,
};
use crate::format_timestamp;
use crate::repo::{
    AuditEvent, AuthRepository, AuthSessionRecord, DeviceRecord, NewLogin, RefreshTokenRecord, RotateOutcome,
    StorageError, UserRecord,
};

const DEVICE_COLUMNS: &str = "id, user_id, name, trusted, trusted_at, created_at, last_seen_at, revoked_at";

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: uuid_column(row, 0)?,
        user_id: uuid_column(row, 1)?,
        name: row.get(2)?,
        trusted: row.get(3)?,
        trusted_at: optional_timestamp_column(row, 4)?,
        created_at: timestamp_column(row, 5)?,
        last_seen_at: optional_timestamp_column(row, 6)?,
        revoked_at: optional_timestamp_column(row, 7)?,
    })
}

fn select_device(conn: &Connection, id: DeviceId) -> Result<Option<DeviceRecord>, StorageError> {
    conn.query_row(
        &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
        params![id.to_string()],
        device_from_row,
    )
    .optional()
    .map_err(backend)
}

const SESSION_COLUMNS: &str =
    "id, user_id, device_id, created_at, last_used_at, expires_at, revoked_at, revoke_reason, ip, user_agent";

fn session_from_row(row: &Row<'_>, offset: usize) -> rusqlite::Result<AuthSessionRecord> {
    Ok(AuthSessionRecord {
        id: uuid_column(row, offset)?,
        user_id: uuid_column(row, offset + 1)?,
        device_id: uuid_column(row, offset + 2)?,
        created_at: timestamp_column(row, offset + 3)?,
        last_used_at: timestamp_column(row, offset + 4)?,
        expires_at: timestamp_column(row, offset + 5)?,
        revoked_at: optional_timestamp_column(row, offset + 6)?,
        revoke_reason: row.get(offset + 7)?,
        ip: row.get(offset + 8)?,
        user_agent: row.get(offset + 9)?,
    })
}

fn insert_refresh_token(conn: &Connection, token: &RefreshTokenRecord) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO refresh_tokens (id, auth_session_id, token_hash, parent_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            token.id.to_string(),
            token.auth_session_id.to_string(),
            token.token_hash.as_slice(),
            token.parent_id.map(|id| id.to_string()),
            format_timestamp(token.created_at),
            format_timestamp(token.expires_at),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// Revokes open sessions matching `filter` (a WHERE fragment over
/// auth_sessions with `?3` bound to `filter_value`) and returns their ids.
fn revoke_sessions_where(
    conn: &Connection,
    filter: &str,
    filter_value: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Vec<AuthSessionId>, StorageError> {
    let mut statement = conn
        .prepare(&format!(
            "UPDATE auth_sessions SET revoked_at = ?1, revoke_reason = ?2
             WHERE revoked_at IS NULL AND {filter} RETURNING id"
        ))
        .map_err(backend)?;
    let rows = statement
        .query_map(params![format_timestamp(now), reason, filter_value], |row| uuid_column(row, 0))
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

#[async_trait]
impl AuthRepository for SqliteStore {
    async fn open_session(&self, login: NewLogin) -> Result<DeviceRecord, StorageError> {
        let audit = login.audit;
        self.pool
            .audited(audit, move |tx, audit| {
                let user_id = login.session.user_id;
                let now = login.session.created_at;
                let reusable = match login.device.id {
                    Some(id) => select_device(tx, id)?.filter(|device| device.user_id == user_id && device.revoked_at.is_none()),
                    None => None,
                };
                let device_id = match reusable {
                    Some(device) => {
                        tx.execute(
                            "UPDATE devices SET name = coalesce(?2, name), last_seen_at = ?3 WHERE id = ?1",
                            params![device.id.to_string(), login.device.name, format_timestamp(now)],
                        )
                        .map_err(backend)?;
                        device.id
                    }
                    None => {
                        // A requested id that is free is honoured so the client
                        // keeps its identity; a taken one is never shared.
                        let id = match login.device.id {
                            Some(id) if select_device(tx, id)?.is_none() => id,
                            _ => login.device.fresh_id,
                        };
                        tx.execute(
                            "INSERT INTO devices (id, user_id, name, trusted, created_at, last_seen_at) VALUES (?1, ?2, ?3, 0, ?4, ?4)",
                            params![id.to_string(), user_id.to_string(), login.device.name, format_timestamp(now)],
                        )
                        .map_err(backend)?;
                        id
                    }
                };
                let session = AuthSessionRecord { device_id, ..login.session };
                tx.execute(
                    &format!("INSERT INTO auth_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, ?7, ?8)"),
                    params![
                        session.id.to_string(),
                        session.user_id.to_string(),
                        session.device_id.to_string(),
                        format_timestamp(session.created_at),
                        format_timestamp(session.last_used_at),
                        format_timestamp(session.expires_at),
                        session.ip,
                        session.user_agent,
                    ],
                )
                .map_err(backend)?;
                insert_refresh_token(tx, &login.refresh_token)?;
                audit.details["device_id"] = serde_json::Value::from(device_id.to_string());
                let device = select_device(tx, device_id)?
                    .ok_or_else(|| StorageError::Backend("device vanished inside its transaction".into()))?;
                Ok(Write::Commit(device))
            })
            .await
    }

    async fn find_refresh_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<(RefreshTokenRecord, AuthSessionRecord)>, StorageError> {
        self.pool
            .read(move |conn| {
                let session_columns: String = SESSION_COLUMNS.split(", ").map(|column| format!("s.{column}")).collect::<Vec<_>>().join(", ");
                conn.prepare_cached(&format!(
                    "SELECT t.id, t.auth_session_id, t.token_hash, t.parent_id, t.created_at, t.expires_at, t.rotated_at, {session_columns}
                     FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.auth_session_id
                     WHERE t.token_hash = ?1"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_row(params![token_hash.as_slice()], |row| {
                            let hash: Vec<u8> = row.get(2)?;
                            let token = RefreshTokenRecord {
                                id: uuid_column(row, 0)?,
                                auth_session_id: uuid_column(row, 1)?,
                                token_hash: hash.try_into().unwrap_or([0; 32]),
                                parent_id: optional_uuid_column(row, 3)?,
                                created_at: timestamp_column(row, 4)?,
                                expires_at: timestamp_column(row, 5)?,
                                rotated_at: optional_timestamp_column(row, 6)?,
                            };
                            Ok((token, session_from_row(row, 7)?))
                        })
                        .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn rotate_refresh_token(
        &self,
        old: Uuid,
        next: RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> Result<RotateOutcome, StorageError> {
        self.pool
            .write(move |conn| {
                let tx = conn.transaction().map_err(backend)?;
                let now_text = format_timestamp(now);
                let open = tx
                    .query_row(
                        "SELECT count(*) FROM auth_sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                        params![next.auth_session_id.to_string(), now_text],
                        |row| row.get::<_, i64>(0),
                    )
                    .map_err(backend)?;
                if open == 0 {
                    return Ok(RotateOutcome::SessionClosed);
                }
                let rotated = tx
                    .execute(
                        "UPDATE refresh_tokens SET rotated_at = ?2, used_at = ?2 WHERE id = ?1 AND rotated_at IS NULL",
                        params![old.to_string(), now_text],
                    )
                    .map_err(backend)?;
                if rotated == 0 {
                    return Ok(RotateOutcome::AlreadyRotated);
                }
                insert_refresh_token(&tx, &next)?;
                tx.execute(
                    "UPDATE auth_sessions SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
                    params![next.auth_session_id.to_string(), now_text, format_timestamp(next.expires_at)],
                )
                .map_err(backend)?;
                tx.commit().map_err(backend)?;
                Ok(RotateOutcome::Rotated)
            })
            .await
    }

    async fn revoke_session(
        &self,
        id: AuthSessionId,
        reason: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<bool, StorageError> {
        let reason = reason.to_owned();
        self.pool
            .audited(audit, move |tx, _| {
                let revoked = revoke_sessions_where(tx, "id = ?3", &id.to_string(), &reason, now)?;
                if revoked.is_empty() {
                    return Ok(Write::Abort(false));
                }
                Ok(Write::Commit(true))
            })
            .await
    }

    async fn get_session(&self, id: AuthSessionId) -> Result<Option<AuthSessionRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE id = ?1"))
                    .and_then(|mut statement| {
                        statement.query_row(params![id.to_string()], |row| session_from_row(row, 0)).optional()
                    })
                    .map_err(backend)
            })
            .await
    }

    async fn list_sessions(&self, user_id: UserId) -> Result<Vec<AuthSessionRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 500"
                    ))
                    .map_err(backend)?;
                let rows = statement.query_map(params![user_id.to_string()], |row| session_from_row(row, 0)).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn list_devices(&self, user_id: UserId) -> Result<Vec<DeviceRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id"
                    ))
                    .map_err(backend)?;
                let rows = statement.query_map(params![user_id.to_string()], device_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn set_device_trust(
        &self,
        user_id: UserId,
        device_id: DeviceId,
        trusted: bool,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<DeviceRecord>, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                let changed = tx
                    .execute(
                        "UPDATE devices SET trusted = ?3, trusted_at = ?4
                         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
                        params![
                            device_id.to_string(),
                            user_id.to_string(),
                            trusted,
                            optional_timestamp(trusted.then_some(now))
                        ],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(None));
                }
                let device = select_device(tx, device_id)?;
                Ok(Write::Commit(device))
            })
            .await
    }

    async fn set_user_disabled(
        &self,
        user_id: UserId,
        disabled: bool,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<(UserRecord, Vec<AuthSessionId>)>, StorageError> {
        self.pool
            .audited(audit, move |tx, audit| {
                let id = user_id.to_string();
                let user = tx
                    .query_row(
                        &format!(
                            "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1 RETURNING {USER_COLUMNS}"
                        ),
                        params![id, disabled, format_timestamp(now)],
                        user_from_row,
                    )
                    .optional()
                    .map_err(backend)?;
                let Some(user) = user else { return Ok(Write::Abort(None)) };
                let revoked = if disabled {
                    revoke_sessions_where(tx, "user_id = ?3", &id, "user_disabled", now)?
                } else {
                    Vec::new()
                };
                audit.details["revoked_auth_sessions"] = serde_json::Value::from(revoked.len());
                Ok(Write::Commit(Some((user, revoked))))
            })
            .await
    }

    async fn revoke_device(
        &self,
        user_id: UserId,
        device_id: DeviceId,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<Vec<AuthSessionId>>, StorageError> {
        self.pool
            .audited(audit, move |tx, audit| {
                let changed = tx
                    .execute(
                        "UPDATE devices SET revoked_at = ?3, trusted = 0, trusted_at = NULL
                         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
                        params![device_id.to_string(), user_id.to_string(), format_timestamp(now)],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(None));
                }
                let revoked =
                    revoke_sessions_where(tx, "device_id = ?3", &device_id.to_string(), "device_revoked", now)?;
                audit.details["revoked_auth_sessions"] = serde_json::Value::from(revoked.len());
                Ok(Write::Commit(Some(revoked)))
            })
            .await
    }
}
