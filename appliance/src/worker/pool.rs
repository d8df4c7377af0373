//! The in-process worker pool: N slots, each a registered worker with
//! capacity one, each a task that takes assignments from its control queue
//! and runs them with the runtime.
//!
//! A runtime that panics fails only its own session (`worker_panicked`);
//! the slot takes the next assignment. Every slot stops when the pool's
//! shutdown token is cancelled.

use rap_storage::{SessionId, WorkerId};
use std::sync::Arc;
use std::time::Duration;

use rap_storage::StorageError;

use crate::protocol::framebuffer::Screens;
use crate::transfer::TransferDirs;
use rap_storage::live::Queues;
use rap_storage::repo::Repositories;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    SessionEnd, SessionInput, SessionIo, SessionRuntime, WorkerControl, WorkerEvent, WorkerEventKind, control_queue,
    input_queue,
};

/// Queues the pool and the broker share.
#[derive(Clone)]
pub struct WorkerQueues {
    pub control: Arc<dyn Queues<WorkerControl>>,
    pub inputs: Arc<dyn Queues<SessionInput>>,
    pub events: Arc<dyn Queues<WorkerEvent>>,
    /// The latest heartbeat of each running session's lease.
    pub heartbeats: Arc<dyn rap_storage::live::Heartbeats>,
    /// Worker events that could not be delivered (a metric).
    pub undelivered_events: Arc<std::sync::atomic::AtomicU64>,
    /// Framebuffers of running sessions (pixels stay in process).
    pub screens: Screens,
    /// Per-session folders for file transfer (the redirected drive).
    pub transfers: TransferDirs,
}

impl WorkerQueues {
    /// A sender of worker events that waits up to `deadline` for room.
    pub fn event_sender(&self, deadline: Duration) -> super::EventSender {
        super::EventSender { events: self.events.clone(), undelivered: self.undelivered_events.clone(), deadline }
    }
}

/// The running slots; dropping it aborts them.
pub struct WorkerPool {
    tasks: JoinSet<()>,
    worker_ids: Vec<WorkerId>,
}

impl WorkerPool {
    /// Registers `slots` workers of the runtime's kind and starts them.
    pub async fn start(
        runtime: Arc<dyn SessionRuntime>,
        slots: usize,
        repositories: &Repositories,
        queues: WorkerQueues,
        heartbeat_interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<Self, StorageError> {
        let mut tasks = JoinSet::new();
        let mut worker_ids = Vec::with_capacity(slots);
        for index in 1..=slots {
            let name = format!("slot-{index:03}");
            let worker =
                repositories.workers.register_worker(runtime.kind(), &name, 1, OffsetDateTime::now_utc()).await?;
            worker_ids.push(worker.id);
            let slot =
                Slot { worker_id: worker.id, runtime: runtime.clone(), queues: queues.clone(), heartbeat_interval };
            tasks.spawn(slot.run(shutdown.clone()));
        }
        tracing::info!(slots, kind = runtime.kind(), "Worker slots started");
        Ok(Self { tasks, worker_ids })
    }

    pub fn worker_ids(&self) -> &[WorkerId] {
        &self.worker_ids
    }

    /// Waits for every slot to stop (after the shutdown token fired).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Slot {
    worker_id: WorkerId,
    runtime: Arc<dyn SessionRuntime>,
    queues: WorkerQueues,
    heartbeat_interval: Duration,
}

/// Longest a slot beats for a runtime that is still connecting: past every
/// runtime's own connect timeout, so only a runtime wedged before it ever
/// connected reaches it (and then loses its lease).
const CONNECTING_BEATS_AT_MOST: Duration = Duration::from_secs(90);

/// How long an idle slot waits on its queue before looking again.
const IDLE_POLL: Duration = Duration::from_secs(5);

impl Slot {
    async fn run(self, shutdown: CancellationToken) {
        let queue = control_queue(self.worker_id);
        let mut next: Option<super::Assignment> = None;
        loop {
            let control = match next.take() {
                Some(assignment) => Some(WorkerControl::Assign(Box::new(assignment))),
                None => tokio::select! {
                    () = shutdown.cancelled() => break,
                    control = self.queues.control.pop(&queue, IDLE_POLL) => control,
                },
            };
            match control {
                Some(WorkerControl::Assign(assignment)) => next = self.run_session(*assignment, &shutdown).await,
                // A cancellation for a session this slot no longer runs.
                Some(WorkerControl::Cancel { .. }) | None => {}
            }
        }
        self.queues.control.purge(&queue).await;
    }

    /// Runs one session to its end. Returns the assignment that arrived
    /// meanwhile: the broker releases a lease when the session ends for
    /// it, so the slot's next session can be queued before this one has
    /// closed its connection.
    async fn run_session(
        &self,
        assignment: super::Assignment,
        shutdown: &CancellationToken,
    ) -> Option<super::Assignment> {
        let session_id = assignment.session_id;
        let cancel = shutdown.child_token();
        let mut io = SessionIo::new(session_id, self.worker_id, &self.queues, cancel.clone(), self.heartbeat_interval);
        let transfers_allowed = assignment.file_transfer_mode != crate::resource::PolicyMode::Disabled;
        if transfers_allowed {
            let transfers = self.queues.transfers.clone();
            let prepared = tokio::task::spawn_blocking(move || transfers.prepare(session_id)).await;
            match prepared.map_err(std::io::Error::other).and_then(|prepared| prepared) {
                Ok(dir) => io.transfer_dir = Some(dir),
                // The session still runs, without its drive; uploads are
                // refused with `storage_failed`.
                Err(error) => tracing::warn!(%session_id, %error, "Transfer folder not created"),
            }
        }
        tracing::info!(%session_id, worker_id = %self.worker_id, "Session assigned");
        let connecting = io.connecting_beats();
        connecting.beat().await;
        let runtime = self.runtime.clone();
        let mut session = tokio::spawn(async move { runtime.run(assignment, io).await });
        let queue = control_queue(self.worker_id);
        let mut beat = tokio::time::interval(self.heartbeat_interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let connect_deadline = tokio::time::Instant::now() + CONNECTING_BEATS_AT_MOST;
        let mut next: Option<super::Assignment> = None;
        let outcome = loop {
            tokio::select! {
                outcome = &mut session => break outcome,
                _ = beat.tick(), if connecting.still_connecting() && tokio::time::Instant::now() < connect_deadline => {
                    connecting.beat().await;
                }
                control = self.queues.control.pop(&queue, IDLE_POLL) => match control {
                    Some(WorkerControl::Cancel { session_id: cancelled }) if cancelled == session_id => cancel.cancel(),
                    // Ended before it ever ran: it never starts, and the
                    // slot's next lease can take its place.
                    Some(WorkerControl::Cancel { session_id: cancelled })
                        if next.as_ref().is_some_and(|queued| queued.session_id == cancelled) =>
                    {
                        next = None;
                    }
                    // The lease is released when the session ends for the
                    // broker, before its cancellation reaches this slot: the
                    // next session can arrive first. It runs once this ends.
                    Some(WorkerControl::Assign(other)) if next.is_none() => next = Some(*other),
                    Some(WorkerControl::Assign(other)) => {
                        // INVARIANT: the broker leases a slot to one session at a time.
                        tracing::error!(session_id = %other.session_id, worker_id = %self.worker_id, "Assignment for a busy slot refused");
                        self.report(other.session_id, WorkerEventKind::Failed { reason: "worker_busy".into() }).await;
                    }
                    Some(WorkerControl::Cancel { .. }) | None => {}
                },
            }
        };
        let end = match outcome {
            Ok(end) => end,
            Err(error) if error.is_panic() => {
                tracing::error!(%session_id, worker_id = %self.worker_id, "Session runtime panicked");
                SessionEnd::Failed("worker_panicked".into())
            }
            Err(_) => SessionEnd::Cancelled,
        };
        match end {
            SessionEnd::Cancelled => {}
            SessionEnd::Disconnected(reason) => self.report(session_id, WorkerEventKind::Disconnected { reason }).await,
            SessionEnd::Failed(reason) => self.report(session_id, WorkerEventKind::Failed { reason }).await,
        }
        self.queues.inputs.purge(&input_queue(session_id)).await;
        self.queues.screens.close(session_id);
        if transfers_allowed {
            let transfers = self.queues.transfers.clone();
            let _ = tokio::task::spawn_blocking(move || transfers.remove(session_id)).await;
        }
        tracing::info!(%session_id, worker_id = %self.worker_id, "Session left the slot");
        next
    }

    async fn report(&self, session_id: SessionId, kind: WorkerEventKind) {
        let event = WorkerEvent { session_id, worker_id: self.worker_id, kind };
        // Failure is logged and counted by the sender; the lease does the rest.
        let _ = self.queues.event_sender(self.heartbeat_interval * 3).send(event).await;
    }
}
