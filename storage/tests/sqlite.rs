use rap_storage::OrgId;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rap_storage::repo::{AuditCursor, AuditEvent, AuditQuery, InstallationRecord};
use rap_storage::sqlite::{DATABASE_FILE_NAME, SqliteStore, embedded_migration_names};
use rap_storage::{StorageError, format_timestamp};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

fn database_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(DATABASE_FILE_NAME)
}

async fn started(path: &Path) -> SqliteStore {
    let store = SqliteStore::start(path.to_owned(), 2).expect("threads start");
    store.migrate().await.expect("database opens and migrates");
    store
}

fn applied_versions(path: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut statement = conn.prepare("SELECT version FROM refinery_schema_history ORDER BY version").expect("prepare");
    statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
}

fn event(at: OffsetDateTime, organization_id: Option<OrgId>, action: &str) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        occurred_at: at,
        organization_id,
        session_id: None,
        actor_user_id: None,
        actor_kind: "system".into(),
        action: action.into(),
        target_kind: None,
        target_id: None,
        outcome: "success".into(),
        details: serde_json::json!({"n": action}),
        trace_id: Some("trace".into()),
        ip: None,
    }
}

#[tokio::test]
async fn migrations_apply_once_and_restarts_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    let store = started(&path).await;
    store.close().await;
    let expected: Vec<i64> = (1..=embedded_migration_names().len() as i64).collect();
    assert_eq!(applied_versions(&path), expected);

    for _ in 0..2 {
        let store = started(&path).await;
        store.close().await;
    }
    assert_eq!(applied_versions(&path), expected, "a restart must not apply anything again");
}

#[tokio::test]
async fn a_database_changed_under_an_applied_migration_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    started(&path).await.close().await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1", []).expect("tamper");
    drop(conn);

    let store = SqliteStore::start(path, 1).expect("threads start");
    let error = store.migrate().await.expect_err("divergent history must be refused");
    assert!(matches!(error, StorageError::Unavailable(ref reason) if reason.contains("migration")), "{error}");
    store.close().await;
}

#[test]
fn migration_files_are_numbered_without_gaps() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut versions: Vec<u32> = std::fs::read_dir(&dir)
        .expect("migrations directory")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .map(|name| {
            let rest =
                name.strip_prefix('V').unwrap_or_else(|| panic!("{name}: migrations are named V<n>__<name>.sql"));
            assert!(name.ends_with(".sql"), "{name}: migrations are .sql files");
            let (number, title) = rest.split_once("__").unwrap_or_else(|| panic!("{name}: missing __"));
            assert!(!title.is_empty(), "{name}: needs a name after __");
            number.parse().unwrap_or_else(|_| panic!("{name}: version is not a number"))
        })
        .collect();
    versions.sort_unstable();
    let expected: Vec<u32> = (1..=versions.len() as u32).collect();
    assert_eq!(versions, expected);
    assert_eq!(embedded_migration_names().len(), versions.len(), "every file is embedded");
}

#[tokio::test]
async fn the_pragmas_that_keep_data_safe_are_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    let store = started(&path).await;
    store.close().await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("pragma");
    assert_eq!(mode, "wal", "WAL is a property of the file and must persist");
}

#[tokio::test]
async fn concurrent_writers_never_see_database_is_locked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    // Two stores on one file, as when `rap-appliance migrate` or a second
    // process runs beside the server, each with many concurrent writers.
    let first = Arc::new(started(&path).await);
    let second = Arc::new(started(&path).await);
    let mut writes = tokio::task::JoinSet::new();
    for index in 0..400 {
        let store = if index % 2 == 0 { first.clone() } else { second.clone() };
        writes.spawn(async move {
            let audit = store.repositories().audit;
            audit.append(event(OffsetDateTime::now_utc(), None, &format!("write-{index}"))).await
        });
    }
    while let Some(outcome) = writes.join_next().await {
        outcome.expect("task").expect("every write succeeds");
    }
    let all = first.repositories().audit.list(AuditQuery { limit: 1000, ..Default::default() }).await.expect("list");
    assert_eq!(all.len(), 400);
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn audit_events_page_newest_first_and_filter_by_organization() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = started(&database_in(&dir)).await;
    let audit = store.repositories().audit;
    let org = OrgId::generate();
    let base = datetime!(2026-11-28 10:00 UTC);
    for minute in 0..5 {
        audit
            .append(event(base + time::Duration::minutes(minute), Some(org), &format!("org-{minute}")))
            .await
            .expect("append");
        audit
            .append(event(base + time::Duration::minutes(minute), None, &format!("other-{minute}")))
            .await
            .expect("append");
    }
    let first_page =
        audit.list(AuditQuery { organization_id: Some(org), limit: 3, ..Default::default() }).await.expect("page 1");
    let actions: Vec<_> = first_page.iter().map(|event| event.action.as_str()).collect();
    assert_eq!(actions, ["org-4", "org-3", "org-2"]);
    let last = first_page.last().expect("a last event");
    let second_page = audit
        .list(AuditQuery {
            organization_id: Some(org),
            limit: 3,
            before: Some(AuditCursor { occurred_at: last.occurred_at, id: last.id }),
            ..Default::default()
        })
        .await
        .expect("page 2");
    let actions: Vec<_> = second_page.iter().map(|event| event.action.as_str()).collect();
    assert_eq!(actions, ["org-1", "org-0"]);
    assert_eq!(second_page[0].details, serde_json::json!({"n": "org-1"}), "details round-trip as JSON");
    assert_eq!(second_page[0].occurred_at, base + time::Duration::minutes(1));
    store.close().await;
}

#[tokio::test]
async fn the_installation_is_created_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    let store = started(&path).await;
    let first = InstallationRecord {
        installation_id: Uuid::now_v7(),
        authority_mode: "legacy".into(),
        created_at: datetime!(2026-11-28 10:00 UTC),
    };
    let stored = store.repositories().installation.get_or_create(first.clone()).await.expect("create");
    assert_eq!(stored, first);
    store.close().await;

    let store = started(&path).await;
    let candidate =
        InstallationRecord { installation_id: Uuid::now_v7(), authority_mode: "strict".into(), ..first.clone() };
    let again = store.repositories().installation.get_or_create(candidate).await.expect("read");
    assert_eq!(again, first, "the identity survives restarts and is never replaced");
    store.close().await;
}

#[tokio::test]
async fn an_unopenable_database_is_unavailable_until_it_can_be_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    // A directory where the database file should be cannot be opened.
    std::fs::create_dir(&path).expect("block the path");
    let store = SqliteStore::start(path.clone(), 1).expect("threads start");
    assert!(matches!(store.migrate().await, Err(StorageError::Unavailable(_))));
    let health = store.repositories().health;
    assert!(matches!(health.check_ready().await, Err(StorageError::Unavailable(_))));
    let audit = store.repositories().audit;
    assert!(matches!(
        audit.list(AuditQuery { limit: 1, ..Default::default() }).await,
        Err(StorageError::Unavailable(_))
    ));

    std::fs::remove_dir(&path).expect("unblock");
    health.check_ready().await.expect("recovers without a restart");
    store.close().await;
}

#[tokio::test]
async fn constraint_violations_are_conflicts_not_failures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = started(&database_in(&dir)).await;
    let audit = store.repositories().audit;
    let once = event(OffsetDateTime::now_utc(), None, "once");
    audit.append(once.clone()).await.expect("first");
    assert!(matches!(audit.append(once).await, Err(StorageError::Conflict(_))));
    store.close().await;
}

#[tokio::test]
async fn timestamps_are_stored_in_the_fixed_sortable_form() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = database_in(&dir);
    let store = started(&path).await;
    let at = datetime!(2026-11-28 10:00:00.5 +02:00);
    store.repositories().audit.append(event(at, None, "tz")).await.expect("append");
    store.close().await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    let text: String = conn.query_row("SELECT occurred_at FROM audit_events", [], |row| row.get(0)).expect("row");
    assert_eq!(text, "2026-11-28T08:00:00.500000Z");
    assert_eq!(text, format_timestamp(at));
}

mod up_to {
    refinery::embed_migrations!("../migrations");
}

#[test]
fn the_default_organization_backfill_is_the_seeds_and_idempotent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = rusqlite::Connection::open(database_in(&dir)).expect("open");
    conn.execute_batch("PRAGMA foreign_keys = ON;").expect("pragma");
    up_to::migrations::runner().set_target(refinery::Target::Version(1)).run(&mut conn).expect("V1");
    // Users that existed before organizations did.
    let now = format_timestamp(OffsetDateTime::now_utc());
    for (email, role) in [("admin@example.com", Some("platform_admin")), ("staff@example.com", None)] {
        conn.execute(
            "INSERT INTO users (id, email, password_hash, display_name, platform_role, created_at, updated_at)
             VALUES (?1, ?2, NULL, ?2, ?3, ?4, ?4)",
            rusqlite::params![Uuid::now_v7().to_string(), email, role, now],
        )
        .expect("user");
    }
    up_to::migrations::runner().run(&mut conn).expect("all migrations");

    let memberships = |conn: &rusqlite::Connection| -> Vec<(String, String)> {
        let mut statement = conn
            .prepare(
                "SELECT u.email, m.role FROM organization_memberships m
                 JOIN users u ON u.id = m.user_id JOIN organizations o ON o.id = m.organization_id
                 WHERE o.slug = 'default' ORDER BY u.email",
            )
            .expect("prepare");
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let expected = vec![
        ("admin@example.com".to_owned(), "org_owner".to_owned()),
        ("staff@example.com".to_owned(), "org_member".to_owned()),
    ];
    assert_eq!(memberships(&conn), expected);

    // Re-running the migration's statements changes nothing.
    let v2 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/V2__default_organization_backfill.sql"),
    )
    .expect("V2 file");
    conn.execute_batch(&v2).expect("re-run");
    conn.execute_batch(&v2).expect("re-run again");
    assert_eq!(memberships(&conn), expected);
    let organizations: i64 = conn.query_row("SELECT count(*) FROM organizations", [], |row| row.get(0)).expect("count");
    assert_eq!(organizations, 1);
    let (fk_violations, id): (i64, String) = (
        conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| row.get(0)).expect("fk check"),
        conn.query_row("SELECT id FROM organizations", [], |row| row.get(0)).expect("id"),
    );
    assert_eq!(fk_violations, 0);
    assert!(Uuid::parse_str(&id).is_ok_and(|uuid| uuid.get_version_num() == 4), "{id} is a canonical UUID");
}
