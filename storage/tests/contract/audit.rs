//! AuditRepository: events kept whole, newest first with a cursor, filtered;
//! and, across the repositories, no event for a change that did not happen.

use rap_storage::repo::{
    AuditCursor, AuditEvent, AuditQuery, LeaseChange, MembershipChanges, RotateOutcome, TransitionOutcome,
};
use rap_storage::types::{OrgRole, SessionState};
use rap_storage::{AuthSessionId, OrgId, SessionId, UserId};
use rap_storage::{Repositories, StorageError};
use uuid::Uuid;

use super::support::{
    KIND, TTL, World, add_member, at, audit, audit_at, audit_log, create_organization, create_user, now, organization,
    sealed, transition, user,
};

fn cursor(event: &AuditEvent) -> AuditCursor {
    AuditCursor { occurred_at: event.occurred_at, id: event.id }
}

/// Newest first: by time, then by id.
fn newest_first(events: &[AuditEvent]) -> Vec<Uuid> {
    let mut events = events.to_vec();
    events.sort_by_key(|event| std::cmp::Reverse((event.occurred_at, event.id)));
    events.iter().map(|event| event.id).collect()
}

async fn page_through(repos: &Repositories, query: AuditQuery) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    let mut query = query;
    loop {
        let page = repos.audit.list(query.clone()).await.expect("page");
        assert!(page.len() <= query.limit);
        let Some(last) = page.last() else { break };
        query.before = Some(cursor(last));
        all.extend(page);
    }
    all
}

pub async fn an_event_round_trips_every_field(repos: &Repositories) {
    let event = AuditEvent {
        id: Uuid::now_v7(),
        occurred_at: now(),
        organization_id: Some(OrgId::generate()),
        session_id: Some(SessionId::generate()),
        actor_user_id: Some(UserId::generate()),
        actor_kind: "user".into(),
        action: "resource.updated".into(),
        target_kind: Some("resource".into()),
        target_id: Some(Uuid::now_v7().to_string()),
        outcome: "denied".into(),
        details: serde_json::json!({"changed": ["host", "port"], "nested": {"n": 1.5, "ok": true, "none": null}}),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        ip: Some("2001:db8::1".into()),
    };
    repos.audit.append(event.clone()).await.expect("append");
    let bare = audit("system.started");
    repos.audit.append(bare.clone()).await.expect("append");
    let log = audit_log(repos).await;
    assert!(log.contains(&event), "every field as written");
    assert!(log.contains(&bare));
}

pub async fn events_page_newest_first_with_the_cursor(repos: &Repositories) {
    let org = OrgId::generate();
    let mut written = Vec::new();
    // Out of order on purpose, and three events in the same microsecond.
    for seconds in [30, 10, 50, 20, 40, 40, 40, 0] {
        let event = AuditEvent { organization_id: Some(org), ..audit_at(&format!("event.at_{seconds}"), at(seconds)) };
        repos.audit.append(event.clone()).await.expect("append");
        written.push(event);
    }
    let first = repos.audit.list(AuditQuery { organization_id: Some(org), limit: 3, ..Default::default() }).await;
    let first = first.expect("page");
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first(&written)[..3]);
    assert_eq!(first[0].occurred_at, at(50));

    let all = page_through(repos, AuditQuery { organization_id: Some(org), limit: 3, ..Default::default() }).await;
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first(&written), "no repeats, no gaps, ties too");
    let one_by_one = page_through(repos, AuditQuery { organization_id: Some(org), limit: 1, ..Default::default() });
    assert_eq!(one_by_one.await.len(), written.len());

    let older = AuditQuery {
        organization_id: Some(org),
        limit: 100,
        before: Some(AuditCursor { occurred_at: at(40), id: Uuid::max() }),
        ..Default::default()
    };
    let older = repos.audit.list(older).await.expect("page");
    let expected: Vec<Uuid> = newest_first(&written).into_iter().skip(1).collect();
    assert_eq!(older.iter().map(|e| e.id).collect::<Vec<_>>(), expected, "strictly after the cursor");
}

pub async fn events_filter_by_organization_and_session(repos: &Repositories) {
    let (acme, globex, session) = (OrgId::generate(), OrgId::generate(), SessionId::generate());
    let in_acme = AuditEvent { organization_id: Some(acme), ..audit_at("a", at(1)) };
    let in_session = AuditEvent { organization_id: Some(acme), session_id: Some(session), ..audit_at("b", at(2)) };
    let in_globex = AuditEvent { organization_id: Some(globex), ..audit_at("c", at(3)) };
    let nowhere = audit_at("d", at(4));
    for event in [&in_acme, &in_session, &in_globex, &nowhere] {
        repos.audit.append(event.clone()).await.expect("append");
    }
    let list =
        |query: AuditQuery| async move { repos.audit.list(AuditQuery { limit: 100, ..query }).await.expect("list") };

    let acme_events = list(AuditQuery { organization_id: Some(acme), ..Default::default() }).await;
    assert_eq!(acme_events, vec![in_session.clone(), in_acme.clone()]);
    let session_events = list(AuditQuery { session_id: Some(session), ..Default::default() }).await;
    assert_eq!(session_events, vec![in_session.clone()]);
    let both = list(AuditQuery { organization_id: Some(globex), session_id: Some(session), ..Default::default() });
    assert_eq!(both.await, vec![], "filters combine");
    let everything = list(AuditQuery::default()).await;
    for event in [&in_acme, &in_session, &in_globex, &nowhere] {
        assert!(everything.contains(event));
    }
}

/// One of each refusal the traits describe, each with its own audit event:
/// none of those events may be in the log afterwards.
pub async fn changes_that_did_not_happen_leave_no_audit_event(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let member = create_user(repos, "member@example.com").await;
    let lonely = create_organization(repos, "lonely").await;
    let owner = add_member(repos, lonely.id, member.id, OrgRole::OrgOwner).await;
    repos.workers.register_worker(KIND, "solo", 1, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;
    let before = audit_log(repos).await;
    let mut refused = Vec::new();

    let event = audit("user.created");
    refused.push(event.id);
    let conflict = repos.users.create(user(&world.owner.email), None, event).await;
    assert!(matches!(conflict, Err(StorageError::Conflict(_))));

    let event = audit("organization.created");
    refused.push(event.id);
    let conflict = repos.organizations.create(organization("acme"), event).await;
    assert!(matches!(conflict, Err(StorageError::Conflict(_))));

    let event = audit("membership.updated");
    refused.push(event.id);
    let demote = MembershipChanges { role: Some(OrgRole::OrgMember), status: None };
    let last = repos.organizations.update_membership(lonely.id, owner.id, demote, now(), event).await;
    assert!(last.expect("update").is_err(), "LastOwner");

    let event = audit("membership.deleted");
    refused.push(event.id);
    assert!(repos.organizations.delete_membership(lonely.id, owner.id, event).await.expect("delete").is_err());

    let mut raced = transition(session.id, &[SessionState::Active], SessionState::Detached, at(1));
    refused.push(raced.audit.id);
    raced.reason = Some("detached".into());
    assert_eq!(repos.sessions.transition(raced).await.expect("transition"), TransitionOutcome::Raced);

    let mut acquire = transition(session.id, &[SessionState::Pending], SessionState::Starting, at(2));
    refused.push(acquire.audit.id);
    acquire.lease = LeaseChange::Acquire { worker_kind: "vnc".into(), ttl: TTL };
    assert_eq!(repos.sessions.transition(acquire).await.expect("transition"), TransitionOutcome::NoCapacity);

    let event = audit_at("session.created", at(3));
    refused.push(event.id);
    let full = repos.sessions.create(world.session(world.owner.id, at(3)), KIND, TTL, event).await;
    assert!(full.expect("create").is_err(), "NoCapacity");

    let event = audit("identity_source.resealed");
    refused.push(event.id);
    assert!(!repos.identity_sources.reseal(Uuid::now_v7(), sealed("key-2", 1), "key-1", event).await.expect("reseal"));

    let event = audit("auth.logout");
    refused.push(event.id);
    assert!(!repos.auth.revoke_session(AuthSessionId::generate(), "logout", now(), event).await.expect("revoke"));

    let rotate = repos.auth.rotate_refresh_token(Uuid::now_v7(), sample_token(), now()).await.expect("rotate");
    assert_ne!(rotate, RotateOutcome::Rotated, "an unknown token rotates nothing");

    let after = audit_log(repos).await;
    assert_eq!(after, before, "the log is exactly as it was");
    assert!(refused.iter().all(|id| after.iter().all(|event| event.id != *id)));
}

fn sample_token() -> rap_storage::repo::RefreshTokenRecord {
    let at = now();
    rap_storage::repo::RefreshTokenRecord {
        id: Uuid::now_v7(),
        auth_session_id: AuthSessionId::generate(),
        token_hash: [9; 32],
        parent_id: None,
        created_at: at,
        expires_at: at + time::Duration::days(1),
        rotated_at: None,
    }
}
