//! The session broker through HTTP, with the scripted worker runtime.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    OWNER_EMAIL, OWNER_PASSWORD, TestApp, assert_envelope, create_user, json_of, legacy_app_with_owner,
};
use crate::tenancy::id;

/// An office with one organization (the default one), its admin token, and
/// a staff member's token.
struct Desk {
    app: TestApp,
    admin: String,
    staff: String,
    org: String,
}

async fn desk(settings: &[(&str, &str)]) -> Desk {
    let app = legacy_app_with_owner(settings).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    let staff_id = create_user(&app, &admin, "staff@example.com", "staff password 1").await;
    let body = json!({"user_id": staff_id, "role": "org_member"});
    json_of(app.post(&format!("/api/v1/organizations/{org}/memberships"), Some(&admin), body).await, 201).await;
    let staff =
        app.login("staff@example.com", "staff password 1").await["access_token"].as_str().expect("token").to_owned();
    Desk { app, admin, staff, org }
}

impl Desk {
    async fn resource(&self, host: &str) -> String {
        let body = json!({"organization_id": self.org, "name": format!("PC {host}"), "protocol": "rdp", "host": host});
        id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await)
    }

    async fn start(&self, token: &str, resource: &str) -> Value {
        json_of(self.app.post("/api/v1/sessions", Some(token), json!({"resource_id": resource})).await, 201).await
    }

    async fn command(&self, token: &str, session: &str, command: &str) -> reqwest::Response {
        self.app.send(Method::POST, &format!("/api/v1/sessions/{session}/{command}"), Some(token), None).await
    }

    /// Polls the session until it reaches `state` (the broker moves it on
    /// worker events, which arrive asynchronously).
    async fn wait_for(&self, token: &str, session: &str, state: &str) -> Value {
        // Generous: the load test runs this for 200 sessions at once on two cores.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut pause = Duration::from_millis(10);
        loop {
            let current = json_of(self.app.get_as(&format!("/api/v1/sessions/{session}"), token).await, 200).await;
            if current["state"] == state {
                return current;
            }
            assert!(Instant::now() < deadline, "session {session} never reached {state}: {current}");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    async fn audit_actions(&self, session: &str) -> Vec<String> {
        let page = json_of(
            self.app.get_as(&format!("/api/v1/audit-events?session_id={session}&limit=500"), &self.admin).await,
            200,
        )
        .await;
        let mut actions: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|event| {
                format!(
                    "{}:{}",
                    event["action"].as_str().unwrap_or_default(),
                    event["details"]["to"].as_str().unwrap_or("-")
                )
            })
            .collect();
        actions.reverse();
        actions
    }
}

#[tokio::test]
async fn a_session_goes_through_its_whole_life() {
    let desk = desk(&[]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let started = desk.start(&desk.staff, &resource).await;
    let session = id(&started["session"]);
    assert_eq!(started["session"]["state"], "starting");
    assert_eq!(started["session"]["resource_id"], resource);
    assert_eq!(started["session"]["organization_id"], desk.org);
    assert!(started["session"]["owner_user_id"].is_string());
    assert!(started["session"]["created_at"].is_string());
    let attach = &started["attach"];
    assert!(attach["attach_token"].as_str().is_some_and(|token| token.len() >= 40));
    assert_eq!(attach["gateway_url"], "/api/v1/gateway/ws");
    assert!(attach["expires_at"].is_string());

    let active = desk.wait_for(&desk.staff, &session, "active").await;
    assert!(active["worker_id"].is_string());
    assert_eq!((active["width"].as_u64(), active["height"].as_u64()), (Some(1280), Some(800)));
    assert!(active["started_at"].is_string());
    assert!(active["controller"]["attachment_id"].is_string(), "the starter controls it: {active}");

    let detached = json_of(desk.command(&desk.staff, &session, "detach").await, 200).await;
    assert_eq!(detached["session"]["state"], "detached");
    assert_eq!(detached["session"]["controller"], Value::Null);
    let error =
        assert_envelope(desk.command(&desk.staff, &session, "detach").await, 409, "invalid_session_state").await;
    assert_eq!(error["details"], json!({"state": "detached", "command": "detach"}));

    let reattached = json_of(desk.command(&desk.staff, &session, "attach").await, 200).await;
    assert_eq!(reattached["session"]["state"], "active");
    assert_ne!(reattached["attach"]["attach_token"], attach["attach_token"], "every attach gets a fresh token");
    // Attaching again while in control reconnects the transport.
    let reconnected = json_of(desk.command(&desk.staff, &session, "attach").await, 200).await;
    assert_ne!(
        reconnected["session"]["controller"]["attachment_id"],
        reattached["session"]["controller"]["attachment_id"]
    );

    let terminated = json_of(desk.command(&desk.staff, &session, "terminate").await, 200).await;
    assert_eq!(terminated["session"]["state"], "terminated");
    assert!(terminated["session"]["ended_at"].is_string());
    for command in ["attach", "takeover", "detach", "terminate"] {
        assert_envelope(desk.command(&desk.staff, &session, command).await, 409, "invalid_session_state").await;
    }
    assert_eq!(
        desk.audit_actions(&session).await,
        [
            "session.created:pending",
            "session.state_changed:starting",
            "session.state_changed:active",
            "session.detached:detached",
            "session.attached:active",
            "session.attached:active",
            "session.terminated:terminated",
        ],
        "every transition is audited exactly once"
    );
    // The slot is free again and shows no lease.
    let workers = json_of(desk.app.get_as("/api/v1/workers", &desk.admin).await, 200).await;
    assert!(
        workers["items"].as_array().expect("items").iter().all(|worker| worker["active_sessions"] == 0),
        "{workers}"
    );
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn takeover_moves_control_between_users_and_devices() {
    let desk = desk(&[]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let session = id(&desk.start(&desk.staff, &resource).await["session"]);
    let active = desk.wait_for(&desk.staff, &session, "active").await;
    let first_controller = active["controller"].clone();

    // The admin takes over from the staff member.
    let taken = json_of(desk.command(&desk.admin, &session, "takeover").await, 200).await;
    assert_eq!(taken["session"]["state"], "active");
    assert_ne!(taken["session"]["controller"]["user_id"], first_controller["user_id"]);
    assert!(taken["attach"]["attach_token"].is_string());
    // The staff member cannot simply attach while someone else controls it…
    assert_envelope(desk.command(&desk.staff, &session, "attach").await, 409, "invalid_session_state").await;
    // …but may take it back, from a second device.
    let phone = desk
        .app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "staff@example.com", "password": "staff password 1", "device": {"name": "Phone"}}),
        )
        .await;
    let phone = json_of(phone, 200).await["access_token"].as_str().expect("token").to_owned();
    let back = json_of(desk.command(&phone, &session, "takeover").await, 200).await;
    assert_eq!(back["session"]["controller"]["user_id"], first_controller["user_id"]);
    assert_eq!(
        desk.audit_actions(&session).await.iter().filter(|action| action.starts_with("session.taken_over")).count(),
        2
    );
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn who_may_start_and_see_sessions() {
    let desk = desk(&[]).await;
    let resource = desk.resource("pc1.office.lan").await;
    // A viewer reads but does not use resources.
    let viewer_id = create_user(&desk.app, &desk.admin, "viewer@example.com", "viewer password").await;
    let body = json!({"user_id": viewer_id, "role": "org_viewer"});
    json_of(
        desk.app.post(&format!("/api/v1/organizations/{}/memberships", desk.org), Some(&desk.admin), body).await,
        201,
    )
    .await;
    let viewer = desk.app.login("viewer@example.com", "viewer password").await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_envelope(
        desk.app.post("/api/v1/sessions", Some(&viewer), json!({"resource_id": resource})).await,
        403,
        "forbidden",
    )
    .await;

    // Someone from another organization does not see the resource at all.
    let other_org = json_of(
        desk.app.post("/api/v1/organizations", Some(&desk.admin), json!({"name": "Other", "slug": "other"})).await,
        201,
    )
    .await;
    let outsider_id = create_user(&desk.app, &desk.admin, "outsider@example.com", "outsider password").await;
    let body = json!({"user_id": outsider_id, "role": "org_owner"});
    json_of(
        desk.app.post(&format!("/api/v1/organizations/{}/memberships", id(&other_org)), Some(&desk.admin), body).await,
        201,
    )
    .await;
    let outsider = desk.app.login("outsider@example.com", "outsider password").await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_envelope(
        desk.app.post("/api/v1/sessions", Some(&outsider), json!({"resource_id": resource})).await,
        404,
        "resource_not_found",
    )
    .await;

    let session = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &session, "active").await;
    // Another plain member, the viewer and the outsider do not see it.
    for token in [&viewer, &outsider] {
        assert_envelope(desk.app.get_as(&format!("/api/v1/sessions/{session}"), token).await, 404, "session_not_found")
            .await;
        assert_envelope(desk.command(token, &session, "terminate").await, 404, "session_not_found").await;
        let listed = json_of(desk.app.get_as("/api/v1/sessions", token).await, 200).await;
        assert!(!listed.to_string().contains(&session), "{listed}");
    }
    // The owner and the organization's admin do.
    let own = json_of(desk.app.get_as("/api/v1/sessions?state=active,detached", &desk.staff).await, 200).await;
    assert_eq!(own["items"].as_array().map(Vec::len), Some(1));
    assert_envelope(desk.app.get_as("/api/v1/sessions?state=sleeping", &desk.staff).await, 400, "invalid_request")
        .await;
    assert_envelope(desk.app.get_as("/api/v1/sessions/not-a-uuid", &desk.staff).await, 400, "invalid_request").await;
    assert_envelope(desk.command(&desk.staff, "not-a-uuid", "detach").await, 400, "invalid_request").await;
    assert_envelope(desk.command(&desk.staff, &session, "hibernate").await, 404, "not_found").await;
    let by_admin = json_of(desk.command(&desk.admin, &session, "terminate").await, 200).await;
    assert_eq!(by_admin["session"]["state"], "terminated");
    assert_envelope(desk.app.get_as("/api/v1/workers", &desk.staff).await, 403, "forbidden").await;

    // Bad start requests.
    let bad = [
        (json!({"resource_id": resource, "width": 10}), "width"),
        (json!({"resource_id": resource, "height": 9000}), "height"),
        (json!({"resource_id": resource, "device_id": uuid::Uuid::now_v7()}), "device_id"),
        (json!({"resource_id": "nope"}), "resource_id"),
    ];
    for (body, field) in bad {
        let error =
            assert_envelope(desk.app.post("/api/v1/sessions", Some(&desk.staff), body).await, 400, "invalid_request")
                .await;
        assert!(error["details"]["fields"].get(field).is_some(), "{field}: {error}");
    }
    let missing = json!({"resource_id": uuid::Uuid::now_v7()});
    assert_envelope(desk.app.post("/api/v1/sessions", Some(&desk.staff), missing).await, 404, "resource_not_found")
        .await;
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn each_way_a_worker_ends_is_a_precise_state() {
    let desk = desk(&[]).await;
    let cases = [
        ("fail.scripted", "failed", Some("connection_refused")),
        ("badpassword.scripted", "failed", Some("invalid_credentials")),
        ("panic.scripted", "failed", Some("worker_panicked")),
        ("logoff.scripted", "terminated", None),
    ];
    let healthy = desk.resource("pc1.office.lan").await;
    let bystander = id(&desk.start(&desk.staff, &healthy).await["session"]);
    desk.wait_for(&desk.staff, &bystander, "active").await;
    for (host, state, reason) in cases {
        let resource = desk.resource(host).await;
        let session = id(&desk.start(&desk.staff, &resource).await["session"]);
        let ended = desk.wait_for(&desk.staff, &session, state).await;
        assert_eq!(ended["failure_reason"].as_str(), reason, "{host}");
        assert!(ended["ended_at"].is_string());
    }
    let still = json_of(desk.app.get_as(&format!("/api/v1/sessions/{bystander}"), &desk.staff).await, 200).await;
    assert_eq!(still["state"], "active", "other sessions are untouched");
    let workers = json_of(desk.app.get_as("/api/v1/workers", &desk.admin).await, 200).await;
    let busy: u64 = workers["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|worker| worker["active_sessions"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(busy, 1, "ended sessions released their slots");
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_worker_that_stops_heartbeating_loses_its_session() {
    let desk = desk(&[("RAP_WORKER_LEASE_TTL", "600ms")]).await;
    let frozen = desk.resource("freeze.scripted").await;
    let healthy = desk.resource("pc1.office.lan").await;
    let wedged = id(&desk.start(&desk.staff, &frozen).await["session"]);
    let alive = id(&desk.start(&desk.staff, &healthy).await["session"]);
    desk.wait_for(&desk.staff, &alive, "active").await;
    let failed = desk.wait_for(&desk.staff, &wedged, "failed").await;
    assert_eq!(failed["failure_reason"], "worker_lost");
    // The healthy one heartbeats and keeps its lease well past the TTL.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let still = json_of(desk.app.get_as(&format!("/api/v1/sessions/{alive}"), &desk.staff).await, 200).await;
    assert_eq!(still["state"], "active");
    let workers = json_of(desk.app.get_as("/api/v1/workers", &desk.admin).await, 200).await;
    let heartbeating = workers["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|worker| worker["active_sessions"] == 1)
        .expect("busy worker");
    assert!(heartbeating["heartbeat_age_seconds"].as_f64().is_some_and(|age| age < 0.6), "{heartbeating}");
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn no_free_slot_is_a_clear_503_and_a_freed_slot_is_reused() {
    let desk = desk(&[("RAP_WORKER_SLOTS", "1")]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let first = id(&desk.start(&desk.staff, &resource).await["session"]);
    let busy = desk.app.post("/api/v1/sessions", Some(&desk.staff), json!({"resource_id": resource})).await;
    assert_eq!(busy.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("5"));
    let error = assert_envelope(busy, 503, "capacity_exhausted").await;
    assert_eq!(error["details"], json!({}));
    json_of(desk.command(&desk.staff, &first, "terminate").await, 200).await;
    let second = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &second, "active").await;
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn sessions_ended_as_fast_as_they_start_never_jam_their_slot() {
    // One slot, and each session ends before the slot has let go of the
    // one before it: the next lease waits there, and one ended while it
    // waits must give its place up (it never runs).
    let desk = desk(&[("RAP_WORKER_SLOTS", "1")]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let mut ended = Vec::new();
    for _ in 0..6 {
        let session = id(&desk.start(&desk.staff, &resource).await["session"]);
        json_of(desk.command(&desk.staff, &session, "terminate").await, 200).await;
        ended.push(session);
    }
    let last = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &last, "active").await;
    for session in ended {
        let shown = json_of(desk.app.get_as(&format!("/api/v1/sessions/{session}"), &desk.staff).await, 200).await;
        assert_eq!(shown["state"], "terminated", "{shown}");
    }
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_restart_keeps_active_and_detached_sessions_to_resume_and_fails_starting_ones() {
    let settings = [("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")];
    let desk = desk(&[]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let active = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &active, "active").await;
    let detached = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &detached, "active").await;
    let detached_at =
        json_of(desk.command(&desk.staff, &detached, "detach").await, 200).await["session"]["detached_at"].clone();
    // Still connecting when the appliance stops (this host takes 300 ms).
    let slow = desk.resource("slow.scripted").await;
    let starting = id(&desk.start(&desk.staff, &slow).await["session"]);
    let data = desk.app.data_dir_handle().await;

    let app = TestApp::start_in(data, &settings).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let staff =
        app.login("staff@example.com", "staff password 1").await["access_token"].as_str().expect("token").to_owned();
    let paths: std::collections::HashMap<&String, String> = [&active, &detached, &starting]
        .into_iter()
        .map(|session| (session, format!("/api/v1/sessions/{session}")))
        .collect();
    let get = |session: &String| app.get_as(&paths[session], &admin);
    for session in [&active, &detached] {
        let after = json_of(get(session).await, 200).await;
        assert_eq!(after["state"], "detached", "{after}");
        assert_eq!(after["detach_reason"], "appliance_restarted");
        assert_eq!(after["failure_reason"], Value::Null);
        assert_eq!(
            (after["worker_id"].clone(), after["controller"].clone()),
            (Value::Null, Value::Null),
            "no connection"
        );
        let audit = json_of(app.get_as(&format!("/api/v1/audit-events?session_id={session}"), &admin).await, 200).await;
        let last = &audit["items"][0];
        assert_eq!(
            (last["action"].as_str(), last["details"]["reason"].as_str()),
            (Some("session.detached"), Some("appliance_restarted"))
        );
    }
    assert_eq!(
        json_of(get(&detached).await, 200).await["detached_at"],
        detached_at,
        "the detached clock keeps running"
    );
    let failed = json_of(get(&starting).await, 200).await;
    assert_eq!(
        (failed["state"].as_str(), failed["failure_reason"].as_str()),
        (Some("failed"), Some("appliance_restarted"))
    );

    // The owner's attach resumes it on a new connection; an admin's takeover does too.
    let resumed =
        json_of(app.send(Method::POST, &format!("/api/v1/sessions/{active}/attach"), Some(&staff), None).await, 200)
            .await;
    assert!(resumed["attach"]["attach_token"].is_string());
    assert!(matches!(resumed["session"]["state"].as_str(), Some("starting" | "active")), "{resumed}");
    let taken = json_of(
        app.send(Method::POST, &format!("/api/v1/sessions/{detached}/takeover"), Some(&admin), None).await,
        200,
    )
    .await;
    assert!(taken["attach"]["attach_token"].is_string());
    let desk = Desk { app, admin, staff, org: String::new() };
    for session in [&active, &detached] {
        let back = desk.wait_for(&desk.admin, session, "active").await;
        assert!(back["worker_id"].is_string(), "a worker again: {back}");
        let actions = desk.audit_actions(session).await;
        assert!(actions.contains(&"session.resumed:starting".to_owned()), "{actions:?}");
        assert!(
            actions.ends_with(&["session.resumed:starting".to_owned(), "session.state_changed:active".to_owned()]),
            "{actions:?}"
        );
    }
    json_of(desk.command(&desk.staff, &active, "terminate").await, 200).await;
    let workers = json_of(desk.app.get_as("/api/v1/workers", &desk.admin).await, 200).await;
    let items = workers["items"].as_array().expect("items");
    assert_eq!(items.len(), 8, "the same eight slots, re-registered: {workers}");
    assert_eq!(items.iter().map(|worker| worker["active_sessions"].as_u64().unwrap_or(0)).sum::<u64>(), 1, "{workers}");
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn sessions_left_detached_too_long_are_reaped_restarted_ones_too() {
    let settings = [("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"), ("RAP_DETACHED_SESSION_TIMEOUT", "1s")];
    let desk = desk(&[("RAP_DETACHED_SESSION_TIMEOUT", "1s")]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let session = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &session, "active").await;
    json_of(desk.command(&desk.staff, &session, "detach").await, 200).await;
    let ended = desk.wait_for(&desk.staff, &session, "terminated").await;
    assert!(ended["ended_at"].is_string());
    let actions = desk.audit_actions(&session).await;
    assert_eq!(actions.last().map(String::as_str), Some("session.terminated:terminated"), "{actions:?}");

    // An active session carried across a restart is detached there, and
    // the same timeout ends it if nobody comes back.
    let kept = id(&desk.start(&desk.staff, &resource).await["session"]);
    desk.wait_for(&desk.staff, &kept, "active").await;
    let data = desk.app.data_dir_handle().await;
    let app = TestApp::start_in(data, &settings).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let desk = Desk { app, admin: admin.clone(), staff: admin, org: String::new() };
    desk.wait_for(&desk.admin, &kept, "terminated").await;
    let page =
        json_of(desk.app.get_as(&format!("/api/v1/audit-events?session_id={kept}"), &desk.admin).await, 200).await;
    assert_eq!(page["items"][0]["details"]["reason"], "detached_timeout", "{page}");
    desk.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn production_sessions_need_a_stored_secret_and_clean_metadata() {
    use base64::Engine;
    let desk = desk(&[]).await;
    let plain = json!({"organization_id": desk.org, "name": "Legacy", "protocol": "rdp", "host": "pc1.office.lan",
        "metadata": {"username": "svc", "password": "plain"}});
    let plain = id(&json_of(desk.app.post("/api/v1/resources", Some(&desk.admin), plain).await, 201).await);
    let bare = desk.resource("pc2.office.lan").await;
    let stored = desk.resource("pc3.office.lan").await;
    let secret = json!({"username": "svc", "password": "stored secret"});
    json_of(
        desk.app
            .send(Method::PUT, &format!("/api/v1/resources/{stored}/secret"), Some(&desk.admin), Some(secret))
            .await,
        200,
    )
    .await;
    let data = desk.app.data_dir_handle().await;

    // The same data, now run as production (strict authority, configured keys).
    let root = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let root_public = base64::engine::general_purpose::STANDARD.encode(root.verifying_key().as_bytes());
    let dev_key = std::fs::read(data.path().join("keys/secret-encryption.key")).expect("development key");
    let secret_key = base64::engine::general_purpose::STANDARD.encode(dev_key);
    let app = TestApp::start_in(
        data,
        &[
            ("APP_ENV", "production"),
            ("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64", root_public.as_str()),
            ("SECRET_ENCRYPTION_KEY_B64", secret_key.as_str()),
            ("RAP_WORKER_RUNTIME", "rdp"),
        ],
    )
    .await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let error = assert_envelope(
        app.post("/api/v1/sessions", Some(&admin), json!({"resource_id": plain})).await,
        400,
        "plaintext_secret_forbidden",
    )
    .await;
    assert!(error["details"]["fields"].get("metadata.password").is_some());
    assert_envelope(
        app.post("/api/v1/sessions", Some(&admin), json!({"resource_id": bare})).await,
        400,
        "secret_required",
    )
    .await;
    // With its secret stored the guard passes and an RDP slot takes it.
    let started = json_of(app.post("/api/v1/sessions", Some(&admin), json!({"resource_id": stored})).await, 201).await;
    assert_eq!(started["session"]["state"], "starting");
    app.stop().await.expect("clean stop");
}

/// The broker under load: 200 clients at once, with a 3 s lease (a
/// heartbeat a second), so a heartbeat that waits behind the event queue or
/// the database shows up as a false `worker_lost` at once. Its own runtime
/// has both cores, as the appliance does in production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_session_cycles_lose_nothing() {
    let desk = desk(&[("RAP_WORKER_SLOTS", "200"), ("RAP_WORKER_LEASE_TTL", "3s")]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let desk = std::sync::Arc::new(desk);
    let cycles = (0..200).map(|_| {
        let desk = desk.clone();
        let resource = resource.clone();
        tokio::spawn(async move {
            let session = id(&desk.start(&desk.staff, &resource).await["session"]);
            desk.wait_for(&desk.staff, &session, "active").await;
            json_of(desk.command(&desk.staff, &session, "detach").await, 200).await;
            json_of(desk.command(&desk.staff, &session, "attach").await, 200).await;
            json_of(desk.command(&desk.staff, &session, "terminate").await, 200).await;
            session
        })
    });
    let sessions: Vec<String> =
        futures_util::future::join_all(cycles).await.into_iter().map(|outcome| outcome.expect("cycle")).collect();
    assert_eq!(sessions.len(), 200);
    for session in &sessions {
        let ended = json_of(desk.app.get_as(&format!("/api/v1/sessions/{session}"), &desk.staff).await, 200).await;
        assert_eq!(ended["state"], "terminated");
        assert_eq!(
            desk.audit_actions(session).await.len(),
            6,
            "created, assigned, connected, detached, attached, terminated"
        );
    }
    let workers = json_of(desk.app.get_as("/api/v1/workers", &desk.admin).await, 200).await;
    assert!(workers["items"].as_array().expect("items").iter().all(|worker| worker["active_sessions"] == 0));
    let desk = std::sync::Arc::into_inner(desk).expect("sole owner");
    desk.app.stop().await.expect("clean stop");
}

/// Attach tokens are redeemed by the gateway; here the broker's own redeem
/// is called directly (the gateway tests do it over a real WebSocket).
#[tokio::test]
async fn attach_tokens_are_single_use_and_short_lived() {
    use rap_appliance::audit::RequestContext;
    use rap_appliance::auth::{DeviceRequestInput, LoginRequest};
    use rap_appliance::installation::BootstrapOwner;
    use rap_appliance::resource::ResourceInput;
    use rap_appliance::sessionbroker::StartRequest;

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_string_lossy().into_owned();
    let config = rap_appliance::Config::from_pairs([
        ("APP_DATA_DIR", data.as_str()),
        ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"),
        ("RAP_ATTACH_TOKEN_TTL", "300ms"),
        ("RAP_WORKER_RUNTIME", "scripted"),
    ])
    .expect("config");
    let store = rap_storage::sqlite::SqliteStore::start(dir.path().join("rap.sqlite3"), 1).expect("store");
    store.migrate().await.expect("migrate");
    let state =
        rap_appliance::state::AppState::build(config, store.repositories(), Default::default()).await.expect("state");
    // Worker slot rows so the broker can place sessions (nothing runs them).
    for name in ["slot-001", "slot-002"] {
        store
            .repositories()
            .workers
            .register_worker("scripted", name, 1, time::OffsetDateTime::now_utc())
            .await
            .expect("worker");
    }
    let context = RequestContext::default();
    let owner = BootstrapOwner {
        email: OWNER_EMAIL.into(),
        password: OWNER_PASSWORD.into(),
        display_name: "O".into(),
        activation: None,
        setup_code: None,
    };
    let created = state.installation().bootstrap_owner(owner, &context).await.expect("bootstrap");
    let login = LoginRequest {
        email: OWNER_EMAIL.into(),
        password: OWNER_PASSWORD.into(),
        device: DeviceRequestInput::default(),
    };
    let principal = state
        .auth()
        .authenticate(&state.auth().login(login, &context).await.expect("login").access_token)
        .await
        .expect("principal");
    let input = ResourceInput {
        organization_id: created.organization.id,
        name: "PC".into(),
        protocol: "rdp".into(),
        host: "pc1".into(),
        port: None,
        certificate_verification_mode: None,
        certificate_fingerprint: None,
        metadata: None,
        policy: None,
    };
    let resource = state.resources().create(&principal, input, &context).await.expect("resource");
    let request = StartRequest::for_resource(resource.id);
    let (view, offer) = state.broker().start(&principal, request, &context).await.expect("start");

    let grant = state.broker().redeem(&offer.attach_token).await.expect("first use");
    assert_eq!(grant.session_id, view.session.id);
    assert_eq!(grant.role, rap_storage::types::AttachmentRole::Controller);
    assert_eq!(Some(grant.attachment_id), view.controller.as_ref().map(|controller| controller.id));
    assert_eq!(state.broker().redeem(&offer.attach_token).await, None, "a token works once");
    assert_eq!(state.broker().redeem("made-up-token").await, None);

    let request = StartRequest::for_resource(resource.id);
    let (_, late) = state.broker().start(&principal, request, &context).await.expect("second start");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(state.broker().redeem(&late.attach_token).await, None, "an expired token is refused");
    store.close().await;
}

#[tokio::test]
async fn a_protocol_without_a_runtime_is_refused_before_anything_is_written() {
    let desk = desk(&[]).await;
    let installation = json_of(desk.app.get("/api/v1/installation").await, 200).await;
    assert_eq!(installation["session_protocols"], json!(["rdp"]));
    for (protocol, port) in [("vnc", 5900), ("ssh", 22)] {
        let body = json!({"organization_id": desk.org, "name": protocol, "protocol": protocol, "host": "pc1.office.lan", "port": port});
        let resource = id(&json_of(desk.app.post("/api/v1/resources", Some(&desk.admin), body).await, 201).await);
        let refused = desk.app.post("/api/v1/sessions", Some(&desk.staff), json!({"resource_id": resource})).await;
        let error = assert_envelope(refused, 422, "protocol_unsupported").await;
        assert_eq!(error["details"]["protocol"], protocol);
    }
    let sessions = json_of(desk.app.get_as("/api/v1/sessions", &desk.admin).await, 200).await;
    assert_eq!(sessions["items"], json!([]), "no session row");
    let audit =
        json_of(desk.app.get_as(&format!("/api/v1/audit-events?organization_id={}", desk.org), &desk.admin).await, 200)
            .await;
    let actions: Vec<&str> =
        audit["items"].as_array().expect("items").iter().filter_map(|event| event["action"].as_str()).collect();
    assert!(!actions.iter().any(|action| action.starts_with("session.")), "no session audit: {actions:?}");
    let workers = json_of(desk.app.get_as("/api/v1/workers", &desk.admin).await, 200).await;
    assert!(workers["items"].as_array().expect("items").iter().all(|worker| worker["leases"] == json!([])), "no lease");
    desk.app.stop().await.expect("clean stop");
}

/// The seed: `remote_sessions.metadata` keeps the `secret_ref`; resolved
/// credentials exist only in the transient worker assignment.
#[tokio::test]
async fn a_started_session_stores_its_secret_ref_and_never_a_credential() {
    const PASSWORD: &str = "remote password that must stay secret";
    let desk = desk(&[]).await;
    let resource = desk.resource("pc1.office.lan").await;
    let secret = json!({"username": "svc", "password": PASSWORD, "domain": "OFFICE"});
    let stored = json_of(
        desk.app
            .send(Method::PUT, &format!("/api/v1/resources/{resource}/secret"), Some(&desk.admin), Some(secret))
            .await,
        200,
    )
    .await;
    // Development metadata credentials never reach the session row either.
    let body = json!({"organization_id": desk.org, "name": "Legacy", "protocol": "rdp", "host": "pc2.office.lan",
        "metadata": {"username": "u", "password": PASSWORD}});
    let legacy = id(&json_of(desk.app.post("/api/v1/resources", Some(&desk.admin), body).await, 201).await);
    let with_secret = id(&desk.start(&desk.staff, &resource).await["session"]);
    let with_metadata = id(&desk.start(&desk.staff, &legacy).await["session"]);
    desk.wait_for(&desk.staff, &with_secret, "active").await;

    let conn = rusqlite::Connection::open(desk.app.database()).expect("open");
    let metadata = |session: &str| -> Value {
        let text: String = conn
            .query_row("SELECT metadata FROM remote_sessions WHERE id = ?1", [session], |row| row.get(0))
            .expect("row");
        serde_json::from_str(&text).expect("json")
    };
    let first = metadata(&with_secret);
    assert_eq!(first["secret_ref"], stored["secret_ref"], "{first}");
    for row in [first, metadata(&with_metadata)] {
        let text = row.to_string();
        assert!(!text.contains(PASSWORD) && !text.contains("svc") && !text.contains("OFFICE"), "no credential: {text}");
    }
    drop(conn);
    desk.app.stop().await.expect("clean stop");
}

/// The seed: `platform_recovery_admin` has the same reach as a platform
/// admin (it exists to regain control), across organizations.
#[tokio::test]
async fn a_platform_recovery_admin_reaches_every_organization() {
    let desk = desk(&[]).await;
    let body = json!({"email": "recovery@example.com", "password": "recovery password 1", "display_name": "Recovery",
        "platform_role": "platform_recovery_admin"});
    json_of(desk.app.post("/api/v1/users", Some(&desk.admin), body).await, 201).await;
    let recovery = desk.app.login("recovery@example.com", "recovery password 1").await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // An organization the recovery admin is not a member of, with a session in it.
    let other =
        id(&json_of(desk.app.post("/api/v1/organizations", Some(&desk.admin), json!({"name": "Branch"})).await, 201)
            .await);
    let body = json!({"organization_id": other, "name": "Branch PC", "protocol": "rdp", "host": "pc9.branch.lan"});
    let resource = id(&json_of(desk.app.post("/api/v1/resources", Some(&desk.admin), body).await, 201).await);
    let session = id(&desk.start(&desk.admin, &resource).await["session"]);

    let organizations = json_of(desk.app.get_as("/api/v1/organizations", &recovery).await, 200).await;
    assert!(organizations["items"].as_array().expect("items").iter().any(|org| org["id"] == other.as_str()));
    json_of(desk.app.get_as(&format!("/api/v1/resources/{resource}"), &recovery).await, 200).await;
    json_of(desk.app.get_as("/api/v1/workers", &recovery).await, 200).await;
    json_of(desk.app.get_as(&format!("/api/v1/audit-events?organization_id={other}"), &recovery).await, 200).await;
    let ended = json_of(desk.command(&recovery, &session, "terminate").await, 200).await;
    assert_eq!(ended["session"]["state"], "terminated", "it manages another user's session");
    desk.app.stop().await.expect("clean stop");
}
