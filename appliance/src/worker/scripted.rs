//! The scripted runtime: a stand-in remote desktop for development, smoke
//! installs and tests, so the broker and the live plane can be exercised
//! without a remote host. Never available in production.
//!
//! Behaviour is chosen by the resource's host name, so a test or a smoke
//! script can provoke each way a real connection ends:
//!
//! | host | behaviour |
//! | --- | --- |
//! | `fail.scripted` | reports `Failed { connection_refused }` at once |
//! | `badpassword.scripted` | reports `Failed { invalid_credentials }` |
//! | `slow.scripted` | connects after 300 ms |
//! | `stall.scripted` | shows its desktop at once but reports it up only after 2 s (a session viewers see while it is still `starting`) |
//! | `freeze.scripted` | connects, then never heartbeats again (a wedged worker) |
//! | `panic.scripted` | connects, then panics |
//! | `logoff.scripted` | connects, then ends cleanly after 200 ms |
//! | `animate.scripted` | connects, then repaints a 64×64 corner every 10 ms |
//! | `video.scripted` | connects; each key press plays a moving picture for 2 s ([`MOVIE`], 30 frames/s), then it is still |
//! | anything else | connects at once and runs until cancelled |
//!
//! The desktop is a fixed test pattern (see [`pattern_pixel`]). Input
//! leaves visible marks, so a viewer can check that its input arrived: a
//! mouse event paints an 8×8 square at the pointer (white with a button
//! down, red otherwise), a key or text paints a bar along the top edge,
//! a resize request resizes the screen, and clipboard text comes back as
//! the remote clipboard in upper case (as if an application there copied
//! it), with origin `server`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Assignment, SessionEnd, SessionInput, SessionIo, SessionRuntime, WorkerEventKind};
use crate::protocol::frame::Rect;
use crate::protocol::framebuffer::{PixelStore, Screen};

/// The test pattern's colour at (`x`, `y`): red rises left to right, green
/// top to bottom, blue is constant, so any region is recognisable.
pub fn pattern_pixel(x: u16, y: u16) -> [u8; 4] {
    [(x % 256) as u8, (y % 256) as u8, 128, 255]
}

/// Where `video.scripted` plays its moving picture.
pub const MOVIE: Rect = Rect { x: 64, y: 48, width: 320, height: 240 };
pub const MOVIE_FRAMES: u32 = 60;

/// Frame `frame` of the moving picture: smooth colour waves drifting
/// right and down, like camera content rather than text.
pub fn movie_frame(frame: u32) -> Vec<u8> {
    let (width, height) = (u32::from(MOVIE.width), u32::from(MOVIE.height));
    let shift = frame * 3;
    (0..height)
        .flat_map(|y| {
            (0..width).flat_map(move |x| {
                let (u, v) = (x + shift, y + shift / 2);
                let wave = |value: u32, period: u32| ((value % period) * 255 / period) as u8;
                [wave(u, 160), wave(v, 120), wave(u + v, 200), 255]
            })
        })
        .collect()
}

fn pattern(width: u16, height: u16) -> Vec<u8> {
    let row_bytes = usize::from(width) * 4;
    // Green changes down the screen and repeats every 256 lines, red
    // across it every 256 columns: build 256 rows from 256-pixel tiles,
    // then copy rows (a per-pixel loop is slow in unoptimised builds).
    let distinct = height.min(256);
    let tiles = usize::from(width).div_ceil(256);
    let mut rows = Vec::with_capacity(row_bytes * usize::from(distinct));
    for y in 0..distinct {
        let tile: Vec<u8> = (0..256).flat_map(|x| pattern_pixel(x, y)).collect();
        rows.extend_from_slice(&tile.repeat(tiles)[..row_bytes]);
    }
    let mut rgba = Vec::with_capacity(row_bytes * usize::from(height));
    for y in 0..usize::from(height) {
        let row = (y % 256) * row_bytes;
        rgba.extend_from_slice(&rows[row..row + row_bytes]);
    }
    rgba
}

/// The pattern at this size, made off the async workers: a desktop is
/// megabytes.
async fn painted(width: u16, height: u16) -> Box<dyn PixelStore> {
    let rgba = tokio::task::spawn_blocking(move || pattern(width, height)).await;
    // Only a runtime shutting down loses the task: black, at the right size.
    Box::new(rgba.unwrap_or_else(|_| [0, 0, 0, 255].repeat(usize::from(width) * usize::from(height))))
}

async fn apply_input(screen: &Arc<Screen>, input: &SessionInput) {
    match input {
        SessionInput::Mouse { x, y, buttons, .. } => {
            let colour = if *buttons == 0 { [255, 0, 0, 255] } else { [255, 255, 255, 255] };
            screen.update(|canvas| canvas.fill(Rect::new(*x, *y, 8, 8), colour));
        }
        SessionInput::Key { down: true, .. } | SessionInput::Unicode { .. } => {
            screen.update(|canvas| {
                let width = canvas.width();
                canvas.fill(Rect::new(0, 0, width, 4), [0, 0, 255, 255]);
            });
        }
        SessionInput::Key { down: false, .. } => {}
        SessionInput::Resize { width, height } => {
            screen.replace_store(*width, *height, painted(*width, *height).await);
        }
        SessionInput::Clipboard(_) => {}
    }
}

pub struct ScriptedRuntime;

#[async_trait]
impl SessionRuntime for ScriptedRuntime {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn run(&self, assignment: Assignment, io: SessionIo) -> SessionEnd {
        let connected = WorkerEventKind::Connected { width: assignment.width, height: assignment.height };
        match assignment.host.as_str() {
            "fail.scripted" => return SessionEnd::Failed("connection_refused".into()),
            "badpassword.scripted" => return SessionEnd::Failed("invalid_credentials".into()),
            "slow.scripted" => {
                tokio::select! {
                    () = io.cancelled() => return SessionEnd::Cancelled,
                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
            _ => {}
        }
        // Painted before it is shown: a viewer's first frame is the desktop.
        let desktop = painted(assignment.width, assignment.height).await;
        let screen = io.open_screen_with(assignment.width, assignment.height, desktop);
        if assignment.host == "stall.scripted" {
            tokio::select! {
                () = io.cancelled() => return SessionEnd::Cancelled,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        if io.report(connected).await.is_err() {
            return SessionEnd::Failed("event_queue_full".into());
        }
        match assignment.host.as_str() {
            "freeze.scripted" => {
                io.cancelled().await;
                return SessionEnd::Cancelled;
            }
            #[allow(clippy::panic)]
            "panic.scripted" => panic!("scripted runtime panics as asked"),
            "logoff.scripted" => {
                tokio::select! {
                    () = io.cancelled() => return SessionEnd::Cancelled,
                    () = tokio::time::sleep(Duration::from_millis(200)) => return SessionEnd::Disconnected("remote_logoff".into()),
                }
            }
            _ => {}
        }
        let animate = assignment.host == "animate.scripted";
        let movie = assignment.host == "video.scripted";
        let mut heartbeat = tokio::time::interval(io.heartbeat_interval());
        let mut frame = tokio::time::interval(Duration::from_millis(10));
        let mut movie_frames = tokio::time::interval(Duration::from_millis(33));
        let (mut shade, mut movie_left, mut movie_at) = (0u8, 0u32, 0u32);
        loop {
            tokio::select! {
                () = io.cancelled() => return SessionEnd::Cancelled,
                _ = heartbeat.tick() => io.heartbeat().await,
                _ = frame.tick(), if animate => {
                    shade = shade.wrapping_add(1);
                    screen.update(|canvas| canvas.fill(Rect::new(0, 0, 64, 64), [shade, 255 - shade, shade / 2, 255]));
                }
                _ = movie_frames.tick(), if movie_left > 0 => {
                    movie_left -= 1;
                    movie_at += 1;
                    let picture = movie_frame(movie_at);
                    screen.update(|canvas| canvas.put(MOVIE, &picture));
                }
                input = io.next_input(Duration::from_secs(60)) => {
                    if movie && matches!(input, Some(SessionInput::Key { down: true, .. })) {
                        movie_left = MOVIE_FRAMES;
                        continue;
                    }
                    if let Some(input) = input {
                        apply_input(&screen, &input).await;
                        if let SessionInput::Clipboard(copied) = input {
                            let text = copied.text.to_uppercase();
                            let content_hash = super::ClipboardText::hash_of(&text);
                            let remote = super::ClipboardText { text, sequence_id: copied.sequence_id, origin: "server".into(), content_hash };
                            if io.report(WorkerEventKind::Clipboard(remote)).await.is_err() {
                                tracing::warn!(session_id = %io.session_id, "Clipboard event dropped");
                            }
                        }
                    }
                }
            }
        }
    }
}
