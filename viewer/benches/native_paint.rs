//! The native viewer's ceiling for full-damage 1080p frames: each frame a
//! whole 1920×1080 `binary_v1` zlib rectangle (what the gateway sends for
//! the RDP test server's `animate=full` desktop), decoded with the viewer's
//! own `decode` + `Desktop::apply` and painted into a window buffer with
//! its own `layout::paint`, in a loop with no network. The same shape as the
//! browser viewer's baseline in docs/BENCHMARKS.md (one frame decoded and
//! painted again and again), so the two compare.
//!
//!   cargo bench -p rap-viewer --bench native_paint
//!
//! BENCH_SECONDS (per case, default 5). CPU is this process's user + system
//! time over the case (from /proc), per frame; one thread does everything.
//! BENCH_FRAMES_DIR, when set, receives the frames as `<content>-<n>.bin`,
//! so the browser's run (`viewer/bench.sh`, `ui/tests/bench-paint.mjs`)
//! decodes exactly the same bytes.

// A bench binary reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use rap_viewer::layout::paint;
use rap_viewer::{Desktop, decode};
use rap_wire::frame::{ColorMode, Encoding, FrameHeader, Rect, zlib};

const WIDTH: u16 = 1920;
const HEIGHT: u16 = 1080;

/// A whole-screen update: one colour (as the test server paints), or the
/// scripted desktop's gradient (which compresses far less).
fn frame(seq: u32, content: Content) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(usize::from(WIDTH) * usize::from(HEIGHT) * 4);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let pixel = match content {
                Content::Flat => [(seq * 40) as u8, (seq * 90) as u8, 200, 255],
                Content::Gradient => [(x as u32 + seq) as u8, y as u8, 128, 255],
            };
            rgba.extend_from_slice(&pixel);
        }
    }
    let payload = zlib(&rgba);
    let header = FrameHeader {
        encoding: Encoding::ZlibRgba8,
        color_mode: ColorMode::FullColor,
        last: true,
        key_frame: false,
        seq,
        rect: Rect::new(0, 0, WIDTH, HEIGHT),
        payload_len: payload.len() as u32,
    };
    let mut message = Vec::with_capacity(24 + payload.len());
    header.write(&mut message);
    message.extend_from_slice(&payload);
    message
}

#[derive(Clone, Copy)]
enum Content {
    Flat,
    Gradient,
}

/// This process's CPU time so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis, from `state` (field
    // 3); utime and stime are fields 14 and 15, in clock ticks (100 per
    // second on Linux).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
    let ticks = tick(11) + tick(12);
    Duration::from_millis(ticks * 10)
}

struct Result {
    frames_per_second: f64,
    decode_ms: f64,
    paint_ms: f64,
    cpu_ms_per_frame: f64,
}

fn run(frames: &[Vec<u8>], window: (u32, u32), seconds: f64) -> Result {
    let mut desktop = Desktop::default();
    desktop.resize(WIDTH, HEIGHT);
    let mut buffer = vec![0u32; window.0 as usize * window.1 as usize];
    let (mut decoding, mut painting, mut count) = (Duration::ZERO, Duration::ZERO, 0u32);
    let cpu_start = cpu_time();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let message = &frames[count as usize % frames.len()];
        let began = Instant::now();
        let decoded = decode(message).expect("a valid frame");
        assert!(desktop.apply(&decoded), "the frame fits");
        let decoded_at = Instant::now();
        paint(&desktop, &mut buffer, window, false);
        painting += decoded_at.elapsed();
        decoding += decoded_at - began;
        count += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu_start).as_secs_f64();
    std::hint::black_box(&buffer);
    Result {
        frames_per_second: f64::from(count) / wall,
        decode_ms: decoding.as_secs_f64() * 1000.0 / f64::from(count),
        paint_ms: painting.as_secs_f64() * 1000.0 / f64::from(count),
        cpu_ms_per_frame: cpu * 1000.0 / f64::from(count),
    }
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|value| value.parse().ok()).unwrap_or(5.0);
    println!(
        "native viewer, full-damage 1920×1080 zlib binary_v1 frames decoded + painted in a loop, {seconds} s per case"
    );
    println!("| content | bytes/frame | window | frames/s | decode | paint | CPU per frame |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let frames_dir = std::env::var_os("BENCH_FRAMES_DIR").map(std::path::PathBuf::from);
    for (name, file, content) in
        [("one colour (test server)", "flat", Content::Flat), ("gradient (scripted)", "gradient", Content::Gradient)]
    {
        // Two alternating frames, so every paint really changes the picture.
        let frames = [frame(1, content), frame(2, content)];
        for window in [(1920, 1080), (1280, 720)] {
            let result = run(&frames, window, seconds);
            println!(
                "| {name} | {} KiB | {}×{} | {:.1} | {:.2} ms | {:.2} ms | {:.2} ms |",
                frames[0].len() / 1024,
                window.0,
                window.1,
                result.frames_per_second,
                result.decode_ms,
                result.paint_ms,
                result.cpu_ms_per_frame
            );
        }
        // Written after the runs: written before them, they made the 1:1
        // copy in the loop four times slower (heap layout, not the viewer).
        if let Some(dir) = &frames_dir {
            for (index, bytes) in frames.iter().enumerate() {
                std::fs::write(dir.join(format!("{file}-{}.bin", index + 1)), bytes).expect("frames written");
            }
        }
    }
}
