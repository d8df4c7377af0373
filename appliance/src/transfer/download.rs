//! Downloads from a session's `ToClient` folder to one viewer socket.
//!
//! The gateway sends chunks while fewer than [`WINDOW_CHUNKS`] are
//! unacknowledged, so a slow client holds at most a megabyte in flight per
//! download instead of the whole file in the appliance's send buffers.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::upload::hex;
use super::{MAX_CHUNK_BYTES, MAX_FILE_BYTES, Refusal, TO_CLIENT_DIR, safe_file_name};

/// Downloads one socket may run at once.
pub const MAX_DOWNLOADS_AT_ONCE: usize = 2;
/// Chunks sent ahead of the client's acknowledgements.
pub const WINDOW_CHUNKS: u64 = 4;

struct Download {
    file: tokio::fs::File,
    size: u64,
    sent: u64,
    acked: u64,
    hasher: Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    /// More to send (possibly nothing yet).
    Continue,
    Completed {
        size: u64,
        sha256: String,
    },
}

/// The downloads of one socket.
#[derive(Default)]
pub struct Downloads {
    active: HashMap<Uuid, Download>,
}

impl Downloads {
    /// Opens `ToClient/<file_name>` in `dir`; returns its size.
    pub async fn start(&mut self, dir: &Path, transfer_id: Uuid, file_name: &str) -> Result<u64, Refusal> {
        safe_file_name(file_name)?;
        if self.active.contains_key(&transfer_id) {
            return Err(Refusal::DuplicateTransfer);
        }
        if self.active.len() >= MAX_DOWNLOADS_AT_ONCE {
            return Err(Refusal::TooManyTransfers);
        }
        let path = dir.join(TO_CLIENT_DIR).join(file_name);
        let (file, size) = tokio::task::spawn_blocking(move || {
            // No symbolic links out of the folder, and a FIFO the remote
            // side planted cannot hang the open.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
                .map_err(|_| Refusal::FileNotFound)?;
            let metadata = file.metadata().map_err(|_| Refusal::FileNotFound)?;
            if !metadata.file_type().is_file() {
                return Err(Refusal::FileNotFound);
            }
            Ok((file, metadata.len()))
        })
        .await
        .map_err(|_| Refusal::StorageFailed)??;
        if size > MAX_FILE_BYTES {
            return Err(Refusal::FileTooLarge);
        }
        let download =
            Download { file: tokio::fs::File::from_std(file), size, sent: 0, acked: 0, hasher: Sha256::new() };
        self.active.insert(transfer_id, download);
        Ok(size)
    }

    /// The chunks the window allows now.
    pub async fn next_chunks(&mut self, transfer_id: Uuid) -> Result<Vec<Chunk>, Refusal> {
        let download = self.active.get_mut(&transfer_id).ok_or(Refusal::UnknownTransfer)?;
        let mut chunks = Vec::new();
        while download.sent < download.size && download.sent - download.acked < WINDOW_CHUNKS * MAX_CHUNK_BYTES as u64 {
            let length = (download.size - download.sent).min(MAX_CHUNK_BYTES as u64) as usize;
            let mut data = vec![0; length];
            if let Err(error) = download.file.read_exact(&mut data).await {
                // The file shrank or vanished under the remote user's hands.
                tracing::info!(%transfer_id, %error, "Download source changed");
                self.active.remove(&transfer_id);
                return Err(Refusal::StorageFailed);
            }
            download.hasher.update(&data);
            chunks.push(Chunk { offset: download.sent, data });
            download.sent += length as u64;
        }
        Ok(chunks)
    }

    /// The client has `received` bytes of the file.
    pub fn ack(&mut self, transfer_id: Uuid, received: u64) -> Result<Acked, Refusal> {
        let download = self.active.get_mut(&transfer_id).ok_or(Refusal::UnknownTransfer)?;
        if received < download.acked || received > download.sent {
            return Err(Refusal::UnexpectedOffset);
        }
        download.acked = received;
        if received < download.size {
            return Ok(Acked::Continue);
        }
        let Some(done) = self.active.remove(&transfer_id) else { return Err(Refusal::UnknownTransfer) };
        Ok(Acked::Completed { size: done.size, sha256: hex(&done.hasher.finalize()) })
    }

    pub fn cancel(&mut self, transfer_id: Uuid) -> bool {
        self.active.remove(&transfer_id).is_some()
    }

    pub fn cancel_all(&mut self) -> Vec<Uuid> {
        self.active.drain().map(|(transfer_id, _)| transfer_id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rap_storage::SessionId;

    #[tokio::test]
    async fn a_file_arrives_in_windows_of_chunks_paced_by_acks() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = super::super::TransferDirs::new(temp.path().to_path_buf())
            .prepare(SessionId::generate())
            .expect("session folder");
        let content: Vec<u8> = (0..(WINDOW_CHUNKS as usize * MAX_CHUNK_BYTES + 1000)).map(|i| i as u8).collect();
        std::fs::write(dir.join(TO_CLIENT_DIR).join("data.bin"), &content).expect("write");
        let mut downloads = Downloads::default();
        let id = Uuid::new_v4();
        assert_eq!(downloads.start(&dir, id, "data.bin").await, Ok(content.len() as u64));
        let first = downloads.next_chunks(id).await.expect("chunks");
        assert_eq!(first.len() as u64, WINDOW_CHUNKS, "a full window, then nothing until an ack");
        assert!(downloads.next_chunks(id).await.expect("chunks").is_empty());
        assert_eq!(downloads.ack(id, WINDOW_CHUNKS * MAX_CHUNK_BYTES as u64 + 1), Err(Refusal::UnexpectedOffset));
        assert_eq!(downloads.ack(id, MAX_CHUNK_BYTES as u64), Ok(Acked::Continue));
        let rest = downloads.next_chunks(id).await.expect("chunks");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].data.len(), 1000);
        let mut received: Vec<u8> = Vec::new();
        for chunk in first.iter().chain(&rest) {
            assert_eq!(chunk.offset, received.len() as u64);
            received.extend_from_slice(&chunk.data);
        }
        assert_eq!(received, content);
        let Ok(Acked::Completed { size, sha256 }) = downloads.ack(id, content.len() as u64) else { panic!() };
        assert_eq!(size, content.len() as u64);
        assert_eq!(sha256, hex(&Sha256::digest(&content)));
        assert_eq!(downloads.ack(id, 0), Err(Refusal::UnknownTransfer));
    }

    #[tokio::test]
    async fn only_regular_files_inside_to_client_are_served() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = super::super::TransferDirs::new(temp.path().to_path_buf())
            .prepare(SessionId::generate())
            .expect("session folder");
        std::fs::write(dir.join("upload-root.txt"), b"not offered").expect("write");
        std::os::unix::fs::symlink("/etc/hostname", dir.join(TO_CLIENT_DIR).join("link.txt")).expect("symlink");
        let made =
            std::process::Command::new("mkfifo").arg(dir.join(TO_CLIENT_DIR).join("pipe")).status().expect("mkfifo");
        assert!(made.success());
        let mut downloads = Downloads::default();
        for name in ["upload-root.txt", "link.txt", "pipe", "../upload-root.txt", "missing.txt"] {
            let refused = downloads.start(&dir, Uuid::new_v4(), name).await.expect_err("refused");
            assert!(matches!(refused, Refusal::FileNotFound | Refusal::UnsafeFileName), "{name}: {refused:?}");
        }
    }
}
