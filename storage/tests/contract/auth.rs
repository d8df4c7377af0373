//! AuthRepository: logins (a device, an auth session, its first refresh
//! token), rotation with reuse detection, revocation of sessions and devices.

use rap_storage::Repositories;
use rap_storage::repo::{AuthSessionRecord, DeviceRecord, DeviceRequest, NewLogin, RefreshTokenRecord, RotateOutcome};
use rap_storage::{AuthSessionId, DeviceId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::support::{assert_audited, assert_not_audited, audit, create_user, now};

fn token_hash() -> [u8; 32] {
    let mut hash = [0; 32];
    hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    hash
}

fn refresh_token(auth_session_id: AuthSessionId, parent_id: Option<Uuid>, at: OffsetDateTime) -> RefreshTokenRecord {
    RefreshTokenRecord {
        id: Uuid::now_v7(),
        auth_session_id,
        token_hash: token_hash(),
        parent_id,
        created_at: at,
        expires_at: at + time::Duration::days(14),
        rotated_at: None,
    }
}

fn login(user_id: UserId, device: Option<DeviceId>, at: OffsetDateTime) -> NewLogin {
    let session = AuthSessionRecord {
        id: AuthSessionId::generate(),
        user_id,
        device_id: DeviceId::from_uuid(Uuid::nil()),
        created_at: at,
        last_used_at: at,
        expires_at: at + time::Duration::days(14),
        revoked_at: None,
        revoke_reason: None,
        ip: Some("192.0.2.10".into()),
        user_agent: Some("contract-suite".into()),
    };
    NewLogin {
        device: DeviceRequest { id: device, name: Some("laptop".into()), fresh_id: DeviceId::generate() },
        refresh_token: refresh_token(session.id, None, at),
        session,
        audit: audit("auth.login"),
    }
}

/// Logs in and returns the login as written, with the device actually used.
async fn logged_in(repos: &Repositories, user_id: UserId, device: Option<DeviceId>) -> (NewLogin, DeviceRecord) {
    let request = login(user_id, device, now());
    let device = repos.auth.open_session(request.clone()).await.expect("login");
    (request, device)
}

async fn session(repos: &Repositories, id: AuthSessionId) -> AuthSessionRecord {
    repos.auth.get_session(id).await.expect("get session").expect("the session exists")
}

pub async fn a_login_opens_a_session_with_its_refresh_token(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let request = login(alice.id, None, now());
    let device = repos.auth.open_session(request.clone()).await.expect("login");

    assert_eq!(device.id, request.device.fresh_id, "no id asked for: the fresh one");
    assert_eq!((device.user_id, device.name.as_deref(), device.trusted), (alice.id, Some("laptop"), false));
    assert_eq!(device.revoked_at, None);
    let expected = AuthSessionRecord { device_id: device.id, ..request.session.clone() };
    assert_eq!(session(repos, expected.id).await, expected);

    let found = repos.auth.find_refresh_token(request.refresh_token.token_hash).await.expect("find");
    assert_eq!(found, Some((request.refresh_token.clone(), expected.clone())));
    assert_eq!(repos.auth.find_refresh_token(token_hash()).await.expect("find"), None);
    assert_eq!(repos.auth.list_sessions(alice.id).await.expect("sessions"), vec![expected]);
    assert_eq!(repos.auth.list_devices(alice.id).await.expect("devices"), vec![device]);
    assert_audited(repos, &request.audit).await;
}

pub async fn a_login_reuses_only_the_users_own_open_device(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let (_, laptop) = logged_in(repos, alice.id, None).await;

    let (again, same) = logged_in(repos, alice.id, Some(laptop.id)).await;
    assert_eq!(same.id, laptop.id, "the user's own device is found again");
    assert_eq!(session(repos, again.session.id).await.device_id, laptop.id);

    let (theft, bobs) = logged_in(repos, bob.id, Some(laptop.id)).await;
    assert_eq!(bobs.id, theft.device.fresh_id, "someone else's device id is never shared");
    assert_eq!(bobs.user_id, bob.id);

    let (free, chosen) = logged_in(repos, alice.id, Some(DeviceId::generate())).await;
    assert!(chosen.id == free.device.id.expect("asked") || chosen.id == free.device.fresh_id);
    assert_eq!(chosen.user_id, alice.id);

    repos.auth.revoke_device(alice.id, laptop.id, now(), audit("device.revoked")).await.expect("revoke").expect("hers");
    let (after, fresh) = logged_in(repos, alice.id, Some(laptop.id)).await;
    assert_eq!(fresh.id, after.device.fresh_id, "a revoked device is not used again");
    assert_eq!(fresh.revoked_at, None);
}

pub async fn rotation_replaces_the_token_and_extends_the_session(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let (request, _) = logged_in(repos, alice.id, None).await;
    let old = request.refresh_token;
    let later = now() + time::Duration::minutes(10);
    let next = refresh_token(request.session.id, Some(old.id), later);

    assert_eq!(
        repos.auth.rotate_refresh_token(old.id, next.clone(), later).await.expect("rotate"),
        RotateOutcome::Rotated
    );

    let (stored_next, open) =
        repos.auth.find_refresh_token(next.token_hash).await.expect("find").expect("the successor");
    assert_eq!(stored_next, next);
    assert_eq!((open.last_used_at, open.expires_at, open.revoked_at), (later, next.expires_at, None));
    let (stored_old, _) = repos.auth.find_refresh_token(old.token_hash).await.expect("find").expect("kept");
    assert_eq!(stored_old.rotated_at, Some(later), "the old token is marked rotated");
}

pub async fn a_reused_refresh_token_is_detected_and_its_family_revoked(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let (request, _) = logged_in(repos, alice.id, None).await;
    let family = request.session.id;
    let old = request.refresh_token;
    let next = refresh_token(family, Some(old.id), now());
    assert_eq!(
        repos.auth.rotate_refresh_token(old.id, next.clone(), now()).await.expect("rotate"),
        RotateOutcome::Rotated
    );

    // The old token shows up again: the store says so, and writes nothing.
    let replay = refresh_token(family, Some(old.id), now());
    let outcome = repos.auth.rotate_refresh_token(old.id, replay.clone(), now()).await.expect("rotate");
    assert_eq!(outcome, RotateOutcome::AlreadyRotated);
    assert_eq!(repos.auth.find_refresh_token(replay.token_hash).await.expect("find"), None);
    let (successor, _) = repos.auth.find_refresh_token(next.token_hash).await.expect("find").expect("successor");
    assert_eq!(successor.rotated_at, None);

    // The caller treats it as reuse and revokes the whole family.
    let revoked = audit("auth.refresh_token_reused");
    let at = now();
    assert!(repos.auth.revoke_session(family, "refresh_token_reused", at, revoked.clone()).await.expect("revoke"));
    let closed = session(repos, family).await;
    assert_eq!((closed.revoked_at, closed.revoke_reason.as_deref()), (Some(at), Some("refresh_token_reused")));
    assert_audited(repos, &revoked).await;

    let third = refresh_token(family, Some(next.id), now());
    let outcome = repos.auth.rotate_refresh_token(next.id, third.clone(), now()).await.expect("rotate");
    assert_eq!(outcome, RotateOutcome::SessionClosed, "the successor dies with its family");
    assert_eq!(repos.auth.find_refresh_token(third.token_hash).await.expect("find"), None);
    let (successor, session) = repos.auth.find_refresh_token(next.token_hash).await.expect("find").expect("kept");
    assert_eq!(successor.rotated_at, None);
    assert!(session.revoked_at.is_some(), "a token is found with its revoked session");
}

pub async fn rotation_in_an_expired_session_is_session_closed(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let (request, _) = logged_in(repos, alice.id, None).await;
    let old = request.refresh_token;
    let late = request.session.expires_at + time::Duration::seconds(1);
    let next = refresh_token(request.session.id, Some(old.id), late);

    let outcome = repos.auth.rotate_refresh_token(old.id, next.clone(), late).await.expect("rotate");
    assert_eq!(outcome, RotateOutcome::SessionClosed);
    assert_eq!(repos.auth.find_refresh_token(next.token_hash).await.expect("find"), None);
    let (stored_old, open) = repos.auth.find_refresh_token(old.token_hash).await.expect("find").expect("kept");
    assert_eq!(stored_old.rotated_at, None, "nothing was rotated");
    assert_eq!(open.expires_at, request.session.expires_at, "nor extended");
}

pub async fn a_session_is_revoked_once(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let (request, _) = logged_in(repos, alice.id, None).await;
    let (other, _) = logged_in(repos, alice.id, None).await;

    let logout = audit("auth.logout");
    let at = now();
    assert!(repos.auth.revoke_session(request.session.id, "logout", at, logout.clone()).await.expect("revoke"));
    assert_audited(repos, &logout).await;
    let again = audit("auth.logout");
    assert!(!repos.auth.revoke_session(request.session.id, "logout", now(), again.clone()).await.expect("revoke"));
    assert_not_audited(repos, &again).await;
    let revoked = session(repos, request.session.id).await;
    assert_eq!(
        (revoked.revoked_at, revoked.revoke_reason.as_deref()),
        (Some(at), Some("logout")),
        "the first revocation stays"
    );

    let nobody = audit("auth.logout");
    assert!(
        !repos.auth.revoke_session(AuthSessionId::generate(), "logout", now(), nobody.clone()).await.expect("revoke")
    );
    assert_not_audited(repos, &nobody).await;
    assert_eq!(session(repos, other.session.id).await.revoked_at, None, "other sessions stay open");
    let listed = repos.auth.list_sessions(alice.id).await.expect("sessions");
    assert!(listed.contains(&session(repos, other.session.id).await), "the open session is listed");
    assert!(listed.iter().all(|s| s.user_id == alice.id && (s.id != revoked.id || *s == revoked)), "{listed:?}");
}

pub async fn device_trust_is_set_only_on_the_users_own_open_device(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let (_, laptop) = logged_in(repos, alice.id, None).await;

    let at = now();
    let trusted = audit("device.trusted");
    let device = repos.auth.set_device_trust(alice.id, laptop.id, true, at, trusted.clone()).await.expect("trust");
    let device = device.expect("her own device");
    assert_eq!((device.id, device.trusted, device.trusted_at), (laptop.id, true, Some(at)));
    assert_eq!(repos.auth.list_devices(alice.id).await.expect("devices"), vec![device]);
    assert_audited(repos, &trusted).await;

    let foreign = audit("device.trusted");
    assert_eq!(
        repos.auth.set_device_trust(bob.id, laptop.id, false, now(), foreign.clone()).await.expect("trust"),
        None
    );
    assert_not_audited(repos, &foreign).await;
    let untrusted = repos.auth.set_device_trust(alice.id, laptop.id, false, now(), audit("device.untrusted")).await;
    assert_eq!(untrusted.expect("untrust").map(|device| device.trusted), Some(false));

    repos.auth.revoke_device(alice.id, laptop.id, now(), audit("device.revoked")).await.expect("revoke").expect("hers");
    let late = audit("device.trusted");
    assert_eq!(repos.auth.set_device_trust(alice.id, laptop.id, true, now(), late.clone()).await.expect("trust"), None);
    assert_not_audited(repos, &late).await;
}

pub async fn revoking_a_device_revokes_its_open_sessions(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let (first, laptop) = logged_in(repos, alice.id, None).await;
    let (second, _) = logged_in(repos, alice.id, Some(laptop.id)).await;
    let (closed, _) = logged_in(repos, alice.id, Some(laptop.id)).await;
    let (elsewhere, phone) = logged_in(repos, alice.id, None).await;
    repos.auth.revoke_session(closed.session.id, "logout", now(), audit("auth.logout")).await.expect("logout");
    let closed_before = session(repos, closed.session.id).await;

    let foreign = audit("device.revoked");
    assert_eq!(repos.auth.revoke_device(bob.id, laptop.id, now(), foreign.clone()).await.expect("revoke"), None);
    assert_not_audited(repos, &foreign).await;

    let at = now();
    let revoked = audit("device.revoked");
    let ids = repos.auth.revoke_device(alice.id, laptop.id, at, revoked.clone()).await.expect("revoke");
    let mut ids = ids.expect("her device");
    ids.sort();
    let mut expected = vec![first.session.id, second.session.id];
    expected.sort();
    assert_eq!(ids, expected, "exactly the device's open sessions");
    for id in &expected {
        assert_eq!(session(repos, *id).await.revoked_at, Some(at));
    }
    assert_eq!(session(repos, closed.session.id).await, closed_before, "an already closed session is left as it was");
    assert_eq!(session(repos, elsewhere.session.id).await.revoked_at, None, "other devices' sessions stay open");
    assert_audited(repos, &revoked).await;

    let devices = repos.auth.list_devices(alice.id).await.expect("devices");
    assert!(devices.iter().any(|device| device.id == phone.id && device.revoked_at.is_none()));
    assert!(devices.iter().all(|device| device.id != laptop.id || device.revoked_at.is_some()));
    let twice = audit("device.revoked");
    assert_eq!(repos.auth.revoke_device(alice.id, laptop.id, now(), twice.clone()).await.expect("revoke"), None);
    assert_not_audited(repos, &twice).await;
}

pub async fn disabling_a_user_revokes_every_open_session_of_theirs(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let (laptop, _) = logged_in(repos, alice.id, None).await;
    let (phone, _) = logged_in(repos, alice.id, None).await;
    let (other, _) = logged_in(repos, bob.id, None).await;

    let at = now();
    let disabled = audit("user.disabled");
    let (user, ids) = repos
        .auth
        .set_user_disabled(alice.id, true, at, disabled.clone())
        .await
        .expect("disable")
        .expect("alice exists");
    assert!(user.disabled);
    assert_eq!(user.updated_at, at);
    let mut ids = ids;
    ids.sort();
    let mut expected = vec![laptop.session.id, phone.session.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(session(repos, laptop.session.id).await.revoke_reason.as_deref(), Some("user_disabled"));
    assert_eq!(session(repos, other.session.id).await.revoked_at, None, "bob is untouched");
    assert!(repos.users.get(alice.id).await.expect("get").expect("alice").disabled);
    assert_audited(repos, &disabled).await;

    let enabled = repos.auth.set_user_disabled(alice.id, false, now(), audit("user.enabled")).await.expect("enable");
    let (user, ids) = enabled.expect("alice exists");
    assert!(!user.disabled);
    assert!(ids.is_empty(), "enabling revokes nothing and reopens nothing");
    assert!(session(repos, laptop.session.id).await.revoked_at.is_some());

    let nobody = audit("user.disabled");
    assert_eq!(
        repos.auth.set_user_disabled(UserId::generate(), true, now(), nobody.clone()).await.expect("disable"),
        None
    );
    assert_not_audited(repos, &nobody).await;
}
