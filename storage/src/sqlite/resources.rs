//! Resources, their policies, and their encrypted secrets.

use crate::ids::ResourceId;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::identity::limit_param;
use super::tenancy::scope_params;
use super::{
    SqliteStore, Write, backend, json_column, optional_timestamp, optional_timestamp_column, optional_uuid_column,
    timestamp_column, uuid_column,
};
use crate::format_timestamp;
use crate::repo::{
    AuditEvent, OrgScope, ResourcePolicyRecord, ResourceRecord, ResourceRepository, SecretRecord, StorageError,
};

const RESOURCE_SELECT: &str = "SELECT r.id, r.organization_id, r.name, r.protocol, r.host, r.port,
        r.certificate_verification_mode, r.certificate_fingerprint, r.metadata, r.secret_ref,
        p.clipboard_mode, p.file_transfer_mode, r.created_by_user_id, r.created_at, r.updated_at
     FROM resources r JOIN resource_policies p ON p.resource_id = r.id";

fn resource_from_row(row: &Row<'_>) -> rusqlite::Result<ResourceRecord> {
    Ok(ResourceRecord {
        id: uuid_column(row, 0)?,
        organization_id: uuid_column(row, 1)?,
        name: row.get(2)?,
        protocol: row.get(3)?,
        host: row.get(4)?,
        port: row.get(5)?,
        certificate_verification_mode: row.get(6)?,
        certificate_fingerprint: row.get(7)?,
        metadata: json_column(row, 8)?,
        secret_ref: row.get(9)?,
        policy: ResourcePolicyRecord { clipboard_mode: row.get(10)?, file_transfer_mode: row.get(11)? },
        created_by_user_id: optional_uuid_column(row, 12)?,
        created_at: timestamp_column(row, 13)?,
        updated_at: timestamp_column(row, 14)?,
    })
}

fn select_resource(conn: &Connection, id: ResourceId) -> Result<Option<ResourceRecord>, StorageError> {
    conn.prepare_cached(&format!("{RESOURCE_SELECT} WHERE r.id = ?1 AND r.deleted_at IS NULL"))
        .and_then(|mut statement| statement.query_row(params![id.to_string()], resource_from_row).optional())
        .map_err(backend)
}

const SECRET_COLUMNS: &str = "id, resource_id, key_id, nonce, ciphertext, created_at, updated_at, rotated_at";

fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        id: uuid_column(row, 0)?,
        resource_id: uuid_column(row, 1)?,
        key_id: row.get(2)?,
        nonce: row.get(3)?,
        ciphertext: row.get(4)?,
        created_at: timestamp_column(row, 5)?,
        updated_at: timestamp_column(row, 6)?,
        rotated_at: optional_timestamp_column(row, 7)?,
    })
}

fn select_secret(conn: &Connection, resource_id: ResourceId) -> Result<Option<SecretRecord>, StorageError> {
    conn.query_row(
        &format!("SELECT {SECRET_COLUMNS} FROM resource_secrets WHERE resource_id = ?1"),
        params![resource_id.to_string()],
        secret_from_row,
    )
    .optional()
    .map_err(backend)
}

#[async_trait]
impl ResourceRepository for SqliteStore {
    async fn create(&self, resource: ResourceRecord, audit: AuditEvent) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                tx.execute(
                    "INSERT INTO resources (id, organization_id, name, protocol, host, port, certificate_verification_mode,
                         certificate_fingerprint, metadata, secret_ref, created_by_user_id, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        resource.id.to_string(),
                        resource.organization_id.to_string(),
                        resource.name,
                        resource.protocol,
                        resource.host,
                        resource.port,
                        resource.certificate_verification_mode,
                        resource.certificate_fingerprint,
                        resource.metadata.to_string(),
                        resource.secret_ref,
                        resource.created_by_user_id.map(|id| id.to_string()),
                        format_timestamp(resource.created_at),
                        format_timestamp(resource.updated_at),
                    ],
                )
                .map_err(backend)?;
                tx.execute(
                    "INSERT INTO resource_policies (resource_id, clipboard_mode, file_transfer_mode, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![
                        resource.id.to_string(),
                        resource.policy.clipboard_mode,
                        resource.policy.file_transfer_mode,
                        format_timestamp(resource.created_at),
                    ],
                )
                .map_err(backend)?;
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn get(&self, id: ResourceId) -> Result<Option<ResourceRecord>, StorageError> {
        self.pool.read(move |conn| select_resource(conn, id)).await
    }

    async fn list(
        &self,
        scope: OrgScope,
        after: Option<ResourceId>,
        limit: usize,
    ) -> Result<Vec<ResourceRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let (all, ids) = scope_params(&scope);
                let mut statement = conn
                    .prepare_cached(&format!(
                        "{RESOURCE_SELECT}
                         WHERE r.deleted_at IS NULL
                           AND (?1 OR r.organization_id IN (SELECT value FROM json_each(?2)))
                           AND (?3 IS NULL OR r.id > ?3)
                         ORDER BY r.id LIMIT ?4"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(params![all, ids, after.map(|id| id.to_string()), limit_param(limit)], resource_from_row)
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn update(&self, resource: ResourceRecord, audit: AuditEvent) -> Result<bool, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                let changed = tx
                    .execute(
                        "UPDATE resources SET name = ?2, host = ?3, port = ?4, certificate_verification_mode = ?5,
                             certificate_fingerprint = ?6, metadata = ?7, updated_at = ?8
                         WHERE id = ?1 AND deleted_at IS NULL",
                        params![
                            resource.id.to_string(),
                            resource.name,
                            resource.host,
                            resource.port,
                            resource.certificate_verification_mode,
                            resource.certificate_fingerprint,
                            resource.metadata.to_string(),
                            format_timestamp(resource.updated_at),
                        ],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(false));
                }
                tx.execute(
                    "UPDATE resource_policies SET clipboard_mode = ?2, file_transfer_mode = ?3, updated_at = ?4 WHERE resource_id = ?1",
                    params![
                        resource.id.to_string(),
                        resource.policy.clipboard_mode,
                        resource.policy.file_transfer_mode,
                        format_timestamp(resource.updated_at),
                    ],
                )
                .map_err(backend)?;
                Ok(Write::Commit(true))
            })
            .await
    }

    async fn delete(&self, id: ResourceId, now: OffsetDateTime, audit: AuditEvent) -> Result<bool, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                let changed = tx
                    .execute(
                        "UPDATE resources SET deleted_at = ?2, updated_at = ?2, secret_ref = NULL WHERE id = ?1 AND deleted_at IS NULL",
                        params![id.to_string(), format_timestamp(now)],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(false));
                }
                // A deleted resource's credentials have no use left.
                tx.execute("DELETE FROM resource_secrets WHERE resource_id = ?1", params![id.to_string()]).map_err(backend)?;
                Ok(Write::Commit(true))
            })
            .await
    }

    async fn put_secret(
        &self,
        secret: SecretRecord,
        secret_ref: String,
        audit: AuditEvent,
    ) -> Result<SecretRecord, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                tx.execute(
                    &format!(
                        "INSERT INTO resource_secrets ({SECRET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (resource_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at, rotated_at = excluded.updated_at"
                    ),
                    params![
                        secret.id.to_string(),
                        secret.resource_id.to_string(),
                        secret.key_id,
                        secret.nonce,
                        secret.ciphertext,
                        format_timestamp(secret.created_at),
                        format_timestamp(secret.updated_at),
                        optional_timestamp(secret.rotated_at),
                    ],
                )
                .map_err(backend)?;
                let changed = tx
                    .execute(
                        "UPDATE resources SET secret_ref = ?2, updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL",
                        params![secret.resource_id.to_string(), secret_ref, format_timestamp(secret.updated_at)],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StorageError::Conflict("resource is gone".into()));
                }
                let stored = select_secret(tx, secret.resource_id)?
                    .ok_or_else(|| StorageError::Backend("secret vanished inside its transaction".into()))?;
                Ok(Write::Commit(stored))
            })
            .await
    }

    async fn get_secret(&self, resource_id: ResourceId) -> Result<Option<SecretRecord>, StorageError> {
        self.pool.read(move |conn| select_secret(conn, resource_id)).await
    }

    async fn secrets_not_under(&self, key_id: &str) -> Result<Vec<SecretRecord>, StorageError> {
        let key_id = key_id.to_owned();
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare(&format!("SELECT {SECRET_COLUMNS} FROM resource_secrets WHERE key_id <> ?1 ORDER BY id"))
                    .map_err(backend)?;
                let rows = statement.query_map(params![key_id], secret_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn reencrypt_secret(
        &self,
        secret: SecretRecord,
        previous_key_id: &str,
        audit: AuditEvent,
    ) -> Result<bool, StorageError> {
        let previous_key_id = previous_key_id.to_owned();
        self.pool
            .audited(audit, move |tx, _| {
                let changed = tx
                    .execute(
                        "UPDATE resource_secrets SET key_id = ?3, nonce = ?4, ciphertext = ?5, rotated_at = ?6
                         WHERE id = ?1 AND key_id = ?2",
                        params![
                            secret.id.to_string(),
                            previous_key_id,
                            secret.key_id,
                            secret.nonce,
                            secret.ciphertext,
                            optional_timestamp(secret.rotated_at),
                        ],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(false));
                }
                Ok(Write::Commit(true))
            })
            .await
    }
}
