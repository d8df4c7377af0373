//! The RDP worker runtime against a real RDP server on 127.0.0.1: IronRDP's
//! own server crate, run from `testing/rdp-test-server` (its own workspace,
//! because it needs an older IronRDP set) as a subprocess.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::{Socket, clipboard_or_error};
use crate::support::{OWNER_EMAIL, OWNER_PASSWORD, TestApp, json_of, legacy_app_with_owner};
use crate::tenancy::id;

/// Builds the test server once per test run (the first build takes a while).
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| crate::rdp_test_server::build(false)).clone()
}

/// A running test server: its port, certificate fingerprint, and what it
/// printed (input it received, connection events).
struct RdpServer {
    child: Child,
    port: u16,
    fingerprint: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RdpServer {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the RDP test server");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.starts_with("LISTENING") || line.starts_with("CERT_SHA256") {
                        let _ = ready_tx.send(line.clone());
                    }
                    lines.lock().expect("lock").push(line);
                }
            });
        }
        let (mut port, mut fingerprint) = (None, None);
        while port.is_none() || fingerprint.is_none() {
            let line = ready_rx.recv_timeout(Duration::from_secs(30)).expect("the RDP test server starts");
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                port = addr.rsplit(':').next().and_then(|port| port.parse().ok());
            } else if let Some(hex) = line.strip_prefix("CERT_SHA256 ") {
                fingerprint = Some(format!("sha256:{}", hex.trim()));
            }
        }
        Self { child, port: port.expect("port"), fingerprint: fingerprint.expect("fingerprint"), lines }
    }

    /// Waits until the server printed a line containing `needle`.
    async fn saw(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.lines.lock().expect("lock").iter().any(|line| line.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn command(&mut self, command: &str) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "{command}");
        }
    }
}

impl Drop for RdpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Rdp {
    app: TestApp,
    admin: String,
    org: String,
}

async fn rdp_app() -> Rdp {
    rdp_app_with(&[]).await
}

async fn rdp_app_with(settings: &[(&str, &str)]) -> Rdp {
    let mut all = vec![("RAP_WORKER_RUNTIME", "rdp"), ("RAP_WORKER_SLOTS", "2")];
    all.extend_from_slice(settings);
    let app = legacy_app_with_owner(&all).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    Rdp { app, admin, org }
}

impl Rdp {
    /// A resource for the server with `mode`/`pin` and the given password;
    /// returns the started session's id and attach token.
    async fn start(&self, server: &RdpServer, mode: &str, pin: Option<&str>, password: &str) -> (String, String) {
        let mut body = json!({"organization_id": self.org, "name": "Test server", "protocol": "rdp", "host": "127.0.0.1",
            "port": server.port, "certificate_verification_mode": mode});
        if let Some(pin) = pin {
            body["certificate_fingerprint"] = json!(pin);
        }
        let resource = id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await);
        let secret = json!({"username": "test", "password": password});
        json_of(
            self.app
                .send(Method::PUT, &format!("/api/v1/resources/{resource}/secret"), Some(&self.admin), Some(secret))
                .await,
            200,
        )
        .await;
        let body = json!({"resource_id": resource, "width": 320, "height": 200});
        let started = json_of(self.app.post("/api/v1/sessions", Some(&self.admin), body).await, 201).await;
        (id(&started["session"]), started["attach"]["attach_token"].as_str().expect("token").to_owned())
    }

    /// An active session on `server` (any certificate, the right password)
    /// under `policy`, and its controller socket (`binary_v1`).
    async fn attached(&self, server: &RdpServer, policy: Value) -> Socket {
        let body = json!({"organization_id": self.org, "name": "Policy", "protocol": "rdp", "host": "127.0.0.1",
            "port": server.port, "certificate_verification_mode": "ignore", "policy": policy});
        let resource = id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await);
        let secret = json!({"username": "test", "password": "secret"});
        let path = format!("/api/v1/resources/{resource}/secret");
        json_of(self.app.send(Method::PUT, &path, Some(&self.admin), Some(secret)).await, 200).await;
        let body = json!({"resource_id": resource, "width": 320, "height": 200});
        let started = json_of(self.app.post("/api/v1/sessions", Some(&self.admin), body).await, 201).await;
        let session = id(&started["session"]);
        assert_eq!(self.settle(&session).await["state"], "active");
        let url = format!("ws://{}/api/v1/gateway/ws", self.app.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        let attach = json!({"type": "attach", "payload": {"attach_token": started["attach"]["attach_token"], "render_transport": "binary_v1"}});
        socket.send(Message::text(attach.to_string())).await.expect("send");
        socket
    }

    async fn settle(&self, session: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let current =
                json_of(self.app.get_as(&format!("/api/v1/sessions/{session}"), &self.admin).await, 200).await;
            if current["state"] != "starting" && current["state"] != "pending" {
                return current;
            }
            assert!(Instant::now() < deadline, "the session never left starting: {current}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads `binary_v1` frames into a canvas until it is the test server's
/// whole pattern (red = x, green = y, blue 128).
async fn whole_desktop(socket: &mut Socket, width: usize, height: usize) {
    let mut canvas = vec![0u8; width * height * 4];
    let expected: Vec<u8> =
        (0..height).flat_map(|y| (0..width).flat_map(move |x| [(x % 256) as u8, (y % 256) as u8, 128, 255])).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while canvas != expected {
        assert!(Instant::now() < deadline, "the desktop never arrived whole");
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await else { continue };
        if let Message::Binary(bytes) = message {
            let header = rap_appliance::protocol::frame::FrameHeader::read(&bytes).expect("header");
            let rect = header.rect;
            let payload = &bytes[rap_appliance::protocol::frame::HEADER_LEN..];
            for row in 0..usize::from(rect.height) {
                let target = ((usize::from(rect.y) + row) * width + usize::from(rect.x)) * 4;
                let source = row * usize::from(rect.width) * 4;
                canvas[target..target + usize::from(rect.width) * 4]
                    .copy_from_slice(&payload[source..source + usize::from(rect.width) * 4]);
            }
        }
    }
}

async fn attach_socket(app: &TestApp, token: &str) -> Socket {
    let url = format!("ws://{}/api/v1/gateway/ws", app.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let attach = json!({"type": "attach", "payload": {"attach_token": token, "render_transport": "binary_v1"}});
    socket.send(Message::text(attach.to_string())).await.expect("send");
    socket
}

/// An appliance restart ends the RDP connection but not the session: the
/// next attach opens a new connection to the same server with the same
/// secret, and the desktop and input work as before.
#[tokio::test]
async fn a_session_resumes_on_a_new_rdp_connection_after_an_appliance_restart() {
    let server =
        RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off", "size=320x200"]);
    let rdp = rdp_app().await;
    let (session, token) = rdp.start(&server, "ignore", None, "secret").await;
    assert_eq!(rdp.settle(&session).await["state"], "active");
    let mut socket = attach_socket(&rdp.app, &token).await;
    whole_desktop(&mut socket, 320, 200).await;
    drop(socket);

    let Rdp { app, .. } = rdp;
    let data = app.data_dir_handle().await;
    assert!(server.saw("DISCONNECTED").await, "stopping the appliance ended the RDP connection");
    let app = TestApp::start_in(
        data,
        &[
            ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"),
            ("RAP_WORKER_RUNTIME", "rdp"),
            ("RAP_WORKER_SLOTS", "2"),
        ],
    )
    .await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let rdp = Rdp { app, admin, org: String::new() };
    let kept = json_of(rdp.app.get_as(&format!("/api/v1/sessions/{session}"), &rdp.admin).await, 200).await;
    assert_eq!(
        (kept["state"].as_str(), kept["detach_reason"].as_str()),
        (Some("detached"), Some("appliance_restarted"))
    );

    let resumed = json_of(
        rdp.app.send(Method::POST, &format!("/api/v1/sessions/{session}/attach"), Some(&rdp.admin), None).await,
        200,
    )
    .await;
    assert_eq!(rdp.settle(&session).await["state"], "active", "the worker connected again");
    let accepted = server.lines.lock().expect("lock").iter().filter(|line| line.starts_with("ACCEPTED")).count();
    assert_eq!(accepted, 2, "a second RDP connection, to the same server");
    let mut socket = attach_socket(&rdp.app, resumed["attach"]["attach_token"].as_str().expect("token")).await;
    whole_desktop(&mut socket, 320, 200).await;
    let key = json!({"type": "input.key", "payload": {"code": "KeyB", "down": true}});
    socket.send(Message::text(key.to_string())).await.expect("send");
    assert!(server.saw("Pressed { code: 48, extended: false }").await, "input reaches the new connection");
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_real_rdp_desktop_reaches_the_viewer_and_input_reaches_the_desktop() {
    let server =
        RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off", "size=320x200"]);
    let rdp = rdp_app().await;
    let (session, token) = rdp.start(&server, "strict", Some(&server.fingerprint), "secret").await;
    let active = rdp.settle(&session).await;
    assert_eq!(active["state"], "active", "{active}");

    let mut socket = attach_socket(&rdp.app, &token).await;
    whole_desktop(&mut socket, 320, 200).await;

    let metrics = rdp.app.get("/metrics").await.text().await.expect("metrics");
    let decoded = metrics.lines().find_map(|line| line.strip_prefix("rap_screen_updates_total "));
    assert!(decoded.is_some_and(|count| count.parse::<u64>().is_ok_and(|count| count > 0)), "{metrics}");

    let click = json!({"type": "input.mouse", "payload": {"x": 40, "y": 30, "buttons": 1}});
    socket.send(Message::text(click.to_string())).await.expect("send");
    assert!(server.saw("Move { x: 40, y: 30 }").await, "the pointer moved on the server");
    assert!(server.saw("LeftPressed").await, "the button press arrived");
    let key = json!({"type": "input.key", "payload": {"code": "KeyA", "down": true}});
    socket.send(Message::text(key.to_string())).await.expect("send");
    assert!(server.saw("Pressed { code: 30, extended: false }").await, "KeyA arrived as scancode 0x1E");
    let arrow = json!({"type": "input.key", "payload": {"code": "ArrowLeft", "down": true}});
    socket.send(Message::text(arrow.to_string())).await.expect("send");
    assert!(server.saw("Pressed { code: 75, extended: true }").await, "ArrowLeft arrived as extended 0x4B");

    // A bigger browser window asks the desktop to follow (display control);
    // the viewer learns the new size once the server has reactivated.
    let resize = json!({"type": "display.resize", "payload": {"width": 640, "height": 480}});
    socket.send(Message::text(resize.to_string())).await.expect("send");
    assert!(server.saw("LAYOUT_REQUEST 640x480").await, "the server got the layout request");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the viewer never learned the new size");
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await else { continue };
        let Message::Text(text) = message else { continue };
        let envelope: Value = serde_json::from_str(&text).expect("json");
        if envelope["type"] == "display.size" && envelope["payload"]["width"] == 640 {
            assert_eq!(envelope["payload"]["height"], 480, "{envelope}");
            break;
        }
    }

    json_of(
        rdp.app.send(Method::POST, &format!("/api/v1/sessions/{session}/terminate"), Some(&rdp.admin), None).await,
        200,
    )
    .await;
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_wrong_password_fails_the_session_with_invalid_credentials() {
    let server = RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off"]);
    let rdp = rdp_app().await;
    let (session, token) = rdp.start(&server, "ignore", None, "not-the-password").await;
    // The viewer attaches at once, as the UI does, and waits for the desktop.
    let url = format!("ws://{}/api/v1/gateway/ws", rdp.app.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let attach = json!({"type": "attach", "payload": {"attach_token": token}});
    socket.send(Message::text(attach.to_string())).await.expect("send");
    let failed = rdp.settle(&session).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["failure_reason"], "invalid_credentials");
    // It is told why, in words, with the code kept.
    let ended = loop {
        let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("no session.state before close") };
        let value: Value = serde_json::from_str(&text).expect("json");
        if value["type"] == "session.state" {
            break value;
        }
    };
    assert_eq!(ended["event"]["code"], "session_failed");
    assert_eq!(ended["event"]["details"]["reason"], "invalid_credentials");
    let message = ended["event"]["fallback_message"].as_str().expect("message");
    assert!(message.contains("credentials"), "{message}");
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_configured_ca_passes_strict_checks_only_for_the_names_it_vouches_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (other_ca, own_ca) = (dir.path().join("other-ca.pem"), dir.path().join("own-ca.pem"));
    let arg = |key: &str, path: &std::path::Path| format!("{key}={}", path.display());
    // Issued for another host name than the resource's `127.0.0.1`.
    let elsewhere = RdpServer::start(&[
        "security=hybrid",
        "codecs=remotefx:off",
        &arg("ca_out", &other_ca),
        "names=desktop.office.lan",
    ]);
    let matching = RdpServer::start(&["security=hybrid", "codecs=remotefx:off", &arg("ca_out", &own_ca)]);
    let trusted = dir.path().join("trusted.pem");
    let both = [std::fs::read_to_string(&other_ca).expect("ca"), std::fs::read_to_string(&own_ca).expect("ca")];
    std::fs::write(&trusted, both.concat()).expect("write");
    let rdp = rdp_app_with(&[("RAP_RDP_TRUSTED_CA_FILE", trusted.to_str().expect("path"))]).await;

    let (mismatch, _) = rdp.start(&elsewhere, "strict", None, "secret").await;
    let failed = rdp.settle(&mismatch).await;
    assert_eq!(failed["failure_reason"], "certificate_name_mismatch", "a trusted chain for another name: {failed}");
    let (good, _) = rdp.start(&matching, "strict", None, "secret").await;
    assert_eq!(rdp.settle(&good).await["state"], "active", "a chain to a configured CA, for the resource's host");
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn strict_certificate_checks_refuse_an_unknown_server_and_ignore_skips_them() {
    let server = RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off"]);
    let rdp = rdp_app().await;
    let (untrusted, _) = rdp.start(&server, "strict", None, "secret").await;
    let failed = rdp.settle(&untrusted).await;
    assert_eq!(failed["failure_reason"], "certificate_untrusted", "a self-signed certificate with no pin: {failed}");
    let wrong_pin = format!("sha256:{}", "00".repeat(32));
    let (pinned_wrong, _) = rdp.start(&server, "strict", Some(&wrong_pin), "secret").await;
    assert_eq!(rdp.settle(&pinned_wrong).await["failure_reason"], "certificate_untrusted");
    let (ignored, _) = rdp.start(&server, "ignore", None, "secret").await;
    assert_eq!(rdp.settle(&ignored).await["state"], "active", "ignore skips the check for this resource only");
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_server_that_goes_away_fails_the_session_and_nothing_else() {
    let mut server = RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off"]);
    let rdp = rdp_app().await;
    let (session, _) = rdp.start(&server, "ignore", None, "secret").await;
    assert_eq!(rdp.settle(&session).await["state"], "active");
    server.command("QUIT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ended = loop {
        let current = json_of(rdp.app.get_as(&format!("/api/v1/sessions/{session}"), &rdp.admin).await, 200).await;
        if current["state"] == "failed" || current["state"] == "terminated" {
            break current;
        }
        assert!(Instant::now() < deadline, "the session outlived its server: {current}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended["state"], "failed");
    assert_eq!(ended["failure_reason"], "connection_lost");
    assert_eq!(rdp.app.get("/healthz").await.status(), 200, "the appliance is unaffected");
    let refused = RdpServer {
        child: Command::new("true").spawn().expect("true"),
        port: 1,
        fingerprint: String::new(),
        lines: Default::default(),
    };
    let (nowhere, _) = rdp.start(&refused, "ignore", None, "secret").await;
    assert_eq!(rdp.settle(&nowhere).await["failure_reason"], "connection_refused");
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn clipboard_text_crosses_the_rdp_channel_both_ways_under_policy() {
    let mut server = RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off"]);
    let rdp = rdp_app().await;
    // File transfer on too: the drive channel rides along, and a server
    // that does not serve drives (IronRDP's) must not mind it.
    let policy = json!({"clipboard_mode": "bidirectional", "file_transfer_mode": "bidirectional"});
    let mut socket = rdp.attached(&server, policy).await;

    // Browser → server.
    let copy = json!({"type": "clipboard.text", "payload": {"text": "from the browser", "sequence_id": 1}});
    socket.send(Message::text(copy.to_string())).await.expect("send");
    assert!(server.saw("CLIPBOARD_FROM_CLIENT from the browser").await, "the server pasted the browser's text");

    // Server → browser.
    server.command("COPY from the server");
    let deadline = Instant::now() + Duration::from_secs(15);
    let received = loop {
        assert!(Instant::now() < deadline, "the server's clipboard never reached the browser");
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(2), socket.next()).await
        else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).expect("json");
        if value["type"] == "clipboard.text" {
            break value;
        }
    };
    assert_eq!(received["payload"]["text"], "from the server");
    assert_eq!(received["payload"]["origin"], "server");
    rdp.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn clipboard_policy_holds_on_the_rdp_channel_in_each_direction() {
    let rdp = rdp_app().await;

    // In only: the browser's text reaches the server, the server's stays there.
    let mut server = RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off"]);
    let mut inbound = rdp.attached(&server, json!({"clipboard_mode": "client_to_server"})).await;
    let copy = json!({"type": "clipboard.text", "payload": {"text": "for the server", "sequence_id": 1}});
    inbound.send(Message::text(copy.to_string())).await.expect("send");
    assert!(server.saw("CLIPBOARD_FROM_CLIENT for the server").await);
    server.command("COPY stays remote");
    assert_eq!(clipboard_or_error(&mut inbound, Duration::from_secs(3)).await, None, "nothing comes out");

    // Out only: the server's text arrives, the browser's is refused.
    let mut server = RdpServer::start(&["security=hybrid", "user=test", "password=secret", "codecs=remotefx:off"]);
    let mut outbound = rdp.attached(&server, json!({"clipboard_mode": "server_to_client"})).await;
    // Give the channel time to come up before the server copies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.command("COPY for the browser");
    let received = clipboard_or_error(&mut outbound, Duration::from_secs(15)).await.expect("the server's text");
    assert_eq!(received["payload"]["text"], "for the browser", "{received}");
    outbound.send(Message::text(copy.to_string())).await.expect("send");
    let refused = clipboard_or_error(&mut outbound, Duration::from_secs(5)).await.expect("a refusal");
    assert_eq!(refused["event"]["code"], "policy_denied");
    assert!(!server.saw("CLIPBOARD_FROM_CLIENT").await, "the server never got the browser's text");
    rdp.app.stop().await.expect("clean stop");
}
