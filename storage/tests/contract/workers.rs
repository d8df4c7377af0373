//! WorkerRepository: registration by kind and name, going offline,
//! heartbeats renewing leases in batches, expiry.

use rap_storage::Repositories;
use rap_storage::live::LeaseBeat;
use rap_storage::repo::{LeaseChange, LeaseRecord, WorkerRecord};
use rap_storage::types::SessionState;
use rap_storage::{SessionId, WorkerId};

use super::sessions::applied;
use super::support::{KIND, TTL, World, at, audit_at, plus, std_seconds, transition};

async fn worker(repos: &Repositories, id: WorkerId) -> (WorkerRecord, Vec<LeaseRecord>) {
    let statuses = repos.workers.workers().await.expect("workers");
    let status = statuses.into_iter().find(|status| status.worker.id == id).expect("the worker is listed");
    (status.worker, status.leases)
}

fn beat(lease: &LeaseRecord, seconds: i64) -> LeaseBeat {
    LeaseBeat { worker_id: lease.worker_id, session_id: lease.session_id, at: at(seconds) }
}

fn sorted_beats(mut beats: Vec<LeaseBeat>) -> Vec<LeaseBeat> {
    beats.sort_by_key(|beat| (beat.session_id, beat.worker_id, beat.at));
    beats
}

pub async fn register_worker_keeps_the_id_of_a_kind_and_name(repos: &Repositories) {
    let first = repos.workers.register_worker(KIND, "slot-1", 1, at(0)).await.expect("register");
    assert_eq!((first.kind.as_str(), first.name.as_str(), first.capacity), (KIND, "slot-1", 1));
    assert_eq!((first.status.as_str(), first.registered_at, first.last_heartbeat_at), ("online", at(0), None));

    let again = repos.workers.register_worker(KIND, "slot-1", 3, at(60)).await.expect("re-register");
    assert_eq!(again.id, first.id, "the same kind and name is the same worker");
    assert_eq!((again.capacity, again.status.as_str()), (3, "online"));
    let other_kind = repos.workers.register_worker("vnc", "slot-1", 1, at(60)).await.expect("register");
    assert_ne!(other_kind.id, first.id, "the kind is part of the identity");
    let other_name = repos.workers.register_worker(KIND, "slot-2", 1, at(60)).await.expect("register");
    assert_ne!(other_name.id, first.id);

    let statuses = repos.workers.workers().await.expect("workers");
    assert_eq!(statuses.len(), 3, "a re-registration adds no worker");
    assert_eq!(worker(repos, first.id).await, (again, vec![]));
}

pub async fn mark_workers_offline_takes_every_worker_offline(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let one = repos.workers.register_worker(KIND, "slot-1", 1, at(0)).await.expect("register");
    let two = repos.workers.register_worker(KIND, "slot-2", 1, at(0)).await.expect("register");
    repos.workers.mark_workers_offline().await.expect("offline");
    let statuses = repos.workers.workers().await.expect("workers");
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|status| status.worker.status == "offline"), "{statuses:?}");
    repos.workers.mark_workers_offline().await.expect("offline twice is fine");

    let back = repos.workers.register_worker(KIND, "slot-2", 1, at(10)).await.expect("register");
    assert_eq!((back.id, back.status.as_str()), (two.id, "online"), "this process registers its own again");
    assert_eq!(worker(repos, one.id).await.0.status, "offline", "the others stay offline");
    let (_, lease) = world.start(repos, at(11)).await;
    assert_eq!(lease.worker_id, two.id, "only the online worker takes sessions");
}

pub async fn heartbeats_extend_leases_and_never_backwards(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let slot = repos.workers.register_worker(KIND, "slot", 2, at(0)).await.expect("register");
    let (_, lease) = world.start(repos, at(0)).await;
    let (_, other) = world.start(repos, at(0)).await;
    let ttl = std_seconds(60);

    let stale = repos.workers.renew_leases(vec![beat(&lease, 20)], ttl).await.expect("renew");
    assert_eq!(stale, vec![], "the lease is open");
    let (record, leases) = worker(repos, slot.id).await;
    assert_eq!(record.last_heartbeat_at, Some(at(20)));
    let renewed = leases.iter().find(|l| l.id == lease.id).expect("open");
    assert_eq!((renewed.expires_at, renewed.acquired_at), (at(80), at(0)), "extended to the beat plus the ttl");
    let untouched = leases.iter().find(|l| l.id == other.id).expect("open");
    assert_eq!(untouched.expires_at, plus(at(0), TTL), "a lease without a beat is left alone");

    // A late, older beat in the next batch moves nothing back.
    let stale = repos.workers.renew_leases(vec![beat(&lease, 5), beat(&other, 40)], ttl).await.expect("renew");
    assert_eq!(stale, vec![]);
    let (record, leases) = worker(repos, slot.id).await;
    assert_eq!(leases.iter().find(|l| l.id == lease.id).map(|l| l.expires_at), Some(at(80)), "never backwards");
    assert_eq!(leases.iter().find(|l| l.id == other.id).map(|l| l.expires_at), Some(at(100)));
    assert!(record.last_heartbeat_at >= Some(at(20)), "the worker's heartbeat does not go back either");
    assert_eq!(repos.workers.expired_leases(at(80)).await.expect("expired"), vec![], "none expired before 80s");
    assert_eq!(repos.workers.renew_leases(vec![], ttl).await.expect("an empty batch"), vec![]);
}

pub async fn heartbeats_without_an_open_lease_are_returned(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let slot = repos.workers.register_worker(KIND, "slot", 3, at(0)).await.expect("register");
    let stranger = repos.workers.register_worker(KIND, "stranger", 0, at(0)).await.expect("register");
    let (_, running) = world.start(repos, at(0)).await;
    let (ended, ended_lease) = world.start(repos, at(0)).await;
    let mut end = transition(ended.id, &[SessionState::Pending], SessionState::Terminated, at(5));
    end.lease = LeaseChange::Release("session_ended".into());
    applied(repos, end).await;

    let live = beat(&running, 10);
    let over = beat(&ended_lease, 10);
    let unknown = LeaseBeat { worker_id: slot.id, session_id: SessionId::generate(), at: at(10) };
    let wrong_worker = LeaseBeat { worker_id: stranger.id, ..beat(&running, 10) };
    let stale =
        repos.workers.renew_leases(vec![live, over, unknown, wrong_worker], std_seconds(60)).await.expect("renew");
    assert_eq!(sorted_beats(stale), sorted_beats(vec![over, unknown, wrong_worker]), "their workers should stop");

    let (_, leases) = worker(repos, slot.id).await;
    assert_eq!(leases.iter().map(|l| (l.id, l.expires_at)).collect::<Vec<_>>(), vec![(running.id, at(70))]);
    assert_eq!(worker(repos, stranger.id).await.1, vec![], "a beat gives no lease to a worker that has none");
}

pub async fn expired_leases_are_the_open_ones_past_their_time(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "slot", 5, at(0)).await.expect("register");
    let short = std_seconds(30);
    let long = std_seconds(120);
    let create = |ttl| {
        let record = world.session(world.owner.id, at(0));
        async move {
            let event = audit_at("session.created", at(0));
            repos.sessions.create(record, KIND, ttl, event).await.expect("create").expect("room")
        }
    };
    let (_, soon) = create(short).await;
    let (_, later) = create(long).await;
    let (released, released_lease) = create(short).await;
    let mut end = transition(released.id, &[SessionState::Pending], SessionState::Terminated, at(1));
    end.lease = LeaseChange::Release("session_ended".into());
    applied(repos, end).await;
    assert_eq!((soon.expires_at, later.expires_at), (at(30), at(120)));

    assert_eq!(repos.workers.expired_leases(at(10)).await.expect("expired"), vec![]);
    assert_eq!(repos.workers.expired_leases(at(30)).await.expect("expired"), vec![], "expired *before* now");
    assert_eq!(repos.workers.expired_leases(at(31)).await.expect("expired"), vec![soon.clone()]);
    let all = repos.workers.expired_leases(at(3600)).await.expect("expired");
    assert_eq!(all.len(), 2, "released leases never expire");
    assert!(all.contains(&soon) && all.contains(&later));
    assert!(!all.contains(&released_lease));
}
