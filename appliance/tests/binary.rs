//! The `rap-appliance` binary as an operator meets it: environment in,
//! logs on stderr, signals to stop, exit codes out.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_rap-appliance");

fn appliance(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("APP_LISTEN_ADDR", "127.0.0.1:0")
        .env("APP_DATA_DIR", data_dir)
        .env("APP_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Reads JSON log lines until the "listening" one and returns its address;
/// keeps draining stderr in the background so the child never blocks on it.
fn wait_until_listening(child: &mut Child) -> (String, std::sync::mpsc::Receiver<String>) {
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) else { continue };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if event["message"] == "Appliance listening" {
            let addr = event["local_addr"].as_str().expect("local_addr field").to_owned();
            return (addr, lines_rx);
        }
    }
    panic!("the appliance did not start listening within 20 s");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the appliance did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn get_status(addr: &str, path: &str) -> u16 {
    reqwest::get(format!("http://{addr}{path}")).await.expect("request").status().as_u16()
}

#[tokio::test]
async fn serves_on_embedded_defaults_and_exits_zero_on_sigint_and_sigterm() {
    for signal_name in ["INT", "TERM"] {
        let parent = tempfile::tempdir().expect("temp dir");
        let data_dir = parent.path().join("data");
        let mut child = appliance(&data_dir).spawn().expect("spawn");
        let (addr, _logs) = wait_until_listening(&mut child);
        assert_eq!(get_status(&addr, "/healthz").await, 200);
        assert_eq!(get_status(&addr, "/readyz").await, 200);
        assert!(data_dir.join("rap.sqlite3").is_file(), "the data directory is created on first start");

        signal(&child, signal_name);
        let status = wait_for_exit(&mut child, Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "SIG{signal_name} is a clean exit");
        assert!(
            !data_dir.join("rap.sqlite3-wal").exists()
                || std::fs::metadata(data_dir.join("rap.sqlite3-wal")).map(|m| m.len()).unwrap_or(0) == 0,
            "the WAL is checkpointed into the database on shutdown"
        );
    }
}

#[test]
fn an_invalid_setting_fails_start_up_with_one_line_naming_it() {
    let parent = tempfile::tempdir().expect("temp dir");
    let output = appliance(parent.path()).env("RAP_WORKER_SLOTS", "lots").output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim(), "rap-appliance: invalid configuration: RAP_WORKER_SLOTS: expected a whole number");
}

#[test]
fn a_config_file_is_read_and_the_environment_wins() {
    let parent = tempfile::tempdir().expect("temp dir");
    let file = parent.path().join("rap.toml");
    std::fs::write(&file, "RAP_WORKER_SLOTS = 0\n").expect("write");
    let output = appliance(parent.path()).arg("migrate").env("APP_CONFIG_FILE", &file).output().expect("run");
    assert_eq!(output.status.code(), Some(2), "the file's value is used");
    assert!(String::from_utf8_lossy(&output.stderr).contains("RAP_WORKER_SLOTS: 0 is outside 1..=1024"));

    let output = appliance(parent.path())
        .arg("migrate")
        .env("APP_CONFIG_FILE", &file)
        .env("RAP_WORKER_SLOTS", "4")
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "the environment overrides the file: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    std::fs::write(&file, "APP_LISTEN_ADRR = \"x\"\n").expect("write");
    let output = appliance(parent.path()).env("APP_CONFIG_FILE", &file).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown setting APP_LISTEN_ADRR"));
}

#[test]
fn migrate_applies_the_schema_once_and_exits() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("fresh");
    let applied_in = |output: &std::process::Output| {
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["message"] == "Applied migration")
            .count()
    };
    let first = appliance(&data_dir).arg("migrate").output().expect("run");
    assert!(applied_in(&first) >= 1, "a fresh database gets the schema");
    let header = std::fs::read(data_dir.join("rap.sqlite3")).expect("database file");
    assert!(header.starts_with(b"SQLite format 3\0"));
    let second = appliance(&data_dir).arg("migrate").output().expect("run");
    assert_eq!(applied_in(&second), 0, "nothing is applied twice");
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("run");
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test]
async fn an_installer_activates_the_first_owner_from_the_command_line() {
    let parent = tempfile::tempdir().expect("temp dir");
    let vendor = parent.path().join("vendor");
    let data_dir = parent.path().join("data");

    // Vendor side: a Product Root key pair.
    let public = run_ok(Command::new(BINARY).args(["product-root", "generate", "--out"]).arg(&vendor));
    let public = public.trim().to_owned();
    assert_eq!(std::fs::read_to_string(vendor.join("product-root.pub")).expect("pub").trim(), public);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(vendor.join("product-root.key")).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let strict = |command: &mut Command| {
        command.env("INSTALLATION_AUTHORITY_MODE", "strict").env("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64", &public);
    };

    // Appliance side: the installation id to activate.
    let mut show = appliance(&data_dir);
    show.arg("installation").stdout(Stdio::piped());
    strict(&mut show);
    let status: serde_json::Value = serde_json::from_str(&run_ok(&mut show)).expect("json");
    assert_eq!(status["bootstrapped"], false);
    assert_eq!(status["authority_mode"], "strict");
    let installation_id = status["installation_id"].as_str().expect("id").to_owned();

    let activation = run_ok(
        Command::new(BINARY).args(["product-root", "sign", "--key"]).arg(vendor.join("product-root.key")).args([
            "--installation-id",
            &installation_id,
            "--owner-email",
            "Boss@Example.com",
            "--valid-for",
            "1h",
        ]),
    );
    let activation_file = parent.path().join("activation.json");
    std::fs::write(&activation_file, activation).expect("write");

    let bootstrap = |email: &str| {
        let mut command = appliance(&data_dir);
        command
            .args(["bootstrap-owner", "--email", email, "--display-name", "The Boss", "--activation"])
            .arg(&activation_file)
            .env("RAP_OWNER_PASSWORD", "boss password 1")
            .stdout(Stdio::piped());
        strict(&mut command);
        command.output().expect("run")
    };
    let wrong_owner = bootstrap("intruder@example.com");
    assert_eq!(wrong_owner.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong_owner.stderr).contains("activation is for another owner email"));
    let created = bootstrap("boss@example.com");
    assert_eq!(created.status.code(), Some(0), "{}", String::from_utf8_lossy(&created.stderr));
    let again = bootstrap("boss@example.com");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already bootstrapped"));

    // The owner logs in to the running appliance as a platform admin.
    let mut serve = appliance(&data_dir);
    strict(&mut serve);
    let mut child = serve.spawn().expect("spawn");
    let (addr, _logs) = wait_until_listening(&mut child);
    let login = login(&crate::support::client(), &addr, "boss password 1").await;
    assert_eq!(login["user"]["platform_role"], "platform_admin", "{login}");
    signal(&child, "TERM");
    assert_eq!(wait_for_exit(&mut child, Duration::from_secs(5)).code(), Some(0));
}

/// Even with a umask that would leave everything world-writable, the data
/// directory and what the appliance writes into it are its user's alone.
#[tokio::test]
async fn a_fresh_data_directory_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("data");
    let mut command = appliance(&data_dir);
    command.env("RAP_WORKER_RUNTIME", "scripted");
    let program = command.get_program().to_owned();
    let mut shell = Command::new("sh");
    shell.arg("-c").arg("umask 000; exec \"$0\"").arg(program);
    shell.env_clear();
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            shell.env(name, value);
        }
    }
    shell.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = shell.spawn().expect("spawn");
    let (addr, _logs) = wait_until_listening(&mut child);
    assert_eq!(get_status(&addr, "/readyz").await, 200);

    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700, "the data directory");
    for file in ["rap.sqlite3", "rap.sqlite3-wal", "rap.sqlite3-shm"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    let keys = data_dir.join("keys");
    assert_eq!(mode(&keys), 0o700, "keys/");
    let mut key_files = 0;
    for entry in std::fs::read_dir(&keys).expect("keys") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        key_files += 1;
    }
    assert!(key_files >= 3, "the generated keys are there");

    signal(&child, "TERM");
    assert_eq!(wait_for_exit(&mut child, Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn installation_prints_the_ca_fingerprint_and_the_cli_bootstrap_uses_the_setup_code() {
    use sha2::Digest;
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("data");
    let mut show = appliance(&data_dir);
    show.arg("installation").env("APP_TLS", "auto").stdout(Stdio::piped());
    let status: serde_json::Value = serde_json::from_str(&run_ok(&mut show)).expect("json");
    assert_eq!(status["tls"]["mode"], "auto");
    let pem = std::fs::read(data_dir.join("tls").join("ca.pem")).expect("the CA is made on first use");
    let der = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(&pem).expect("PEM")
    };
    let fingerprint: String = sha2::Sha256::digest(der.as_ref()).iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(status["tls"]["ca_fingerprint_sha256"], fingerprint, "what an admin reads out to verify a PC");
    assert_eq!(status["bootstrap_method"], "setup_code");

    // The command line reads the code from the data directory itself.
    let mut bootstrap = appliance(&data_dir);
    bootstrap
        .args(["bootstrap-owner", "--email", "boss@example.com", "--display-name", "Boss"])
        .env("RAP_OWNER_PASSWORD", "owner password 1")
        .stdout(Stdio::piped());
    let created: serde_json::Value = serde_json::from_str(&run_ok(&mut bootstrap)).expect("json");
    assert_eq!(created["email"], "boss@example.com");
    assert!(!data_dir.join("setup-code").exists(), "spent and deleted");
    let mut again = appliance(&data_dir);
    again
        .args(["bootstrap-owner", "--email", "other@example.com", "--display-name", "Other"])
        .env("RAP_OWNER_PASSWORD", "owner password 1");
    let output = again.output().expect("run");
    assert_ne!(output.status.code(), Some(0), "a second owner is refused");
}

/// Every file of `from` in `to` but the database (and its WAL): a data
/// directory's keys and certificates, for a restore.
fn copy_all_but_the_database(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(rap_storage::sqlite::DATABASE_FILE_NAME) {
            continue;
        }
        if entry.file_type().expect("type").is_dir() {
            copy_all_but_the_database(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

async fn json_post(http: &reqwest::Client, url: &str, token: &str, body: serde_json::Value) -> serde_json::Value {
    let response = http.post(url).bearer_auth(token).json(&body).send().await.expect("post");
    assert_eq!(response.status(), 201, "{url}");
    response.json().await.expect("json")
}

async fn json_get(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let response = http.get(url).bearer_auth(token).send().await.expect("get");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("json")
}

/// The login answer for boss@example.com.
async fn login(http: &reqwest::Client, addr: &str, password: &str) -> serde_json::Value {
    let body = serde_json::json!({"email": "boss@example.com", "password": password});
    let response = http.post(format!("http://{addr}/api/v1/auth/login")).json(&body).send().await.expect("login");
    response.json().await.expect("json")
}

/// The owner's access token and organization.
async fn sign_in(http: &reqwest::Client, addr: &str) -> (String, String) {
    let login = login(http, addr, "owner password 1").await;
    let token = login["access_token"].as_str().expect("signed in").to_owned();
    let me = json_get(http, &format!("http://{addr}/api/v1/auth/me"), &token).await;
    (token, me["memberships"][0]["organization_id"].as_str().expect("an organization").to_owned())
}

#[tokio::test]
async fn a_backup_taken_while_the_appliance_writes_restores_into_a_working_appliance() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("data");
    let mut bootstrap = appliance(&data_dir);
    bootstrap
        .args(["bootstrap-owner", "--email", "boss@example.com", "--display-name", "Boss"])
        .env("RAP_OWNER_PASSWORD", "owner password 1")
        .stdout(Stdio::piped());
    run_ok(&mut bootstrap);
    let mut child = appliance(&data_dir).env("RAP_WORKER_RUNTIME", "scripted").spawn().expect("spawn");
    let (addr, _logs) = wait_until_listening(&mut child);
    let http = crate::support::client();
    let (token, org) = sign_in(&http, &addr).await;

    // All through the backup: a resource, a remote session on it, the
    // session ended; one after another.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (created_tx, mut created) = tokio::sync::watch::channel(0usize);
    let writer = {
        let (http, addr, token, org) = (http.clone(), addr.clone(), token.clone(), org.clone());
        tokio::spawn(async move {
            let mut count = 0;
            while !*stopped.borrow_and_update() {
                let resource = json_post(
                    &http,
                    &format!("http://{addr}/api/v1/resources"),
                    &token,
                    serde_json::json!({"organization_id": org, "name": format!("PC {count:04}"), "protocol": "rdp", "host": "pc.office.lan"}),
                )
                .await;
                let session = json_post(
                    &http,
                    &format!("http://{addr}/api/v1/sessions"),
                    &token,
                    serde_json::json!({"resource_id": resource["id"]}),
                )
                .await;
                let id = session["session"]["id"].as_str().expect("a session");
                let ended = http
                    .post(format!("http://{addr}/api/v1/sessions/{id}/terminate"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("terminate");
                assert_eq!(ended.status(), 200);
                count += 1;
                let _ = created_tx.send(count);
            }
            count
        })
    };
    created.wait_for(|count| *count >= 20).await.expect("writing");
    let out = parent.path().join("backup.sqlite3");
    let mut backup = appliance(&data_dir);
    backup.arg("backup").arg("--out").arg(&out).stdout(Stdio::piped());
    let printed = tokio::task::spawn_blocking(move || run_ok(&mut backup)).await.expect("backup");
    assert!(printed.contains("backup.sqlite3"), "says where: {printed}");
    let _ = stop.send(true);
    let written = writer.await.expect("writer");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).expect("the backup").permissions().mode() & 0o777, 0o600);

    // A backup never overwrites: the first one stays as it was.
    let size = std::fs::metadata(&out).expect("backup").len();
    let again = appliance(&data_dir).arg("backup").arg("--out").arg(&out).output().expect("run");
    assert_ne!(again.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::metadata(&out).expect("backup").len(), size);
    signal(&child, "TERM");
    assert_eq!(wait_for_exit(&mut child, Duration::from_secs(10)).code(), Some(0));

    // Restored: the backup as the database of a new data directory with the
    // same keys. Signing in works, and the resources are one consistent
    // moment: the first N of those written, none missing in between.
    let restored = parent.path().join("restored");
    copy_all_but_the_database(&data_dir, &restored);
    std::fs::copy(&out, restored.join(rap_storage::sqlite::DATABASE_FILE_NAME)).expect("restore");
    let mut child = appliance(&restored).spawn().expect("spawn");
    let (addr, _logs) = wait_until_listening(&mut child);
    let (token, org) = sign_in(&http, &addr).await;
    let list =
        json_get(&http, &format!("http://{addr}/api/v1/resources?organization_id={org}&limit=500"), &token).await;
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 20 && names.len() <= written, "{} of {written} written", names.len());
    let expected: Vec<String> = (0..names.len()).map(|count| format!("PC {count:04}")).collect();
    assert_eq!(names, expected);
    // Each resource but perhaps the last has its ended session, and the
    // sessions are of the restored resources only.
    let sessions =
        json_get(&http, &format!("http://{addr}/api/v1/sessions?organization_id={org}&limit=500"), &token).await;
    let sessions = sessions["items"].as_array().expect("items");
    let resource_ids: Vec<&str> =
        list["items"].as_array().expect("items").iter().map(|item| item["id"].as_str().expect("id")).collect();
    assert!(
        sessions.len() + 1 >= names.len() && sessions.len() <= names.len(),
        "{} sessions for {} resources",
        sessions.len(),
        names.len()
    );
    for session in sessions {
        assert!(resource_ids.contains(&session["resource_id"].as_str().expect("resource")), "{session}");
    }
    signal(&child, "TERM");
    assert_eq!(wait_for_exit(&mut child, Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_backup_without_a_database_fails_and_writes_nothing() {
    let parent = tempfile::tempdir().expect("temp dir");
    let out = parent.path().join("backup.sqlite3");
    let output = appliance(&parent.path().join("empty")).arg("backup").arg("--out").arg(&out).output().expect("run");
    assert_ne!(output.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no database"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!out.exists() && !parent.path().join("backup.sqlite3.partial").exists());
}
