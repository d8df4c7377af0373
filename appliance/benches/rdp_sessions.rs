//! Real RDP sessions: the appliance (in this process, RDP worker runtime)
//! connects over TLS + NLA to `testing/rdp-test-server` processes that
//! animate their desktops, and decodes every update into the session's
//! screen. Measures the appliance's CPU time per decoded update, its CPU
//! share and its resident memory; the baseline is the same sessions on a
//! static desktop (what an idle connected session costs). First, before
//! anything else has grown the heap, it measures the resident memory each
//! connected 1080p session adds, against the raw framebuffer's size.
//!
//! Run: `cargo bench -p rap-appliance --bench rdp_sessions`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(10);

#[path = "../tests/rdp_test_server.rs"]
mod rdp_test_server;

fn server_binary() -> PathBuf {
    rdp_test_server::build(true)
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(binary: &PathBuf, size: &str, animate: &str) -> Self {
        let mut child = Command::new(binary)
            .args(["security=hybrid", "user=test", "password=secret", &format!("size={size}")])
            // The server draws nothing after the first frame without `animate`.
            .args((animate != "static").then(|| format!("animate={animate}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("the RDP test server starts").unwrap();
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
    Duration::from_millis(ticks * 10)
}

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

mod support;

use support::Appliance;

async fn screen_updates(appliance: &Appliance) -> u64 {
    let text = appliance.http.get(format!("{}/metrics", appliance.base)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|line| line.starts_with("rap_screen_updates_total")).expect("counter");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts a session on `server` and waits until it is active.
async fn connect(appliance: &Appliance, server: &Server, width: u16, height: u16) -> String {
    let started = appliance.start_session("127.0.0.1", server.port, ("test", "secret"), (width, height)).await;
    started["session"]["id"].as_str().unwrap().to_owned()
}

/// Resident memory each of `count` connected, drawn `size` sessions adds
/// (MiB), measured in a process that has not run sessions before.
async fn memory_per_session(appliance: &Appliance, binary: &PathBuf, count: usize, size: (u16, u16)) -> f64 {
    let servers: Vec<Server> =
        (0..count).map(|_| Server::start(binary, &format!("{}x{}", size.0, size.1), "static")).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_mib();
    let mut sessions = Vec::new();
    for server in &servers {
        sessions.push(connect(appliance, server, size.0, size.1).await);
    }
    // Every session has decoded its first whole screen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let added = (resident_mib() - before) / count as f64;
    for session in &sessions {
        appliance.call(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/terminate"), None).await;
    }
    drop(servers);
    tokio::time::sleep(Duration::from_secs(1)).await;
    added
}

/// Connects `count` sessions to servers drawing `animate`, measures one
/// window, and terminates them. Returns (updates/s, CPU share, CPU µs
/// per update, resident MiB).
async fn scenario(
    appliance: &Appliance,
    binary: &PathBuf,
    count: usize,
    size: (u16, u16),
    animate: &str,
) -> (f64, f64, f64, f64) {
    let servers: Vec<Server> =
        (0..count).map(|_| Server::start(binary, &format!("{}x{}", size.0, size.1), animate)).collect();
    let mut sessions = Vec::new();
    for server in &servers {
        sessions.push(connect(appliance, server, size.0, size.1).await);
    }
    // Let the first full frames and the connection work settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (updates, cpu, wall) = (screen_updates(appliance).await, cpu_time(), Instant::now());
    tokio::time::sleep(WINDOW).await;
    let elapsed = wall.elapsed().as_secs_f64();
    let updates = (screen_updates(appliance).await - updates) as f64;
    let cpu = (cpu_time() - cpu).as_secs_f64();
    let resident = resident_mib();
    for session in &sessions {
        appliance.call(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/terminate"), None).await;
    }
    drop(servers);
    let per_update = if updates > 0.0 { cpu / updates * 1e6 } else { f64::NAN };
    (updates / elapsed, cpu / elapsed * 100.0, per_update, resident)
}

fn main() {
    let binary = server_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let appliance = Appliance::start(&[("RAP_WORKER_SLOTS", "64"), ("RAP_WORKER_RUNTIME", "rdp")]).await;
        let (count, size) = (10, (1920u16, 1080u16));
        let added = memory_per_session(&appliance, &binary, count, size).await;
        let framebuffer = f64::from(size.0) * f64::from(size.1) * 4.0 / (1024.0 * 1024.0);
        println!(
            "resident memory per connected {}x{} session ({count} sessions): {added:.1} MiB = {:.2}× the raw framebuffer ({framebuffer:.1} MiB)",
            size.0,
            size.1,
            added / framebuffer
        );
        println!(
            "real RDP sessions (TLS + NLA, bitmap updates) decoded by the appliance, {}-s windows",
            WINDOW.as_secs()
        );
        println!(
            "| scenario | sessions | updates/s | appliance CPU | vs. baseline | CPU per update | resident memory |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        let scenarios = [
            ("baseline: static desktop", 10, (1280, 720), "static"),
            ("office work (typing, page every 2 s)", 10, (1280, 720), "office"),
            ("office work (typing, page every 2 s)", 50, (1280, 720), "office"),
            ("full-screen repaint, 1920×1080", 1, (1920, 1080), "full"),
        ];
        let mut baseline = None;
        for (name, count, size, animate) in scenarios {
            let (rate, share, per_update, resident) = scenario(&appliance, &binary, count, size, animate).await;
            let base = *baseline.get_or_insert(share);
            let per_update = if per_update.is_finite() { format!("{per_update:.0} µs") } else { "—".into() };
            // Idle sessions can cost less than the clock's resolution: then
            // there is no ratio to give, only the absolute share.
            let ratio = if base >= 0.05 { format!("{:.1}×", share / base) } else { "—".into() };
            println!("| {name} | {count} | {rate:.1} | {share:.1} % | {ratio} | {per_update} | {resident:.0} MiB |");
        }
        appliance.stop().await;
    });
}
