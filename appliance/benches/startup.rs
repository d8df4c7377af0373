//! Start-up benchmark: wall time from process spawn to the first `/readyz`
//! 200, and resident memory once idle, for a first start (fresh data
//! directory: creates the database and applies migrations) and a restart.
//! The baseline, measured in the same run, is spawning the same binary for
//! `--version`: the cost of exec + dynamic loading that no start-up avoids.
//!
//! Run: `cargo bench -p rap-appliance --bench startup`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_rap-appliance");
const RUNS: usize = 15;

fn main() {
    let baseline = measure(|| {
        let started = Instant::now();
        let status = Command::new(BINARY).arg("--version").stdout(Stdio::null()).status().unwrap();
        assert!(status.success());
        started.elapsed()
    });

    let mut first_rss = Vec::new();
    let first = measure(|| {
        let dir = tempfile::tempdir().unwrap();
        let (elapsed, rss) = start_until_ready(dir.path());
        first_rss.push(rss);
        elapsed
    });
    let dir = tempfile::tempdir().unwrap();
    start_until_ready(dir.path());
    let mut restart_rss = Vec::new();
    let restart = measure(|| {
        let (elapsed, rss) = start_until_ready(dir.path());
        restart_rss.push(rss);
        elapsed
    });

    println!("startup benchmark, {RUNS} runs each, median (p90)");
    println!("| case | time to /readyz 200 | vs. baseline | idle RSS |");
    println!("| --- | --- | --- | --- |");
    println!("| baseline: `rap-appliance --version` | {} | 1.0× | – |", show(&baseline));
    for (name, times, rss) in
        [("first start (creates + migrates)", &first, &first_rss), ("restart", &restart, &restart_rss)]
    {
        println!(
            "| {name} | {} | {:.1}× | {:.1} MiB |",
            show(times),
            median(times).as_secs_f64() / median(&baseline).as_secs_f64(),
            median_u64(rss) as f64 / 1024.0
        );
    }
}

fn measure(mut run: impl FnMut() -> Duration) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    times.sort();
    times
}

fn median(times: &[Duration]) -> Duration {
    times[times.len() / 2]
}

fn median_u64(values: &[u64]) -> u64 {
    let mut values = values.to_vec();
    values.sort_unstable();
    values[values.len() / 2]
}

fn show(times: &[Duration]) -> String {
    let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
    format!("{:.1} ms ({:.1} ms)", median(times).as_secs_f64() * 1e3, p90.as_secs_f64() * 1e3)
}

/// Returns (spawn → first /readyz 200, idle RSS in KiB).
fn start_until_ready(data_dir: &std::path::Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("APP_LISTEN_ADDR", "127.0.0.1:0")
        .env("APP_DATA_DIR", data_dir)
        .env("APP_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child);
    while !ready(&addr) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let rss = resident_kib(child.id());
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap();
    (elapsed, rss)
}

fn listening_addr(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("the appliance exited before listening").unwrap();
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && event["message"] == "Appliance listening"
        {
            let addr = event["local_addr"].as_str().unwrap().to_owned();
            // Keep draining stderr so the child never blocks writing logs.
            std::thread::spawn(move || lines.for_each(drop));
            return addr;
        }
    }
}

fn ready(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else { return false };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
