//! Workers: the slots that run remote sessions, and the contract between
//! them and the broker (the seed's Redis queues, in process).
//!
//! - The broker queues a [`WorkerControl`] on `worker:control:<worker_id>`:
//!   an [`Assignment`] to run, or a cancellation.
//! - Input for a running session arrives on `worker:queue:<session_id>`.
//! - The worker reports [`WorkerEvent`]s on `worker:events`, which the
//!   event processor feeds to the broker, in order per session.
//! - Heartbeats do not travel with events: each is a constant-time write to
//!   the heartbeat board, which the lease monitor collects in one batch, so
//!   a busy event queue or database can never make a live worker look dead.
//!
//! A [`SessionRuntime`] does the protocol work (IronRDP, or the scripted
//! runtime used in development and tests); [`pool`] runs it in slots.

pub mod encoder;
pub mod pool;
pub mod rdp;
pub mod scripted;

use rap_storage::{OrgId, SessionId, WorkerId};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rap_storage::live::{Heartbeats, LeaseBeat, QueueError, Queues};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::protocol::framebuffer::{Screen, Screens};
use crate::resource::{CertificateMode, PolicyMode, Protocol};
use crate::secrets::Credentials;

/// Queue names, as in the seed.
pub fn control_queue(worker_id: WorkerId) -> String {
    format!("worker:control:{worker_id}")
}

pub fn input_queue(session_id: SessionId) -> String {
    format!("worker:queue:{session_id}")
}

pub const EVENTS_QUEUE: &str = "worker:events";

/// Everything a worker needs to run one session. Transient: it carries the
/// resolved credentials and is never stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub session_id: SessionId,
    pub worker_id: WorkerId,
    pub organization_id: OrgId,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    pub certificate_verification_mode: CertificateMode,
    pub certificate_fingerprint: Option<String>,
    pub clipboard_mode: PolicyMode,
    pub file_transfer_mode: PolicyMode,
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
    Cancel { session_id: SessionId },
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
    /// The connection could not be made or broke; `reason` is a stable code.
    Failed { reason: String },
    /// The remote side ended the session cleanly (logoff, shutdown).
    Disconnected { reason: String },
    /// The remote desktop's clipboard changed.
    Clipboard(ClipboardText),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEvent {
    pub session_id: SessionId,
    pub worker_id: WorkerId,
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
    pub session_id: SessionId,
    pub worker_id: WorkerId,
    events: EventSender,
    heartbeats: Arc<dyn Heartbeats>,
    /// Set once the runtime beats for itself (or reports the desktop up);
    /// until then its slot beats for it while it connects.
    runtime_beats: Arc<std::sync::atomic::AtomicBool>,
    inputs: Arc<dyn Queues<SessionInput>>,
    cancel: CancellationToken,
    heartbeat_interval: Duration,
    screens: Screens,
    /// Stops the screens' encoders (see [`encoder`]) when the session ends,
    /// however its runtime returns.
    encoders: CancellationToken,
    _encoders_stop: tokio_util::sync::DropGuard,
    /// The session's transfer folder, when its policy allows file transfer:
    /// the runtime shows it to the remote desktop as a drive.
    pub transfer_dir: Option<std::path::PathBuf>,
}

impl SessionIo {
    pub fn new(
        session_id: SessionId,
        worker_id: WorkerId,
        queues: &pool::WorkerQueues,
        cancel: CancellationToken,
        heartbeat_interval: Duration,
    ) -> Self {
        let encoders = cancel.child_token();
        Self {
            session_id,
            worker_id,
            _encoders_stop: encoders.clone().drop_guard(),
            encoders,
            events: queues.event_sender(heartbeat_interval * 3),
            heartbeats: queues.heartbeats.clone(),
            runtime_beats: Default::default(),
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
        self.encoded(self.screens.open(self.session_id, width, height))
    }

    /// [`Self::open_screen`] over a decoder's own pixels (one copy of the
    /// desktop per session).
    pub fn open_screen_with(
        &self,
        width: u16,
        height: u16,
        store: Box<dyn crate::protocol::framebuffer::PixelStore>,
    ) -> Arc<Screen> {
        self.encoded(self.screens.open_with(self.session_id, width, height, store))
    }

    /// `screen`, with the encoder that gives its moving regions to the
    /// viewers that decode H.264.
    fn encoded(&self, screen: Arc<Screen>) -> Arc<Screen> {
        tokio::spawn(encoder::run(Arc::downgrade(&screen), screen.watch(), self.encoders.child_token()));
        screen
    }

    /// Reports an event to the broker; see [`EventSender::send`].
    pub async fn report(&self, kind: WorkerEventKind) -> Result<(), QueueError> {
        if matches!(kind, WorkerEventKind::Connected { .. }) {
            self.runtime_beats.store(true, std::sync::atomic::Ordering::Release);
        }
        let event = WorkerEvent { session_id: self.session_id, worker_id: self.worker_id, kind };
        self.events.send(event).await
    }

    /// Keeps the lease alive; call at least every [`Self::heartbeat_interval`]
    /// once connected.
    pub async fn heartbeat(&self) {
        self.runtime_beats.store(true, std::sync::atomic::Ordering::Release);
        self.beat().await;
    }

    async fn beat(&self) {
        beat(&*self.heartbeats, self.worker_id, self.session_id).await;
    }

    /// What the slot needs to beat for the runtime while it connects.
    fn connecting_beats(&self) -> ConnectingBeats {
        ConnectingBeats {
            heartbeats: self.heartbeats.clone(),
            runtime_beats: self.runtime_beats.clone(),
            worker_id: self.worker_id,
            session_id: self.session_id,
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

async fn beat(heartbeats: &dyn Heartbeats, worker_id: WorkerId, session_id: SessionId) {
    let beat = LeaseBeat { worker_id, session_id, at: time::OffsetDateTime::now_utc() };
    if let Err(error) = heartbeats.beat(beat).await {
        tracing::error!(%session_id, %error, "Heartbeat not recorded");
    }
}

/// While a runtime connects (TLS, NLA, a slow host: bounded by its own
/// connect timeout), its slot is what is alive, and beats for it. Once
/// the runtime beats or reports the desktop up, only its own beats count,
/// so a wedged session still loses its lease.
struct ConnectingBeats {
    heartbeats: Arc<dyn Heartbeats>,
    runtime_beats: Arc<std::sync::atomic::AtomicBool>,
    worker_id: WorkerId,
    session_id: SessionId,
}

impl ConnectingBeats {
    fn still_connecting(&self) -> bool {
        !self.runtime_beats.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn beat(&self) {
        beat(&*self.heartbeats, self.worker_id, self.session_id).await;
    }
}

/// Delivers worker events to `worker:events`. A full queue is waited out
/// (with backoff) rather than dropped: a lost `connected` or `failed` would
/// leave a session in a state nobody changes. An event that still cannot
/// be delivered by the deadline is logged as an error and counted
/// (`rap_worker_events_undelivered_total`); its session then fails on its
/// lease, so the user is told.
#[derive(Clone)]
pub struct EventSender {
    events: Arc<dyn Queues<WorkerEvent>>,
    undelivered: Arc<std::sync::atomic::AtomicU64>,
    deadline: Duration,
}

impl EventSender {
    pub async fn send(&self, event: WorkerEvent) -> Result<(), QueueError> {
        let give_up = tokio::time::Instant::now() + self.deadline;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.events.push(EVENTS_QUEUE, event.clone()).await {
                Ok(()) => return Ok(()),
                Err(error) if tokio::time::Instant::now() + pause >= give_up => {
                    self.undelivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(session_id = %event.session_id, worker_id = %event.worker_id, kind = event.kind.name(), %error, "Worker event not delivered");
                    return Err(error);
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
        }
    }
}

impl WorkerEventKind {
    /// The event's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connected { .. } => "connected",
            Self::Failed { .. } => "failed",
            Self::Disconnected { .. } => "disconnected",
            Self::Clipboard(_) => "clipboard",
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use rap_storage::live::Queues;
    use rap_storage::live::memory::MemoryQueues;
    use rap_storage::{SessionId, WorkerId};

    use super::{EVENTS_QUEUE, EventSender, WorkerEvent, WorkerEventKind};

    fn failed(reason: &str) -> WorkerEvent {
        let reason = reason.into();
        WorkerEvent {
            session_id: SessionId::generate(),
            worker_id: WorkerId::generate(),
            kind: WorkerEventKind::Failed { reason },
        }
    }

    fn sender(events: &Arc<MemoryQueues<WorkerEvent>>, deadline: Duration) -> (EventSender, Arc<AtomicU64>) {
        let undelivered = Arc::new(AtomicU64::new(0));
        (EventSender { events: events.clone(), undelivered: undelivered.clone(), deadline }, undelivered)
    }

    #[tokio::test]
    async fn an_event_waits_for_room_in_a_full_queue_instead_of_being_dropped() {
        let events = Arc::new(MemoryQueues::new(1));
        events.push(EVENTS_QUEUE, failed("first")).await.expect("room");
        let (sender, undelivered) = sender(&events, Duration::from_secs(10));
        let second = failed("second");
        let sending = tokio::spawn({
            let second = second.clone();
            async move { sender.send(second).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sending.is_finished(), "the sender waits while the queue is full");
        assert_eq!(events.pop(EVENTS_QUEUE, Duration::ZERO).await.expect("first").kind, failed("first").kind);
        sending.await.expect("task").expect("delivered once there was room");
        assert_eq!(events.pop(EVENTS_QUEUE, Duration::from_secs(1)).await, Some(second));
        assert_eq!(undelivered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn an_event_that_cannot_be_delivered_in_time_is_an_error_and_counted() {
        let events = Arc::new(MemoryQueues::new(1));
        events.push(EVENTS_QUEUE, failed("first")).await.expect("room");
        let (sender, undelivered) = sender(&events, Duration::from_millis(100));
        assert!(sender.send(failed("second")).await.is_err());
        assert_eq!(undelivered.load(Ordering::Relaxed), 1);
    }
}
