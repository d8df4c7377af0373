//! What the docs say is "checked in the write" or "decided inside the
//! write", raced: the same request many times at once, exactly one winner.
//! (Futures polled together; a backend with a connection pool really runs
//! them at the same time.)

use futures_util::future::join_all;
use rap_storage::Repositories;
use rap_storage::repo::{
    AuthSessionRecord, Bootstrap, DeviceRequest, GrantRecord, IdentitySourceRecord, InstallationRecord, LastOwner,
    MembershipChanges, NewLogin, RefreshTokenRecord, RotateOutcome, TransitionOutcome, UserRecord,
};
use rap_storage::types::{MembershipStatus, OrgRole, SessionState};
use rap_storage::{AuthSessionId, DeviceId};
use uuid::Uuid;

use super::support::{
    KIND, TTL, World, add_member, at, audit, audit_at, audit_log, create_organization, create_user, membership, now,
    organization, sealed, transition, user,
};

const RACERS: usize = 8;

fn token(auth_session_id: AuthSessionId, parent_id: Option<Uuid>) -> RefreshTokenRecord {
    let at = now();
    let mut token_hash = [0; 32];
    token_hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    token_hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    RefreshTokenRecord {
        id: Uuid::now_v7(),
        auth_session_id,
        token_hash,
        parent_id,
        created_at: at,
        expires_at: at + time::Duration::days(1),
        rotated_at: None,
    }
}

pub async fn concurrent_rotations_of_one_token_rotate_it_once(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let at = now();
    let session = AuthSessionRecord {
        id: AuthSessionId::generate(),
        user_id: alice.id,
        device_id: DeviceId::from_uuid(Uuid::nil()),
        created_at: at,
        last_used_at: at,
        expires_at: at + time::Duration::days(1),
        revoked_at: None,
        revoke_reason: None,
        ip: None,
        user_agent: None,
    };
    let first = token(session.id, None);
    let device = DeviceRequest { id: None, name: None, fresh_id: DeviceId::generate() };
    let login = NewLogin { device, session: session.clone(), refresh_token: first.clone(), audit: audit("auth.login") };
    repos.auth.open_session(login).await.expect("login");

    let successors: Vec<RefreshTokenRecord> = (0..RACERS).map(|_| token(session.id, Some(first.id))).collect();
    let outcomes =
        join_all(successors.iter().map(|next| repos.auth.rotate_refresh_token(first.id, next.clone(), now()))).await;
    let outcomes: Vec<RotateOutcome> = outcomes.into_iter().map(|outcome| outcome.expect("rotate")).collect();
    let rotated = outcomes.iter().filter(|outcome| **outcome == RotateOutcome::Rotated).count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, RotateOutcome::Rotated | RotateOutcome::AlreadyRotated)));

    let mut stored = 0;
    for next in &successors {
        stored += usize::from(repos.auth.find_refresh_token(next.token_hash).await.expect("find").is_some());
    }
    assert_eq!(stored, 1, "one successor, the winner's");
}

pub async fn concurrent_creates_never_exceed_capacity(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    let big = repos.workers.register_worker(KIND, "big", 3, at(0)).await.expect("register");
    let small = repos.workers.register_worker(KIND, "small", 2, at(0)).await.expect("register");

    let attempts = (0..RACERS as i64).map(|index| {
        let record = world.session(world.owner.id, at(index));
        repos.sessions.create(record, KIND, TTL, audit_at("session.created", at(index)))
    });
    let outcomes = join_all(attempts).await;
    let placed: Vec<_> = outcomes.into_iter().filter_map(|outcome| outcome.expect("create").ok()).collect();
    assert_eq!(placed.len(), 5, "exactly the capacity, no more");
    for (worker, capacity) in [(big.id, 3), (small.id, 2)] {
        let count = placed.iter().filter(|(_, lease)| lease.worker_id == worker).count();
        assert_eq!(count, capacity, "every slot used once");
    }
    assert_eq!(repos.sessions.count_open().await.expect("count"), 5);
    let statuses = repos.workers.workers().await.expect("workers");
    assert!(statuses.iter().all(|status| status.leases.len() <= status.worker.capacity as usize));
}

pub async fn concurrent_transitions_from_one_state_apply_once(repos: &Repositories) {
    let world = World::build(repos, "acme").await;
    repos.workers.register_worker(KIND, "worker", 1, at(0)).await.expect("register");
    let (session, _) = world.start(repos, at(0)).await;

    let racers: Vec<_> = (0..RACERS as i64)
        .map(|index| transition(session.id, &[SessionState::Pending], SessionState::Starting, at(10 + index)))
        .collect();
    let audits: Vec<Uuid> = racers.iter().map(|racer| racer.audit.id).collect();
    let outcomes = join_all(racers.into_iter().map(|racer| repos.sessions.transition(racer))).await;
    let outcomes: Vec<TransitionOutcome> = outcomes.into_iter().map(|outcome| outcome.expect("transition")).collect();
    let applied = outcomes.iter().filter(|outcome| matches!(outcome, TransitionOutcome::Applied(_))).count();
    let raced = outcomes.iter().filter(|outcome| **outcome == TransitionOutcome::Raced).count();
    assert_eq!((applied, raced), (1, RACERS - 1));

    let log = audit_log(repos).await;
    let written = audits.iter().filter(|id| log.iter().any(|event| event.id == **id)).count();
    assert_eq!(written, 1, "only the applied transition is audited");
}

pub async fn owners_demoting_each_other_at_once_keep_one_owner(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let first = add_member(repos, acme.id, alice.id, OrgRole::OrgOwner).await;
    let second = add_member(repos, acme.id, bob.id, OrgRole::OrgOwner).await;

    let demote = MembershipChanges { role: Some(OrgRole::OrgAdmin), status: None };
    let disable = MembershipChanges { role: None, status: Some(MembershipStatus::Disabled) };
    let organizations = &repos.organizations;
    let (one, two) = futures_util::join!(
        organizations.update_membership(acme.id, first.id, demote, now(), audit("membership.updated")),
        organizations.update_membership(acme.id, second.id, disable, now(), audit("membership.updated")),
    );
    let (one, two) = (one.expect("update"), two.expect("update"));
    assert_eq!(usize::from(one.is_ok()) + usize::from(two.is_ok()), 1, "{one:?} {two:?}");
    assert!(one == Err(LastOwner) || two == Err(LastOwner));

    let members = repos.organizations.memberships(acme.id).await.expect("memberships");
    let owners = members.iter().filter(|m| m.role == OrgRole::OrgOwner && m.status == MembershipStatus::Active);
    assert_eq!(owners.count(), 1, "the organization keeps an active owner");
}

pub async fn concurrent_reseals_from_one_key_apply_once(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let created_at = now();
    let source = IdentitySourceRecord {
        id: Uuid::now_v7(),
        organization_id: acme.id,
        kind: "ldap".into(),
        name: "directory".into(),
        config: serde_json::json!({}),
        enabled: true,
        sealed_secrets: Some(sealed("key-1", 0)),
        created_at,
        updated_at: created_at,
    };
    repos.identity_sources.create(source.clone(), audit("identity_source.created")).await.expect("create");

    let attempts = (0..RACERS as u8)
        .map(|seed| repos.identity_sources.reseal(source.id, sealed("key-2", seed + 1), "key-1", audit("x")));
    let outcomes: Vec<bool> = join_all(attempts).await.into_iter().map(|outcome| outcome.expect("reseal")).collect();
    assert_eq!(outcomes.iter().filter(|won| **won).count(), 1, "{outcomes:?}");
    let winner = outcomes.iter().position(|won| *won).expect("a winner") as u8;
    let stored = repos.identity_sources.get(acme.id, source.id).await.expect("get").expect("source");
    assert_eq!(stored.sealed_secrets, Some(sealed("key-2", winner + 1)), "the winner's blob");
}

pub async fn concurrent_bootstraps_write_one_owner(repos: &Repositories) {
    let installation =
        InstallationRecord { installation_id: Uuid::now_v7(), authority_mode: "strict".into(), created_at: now() };
    repos.installation.get_or_create(installation.clone()).await.expect("installation");
    let bootstraps: Vec<Bootstrap> = (0..RACERS)
        .map(|index| {
            let owner = UserRecord {
                platform_role: Some("platform_admin".into()),
                ..user(&format!("owner{index}@example.com"))
            };
            let default_organization = organization(&format!("org-{index}"));
            Bootstrap {
                grant: GrantRecord {
                    id: Uuid::now_v7(),
                    user_id: owner.id,
                    role: "platform_admin".into(),
                    installation_id: installation.installation_id,
                    signature: vec![1; 64],
                    signing_key_id: "key".into(),
                    granted_at: owner.created_at,
                },
                membership: membership(default_organization.id, owner.id, OrgRole::OrgOwner),
                owner,
                default_organization,
                audit: audit("installation.bootstrapped"),
            }
        })
        .collect();
    let outcomes = join_all(bootstraps.iter().map(|bootstrap| repos.installation.bootstrap(bootstrap.clone()))).await;
    let outcomes: Vec<bool> = outcomes.into_iter().map(|outcome| outcome.expect("bootstrap").is_some()).collect();
    assert_eq!(outcomes.iter().filter(|won| **won).count(), 1, "{outcomes:?}");

    let mut owners = 0;
    for bootstrap in &bootstraps {
        owners += usize::from(repos.users.get(bootstrap.owner.id).await.expect("get").is_some());
    }
    assert_eq!(owners, 1, "one first owner");
}
