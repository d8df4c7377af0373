//! The two picture paths side by side, on one host and the same content:
//! H.264 passed through to a viewer that decodes it, and the appliance's
//! own pixels (zlib) to one that does not; the baseline is FreeRDP's own
//! client (`xfreerdp /gfx:avc420`) connected straight to the host, what a
//! user with a native client gets.
//!
//! The host is FreeRDP's shadow server sharing a virtual display, which
//! this bench drives: typing into a terminal, a terminal scrolling, and a
//! full-screen animated test pattern (ffplay, 30 frames/s). Per workload
//! and path: Mbit/s to the viewer, updates (access units, or pixel
//! updates) per second, and the appliance's CPU (this process) per viewer
//! stream.
//!
//! Run (FreeRDP, ffmpeg, xdotool and Xvfb installed):
//! `bash testing/bench-graphics.sh`, which starts the shadow server on a
//! 1920×1080 display and a hidden display for xfreerdp, then
//! `cargo bench -p rap-appliance --bench graphics_paths` with
//! `RAP_BENCH_SHADOW=host:port`, `RAP_BENCH_HOST_DISPLAY`,
//! `RAP_BENCH_CLIENT_DISPLAY` set.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::Appliance;

const WINDOW: Duration = Duration::from_secs(10);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run testing/bench-graphics.sh"))
}

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// What runs on the host's display during a window.
#[derive(Clone, Copy)]
enum Workload {
    Typing,
    Scrolling,
    MovingPicture,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Typing => "typing (10 characters/s)",
            Self::Scrolling => "terminal scrolling",
            Self::MovingPicture => "1080p30 moving picture",
        }
    }

    /// Starts the workload on `display`; it runs until the child is killed.
    fn start(self, display: &str) -> Child {
        let script = match self {
            Self::Typing => {
                "while true; do xdotool type --delay 100 'the quick brown fox jumps over the lazy dog '; done"
            }
            Self::Scrolling => {
                "xdotool type --delay 5 'while true; do ls -l /usr/lib/x86_64-linux-gnu | head -300; done'; xdotool key Return; sleep 3600"
            }
            Self::MovingPicture => "exec ffplay -loglevel quiet -an -fs -f lavfi -i testsrc2=size=1920x1080:rate=30",
        };
        // The pointer over the terminal gives it the keyboard (no window manager).
        let _ = Command::new("xdotool").args(["mousemove", "200", "200"]).env("DISPLAY", display).status();
        Command::new("sh").args(["-c", script]).env("DISPLAY", display).process_group(0).spawn().unwrap()
    }

    fn stop(self, mut child: Child, display: &str) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
        if matches!(self, Self::Scrolling) {
            let _ = Command::new("xdotool").args(["key", "ctrl+c", "key", "ctrl+l"]).env("DISPLAY", display).status();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

use std::os::unix::process::CommandExt as _;

/// Bytes `xfreerdp` received on its connection to `port`, from the
/// kernel's TCP counters.
fn client_bytes_received(port: u16) -> u64 {
    let out = Command::new("ss").args(["-tinH", "state", "established", &format!("dport = :{port}")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter_map(|field| field.strip_prefix("bytes_received:"))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// The baseline: FreeRDP's client straight to the host for one window.
fn native_client(host: &str, port: u16, display: &str) -> (f64, f64) {
    let mut client = Command::new("xfreerdp")
        .args([
            &format!("/v:{host}:{port}"),
            "/cert:ignore",
            "/u:rap",
            "/p:unused",
            "/gfx:avc420",
            "/size:1920x1080",
            "-grab-keyboard",
        ])
        .env("DISPLAY", display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let (before, wall) = (client_bytes_received(port), Instant::now());
    std::thread::sleep(WINDOW);
    let bytes = client_bytes_received(port).saturating_sub(before);
    let elapsed = wall.elapsed().as_secs_f64();
    let _ = client.kill();
    let _ = client.wait();
    (bytes as f64 * 8.0 / elapsed / 1e6, f64::NAN)
}

/// One viewer over the gateway for one window: (Mbit/s, updates/s,
/// appliance CPU % of one core).
async fn through_the_appliance(appliance: &Appliance, session: &str, attach: serde_json::Value) -> (f64, f64, f64) {
    let offered = appliance.call(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/takeover"), None).await;
    let url = format!("{}/api/v1/gateway/ws", appliance.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut payload = json!({"attach_token": offered["attach"]["attach_token"], "render_transport": "binary_v1"});
    payload.as_object_mut().unwrap().extend(attach.as_object().unwrap().clone());
    socket.send(Message::text(json!({"type": "attach", "payload": payload}).to_string())).await.unwrap();
    // Past the first whole screen and the join.
    let settle = Instant::now() + Duration::from_secs(3);
    while let Ok(Some(_)) = tokio::time::timeout_at(settle.into(), socket.next()).await {}
    let (cpu, wall) = (cpu_time(), Instant::now());
    let (mut bytes, mut updates) = (0u64, 0u64);
    let end = tokio::time::Instant::now() + WINDOW;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(end, socket.next()).await {
        if let Message::Binary(frame) = message {
            bytes += frame.len() as u64;
            let header = rap_wire::frame::FrameHeader::read(&frame).unwrap();
            // An update is one access unit, or the last rectangle of a pixel update.
            let encoding = header.encoding;
            if encoding == rap_wire::frame::Encoding::H264
                || (header.last && encoding != rap_wire::frame::Encoding::H264Region)
            {
                updates += 1;
            }
        }
    }
    let elapsed = wall.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu).as_secs_f64();
    (bytes as f64 * 8.0 / elapsed / 1e6, updates as f64 / elapsed, cpu / elapsed * 100.0)
}

fn main() {
    let spec = env("RAP_BENCH_SHADOW");
    let (host, port) = spec.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let (host_display, client_display) = (env("RAP_BENCH_HOST_DISPLAY"), env("RAP_BENCH_CLIENT_DISPLAY"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let appliance = Appliance::start(&[("RAP_WORKER_RUNTIME", "rdp")]).await;
        let started = appliance.start_session(host, port, ("rap", "unused"), (1920, 1080)).await;
        let session = started["session"]["id"].as_str().unwrap().to_owned();
        println!("one viewer at a time, {}-s windows, the same workload for each path", WINDOW.as_secs());
        println!("| workload | path | Mbit/s per viewer | vs. native client | updates/s | appliance CPU (one core) |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for workload in [Workload::Typing, Workload::Scrolling, Workload::MovingPicture] {
            let child = workload.start(&host_display);
            std::thread::sleep(Duration::from_secs(2));
            let (native, _) = tokio::task::block_in_place(|| native_client(host, port, &client_display));
            println!("| {} | xfreerdp /gfx:avc420, direct | {native:.2} | 1.00× | | |", workload.name());
            for (path, attach) in [
                ("H.264 passthrough", json!({"codecs": ["h264"]})),
                ("appliance pixels (zlib)", json!({"compression": "zlib"})),
            ] {
                let (mbps, updates, cpu) = through_the_appliance(&appliance, &session, attach).await;
                println!(
                    "| {} | {path} | {mbps:.2} | {:.2}× | {updates:.1} | {cpu:.1} % |",
                    workload.name(),
                    mbps / native
                );
            }
            workload.stop(child, &host_display);
        }
        appliance.call(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/terminate"), None).await;
        appliance.stop().await;
    });
}
