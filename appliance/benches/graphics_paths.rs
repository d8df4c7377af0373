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
//! updates) per second, and the appliance's CPU (this process): with the
//! decoding viewer alone, then with a pixel viewer beside it.
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
                "xdotool key ctrl+c ctrl+u; xdotool type --delay 5 'seq 1 999999999'; xdotool key Return; sleep 3600"
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
        // A clean prompt for the next workload.
        let _ = Command::new("xdotool").args(["key", "ctrl+c", "ctrl+u", "ctrl+l"]).env("DISPLAY", display).status();
        std::thread::sleep(Duration::from_secs(1));
    }
}

use std::os::unix::process::CommandExt as _;

/// Bytes process `pid` received on its connections to `port`, from the
/// kernel's TCP counters (the appliance's own connection to the host is
/// a socket of this process, and left out).
fn bytes_received_by(pid: u32, port: u16) -> u64 {
    let filter = format!("dport = :{port}");
    let out = Command::new("ss").args(["-tinpH", "state", "established", &filter]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ours = false;
    let mut total = 0;
    // One line per socket (with its process), then its counters.
    for line in text.lines() {
        if line.contains("users:(") {
            ours = line.contains(&format!("pid={pid},"));
        } else if ours {
            total += line
                .split_whitespace()
                .filter_map(|field| field.strip_prefix("bytes_received:"))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    total
}

/// The baseline: FreeRDP's client straight to the host, connected until
/// dropped.
struct NativeClient(Child);

impl NativeClient {
    fn start(host: &str, port: u16, display: &str) -> Self {
        let child = Command::new("xfreerdp")
            .args([
                &format!("/v:{host}:{port}"),
                "/cert:ignore",
                "/u:rap",
                "/p:unused",
                "/gfx:avc420",
                "/size:1920x1080",
            ])
            .env("DISPLAY", display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a viewer has received so far.
#[derive(Default)]
struct Received {
    bytes: std::sync::atomic::AtomicU64,
    updates: std::sync::atomic::AtomicU64,
    /// Bytes of pixel frames (a decoding viewer gets them only out of step).
    pixel_bytes: std::sync::atomic::AtomicU64,
}

impl Received {
    fn sample(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.bytes.load(Relaxed), self.updates.load(Relaxed), self.pixel_bytes.load(Relaxed))
    }
}

/// Attaches over `binary_v1` (zlib pixels) with `token` and counts what
/// arrives, until the socket closes.
async fn viewer(appliance: &Appliance, token: &serde_json::Value, codecs: &[&str]) -> std::sync::Arc<Received> {
    use rap_wire::frame::{Encoding, FrameHeader};
    use std::sync::atomic::Ordering::Relaxed;
    let url = format!("{}/api/v1/gateway/ws", appliance.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let payload =
        json!({"attach_token": token, "render_transport": "binary_v1", "compression": "zlib", "codecs": codecs});
    socket.send(Message::text(json!({"type": "attach", "payload": payload}).to_string())).await.unwrap();
    let received = std::sync::Arc::new(Received::default());
    let counts = received.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Binary(frame) = message else { continue };
            let header = FrameHeader::read(&frame).unwrap();
            counts.bytes.fetch_add(frame.len() as u64, Relaxed);
            // An update is one access unit, or the last rectangle of a pixel update.
            match header.encoding {
                Encoding::H264 => {
                    counts.updates.fetch_add(1, Relaxed);
                }
                Encoding::H264Region => {}
                _ => {
                    counts.pixel_bytes.fetch_add(frame.len() as u64, Relaxed);
                    counts.updates.fetch_add(u64::from(header.last), Relaxed);
                }
            }
        }
    });
    received
}

/// One window of `received`: (Mbit/s, updates/s, appliance CPU % of one
/// core, share of the bytes that were pixels).
async fn window(received: &Received) -> (f64, f64, f64, f64) {
    let ((bytes, updates, pixels), cpu, wall) = (received.sample(), cpu_time(), Instant::now());
    tokio::time::sleep(WINDOW).await;
    let (bytes_after, updates_after, pixels_after) = received.sample();
    let elapsed = wall.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu).as_secs_f64();
    let bytes = (bytes_after - bytes) as f64;
    let pixel_share = if bytes > 0.0 { (pixels_after - pixels) as f64 / bytes } else { 0.0 };
    (bytes * 8.0 / elapsed / 1e6, (updates_after - updates) as f64 / elapsed, cpu / elapsed * 100.0, pixel_share)
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
        // The decoding viewer is attached from the start, as a user's
        // browser is when the video begins: in step with the host's stream
        // (a viewer joining a long-running stream waits for a key frame).
        let decoding = viewer(&appliance, &started["attach"]["attach_token"], &["h264"]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!("{}-s windows, the same workload for each path; the decoding viewer stays attached throughout", WINDOW.as_secs());
        println!("| workload | path | Mbit/s per viewer | vs. native client | updates/s | appliance CPU (one core) | bytes as pixels |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for workload in [Workload::Typing, Workload::Scrolling, Workload::MovingPicture] {
            let child = workload.start(&host_display);
            std::thread::sleep(Duration::from_secs(2));
            // The native client and the decoding viewer in the same window:
            // the host encodes the same content for each connection.
            let native_client = NativeClient::start(host, port, &client_display);
            tokio::time::sleep(Duration::from_secs(4)).await;
            let pid = native_client.0.id();
            let (native_before, wall) = (bytes_received_by(pid, port), Instant::now());
            let (mbps, updates, cpu, pixels) = window(&decoding).await;
            let native_bytes = bytes_received_by(pid, port).saturating_sub(native_before);
            let native = native_bytes as f64 * 8.0 / wall.elapsed().as_secs_f64() / 1e6;
            drop(native_client);
            println!("| {} | xfreerdp /gfx:avc420, direct | {native:.2} | 1.00× | | | |", workload.name());
            println!(
                "| {} | H.264 passthrough | {mbps:.2} | {:.2}× | {updates:.1} | {cpu:.1} % | {:.0} % |",
                workload.name(),
                mbps / native,
                pixels * 100.0
            );
            let shadow = appliance.call(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/shadow"), None).await;
            let painting = viewer(&appliance, &shadow["attach"]["attach_token"], &[]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (mbps, updates, cpu, _) = window(&painting).await;
            println!(
                "| {} | appliance pixels (zlib), beside the H.264 viewer | {mbps:.2} | {:.2}× | {updates:.1} | {cpu:.1} % | 100 % |",
                workload.name(),
                mbps / native
            );
            workload.stop(child, &host_display);
        }
        appliance.call(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/terminate"), None).await;
        appliance.stop().await;
    });
}
