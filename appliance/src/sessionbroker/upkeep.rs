//! The broker's own work: lease expiry, the detached-session reaper,
//! restart recovery, and the figures for `/api/v1/workers` and metrics.

use crate::audit::{self, Outcome, RequestContext};
use rap_storage::StorageError;
use rap_storage::repo::LeaseChange;
use serde_json::json;
use time::OffsetDateTime;

use super::service::{Broker, BrokerError, Transition};
use super::state::{Command, SessionState};

impl Broker {
    /// Every worker with its open leases (platform admins only; the route
    /// requires it).
    pub async fn workers(&self) -> Result<Vec<rap_storage::repo::WorkerStatus>, StorageError> {
        self.inner.repositories.workers.workers().await
    }

    /// Open sessions and online workers, for the metrics gauges.
    pub async fn gauges(&self) -> Result<(u64, usize), StorageError> {
        let open = self.inner.repositories.sessions.count_open().await?;
        let online = self
            .inner
            .repositories
            .workers
            .workers()
            .await?
            .iter()
            .filter(|status| status.worker.status == "online")
            .count();
        Ok((open, online))
    }

    /// Renews leases from the heartbeat board, then fails the sessions of
    /// workers whose leases ran out. Expiry is judged as of the moment the
    /// beats were collected, so however long the renewal write waits for
    /// the database, a worker that beat in time is never taken for dead.
    pub async fn expire_leases(&self) -> Result<usize, BrokerError> {
        let now = OffsetDateTime::now_utc();
        let heartbeats = &self.inner.live.queues.heartbeats;
        let beats = heartbeats.take_all().await;
        let stale = match self.inner.repositories.workers.renew_leases(beats.clone(), self.inner.config.lease_ttl).await
        {
            Ok(stale) => stale,
            Err(error) => {
                // Keep the beats for the next round (newer ones win).
                for beat in beats {
                    let _ = heartbeats.beat(beat).await;
                }
                return Err(error.into());
            }
        };
        for beat in stale {
            // Its session is over for the broker: the worker must stop.
            self.stop_worker(beat.worker_id, beat.session_id).await;
        }
        let mut failed = 0;
        for lease in self.inner.repositories.workers.expired_leases(now).await? {
            if let Some(session) = self.inner.repositories.sessions.get(lease.session_id).await? {
                tracing::warn!(session_id = %session.id, worker_id = %lease.worker_id, "Worker lease expired");
                if self.fail(&session, "worker_lost").await?.is_some() {
                    failed += 1;
                }
            }
        }
        Ok(failed)
    }

    /// Terminates sessions left detached longer than the configured timeout.
    pub async fn reap_detached(&self) -> Result<usize, BrokerError> {
        let timeout = time::Duration::try_from(self.inner.config.detached_timeout).unwrap_or(time::Duration::DAY);
        let mut reaped = 0;
        for session in self.inner.repositories.sessions.detached_before(OffsetDateTime::now_utc() - timeout).await? {
            let event = audit::with(
                self.event(&RequestContext::default(), None, "session.terminated", &session, Outcome::Success),
                json!({"reason": "detached_timeout"}),
            );
            let details =
                Transition { lease: LeaseChange::Release("detached_timeout".into()), ..Transition::default() };
            match self.apply(&session, Command::Terminate, details, event).await {
                Ok(_) => reaped += 1,
                Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(reaped)
    }

    /// At start-up: no session can have a live connection (workers are in
    /// process). `active` and `detached` ones become `detached`
    /// (`appliance_restarted`) without a worker, to be resumed on their
    /// next attach; `pending` and `starting` ones fail.
    pub async fn recover_after_restart(&self) -> Result<Recovered, BrokerError> {
        let mut recovered = Recovered::default();
        for session in self.inner.repositories.sessions.open_sessions().await? {
            let state = Some(session.state);
            if matches!(state, Some(SessionState::Active | SessionState::Detached)) {
                let event = audit::with(
                    self.event(&RequestContext::default(), None, "session.detached", &session, Outcome::Success),
                    json!({"reason": "appliance_restarted"}),
                );
                let details = Transition {
                    reason: Some("appliance_restarted".into()),
                    end_controller: Some("appliance_restarted".into()),
                    lease: LeaseChange::Surrender("appliance_restarted".into()),
                    ..Transition::default()
                };
                match self.apply(&session, Command::Recover, details, event).await {
                    Ok(_) => recovered.detached += 1,
                    Err(BrokerError::Illegal(_) | BrokerError::Raced) => {}
                    Err(error) => return Err(error),
                }
            } else if self.fail(&session, "appliance_restarted").await?.is_some() {
                recovered.failed += 1;
            }
        }
        Ok(recovered)
    }
}

/// What start-up recovery did to the previous run's open sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// `active`/`detached` sessions kept, detached, for resuming.
    pub detached: usize,
    /// `pending`/`starting` sessions failed.
    pub failed: usize,
}
