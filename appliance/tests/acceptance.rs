//! Acceptance against a real third-party RDP server: Debian's xrdp on
//! loopback, set up by `.ci/run` (see `testing/xrdp-setup.sh`), which sets
//! `RAP_ACCEPTANCE_XRDP` to `host:port user password`. Without it the test
//! says so and does nothing (a developer machine has no xrdp).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{OWNER_EMAIL, OWNER_PASSWORD, json_of, legacy_app_with_owner};
use crate::tenancy::id;

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn attach(addr: &std::net::SocketAddr, token: &str) -> Socket {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/gateway/ws")).await.expect("connect");
    let attach = json!({"type": "attach", "payload": {"attach_token": token, "render_transport": "binary_v1"}});
    socket.send(Message::text(attach.to_string())).await.expect("send");
    socket
}

/// Reads frames until one carries a pixel that is not black; returns how
/// many bytes of frames it took.
async fn non_blank_frame(socket: &mut Socket) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut bytes = 0;
    loop {
        assert!(Instant::now() < deadline, "no non-blank frame from xrdp in 60 s");
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await else { continue };
        if let Message::Binary(frame) = message {
            bytes += frame.len();
            let payload = &frame[rap_appliance::protocol::frame::HEADER_LEN..];
            if payload.chunks_exact(4).any(|pixel| pixel[0] > 16 || pixel[1] > 16 || pixel[2] > 16) {
                return bytes;
            }
        }
    }
}

pub(crate) async fn wait_state(app: &crate::support::TestApp, token: &str, session: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = json_of(app.get_as(&format!("/api/v1/sessions/{session}"), token).await, 200).await;
        if current["state"] == wanted {
            return current;
        }
        assert!(current["state"] != "failed", "the session failed: {current}");
        assert!(Instant::now() < deadline, "never {wanted}: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An xrdp session through a fresh appliance: the app, the admin's token,
/// the session id and its controller socket past a drawn frame. `None`
/// (after saying why) when no xrdp is configured.
struct XrdpSession {
    app: crate::support::TestApp,
    admin: String,
    session: String,
    socket: Socket,
}

/// `RAP_ACCEPTANCE_XRDP` as (host, port, user, password).
fn xrdp_spec() -> Option<(String, u16, String, String)> {
    let Ok(spec) = std::env::var("RAP_ACCEPTANCE_XRDP") else {
        eprintln!("RAP_ACCEPTANCE_XRDP is not set: the xrdp acceptance test runs in .ci/run");
        return None;
    };
    let mut parts = spec.split_whitespace();
    let (Some(address), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("RAP_ACCEPTANCE_XRDP is `host:port user password`")
    };
    let (host, port) = address.rsplit_once(':').expect("host:port");
    Some((host.to_owned(), port.parse().expect("port"), user.to_owned(), password.to_owned()))
}

/// The settings every acceptance appliance runs with.
const ACCEPTANCE_SETTINGS: [(&str, &str); 1] = [("RAP_WORKER_RUNTIME", "rdp")];

/// A fresh appliance with one RDP resource at `host:port` and a session
/// on it, started and active: the app, the admin's token, the session id
/// and the start response (with the controller's attach token).
pub(crate) async fn started_session(
    host: &str,
    port: u16,
    (user, password): (&str, &str),
    policy: Value,
    size: (u16, u16),
) -> (crate::support::TestApp, String, String, Value) {
    let app = legacy_app_with_owner(&ACCEPTANCE_SETTINGS).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    let body = json!({"organization_id": org, "name": "desktop", "protocol": "rdp", "host": host, "port": port,
        "certificate_verification_mode": "ignore", "policy": policy});
    let resource = id(&json_of(app.post("/api/v1/resources", Some(&admin), body).await, 201).await);
    let secret = json!({"username": user, "password": password});
    json_of(
        app.send(Method::PUT, &format!("/api/v1/resources/{resource}/secret"), Some(&admin), Some(secret)).await,
        200,
    )
    .await;
    let (width, height) = size;
    let start = json!({"resource_id": resource, "width": width, "height": height});
    let started = json_of(app.post("/api/v1/sessions", Some(&admin), start).await, 201).await;
    let session = id(&started["session"]);
    wait_state(&app, &admin, &session, "active").await;
    (app, admin, session, started)
}

async fn xrdp_session(policy: Value) -> Option<XrdpSession> {
    let (host, port, user, password) = xrdp_spec()?;
    let (app, admin, session, started) = started_session(&host, port, (&user, &password), policy, (1024, 768)).await;
    let mut socket = attach(&app.addr, started["attach"]["attach_token"].as_str().expect("token")).await;
    let first = non_blank_frame(&mut socket).await;
    eprintln!("xrdp: first non-blank frame after {first} bytes");
    Some(XrdpSession { app, admin, session, socket })
}

#[tokio::test]
async fn a_session_on_xrdp_from_login_to_terminate() {
    let Some(XrdpSession { app, admin, session, mut socket }) = xrdp_session(json!({})).await else { return };

    // Type into the remote session: the desktop answers with new pixels.
    for code in ["KeyE", "KeyC", "KeyH", "KeyO", "Space", "KeyH", "KeyI", "Enter"] {
        for down in [true, false] {
            let key = json!({"type": "input.key", "payload": {"code": code, "down": down}});
            socket.send(Message::text(key.to_string())).await.expect("send");
        }
    }
    let click = json!({"type": "input.mouse", "payload": {"x": 500, "y": 400, "buttons": 0}});
    socket.send(Message::text(click.to_string())).await.expect("send");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut updates_after_typing = 0;
    while updates_after_typing == 0 {
        assert!(Instant::now() < deadline, "the remote desktop did not react to typing");
        if let Ok(Some(Ok(Message::Binary(_)))) = tokio::time::timeout(Duration::from_secs(2), socket.next()).await {
            updates_after_typing += 1;
        }
    }

    let detached =
        json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/detach"), Some(&admin), None).await, 200)
            .await;
    assert_eq!(detached["session"]["state"], "detached");
    drop(socket);
    let resumed =
        json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/attach"), Some(&admin), None).await, 200)
            .await;
    let mut again = attach(&app.addr, resumed["attach"]["attach_token"].as_str().expect("token")).await;
    non_blank_frame(&mut again).await;

    let ended = json_of(
        app.send(Method::POST, &format!("/api/v1/sessions/{session}/terminate"), Some(&admin), None).await,
        200,
    )
    .await;
    assert_eq!(ended["session"]["state"], "terminated");
    app.stop().await.expect("clean stop");
}

/// The `KeyboardEvent.code` that types `c` on a US layout, and whether it
/// needs Shift.
fn key_for(c: char) -> (String, bool) {
    match c {
        'a'..='z' => (format!("Key{}", c.to_ascii_uppercase()), false),
        'A'..='Z' => (format!("Key{c}"), true),
        '0'..='9' => (format!("Digit{c}"), false),
        ' ' => ("Space".into(), false),
        '.' => ("Period".into(), false),
        '/' => ("Slash".into(), false),
        '-' => ("Minus".into(), false),
        '_' => ("Minus".into(), true),
        '>' => ("Period".into(), true),
        '$' => ("Digit4".into(), true),
        '(' => ("Digit9".into(), true),
        ')' => ("Digit0".into(), true),
        '=' => ("Equal".into(), false),
        ';' => ("Semicolon".into(), false),
        '\n' => ("Enter".into(), false),
        other => panic!("no key for {other:?}"),
    }
}

/// Types `text` into the remote session as physical key presses.
pub(crate) async fn type_text(socket: &mut Socket, text: &str) {
    let press = |code: &str, down: bool| json!({"type": "input.key", "payload": {"code": code, "down": down}});
    for c in text.chars() {
        let (code, shift) = key_for(c);
        let mut keys = vec![];
        if shift {
            keys.push(press("ShiftLeft", true));
        }
        keys.extend([press(&code, true), press(&code, false)]);
        if shift {
            keys.push(press("ShiftLeft", false));
        }
        for key in keys {
            socket.send(Message::text(key.to_string())).await.expect("send");
        }
    }
}

/// The next text message of one of `kinds`, skipping frames.
async fn next_of(socket: &mut Socket, kinds: &[&str], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "none of {kinds:?} in {within:?}");
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), socket.next()).await else { continue };
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("json");
            if kinds.iter().any(|kind| value["type"] == *kind) {
                return value;
            }
        }
    }
}

/// A file uploaded over the WebSocket is on the remote desktop's
/// redirected drive; the remote user copies it into `ToClient`, and it
/// comes back as a download, byte for byte. Needs xrdp's chansrv with FUSE
/// (`.ci/run` installs `fuse`).
#[tokio::test]
async fn files_cross_the_redirected_drive_on_xrdp() {
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("no /dev/fuse on this machine: xrdp cannot mount redirected drives, so this test cannot run");
        return;
    }
    let policy = json!({"file_transfer_mode": "bidirectional"});
    let Some(XrdpSession { app, admin, session, mut socket }) = xrdp_session(policy).await else { return };

    let content = format!("uploaded through RAP at {:?}\n", Instant::now());
    let transfer_id = uuid::Uuid::new_v4().to_string();
    let start = json!({"transfer_id": transfer_id, "file_name": "up.txt", "size": content.len()});
    socket.send(Message::text(json!({"type": "file_upload.start", "payload": start}).to_string())).await.expect("send");
    next_of(&mut socket, &["file_upload.progress"], Duration::from_secs(10)).await;
    let chunk = json!({"transfer_id": transfer_id, "offset": 0,
        "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, content.as_bytes())});
    socket.send(Message::text(json!({"type": "file_upload.chunk", "payload": chunk}).to_string())).await.expect("send");
    let uploaded =
        next_of(&mut socket, &["file_upload.completed", "file_upload.blocked"], Duration::from_secs(10)).await;
    assert_eq!(uploaded["type"], "file_upload.completed", "{uploaded}");

    // xrdp mounts the redirected drive at ~/thinclient_drives/<name>, with
    // its DOS name (seven characters: `RAPXfer` reads whole there); the
    // xterm starts in the home directory. Chansrv may take a moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Listing works as the remote user sees it: ls, ls -l and find each
    // ask for other directory information classes.
    let home = std::path::PathBuf::from(format!("/home/{}", xrdp_spec().map(|spec| spec.2).unwrap_or_default()));
    for listing in ["rap-ls", "rap-lsl", "rap-find"] {
        let _ = std::fs::remove_file(home.join(listing));
    }
    type_text(&mut socket, "ls thinclient_drives/RAPXfer > rap-ls; ls -l thinclient_drives/RAPXfer > rap-lsl; find thinclient_drives/RAPXfer > rap-find\n").await;
    let listed = read_when_written(&home.join("rap-ls")).await;
    assert!(
        listed.lines().any(|line| line == "up.txt") && listed.lines().any(|line| line == "ToClient"),
        "ls: {listed}"
    );
    let long = read_when_written(&home.join("rap-lsl")).await;
    let size = content.len().to_string();
    assert!(
        long.lines().any(|line| line.ends_with(" up.txt") && line.split_whitespace().any(|field| field == size)),
        "ls -l: {long}"
    );
    let found = read_when_written(&home.join("rap-find")).await;
    assert!(found.lines().any(|line| line == "thinclient_drives/RAPXfer/ToClient"), "find: {found}");
    type_text(&mut socket, "cp thinclient_drives/RAPXfer/up.txt thinclient_drives/RAPXfer/ToClient/down.txt\n").await;
    let offered = loop {
        let offered = next_of(&mut socket, &["file_download.available"], Duration::from_secs(30)).await;
        if offered["payload"]["files"].as_array().is_some_and(|files| !files.is_empty()) {
            break offered;
        }
    };
    assert_eq!(offered["payload"]["files"][0]["file_name"], "down.txt", "{offered}");
    let transfer_id = uuid::Uuid::new_v4().to_string();
    let start = json!({"transfer_id": transfer_id, "file_name": "down.txt"});
    socket
        .send(Message::text(json!({"type": "file_download.start", "payload": start}).to_string()))
        .await
        .expect("send");
    let chunk = next_of(&mut socket, &["file_download.chunk", "file_download.blocked"], Duration::from_secs(10)).await;
    let data = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        chunk["payload"]["data"].as_str().unwrap_or_else(|| panic!("a chunk: {chunk}")),
    )
    .expect("base64");
    assert_eq!(String::from_utf8_lossy(&data), content, "the file came back through the remote desktop");
    let ack = json!({"transfer_id": transfer_id, "offset": data.len()});
    socket.send(Message::text(json!({"type": "file_download.ack", "payload": ack}).to_string())).await.expect("send");
    next_of(&mut socket, &["file_download.completed"], Duration::from_secs(10)).await;

    json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/terminate"), Some(&admin), None).await, 200)
        .await;
    app.stop().await.expect("clean stop");
}

/// The seed's detached-session recovery against a host that keeps
/// disconnected sessions (xrdp with `KillDisconnected=false`, which `.ci/run`
/// sets for this test alone and announces with
/// `RAP_ACCEPTANCE_XRDP_KEEPS_SESSIONS=1`): a shell started before the
/// appliance restarts is the shell typed into after it, in the same X
/// session.
#[tokio::test]
async fn an_appliance_restart_brings_the_same_xrdp_desktop_back() {
    if std::env::var("RAP_ACCEPTANCE_XRDP_KEEPS_SESSIONS").as_deref() != Ok("1") {
        eprintln!("xrdp is not set to keep disconnected sessions: .ci/run runs this test in its own step");
        return;
    }
    let Some((_, _, user, _)) = xrdp_spec() else { return };
    let home = std::path::PathBuf::from(format!("/home/{user}"));
    let (before, after) = (home.join("rap-before"), home.join("rap-after"));
    let _ = std::fs::remove_file(&before);
    let _ = std::fs::remove_file(&after);
    let Some(XrdpSession { app, admin: _, session, mut socket }) = xrdp_session(json!({})).await else { return };

    let mark = format!("m{}", std::process::id());
    type_text(&mut socket, &format!("RAPMARK={mark}; echo $$ > rap-before\n")).await;
    let shell = read_when_written(&before).await;
    drop(socket);

    let data = app.data_dir_handle().await;
    let mut settings = vec![("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")];
    settings.extend_from_slice(&ACCEPTANCE_SETTINGS);
    let app = crate::support::TestApp::start_in(data, &settings).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let kept = json_of(app.get_as(&format!("/api/v1/sessions/{session}"), &admin).await, 200).await;
    assert_eq!(
        (kept["state"].as_str(), kept["detach_reason"].as_str()),
        (Some("detached"), Some("appliance_restarted"))
    );
    let resumed =
        json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/attach"), Some(&admin), None).await, 200)
            .await;
    wait_state(&app, &admin, &session, "active").await;
    let mut socket = attach(&app.addr, resumed["attach"]["attach_token"].as_str().expect("token")).await;
    non_blank_frame(&mut socket).await;
    type_text(&mut socket, &format!("echo $$ $RAPMARK $(pgrep -c -x -u {user} Xorg) > rap-after\n")).await;
    let seen = read_when_written(&after).await;
    assert_eq!(seen.trim(), format!("{} {mark} 1", shell.trim()), "the same shell, in the one X session of {user}");

    json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/terminate"), Some(&admin), None).await, 200)
        .await;
    app.stop().await.expect("clean stop");
}

/// The file's text once the remote shell has written a whole line to it.
async fn read_when_written(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(Instant::now() < deadline, "the remote shell never wrote {}", path.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
