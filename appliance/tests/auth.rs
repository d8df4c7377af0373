//! Logins, tokens, refresh rotation, devices and users through HTTP.

use std::time::{Duration, Instant};

use rap_appliance::auth::token::{AccessClaims, AccessTokens};
use rap_storage::{AuthSessionId, UserId};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::installation::audit_actions;
use crate::support::{
    OWNER_EMAIL, OWNER_PASSWORD, TestApp, assert_envelope, create_user, json_of, legacy_app_with_owner,
};

const LOGIN: &str = "/api/v1/auth/login";
const REFRESH: &str = "/api/v1/auth/refresh";

fn token(tokens: &Value, name: &str) -> String {
    tokens[name].as_str().unwrap_or_else(|| panic!("{name} in {tokens}")).to_owned()
}

#[tokio::test]
async fn login_returns_a_token_pair_for_a_device() {
    let app = legacy_app_with_owner(&[]).await;
    let device_id = Uuid::now_v7();
    let body = json!({"email": "  OWNER@example.com ", "password": OWNER_PASSWORD, "device": {"id": device_id, "name": "Front desk PC"}});
    let tokens = json_of(app.post(LOGIN, None, body.clone()).await, 200).await;
    for field in ["access_token", "access_expires_at", "refresh_token", "refresh_expires_at", "auth_session_id"] {
        assert!(tokens[field].is_string(), "{field} in {tokens}");
    }
    assert_eq!(
        tokens["device"],
        json!({"id": device_id, "name": "Front desk PC", "trusted": false, "trusted_at": null,
        "created_at": tokens["device"]["created_at"], "last_seen_at": tokens["device"]["last_seen_at"]})
    );
    assert_eq!(tokens["user"]["email"], OWNER_EMAIL);
    assert!(tokens["user"].get("password_hash").is_none());
    let access_expires = time::OffsetDateTime::parse(
        tokens["access_expires_at"].as_str().expect("text"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let minutes = (access_expires - time::OffsetDateTime::now_utc()).whole_minutes();
    assert!((14..=15).contains(&minutes), "access tokens live 15 minutes by default, got {minutes}");

    // The same device id logs in as the same device.
    let again = json_of(app.post(LOGIN, None, body).await, 200).await;
    assert_eq!(again["device"]["id"], device_id.to_string());
    assert_ne!(again["auth_session_id"], tokens["auth_session_id"], "each login is its own auth session");
    let devices = json_of(app.get_as("/api/v1/auth/devices", &token(&again, "access_token")).await, 200).await;
    assert_eq!(devices["items"].as_array().map(Vec::len), Some(1));
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app =
        legacy_app_with_owner(&[("AUTH_LOGIN_MAX_FAILURES", "100"), ("AUTH_LOGIN_MAX_FAILURES_PER_IP", "100")]).await;
    let mut timings = [Vec::new(), Vec::new()];
    let mut bodies = [Value::Null, Value::Null];
    for round in 0..5 {
        for (index, email) in [OWNER_EMAIL, "nobody@example.com"].into_iter().enumerate() {
            let started = Instant::now();
            let response = app.post(LOGIN, None, json!({"email": email, "password": "wrong password 1"})).await;
            let mut error = assert_envelope(response, 401, "invalid_credentials").await;
            timings[index].push(started.elapsed());
            error["trace_id"] = Value::Null;
            if round == 0 {
                bodies[index] = error;
            }
        }
    }
    assert_eq!(bodies[0], bodies[1], "nothing tells an unknown email from a wrong password");
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64()
    };
    let ratio = median(&mut timings[1]) / median(&mut timings[0]);
    assert!((0.33..3.0).contains(&ratio), "unknown email takes {ratio:.2}× the time of a wrong password");
    assert_eq!(audit_actions(&app, "auth.login").iter().filter(|(_, outcome)| outcome == "failure").count(), 10);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_account_and_per_address() {
    let app = legacy_app_with_owner(&[("AUTH_LOGIN_MAX_FAILURES", "3"), ("AUTH_LOGIN_MAX_FAILURES_PER_IP", "5")]).await;
    for _ in 0..3 {
        assert_envelope(
            app.post(LOGIN, None, json!({"email": OWNER_EMAIL, "password": "guess guess 1"})).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let throttled = app.post(LOGIN, None, json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD})).await;
    let retry_after: u64 = throttled
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let error = assert_envelope(throttled, 429, "rate_limited").await;
    assert_eq!(error["details"]["retry_after_seconds"], retry_after, "even the right password waits");

    // Other accounts from the same address: four attempts so far (the
    // throttled one counts too), so one more reaches the limit of five.
    let other = json!({"email": "a@example.com", "password": "guess guess 1"});
    assert_envelope(app.post(LOGIN, None, other).await, 401, "invalid_credentials").await;
    let over = json!({"email": "b@example.com", "password": "x"});
    assert_envelope(app.post(LOGIN, None, over).await, 429, "rate_limited").await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn parallel_guesses_cannot_overrun_the_limit() {
    let app = legacy_app_with_owner(&[("AUTH_LOGIN_MAX_FAILURES", "3")]).await;
    let guesses = (0..10).map(|index| {
        let request = app
            .client
            .post(app.url(LOGIN))
            .json(&json!({"email": OWNER_EMAIL, "password": format!("guess number {index}")}));
        async move { request.send().await.expect("request").status().as_u16() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    assert_eq!(statuses.iter().filter(|status| **status == 401).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 7, "{statuses:?}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_refresh_token_raced_in_parallel_is_reuse() {
    let app = legacy_app_with_owner(&[]).await;
    let tokens = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let refresh = token(&tokens, "refresh_token");
    let attempts = (0..5).map(|_| {
        let request = app.client.post(app.url(REFRESH)).json(&json!({"refresh_token": refresh}));
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let winners: Vec<_> = outcomes.iter().filter(|(status, _)| *status == 200).collect();
    assert!(winners.len() <= 1, "one token, at most one successor");
    assert!(outcomes.iter().any(|(_, body)| body["error"]["code"] == "refresh_token_reused"));
    // Whoever won holds a token of a revoked family.
    for (_, body) in winners {
        assert_envelope(app.get_as("/api/v1/auth/me", &token(body, "access_token")).await, 401, "unauthorized").await;
    }
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = legacy_app_with_owner(&[]).await;
    let first = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let second =
        json_of(app.post(REFRESH, None, json!({"refresh_token": token(&first, "refresh_token")})).await, 200).await;
    assert_ne!(token(&second, "refresh_token"), token(&first, "refresh_token"));
    assert_ne!(token(&second, "access_token"), token(&first, "access_token"));
    assert_eq!(second["auth_session_id"], first["auth_session_id"]);
    assert_eq!(app.get_as("/api/v1/auth/me", &token(&second, "access_token")).await.status(), 200);

    // The first refresh token comes back: a copy exists somewhere.
    let reuse = app.post(REFRESH, None, json!({"refresh_token": token(&first, "refresh_token")})).await;
    assert_envelope(reuse, 401, "refresh_token_reused").await;
    // Every token of the family is dead, at once.
    assert_envelope(
        app.post(REFRESH, None, json!({"refresh_token": token(&second, "refresh_token")})).await,
        401,
        "unauthorized",
    )
    .await;
    assert_envelope(app.get_as("/api/v1/auth/me", &token(&second, "access_token")).await, 401, "unauthorized").await;
    assert_envelope(app.get_as("/api/v1/auth/me", &token(&first, "access_token")).await, 401, "unauthorized").await;
    assert_eq!(audit_actions(&app, "auth.refresh_token_reused").len(), 1);

    // A fresh login is unaffected.
    let other = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(app.get_as("/api/v1/auth/me", &token(&other, "access_token")).await.status(), 200);
    assert_envelope(app.post(REFRESH, None, json!({"refresh_token": "not-a-token"})).await, 401, "unauthorized").await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let app = legacy_app_with_owner(&[]).await;
    let tokens = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let access = token(&tokens, "access_token");
    let logout = app.send(Method::POST, "/api/v1/auth/logout", Some(&access), None).await;
    assert_eq!(logout.status(), 204);
    assert_envelope(app.get_as("/api/v1/auth/me", &access).await, 401, "unauthorized").await;
    assert_envelope(
        app.post(REFRESH, None, json!({"refresh_token": token(&tokens, "refresh_token")})).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(audit_actions(&app, "auth.logout").len(), 1);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_revocation_survives_a_restart() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let settings = [("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")];
    let app = TestApp::start_in(data_dir, &settings).await;
    let body = json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "display_name": "Owner"});
    json_of(app.post("/api/v1/installation/bootstrap-owner", None, body).await, 201).await;
    let tokens = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let access = token(&tokens, "access_token");
    assert_eq!(app.send(Method::POST, "/api/v1/auth/logout", Some(&access), None).await.status(), 204);
    let data_dir = app.data_dir_handle().await;

    let restarted = TestApp::start_in(data_dir, &settings).await;
    assert_envelope(restarted.get_as("/api/v1/auth/me", &access).await, 401, "unauthorized").await;
    restarted.stop().await.expect("clean stop");
}

#[tokio::test]
async fn access_tokens_expire_and_tampering_is_refused() {
    let app = legacy_app_with_owner(&[]).await;
    let tokens = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let access = token(&tokens, "access_token");
    let key: [u8; 32] =
        std::fs::read(app.data_dir.path().join("keys/access-token.key")).expect("key").try_into().expect("32 bytes");
    let me = json_of(app.get_as("/api/v1/auth/me", &access).await, 200).await;
    let user_id: UserId = me["user"]["id"].as_str().expect("id").parse().expect("uuid");
    let session_id: AuthSessionId = tokens["auth_session_id"].as_str().expect("sid").parse().expect("uuid");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = AccessTokens::new(&key).issue(&AccessClaims {
        sub: user_id,
        sid: session_id,
        iat: now - 1000,
        exp: now - 100,
        jti: Uuid::now_v7(),
    });
    assert_envelope(app.get_as("/api/v1/auth/me", &expired).await, 401, "token_expired").await;

    let forged = AccessTokens::new(&[0; 32]).issue(&AccessClaims {
        sub: user_id,
        sid: session_id,
        iat: now,
        exp: now + 600,
        jti: Uuid::now_v7(),
    });
    assert_envelope(app.get_as("/api/v1/auth/me", &forged).await, 401, "unauthorized").await;
    let mut flipped = access.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    assert_envelope(app.get_as("/api/v1/auth/me", &flipped).await, 401, "unauthorized").await;
    assert_envelope(app.get("/api/v1/auth/me").await, 401, "unauthorized").await;
    let basic = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("authorization", "Basic b3duZXI6cHc=")
        .send()
        .await
        .expect("request");
    assert_envelope(basic, 401, "unauthorized").await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn sessions_and_devices_are_the_users_own() {
    let app = legacy_app_with_owner(&[]).await;
    let owner = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let owner_access = token(&owner, "access_token");
    create_user(&app, &owner_access, "staff@example.com", "staff password 1").await;
    let laptop = json_of(
        app.post(
            LOGIN,
            None,
            json!({"email": "staff@example.com", "password": "staff password 1", "device": {"name": "Laptop"}}),
        )
        .await,
        200,
    )
    .await;
    let phone = json_of(
        app.post(
            LOGIN,
            None,
            json!({"email": "staff@example.com", "password": "staff password 1", "device": {"name": "Phone"}}),
        )
        .await,
        200,
    )
    .await;
    let staff_access = token(&laptop, "access_token");

    let sessions = json_of(app.get_as("/api/v1/auth/sessions", &staff_access).await, 200).await;
    let items = sessions["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|session| session["current"] == true).count(), 1);
    assert!(sessions["next_cursor"].is_null());

    // Someone else's session or device is simply not there.
    let staff_session = laptop["auth_session_id"].as_str().expect("sid");
    let response =
        app.send(Method::DELETE, &format!("/api/v1/auth/sessions/{staff_session}"), Some(&owner_access), None).await;
    assert_envelope(response, 404, "not_found").await;
    let phone_device = phone["device"]["id"].as_str().expect("device");
    let response =
        app.send(Method::POST, &format!("/api/v1/auth/devices/{phone_device}/trust"), Some(&owner_access), None).await;
    assert_envelope(response, 404, "not_found").await;
    let response = app.send(Method::DELETE, "/api/v1/auth/sessions/not-a-uuid", Some(&owner_access), None).await;
    assert_envelope(response, 400, "invalid_request").await;

    // Trust, then revoke the phone: its session dies, the laptop's lives.
    let trusted = json_of(
        app.send(Method::POST, &format!("/api/v1/auth/devices/{phone_device}/trust"), Some(&staff_access), None).await,
        200,
    )
    .await;
    assert_eq!(trusted["trusted"], true);
    assert!(trusted["trusted_at"].is_string());
    let revoked =
        app.send(Method::DELETE, &format!("/api/v1/auth/devices/{phone_device}"), Some(&staff_access), None).await;
    assert_eq!(revoked.status(), 204);
    assert_envelope(app.get_as("/api/v1/auth/me", &token(&phone, "access_token")).await, 401, "unauthorized").await;
    assert_envelope(
        app.post(REFRESH, None, json!({"refresh_token": token(&phone, "refresh_token")})).await,
        401,
        "unauthorized",
    )
    .await;
    let devices = json_of(app.get_as("/api/v1/auth/devices", &staff_access).await, 200).await;
    assert_eq!(devices["items"].as_array().map(Vec::len), Some(1), "the revoked device is gone from the list");
    assert_eq!(audit_actions(&app, "auth.device_trusted").len(), 1);
    assert_eq!(audit_actions(&app, "auth.device_revoked").len(), 1);

    // Revoking one's own other session.
    let laptop_again = app.login("staff@example.com", "staff password 1").await;
    let other_session = laptop_again["auth_session_id"].as_str().expect("sid");
    let response =
        app.send(Method::DELETE, &format!("/api/v1/auth/sessions/{other_session}"), Some(&staff_access), None).await;
    assert_eq!(response.status(), 204);
    assert_envelope(app.get_as("/api/v1/auth/me", &token(&laptop_again, "access_token")).await, 401, "unauthorized")
        .await;
    assert_eq!(app.get_as("/api/v1/auth/me", &staff_access).await.status(), 200);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn only_platform_admins_manage_users() {
    let app = legacy_app_with_owner(&[]).await;
    let owner_access = token(&app.login(OWNER_EMAIL, OWNER_PASSWORD).await, "access_token");
    let staff_id = create_user(&app, &owner_access, "Staff@Example.com", "staff password 1").await;
    let body = json!({"email": "staff@example.com", "password": "another password", "display_name": "Dup"});
    let error = assert_envelope(app.post("/api/v1/users", Some(&owner_access), body).await, 409, "conflict").await;
    assert_eq!(error["details"]["fields"]["email"], "is already in use", "emails are unique regardless of case");

    let staff_access = token(&app.login("staff@example.com", "staff password 1").await, "access_token");
    let me = json_of(app.get_as("/api/v1/auth/me", &staff_access).await, 200).await;
    assert_eq!(me["user"]["id"], staff_id);
    assert_eq!(me["platform_role"], Value::Null);
    assert_envelope(app.get_as("/api/v1/users", &staff_access).await, 403, "forbidden").await;
    let body = json!({"email": "new@example.com", "password": "new password 12", "display_name": "New"});
    assert_envelope(app.post("/api/v1/users", Some(&staff_access), body).await, 403, "forbidden").await;

    for index in 0..3 {
        create_user(&app, &owner_access, &format!("user{index}@example.com"), "user password 12").await;
    }
    let first = json_of(app.get_as("/api/v1/users?limit=2", &owner_access).await, 200).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let second = json_of(app.get_as(&format!("/api/v1/users?limit=2&cursor={cursor}"), &owner_access).await, 200).await;
    let third = json_of(
        app.get_as(
            &format!("/api/v1/users?limit=2&cursor={}", second["next_cursor"].as_str().expect("more")),
            &owner_access,
        )
        .await,
        200,
    )
    .await;
    let emails: Vec<_> = [&first, &second, &third]
        .iter()
        .flat_map(|page| page["items"].as_array().cloned().unwrap_or_default())
        .map(|user| user["email"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        emails,
        ["owner@example.com", "staff@example.com", "user0@example.com", "user1@example.com", "user2@example.com"]
    );
    assert!(third["next_cursor"].is_null());
    assert_envelope(app.get_as("/api/v1/users?limit=0", &owner_access).await, 400, "invalid_request").await;
    let capped = json_of(app.get_as("/api/v1/users?limit=100000", &owner_access).await, 200).await;
    assert_eq!(capped["items"].as_array().map(Vec::len), Some(5), "an oversized limit is served as the maximum");
    assert_envelope(app.get_as("/api/v1/users?cursor=%%%", &owner_access).await, 400, "invalid_request").await;
    assert_eq!(audit_actions(&app, "user.created").len(), 4, "the owner came from the bootstrap");
    app.stop().await.expect("clean stop");
}
