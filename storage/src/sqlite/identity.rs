//! Installation, users and their platform grants, the first-owner bootstrap.

use crate::ids::UserId;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, Write, backend, optional_timestamp_column, timestamp_column, uuid_column};
use crate::format_timestamp;
use crate::repo::{
    AuditEvent, Bootstrap, Bootstrapped, GrantRecord, InstallationRecord, InstallationRepository, InstallationStatus,
    MembershipRecord, MembershipView, OrganizationRecord, StorageError, UserRecord, UserRepository,
};

pub(super) const USER_COLUMNS: &str =
    "id, email, password_hash, display_name, platform_role, disabled, created_at, updated_at";

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: uuid_column(row, 0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        display_name: row.get(3)?,
        platform_role: row.get(4)?,
        disabled: row.get(5)?,
        created_at: timestamp_column(row, 6)?,
        updated_at: timestamp_column(row, 7)?,
    })
}

fn insert_user(conn: &Connection, user: &UserRecord) -> Result<(), StorageError> {
    conn.execute(
        &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            user.id.to_string(),
            user.email,
            user.password_hash,
            user.display_name,
            user.platform_role,
            user.disabled,
            format_timestamp(user.created_at),
            format_timestamp(user.updated_at),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn insert_grant(conn: &Connection, grant: &GrantRecord) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO platform_role_grants (id, user_id, role, installation_id, signature, signing_key_id, granted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            grant.id.to_string(),
            grant.user_id.to_string(),
            grant.role,
            grant.installation_id.to_string(),
            grant.signature,
            grant.signing_key_id,
            format_timestamp(grant.granted_at),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) const ORGANIZATION_COLUMNS: &str = "id, slug, name, created_at, updated_at";

pub(super) fn organization_from_row(row: &Row<'_>) -> rusqlite::Result<OrganizationRecord> {
    Ok(OrganizationRecord {
        id: uuid_column(row, 0)?,
        slug: row.get(1)?,
        name: row.get(2)?,
        created_at: timestamp_column(row, 3)?,
        updated_at: timestamp_column(row, 4)?,
    })
}

pub(super) const MEMBERSHIP_COLUMNS: &str =
    "m.id, m.organization_id, m.user_id, m.role, m.status, m.created_at, m.updated_at";

pub(super) fn membership_from_row(row: &Row<'_>) -> rusqlite::Result<MembershipRecord> {
    Ok(MembershipRecord {
        id: uuid_column(row, 0)?,
        organization_id: uuid_column(row, 1)?,
        user_id: uuid_column(row, 2)?,
        role: row.get(3)?,
        status: row.get(4)?,
        created_at: timestamp_column(row, 5)?,
        updated_at: timestamp_column(row, 6)?,
    })
}

fn installation_from_row(row: &Row<'_>) -> rusqlite::Result<InstallationStatus> {
    Ok(InstallationStatus {
        record: InstallationRecord {
            installation_id: uuid_column(row, 0)?,
            authority_mode: row.get(1)?,
            created_at: timestamp_column(row, 2)?,
        },
        bootstrapped_at: optional_timestamp_column(row, 3)?,
    })
}

const INSTALLATION_QUERY: &str =
    "SELECT installation_id, authority_mode, created_at, bootstrapped_at FROM installation WHERE singleton = 1";

#[async_trait]
impl InstallationRepository for SqliteStore {
    async fn get_or_create(&self, candidate: InstallationRecord) -> Result<InstallationRecord, StorageError> {
        self.pool
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO installation (singleton, installation_id, authority_mode, created_at)
                     VALUES (1, ?1, ?2, ?3) ON CONFLICT (singleton) DO NOTHING",
                    params![
                        candidate.installation_id.to_string(),
                        candidate.authority_mode,
                        format_timestamp(candidate.created_at)
                    ],
                )
                .map_err(backend)?;
                conn.query_row(INSTALLATION_QUERY, [], installation_from_row)
                    .map(|status| status.record)
                    .map_err(backend)
            })
            .await
    }

    async fn status(&self) -> Result<Option<InstallationStatus>, StorageError> {
        self.pool
            .read(|conn| conn.query_row(INSTALLATION_QUERY, [], installation_from_row).optional().map_err(backend))
            .await
    }

    async fn bootstrap(&self, bootstrap: Bootstrap) -> Result<Option<Bootstrapped>, StorageError> {
        let audit = bootstrap.audit;
        self.pool
            .audited(audit, move |tx, audit| {
                // The guard on bootstrapped_at makes a racing second bootstrap
                // lose here, before it writes anything.
                let claimed = tx
                    .execute(
                        "UPDATE installation SET bootstrapped_at = ?1, bootstrap_owner_user_id = NULL
                         WHERE singleton = 1 AND bootstrapped_at IS NULL",
                        params![format_timestamp(bootstrap.owner.created_at)],
                    )
                    .map_err(backend)?;
                if claimed == 0 {
                    return Ok(Write::Abort(None));
                }
                insert_user(tx, &bootstrap.owner)?;
                tx.execute(
                    "UPDATE installation SET bootstrap_owner_user_id = ?1 WHERE singleton = 1",
                    params![bootstrap.owner.id.to_string()],
                )
                .map_err(backend)?;
                insert_grant(tx, &bootstrap.grant)?;
                let organization = bootstrap.default_organization;
                tx.execute(
                    &format!("INSERT INTO organizations ({ORGANIZATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (slug) DO NOTHING"),
                    params![
                        organization.id.to_string(),
                        organization.slug,
                        organization.name,
                        format_timestamp(organization.created_at),
                        format_timestamp(organization.updated_at),
                    ],
                )
                .map_err(backend)?;
                let organization = tx
                    .query_row(
                        &format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE slug = ?1"),
                        params![organization.slug],
                        organization_from_row,
                    )
                    .map_err(backend)?;
                let membership = MembershipRecord { organization_id: organization.id, ..bootstrap.membership };
                insert_membership(tx, &membership)?;
                audit.organization_id = Some(organization.id);
                Ok(Write::Commit(Some(Bootstrapped { organization, membership })))
            })
            .await
    }
}

pub(super) fn insert_membership(conn: &Connection, membership: &MembershipRecord) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO organization_memberships (id, organization_id, user_id, role, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            membership.id.to_string(),
            membership.organization_id.to_string(),
            membership.user_id.to_string(),
            membership.role,
            membership.status,
            format_timestamp(membership.created_at),
            format_timestamp(membership.updated_at),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl UserRepository for SqliteStore {
    async fn create(
        &self,
        user: UserRecord,
        grant: Option<GrantRecord>,
        audit: AuditEvent,
    ) -> Result<(), StorageError> {
        self.pool
            .audited(audit, move |tx, _| {
                insert_user(tx, &user)?;
                if let Some(grant) = &grant {
                    insert_grant(tx, grant)?;
                }
                Ok(Write::Commit(()))
            })
            .await
    }

    async fn get(&self, id: UserId) -> Result<Option<UserRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
                    .and_then(|mut statement| statement.query_row(params![id.to_string()], user_from_row).optional())
                    .map_err(backend)
            })
            .await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<UserRecord>, StorageError> {
        let email = email.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"))
                    .and_then(|mut statement| statement.query_row(params![email], user_from_row).optional())
                    .map_err(backend)
            })
            .await
    }

    async fn list(&self, after: Option<UserId>, limit: usize) -> Result<Vec<UserRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(params![after.map(|id| id.to_string()), limit_param(limit)], user_from_row)
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn active_grants(&self, user_id: UserId) -> Result<Vec<GrantRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT id, user_id, role, installation_id, signature, signing_key_id, granted_at
                         FROM platform_role_grants WHERE user_id = ?1 AND revoked_at IS NULL",
                    )
                    .map_err(backend)?;
                let rows = statement
                    .query_map(params![user_id.to_string()], |row| {
                        Ok(GrantRecord {
                            id: uuid_column(row, 0)?,
                            user_id: uuid_column(row, 1)?,
                            role: row.get(2)?,
                            installation_id: uuid_column(row, 3)?,
                            signature: row.get(4)?,
                            signing_key_id: row.get(5)?,
                            granted_at: timestamp_column(row, 6)?,
                        })
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn memberships(&self, user_id: UserId) -> Result<Vec<MembershipView>, StorageError> {
        self.pool
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {MEMBERSHIP_COLUMNS}, o.slug, o.name FROM organization_memberships m
                         JOIN organizations o ON o.id = m.organization_id
                         WHERE m.user_id = ?1 ORDER BY o.slug"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(params![user_id.to_string()], |row| {
                        Ok(MembershipView {
                            membership: membership_from_row(row)?,
                            organization_slug: row.get(7)?,
                            organization_name: row.get(8)?,
                        })
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }
}

pub(super) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
