//! Workers and leases: slots register at start, heartbeats renew leases in
//! batches, the lease monitor finds the expired ones.

use std::time::Duration;

use crate::ids::WorkerId;
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::sessions::{LEASE_COLUMNS, WORKER_COLUMNS, after, collect, lease_from_row, worker_from_row};
use super::{SqliteStore, backend};
use crate::format_timestamp;
use crate::repo::{LeaseRecord, StorageError, WorkerRecord, WorkerRepository, WorkerStatus};

#[async_trait]
impl WorkerRepository for SqliteStore {
    async fn register_worker(
        &self,
        kind: &str,
        name: &str,
        capacity: u32,
        now: OffsetDateTime,
    ) -> Result<WorkerRecord, StorageError> {
        let (kind, name) = (kind.to_owned(), name.to_owned());
        self.pool
            .write(move |conn| {
                let tx = conn.transaction().map_err(backend)?;
                let existing: Option<String> = tx
                    .query_row("SELECT id FROM workers WHERE kind = ?1 AND name = ?2 ORDER BY registered_at LIMIT 1", params![kind, name], |row| row.get(0))
                    .optional()
                    .map_err(backend)?;
                let id = match existing {
                    Some(id) => {
                        tx.execute(
                            "UPDATE workers SET status = 'online', capacity = ?2, registered_at = ?3, last_heartbeat_at = NULL WHERE id = ?1",
                            params![id, capacity, format_timestamp(now)],
                        )
                        .map_err(backend)?;
                        id
                    }
                    None => {
                        let id = WorkerId::generate().to_string();
                        tx.execute(
                            "INSERT INTO workers (id, kind, name, capacity, status, registered_at) VALUES (?1, ?2, ?3, ?4, 'online', ?5)",
                            params![id, kind, name, capacity, format_timestamp(now)],
                        )
                        .map_err(backend)?;
                        id
                    }
                };
                let worker = tx
                    .query_row(&format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?1"), params![id], worker_from_row)
                    .map_err(backend)?;
                tx.commit().map_err(backend)?;
                Ok(worker)
            })
            .await
    }

    async fn mark_workers_offline(&self) -> Result<(), StorageError> {
        self.pool
            .write(|conn| {
                conn.execute("UPDATE workers SET status = 'offline' WHERE status <> 'offline'", [])
                    .map(drop)
                    .map_err(backend)
            })
            .await
    }

    async fn workers(&self) -> Result<Vec<WorkerStatus>, StorageError> {
        self.pool
            .read(|conn| {
                let workers = collect(
                    conn,
                    &format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY status DESC, name"),
                    [],
                    worker_from_row,
                )?;
                let leases = collect(
                    conn,
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM worker_leases WHERE released_at IS NULL ORDER BY acquired_at"
                    ),
                    [],
                    lease_from_row,
                )?;
                Ok(workers
                    .into_iter()
                    .map(|worker| {
                        let leases = leases.iter().filter(|lease| lease.worker_id == worker.id).cloned().collect();
                        WorkerStatus { worker, leases }
                    })
                    .collect())
            })
            .await
    }

    async fn renew_leases(
        &self,
        beats: Vec<crate::live::LeaseBeat>,
        lease_ttl: Duration,
    ) -> Result<Vec<crate::live::LeaseBeat>, StorageError> {
        if beats.is_empty() {
            return Ok(Vec::new());
        }
        self.pool
            .write(move |conn| {
                let tx = conn.transaction().map_err(backend)?;
                let mut stale = Vec::new();
                {
                    let mut worker = tx
                        .prepare_cached(
                            "UPDATE workers SET last_heartbeat_at = ?2
                             WHERE id = ?1 AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?2)",
                        )
                        .map_err(backend)?;
                    let mut lease = tx
                        .prepare_cached(
                            "UPDATE worker_leases
                             SET renewed_at = max(coalesce(renewed_at, ''), ?3), expires_at = max(expires_at, ?4)
                             WHERE worker_id = ?1 AND session_id = ?2 AND released_at IS NULL",
                        )
                        .map_err(backend)?;
                    for beat in beats {
                        let at = format_timestamp(beat.at);
                        worker.execute(params![beat.worker_id.to_string(), at]).map_err(backend)?;
                        let renewed = lease
                            .execute(params![
                                beat.worker_id.to_string(),
                                beat.session_id.to_string(),
                                at,
                                format_timestamp(after(beat.at, lease_ttl))
                            ])
                            .map_err(backend)?;
                        if renewed == 0 {
                            stale.push(beat);
                        }
                    }
                }
                tx.commit().map_err(backend)?;
                Ok(stale)
            })
            .await
    }

    async fn expired_leases(&self, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StorageError> {
        self.pool
            .read(move |conn| {
                collect(
                    conn,
                    &format!("SELECT {LEASE_COLUMNS} FROM worker_leases WHERE released_at IS NULL AND expires_at < ?1 ORDER BY expires_at"),
                    params![format_timestamp(now)],
                    lease_from_row,
                )
            })
            .await
    }
}
