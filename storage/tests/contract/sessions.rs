//! SessionRepository: placement on create, conditional transitions,
//! attachments, and the listings the broker and the API use.

use rap_storage::{OrgId, SessionId, UserId, WorkerId};
use std::collections::HashMap;

use rap_storage::Repositories;
use rap_storage::repo::{OrgScope, SessionRecord, SessionScope, TransitionOutcome};
use rap_storage::types::{AttachmentRole, OrgRole, SessionState};
use uuid::Uuid;

use super::support::{
    KIND, TTL, World, add_member, assert_audited, assert_not_audited, at, attachment, audit_at, create_resource,
    create_user, sorted, transition,
};

use SessionState::{Active, Detached, Failed, Pending, Starting, Terminated};

pub async fn applied(repos: &Repositories, change: rap_storage::repo::SessionTransition) -> SessionRecord {
    let audit = change.audit.clone();
    match repos.sessions.transition(change).await.expect("transition") {
        TransitionOutcome::Applied(session) => {
            assert_eq!(repos.sessions.get(session.id).await.expect("get").as_ref(), Some(&*session));
            assert_audited(repos, &audit).await;
            *session
        }
        other => panic!("expected the transition to apply, got {other:?}"),
    }
}

/// Moves a fresh session along `path` (each step from the previous state).
pub async fn walk(repos: &Repositories, session: &SessionRecord, path: &[(SessionState, i64)]) -> SessionRecord {
    let mut current = session.clone();
    for &(to, seconds) in path {
        current = applied(repos, transition(current.id, &[current.state], to, at(seconds))).await;
    }
    current
}

fn ids(sessions: &[SessionRecord]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = sessions.iter().map(|session| session.id).collect();
    ids.sort();
    ids
}

pub async fn create_places_sessions_on_the_least_loaded_online_worker(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let a = repos.workers.register_worker(KIND, "worker-a", 2, at(0)).await.expect("register");
    let b = repos.workers.register_worker(KIND, "worker-b", 2, at(0)).await.expect("register");
    repos.workers.register_worker("vnc", "worker-v", 10, at(0)).await.expect("register");

    let mut load: HashMap<WorkerId, usize> = HashMap::from([(a.id, 0), (b.id, 0)]);
    for index in 0..4 {
        let record = world.session(world.owner.id, at(index));
        let created = audit_at("session.created", at(index));
        let outcome = repos.sessions.create(record.clone(), KIND, TTL, created.clone()).await.expect("create");
        let (session, lease) = outcome.expect("a worker has room");
        let least = *load.values().min().expect("workers");
        let chosen = load.get_mut(&lease.worker_id).expect("placed on a worker of the kind");
        assert_eq!(*chosen, least, "session {index} went to the least loaded worker");
        *chosen += 1;

        assert_eq!(session, SessionRecord { worker_id: Some(lease.worker_id), ..record });
        assert_eq!(repos.sessions.get(session.id).await.expect("get"), Some(session.clone()));
        assert_eq!((lease.session_id, lease.acquired_at, lease.renewed_at), (session.id, at(index), None));
        assert_audited(repos, &created).await;
    }
    assert_eq!(load.values().copied().collect::<Vec<_>>(), [2, 2]);

    let full = world.session(world.owner.id, at(10));
    let refused = audit_at("session.created", at(10));
    let outcome = repos.sessions.create(full.clone(), KIND, TTL, refused.clone()).await.expect("create");
    assert!(outcome.is_err(), "every worker of the kind is full: NoCapacity");
    assert_eq!(repos.sessions.get(full.id).await.expect("get"), None);
    assert_not_audited(repos, &refused).await;

    let statuses = repos.workers.workers().await.expect("workers");
    for status in statuses {
        let expected = if status.worker.kind == KIND { 2 } else { 0 };
        assert_eq!(status.leases.len(), expected, "{} holds its sessions' leases", status.worker.name);
    }
}

pub async fn create_without_an_online_worker_with_room_is_no_capacity(repos: &Repositories) {
    let world = &World::build(repos, "acme").await;
    let attempt = |seconds| async move {
        let record = world.session(world.owner.id, at(seconds));
        let event = audit_at("session.created", at(seconds));
        let outcome = repos.sessions.create(record.clone(), KIND, TTL, event.clone()).await.expect("create");
        (record, event, outcome.is_ok())
    };

    let (record, event, placed) = attempt(0).await;
    assert!(!placed, "no worker at all");
    assert_eq!(repos.sessions.get(record.id).await.expect("get"), None);
    assert_not_audited(repos, &event).await;

    repos.workers.register_worker("vnc", "other-kind", 5, at(1)).await.expect("register");
    repos.workers.register_worker(KIND, "no-room", 0, at(1)).await.expect("register");
    assert!(!attempt(2).await.2, "only other kinds, or no room");

    repos.workers.register_worker(KIND, "offline", 5, at(3)).await.expect("register");
    repos.workers.mark_workers_offline().await.expect("offline");
    let (record, event, placed) = attempt(4).await;
    assert!(!placed, "offline workers take nothing");
    assert_eq!(repos.sessions.get(record.id).await.expect("get"), None);
    assert_not_audited(repos, &event).await;
    assert_eq!(repos.sessions.count_open().await.expect("count"), 0, "nothing was written");
}

pub async fn a_transition_applies_only_from_its_from_states(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "worker", 4, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;

    let started = applied(repos, transition(session.id, &[Pending, Detached], Starting, at(1))).await;
    assert_eq!((started.state, started.updated_at), (Starting, at(1)));

    let mut late = transition(session.id, &[Pending], Active, at(2));
    late.reason = Some("ignored".into());
    late.open_attachment = Some(attachment(session.id, world.owner.id, AttachmentRole::Controller, at(2)));
    let late_audit = late.audit.clone();
    assert_eq!(repos.sessions.transition(late).await.expect("transition"), TransitionOutcome::Raced);
    assert_eq!(repos.sessions.get(session.id).await.expect("get"), Some(started), "a raced transition writes nothing");
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), None, "not even its attachment");
    assert_not_audited(repos, &late_audit).await;

    let ghost = transition(SessionId::generate(), &[Pending], Starting, at(3));
    let ghost_audit = ghost.audit.clone();
    assert_eq!(repos.sessions.transition(ghost).await.expect("transition"), TransitionOutcome::Raced, "no session");
    assert_not_audited(repos, &ghost_audit).await;
}

pub async fn transitions_record_their_reasons_and_times(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "worker", 4, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;

    let starting = walk(repos, &session, &[(Starting, 1)]).await;
    let mut activate = transition(session.id, &[Starting], Active, at(2));
    (activate.width, activate.height) = (Some(1920), Some(1080));
    activate.reason = Some("not a failure".into());
    let active = applied(repos, activate).await;
    assert_eq!((active.width, active.height), (Some(1920), Some(1080)));
    assert_eq!((active.started_at, active.failure_reason.as_deref(), active.ended_at), (Some(at(2)), None, None));
    assert_eq!(active.created_at, starting.created_at);

    let mut detach = transition(session.id, &[Active], Detached, at(3));
    detach.reason = Some("transport_closed".into());
    let detached = applied(repos, detach).await;
    assert_eq!((detached.detach_reason.as_deref(), detached.detached_at), (Some("transport_closed"), Some(at(3))));
    assert_eq!((detached.width, detached.height), (Some(1920), Some(1080)), "kept when not given");

    let resumed = walk(repos, &detached, &[(Active, 4)]).await;
    assert_eq!(resumed.detach_reason, None, "only a detached session has a detach reason");
    assert_eq!(resumed.started_at, Some(at(2)), "started once");

    let mut fail = transition(session.id, &[Active], Failed, at(5));
    fail.reason = Some("worker_lost".into());
    let failed = applied(repos, fail).await;
    assert_eq!((failed.state, failed.failure_reason.as_deref()), (Failed, Some("worker_lost")));
    assert_eq!((failed.ended_at, failed.updated_at), (Some(at(5)), at(5)));

    let (other, _) = world.start(repos, at(6)).await;
    let terminated = walk(repos, &other, &[(Starting, 7), (Active, 8), (Terminated, 9)]).await;
    assert_eq!((terminated.ended_at, terminated.failure_reason.as_deref()), (Some(at(9)), None));
}

pub async fn a_transition_ends_the_controller_and_opens_the_next(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let bob = create_user(repos, "bob@example.com").await;
    repos.workers.register_worker(KIND, "worker", 4, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;
    let session = walk(repos, &session, &[(Starting, 1)]).await;

    let first = attachment(session.id, world.owner.id, AttachmentRole::Controller, at(2));
    let mut attach = transition(session.id, &[Starting], Active, at(2));
    attach.open_attachment = Some(first.clone());
    let active = applied(repos, attach).await;
    assert_eq!(active.last_attached_at, Some(at(2)));
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), Some(first.clone()));

    // A takeover: the old controller ends and the new one opens, together.
    let second = attachment(session.id, bob.id, AttachmentRole::Controller, at(3));
    let mut takeover = transition(session.id, &[Active], Active, at(3));
    takeover.end_controller = Some("taken_over".into());
    takeover.open_attachment = Some(second.clone());
    let taken = applied(repos, takeover).await;
    assert_eq!(taken.last_attached_at, Some(at(3)));
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), Some(second.clone()));
    assert!(!repos.sessions.end_attachment(first.id, "again", at(4)).await.expect("end"), "the first one was ended");

    let mut detach = transition(session.id, &[Active], Detached, at(5));
    detach.end_controller = Some("detached".into());
    detach.reason = Some("detached".into());
    applied(repos, detach).await;
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), None);
    assert!(!repos.sessions.end_attachment(second.id, "again", at(6)).await.expect("end"));
}

pub async fn viewers_open_and_end_beside_the_controller(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let bob = create_user(repos, "bob@example.com").await;
    repos.workers.register_worker(KIND, "worker", 4, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;
    let (other, _) = world.start(repos, at(0)).await;
    let controller = attachment(session.id, world.owner.id, AttachmentRole::Controller, at(2));
    let mut attach = transition(session.id, &[Pending], Active, at(2));
    attach.open_attachment = Some(controller.clone());
    applied(repos, attach).await;

    let first = attachment(session.id, bob.id, AttachmentRole::Viewer, at(3));
    let second = attachment(session.id, world.owner.id, AttachmentRole::Viewer, at(4));
    let opened = audit_at("session.viewer_attached", at(3));
    repos.sessions.open_viewer(first.clone(), opened.clone()).await.expect("viewer");
    repos.sessions.open_viewer(second.clone(), audit_at("session.viewer_attached", at(4))).await.expect("viewer");
    assert_audited(repos, &opened).await;
    let viewers = repos.sessions.viewers(session.id).await.expect("viewers");
    assert_eq!(sorted(&viewers, |v| v.id), sorted(&[first.clone(), second.clone()], |v| v.id));
    assert_eq!(repos.sessions.viewers(other.id).await.expect("viewers"), vec![], "per session");
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), Some(controller.clone()));
    let unchanged = repos.sessions.get(session.id).await.expect("get").expect("session");
    assert_eq!(unchanged.state, Active, "a viewer changes no state");

    assert!(repos.sessions.end_attachment(first.id, "closed", at(5)).await.expect("end"));
    assert!(!repos.sessions.end_attachment(first.id, "closed", at(6)).await.expect("end"), "it was open once");
    assert!(!repos.sessions.end_attachment(Uuid::now_v7(), "closed", at(6)).await.expect("end"));
    assert_eq!(repos.sessions.viewers(session.id).await.expect("viewers"), vec![second]);
    assert!(repos.sessions.end_attachment(controller.id, "closed", at(7)).await.expect("end"));
    assert_eq!(repos.sessions.controller(session.id).await.expect("controller"), None);
}

pub async fn open_sessions_and_count_open_leave_out_ended_ones(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "worker", 10, at(0)).await.expect("register");
    assert_eq!(
        (repos.sessions.count_open().await.expect("count"), repos.sessions.open_sessions().await.expect("open")),
        (0, vec![])
    );

    let (pending, _) = world.start(repos, at(0)).await;
    let (active, _) = world.start(repos, at(0)).await;
    let active = walk(repos, &active, &[(Starting, 1), (Active, 2)]).await;
    let (detached, _) = world.start(repos, at(0)).await;
    let detached = walk(repos, &detached, &[(Active, 1), (Detached, 2)]).await;
    let (terminated, _) = world.start(repos, at(0)).await;
    walk(repos, &terminated, &[(Active, 1), (Terminated, 2)]).await;
    let (failed, _) = world.start(repos, at(0)).await;
    walk(repos, &failed, &[(Failed, 1)]).await;

    let open = repos.sessions.open_sessions().await.expect("open");
    assert_eq!(ids(&open), ids(&[pending.clone(), active.clone(), detached.clone()]));
    assert!(open.contains(&active) && open.contains(&detached), "as stored");
    assert_eq!(repos.sessions.count_open().await.expect("count"), 3);
}

pub async fn detached_before_finds_sessions_by_their_last_detach(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "worker", 10, at(0)).await.expect("register");
    let (early, _) = world.start(repos, at(0)).await;
    let early = walk(repos, &early, &[(Active, 1), (Detached, 10)]).await;
    let (late, _) = world.start(repos, at(0)).await;
    let late = walk(repos, &late, &[(Active, 1), (Detached, 30)]).await;
    let (back, _) = world.start(repos, at(0)).await;
    walk(repos, &back, &[(Active, 1), (Detached, 5), (Active, 6)]).await;
    let (again, _) = world.start(repos, at(0)).await;
    let again = walk(repos, &again, &[(Active, 1), (Detached, 5), (Active, 6), (Detached, 40)]).await;
    assert_eq!(again.detached_at, Some(at(40)), "the last detach counts");
    let (ended, _) = world.start(repos, at(0)).await;
    walk(repos, &ended, &[(Active, 1), (Detached, 2), (Terminated, 3)]).await;

    assert_eq!(repos.sessions.detached_before(at(5)).await.expect("before"), vec![]);
    assert_eq!(repos.sessions.detached_before(at(20)).await.expect("before"), vec![early.clone()]);
    let both = repos.sessions.detached_before(at(35)).await.expect("before");
    assert_eq!(ids(&both), ids(&[early.clone(), late.clone()]));
    let all = repos.sessions.detached_before(at(100)).await.expect("before");
    assert_eq!(ids(&all), ids(&[early, late, again]), "detached ones only");
}

pub async fn list_shows_owners_their_own_and_managers_everything(repos: &Repositories) {
    let acme = World::build(repos, "acme").await;
    let globex = World::build(repos, "globex").await;
    let bob = create_user(repos, "bob@example.com").await;
    add_member(repos, acme.organization.id, bob.id, OrgRole::OrgMember).await;
    add_member(repos, globex.organization.id, bob.id, OrgRole::OrgAdmin).await;
    create_resource(repos, acme.organization.id, "spare").await;
    repos.workers.register_worker(KIND, "worker", 20, at(0)).await.expect("register");
    let create = |world: &World, owner: UserId, seconds: i64| {
        let record = world.session(owner, at(seconds));
        async move {
            let outcome = repos.sessions.create(record, KIND, TTL, audit_at("session.created", at(seconds))).await;
            outcome.expect("create").expect("room").0
        }
    };
    let acme_owner = create(&acme, acme.owner.id, 1).await;
    let acme_bob = create(&acme, bob.id, 2).await;
    let globex_owner = create(&globex, globex.owner.id, 3).await;
    let globex_bob = create(&globex, bob.id, 4).await;
    let acme_bob_active = walk(repos, &create(&acme, bob.id, 5).await, &[(Active, 6)]).await;

    let list = |scope: SessionScope| async move { ids(&repos.sessions.list(scope, None, 100).await.expect("list")) };
    let scope = |organizations: OrgScope, owner: Option<UserId>, managed: Vec<OrgId>, states: Vec<SessionState>| {
        SessionScope { organizations, owner, managed, states }
    };
    let everything = [&acme_owner, &acme_bob, &globex_owner, &globex_bob, &acme_bob_active].map(Clone::clone);
    assert_eq!(list(scope(OrgScope::All, None, vec![], vec![])).await, ids(&everything));
    let bobs = list(scope(OrgScope::All, Some(bob.id), vec![], vec![])).await;
    assert_eq!(bobs, ids(&[acme_bob.clone(), globex_bob.clone(), acme_bob_active.clone()]), "his own");
    let managed = list(scope(OrgScope::All, Some(bob.id), vec![globex.organization.id], vec![])).await;
    let expected = [&acme_bob, &globex_owner, &globex_bob, &acme_bob_active].map(Clone::clone);
    assert_eq!(managed, ids(&expected), "his own, and all of the organization he manages");
    let in_acme =
        list(scope(OrgScope::Only(vec![acme.organization.id]), Some(bob.id), vec![globex.organization.id], vec![]));
    assert_eq!(in_acme.await, ids(&[acme_bob.clone(), acme_bob_active.clone()]), "within the organizations");
    let active = list(scope(OrgScope::All, None, vec![], vec![Active, Detached])).await;
    assert_eq!(active, ids(std::slice::from_ref(&acme_bob_active)), "states filter");
    let pending_bob = list(scope(OrgScope::All, Some(bob.id), vec![], vec![Pending])).await;
    assert_eq!(pending_bob, ids(&[acme_bob, globex_bob]));

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = repos.sessions.list(scope(OrgScope::All, None, vec![], vec![]), after, 2).await.expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged.len(), everything.len(), "`after` pages without repeats");
    assert_eq!(ids(&paged), ids(&everything), "or gaps");
}
