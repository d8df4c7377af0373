//! The broker's background work: the event processor for `worker:events`
//! (in order per session, sessions in parallel), the lease monitor and the
//! detached-session reaper. Each is a task that
//! stops when the shutdown token fires.

use rap_storage::SessionId;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Broker;
use crate::worker::{EVENTS_QUEUE, WorkerEvent};

/// How often detached sessions are checked against their timeout.
const REAP_INTERVAL: Duration = Duration::from_secs(30);

/// Starts the broker's tasks; they end with `shutdown`.
pub fn spawn(broker: Broker, shutdown: CancellationToken) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(process_events(broker.clone(), shutdown.clone()));
    tasks.spawn(monitor_leases(broker.clone(), shutdown.clone()));
    tasks.spawn(reap_detached(broker, shutdown));
    tasks
}

/// Event lanes: events of one session stay in order (they share a lane),
/// while a slow transition of one session does not hold up the others.
const EVENT_LANES: usize = 8;
/// Events a lane holds before the dispatcher waits for it.
const LANE_DEPTH: usize = 256;

async fn process_events(broker: Broker, shutdown: CancellationToken) {
    let events = broker.live().queues.events.clone();
    let mut lanes = JoinSet::new();
    let senders: Vec<_> = (0..EVENT_LANES)
        .map(|_| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<WorkerEvent>(LANE_DEPTH);
            let broker = broker.clone();
            lanes.spawn(async move {
                while let Some(event) = receiver.recv().await {
                    let session_id = event.session_id;
                    let kind = event.kind.name();
                    if let Err(error) = broker.on_worker_event(event).await {
                        tracing::error!(%session_id, kind, %error, "Worker event not applied");
                    }
                }
            });
            sender
        })
        .collect();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.pop(EVENTS_QUEUE, Duration::from_secs(5)) => event,
        };
        let Some(event) = event else { continue };
        let lane = &senders[lane_of(event.session_id)];
        tokio::select! {
            () = shutdown.cancelled() => break,
            sent = lane.send(event) => if sent.is_err() { break },
        }
    }
    // Closing the lanes lets them finish what they hold, then end.
    drop(senders);
    while lanes.join_next().await.is_some() {}
}

fn lane_of(session_id: SessionId) -> usize {
    // v7 ids start with a timestamp: the random tail spreads them evenly.
    (session_id.as_uuid().as_u128() as u64 as usize) % EVENT_LANES
}

async fn monitor_leases(broker: Broker, shutdown: CancellationToken) {
    let mut every = tokio::time::interval((broker.config().lease_ttl / 3).max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        match broker.expire_leases().await {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(failed, "Sessions failed on expired worker leases"),
            Err(error) => tracing::error!(%error, "Lease check failed"),
        }
    }
}

async fn reap_detached(broker: Broker, shutdown: CancellationToken) {
    let mut every =
        tokio::time::interval(REAP_INTERVAL.min(broker.config().detached_timeout).max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        match broker.reap_detached().await {
            Ok(0) => {}
            Ok(reaped) => tracing::info!(reaped, "Terminated sessions left detached too long"),
            Err(error) => tracing::error!(%error, "Detached-session check failed"),
        }
    }
}
