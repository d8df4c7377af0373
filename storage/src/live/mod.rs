//! Live-state traits: what the seed kept in Redis.
//!
//! - [`TtlMap`]: values that expire (attach tokens, controller bindings,
//!   heartbeat keys, the live session cache); `take` removes atomically, so a
//!   single-use token can be redeemed once even under a race.
//! - [`Topics`]: fan-out to every current subscriber of a topic (session
//!   state changes, takeover notices). Slow subscribers lag and are told how
//!   much they missed; a publisher never waits.
//! - [`Queues`]: bounded point-to-point queues by name (the seed's
//!   `worker:control:<worker_id>`, `worker:queue:<session_id>`,
//!   `worker:events`). A full queue refuses the message instead of growing.
//! - [`Heartbeats`]: the latest heartbeat of each worker lease (the seed's
//!   heartbeat keys). Beating is a constant-time write that never waits
//!   behind durable work; the lease monitor collects them in one batch.
//!
//! Values are `Serialize + DeserializeOwned` so that a Redis implementation
//! can carry them; the in-memory one in [`memory`] never serializes.

pub mod memory;

use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::{Serialize, de::DeserializeOwned};

/// A value that can live in live state.
pub trait LiveValue: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
impl<T> LiveValue for T where T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

#[async_trait]
pub trait TtlMap<V: LiveValue>: Send + Sync {
    /// Stores `value` under `key` for `ttl`, replacing any earlier value.
    async fn insert(&self, key: &str, value: V, ttl: Duration);
    /// Stores `value` only if `key` holds nothing live; returns whether it did.
    async fn insert_if_absent(&self, key: &str, value: V, ttl: Duration) -> bool;
    async fn get(&self, key: &str) -> Option<V>;
    /// Removes and returns the value: at most one caller gets it.
    async fn take(&self, key: &str) -> Option<V>;
    async fn remove(&self, key: &str);
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<M> {
    Message(M),
    /// The subscriber fell behind and this many messages were dropped for it.
    Lagged(u64),
}

/// A live subscription; dropping it unsubscribes.
pub type Subscription<M> = BoxStream<'static, Delivery<M>>;

#[async_trait]
pub trait Topics<M: LiveValue>: Send + Sync {
    /// Sends `message` to the topic's current subscribers and returns how
    /// many there were. Nobody listening is not an error.
    async fn publish(&self, topic: &str, message: M) -> usize;
    async fn subscribe(&self, topic: &str) -> Subscription<M>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue} is full ({capacity} messages)")]
    Full { queue: String, capacity: usize },
}

#[async_trait]
pub trait Queues<M: LiveValue>: Send + Sync {
    /// Appends `message`, or refuses it when the queue is at capacity.
    async fn push(&self, queue: &str, message: M) -> Result<(), QueueError>;
    /// Waits up to `wait` for the oldest message.
    async fn pop(&self, queue: &str, wait: Duration) -> Option<M>;
    async fn len(&self, queue: &str) -> usize;
    /// Drops the queue and everything in it (its session or worker is gone).
    async fn purge(&self, queue: &str);
}

/// A count of events in a fixed window, as returned by [`Counters::hit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u64,
    /// Time until the window (and the count) resets.
    pub resets_in: Duration,
}

/// Fixed-window counters (login throttling, input rate limits): what Redis
/// does with `INCR` + `EXPIRE`.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds one to `key`, starting a new `window` if none is running.
    async fn hit(&self, key: &str, window: Duration) -> WindowCount;
    /// The running count, without adding to it; zero if no window runs.
    async fn peek(&self, key: &str) -> WindowCount;
    /// Takes one back (an attempt that turned out not to count).
    async fn release(&self, key: &str);
    async fn reset(&self, key: &str);
}

/// One heartbeat: `worker_id` was alive running `session_id` at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LeaseBeat {
    pub worker_id: crate::WorkerId,
    pub session_id: crate::SessionId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("heartbeat board is full ({capacity} leases)")]
pub struct BoardFull {
    pub capacity: usize,
}

/// The latest heartbeat per lease, collected in batches.
#[async_trait]
pub trait Heartbeats: Send + Sync {
    /// Records `beat`, replacing an older beat of the same lease. Refused
    /// only when a new lease would exceed the board's capacity.
    async fn beat(&self, beat: LeaseBeat) -> Result<(), BoardFull>;
    /// Takes every beat recorded since the last call (one per lease).
    async fn take_all(&self) -> Vec<LeaseBeat>;
}
