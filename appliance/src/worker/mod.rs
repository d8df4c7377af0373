//! Workers: the slots that run remote sessions, and the contract between
//! them and the broker (the seed's Redis queues, in process).
//!
//! - The broker queues a [`WorkerControl`] on `worker:control:<worker_id>`:
//!   an [`Assignment`] to run, or a cancellation.
//! - Input for a running session arrives on `worker:queue:<session_id>`.
//! - The worker reports [`WorkerEvent`]s on `worker:events`, which one event
//!   processor feeds to the broker; heartbeats keep the worker's lease alive.
//!
//! A [`SessionRuntime`] does the protocol work (IronRDP, or the scripted
//! runtime used in development and tests); [`pool`] runs it in slots.

pub mod pool;
pub mod rdp;
pub mod scripted;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rap_storage::live::{QueueError, Queues};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::protocol::framebuffer::{Screen, Screens};
use crate::secrets::Credentials;

/// Queue names, as in the seed.
pub fn control_queue(worker_id: Uuid) -> String {
    format!("worker:control:{worker_id}")
}

pub fn input_queue(session_id: Uuid) -> String {
    format!("worker:queue:{session_id}")
}

pub const EVENTS_QUEUE: &str = "worker:events";

/// Everything a worker needs to run one session. Transient: it carries the
/// resolved credentials and is never stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub session_id: Uuid,
    pub worker_id: Uuid,
    pub organization_id: Uuid,
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    /// `strict` or `ignore`.
    pub certificate_verification_mode: String,
    pub certificate_fingerprint: Option<String>,
    pub clipboard_mode: String,
    pub file_transfer_mode: String,
    pub width: u16,
    pub height: u16,
}

impl std::fmt::Debug for Assignment {
    // Credentials print redacted through their own Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assignment")
            .field("session_id", &self.session_id)
            .field("worker_id", &self.worker_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerControl {
    Assign(Box<Assignment>),
    Cancel { session_id: Uuid },
}

/// Input from the controller, routed to the session's worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionInput {
    Mouse {
        x: u16,
        y: u16,
        buttons: u8,
        wheel_delta: Option<i16>,
    },
    Key {
        code: Option<String>,
        scancode: Option<u16>,
        down: bool,
    },
    Unicode {
        text: String,
    },
    Resize {
        width: u16,
        height: u16,
    },
    /// The viewer's clipboard, for the remote side (policy already checked).
    Clipboard(ClipboardText),
}

/// Clipboard text crossing between a viewer and the remote desktop.
/// `sequence_id`, `origin` and `content_hash` (SHA-256, hex) let each side
/// recognise its own text coming back, so copies never loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipboardText {
    pub text: String,
    pub sequence_id: u64,
    pub origin: String,
    pub content_hash: String,
}

impl ClipboardText {
    pub fn hash_of(text: &str) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerEventKind {
    /// The remote desktop is up at this size.
    Connected { width: u16, height: u16 },
    /// The session's worker is alive; renews its lease.
    Heartbeat,
    /// The connection could not be made or broke; `reason` is a stable code.
    Failed { reason: String },
    /// The remote side ended the session cleanly (logoff, shutdown).
    Disconnected { reason: String },
    /// The remote desktop's clipboard changed.
    Clipboard(ClipboardText),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEvent {
    pub session_id: Uuid,
    pub worker_id: Uuid,
    pub kind: WorkerEventKind,
}

/// How a runtime's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The broker cancelled it (terminate, lease lost, shutdown).
    Cancelled,
    Disconnected(String),
    Failed(String),
}

/// A session's view of the control plane, given to its runtime.
pub struct SessionIo {
    pub session_id: Uuid,
    pub worker_id: Uuid,
    events: Arc<dyn Queues<WorkerEvent>>,
    inputs: Arc<dyn Queues<SessionInput>>,
    cancel: CancellationToken,
    heartbeat_interval: Duration,
    screens: Screens,
    /// The session's transfer folder, when its policy allows file transfer:
    /// the runtime shows it to the remote desktop as a drive.
    pub transfer_dir: Option<std::path::PathBuf>,
}

impl SessionIo {
    pub fn new(
        session_id: Uuid,
        worker_id: Uuid,
        queues: &pool::WorkerQueues,
        cancel: CancellationToken,
        heartbeat_interval: Duration,
    ) -> Self {
        Self {
            session_id,
            worker_id,
            events: queues.events.clone(),
            inputs: queues.inputs.clone(),
            cancel,
            heartbeat_interval,
            screens: queues.screens.clone(),
            transfer_dir: None,
        }
    }

    /// The session's framebuffer, created at the remote desktop's size.
    /// Viewers read it from the moment it exists.
    pub fn open_screen(&self, width: u16, height: u16) -> Arc<Screen> {
        self.screens.open(self.session_id, width, height)
    }

    /// [`Self::open_screen`] over a decoder's own pixels (one copy of the
    /// desktop per session).
    pub fn open_screen_with(
        &self,
        width: u16,
        height: u16,
        store: Box<dyn crate::protocol::framebuffer::PixelStore>,
    ) -> Arc<Screen> {
        self.screens.open_with(self.session_id, width, height, store)
    }

    /// Reports an event to the broker.
    pub async fn report(&self, kind: WorkerEventKind) -> Result<(), QueueError> {
        let event = WorkerEvent { session_id: self.session_id, worker_id: self.worker_id, kind };
        self.events.push(EVENTS_QUEUE, event).await
    }

    /// Keeps the lease alive; call at least every [`Self::heartbeat_interval`].
    pub async fn heartbeat(&self) {
        if let Err(error) = self.report(WorkerEventKind::Heartbeat).await {
            tracing::warn!(session_id = %self.session_id, %error, "Heartbeat dropped");
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// The next input for this session, waiting up to `wait`.
    pub async fn next_input(&self, wait: Duration) -> Option<SessionInput> {
        self.inputs.pop(&input_queue(self.session_id), wait).await
    }

    /// Completes when the broker cancels the session.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Runs remote sessions of one kind of protocol worker.
#[async_trait]
pub trait SessionRuntime: Send + Sync + 'static {
    /// Stored as the worker kind (`scripted`, `rdp`).
    fn kind(&self) -> &'static str;
    /// Runs one session until it ends or `io` is cancelled. Reports
    /// `Connected` once the desktop is up and heartbeats while it lives.
    async fn run(&self, assignment: Assignment, io: SessionIo) -> SessionEnd;
}
