//! The repository contract on SQLite: one fresh database file per case.

use rap_storage::sqlite::{DATABASE_FILE_NAME, SqliteStore};

use crate::contract::Backend;

async fn backend() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::start(dir.path().join(DATABASE_FILE_NAME), 2).expect("threads start");
    store.migrate().await.expect("database opens and migrates");
    let repos = store.repositories();
    Backend::new(
        repos,
        Box::pin(async move {
            store.close().await;
            drop(dir);
        }),
    )
}

crate::contract::contract_tests!(backend);
