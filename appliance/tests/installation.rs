//! Installation authority through HTTP: status, strict and legacy
//! bootstrap, and platform roles that only a signed grant makes real.

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    OWNER_EMAIL, OWNER_PASSWORD, StrictApp, TestApp, activation, assert_envelope, bootstrap_body, create_user, json_of,
    legacy_app_with_owner, strict_app,
};

const BOOTSTRAP: &str = "/api/v1/installation/bootstrap-owner";

#[tokio::test]
async fn strict_bootstrap_refuses_every_bad_activation_then_accepts_a_good_one_once() {
    let StrictApp { app, root, installation_id } = strict_app(&[]).await;
    let status = json_of(app.get("/api/v1/installation").await, 200).await;
    assert_eq!(status["bootstrapped"], false);
    assert_eq!(status["authority_mode"], "strict");
    assert_eq!(status["app_env"], "development");

    let hour = time::Duration::hours(1);
    let impostor = SigningKey::from_bytes(&[42; 32]);
    let cases = [
        (None, "activation_required"),
        (Some(activation(&impostor, installation_id, OWNER_EMAIL, hour)), "activation_signature_invalid"),
        (Some(activation(&root, Uuid::now_v7(), OWNER_EMAIL, hour)), "activation_installation_mismatch"),
        (Some(activation(&root, installation_id, "someone.else@example.com", hour)), "activation_owner_mismatch"),
        (Some(activation(&root, installation_id, OWNER_EMAIL, -time::Duration::seconds(1))), "activation_expired"),
    ];
    for (activation, reason) in cases {
        let error =
            assert_envelope(app.post(BOOTSTRAP, None, bootstrap_body(activation)).await, 403, "forbidden").await;
        assert_eq!(error["details"]["reason"], reason);
    }
    assert_eq!(json_of(app.get("/api/v1/installation").await, 200).await["bootstrapped"], false, "nothing was written");

    let good = activation(&root, installation_id, OWNER_EMAIL, hour);
    let created = json_of(app.post(BOOTSTRAP, None, bootstrap_body(Some(good.clone()))).await, 201).await;
    assert_eq!(created["user"]["email"], OWNER_EMAIL);
    assert_eq!(created["email"], OWNER_EMAIL, "the user's fields are also at the top level");
    assert_eq!(created["platform_role"], "platform_admin");
    assert_eq!(created["id"], created["user"]["id"]);
    assert_eq!(created["user"]["platform_role"], "platform_admin");
    assert!(created["user"].get("password_hash").is_none() && !created.to_string().contains(OWNER_PASSWORD));
    assert_eq!(created["organization"]["slug"], "default");
    assert_eq!(created["membership"]["role"], "org_owner");
    assert_eq!(created["membership"]["organization_id"], created["organization"]["id"]);
    assert_eq!(created["platform_role_grant"]["role"], "platform_admin");
    assert_eq!(created["platform_role_grant"]["installation_id"], installation_id.to_string());
    assert_eq!(json_of(app.get("/api/v1/installation").await, 200).await["bootstrapped"], true);

    assert_envelope(app.post(BOOTSTRAP, None, bootstrap_body(Some(good))).await, 409, "already_bootstrapped").await;
    assert_envelope(app.post(BOOTSTRAP, None, bootstrap_body(None)).await, 409, "already_bootstrapped").await;

    // The owner is a real platform admin in strict mode: the grant is signed.
    let tokens = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let me = json_of(app.get_as("/api/v1/auth/me", tokens["access_token"].as_str().expect("token")).await, 200).await;
    assert_eq!(me["platform_role"], "platform_admin");
    assert_eq!(me["memberships"][0]["organization_slug"], "default");
    assert_eq!(me["memberships"][0]["role"], "org_owner");

    let denied = audit_actions(&app, "installation.bootstrap_owner");
    assert_eq!(denied.iter().filter(|(_, outcome)| outcome == "denied").count(), 5, "every refusal is audited");
    assert_eq!(denied.iter().filter(|(_, outcome)| outcome == "success").count(), 1);
    app.stop().await.expect("clean stop");
}

/// (action, outcome) of audit rows with `action`, read from the SQLite file.
pub fn audit_actions(app: &TestApp, action: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(app.database()).expect("open");
    let mut statement = conn
        .prepare("SELECT action, outcome FROM audit_events WHERE action = ?1 ORDER BY occurred_at")
        .expect("prepare");
    statement
        .query_map([action], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn legacy_bootstrap_takes_the_one_time_setup_code_from_the_data_directory() {
    let app = TestApp::start().await;
    let status = json_of(app.get("/api/v1/installation").await, 200).await;
    assert_eq!(status["bootstrap_method"], "setup_code");
    assert_eq!(status["tls"]["mode"], "off");
    let file = app.data_dir.path().join("setup-code");
    let written = std::fs::read_to_string(&file).expect("the code is written on first start");
    let code = written.trim().to_owned();
    let groups: Vec<_> = code.split('-').collect();
    assert_eq!(groups.len(), 7, "shown in groups for typing: {code}");
    assert!(groups.iter().all(|group| group.len() == 4), "{code}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the appliance's user reads it");
    }

    let error = assert_envelope(app.post(BOOTSTRAP, None, bootstrap_body(None)).await, 403, "forbidden").await;
    assert_eq!(error["details"]["reason"], "setup_code_required");
    let mut wrong = bootstrap_body(None);
    wrong["setup_code"] = json!("0000-0000-0000-0000-0000-0000-0000");
    let error = assert_envelope(app.post(BOOTSTRAP, None, wrong).await, 403, "forbidden").await;
    assert_eq!(error["details"]["reason"], "setup_code_invalid");

    // Typed by a person: lower case, spaces instead of dashes.
    let mut right = bootstrap_body(None);
    right["setup_code"] = json!(code.to_lowercase().replace('-', " "));
    let created = json_of(app.post(BOOTSTRAP, None, right.clone()).await, 201).await;
    assert_eq!(created["user"]["platform_role"], "platform_admin");
    assert!(!file.exists(), "the code is deleted once an owner exists");
    assert_envelope(app.post(BOOTSTRAP, None, right).await, 409, "already_bootstrapped").await;
    let status = json_of(app.get("/api/v1/installation").await, 200).await;
    assert_eq!(status["bootstrapped"], true);
    assert!(status["bootstrap_method"].is_null(), "{status}");

    // A restart of a bootstrapped appliance issues no new code.
    let data_dir = app.data_dir_handle().await;
    let app = TestApp::start_in(data_dir, &[]).await;
    json_of(app.get("/api/v1/installation").await, 200).await;
    assert!(!app.data_dir.path().join("setup-code").exists());
    app.stop().await.expect("clean stop");

    let app = TestApp::start_with(&[("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")]).await;
    let created = json_of(app.post(BOOTSTRAP, None, bootstrap_body(None)).await, 201).await;
    assert_eq!(created["user"]["platform_role"], "platform_admin", "the test switch still works");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn guessing_the_setup_code_is_throttled_and_the_code_survives_it() {
    let app = TestApp::start().await;
    // Serving means first-run preparation is done.
    json_of(app.get("/api/v1/installation").await, 200).await;
    let code = std::fs::read_to_string(app.data_dir.path().join("setup-code")).expect("code");
    let mut wrong = bootstrap_body(None);
    wrong["setup_code"] = json!("ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ");
    for _ in 0..10 {
        assert_envelope(app.post(BOOTSTRAP, None, wrong.clone()).await, 403, "forbidden").await;
    }
    let throttled = app.post(BOOTSTRAP, None, wrong).await;
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry_after >= 1, "{retry_after}");
    let error = assert_envelope(throttled, 429, "rate_limited").await;
    assert_eq!(error["details"]["reason"], "setup_code_failures");
    // While throttled, even the right code waits: guessing cannot race it.
    let mut right = bootstrap_body(None);
    right["setup_code"] = json!(code.trim());
    assert_envelope(app.post(BOOTSTRAP, None, right).await, 429, "rate_limited").await;
    assert!(app.data_dir.path().join("setup-code").exists(), "a throttled code is not spent");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn parallel_bootstraps_make_exactly_one_owner() {
    let app = TestApp::start_with(&[("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")]).await;
    let attempts = (0..5).map(|index| {
        let body =
            json!({"email": format!("owner{index}@example.com"), "password": OWNER_PASSWORD, "display_name": "O"});
        let request = app.client.post(app.url(BOOTSTRAP)).json(&body);
        async move { request.send().await.expect("request").status().as_u16() }
    });
    let mut statuses = futures_util::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409]);
    let conn = rusqlite::Connection::open(app.database()).expect("open");
    let users: i64 = conn.query_row("SELECT count(*) FROM users", [], |row| row.get(0)).expect("count");
    assert_eq!(users, 1);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn bootstrap_input_is_checked_field_by_field() {
    let app = TestApp::start_with(&[("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")]).await;
    let cases = [
        (json!({"email": "not-an-email", "password": OWNER_PASSWORD, "display_name": "O"}), "email"),
        (json!({"email": OWNER_EMAIL, "password": "short", "display_name": "O"}), "password"),
        (json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "display_name": "  "}), "display_name"),
        (json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "display_name": "O", "role": "god"}), "role"),
    ];
    for (body, field) in cases {
        let error = assert_envelope(app.post(BOOTSTRAP, None, body).await, 400, "invalid_request").await;
        assert!(error["details"]["fields"].get(field).is_some(), "{field}: {error}");
    }
    app.stop().await.expect("clean stop");
}

async fn role_edited_in_sqlite(app: &TestApp, owner_token: &str) -> (String, String) {
    let email = "mallory@example.com";
    let password = "mallory password";
    let id = create_user(app, owner_token, email, password).await;
    // Someone with access to the database file promotes an account by hand.
    let conn = rusqlite::Connection::open(app.database()).expect("open");
    let changed =
        conn.execute("UPDATE users SET platform_role = 'platform_admin' WHERE id = ?1", [&id]).expect("update");
    assert_eq!(changed, 1);
    let token = app.login(email, password).await["access_token"].as_str().expect("token").to_owned();
    (id, token)
}

#[tokio::test]
async fn a_role_written_into_sqlite_grants_nothing_in_strict_mode() {
    let StrictApp { app, root, installation_id } = strict_app(&[]).await;
    let good = activation(&root, installation_id, OWNER_EMAIL, time::Duration::hours(1));
    json_of(app.post(BOOTSTRAP, None, bootstrap_body(Some(good))).await, 201).await;
    let owner = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let (_, mallory) = role_edited_in_sqlite(&app, owner["access_token"].as_str().expect("token")).await;

    let me = json_of(app.get_as("/api/v1/auth/me", &mallory).await, 200).await;
    assert_eq!(me["platform_role"], Value::Null);
    assert_eq!(me["user"]["platform_role"], Value::Null);
    assert_envelope(app.get_as("/api/v1/users", &mallory).await, 403, "forbidden").await;
    let body = json!({"email": "x@example.com", "password": "password 12345", "display_name": "X"});
    assert_envelope(app.post("/api/v1/users", Some(&mallory), body).await, 403, "forbidden").await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn legacy_mode_trusts_the_role_column_as_the_seed_did() {
    let app = legacy_app_with_owner(&[]).await;
    let owner = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let (_, promoted) = role_edited_in_sqlite(&app, owner["access_token"].as_str().expect("token")).await;
    let me = json_of(app.get_as("/api/v1/auth/me", &promoted).await, 200).await;
    assert_eq!(me["platform_role"], "platform_admin");
    assert_eq!(app.get_as("/api/v1/users", &promoted).await.status(), 200);
    app.stop().await.expect("clean stop");
}
