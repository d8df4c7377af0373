//! The broker's background work: one event processor for `worker:events`,
//! the lease monitor and the detached-session reaper. Each is a task that
//! stops when the shutdown token fires.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Broker;
use crate::worker::EVENTS_QUEUE;

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

async fn process_events(broker: Broker, shutdown: CancellationToken) {
    let events = broker.live().queues.events.clone();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.pop(EVENTS_QUEUE, Duration::from_secs(5)) => event,
        };
        if let Some(event) = event {
            let session_id = event.session_id;
            if let Err(error) = broker.on_worker_event(event).await {
                tracing::error!(%session_id, %error, "Worker event not applied");
            }
        }
    }
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
