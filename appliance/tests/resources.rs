//! Resources, their policies and secrets, and the production guard,
//! through HTTP (and the binary, where logs and files are the subject).

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_envelope, json_of, strict_app_with_owner};
use crate::tenancy::{Office, id, office};

const PASSWORD: &str = "Tr0ub4dor&3-do-not-leak";

fn rdp(org: &str, name: &str) -> Value {
    json!({"organization_id": org, "name": name, "protocol": "rdp", "host": "reception.alpha.lan"})
}

#[tokio::test]
async fn a_resource_gets_safe_defaults_and_checked_fields() {
    let office = office().await;
    let Office { app, admin, org_a, .. } = &office;
    let created = json_of(app.post("/api/v1/resources", Some(admin), rdp(org_a, "Reception")).await, 201).await;
    assert_eq!(created["port"], 3389);
    assert_eq!(created["certificate_verification_mode"], "strict");
    assert_eq!(created["certificate_fingerprint"], Value::Null);
    assert_eq!(created["secret_ref"], Value::Null);
    assert_eq!(created["metadata"], json!({}));
    assert_eq!(
        created["policy"],
        json!({"clipboard_mode": "disabled", "file_transfer_mode": "disabled", "clipboard_enabled": false, "file_transfer_enabled": false})
    );
    let vnc = json!({"organization_id": org_a, "name": "Lab", "protocol": "vnc", "host": "10.0.0.9",
        "certificate_verification_mode": "ignore", "policy": {"clipboard_mode": "bidirectional"}});
    let vnc = json_of(app.post("/api/v1/resources", Some(admin), vnc).await, 201).await;
    assert_eq!(vnc["port"], 5900);
    assert_eq!(vnc["policy"]["clipboard_mode"], "bidirectional");
    assert_eq!(vnc["policy"]["clipboard_enabled"], true);
    assert_eq!(vnc["policy"]["file_transfer_enabled"], false);

    let invalid = [
        (json!({"protocol": "telnet"}), "protocol"),
        (json!({"host": "http://evil/"}), "host"),
        (json!({"host": "two words"}), "host"),
        (json!({"port": 0}), "port"),
        (json!({"port": 70000}), "port"),
        (json!({"name": ""}), "name"),
        (json!({"certificate_verification_mode": "lax"}), "certificate_verification_mode"),
        (json!({"certificate_fingerprint": "md5:abc"}), "certificate_fingerprint"),
        (json!({"metadata": ["not", "an", "object"]}), "metadata"),
        (json!({"policy": {"clipboard_mode": "sometimes"}}), "policy.clipboard_mode"),
        (json!({"policy": {"printer_mode": "on"}}), "policy.printer_mode"),
        (json!({"secret_ref": "smuggled"}), "secret_ref"),
    ];
    for (change, field) in invalid {
        let mut body = rdp(org_a, "Bad");
        for (key, value) in change.as_object().expect("object") {
            body[key] = value.clone();
        }
        let error =
            assert_envelope(app.post("/api/v1/resources", Some(admin), body).await, 400, "invalid_request").await;
        assert!(error["details"]["fields"].get(field).is_some(), "{field}: {error}");
    }
    assert_envelope(app.get_as("/api/v1/resources/not-a-uuid", admin).await, 400, "invalid_request").await;
    assert_envelope(
        app.get_as(&format!("/api/v1/resources/{}", uuid::Uuid::now_v7()), admin).await,
        404,
        "resource_not_found",
    )
    .await;
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_resource_is_patched_field_by_field_and_deleted_softly() {
    let office = office().await;
    let Office { app, admin, org_a, .. } = &office;
    let created = json_of(app.post("/api/v1/resources", Some(admin), rdp(org_a, "Reception")).await, 201).await;
    let path = format!("/api/v1/resources/{}", id(&created));
    let pin = "AB:".repeat(31) + "AB";
    let patched = json_of(
        app.send(Method::PATCH, &path, Some(admin), Some(json!({"certificate_fingerprint": format!("sha256:{pin}"), "policy": {"file_transfer_mode": "client_to_server"}}))).await,
        200,
    )
    .await;
    assert_eq!(
        patched["certificate_fingerprint"],
        format!("sha256:{}", "ab".repeat(32)),
        "stored in one canonical form"
    );
    assert_eq!(patched["policy"]["file_transfer_mode"], "client_to_server");
    assert_eq!(patched["policy"]["clipboard_mode"], "disabled", "untouched fields stay");
    assert_eq!(patched["name"], "Reception");
    let cleared =
        json_of(app.send(Method::PATCH, &path, Some(admin), Some(json!({"certificate_fingerprint": null}))).await, 200)
            .await;
    assert_eq!(cleared["certificate_fingerprint"], Value::Null);
    assert_eq!(cleared["policy"]["file_transfer_mode"], "client_to_server");
    let error = assert_envelope(
        app.send(Method::PATCH, &path, Some(admin), Some(json!({"protocol": "ssh"}))).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(error["details"]["fields"]["protocol"].is_string(), "the protocol is fixed at creation");

    assert_eq!(app.send(Method::DELETE, &path, Some(admin), None).await.status(), 204);
    assert_envelope(app.get_as(&path, admin).await, 404, "resource_not_found").await;
    assert_envelope(app.send(Method::DELETE, &path, Some(admin), None).await, 404, "resource_not_found").await;
    let listed = json_of(app.get_as(&format!("/api/v1/resources?organization_id={org_a}"), admin).await, 200).await;
    assert!(!listed.to_string().contains(&id(&created)));
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn resources_are_listed_in_pages() {
    let office = office().await;
    let Office { app, admin, org_a, .. } = &office;
    for index in 0..4 {
        json_of(app.post("/api/v1/resources", Some(admin), rdp(org_a, &format!("PC {index}"))).await, 201).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/resources?organization_id={org_a}&limit=2&cursor={cursor}"),
            None => format!("/api/v1/resources?organization_id={org_a}&limit=2"),
        };
        let page = json_of(app.get_as(&path, admin).await, 200).await;
        seen.extend(page["items"].as_array().expect("items").iter().map(id));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "four new and the office's own, each once");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5);
    office.app.stop().await.expect("clean stop");
}

fn file_contains(path: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read(path).map(|bytes| bytes.windows(needle.len()).any(|window| window == needle)).unwrap_or(false)
}

#[tokio::test]
async fn a_secret_is_stored_encrypted_and_never_shown() {
    let office = office().await;
    let Office { app, admin, resource_a, .. } = &office;
    let path = format!("/api/v1/resources/{resource_a}/secret");
    let response = app
        .send(
            Method::PUT,
            &path,
            Some(admin),
            Some(json!({"username": "ALPHA\\svc", "password": PASSWORD, "domain": "ALPHA"})),
        )
        .await;
    let stored = json_of(response, 200).await;
    assert_eq!(stored["secret_ref"], format!("resource-secret:{resource_a}"));
    assert_eq!(stored["key_id"], "k1");
    assert!(stored["updated_at"].is_string());
    let mut keys: Vec<_> = stored.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["key_id", "secret_ref", "updated_at"], "nothing else, certainly no password");

    let resource = json_of(app.get_as(&format!("/api/v1/resources/{resource_a}"), admin).await, 200).await;
    assert_eq!(resource["secret_ref"], stored["secret_ref"]);
    // Rotation keeps the reference.
    let again = json_of(
        app.send(Method::PUT, &path, Some(admin), Some(json!({"username": "svc", "password": "another-one"}))).await,
        200,
    )
    .await;
    assert_eq!(again["secret_ref"], stored["secret_ref"]);

    for (body, field) in [
        (json!({"username": "", "password": "x"}), "username"),
        (json!({"username": "svc", "password": ""}), "password"),
        (json!({"username": "svc"}), "password"),
        (json!({"username": "svc", "password": "x", "pin": "1234"}), "pin"),
    ] {
        let error =
            assert_envelope(app.send(Method::PUT, &path, Some(admin), Some(body)).await, 400, "invalid_request").await;
        assert!(error["details"]["fields"].get(field).is_some(), "{field}: {error}");
    }

    // Every answer the API gives about this resource, and its audit trail.
    let org = &office.org_a;
    for path in [
        format!("/api/v1/resources/{resource_a}"),
        "/api/v1/resources".into(),
        format!("/api/v1/audit-events?organization_id={org}&limit=500"),
    ] {
        let text = app.get_as(&path, admin).await.text().await.expect("text");
        assert!(!text.contains(PASSWORD) && !text.contains("another-one"), "{path} leaks the password");
    }
    let database = app.database();
    let wal = database.with_extension("sqlite3-wal");
    for file in [&database, &wal] {
        assert!(!file_contains(file, PASSWORD.as_bytes()), "{} holds the plaintext", file.display());
        assert!(!file_contains(file, b"another-one"), "{} holds the plaintext", file.display());
    }
    office.app.stop().await.expect("clean stop");
    for file in [&database, &wal] {
        assert!(!file_contains(file, PASSWORD.as_bytes()), "{} holds the plaintext after shutdown", file.display());
    }
}

#[tokio::test]
async fn development_allows_plaintext_metadata_but_never_shows_it() {
    let office = office().await;
    let Office { app, admin, org_a, .. } = &office;
    let mut body = rdp(org_a, "Legacy PC");
    body["metadata"] = json!({"username": "svc", "password": PASSWORD, "notes": "front desk"});
    let created = json_of(app.post("/api/v1/resources", Some(admin), body).await, 201).await;
    assert_eq!(created["metadata"], json!({"username": "svc", "password": "[redacted]", "notes": "front desk"}));
    let shown = app.get_as(&format!("/api/v1/resources/{}", id(&created)), admin).await.text().await.expect("text");
    assert!(!shown.contains(PASSWORD));
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn production_refuses_every_spelling_of_plaintext_credentials() {
    let secret_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let (app, admin) = strict_app_with_owner(&[
        ("APP_ENV", "production"),
        ("SECRET_ENCRYPTION_KEY_B64", secret_key.as_str()),
        ("RAP_WORKER_RUNTIME", "rdp"),
    ])
    .await;
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("default org").to_owned();
    let spellings = [
        "password",
        "Password",
        "PASSWORD",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "private_key",
        "privateKey",
        "api_key",
        "passphrase",
        "credentials",
    ];
    for key in spellings {
        let mut body = rdp(&org, "PC");
        body["metadata"] = json!({ key: "x" });
        let error =
            assert_envelope(app.post("/api/v1/resources", Some(&admin), body).await, 400, "plaintext_secret_forbidden")
                .await;
        assert!(error["details"]["fields"].get(format!("metadata.{key}")).is_some(), "{key}: {error}");
    }
    let mut nested = rdp(&org, "PC");
    nested["metadata"] = json!({"gateway": {"auth": {"Token": "x"}}});
    let error =
        assert_envelope(app.post("/api/v1/resources", Some(&admin), nested).await, 400, "plaintext_secret_forbidden")
            .await;
    assert!(error["details"]["fields"].get("metadata.gateway.auth.Token").is_some(), "{error}");

    // Clean metadata passes; adding credentials later is refused too.
    let mut clean = rdp(&org, "PC");
    clean["metadata"] = json!({"username": "svc", "notes": "ok"});
    let created = json_of(app.post("/api/v1/resources", Some(&admin), clean).await, 201).await;
    let path = format!("/api/v1/resources/{}", id(&created));
    let response = app.send(Method::PATCH, &path, Some(&admin), Some(json!({"metadata": {"pwd": "x"}}))).await;
    assert_envelope(response, 400, "plaintext_secret_forbidden").await;
    let stored = json_of(
        app.send(
            Method::PUT,
            &format!("{path}/secret"),
            Some(&admin),
            Some(json!({"username": "svc", "password": PASSWORD})),
        )
        .await,
        200,
    )
    .await;
    assert!(stored["secret_ref"].is_string(), "the secret store is the way");
    app.stop().await.expect("clean stop");
}

/// Runs `rap-appliance` to completion with `settings`.
fn run_binary(data_dir: &std::path::Path, args: &[&str], settings: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rap-appliance"));
    command.env_clear().env("APP_DATA_DIR", data_dir).env("APP_LOG_FORMAT", "json").env("RUST_LOG", "debug").args(args);
    for (name, value) in settings {
        command.env(name, value);
    }
    command.output().expect("run")
}

#[tokio::test]
async fn rotation_moves_every_secret_to_the_active_key() {
    let data = tempfile::tempdir().expect("temp dir");
    let old_key = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let new_key = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
    let old = [
        ("SECRET_ENCRYPTION_KEY_B64", old_key.as_str()),
        ("SECRET_ENCRYPTION_KEY_ID", "k1"),
        ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"),
    ];
    let app = TestApp::start_in(data, &old).await;
    let body = json!({"email": "owner@example.com", "password": "owner password 1", "display_name": "Owner"});
    json_of(app.post("/api/v1/installation/bootstrap-owner", None, body).await, 201).await;
    let admin =
        app.login("owner@example.com", "owner password 1").await["access_token"].as_str().expect("token").to_owned();
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    for name in ["A", "B"] {
        let resource = json_of(app.post("/api/v1/resources", Some(&admin), rdp(&org, name)).await, 201).await;
        let path = format!("/api/v1/resources/{}/secret", id(&resource));
        json_of(
            app.send(Method::PUT, &path, Some(&admin), Some(json!({"username": "svc", "password": PASSWORD}))).await,
            200,
        )
        .await;
    }
    let data = app.data_dir_handle().await;
    let key_ids = || -> Vec<String> {
        let conn = rusqlite::Connection::open(data.path().join("rap.sqlite3")).expect("open");
        let mut statement = conn.prepare("SELECT key_id FROM resource_secrets ORDER BY key_id").expect("prepare");
        statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(key_ids(), ["k1", "k1"]);

    // The new key without the old one cannot read the old records: refused, nothing lost.
    let output = run_binary(
        data.path(),
        &["secrets", "rotate"],
        &[("SECRET_ENCRYPTION_KEY_B64", new_key.as_str()), ("SECRET_ENCRYPTION_KEY_ID", "k2")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(key_ids(), ["k1", "k1"]);

    let retired = format!("k1:{old_key}");
    let rotate = [
        ("SECRET_ENCRYPTION_KEY_B64", new_key.as_str()),
        ("SECRET_ENCRYPTION_KEY_ID", "k2"),
        ("SECRET_ENCRYPTION_RETIRED_KEYS", retired.as_str()),
    ];
    let output = run_binary(data.path(), &["secrets", "rotate"], &rotate);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(report, json!({"active_key_id": "k2", "reencrypted": 2, "failed": []}));
    assert_eq!(key_ids(), ["k2", "k2"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains(PASSWORD), "debug logs never carry a secret");
}

#[tokio::test]
async fn the_running_binary_never_logs_a_secret() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rap-appliance"))
        .env_clear()
        .env("APP_DATA_DIR", data.path())
        .env("APP_LISTEN_ADDR", "127.0.0.1:0")
        .env("APP_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .env("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = lines_rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the appliance starts");
        log.push(line.clone());
        if let Ok(event) = serde_json::from_str::<Value>(&line)
            && event["message"] == "Appliance listening"
        {
            break event["local_addr"].as_str().expect("addr").to_owned();
        }
    };
    let client = crate::support::client();
    let url = |path: &str| format!("http://{addr}{path}");
    let body = json!({"email": "owner@example.com", "password": "owner password 1", "display_name": "Owner"});
    client.post(url("/api/v1/installation/bootstrap-owner")).json(&body).send().await.expect("bootstrap");
    let login: Value = client
        .post(url("/api/v1/auth/login"))
        .json(&json!({"email": "owner@example.com", "password": "owner password 1"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token").to_owned();
    let me: Value =
        client.get(url("/api/v1/auth/me")).bearer_auth(&token).send().await.expect("me").json().await.expect("json");
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    let resource: Value = client
        .post(url("/api/v1/resources"))
        .bearer_auth(&token)
        .json(&rdp(&org, "PC"))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let secret = client
        .put(url(&format!("/api/v1/resources/{}/secret", id(&resource))))
        .bearer_auth(&token)
        .json(&json!({"username": "svc", "password": PASSWORD}))
        .send()
        .await
        .expect("secret");
    assert_eq!(secret.status(), 200);

    let status = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    log.extend(lines_rx.try_iter());
    let text = log.join("\n");
    assert!(text.contains("Appliance stopped"), "the whole log was read");
    for needle in [PASSWORD, "owner password 1", token.as_str(), login["refresh_token"].as_str().expect("refresh")] {
        assert!(!text.contains(needle), "a secret reached the log");
    }
}
