//! The SQLite implementation of the repository traits.

mod auth;
mod backup;
mod identity;
mod migrations;
mod pool;
mod resources;
mod sessions;
mod tenancy;
mod workers;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Row, params};

pub use backup::backup;
pub use migrations::embedded_names as embedded_migration_names;

use crate::repo::{AuditEvent, AuditQuery, AuditRepository, HealthRepository, Repositories, StorageError};
use crate::{format_timestamp, parse_timestamp};
use pool::Pool;
pub(super) use pool::Write;

/// Name of the database file inside the data directory.
pub const DATABASE_FILE_NAME: &str = "rap.sqlite3";

/// One SQLite database file and the threads that serve it.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) pool: Arc<Pool>,
}

impl SqliteStore {
    /// Starts the connection threads for the database at `path`. Nothing is
    /// opened yet: call [`SqliteStore::migrate`] to open and migrate now, or
    /// let the first call do it. Until the file can be opened, calls answer
    /// [`StorageError::Unavailable`]; only a failure to start threads is fatal.
    pub fn start(path: PathBuf, reader_count: usize) -> Result<Self, StorageError> {
        Ok(Self { pool: Arc::new(Pool::start(path, reader_count)?) })
    }

    /// Opens the database if needed and applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        self.pool.write(|_conn| Ok(())).await
    }

    /// Finishes queued work, checkpoints the WAL and stops the threads.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The repository trait objects backed by this store.
    pub fn repositories(&self) -> Repositories {
        let store = Arc::new(self.clone());
        Repositories {
            health: store.clone(),
            installation: store.clone(),
            audit: store.clone(),
            users: store.clone(),
            auth: store.clone(),
            organizations: store.clone(),
            identity_sources: store.clone(),
            resources: store.clone(),
            sessions: store.clone(),
            workers: store,
        }
    }
}

/// Maps a driver error to the neutral error: constraint violations are
/// conflicts the caller may expect, the rest is a backend failure.
pub(super) fn backend(error: rusqlite::Error) -> StorageError {
    match &error {
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::ConstraintViolation => {
            StorageError::Conflict(error.to_string())
        }
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(code.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            StorageError::Unavailable(error.to_string())
        }
        _ => StorageError::Backend(error.to_string()),
    }
}

/// A UUID column read as whichever id type the record's field has
/// (`Uuid` or one of [`crate::ids`]): they all parse from the same text.
pub(super) fn uuid_column<Id: FromStr<Err = uuid::Error>>(row: &Row<'_>, index: usize) -> rusqlite::Result<Id> {
    let text: String = row.get(index)?;
    parse_uuid_column(index, &text)
}

pub(super) fn optional_uuid_column<Id: FromStr<Err = uuid::Error>>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<Id>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| parse_uuid_column(index, &text)).transpose()
}

fn parse_uuid_column<Id: FromStr<Err = uuid::Error>>(index: usize, text: &str) -> rusqlite::Result<Id> {
    text.parse()
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error)))
}

pub(super) fn timestamp_column(row: &Row<'_>, index: usize) -> rusqlite::Result<time::OffsetDateTime> {
    let text: String = row.get(index)?;
    parse_timestamp(&text)
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error)))
}

pub(super) fn optional_timestamp_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<time::OffsetDateTime>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| {
        parse_timestamp(&text).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
        })
    })
    .transpose()
}

pub(super) fn optional_timestamp(at: Option<time::OffsetDateTime>) -> Option<String> {
    at.map(format_timestamp)
}

pub(super) fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error)))
}

#[async_trait]
impl HealthRepository for SqliteStore {
    async fn check_ready(&self) -> Result<(), StorageError> {
        if !self.pool.is_migrated() {
            // Retry opening through the writer so a database that became
            // usable after start-up turns ready without a restart.
            self.migrate().await?;
        }
        self.pool
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM installation", [], |row| row.get::<_, i64>(0)).map_err(backend)
            })
            .await
            .map(|_| ())
    }
}

const AUDIT_COLUMNS: &str = "id, occurred_at, organization_id, session_id, actor_user_id, actor_kind, action, \
     target_kind, target_id, outcome, details, trace_id, ip";

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        id: uuid_column(row, 0)?,
        occurred_at: timestamp_column(row, 1)?,
        organization_id: optional_uuid_column(row, 2)?,
        session_id: optional_uuid_column(row, 3)?,
        actor_user_id: optional_uuid_column(row, 4)?,
        actor_kind: row.get(5)?,
        action: row.get(6)?,
        target_kind: row.get(7)?,
        target_id: row.get(8)?,
        outcome: row.get(9)?,
        details: json_column(row, 10)?,
        trace_id: row.get(11)?,
        ip: row.get(12)?,
    })
}

/// Inserts one audit event inside the caller's transaction, so that a state
/// change and its audit record commit together or not at all.
pub(super) fn insert_audit(conn: &rusqlite::Connection, event: &AuditEvent) -> Result<(), StorageError> {
    conn.execute(
        &format!(
            "INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            event.id.to_string(),
            format_timestamp(event.occurred_at),
            event.organization_id.map(|id| id.to_string()),
            event.session_id.map(|id| id.to_string()),
            event.actor_user_id.map(|id| id.to_string()),
            event.actor_kind,
            event.action,
            event.target_kind,
            event.target_id,
            event.outcome,
            event.details.to_string(),
            event.trace_id,
            event.ip,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl AuditRepository for SqliteStore {
    async fn append(&self, event: AuditEvent) -> Result<(), StorageError> {
        self.pool.write(move |conn| insert_audit(conn, &event)).await
    }

    async fn list(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StorageError> {
        self.pool
            .read(move |conn| {
                let (before_at, before_id) = match query.before {
                    Some(cursor) => (Some(format_timestamp(cursor.occurred_at)), Some(cursor.id.to_string())),
                    None => (None, None),
                };
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit_events
                         WHERE (?1 IS NULL OR organization_id = ?1)
                           AND (?2 IS NULL OR session_id = ?2)
                           AND (?3 IS NULL OR (occurred_at, id) < (?3, ?4))
                         ORDER BY occurred_at DESC, id DESC
                         LIMIT ?5"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(
                        params![
                            query.organization_id.map(|id| id.to_string()),
                            query.session_id.map(|id| id.to_string()),
                            before_at,
                            before_id,
                            i64::try_from(query.limit).unwrap_or(i64::MAX),
                        ],
                        audit_from_row,
                    )
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }
}

/// The vocabularies are stored as their text; a value the schema's CHECK
/// would refuse can still be read (a database edited by hand) and is then
/// an error, never a guess.
macro_rules! sql_text {
    ($($name:ty),+) => {$(
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                <$name>::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(format!("not a {}: {text:?}", stringify!($name)).into())
                })
            }
        }
    )+};
}

sql_text!(
    crate::types::SessionState,
    crate::types::PolicyMode,
    crate::types::Protocol,
    crate::types::CertificateMode,
    crate::types::OrgRole,
    crate::types::MembershipStatus,
    crate::types::AttachmentRole
);
