//! SessionRepository transitions and the worker lease that goes with them:
//! `LeaseChange::Release`, `Surrender`, `Renew` and `Acquire`.

use rap_storage::Repositories;
use rap_storage::SessionId;
use rap_storage::repo::{LeaseChange, LeaseRecord, SessionRecord, TransitionOutcome};
use rap_storage::types::{AttachmentRole, SessionState};

use super::sessions::{applied, walk};
use super::support::{KIND, TTL, World, assert_not_audited, at, attachment, audit_at, plus, std_seconds, transition};

use SessionState::{Active, Detached, Pending, Starting, Terminated};

/// The open leases, by session.
async fn open_leases(repos: &Repositories) -> Vec<LeaseRecord> {
    let statuses = repos.workers.workers().await.expect("workers");
    let leases: Vec<LeaseRecord> = statuses.into_iter().flat_map(|status| status.leases).collect();
    leases
}

async fn lease_of(repos: &Repositories, session_id: SessionId) -> Option<LeaseRecord> {
    open_leases(repos).await.into_iter().find(|lease| lease.session_id == session_id)
}

/// Active, then detached by an appliance restart: no worker, no lease.
async fn surrendered(repos: &Repositories, session: &SessionRecord, seconds: i64) -> SessionRecord {
    let active = walk(repos, session, &[(Active, seconds)]).await;
    let mut restart = transition(active.id, &[Active], Detached, at(seconds + 1));
    restart.reason = Some("appliance_restarted".into());
    restart.lease = LeaseChange::Surrender("appliance_restarted".into());
    applied(repos, restart).await
}

async fn no_capacity(repos: &Repositories, world: &World, seconds: i64) -> bool {
    let record = world.session(world.owner.id, at(seconds));
    let outcome = repos.sessions.create(record, KIND, TTL, audit_at("session.created", at(seconds))).await;
    outcome.expect("create").is_err()
}

pub async fn release_gives_the_workers_slot_back(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let worker = repos.workers.register_worker(KIND, "solo", 1, at(0)).await.expect("register");
    let (session, lease) = world.start(repos, at(0)).await;
    assert!(no_capacity(repos, &world, 1).await, "the only slot is taken");

    let mut end = transition(session.id, &[Pending], Terminated, at(2));
    end.lease = LeaseChange::Release("session_ended".into());
    let ended = applied(repos, end).await;
    assert_eq!(ended.worker_id, Some(worker.id), "a released session still names the worker that ran it");
    assert_eq!(lease_of(repos, session.id).await, None, "the lease is released");
    assert!(!repos.workers.expired_leases(at(10_000)).await.expect("expired").contains(&lease), "and never expires");

    let (next, next_lease) = world.start(repos, at(3)).await;
    assert_eq!(next_lease.worker_id, worker.id, "the slot is free again");
    assert_eq!(lease_of(repos, next.id).await, Some(next_lease));
}

pub async fn surrender_releases_the_lease_and_forgets_the_worker(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let worker = repos.workers.register_worker(KIND, "solo", 1, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;

    let detached = surrendered(repos, &session, 1).await;
    assert_eq!(detached.worker_id, None, "no connection until a new lease");
    assert_eq!((detached.state, detached.detach_reason.as_deref()), (Detached, Some("appliance_restarted")));
    assert_eq!(lease_of(repos, session.id).await, None);
    let statuses = repos.workers.workers().await.expect("workers");
    assert!(statuses.iter().all(|status| status.leases.is_empty()));

    let (_, lease) = world.start(repos, at(5)).await;
    assert_eq!(lease.worker_id, worker.id, "the worker has room again");
}

pub async fn renew_extends_the_open_lease_from_the_transition(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "worker", 2, at(0)).await.expect("register");
    let (session, lease) = world.start(repos, at(0)).await;
    assert_eq!(lease.expires_at, plus(at(0), TTL), "reserved for the ttl from creation");
    let (other, other_lease) = world.start(repos, at(0)).await;

    // The worker is handed the session ten minutes later: its clock starts now.
    let mut handed = transition(session.id, &[Pending], Starting, at(600));
    handed.lease = LeaseChange::Renew(std_seconds(60));
    let starting = applied(repos, handed).await;
    assert_eq!(starting.worker_id, Some(lease.worker_id));
    let renewed = lease_of(repos, session.id).await.expect("still open");
    assert_eq!((renewed.id, renewed.worker_id), (lease.id, lease.worker_id), "the same lease");
    assert_eq!(renewed.expires_at, at(660));

    assert_eq!(repos.workers.expired_leases(at(650)).await.expect("expired"), vec![other_lease.clone()]);
    let expired = repos.workers.expired_leases(at(661)).await.expect("expired");
    assert_eq!(expired.len(), 2);
    assert!(expired.contains(&renewed) && expired.contains(&other_lease));
    assert_eq!(lease_of(repos, other.id).await, Some(other_lease), "other leases are untouched");
}

pub async fn acquire_reserves_a_lease_on_a_worker_with_room(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let a = repos.workers.register_worker(KIND, "worker-a", 3, at(0)).await.expect("register");
    let b = repos.workers.register_worker(KIND, "worker-b", 3, at(0)).await.expect("register");
    repos.workers.register_worker("vnc", "worker-v", 9, at(0)).await.expect("register");
    let (_, busy) = world.start(repos, at(0)).await;
    let (session, _) = world.start(repos, at(0)).await;
    let detached = surrendered(repos, &session, 1).await;
    let idle = if busy.worker_id == a.id { b.id } else { a.id };

    let mut resume = transition(session.id, &[Detached], Starting, at(100));
    resume.lease = LeaseChange::Acquire { worker_kind: KIND.into(), ttl: std_seconds(45) };
    let resumed = applied(repos, resume).await;
    assert_eq!(resumed.worker_id, Some(idle), "the least loaded worker of the kind");
    assert_eq!(resumed.state, Starting);
    assert_eq!(resumed.created_at, detached.created_at);
    let lease = lease_of(repos, session.id).await.expect("a new lease");
    assert_eq!((lease.worker_id, lease.acquired_at, lease.expires_at), (idle, at(100), at(145)));
}

pub async fn acquire_without_capacity_leaves_the_session_untouched(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "solo", 1, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;
    let detached = surrendered(repos, &session, 1).await;
    let (taker, taker_lease) = world.start(repos, at(2)).await;

    let mut resume = transition(session.id, &[Detached], Active, at(10));
    resume.reason = Some("resumed".into());
    resume.width = Some(800);
    resume.open_attachment = Some(attachment(session.id, world.owner.id, AttachmentRole::Controller, at(10)));
    resume.lease = LeaseChange::Acquire { worker_kind: KIND.into(), ttl: TTL };
    let refused = resume.audit.clone();
    assert_eq!(repos.sessions.transition(resume).await.expect("transition"), TransitionOutcome::NoCapacity);

    assert_eq!(repos.sessions.get(session.id).await.expect("get"), Some(detached), "no state change");
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), None, "no attachment");
    assert_eq!(lease_of(repos, session.id).await, None, "no lease");
    assert_not_audited(repos, &refused).await;
    assert_eq!(lease_of(repos, taker.id).await, Some(taker_lease), "the other session keeps its worker");

    repos.workers.mark_workers_offline().await.expect("offline");
    let mut retry = transition(session.id, &[Detached], Active, at(20));
    retry.lease = LeaseChange::Acquire { worker_kind: KIND.into(), ttl: TTL };
    assert_eq!(repos.sessions.transition(retry).await.expect("transition"), TransitionOutcome::NoCapacity);
}
