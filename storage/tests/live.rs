use rap_storage::{SessionId, WorkerId};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rap_storage::live::memory::{MemoryQueues, MemoryTopics, MemoryTtlMap};
use rap_storage::live::{Delivery, QueueError, Queues, Topics, TtlMap};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn values_expire_after_their_own_ttl() {
    let map = MemoryTtlMap::<String>::new(100);
    map.insert("short", "a".into(), Duration::from_millis(50)).await;
    map.insert("long", "b".into(), Duration::from_secs(60)).await;
    assert_eq!(map.get("short").await.as_deref(), Some("a"));
    // Expiry is about time passing, so this test lets time pass.
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(map.get("short").await, None);
    assert_eq!(map.take("short").await, None, "an expired token cannot be redeemed");
    assert_eq!(map.get("long").await.as_deref(), Some("b"));
}

#[tokio::test]
async fn take_hands_a_value_to_exactly_one_caller() {
    let map = Arc::new(MemoryTtlMap::<u32>::new(100));
    map.insert("token", 7, Duration::from_secs(60)).await;
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let map = map.clone();
        racers.spawn(async move { map.take("token").await });
    }
    let mut winners = 0;
    while let Some(outcome) = racers.join_next().await {
        if outcome.expect("task") == Some(7) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(map.get("token").await, None);
}

#[tokio::test]
async fn insert_if_absent_keeps_the_live_value() {
    let map = MemoryTtlMap::<String>::new(100);
    assert!(map.insert_if_absent("controller", "first".into(), Duration::from_millis(50)).await);
    assert!(!map.insert_if_absent("controller", "second".into(), Duration::from_secs(60)).await);
    assert_eq!(map.get("controller").await, Some("first".to_owned()));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(
        map.insert_if_absent("controller", "third".into(), Duration::from_secs(60)).await,
        "an expired value is absent"
    );
    assert_eq!(map.get("controller").await, Some("third".to_owned()));
    map.remove("controller").await;
    assert_eq!(map.get("controller").await, None);
}

#[tokio::test]
async fn topics_fan_out_and_forget_topics_nobody_listens_to() {
    let topics = MemoryTopics::<String>::new(16);
    assert_eq!(topics.publish("session:1", "nobody".into()).await, 0);
    let mut first = topics.subscribe("session:1").await;
    let mut second = topics.subscribe("session:1").await;
    let mut other = topics.subscribe("session:2").await;
    assert_eq!(topics.publish("session:1", "active".into()).await, 2);
    for subscription in [&mut first, &mut second] {
        let delivery = tokio::time::timeout(WAIT, subscription.next()).await.expect("delivered");
        assert_eq!(delivery, Some(Delivery::Message("active".to_owned())));
    }
    assert!(tokio::time::timeout(Duration::from_millis(20), other.next()).await.is_err(), "other topics hear nothing");
    assert_eq!(topics.topic_count(), 2);
    drop(first);
    assert_eq!(topics.topic_count(), 2, "one subscriber is left");
    drop(second);
    drop(other);
    assert_eq!(topics.topic_count(), 0, "no channel outlives its last subscriber");
}

#[tokio::test]
async fn a_slow_subscriber_lags_without_holding_up_the_publisher() {
    let topics = MemoryTopics::<u32>::new(4);
    let mut slow = topics.subscribe("frames").await;
    for n in 0..10 {
        assert_eq!(topics.publish("frames", n).await, 1);
    }
    assert_eq!(slow.next().await, Some(Delivery::Lagged(6)));
    let rest: Vec<_> = slow.take(4).collect().await;
    assert_eq!(rest, (6..10).map(Delivery::Message).collect::<Vec<_>>(), "the newest messages survive");
}

#[tokio::test]
async fn queues_are_fifo_bounded_and_wake_a_waiting_consumer() {
    let queues = Arc::new(MemoryQueues::<u32>::new(3));
    for n in 1..=3 {
        queues.push("worker:control:w1", n).await.expect("room");
    }
    assert_eq!(
        queues.push("worker:control:w1", 4).await,
        Err(QueueError::Full { queue: "worker:control:w1".into(), capacity: 3 })
    );
    assert_eq!(queues.len("worker:control:w1").await, 3);
    assert_eq!(queues.pop("worker:control:w1", WAIT).await, Some(1));
    assert_eq!(queues.pop("worker:control:w1", WAIT).await, Some(2));
    assert_eq!(queues.pop("worker:control:w1", WAIT).await, Some(3));
    assert_eq!(queues.pop("worker:control:w1", Duration::from_millis(10)).await, None, "empty queue times out");

    let consumer = {
        let queues = queues.clone();
        tokio::spawn(async move { queues.pop("worker:queue:s1", WAIT).await })
    };
    tokio::task::yield_now().await;
    queues.push("worker:queue:s1", 42).await.expect("room");
    assert_eq!(tokio::time::timeout(WAIT, consumer).await.expect("woken").expect("task"), Some(42));

    queues.push("worker:queue:s1", 1).await.expect("room");
    queues.purge("worker:queue:s1").await;
    assert_eq!(queues.len("worker:queue:s1").await, 0, "purge drops a gone session's input");
}

#[tokio::test]
async fn counters_count_within_a_window_and_start_over_after_it() {
    use rap_storage::live::Counters;
    use rap_storage::live::memory::MemoryCounters;
    let counters = MemoryCounters::new(2);
    let window = Duration::from_millis(60);
    assert_eq!(counters.hit("login:a", window).await.count, 1);
    let second = counters.hit("login:a", window).await;
    assert_eq!(second.count, 2);
    assert!(second.resets_in <= window);
    assert_eq!(counters.peek("login:a").await.count, 2);
    counters.release("login:a").await;
    assert_eq!(counters.peek("login:a").await.count, 1);
    counters.hit("login:a", window).await;
    assert_eq!(counters.peek("login:b").await.count, 0);
    // Capacity 2: a third key pushes out the window that ends first.
    counters.hit("login:b", Duration::from_secs(60)).await;
    counters.hit("login:c", Duration::from_secs(60)).await;
    assert_eq!(counters.peek("login:a").await.count, 0, "bounded: the oldest window gave way");
    assert_eq!(counters.peek("login:c").await.count, 1);
    counters.reset("login:c").await;
    assert_eq!(counters.peek("login:c").await.count, 0);
    counters.hit("login:d", window).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(counters.peek("login:d").await.count, 0, "the window ended");
    assert_eq!(counters.hit("login:d", window).await.count, 1, "a new window starts from one");
}

#[tokio::test]
async fn the_heartbeat_board_keeps_the_latest_beat_per_lease_until_collected() {
    use rap_storage::live::memory::MemoryHeartbeats;
    use rap_storage::live::{Heartbeats, LeaseBeat};
    use time::macros::datetime;

    let board = MemoryHeartbeats::new(2);
    let (worker, session) = (WorkerId::generate(), SessionId::generate());
    let beat = |at| LeaseBeat { worker_id: worker, session_id: session, at };
    board.beat(beat(datetime!(2026-12-03 10:00:02 UTC))).await.expect("room");
    // Beats can arrive out of order; the newest wins.
    board.beat(beat(datetime!(2026-12-03 10:00:01 UTC))).await.expect("room");
    let other = LeaseBeat { session_id: SessionId::generate(), ..beat(datetime!(2026-12-03 10:00:00 UTC)) };
    board.beat(other).await.expect("room");
    let third = LeaseBeat { session_id: SessionId::generate(), ..other };
    assert!(board.beat(third).await.is_err(), "a third lease is past capacity");
    board.beat(beat(datetime!(2026-12-03 10:00:03 UTC))).await.expect("a known lease always fits");

    let mut taken = board.take_all().await;
    taken.sort_by_key(|beat| beat.at);
    assert_eq!(taken, vec![other, beat(datetime!(2026-12-03 10:00:03 UTC))]);
    assert!(board.take_all().await.is_empty(), "collected beats are gone");
    board.beat(third).await.expect("room again after collection");
}
