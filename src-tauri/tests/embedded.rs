//! The desktop app's appliance, without a window: started the way the app
//! starts it, reached over real loopback HTTP, stopped the way quitting
//! stops it.

use std::time::{Duration, Instant};

use rap_appliance::config::Settings;
use rap_desktop::embedded::{self, Choices, DEFAULT_LISTEN_ADDR, Embedded, LAN_LISTEN_ADDR};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

async fn get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    Some(answer)
}

#[test]
fn the_app_keeps_its_data_in_its_own_directory_on_a_fixed_loopback_port() {
    let app_dir = tempfile::tempdir().expect("temp dir");
    let settings = embedded::settings(app_dir.path(), Choices::default()).expect("settings");
    let data = app_dir.path().join("data");
    assert_eq!(settings.get("APP_DATA_DIR"), Some(data.to_string_lossy().as_ref()));
    assert_eq!(settings.get("APP_LISTEN_ADDR"), Some(DEFAULT_LISTEN_ADDR));
    let config = rap_appliance::Config::from_settings(&settings).expect("a valid configuration");
    assert!(config.listen_addr.ip().is_loopback(), "nothing on the LAN unless asked");
    assert_eq!(config.tls.mode, rap_appliance::config::TlsMode::Off);

    let lan = embedded::settings(app_dir.path(), Choices { lan: true }).expect("settings");
    assert_eq!(lan.get("APP_LISTEN_ADDR"), Some(LAN_LISTEN_ADDR));
    let config = rap_appliance::Config::from_settings(&lan).expect("a valid configuration");
    assert_eq!(config.tls.mode, rap_appliance::config::TlsMode::Auto, "the LAN is served over HTTPS");
}

fn loopback_any() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

#[tokio::test]
async fn serving_the_lan_keeps_a_plain_console_on_loopback_for_the_window() {
    let app_dir = tempfile::tempdir().expect("temp dir");
    let settings = support::lan_settings(&app_dir.path().join("data"));
    let appliance = Embedded::start(&settings, loopback_any()).await.expect("started");
    assert!(appliance.tls);
    assert!(appliance.console_url.starts_with("http://127.0.0.1:"), "{}", appliance.console_url);
    let console: std::net::SocketAddr =
        appliance.console_url.trim_start_matches("http://").trim_end_matches('/').parse().expect("console addr");
    assert_ne!(console.port(), appliance.listen_addr.port());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get(console, "/readyz").await.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
        assert!(Instant::now() < deadline && !appliance.has_ended(), "the console never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fingerprint = appliance.ca_fingerprint().expect("the appliance's CA");
    assert_eq!(fingerprint.len(), 64);
    assert!(appliance.window_url().contains("#/setup?code="), "{}", appliance.window_url());
    let plain_on_lan = get(appliance.listen_addr, "/readyz").await;
    assert!(!plain_on_lan.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")), "the LAN side is TLS only");
    appliance.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_appliance_runs_in_process_serves_its_console_and_stops_cleanly() {
    let app_dir = tempfile::tempdir().expect("temp dir");
    let data = app_dir.path().join("data").to_string_lossy().into_owned();
    let settings = Settings::from_pairs([
        ("APP_DATA_DIR", data.as_str()),
        ("APP_LISTEN_ADDR", "127.0.0.1:0"),
        ("RAP_WORKER_RUNTIME", "scripted"),
    ])
    .expect("settings");
    let appliance = Embedded::start(&settings, loopback_any()).await.expect("started");
    assert!(appliance.console_url.starts_with("http://127.0.0.1:"), "{}", appliance.console_url);
    assert!(!appliance.tls);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if get(appliance.listen_addr, "/readyz").await.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(!appliance.has_ended(), "the appliance stopped by itself");
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let console = get(appliance.listen_addr, "/").await.expect("console");
    assert!(console.starts_with("HTTP/1.1 200"), "{console}");
    assert!(console.contains("<title>RAP Appliance</title>"), "the web console itself");
    let setup_code = app_dir.path().join("data").join("setup-code");
    assert!(setup_code.exists(), "first run: the owner is created with the set-up code");
    assert_eq!(appliance.ca_fingerprint(), None, "no TLS on loopback");
    // The tray's live line reads the appliance's own metrics (blocking I/O,
    // as on the tray's refresher thread).
    let listen = appliance.listen_addr;
    let counts = tokio::task::spawn_blocking(move || rap_desktop::live_count::fetch(listen)).await.expect("joined");
    assert_eq!(counts.expect("counts"), rap_desktop::live_count::LiveCounts { sessions: 0, viewers: 0 });

    let addr = appliance.listen_addr;
    appliance.stop().await.expect("a clean stop");
    assert!(get(addr, "/healthz").await.is_none(), "nothing listens after the stop");
    let wal = app_dir.path().join("data").join("rap.sqlite3-wal");
    assert!(std::fs::metadata(&wal).map(|meta| meta.len() == 0).unwrap_or(true), "the WAL was checkpointed");
    assert!(app_dir.path().join("data").join("rap.sqlite3").exists());
}

#[tokio::test]
async fn a_taken_port_is_an_error_at_start_not_later() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let app_dir = tempfile::tempdir().expect("temp dir");
    let data = app_dir.path().to_string_lossy().into_owned();
    let settings =
        Settings::from_pairs([("APP_DATA_DIR", data.as_str()), ("APP_LISTEN_ADDR", addr.as_str())]).expect("settings");
    let error = Embedded::start(&settings, loopback_any()).await.err().expect("refused");
    assert!(format!("{error:#}").contains("cannot listen on"), "{error:#}");
}
