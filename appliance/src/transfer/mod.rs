//! File transfer: one directory per running session under
//! `<data_dir>/transfers`, shown to the remote desktop as the redirected
//! drive `RAPXfer` (RDP drive redirection). Uploads land in its root;
//! files the remote user puts into its `ToClient` folder can be downloaded.
//!
//! Nothing here checks policy or who is asking: the gateway does, before it
//! calls in. What this module guarantees is that names cannot escape the
//! directory, sizes stay inside the limits, and a half-written upload never
//! shows under its final name.

pub mod download;
pub mod upload;

use rap_storage::SessionId;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;
use uuid::Uuid;

/// The name the remote desktop sees the session's directory under. Seven
/// characters: hosts that use the DOS name (xrdp) show it whole, as
/// Windows does (`\\tsclient\RAPXfer`); the seed's `RAP_Transfers` was cut
/// to `RAP_Tra` there.
pub const DRIVE_NAME: &str = "RAPXfer";
/// The drop zone inside the drive whose files may be downloaded.
pub const TO_CLIENT_DIR: &str = "ToClient";
/// Largest file either way (API.md).
pub const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// Largest chunk either way (API.md).
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;
/// Everything a session's directory may hold, so neither a client (one
/// 25 MiB file at a time) nor the remote desktop (writing to the drive)
/// can fill the appliance's disk.
pub const SESSION_QUOTA_BYTES: u64 = 10 * MAX_FILE_BYTES;
/// Files listed for download at most; more are left out of the list.
pub const MAX_LISTED_FILES: usize = 200;
/// Where uploads are written until complete: beside the session folders,
/// on the same filesystem (so a finished one is hard-linked in), but not
/// on the remote desktop's drive, where the remote side could read or
/// change a file before it is whole.
const PARTS_DIR: &str = ".parts";

/// Where sessions' transfer directories live.
#[derive(Debug, Clone)]
pub struct TransferDirs {
    root: PathBuf,
}

impl TransferDirs {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The session's directory (it exists only while the session runs with
    /// a file transfer policy other than `disabled`).
    pub fn dir(&self, session_id: SessionId) -> PathBuf {
        self.root.join(session_id.to_string())
    }

    /// Creates the session's directory and its `ToClient` drop zone, private
    /// to the appliance's user. Blocking: call from the blocking pool.
    pub fn prepare(&self, session_id: SessionId) -> io::Result<PathBuf> {
        let dir = self.dir(session_id);
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder.create(dir.join(TO_CLIENT_DIR))?;
        Ok(dir)
    }

    /// Deletes the session's directory with everything in it. Blocking.
    pub fn remove(&self, session_id: SessionId) {
        let dir = self.dir(session_id);
        if let Err(error) = fs::remove_dir_all(&dir)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(%session_id, %error, "Transfer directory not removed");
        }
    }

    /// Removes what earlier runs left: no session survives a restart, so
    /// every directory here is stale, and so is every part file. Blocking.
    pub fn sweep(&self) -> io::Result<usize> {
        match fs::remove_dir_all(self.root.join(PARTS_DIR)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|name| Uuid::parse_str(name).is_ok()) {
                fs::remove_dir_all(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Why a transfer was refused; the code travels in `file_*.blocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnsafeFileName,
    FileTooLarge,
    ChunkTooLarge,
    QuotaExceeded,
    NameTaken,
    UnknownTransfer,
    DuplicateTransfer,
    TooManyTransfers,
    UnexpectedOffset,
    SizeMismatch,
    FileNotFound,
    StorageFailed,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::UnsafeFileName => "unsafe_file_name",
            Self::FileTooLarge => "file_too_large",
            Self::ChunkTooLarge => "chunk_too_large",
            Self::QuotaExceeded => "quota_exceeded",
            Self::NameTaken => "name_taken",
            Self::UnknownTransfer => "unknown_transfer",
            Self::DuplicateTransfer => "duplicate_transfer",
            Self::TooManyTransfers => "too_many_transfers",
            Self::UnexpectedOffset => "unexpected_offset",
            Self::SizeMismatch => "size_mismatch",
            Self::FileNotFound => "file_not_found",
            Self::StorageFailed => "storage_failed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::UnsafeFileName => "That file name is not allowed.",
            Self::FileTooLarge => "The file is larger than 25 MiB.",
            Self::ChunkTooLarge => "A chunk may carry at most 256 KiB.",
            Self::QuotaExceeded => "The session's transfer folder is full.",
            Self::NameTaken => "Too many files with that name already exist.",
            Self::UnknownTransfer => "No such transfer is in progress.",
            Self::DuplicateTransfer => "A transfer with that id is already in progress.",
            Self::TooManyTransfers => "Too many transfers are in progress at once.",
            Self::UnexpectedOffset => "The chunk does not continue the file where it left off.",
            Self::SizeMismatch => "The data does not match the announced size.",
            Self::FileNotFound => "The file is not in the ToClient folder.",
            Self::StorageFailed => "The appliance could not store or read the file.",
        }
    }
}

/// Checks a client-supplied file name: one plain component that Windows on
/// the remote side can also hold. No normalising: a name is taken as it is
/// or refused, so what the user sees is what lands.
pub fn safe_file_name(name: &str) -> Result<&str, Refusal> {
    const WINDOWS_RESERVED: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*'];
    const DEVICE_NAMES: &[&str] = &["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.ends_with(['.', ' '])
        && !name.chars().any(|c| c.is_control() || is_invisible_format(c) || WINDOWS_RESERVED.contains(&c));
    if !valid {
        return Err(Refusal::UnsafeFileName);
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_uppercase();
    let numbered_device = |prefix: &str| {
        stem.strip_prefix(prefix).is_some_and(|rest| {
            rest.chars().count() == 1 && rest.chars().all(|c| c.is_ascii_digit() || "¹²³".contains(c))
        })
    };
    if DEVICE_NAMES.contains(&stem.as_str()) || numbered_device("COM") || numbered_device("LPT") {
        return Err(Refusal::UnsafeFileName);
    }
    Ok(name)
}

/// Unicode format characters that change how a name reads without being
/// seen (right-to-left overrides can disguise `exe` as `pdf`).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// A finished transfer, as the audit log records it: never the contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub transfer_id: String,
    /// The name it was saved under (uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// A file offered for download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offered {
    pub file_name: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified_at: i64,
}

/// The downloadable files in the session's `ToClient` folder, by name:
/// regular files with safe names only (never symbolic links). Blocking.
pub fn offered(dir: &Path) -> Vec<Offered> {
    let Ok(entries) = fs::read_dir(dir.join(TO_CLIENT_DIR)) else { return Vec::new() };
    // The remote side decides how many entries there are: look at a
    // bounded number of them.
    let mut files: Vec<Offered> = entries
        .take(MAX_LISTED_FILES * 5)
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name().into_string().ok()?;
            safe_file_name(&file_name).ok()?;
            let metadata = entry.metadata().ok()?;
            if !metadata.file_type().is_file() {
                return None;
            }
            let modified_at = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .map_or(metadata.mtime(), |since| since.as_secs() as i64);
            Some(Offered { file_name, size: metadata.len(), modified_at })
        })
        .collect();
    files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    files.truncate(MAX_LISTED_FILES);
    files
}

/// Bytes the session's directory holds (apparent sizes). Blocking.
pub(crate) fn used_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        let Ok(entries) = fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .filter_map(|entry| {
                let metadata = fs::symlink_metadata(entry.path()).ok()?;
                Some(if metadata.is_dir() && depth < 8 { walk(&entry.path(), depth + 1) } else { metadata.len() })
            })
            .sum()
    }
    walk(dir, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for name in ["report.pdf", "Quarterly report (final).xlsx", "naïve café.txt", "a", "x.tar.gz", "COM10.txt"] {
            assert_eq!(safe_file_name(name), Ok(name), "{name}");
        }
    }

    #[test]
    fn path_tricks_and_windows_traps_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "C:evil",
            ".hidden",
            ".rap-upload-x",
            "trailing.",
            "trailing ",
            "invoice\u{202e}fdp.exe",
            "zero\u{200b}width.txt",
            "nul\0byte",
            "line\nbreak",
            "CON",
            "con.txt",
            "LPT1",
            "com3.log",
            "what?.txt",
            "star*.txt",
        ] {
            assert_eq!(safe_file_name(name), Err(Refusal::UnsafeFileName), "{name:?}");
        }
        assert_eq!(safe_file_name(&"x".repeat(256)), Err(Refusal::UnsafeFileName));
    }

    #[test]
    fn directories_are_private_and_swept() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dirs = TransferDirs::new(temp.path().join("transfers"));
        let session_id = SessionId::generate();
        let dir = dirs.prepare(session_id).expect("session folder");
        assert!(dir.join(TO_CLIENT_DIR).is_dir());
        assert_eq!(fs::metadata(&dir).expect("metadata").mode() & 0o777, 0o700);
        fs::write(dir.join("left.txt"), b"x").expect("write");
        fs::create_dir(temp.path().join("transfers").join("not-a-session")).expect("mkdir");
        assert_eq!(dirs.sweep().expect("sweep"), 1);
        assert!(!dir.exists());
        assert!(temp.path().join("transfers").join("not-a-session").exists());
    }

    #[test]
    fn only_regular_files_with_safe_names_are_offered() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dirs = TransferDirs::new(temp.path().to_path_buf());
        let dir = dirs.prepare(SessionId::generate()).expect("session folder");
        let to_client = dir.join(TO_CLIENT_DIR);
        fs::write(to_client.join("b.txt"), b"hello").expect("write");
        fs::write(to_client.join("a.csv"), b"1,2").expect("write");
        fs::write(to_client.join(".hidden"), b"x").expect("write");
        fs::create_dir(to_client.join("folder")).expect("mkdir");
        std::os::unix::fs::symlink("/etc/passwd", to_client.join("passwd")).expect("symlink");
        let names: Vec<_> = offered(&dir).into_iter().map(|file| (file.file_name, file.size)).collect();
        assert_eq!(names, vec![("a.csv".to_string(), 3), ("b.txt".to_string(), 5)]);
        assert_eq!(
            used_bytes(&dir),
            5 + 3 + 1 + fs::symlink_metadata(to_client.join("passwd")).expect("metadata").len()
        );
    }
}
