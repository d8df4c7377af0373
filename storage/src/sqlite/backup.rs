//! An online backup of the database: one consistent copy taken while the
//! appliance keeps serving, readers and the writer undisturbed (SQLite's
//! `VACUUM INTO` reads one snapshot of the WAL database and writes it out
//! compacted).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long the copy waits for a lock the writer holds (a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Copies the database at `database` to `out`, which must not exist. The
/// copy is private to its owner from its first byte (it holds password
/// hashes and encrypted secrets), checked for integrity, and appears
/// under its name only once whole. Returns its size in bytes.
pub fn backup(database: &Path, out: &Path) -> anyhow::Result<u64> {
    anyhow::ensure!(database.is_file(), "no database at {}", database.display());
    anyhow::ensure!(!out.exists(), "{} exists already; a backup never overwrites", out.display());
    let partial = partial_path(out);
    let _ = std::fs::remove_file(&partial); // what an interrupted backup left
    let outcome = copy(database, &partial);
    match outcome.and_then(|()| verified(&partial)) {
        Ok(size) => {
            std::fs::rename(&partial, out)?;
            Ok(size)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

fn copy(database: &Path, partial: &Path) -> anyhow::Result<()> {
    // Created empty and private first: VACUUM INTO writes into an empty file.
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(partial)?;
    let source =
        Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    source.busy_timeout(BUSY_TIMEOUT)?;
    let target = partial.to_str().ok_or_else(|| anyhow::anyhow!("the backup path is not UTF-8"))?;
    source.execute("VACUUM INTO ?1", [target])?;
    Ok(())
}

fn verified(partial: &Path) -> anyhow::Result<u64> {
    let copy = Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = copy.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    anyhow::ensure!(verdict == "ok", "the copy failed its integrity check: {verdict}");
    drop(copy);
    Ok(std::fs::metadata(partial)?.len())
}
