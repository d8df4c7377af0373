//! In-process live state: moka for expiring values, tokio channels for
//! fan-out and queues. Every structure has a capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use moka::Expiry;
use tokio::sync::{Notify, broadcast};

use super::{
    BoardFull, Counters, Delivery, Heartbeats, LeaseBeat, LiveValue, QueueError, Queues, Subscription, Topics, TtlMap,
    WindowCount,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind
    // (maps, deques), still consistent for our single-step updates.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
struct Expiring<V> {
    value: V,
    ttl: Duration,
    expires_at: Instant,
}

struct PerEntryTtl;

impl<V> Expiry<String, Expiring<V>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Expiring<V>, _created_at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Expiring<V>,
        _updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A [`TtlMap`] on a bounded moka cache.
pub struct MemoryTtlMap<V: LiveValue> {
    cache: moka::future::Cache<String, Expiring<V>>,
}

impl<V: LiveValue> MemoryTtlMap<V> {
    /// At most `capacity` live entries; past that the least useful are evicted.
    pub fn new(capacity: u64) -> Self {
        Self { cache: moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build() }
    }
}

#[async_trait]
impl<V: LiveValue> TtlMap<V> for MemoryTtlMap<V> {
    async fn insert(&self, key: &str, value: V, ttl: Duration) {
        let expires_at = Instant::now() + ttl;
        self.cache.insert(key.to_owned(), Expiring { value, ttl, expires_at }).await;
    }

    async fn insert_if_absent(&self, key: &str, value: V, ttl: Duration) -> bool {
        let expires_at = Instant::now() + ttl;
        let entry = self
            .cache
            .entry(key.to_owned())
            .and_upsert_with(|existing| async move {
                match existing {
                    Some(existing) if existing.value().expires_at > Instant::now() => existing.into_value(),
                    _ => Expiring { value, ttl, expires_at },
                }
            })
            .await;
        // Ours if the stored entry carries the deadline we just computed.
        entry.value().expires_at == expires_at
    }

    async fn get(&self, key: &str) -> Option<V> {
        // moka evicts lazily; our own deadline makes expiry exact.
        self.cache.get(key).await.filter(|entry| entry.expires_at > Instant::now()).map(|entry| entry.value)
    }

    async fn take(&self, key: &str) -> Option<V> {
        self.cache.remove(key).await.filter(|entry| entry.expires_at > Instant::now()).map(|entry| entry.value)
    }

    async fn remove(&self, key: &str) {
        self.cache.invalidate(key).await;
    }
}

/// [`Topics`] on one tokio broadcast channel per topic with subscribers.
pub struct MemoryTopics<M: LiveValue> {
    inner: Arc<TopicsInner<M>>,
}

struct TopicsInner<M> {
    capacity: usize,
    senders: Mutex<HashMap<String, broadcast::Sender<M>>>,
}

impl<M: LiveValue> MemoryTopics<M> {
    /// Each subscriber may fall `capacity` messages behind before it lags.
    pub fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(TopicsInner { capacity: capacity.max(1), senders: Mutex::new(HashMap::new()) }) }
    }

    /// Topics that currently have a channel (for tests and metrics).
    pub fn topic_count(&self) -> usize {
        lock(&self.inner.senders).len()
    }
}

/// Removes a topic's channel when its last subscriber leaves, so topics do
/// not accumulate for sessions long gone.
struct Unsubscribe<M> {
    inner: Arc<TopicsInner<M>>,
    topic: String,
}

impl<M> Drop for Unsubscribe<M> {
    fn drop(&mut self) {
        let mut senders = lock(&self.inner.senders);
        // The receiver this guard belongs to is dropped just before the guard
        // (field order in the stream state), so zero means nobody is left.
        if senders.get(&self.topic).is_some_and(|sender| sender.receiver_count() == 0) {
            senders.remove(&self.topic);
        }
    }
}

#[async_trait]
impl<M: LiveValue> Topics<M> for MemoryTopics<M> {
    async fn publish(&self, topic: &str, message: M) -> usize {
        let senders = lock(&self.inner.senders);
        match senders.get(topic) {
            Some(sender) => sender.send(message).unwrap_or(0),
            None => 0,
        }
    }

    async fn subscribe(&self, topic: &str) -> Subscription<M> {
        let receiver = {
            let mut senders = lock(&self.inner.senders);
            senders.entry(topic.to_owned()).or_insert_with(|| broadcast::channel(self.inner.capacity).0).subscribe()
        };
        struct State<M> {
            receiver: broadcast::Receiver<M>,
            _unsubscribe: Unsubscribe<M>,
        }
        let state =
            State { receiver, _unsubscribe: Unsubscribe { inner: self.inner.clone(), topic: topic.to_owned() } };
        futures_util::stream::unfold(state, |mut state| async move {
            match state.receiver.recv().await {
                Ok(message) => Some((Delivery::Message(message), state)),
                Err(broadcast::error::RecvError::Lagged(missed)) => Some((Delivery::Lagged(missed), state)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

/// [`Queues`] on bounded in-memory deques.
pub struct MemoryQueues<M> {
    capacity: usize,
    queues: Mutex<HashMap<String, Arc<QueueSlot<M>>>>,
}

struct QueueSlot<M> {
    messages: Mutex<VecDeque<M>>,
    arrived: Notify,
}

impl<M: LiveValue> MemoryQueues<M> {
    /// Each queue holds at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), queues: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, queue: &str) -> Arc<QueueSlot<M>> {
        lock(&self.queues)
            .entry(queue.to_owned())
            .or_insert_with(|| Arc::new(QueueSlot { messages: Mutex::new(VecDeque::new()), arrived: Notify::new() }))
            .clone()
    }
}

#[async_trait]
impl<M: LiveValue> Queues<M> for MemoryQueues<M> {
    async fn push(&self, queue: &str, message: M) -> Result<(), QueueError> {
        let slot = self.slot(queue);
        {
            let mut messages = lock(&slot.messages);
            if messages.len() >= self.capacity {
                return Err(QueueError::Full { queue: queue.to_owned(), capacity: self.capacity });
            }
            messages.push_back(message);
        }
        slot.arrived.notify_one();
        Ok(())
    }

    async fn pop(&self, queue: &str, wait: Duration) -> Option<M> {
        let slot = self.slot(queue);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a push between the look
            // and the wait is not missed.
            let arrived = slot.arrived.notified();
            if let Some(message) = lock(&slot.messages).pop_front() {
                return Some(message);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return lock(&slot.messages).pop_front();
            }
        }
    }

    async fn len(&self, queue: &str) -> usize {
        let slot = lock(&self.queues).get(queue).cloned();
        slot.map_or(0, |slot| lock(&slot.messages).len())
    }

    async fn purge(&self, queue: &str) {
        lock(&self.queues).remove(queue);
    }
}

/// [`Counters`] in a bounded map; expired windows are dropped when the map
/// is full, and past that the window ending soonest gives way.
pub struct MemoryCounters {
    capacity: usize,
    windows: Mutex<HashMap<String, (u64, Instant)>>,
}

impl MemoryCounters {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), windows: Mutex::new(HashMap::new()) }
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn hit(&self, key: &str, window: Duration) -> WindowCount {
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        if windows.len() >= self.capacity && !windows.contains_key(key) {
            windows.retain(|_, (_, ends)| *ends > now);
            if windows.len() >= self.capacity
                && let Some(oldest) = windows.iter().min_by_key(|(_, (_, ends))| *ends).map(|(key, _)| key.clone())
            {
                windows.remove(&oldest);
            }
        }
        let entry = windows.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        WindowCount { count: entry.0, resets_in: entry.1.saturating_duration_since(now) }
    }

    async fn peek(&self, key: &str) -> WindowCount {
        let now = Instant::now();
        match lock(&self.windows).get(key) {
            Some((count, ends)) if *ends > now => WindowCount { count: *count, resets_in: *ends - now },
            _ => WindowCount { count: 0, resets_in: Duration::ZERO },
        }
    }

    async fn release(&self, key: &str) {
        if let Some((count, _)) = lock(&self.windows).get_mut(key) {
            *count = count.saturating_sub(1);
        }
    }

    async fn reset(&self, key: &str) {
        lock(&self.windows).remove(key);
    }
}

/// [`Heartbeats`] in a bounded map keyed by lease (worker, session).
pub struct MemoryHeartbeats {
    capacity: usize,
    beats: Mutex<HashMap<(crate::WorkerId, crate::SessionId), time::OffsetDateTime>>,
}

impl MemoryHeartbeats {
    /// Holds the beats of at most `capacity` leases between collections.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), beats: Mutex::new(HashMap::new()) }
    }
}

#[async_trait]
impl Heartbeats for MemoryHeartbeats {
    async fn beat(&self, beat: LeaseBeat) -> Result<(), BoardFull> {
        let mut beats = lock(&self.beats);
        let key = (beat.worker_id, beat.session_id);
        if beats.len() >= self.capacity && !beats.contains_key(&key) {
            return Err(BoardFull { capacity: self.capacity });
        }
        let latest = beats.entry(key).or_insert(beat.at);
        if beat.at > *latest {
            *latest = beat.at;
        }
        Ok(())
    }

    async fn take_all(&self) -> Vec<LeaseBeat> {
        let beats = std::mem::take(&mut *lock(&self.beats));
        beats.into_iter().map(|((worker_id, session_id), at)| LeaseBeat { worker_id, session_id, at }).collect()
    }
}
