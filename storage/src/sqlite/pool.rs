//! The threads that own SQLite connections.
//!
//! SQLite allows one writer at a time. Instead of letting many connections
//! race for the write lock (and fail with "database is locked"), every write
//! goes through one writer thread, in arrival order; reads go to a small pool
//! of reader threads that WAL mode lets run beside the writer. Async callers
//! hand a closure to a thread and await its answer on a oneshot channel, so
//! the runtime never blocks on disk.
//!
//! Each thread opens its connection lazily and reopens it after a failure: a
//! database that cannot be opened at start-up makes calls fail with
//! [`StorageError::Unavailable`] (and `/readyz` say 503) instead of killing
//! the process, and the appliance recovers by itself once the file is usable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::repo::StorageError;

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// How long a connection waits for a lock held by another process (the
/// `migrate` command, a backup tool) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Jobs waiting for a thread; callers wait (asynchronously) beyond this.
const QUEUE_DEPTH: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
}

/// A thread's connection, opened on first use.
struct Slot {
    role: Role,
    path: PathBuf,
    migrated: Arc<AtomicBool>,
    conn: Option<Connection>,
}

impl Slot {
    fn connection(&mut self) -> Result<&mut Connection, StorageError> {
        if self.role == Role::Reader && !self.migrated.load(Ordering::Acquire) {
            // A reader must not see a half-created schema.
            return Err(StorageError::Unavailable("database not migrated yet".into()));
        }
        if self.conn.is_none() {
            let conn = open(&self.path, self.role)?;
            if self.role == Role::Writer && !self.migrated.load(Ordering::Acquire) {
                let mut conn = conn;
                super::migrations::apply(&mut conn)?;
                self.migrated.store(true, Ordering::Release);
                self.conn = Some(conn);
            } else {
                self.conn = Some(conn);
            }
        }
        self.conn.as_mut().ok_or_else(|| StorageError::Unavailable("connection not open".into()))
    }

    fn forget_connection_after(&mut self, error: &StorageError) {
        if matches!(error, StorageError::Unavailable(_)) {
            self.conn = None;
        }
    }
}

/// The database and its WAL hold everything (password hashes, sealed
/// secrets, the audit log): readable by the appliance's user alone,
/// whatever the umask. SQLite gives the `-wal` and `-shm` files it creates
/// the database file's mode, so the file is made (or tightened) first.
#[cfg(unix)]
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    let mut sidecars = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        sidecars.push(PathBuf::from(name));
    }
    for file in sidecars {
        match std::fs::metadata(&file) {
            Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn open(path: &Path, role: Role) -> Result<Connection, StorageError> {
    if role == Role::Writer {
        make_private(path).map_err(|error| StorageError::Unavailable(format!("{}: {error}", path.display())))?;
    }
    let flags = match role {
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        // WAL readers still write the shared-memory index, hence READ_WRITE;
        // `query_only` below keeps them from changing data.
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_WRITE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(unavailable)?;
    if role == Role::Reader {
        conn.execute_batch("PRAGMA query_only = ON;").map_err(unavailable)?;
    }
    Ok(conn)
}

fn unavailable(error: rusqlite::Error) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

/// What an audited change decided; see [`Pool::audited`].
pub(crate) enum Write<R> {
    Commit(R),
    Abort(R),
}

/// The connection threads of one SQLite file.
pub(crate) struct Pool {
    writer: async_channel::Sender<Job>,
    readers: async_channel::Sender<Job>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    migrated: Arc<AtomicBool>,
}

impl Pool {
    pub(crate) fn start(path: PathBuf, reader_count: usize) -> Result<Self, StorageError> {
        let migrated = Arc::new(AtomicBool::new(false));
        let (writer, writer_jobs) = async_channel::bounded(QUEUE_DEPTH);
        let (readers, reader_jobs) = async_channel::bounded(QUEUE_DEPTH);
        let mut threads = Vec::with_capacity(reader_count + 1);
        threads.push(spawn(
            "sqlite-writer".into(),
            Slot { role: Role::Writer, path: path.clone(), migrated: migrated.clone(), conn: None },
            writer_jobs,
        )?);
        for index in 0..reader_count.max(1) {
            threads.push(spawn(
                format!("sqlite-reader-{index}"),
                Slot { role: Role::Reader, path: path.clone(), migrated: migrated.clone(), conn: None },
                reader_jobs.clone(),
            )?);
        }
        Ok(Self { writer, readers, threads: std::sync::Mutex::new(threads), migrated })
    }

    pub(crate) fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    pub(crate) async fn write<R, F>(&self, job: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
    {
        submit(&self.writer, job).await
    }

    /// The shape of every audited change: `job` runs in one transaction on
    /// the writer; if it says [`Write::Commit`], `audit` (as `job` may have
    /// completed it) is written beside the change and both commit together;
    /// [`Write::Abort`] rolls back whatever `job` did and writes no audit (a
    /// conditional update that matched nothing, a rule the change broke).
    pub(crate) async fn audited<R, F>(&self, audit: crate::repo::AuditEvent, job: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, &mut crate::repo::AuditEvent) -> Result<Write<R>, StorageError>
            + Send
            + 'static,
    {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(super::backend)?;
            let mut audit = audit;
            match job(&tx, &mut audit)? {
                Write::Commit(result) => {
                    super::insert_audit(&tx, &audit)?;
                    tx.commit().map_err(super::backend)?;
                    Ok(result)
                }
                // Dropping the transaction rolls it back.
                Write::Abort(result) => Ok(result),
            }
        })
        .await
    }

    pub(crate) async fn read<R, F>(&self, job: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
    {
        submit(&self.readers, job).await
    }

    /// Stops taking jobs, lets queued ones finish, checkpoints the WAL into
    /// the main file and joins the threads.
    pub(crate) async fn close(&self) {
        self.writer.close();
        self.readers.close();
        let threads = match self.threads.lock() {
            Ok(mut threads) => std::mem::take(&mut *threads),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        if let Err(error) = joined {
            tracing::warn!(%error, "SQLite threads did not stop cleanly");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Threads exit once their queue is closed and drained; nobody waits.
        self.writer.close();
        self.readers.close();
    }
}

async fn submit<R, F>(queue: &async_channel::Sender<Job>, job: F) -> Result<R, StorageError>
where
    R: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move |slot: &mut Slot| {
        let outcome = match slot.connection() {
            Ok(conn) => job(conn),
            Err(error) => Err(error),
        };
        if let Err(error) = &outcome {
            slot.forget_connection_after(error);
        }
        let _ = reply.send(outcome);
    });
    queue.send(job).await.map_err(|_| StorageError::Closed)?;
    // A job that panicked drops `reply`: the caller gets an error, the thread
    // lives on for the next job.
    answer.await.map_err(|_| StorageError::Backend("storage job panicked".into()))?
}

fn spawn(name: String, mut slot: Slot, jobs: async_channel::Receiver<Job>) -> Result<JoinHandle<()>, StorageError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            while let Ok(job) = jobs.recv_blocking() {
                if catch_unwind(AssertUnwindSafe(|| job(&mut slot))).is_err() {
                    tracing::error!(thread = ?std::thread::current().name(), "Storage job panicked");
                    slot.conn = None;
                }
            }
            if let Some(conn) = slot.conn.take() {
                if slot.role == Role::Writer
                    && let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                {
                    tracing::warn!(%error, "WAL checkpoint at shutdown failed");
                }
                if let Err((_, error)) = conn.close() {
                    tracing::warn!(%error, "Closing SQLite connection failed");
                }
            }
        })
        .map_err(|error| StorageError::Backend(format!("cannot start storage thread: {error}")))
}
