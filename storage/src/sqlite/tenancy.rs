//! Organizations, memberships, identity sources and their mappings.

use crate::ids::{OrgId, UserId};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::identity::{
    MEMBERSHIP_COLUMNS, ORGANIZATION_COLUMNS, insert_membership, limit_param, membership_from_row,
    organization_from_row,
};
use super::{SqliteStore, Write, backend, json_column, optional_uuid_column, timestamp_column, uuid_column};
use crate::format_timestamp;
use crate::repo::{
    AuditEvent, IdentityMappingRecord, IdentitySourceRecord, IdentitySourceRepository, LastOwner, MembershipChanges,
    MembershipRecord, OrgScope, OrganizationChanges, OrganizationRecord, OrganizationRepository, SealedBlob,
    StorageError,
};

/// `scope` as SQL parameters: a flag for "all" and a JSON array of ids, used
/// as `(?1 OR organization_id IN (SELECT value FROM json_each(?2)))`.
pub(super) fn scope_params(scope: &OrgScope) -> (bool, String) {
    match scope {
        OrgScope::All => (true, String::from("[]")),
        OrgScope::Only(ids) => {
            (false, serde_json::Value::from(ids.iter().map(OrgId::to_string).collect::<Vec<_>>()).to_string())
        }
    }
}

fn select_organization(conn: &Connection, id: OrgId) -> Result<Option<OrganizationRecord>, StorageError> {
    conn.query_row(
        &format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = ?1"),
        params![id.to_string()],
        organization_from_row,
    )
    .optional()
    .map_err(backend)
}

fn select_membership(
    conn: &Connection,
    organization_id: OrgId,
    id: Uuid,
) -> Result<Option<MembershipRecord>, StorageError> {
    conn.query_row(
        &format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM organization_memberships m WHERE m.organization_id = ?1 AND m.id = ?2"
        ),
        params![organization_id.to_string(), id.to_string()],
        membership_from_row,
    )
    .optional()
    .map_err(backend)
}

fn active_owners(conn: &Connection, organization_id: OrgId) -> Result<i64, StorageError> {
    conn.query_row(
        "SELECT count(*) FROM organization_memberships WHERE organization_id = ?1 AND role = 'org_owner' AND status = 'active'",
        params![organization_id.to_string()],
        |row| row.get(0),
    )
    .map_err(backend)
}

#[async_trait]
impl OrganizationRepository for SqliteStore {
    async fn create(&self, organization: OrganizationRecord, audit: AuditEvent) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                tx.execute(
                    &format!("INSERT INTO organizations ({ORGANIZATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                    params![
                        organization.id.to_string(),
                        organization.slug,
                        organization.name,
                        format_timestamp(organization.created_at),
                        format_timestamp(organization.updated_at),
                    ],
                )
                .map_err(backend)?;
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn get(&self, id: OrgId) -> Result<Option<OrganizationRecord>, StorageError> {
        self.pool.read(move |conn| select_organization(conn, id)).await
    }

    async fn list(
        &self,
        scope: OrgScope,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<OrganizationRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let (all, ids) = scope_params(&scope);
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {ORGANIZATION_COLUMNS} FROM organizations
                         WHERE (?1 OR id IN (SELECT value FROM json_each(?2))) AND (?3 IS NULL OR id > ?3)
                         ORDER BY id LIMIT ?4"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(
                        params![all, ids, after.map(|id| id.to_string()), limit_param(limit)],
                        organization_from_row,
                    )
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn update(
        &self,
        id: OrgId,
        changes: OrganizationChanges,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Option<OrganizationRecord>, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                let changed = tx
                    .execute(
                        "UPDATE organizations SET name = coalesce(?2, name), slug = coalesce(?3, slug), updated_at = ?4 WHERE id = ?1",
                        params![id.to_string(), changes.name, changes.slug, format_timestamp(now)],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(None));
                }
                let organization = select_organization(tx, id)?;
                Ok(Write::Commit(organization))
            })
            .await
    }

    async fn membership_of(
        &self,
        organization_id: OrgId,
        user_id: UserId,
    ) -> Result<Option<MembershipRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM organization_memberships m WHERE m.organization_id = ?1 AND m.user_id = ?2"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_row(params![organization_id.to_string(), user_id.to_string()], membership_from_row)
                        .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn memberships(&self, organization_id: OrgId) -> Result<Vec<MembershipRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {MEMBERSHIP_COLUMNS} FROM organization_memberships m WHERE m.organization_id = ?1 ORDER BY m.created_at, m.id"
                    ))
                    .map_err(backend)?;
                let rows = statement.query_map(params![organization_id.to_string()], membership_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn get_membership(&self, organization_id: OrgId, id: Uuid) -> Result<Option<MembershipRecord>, StorageError> {
        self.pool.read(move |conn| select_membership(conn, organization_id, id)).await
    }

    async fn add_membership(&self, membership: MembershipRecord, audit: AuditEvent) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                insert_membership(tx, &membership)?;
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn update_membership(
        &self,
        organization_id: OrgId,
        id: Uuid,
        changes: MembershipChanges,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<Result<Option<MembershipRecord>, LastOwner>, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                let owners_before = active_owners(tx, organization_id)?;
                let changed = tx
                    .execute(
                        "UPDATE organization_memberships SET role = coalesce(?3, role), status = coalesce(?4, status), updated_at = ?5
                         WHERE organization_id = ?1 AND id = ?2",
                        params![organization_id.to_string(), id.to_string(), changes.role, changes.status, format_timestamp(now)],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(Ok(None)));
                }
                // Checked after the change, in the same transaction: two
                // owners demoting each other at once cannot both succeed. An
                // organization that never had an owner may still be managed.
                if owners_before > 0 && active_owners(tx, organization_id)? == 0 {
                    return Ok(Write::Abort(Err(LastOwner)));
                }
                let membership = select_membership(tx, organization_id, id)?;
                Ok(Write::Commit(Ok(membership)))
            })
            .await
    }

    async fn delete_membership(
        &self,
        organization_id: OrgId,
        id: Uuid,
        audit: AuditEvent,
    ) -> Result<Result<bool, LastOwner>, StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                let owners_before = active_owners(tx, organization_id)?;
                let deleted = tx
                    .execute(
                        "DELETE FROM organization_memberships WHERE organization_id = ?1 AND id = ?2",
                        params![organization_id.to_string(), id.to_string()],
                    )
                    .map_err(backend)?;
                if deleted == 0 {
                    return Ok(Write::Abort(Ok(false)));
                }
                if owners_before > 0 && active_owners(tx, organization_id)? == 0 {
                    return Ok(Write::Abort(Err(LastOwner)));
                }
                Ok(Write::Commit(Ok(true)))
            })
            .await
    }
}

const SOURCE_COLUMNS: &str = "id, organization_id, kind, name, config, enabled, created_at, updated_at,
     secret_key_id, secret_nonce, secret_ciphertext";

fn source_from_row(row: &Row<'_>) -> rusqlite::Result<IdentitySourceRecord> {
    let sealed = match (row.get::<_, Option<String>>(8)?, row.get(9)?, row.get(10)?) {
        (Some(key_id), Some(nonce), Some(ciphertext)) => Some(SealedBlob { key_id, nonce, ciphertext }),
        _ => None,
    };
    Ok(IdentitySourceRecord {
        id: uuid_column(row, 0)?,
        organization_id: uuid_column(row, 1)?,
        kind: row.get(2)?,
        name: row.get(3)?,
        config: json_column(row, 4)?,
        enabled: row.get(5)?,
        sealed_secrets: sealed,
        created_at: timestamp_column(row, 6)?,
        updated_at: timestamp_column(row, 7)?,
    })
}

const MAPPING_COLUMNS: &str =
    "id, identity_source_id, external_kind, external_id, user_id, role, created_at, updated_at";

fn mapping_from_row(row: &Row<'_>) -> rusqlite::Result<IdentityMappingRecord> {
    Ok(IdentityMappingRecord {
        id: uuid_column(row, 0)?,
        identity_source_id: uuid_column(row, 1)?,
        external_kind: row.get(2)?,
        external_id: row.get(3)?,
        user_id: optional_uuid_column(row, 4)?,
        role: row.get(5)?,
        created_at: timestamp_column(row, 6)?,
        updated_at: timestamp_column(row, 7)?,
    })
}

#[async_trait]
impl IdentitySourceRepository for SqliteStore {
    async fn create(&self, source: IdentitySourceRecord, audit: AuditEvent) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                tx.execute(
                    &format!(
                        "INSERT INTO identity_sources ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                    ),
                    params![
                        source.id.to_string(),
                        source.organization_id.to_string(),
                        source.kind,
                        source.name,
                        source.config.to_string(),
                        source.enabled,
                        format_timestamp(source.created_at),
                        format_timestamp(source.updated_at),
                        source.sealed_secrets.as_ref().map(|sealed| sealed.key_id.clone()),
                        source.sealed_secrets.as_ref().map(|sealed| sealed.nonce.clone()),
                        source.sealed_secrets.as_ref().map(|sealed| sealed.ciphertext.clone()),
                    ],
                )
                .map_err(backend)?;
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn list(&self, organization_id: OrgId) -> Result<Vec<IdentitySourceRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE organization_id = ?1 ORDER BY id"
                    ))
                    .map_err(backend)?;
                let rows =
                    statement.query_map(params![organization_id.to_string()], source_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn get(&self, organization_id: OrgId, id: Uuid) -> Result<Option<IdentitySourceRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE organization_id = ?1 AND id = ?2"),
                    params![organization_id.to_string(), id.to_string()],
                    source_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn add_mapping(&self, mapping: IdentityMappingRecord, audit: AuditEvent) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                tx.execute(
                    &format!(
                        "INSERT INTO identity_mappings ({MAPPING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    params![
                        mapping.id.to_string(),
                        mapping.identity_source_id.to_string(),
                        mapping.external_kind,
                        mapping.external_id,
                        mapping.user_id.map(|id| id.to_string()),
                        mapping.role,
                        format_timestamp(mapping.created_at),
                        format_timestamp(mapping.updated_at),
                    ],
                )
                .map_err(backend)?;
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn sealed_not_under(&self, key_id: &str) -> Result<Vec<IdentitySourceRecord>, StorageError> {
        let key_id = key_id.to_owned();
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE secret_key_id IS NOT NULL AND secret_key_id <> ?1 ORDER BY id"
                    ))
                    .map_err(backend)?;
                let rows = statement.query_map(params![key_id], source_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn reseal(
        &self,
        id: Uuid,
        sealed: SealedBlob,
        previous_key_id: &str,
        audit: AuditEvent,
    ) -> Result<bool, StorageError> {
        let previous_key_id = previous_key_id.to_owned();
        self.pool
            .audited(audit, move |tx, _| {
                let changed = tx
                    .execute(
                        "UPDATE identity_sources SET secret_key_id = ?2, secret_nonce = ?3, secret_ciphertext = ?4
                         WHERE id = ?1 AND secret_key_id = ?5",
                        params![id.to_string(), sealed.key_id, sealed.nonce, sealed.ciphertext, previous_key_id],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Ok(Write::Abort(false));
                }
                Ok(Write::Commit(true))
            })
            .await
    }

    async fn mappings(&self, identity_source_id: Uuid) -> Result<Vec<IdentityMappingRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {MAPPING_COLUMNS} FROM identity_mappings WHERE identity_source_id = ?1 ORDER BY id"
                    ))
                    .map_err(backend)?;
                let rows =
                    statement.query_map(params![identity_source_id.to_string()], mapping_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }
}
