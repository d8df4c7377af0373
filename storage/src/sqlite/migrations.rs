//! The schema migrations in `migrations/`, embedded into the binary.

use rusqlite::Connection;

use crate::repo::StorageError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Applies every migration not yet applied. Refuses to run against a database
/// whose applied migrations were edited after they landed (divergent
/// checksums) or that is newer than this binary (missing migrations): both
/// mean the binary and the data do not belong together.
pub(crate) fn apply(conn: &mut Connection) -> Result<(), StorageError> {
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run(conn)
        .map_err(|error| StorageError::Unavailable(format!("migration failed: {error}")))?;
    for migration in report.applied_migrations() {
        tracing::info!(version = migration.version(), name = migration.name(), "Applied migration");
    }
    Ok(())
}

/// Names of the embedded migrations in order, as `V<version>__<name>`.
pub fn embedded_names() -> Vec<String> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|migration| format!("V{}__{}", migration.version(), migration.name()))
        .collect()
}
