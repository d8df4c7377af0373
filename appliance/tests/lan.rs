//! Serving an office LAN: TLS with the appliance's own CA (or given files,
//! reloaded on SIGHUP), web security headers, WebSocket origins, and the
//! limits that keep one client from taking the appliance offline.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::gateway::{closed_with, direct_settings, live, live_on, next_frame, next_of};
use crate::support::{TestApp, assert_envelope, https_client, json_of, trusting, with_owner};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn a_client_that_trusts_only_the_appliance_ca_gets_https_and_wss_frames() {
    let app = TestApp::start_tls_on("127.0.0.2", &[("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")]).await;
    let on_disk = std::fs::read(app.data_dir.path().join("tls").join("ca.pem")).expect("CA file");

    let installation = json_of(app.get("/api/v1/installation").await, 200).await;
    assert_eq!(installation["tls"]["mode"], "auto");
    let ca_der = CertificateDer::from_pem_slice(&on_disk).expect("PEM");
    assert_eq!(installation["tls"]["ca_fingerprint_sha256"], hex(&sha2::Sha256::digest(ca_der.as_ref())));
    let download = app.get("/api/v1/installation/ca.pem").await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "application/x-pem-file");
    assert!(download.headers()["content-disposition"].to_str().expect("ascii").contains("attachment"));
    assert!(download.headers()["strict-transport-security"].to_str().expect("ascii").contains("max-age="));
    assert_eq!(download.bytes().await.expect("body").as_ref(), on_disk.as_slice(), "the CA on disk, served");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(app.data_dir.path().join("tls").join(key)).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{key} is private");
        }
    }

    // Trusting nothing (not even the system's roots), or speaking plain
    // HTTP to the TLS port, gets nowhere.
    let untrusting = https_client(&trusting(b""));
    let refused = untrusting.get(app.url("/healthz")).send().await;
    assert!(refused.is_err(), "an untrusted appliance must not be reached: {refused:?}");
    let plain = crate::support::client().get(format!("http://{}/healthz", app.addr)).send().await;
    assert!(plain.map(|response| !response.status().is_success()).unwrap_or(true), "no plain HTTP on the TLS port");

    // HTTPS all the way through: owner, session, WSS attach, frames.
    let live = live_on(with_owner(app).await).await;
    let (_, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut socket, attached) = live.attach(&token, "binary_v1", "full_color").await;
    assert_eq!(attached["payload"]["role"], "controller");
    let frame = next_frame(&mut socket).await;
    assert_eq!((frame.rect.width, frame.rect.height), (320, 200), "the whole screen over WSS");
    let click = json!({"type": "input.mouse", "payload": {"x": 10, "y": 10, "buttons": 0}});
    socket.send(Message::text(click.to_string())).await.expect("send");
    assert_eq!(next_frame(&mut socket).await.rect.x, 10, "input over WSS reaches the desktop");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_server_certificate_names_the_listen_address_and_the_extra_names() {
    let app = TestApp::start_tls_on("127.0.0.2", &[("APP_TLS_NAMES", "rap.office.lan,10.20.30.40")]).await;
    let chain = served_chain(app.addr, &app.tls.clone().expect("tls"), "127.0.0.2").await;
    let pem = std::fs::read_to_string(app.data_dir.path().join("tls").join("server.pem")).expect("server.pem");
    assert!(pem.matches("BEGIN CERTIFICATE").count() >= 2, "the leaf and the CA");
    let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].as_ref()).expect("x509");
    let names = leaf.subject_alternative_name().expect("ok").expect("SAN").value.general_names.clone();
    let shown: Vec<String> = names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            x509_parser::extensions::GeneralName::IPAddress(octets) => {
                <[u8; 4]>::try_from(*octets).ok().map(|ip| std::net::Ipv4Addr::from(ip).to_string())
            }
            _ => None,
        })
        .collect();
    for wanted in ["rap.office.lan", "localhost", "127.0.0.2", "10.20.30.40"] {
        assert!(shown.iter().any(|name| name == wanted), "{wanted} missing from {shown:?}");
    }
    let days = (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()) / 86_400;
    assert!(days <= 398, "browsers refuse longer server certificates: {days} days");

    // A restart keeps the CA (clients that trusted it keep working).
    let ca = std::fs::read(app.data_dir.path().join("tls").join("ca.pem")).expect("ca");
    let data_dir = app.data_dir_handle().await;
    let again = TestApp::start_tls_in(data_dir, "127.0.0.2", &[]).await;
    json_of(again.get("/api/v1/installation").await, 200).await;
    assert_eq!(std::fs::read(again.data_dir.path().join("tls").join("ca.pem")).expect("ca"), ca);
    again.stop().await.expect("clean stop");
}

/// The certificates the appliance at `addr` presents, over a raw TLS
/// connection that trusts `tls`'s roots.
async fn served_chain(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>, name: &str) -> Vec<CertificateDer<'static>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let server_name = ServerName::try_from(name.to_owned()).expect("name");
    let stream = connector.connect(server_name, stream).await.expect("handshake");
    stream.get_ref().1.peer_certificates().expect("certificates").to_vec()
}

/// A test CA and a server certificate it signs for 127.0.0.3, as PEM
/// (chain, key, CA).
fn test_chain(common_name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Office test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.3".to_owned()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = params.signed_by(&key, &issuer).expect("leaf");
    (format!("{}{}", leaf.pem(), ca.pem()), key.serialize_pem(), ca.pem())
}

/// A spawned appliance, stopped when the test ends, however it ends.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// `rap-appliance serve` in its own process with `settings`; its address
/// once it listens. `shell` wraps it (for `ulimit`).
fn spawn_binary(data: &std::path::Path, settings: &[(&str, &str)], shell: Option<&str>) -> (Spawned, String) {
    let binary = env!("CARGO_BIN_EXE_rap-appliance");
    let mut command = match shell {
        Some(prefix) => {
            let mut command = std::process::Command::new("sh");
            command.args(["-c", &format!("{prefix} && exec \"$0\" serve"), binary]);
            command
        }
        None => std::process::Command::new(binary),
    };
    command
        .env_clear()
        .env("APP_DATA_DIR", data)
        .env("APP_LOG_FORMAT", "json")
        .env("RAP_WORKER_RUNTIME", "scripted")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    for (name, value) in settings {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let listening = |line: &str| {
        let event = serde_json::from_str::<Value>(line).ok()?;
        (event["message"] == "Appliance listening").then(|| event["local_addr"].as_str().map(str::to_owned))?
    };
    let addr = loop {
        match lines_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                if let Some(addr) = listening(&line) {
                    break addr;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the appliance did not start");
            }
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || while lines_rx.recv().is_ok() {});
    (Spawned(child), addr)
}

#[tokio::test]
async fn files_mode_serves_the_given_chain_and_reloads_it_on_sighup_without_dropping_connections() {
    let data = tempfile::tempdir().expect("temp dir");
    let (chain, key, ca) = test_chain("first.office.lan");
    let cert_file = data.path().join("chain.pem");
    let key_file = data.path().join("key.pem");
    std::fs::write(&cert_file, chain).expect("write");
    std::fs::write(&key_file, key).expect("write");
    let cert_path = cert_file.to_string_lossy().into_owned();
    let key_path = key_file.to_string_lossy().into_owned();
    let settings = [
        ("APP_TLS", "files"),
        ("APP_TLS_CERT_FILE", cert_path.as_str()),
        ("APP_TLS_KEY_FILE", key_path.as_str()),
        ("APP_LISTEN_ADDR", "127.0.0.3:0"),
    ];
    let (child, addr) = spawn_binary(data.path(), &settings, None);
    let addr: SocketAddr = addr.parse().expect("addr");
    let tls = trusting(ca.as_bytes());
    let common_name = |chain: &[CertificateDer<'static>]| {
        let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].as_ref()).expect("x509");
        leaf.subject().iter_common_name().next().and_then(|name| name.as_str().ok()).map(str::to_owned)
    };
    assert_eq!(common_name(&served_chain(addr, &tls, "127.0.0.3").await).as_deref(), Some("first.office.lan"));
    let installation: Value = https_client(&tls)
        .get(format!("https://{addr}/api/v1/installation"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(installation["tls"]["mode"], "files");
    assert!(installation["tls"]["ca_fingerprint_sha256"].is_null(), "a given chain has no CA of ours");

    // A connection open across the reload keeps working.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let mut held = connector.connect(ServerName::try_from("127.0.0.3").expect("name"), stream).await.expect("tls");

    // The new chain comes from another CA: the check trusts both.
    let (chain, key, second_ca) = test_chain("second.office.lan");
    std::fs::write(&cert_file, chain).expect("write");
    std::fs::write(&key_file, key).expect("write");
    let both = trusting(format!("{ca}{second_ca}").as_bytes());
    let _ = std::process::Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let served = common_name(&served_chain(addr, &both, "127.0.0.3").await);
        if served.as_deref() == Some("second.office.lan") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload the certificate: still {served:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.3\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    held.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(child);
}

#[tokio::test]
async fn every_ui_and_api_response_carries_the_security_headers() {
    let app = TestApp::start().await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).map(|value| value.to_str().expect("ascii").to_owned()).unwrap_or_default()
    };
    let csp = header(&page, "content-security-policy");
    for directive in ["default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert!(csp.contains(&format!("ws://{}", app.addr)), "sockets to itself only: {csp}");
    let script_src = csp.split(';').find(|part| part.trim().starts_with("script-src")).unwrap_or_default();
    assert!(!script_src.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "strict-transport-security"), "", "no HSTS over plain loopback HTTP");
    assert!(page.headers().get("set-cookie").is_none(), "bearer tokens only, no ambient cookies");

    for path in ["/api/v1/installation", "/api/v1/auth/me", "/healthz"] {
        let response = app.get(path).await;
        assert_eq!(header(&response, "cache-control"), "no-store", "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{path}");
    }
    app.stop().await.expect("clean stop");
}

/// Opens a WebSocket to `path` with `origin`; the HTTP status it is
/// refused with, or 101.
async fn upgrade_status(addr: SocketAddr, path: &str, origin: Option<&str>) -> u16 {
    let mut request = format!("ws://{addr}{path}").into_client_request().expect("request");
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("envelope");
            assert!(body["error"]["details"]["reason"].is_string(), "{body}");
            status
        }
        Err(error) => panic!("upgrade failed oddly: {error}"),
    }
}

#[tokio::test]
async fn a_foreign_origin_is_refused_before_either_socket_upgrades() {
    let keys = tempfile::tempdir().expect("temp dir");
    let settings = direct_settings(&keys, "true", "true");
    let mut pairs: Vec<(&str, &str)> = settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.push(("APP_ALLOWED_ORIGINS", "tauri://localhost"));
    let app = TestApp::start_with(&pairs).await;
    let worker = format!("/api/v1/data-plane/workers/{}/ws", uuid::Uuid::now_v7());
    let own = format!("http://{}", app.addr);
    for path in ["/api/v1/gateway/ws", worker.as_str()] {
        assert_eq!(upgrade_status(app.addr, path, Some("https://evil.example")).await, 403, "{path}");
        assert_eq!(upgrade_status(app.addr, path, Some("null")).await, 403, "{path}");
        assert_eq!(upgrade_status(app.addr, path, Some(&own)).await, 101, "{path}: its own pages");
        assert_eq!(upgrade_status(app.addr, path, Some("tauri://localhost")).await, 101, "{path}: the desktop app");
        assert_eq!(upgrade_status(app.addr, path, None).await, 101, "{path}: not a browser");
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("rap_http_connections_closed_total{reason=\"foreign_origin\"} 4"), "{metrics}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn requests_over_the_address_limit_wait_and_then_get_through() {
    let app = TestApp::start_with(&[("APP_RATE_LIMIT_PER_SECOND", "2"), ("APP_RATE_LIMIT_BURST", "5")]).await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/installation").await.status(), 200);
    }
    let limited = app.get("/api/v1/installation").await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let error = assert_envelope(limited, 429, "rate_limited").await;
    assert_eq!(error["details"]["reason"], "requests_per_address");
    assert_eq!(app.get("/healthz").await.status(), 200, "health checks are not limited");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.get("/api/v1/installation").await.status(), 200, "recovered after Retry-After");

    // Made-up methods do not make new metric series.
    for method in ["FOO", "BAR", "BAZ"] {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        app.client.request(method, app.url("/healthz")).send().await.expect("request");
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(!metrics.contains("FOO") && !metrics.contains("BAZ"), "unbounded labels");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(metrics.contains("rap_rate_limited_total{reason=\"requests_per_address\"}"), "{metrics}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn sockets_are_limited_per_address_and_per_user() {
    let live = live(&[("RAP_WEBSOCKETS_PER_ADDRESS", "3"), ("RAP_WEBSOCKETS_PER_USER", "1")]).await;
    let (session, token) = live.start("pc1.office.lan", (160, 100)).await;
    let (mut controller, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut controller).await;
    live.wait_state(&session, "active").await;

    // Two more sockets fill the address; the next is refused before it
    // upgrades.
    let third = live.connect().await;
    let fourth = live.connect().await;
    let url = format!("ws://{}/api/v1/gateway/ws", live.app.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    drop((third, fourth));

    // Once they are gone, the same user's second socket is let in, and
    // refused once it says who it is.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut second = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((socket, _)) => break socket,
            Err(_) => assert!(Instant::now() < deadline, "closed sockets are uncounted"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shadow = live.command(&session, "shadow").await;
    let attach = json!({"type": "attach", "payload": {"attach_token": shadow["attach"]["attach_token"]}});
    second.send(Message::text(attach.to_string())).await.expect("send");
    let refused = next_of(&mut second, "error").await;
    assert_eq!(refused["event"]["code"], "rate_limited", "{refused}");
    assert_eq!(refused["event"]["details"]["reason"], "websockets_per_user");
    assert_eq!(closed_with(&mut second).await, 4429);
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_input_flood_is_cut_and_the_session_survives_detached() {
    let live = live(&[("RAP_SOCKET_MESSAGES_PER_SECOND", "20"), ("RAP_SOCKET_MESSAGE_BURST", "40")]).await;
    let (session, token) = live.start("pc1.office.lan", (160, 100)).await;
    let (mut socket, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut socket).await;
    live.wait_state(&session, "active").await;
    let moves = (0..200).map(|index| {
        let mouse = json!({"type": "input.mouse", "payload": {"x": index % 100, "y": 5, "buttons": 0}});
        Ok(Message::text(mouse.to_string()))
    });
    // The server may close while the flood is still being sent.
    let _ = socket.send_all(&mut futures_util::stream::iter(moves)).await;
    let cut = next_of(&mut socket, "error").await;
    assert_eq!(cut["event"]["code"], "rate_limited", "{cut}");
    assert_eq!(cut["event"]["details"]["reason"], "socket_messages");
    assert_eq!(closed_with(&mut socket).await, 4429);
    live.wait_state(&session, "detached").await;
    let (mut again, _) = live.attach_by(&session, "attach", "full_color").await;
    assert_eq!(next_frame(&mut again).await.rect.width, 160, "reattached, whole screen");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn five_hundred_half_sent_requests_neither_exhaust_descriptors_nor_delay_health() {
    let data = tempfile::tempdir().expect("temp dir");
    let settings = [
        ("APP_LISTEN_ADDR", "127.0.0.1:0"),
        ("APP_HTTP_HEADER_TIMEOUT", "3s"),
        ("APP_MAX_IDLE_CONNECTIONS", "64"),
        ("APP_RATE_LIMIT_PER_SECOND", "0"),
    ];
    // 256 descriptors in all, as a small unit file might allow.
    let (child, addr) = spawn_binary(data.path(), &settings, Some("ulimit -n 256"));
    let mut slow = Vec::new();
    for _ in 0..500 {
        match TcpStream::connect(&addr).await {
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET /api/v1/installation HTTP/1.1\r\nHost: x\r\n").await;
                slow.push(stream);
            }
            // The kernel's own backlog can fill too; that is the client's loss.
            Err(_) => break,
        }
    }
    let client = crate::support::client_builder().timeout(Duration::from_secs(5)).build().expect("client");
    for _ in 0..5 {
        let started = Instant::now();
        let health = client.get(format!("http://{addr}/healthz")).send().await.expect("health answers");
        assert_eq!(health.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2), "health took {:?}", started.elapsed());
    }
    // The half-sent ones were shed (idle first) or time out on their headers.
    let mut closed = 0;
    for stream in &mut slow {
        let mut buffer = [0u8; 256];
        // Anything but a timeout: end of stream, or reset.
        if tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buffer)).await.is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, slow.len(), "every half-sent request was closed by the appliance");
    let metrics =
        client.get(format!("http://{addr}/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("rap_http_connections_closed_total{reason="), "{metrics}");
    drop(child);
}

#[tokio::test]
async fn direct_worker_candidates_of_an_auto_appliance_trust_its_own_ca() {
    let keys = tempfile::tempdir().expect("temp dir");
    let settings = direct_settings(&keys, "true", "true");
    let mut pairs: Vec<(&str, &str)> = settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.push(("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"));
    let app = TestApp::start_tls_on("127.0.0.2", &pairs).await;
    let fingerprint = json_of(app.get("/api/v1/installation").await, 200).await["tls"]["ca_fingerprint_sha256"].clone();
    let live = live_on(with_owner(app).await).await;
    let body = json!({"organization_id": live.org, "name": "pc1", "protocol": "rdp", "host": "pc1.office.lan"});
    let resource = json_of(live.app.post("/api/v1/resources", Some(&live.admin), body).await, 201).await;
    let body = json!({"resource_id": resource["id"], "width": 128, "height": 128});
    let started = json_of(live.app.post("/api/v1/sessions", Some(&live.admin), body).await, 201).await;
    let direct = &started["data_plane"]["candidates"][1];
    assert_eq!(direct["kind"], "direct_worker_wss", "{started}");
    assert_eq!(direct["tls_trust_mode"], "platform_ca");
    assert_eq!(direct["tls_ca_ref"], fingerprint, "clients can tell which CA to trust");
    assert_eq!(direct["production_trusted"], true);
    assert_eq!(direct["smoke_only"], false);
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_loopback_console_serves_plain_http_beside_the_tls_lan_listener() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_path = data.path().to_string_lossy().into_owned();
    let lan = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("bind");
    let lan_addr = lan.local_addr().expect("addr");
    let lan_text = lan_addr.to_string();
    let console = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let console_addr = console.local_addr().expect("addr");
    let config = rap_appliance::Config::from_pairs([
        ("APP_DATA_DIR", data_path.as_str()),
        ("APP_TLS", "auto"),
        ("APP_LISTEN_ADDR", lan_text.as_str()),
        ("RAP_WORKER_RUNTIME", "scripted"),
    ])
    .expect("config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rap_appliance::run_with_console(config, lan, Some(console), async move {
        let _ = stopped.await;
    }));

    // The console: plain HTTP on loopback, its pages' sockets admitted.
    let page = crate::support::client().get(format!("http://{console_addr}/")).send().await.expect("console");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains(&format!("ws://{console_addr}")), "{csp}");
    let own = format!("http://127.0.0.1:{}", console_addr.port());
    assert_eq!(upgrade_status(console_addr, "/api/v1/gateway/ws", Some(&own)).await, 101);
    assert_eq!(upgrade_status(console_addr, "/api/v1/gateway/ws", Some("https://evil.example")).await, 403);

    // The LAN: TLS with the appliance's CA only.
    let ca = std::fs::read(data.path().join("tls").join("ca.pem")).expect("CA");
    let lan_client = https_client(&trusting(&ca));
    let health = lan_client.get(format!("https://{lan_addr}/healthz")).send().await.expect("https");
    assert_eq!(health.status(), 200);
    let plain = crate::support::client().get(format!("http://{lan_addr}/healthz")).send().await;
    assert!(plain.map(|response| !response.status().is_success()).unwrap_or(true), "no plain HTTP on the LAN");
    let _ = stop.send(());
    task.await.expect("joined").expect("clean stop");

    // Plain HTTP never leaves the machine.
    let config = rap_appliance::Config::from_pairs([("APP_DATA_DIR", data_path.as_str())]).expect("config");
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let everywhere = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let refused = rap_appliance::run_with_console(config, main, Some(everywhere), std::future::pending()).await;
    assert!(refused.is_err_and(|error| error.to_string().contains("must be loopback")));
}
