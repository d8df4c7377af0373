//! Uploads from one viewer socket into its session's transfer directory.
//!
//! Chunks must arrive in order (`offset` = bytes received so far); a chunk
//! that does not fit is refused and the upload waits for the right one, so
//! a client's mistake never costs what already arrived. The bytes go to a
//! hidden part file; only a complete upload gets its name, by a hard link
//! that never replaces an existing file.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::{MAX_CHUNK_BYTES, MAX_FILE_BYTES, PARTS_DIR, Refusal, SESSION_QUOTA_BYTES, safe_file_name, used_bytes};

/// Uploads one socket may run at once.
pub const MAX_UPLOADS_AT_ONCE: usize = 4;

struct Upload {
    file: tokio::fs::File,
    part: PathBuf,
    dir: PathBuf,
    file_name: String,
    size: u64,
    received: u64,
    hasher: Sha256,
}

/// What a chunk (or an empty file's start) led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Received {
        received: u64,
        size: u64,
    },
    /// The file is in place under `file_name` (which may carry a ` (n)`
    /// suffix when the name was taken).
    Completed {
        file_name: String,
        size: u64,
        sha256: String,
    },
}

/// The uploads of one socket; dropping it deletes unfinished part files.
#[derive(Default)]
pub struct Uploads {
    active: HashMap<Uuid, Upload>,
}

impl Uploads {
    pub fn received(&self, transfer_id: Uuid) -> Option<u64> {
        self.active.get(&transfer_id).map(|upload| upload.received)
    }

    /// Opens an upload of `size` bytes named `file_name` into `dir`.
    pub async fn start(&mut self, dir: &Path, transfer_id: Uuid, file_name: &str, size: u64) -> Result<Step, Refusal> {
        let file_name = safe_file_name(file_name)?.to_owned();
        if size > MAX_FILE_BYTES {
            return Err(Refusal::FileTooLarge);
        }
        if self.active.contains_key(&transfer_id) {
            return Err(Refusal::DuplicateTransfer);
        }
        if self.active.len() >= MAX_UPLOADS_AT_ONCE {
            return Err(Refusal::TooManyTransfers);
        }
        let promised: u64 = self.active.values().map(|upload| upload.size - upload.received).sum();
        let parts = dir.parent().unwrap_or(dir).join(PARTS_DIR);
        let session = dir.file_name().and_then(|name| name.to_str()).unwrap_or("session");
        let part = parts.join(format!("{session}-{transfer_id}"));
        let (opened_dir, opened_part) = (dir.to_path_buf(), part.clone());
        let file = tokio::task::spawn_blocking(move || {
            if used_bytes(&opened_dir) + promised + size > SESSION_QUOTA_BYTES {
                return Err(Refusal::QuotaExceeded);
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&parts)
                .map_err(|error| storage_failed("parts", &error))?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&opened_part)
                .map_err(|error| storage_failed("open", &error))
        })
        .await
        .map_err(|_| Refusal::StorageFailed)??;
        let upload = Upload {
            file: tokio::fs::File::from_std(file),
            part,
            dir: dir.to_path_buf(),
            file_name,
            size,
            received: 0,
            hasher: Sha256::new(),
        };
        self.active.insert(transfer_id, upload);
        if size == 0 {
            return self.finish(transfer_id).await;
        }
        Ok(Step::Received { received: 0, size })
    }

    /// Appends one chunk.
    pub async fn chunk(&mut self, transfer_id: Uuid, offset: u64, data: &[u8]) -> Result<Step, Refusal> {
        if data.len() > MAX_CHUNK_BYTES {
            return Err(Refusal::ChunkTooLarge);
        }
        let upload = self.active.get_mut(&transfer_id).ok_or(Refusal::UnknownTransfer)?;
        if offset != upload.received {
            return Err(Refusal::UnexpectedOffset);
        }
        if upload.received + data.len() as u64 > upload.size {
            return Err(Refusal::SizeMismatch);
        }
        if let Err(error) = upload.file.write_all(data).await {
            let refusal = storage_failed("write", &error);
            self.abandon(transfer_id);
            return Err(refusal);
        }
        upload.hasher.update(data);
        upload.received += data.len() as u64;
        if upload.received == upload.size {
            return self.finish(transfer_id).await;
        }
        Ok(Step::Received { received: upload.received, size: upload.size })
    }

    /// Drops every upload and its part file; their ids.
    pub fn abandon_all(&mut self) -> Vec<Uuid> {
        let (ids, parts) = self.active.drain().map(|(id, upload)| (id, upload.part)).unzip();
        remove_in_background(parts);
        ids
    }

    /// Drops an upload and its part file.
    pub fn abandon(&mut self, transfer_id: Uuid) -> bool {
        let Some(upload) = self.active.remove(&transfer_id) else { return false };
        remove_in_background(vec![upload.part]);
        true
    }

    async fn finish(&mut self, transfer_id: Uuid) -> Result<Step, Refusal> {
        let Some(mut upload) = self.active.remove(&transfer_id) else { return Err(Refusal::UnknownTransfer) };
        let synced = async {
            upload.file.flush().await?;
            upload.file.sync_all().await
        }
        .await;
        if let Err(error) = synced {
            remove_in_background(vec![upload.part]);
            return Err(storage_failed("sync", &error));
        }
        let sha256 = hex(&upload.hasher.finalize());
        let (part, dir, wanted, size) = (upload.part, upload.dir, upload.file_name, upload.size);
        let placed = tokio::task::spawn_blocking(move || {
            let placed = place(&part, &dir, &wanted);
            let _ = std::fs::remove_file(&part);
            placed
        })
        .await
        .map_err(|_| Refusal::StorageFailed)??;
        Ok(Step::Completed { file_name: placed, size, sha256 })
    }
}

impl Drop for Uploads {
    fn drop(&mut self) {
        self.abandon_all();
    }
}

/// Links the finished part under `wanted`, or `stem (n).ext` when taken.
/// Taken means in any letter case: Windows on the remote side could not
/// tell `Report.txt` from `report.txt`.
fn place(part: &Path, dir: &Path, wanted: &str) -> Result<String, Refusal> {
    let (stem, extension) = match wanted.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, format!(".{extension}")),
        _ => (wanted, String::new()),
    };
    let existing: std::collections::HashSet<String> = std::fs::read_dir(dir)
        .map_err(|error| storage_failed("list", &error))?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .map(|name| name.to_lowercase())
        .collect();
    for attempt in 0..100 {
        let name = if attempt == 0 { wanted.to_owned() } else { format!("{stem} ({attempt}){extension}") };
        if safe_file_name(&name).is_err() {
            break;
        }
        if existing.contains(&name.to_lowercase()) {
            continue;
        }
        match std::fs::hard_link(part, dir.join(&name)) {
            Ok(()) => return Ok(name),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(storage_failed("link", &error)),
        }
    }
    Err(Refusal::NameTaken)
}

fn storage_failed(step: &'static str, error: &io::Error) -> Refusal {
    tracing::warn!(step, %error, "File transfer storage error");
    Refusal::StorageFailed
}

fn remove_in_background(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let remove = move || {
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    };
    // Unlinking is quick, but still a syscall the async workers should not
    // make; without a runtime (tests, shutdown) it runs here.
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(remove)),
        Err(_) => remove(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rap_storage::SessionId;

    fn dir() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = super::super::TransferDirs::new(temp.path().to_path_buf())
            .prepare(SessionId::generate())
            .expect("session folder");
        (temp, dir)
    }

    #[tokio::test]
    async fn chunks_in_order_become_the_file_under_its_name() {
        let (_temp, dir) = dir();
        let mut uploads = Uploads::default();
        let id = Uuid::new_v4();
        assert_eq!(uploads.start(&dir, id, "notes.txt", 11).await, Ok(Step::Received { received: 0, size: 11 }));
        assert_eq!(uploads.chunk(id, 0, b"hello ").await, Ok(Step::Received { received: 6, size: 11 }));
        assert!(!dir.join("notes.txt").exists(), "a partial upload never shows under its name");
        // A wrong offset is refused without losing what arrived.
        assert_eq!(uploads.chunk(id, 3, b"world").await, Err(Refusal::UnexpectedOffset));
        assert_eq!(uploads.chunk(id, 6, b"world!").await, Err(Refusal::SizeMismatch));
        let done = uploads.chunk(id, 6, b"world").await.expect("chunk");
        let Step::Completed { file_name, size, sha256 } = done else { panic!("{done:?}") };
        assert_eq!((file_name.as_str(), size), ("notes.txt", 11));
        assert_eq!(sha256, hex(&Sha256::digest(b"hello world")));
        assert_eq!(std::fs::read(dir.join("notes.txt")).expect("read"), b"hello world");
        let leftovers: Vec<_> =
            std::fs::read_dir(&dir).expect("read dir").flatten().map(|entry| entry.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "notes.txt and ToClient only: {leftovers:?}");
    }

    #[tokio::test]
    async fn a_taken_name_gets_a_number_and_nothing_is_replaced() {
        let (_temp, dir) = dir();
        std::fs::write(dir.join("a.txt"), b"old").expect("write");
        let mut uploads = Uploads::default();
        let id = Uuid::new_v4();
        uploads.start(&dir, id, "a.txt", 3).await.expect("started");
        let Ok(Step::Completed { file_name, .. }) = uploads.chunk(id, 0, b"new").await else { panic!() };
        assert_eq!(file_name, "a (1).txt");
        assert_eq!(std::fs::read(dir.join("a.txt")).expect("read"), b"old");
        let Ok(Step::Completed { file_name, .. }) = uploads.start(&dir, Uuid::new_v4(), "A.TXT", 0).await else {
            panic!()
        };
        assert_eq!(file_name, "A (2).TXT", "names differing only in case are taken too");
    }

    #[tokio::test]
    async fn limits_are_enforced_before_anything_is_written() {
        let (_temp, dir) = dir();
        let mut uploads = Uploads::default();
        assert_eq!(
            uploads.start(&dir, Uuid::new_v4(), "big.bin", MAX_FILE_BYTES + 1).await,
            Err(Refusal::FileTooLarge)
        );
        assert_eq!(uploads.start(&dir, Uuid::new_v4(), "../x", 1).await, Err(Refusal::UnsafeFileName));
        let id = Uuid::new_v4();
        uploads.start(&dir, id, "x.bin", 10).await.expect("started");
        assert_eq!(uploads.start(&dir, id, "y.bin", 10).await, Err(Refusal::DuplicateTransfer));
        assert_eq!(uploads.chunk(id, 0, &vec![0; MAX_CHUNK_BYTES + 1]).await, Err(Refusal::ChunkTooLarge));
        assert_eq!(uploads.chunk(Uuid::new_v4(), 0, b"x").await, Err(Refusal::UnknownTransfer));
        for _ in 1..MAX_UPLOADS_AT_ONCE {
            uploads.start(&dir, Uuid::new_v4(), "more.bin", MAX_FILE_BYTES).await.expect("started");
        }
        assert_eq!(uploads.start(&dir, Uuid::new_v4(), "one-more.bin", 1).await, Err(Refusal::TooManyTransfers));
        // Three promised 25 MiB files count against the quota before a
        // byte of them arrives.
        assert!(uploads.abandon(id));
        std::fs::File::create(dir.join("filler.bin")).expect("create").set_len(6 * MAX_FILE_BYTES + 1).expect("size");
        assert_eq!(uploads.start(&dir, Uuid::new_v4(), "z.bin", MAX_FILE_BYTES).await, Err(Refusal::QuotaExceeded));
        let mut other = Uploads::default();
        assert_eq!(
            other.start(&dir, Uuid::new_v4(), "z.bin", MAX_FILE_BYTES).await,
            Ok(Step::Received { received: 0, size: MAX_FILE_BYTES })
        );
        drop(other);
        drop(uploads);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let parts = std::fs::read_dir(dir.parent().expect("root").join(PARTS_DIR)).expect("read dir").count();
        assert_eq!(parts, 0, "dropping the uploads deletes their part files");
    }
}
