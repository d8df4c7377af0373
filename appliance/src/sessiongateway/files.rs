//! File transfer on a viewer socket (API.md "Live plane" 7): checks who is
//! asking and what the resource's policy allows, then moves bytes between
//! the socket and the session's transfer folder.
//!
//! Every refusal is a `file_upload.blocked` / `file_download.blocked`
//! message with a reason code; the socket stays open and an upload keeps
//! what already arrived.

use std::path::PathBuf;

use base64::Engine;
use serde_json::Value;
use uuid::Uuid;

use super::connection::Connection;
use super::envelope::{self, ClientMessage, FileBlocked, ServerMessage, details};
use super::socket::{Sink, send};
use crate::resource::flow::{self, Flow};
use crate::transfer::download::Acked;
use crate::transfer::upload::Step;
use crate::transfer::{self, Offered, Refusal};

/// Which way a request moves a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Upload,
    Download,
}

/// A refusal before any transfer state is touched.
struct Blocked {
    reason: &'static str,
    message: &'static str,
}

impl From<Refusal> for Blocked {
    fn from(refusal: Refusal) -> Self {
        Self { reason: refusal.code(), message: refusal.message() }
    }
}

fn parse_transfer_id(text: &str) -> Result<Uuid, Blocked> {
    Uuid::parse_str(text).map_err(|_| Blocked { reason: "invalid_transfer_id", message: "transfer_id must be a UUID." })
}

/// The socket's transfers and the download list it was last sent.
#[derive(Default)]
pub(super) struct FileTransfers {
    uploads: transfer::upload::Uploads,
    downloads: transfer::download::Downloads,
    offered: Option<Vec<Offered>>,
}

impl Connection {
    /// Whether this socket may move files `direction` now (the one rule:
    /// controller, active, policy); the session's transfer folder if so.
    async fn transfer_gate(&self, direction: Direction) -> Result<PathBuf, Blocked> {
        let flow = match direction {
            Direction::Upload => Flow::Upload,
            Direction::Download => Flow::Download,
        };
        match self.crossing(flow).await {
            Ok(()) => {}
            Err(flow::Refusal::NotController) => {
                return Err(Blocked { reason: "not_controller", message: "Only the controller can transfer files." });
            }
            Err(flow::Refusal::NotActive) => {
                return Err(Blocked { reason: "not_active", message: "Files move only while the session is active." });
            }
            Err(flow::Refusal::PolicyDenied) => {
                let message = match direction {
                    Direction::Upload => "This resource's policy does not allow uploading files.",
                    Direction::Download => "This resource's policy does not allow downloading files.",
                };
                return Err(Blocked { reason: "policy_denied", message });
            }
        }
        let dir = self.state.broker().transfer_dir(self.session_id());
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(Refusal::StorageFailed.into());
        }
        Ok(dir)
    }

    async fn send_blocked(&self, sink: &mut Sink, direction: Direction, transfer_id: &str, blocked: Blocked) -> bool {
        let payload = FileBlocked {
            transfer_id: None,
            reason: blocked.reason,
            received: (direction == Direction::Upload).then_some(None),
            error: None,
            field: None,
            error_reason: None,
        };
        self.send_blocked_with(sink, direction, transfer_id, blocked, payload).await
    }

    async fn send_blocked_with(
        &self,
        sink: &mut Sink,
        direction: Direction,
        transfer_id: &str,
        blocked: Blocked,
        payload: FileBlocked,
    ) -> bool {
        // A refused list request has no transfer: its id is null.
        let transfer_id = (!transfer_id.is_empty()).then(|| transfer_id.to_owned());
        let event = self.notice(blocked.reason, blocked.message, details::one("transfer_id", &transfer_id));
        let blocked = FileBlocked { transfer_id, reason: blocked.reason, ..payload };
        let message = match direction {
            Direction::Upload => ServerMessage::UploadBlocked { blocked, event },
            Direction::Download => ServerMessage::DownloadBlocked { blocked, event },
        };
        send(sink, message).await
    }

    /// Handles one file transfer message; `false` if the socket should close.
    pub(super) async fn on_file_message(&mut self, sink: &mut Sink, message: ClientMessage) -> bool {
        match message {
            ClientMessage::FileUploadStart(start) => {
                let result = async {
                    let transfer_id = parse_transfer_id(&start.transfer_id)?;
                    let dir = self.transfer_gate(Direction::Upload).await?;
                    Ok(self.files.uploads.start(&dir, transfer_id, &start.file_name, start.size).await?)
                }
                .await;
                self.upload_outcome(sink, &start.transfer_id, result).await
            }
            ClientMessage::FileUploadChunk(chunk) => {
                let result = async {
                    let transfer_id = parse_transfer_id(&chunk.transfer_id)?;
                    if let Err(blocked) = self.transfer_gate(Direction::Upload).await {
                        // The right to upload is gone: so is the upload.
                        self.files.uploads.abandon(transfer_id);
                        return Err(blocked);
                    }
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(chunk.data.as_bytes())
                        .map_err(|_| Blocked { reason: "invalid_chunk_data", message: "data must be base64." })?;
                    Ok(self.files.uploads.chunk(transfer_id, chunk.offset, &data).await?)
                }
                .await;
                self.upload_outcome(sink, &chunk.transfer_id, result).await
            }
            ClientMessage::FileUploadCancel(cancel) => {
                let cancelled = Uuid::parse_str(&cancel.transfer_id).is_ok_and(|id| self.files.uploads.abandon(id));
                send(sink, ServerMessage::UploadCancelled { transfer_id: cancel.transfer_id, cancelled }).await
            }
            ClientMessage::FileDownloadList => {
                self.files.offered = None;
                self.offer_downloads(sink, true).await
            }
            ClientMessage::FileDownloadStart(start) => {
                let result = async {
                    let transfer_id = parse_transfer_id(&start.transfer_id)?;
                    let dir = self.transfer_gate(Direction::Download).await?;
                    let size = self.files.downloads.start(&dir, transfer_id, &start.file_name).await?;
                    Ok((transfer_id, size))
                }
                .await;
                match result {
                    Ok((transfer_id, size)) => {
                        let started = ServerMessage::DownloadStarted {
                            transfer_id,
                            file_name: start.file_name,
                            size,
                            chunk_size: transfer::MAX_CHUNK_BYTES,
                        };
                        if !send(sink, started).await {
                            return false;
                        }
                        self.send_download_chunks(sink, transfer_id).await
                    }
                    Err(blocked) => self.send_blocked(sink, Direction::Download, &start.transfer_id, blocked).await,
                }
            }
            ClientMessage::FileDownloadAck(ack) => {
                let result = async {
                    let transfer_id = parse_transfer_id(&ack.transfer_id)?;
                    if let Err(blocked) = self.transfer_gate(Direction::Download).await {
                        self.files.downloads.cancel(transfer_id);
                        return Err(blocked);
                    }
                    Ok((transfer_id, self.files.downloads.ack(transfer_id, ack.offset)?))
                }
                .await;
                match result {
                    Ok((transfer_id, Acked::Continue)) => self.send_download_chunks(sink, transfer_id).await,
                    Ok((transfer_id, Acked::Completed { size, sha256 })) => {
                        let moved = transfer::Moved {
                            transfer_id: transfer_id.to_string(),
                            file_name: None,
                            size,
                            sha256: sha256.clone(),
                        };
                        self.state
                            .broker()
                            .audit_file_transfer(self.session_id(), self.grant.user_id, "file.downloaded", &moved)
                            .await;
                        send(sink, ServerMessage::DownloadCompleted { transfer_id, size, sha256 }).await
                    }
                    Err(blocked) => self.send_blocked(sink, Direction::Download, &ack.transfer_id, blocked).await,
                }
            }
            ClientMessage::FileDownloadCancel(cancel) => {
                let cancelled = Uuid::parse_str(&cancel.transfer_id).is_ok_and(|id| self.files.downloads.cancel(id));
                send(sink, ServerMessage::DownloadCancelled { transfer_id: cancel.transfer_id, cancelled }).await
            }
            _ => true,
        }
    }

    async fn upload_outcome(&mut self, sink: &mut Sink, transfer_id: &str, result: Result<Step, Blocked>) -> bool {
        match result {
            Ok(Step::Received { received, size }) => {
                send(sink, ServerMessage::UploadProgress { transfer_id: transfer_id.to_owned(), received, size }).await
            }
            Ok(Step::Completed { file_name, size, sha256 }) => {
                let moved = transfer::Moved {
                    transfer_id: transfer_id.to_owned(),
                    file_name: Some(file_name.clone()),
                    size,
                    sha256: sha256.clone(),
                };
                self.state
                    .broker()
                    .audit_file_transfer(self.session_id(), self.grant.user_id, "file.uploaded", &moved)
                    .await;
                tracing::info!(session_id = %self.session_id(), %transfer_id, size, "File uploaded");
                let completed =
                    ServerMessage::UploadCompleted { transfer_id: transfer_id.to_owned(), file_name, size, sha256 };
                send(sink, completed).await
            }
            Err(blocked) => {
                // Where the upload stands, so the client can resend from there.
                let received = Uuid::parse_str(transfer_id).ok().and_then(|id| self.files.uploads.received(id));
                let payload = FileBlocked {
                    transfer_id: None,
                    reason: blocked.reason,
                    received: Some(received),
                    error: None,
                    field: None,
                    error_reason: None,
                };
                self.send_blocked_with(sink, Direction::Upload, transfer_id, blocked, payload).await
            }
        }
    }

    async fn send_download_chunks(&mut self, sink: &mut Sink, transfer_id: Uuid) -> bool {
        match self.files.downloads.next_chunks(transfer_id).await {
            Ok(chunks) => {
                for chunk in chunks {
                    let message = ServerMessage::DownloadChunk { transfer_id, offset: chunk.offset, data: chunk.data };
                    if !send(sink, message).await {
                        return false;
                    }
                }
                true
            }
            Err(refusal) => {
                self.send_blocked(sink, Direction::Download, &transfer_id.to_string(), refusal.into()).await
            }
        }
    }

    /// A file transfer message that does not parse is refused like any other
    /// transfer request, with `*.blocked` (`invalid_request`) naming its
    /// transfer when it can; `None` for messages of other kinds.
    pub(super) async fn on_malformed_file_message(
        &self,
        sink: &mut Sink,
        text: &str,
        error: &envelope::EnvelopeError,
    ) -> Option<bool> {
        let kind = error.message_type.as_deref()?;
        let direction = if kind.starts_with("file_upload.") {
            Direction::Upload
        } else if kind.starts_with("file_download.") {
            Direction::Download
        } else {
            return None;
        };
        let value: Value = serde_json::from_str(text).ok()?;
        let transfer_id = value.pointer("/payload/transfer_id").and_then(Value::as_str).unwrap_or_default();
        let blocked = Blocked { reason: "invalid_request", message: "The file transfer request is malformed." };
        let payload = FileBlocked {
            transfer_id: None,
            reason: blocked.reason,
            received: (direction == Direction::Upload).then_some(None),
            error: Some(error.words.clone()),
            field: Some(error.field.clone()),
            error_reason: Some(error.reason),
        };
        Some(self.send_blocked_with(sink, direction, transfer_id, blocked, payload).await)
    }

    /// Sends `file_download.available` when the `ToClient` folder's list
    /// changed since this socket last heard (or when asked, `always`).
    /// Quiet for sockets that may not download.
    pub(super) async fn offer_downloads(&mut self, sink: &mut Sink, always: bool) -> bool {
        let dir = match self.transfer_gate(Direction::Download).await {
            Ok(dir) => dir,
            Err(blocked) if always => {
                return self.send_blocked(sink, Direction::Download, "", blocked).await;
            }
            Err(_) => return true,
        };
        let files = tokio::task::spawn_blocking(move || transfer::offered(&dir)).await.unwrap_or_default();
        if !always && self.files.offered.as_ref() == Some(&files) {
            return true;
        }
        self.files.offered = Some(files.clone());
        send(sink, ServerMessage::DownloadsAvailable { session_id: self.session_id(), files }).await
    }

    /// Ends every transfer after this socket lost control: uploads are
    /// deleted, downloads stop, and the client hears why.
    pub(super) async fn end_transfers(&mut self, sink: &mut Sink) -> bool {
        let not_controller = || Blocked { reason: "not_controller", message: "Another device took over this session." };
        for transfer_id in self.files.uploads.abandon_all() {
            if !self.send_blocked(sink, Direction::Upload, &transfer_id.to_string(), not_controller()).await {
                return false;
            }
        }
        for transfer_id in self.files.downloads.cancel_all() {
            if !self.send_blocked(sink, Direction::Download, &transfer_id.to_string(), not_controller()).await {
                return false;
            }
        }
        self.files.offered = None;
        true
    }
}
