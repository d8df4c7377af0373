//! The appliance's own H.264 (encoding on motion) on full-HD moving
//! pictures, against the pixel path it replaces, measured on the same
//! frames in the same run: bits per second at 30 frames/s, luma PSNR of
//! the decoded stream against its input, and the encoder's time per frame
//! (one core's share at 30 frames/s).
//!
//! Frames come from ffmpeg's synthetic sources (`testsrc2`: a test card
//! with moving parts; `mandelbrot`: a zoom that changes every pixel).
//! Run (ffmpeg installed, release build):
//!
//!     cargo bench -p rap-appliance --bench encoder
//!
//! Output: a Markdown table for docs/BENCHMARKS.md.
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use rap_appliance::protocol::frame::{Rect, zlib};
use rap_appliance::worker::encoder::{Stream, i420_from_rgba};

const WIDTH: usize = 1920;
const HEIGHT: usize = 1080;
const FRAMES: usize = 150;
const FPS: f64 = 30.0;

struct Figures {
    video_bytes: usize,
    pixel_bytes: usize,
    encoding: Duration,
    luma_psnr: f64,
}

fn measure(source: &str) -> Figures {
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("{source}=size={WIDTH}x{HEIGHT}:rate=30"))
        .args(["-frames:v", &FRAMES.to_string(), "-f", "rawvideo", "-pix_fmt", "rgba", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg (apt install ffmpeg)");
    let mut output = ffmpeg.stdout.take().expect("stdout");
    let region = Rect::new(0, 0, WIDTH as u16, HEIGHT as u16);
    let mut stream = Stream::new(region).expect("OpenH264");
    let mut decoder = Decoder::new().expect("OpenH264 decoder");
    let mut frame = vec![0u8; WIDTH * HEIGHT * 4];
    let mut figures = Figures { video_bytes: 0, pixel_bytes: 0, encoding: Duration::ZERO, luma_psnr: 0.0 };
    let (mut squares, mut compared) = (0f64, 0usize);
    for index in 0..FRAMES {
        output.read_exact(&mut frame).expect("a frame from ffmpeg");
        figures.pixel_bytes += zlib(&frame).len();
        let started = Instant::now();
        let unit = stream.encode(&frame, index == 0).expect("encodes");
        figures.encoding += started.elapsed();
        figures.video_bytes += unit.len();
        if unit.is_empty() {
            continue;
        }
        let Ok(Some(picture)) = decoder.decode(&unit) else { continue };
        // PSNR-Y: the decoded luma against the luma the encoder was given.
        let input = i420_from_rgba(&frame, WIDTH, HEIGHT);
        let (y_stride, _, _) = picture.strides();
        for row in 0..HEIGHT {
            let decoded = &picture.y()[row * y_stride..row * y_stride + WIDTH];
            let original = &input[row * WIDTH..(row + 1) * WIDTH];
            for (a, b) in decoded.iter().zip(original) {
                squares += (f64::from(*a) - f64::from(*b)).powi(2);
            }
        }
        compared += WIDTH * HEIGHT;
    }
    let _ = ffmpeg.wait();
    figures.luma_psnr = 10.0 * (255f64 * 255.0 / (squares / compared as f64)).log10();
    figures
}

fn mbits(bytes: usize) -> f64 {
    bytes as f64 * 8.0 * FPS / FRAMES as f64 / 1e6
}

fn main() {
    println!(
        "| 1080p30 picture | pixels (zlib RGBA) Mbit/s | appliance H.264 Mbit/s | ratio | luma PSNR | encode ms/frame | one core at 30 fps |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for source in ["testsrc2", "mandelbrot"] {
        let figures = measure(source);
        let per_frame = figures.encoding.as_secs_f64() * 1000.0 / FRAMES as f64;
        println!(
            "| {source} | {:.1} | {:.2} | {:.3}× | {:.1} dB | {per_frame:.1} | {:.0} % |",
            mbits(figures.pixel_bytes),
            mbits(figures.video_bytes),
            figures.video_bytes as f64 / figures.pixel_bytes as f64,
            figures.luma_psnr,
            per_frame * FPS / 10.0
        );
    }
}
