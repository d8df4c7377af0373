//! Frames through the gateway: a 1920×1080 session whose screen this
//! benchmark paints directly (no remote host), read by 1 or 10 real
//! WebSocket viewers on 127.0.0.1 with `binary_v1`, raw or zlib.
//!
//! Scenarios:
//! - full screen: every update repaints all 1920×1080 pixels, as fast as
//!   the viewers take them;
//! - small region: every update repaints one 64×64 square;
//! - office work: typing (ten 12×20 glyphs per second) and scrolling a
//!   1600×900 document area every two seconds, at that real pace; what
//!   matters here is bandwidth per viewer.
//!
//! Every scenario runs over plain WebSocket and over WSS (the appliance's
//! own CA, as `APP_TLS=auto` serves the LAN), through the same accept loop,
//! so the rows differ by TLS alone. Then the cost of a new connection:
//! sequential fresh connections each asking `/healthz`, plain and TLS.
//!
//! Run: `cargo bench -p rap-appliance --bench gateway_frames`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rap_appliance::audit::RequestContext;
use rap_appliance::auth::{DeviceRequestInput, LoginRequest};
use rap_appliance::installation::BootstrapOwner;
use rap_appliance::protocol::frame::{FrameHeader, Rect};
use rap_appliance::protocol::framebuffer::Screen;
use rap_appliance::resource::ResourceInput;
use rap_appliance::sessionbroker::StartRequest;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const WIDTH: u16 = 1920;
const HEIGHT: u16 = 1080;
const RUN: Duration = Duration::from_secs(3);

#[derive(Clone, Copy)]
enum Scenario {
    FullScreen,
    SmallRegion,
    Office,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::FullScreen => "full screen",
            Self::SmallRegion => "small region (64×64)",
            Self::Office => "office work",
        }
    }
}

/// A page of "text": white, with dark runs like words on lines.
fn document(width: u16, height: u16, offset: u16) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
    for y in 0..height {
        let line = (y + offset) / 24;
        let in_text = (y + offset) % 24 < 14;
        for x in 0..width {
            let word = (u32::from(x) / 7 + u32::from(line) * 13) % 11 < 8;
            let ink = in_text && word && x > 40 && x < width - 40 && (u32::from(x) * 31 + u32::from(y) * 17) % 5 < 2;
            rgba.extend_from_slice(if ink { &[30, 30, 30, 255] } else { &[255, 255, 255, 255] });
        }
    }
    rgba
}

fn gradient(shift: u8) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(usize::from(WIDTH) * usize::from(HEIGHT) * 4);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            rgba.extend_from_slice(&[(x as u8).wrapping_add(shift), (y as u8).wrapping_add(shift), shift, 255]);
        }
    }
    rgba
}

async fn produce(screen: Arc<Screen>, scenario: Scenario, stop: Arc<AtomicBool>) {
    let frames = [gradient(0), gradient(128)];
    let pages: Vec<Vec<u8>> = (0..4).map(|page| document(1600, 900, page * 24)).collect();
    let mut step: u32 = 0;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        step = step.wrapping_add(1);
        match scenario {
            Scenario::FullScreen => {
                screen.update(|canvas| canvas.put(Rect::new(0, 0, WIDTH, HEIGHT), &frames[step as usize % 2]));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Scenario::SmallRegion => {
                let x = (step * 64 % u32::from(WIDTH - 64)) as u16;
                screen.update(|canvas| canvas.fill(Rect::new(x, 500, 64, 64), [step as u8, 90, 200, 255]));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Scenario::Office => {
                // Ten glyphs a second; a scroll every two seconds.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let elapsed = started.elapsed().as_millis() as u32;
                let glyph = step % 120;
                let (x, y) = (160 + (glyph % 120) as u16 * 12, 200 + ((step / 120) % 30) as u16 * 24);
                screen.update(|canvas| canvas.fill(Rect::new(x, y, 12, 20), [30, 30, 30, 255]));
                if elapsed / 2000 != (elapsed.saturating_sub(100)) / 2000 {
                    let page = &pages[(elapsed / 2000) as usize % pages.len()];
                    screen.update(|canvas| canvas.put(Rect::new(160, 120, 1600, 900), page));
                }
            }
        }
    }
}

struct Outcome {
    updates: u64,
    bytes: u64,
}

async fn view(
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: String,
    compression: &'static str,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector).await.unwrap();
    let attach = json!({"type": "attach", "payload": {"attach_token": token, "render_transport": "binary_v1", "compression": compression}});
    socket.send(Message::text(attach.to_string())).await.unwrap();
    // Skip the first (full) frame: measure the steady state.
    let mut skipped_first = false;
    let mut outcome = Outcome { updates: 0, bytes: 0 };
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_millis(200), socket.next()).await else {
            continue;
        };
        if let Message::Binary(bytes) = message {
            let header = FrameHeader::read(&bytes).unwrap();
            if !skipped_first {
                skipped_first = header.last;
                continue;
            }
            outcome.bytes += bytes.len() as u64;
            if header.last {
                outcome.updates += 1;
            }
        }
    }
    outcome
}

/// The accept loop the appliance runs, for one listener.
fn edge(state: &rap_appliance::state::AppState) -> Arc<rap_appliance::net::Edge> {
    let metrics = state.metrics().clone();
    Arc::new(rap_appliance::net::Edge {
        board: rap_appliance::net::connections::ConnectionBoard::new(4096, 512, metrics.clone()),
        header_read_timeout: Duration::from_secs(10),
        tls_handshake_timeout: Duration::from_secs(10),
        metrics,
        graceful: tokio_util::sync::CancellationToken::new(),
        force: tokio_util::sync::CancellationToken::new(),
        tasks: tokio_util::task::TaskTracker::new(),
    })
}

/// A client config that trusts the appliance's CA alone.
fn trusting(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Fresh connections per second, one after another, each asking
/// `/healthz` and reading the whole answer.
async fn connections_per_second(addr: std::net::SocketAddr, tls: Option<Arc<rustls::ClientConfig>>, count: u32) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let started = Instant::now();
    for _ in 0..count {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut answer = Vec::new();
        match &tls {
            None => {
                let mut stream = stream;
                stream.write_all(request).await.unwrap();
                stream.read_to_end(&mut answer).await.unwrap();
            }
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let mut stream = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream).await.unwrap();
                stream.write_all(request).await.unwrap();
                // The server may close without close_notify once it answered.
                let _ = stream.read_to_end(&mut answer).await;
            }
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }
    f64::from(count) / started.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_string_lossy().into_owned();
        let config = rap_appliance::Config::from_pairs([("APP_DATA_DIR", data.as_str()), ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"), ("RAP_WORKER_RUNTIME", "scripted"), ("APP_RATE_LIMIT_PER_SECOND", "0"), ("APP_TLS", "auto")]).unwrap();
        let store = rap_storage::sqlite::SqliteStore::start(dir.path().join("rap.sqlite3"), 2).unwrap();
        store.migrate().await.unwrap();
        for slot in 0..8 {
            store.repositories().workers.register_worker("scripted", &format!("slot-{slot}"), 1, time::OffsetDateTime::now_utc()).await.unwrap();
        }
        let state = rap_appliance::state::AppState::build(config, store.repositories(), Default::default()).await.unwrap();
        let context = RequestContext::default();
        let owner = BootstrapOwner { email: "o@example.com".into(), password: "owner password 1".into(), display_name: "O".into(), activation: None, setup_code: None };
        let org = state.installation().bootstrap_owner(owner, &context).await.unwrap().organization.id;
        let login = LoginRequest { email: "o@example.com".into(), password: "owner password 1".into(), device: DeviceRequestInput::default() };
        let principal = state.auth().authenticate(&state.auth().login(login, &context).await.unwrap().access_token).await.unwrap();
        let input = ResourceInput {
            organization_id: org,
            name: "PC".into(),
            protocol: "rdp".into(),
            host: "bench".into(),
            port: None,
            certificate_verification_mode: None,
            certificate_fingerprint: None,
            metadata: None,
            policy: None,
        };
        let resource = state.resources().create(&principal, input, &context).await.unwrap();

        let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain_addr, tls_addr) = (plain_listener.local_addr().unwrap(), tls_listener.local_addr().unwrap());
        let server_tls = state.tls().expect("APP_TLS=auto").server_config();
        let client_tls = trusting(&std::fs::read(dir.path().join("tls").join("ca.pem")).unwrap());
        let app = rap_appliance::app::router(state.clone());
        tokio::spawn(rap_appliance::net::serve(plain_listener, app.clone(), None, edge(&state)));
        tokio::spawn(rap_appliance::net::serve(tls_listener, app, Some(server_tls), edge(&state)));
        let transports = [("ws", format!("ws://{plain_addr}/api/v1/gateway/ws"), None), ("wss", format!("wss://127.0.0.1:{}/api/v1/gateway/ws", tls_addr.port()), Some(client_tls.clone()))];

        println!("gateway frames, 1920×1080, binary_v1, {} s per run; per viewer: updates/s (slowest viewer), bytes/update, Mbit/s", RUN.as_secs());
        println!("| scenario | compression | viewers | transport | updates/s | bytes/update | Mbit/s per viewer |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for scenario in [Scenario::FullScreen, Scenario::SmallRegion, Scenario::Office] {
            for compression in ["none", "zlib"] {
                for viewers in [1usize, 10] {
                for (transport, url, tls) in &transports {
                    let request = StartRequest { width: Some(WIDTH), height: Some(HEIGHT), ..StartRequest::for_resource(resource.id) };
                    let (view_of, offer) = state.broker().start(&principal, request, &context).await.unwrap();
                    let session_id = view_of.session.id;
                    let screen = state.broker().live().queues.screens.open(session_id, WIDTH, HEIGHT);
                    screen.update(|canvas| canvas.put(Rect::new(0, 0, WIDTH, HEIGHT), &gradient(7)));
                    let mut tokens = vec![offer.attach_token];
                    for _ in 1..viewers {
                        tokens.push(state.broker().shadow(&principal, session_id, &context).await.unwrap().1.attach_token);
                    }
                    let stop = Arc::new(AtomicBool::new(false));
                    let readers: Vec<_> = tokens.into_iter().map(|token| tokio::spawn(view(url.clone(), tls.clone(), token, compression, stop.clone()))).collect();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let producer = tokio::spawn(produce(screen, scenario, stop.clone()));
                    tokio::time::sleep(RUN).await;
                    stop.store(true, Ordering::Relaxed);
                    producer.await.unwrap();
                    let mut outcomes = Vec::new();
                    for reader in readers {
                        outcomes.push(reader.await.unwrap());
                    }
                    let slowest = outcomes.iter().map(|outcome| outcome.updates).min().unwrap_or(0);
                    let updates: u64 = outcomes.iter().map(|outcome| outcome.updates).sum();
                    let bytes: u64 = outcomes.iter().map(|outcome| outcome.bytes).sum();
                    let per_update = bytes.checked_div(updates).unwrap_or(0);
                    let mbps = bytes as f64 * 8.0 / 1e6 / RUN.as_secs_f64() / viewers as f64;
                    println!(
                        "| {} | {compression} | {viewers} | {transport} | {:.1} | {per_update} | {mbps:.2} |",
                        scenario.name(),
                        slowest as f64 / RUN.as_secs_f64()
                    );
                    state.broker().live().queues.screens.close(session_id);
                    state.broker().terminate(&principal, session_id, &context).await.unwrap();
                    // No slot runs these sessions: drop what was queued for it.
                    if let Some(worker_id) = view_of.session.worker_id {
                        state.broker().live().queues.control.purge(&rap_appliance::worker::control_queue(worker_id)).await;
                    }
                }
                }
            }
        }
        const CONNECTIONS: u32 = 300;
        let plain = connections_per_second(plain_addr, None, CONNECTIONS).await;
        let tls = connections_per_second(tls_addr, Some(client_tls), CONNECTIONS).await;
        println!();
        println!("new connections, {CONNECTIONS} one after another, each GET /healthz");
        println!("| transport | connections/s | ms per connection |");
        println!("| --- | --- | --- |");
        println!("| http | {plain:.0} | {:.2} |", 1000.0 / plain);
        println!("| https (TLS 1.3, P-256) | {tls:.0} | {:.2} |", 1000.0 / tls);
        println!("TLS handshake cost: {:.2}× the time of a plain connection", plain / tls);
        store.close().await;
    });
}
