//! The appliance's own H.264 stream, for hosts that send none (xrdp 0.9,
//! older Windows, the scripted desktop): while a viewer that decodes H.264
//! watches and part of the screen keeps moving, that part is encoded once
//! per session with OpenH264 and fanned out to every such viewer through
//! the screen's video stream; text and still regions stay lossless, and a
//! region that stops moving is sent again losslessly (PROTOCOL.md,
//! "Encoding on motion").
//!
//! One task per screen. It ends with the screen (its watch closes), with
//! the session (`stop`), or for good once the host turns out to stream
//! H.264 itself.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVBuffer;
use openh264::{OpenH264API, Timestamp};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::protocol::frame::{ColorMode, Rect};
use crate::protocol::framebuffer::{Screen, read_screen};
use crate::protocol::motion::{Motion, MotionChange};
use crate::protocol::video::VideoUnit;

/// The most frames a second the stream carries.
const FRAME_RATE: f32 = 30.0;
/// A key frame at least this often, so the stream a late viewer joins at
/// stays short (the ring holds everything since the latest key frame).
const KEY_FRAME_INTERVAL: Duration = Duration::from_secs(10);
/// The bit rate a full-HD moving region gets; smaller regions get their
/// share of it by area, never less than [`MIN_BITRATE`].
const FULL_HD_BITRATE: u64 = 2_500_000;
const MIN_BITRATE: u64 = 300_000;
/// A viewer that decoded H.264 this recently still watches.
const VIEWER_RECENT: Duration = Duration::from_secs(2);

/// Runs the stream of `screen` until it closes or `stop` is cancelled.
pub async fn run(screen: Weak<Screen>, mut changed: watch::Receiver<u64>, stop: CancellationToken) {
    let mut state: Option<Track> = None;
    loop {
        let still_at = state.as_ref().and_then(|track| track.motion.still_at());
        let woken = tokio::select! {
            () = stop.cancelled() => return,
            changed = changed.changed() => changed.is_ok(),
            () = sleep_until(still_at) => true,
        };
        let Some(screen) = screen.upgrade().filter(|_| woken) else { return };
        // No track yet: no damage to look at (nothing is past u64::MAX).
        let seen = state.as_ref().map_or(u64::MAX, |track| track.seen);
        let view = read_screen(&screen, move |screen, wait| screen.encoder_view(seen, wait)).await;
        if view.host_video {
            return;
        }
        let now = Instant::now();
        let track = match state.take() {
            Some(track) if track.size == view.size => state.insert(track),
            // A new screen or a new size: what moved before means nothing.
            _ => state.insert(Track::new(view.size, view.seq, now)),
        };
        if let Some(damage) = view.damage {
            track.seen = damage.seq;
            if let MotionChange::Moving(region) = track.motion.observe(now, &damage.rects) {
                on_screen(&screen, move |screen| screen.own_for_video(region)).await;
                track.stream = None;
            }
            let region = track.motion.region();
            track.dirty |= region.is_some_and(|region| damage.rects.iter().any(|rect| rect.touches(&region)));
        }
        if let Some(region) = track.motion.stilled(now) {
            on_screen(&screen, move |screen| screen.release_video(region)).await;
            track.stream = None;
            continue;
        }
        let Some(region) = track.motion.region() else { continue };
        if !track.dirty || !screen.video_viewer_within(VIEWER_RECENT) {
            continue;
        }
        if now < track.next_frame {
            // Changes meanwhile are in the log: the next frame takes them all.
            drop(screen);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(track.next_frame.into()) => {}
            }
            changed.mark_changed();
            continue;
        }
        track.next_frame = now + Duration::from_secs_f32(1.0 / FRAME_RATE);
        track.dirty = false;
        if !encode_frame(&screen, track, region, view.joinable).await {
            tracing::warn!("The appliance's H.264 encoder failed; the moving region stays on pixels");
            return;
        }
    }
}

/// Changes the screen on the blocking pool: its write lock waits for a
/// decoder and for viewers' reads, which an async worker must not.
async fn on_screen<R: Send + 'static>(
    screen: &Arc<Screen>,
    change: impl FnOnce(&Screen) -> R + Send + 'static,
) -> Option<R> {
    let screen = screen.clone();
    tokio::task::spawn_blocking(move || change(&screen)).await.ok()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What the task knows about its screen.
struct Track {
    size: (u16, u16),
    /// The screen sequence whose damage has been looked at.
    seen: u64,
    motion: Motion,
    /// The moving region changed since its last frame.
    dirty: bool,
    stream: Option<Stream>,
    next_frame: Instant,
}

impl Track {
    fn new(size: (u16, u16), seen: u64, now: Instant) -> Self {
        Self { size, seen, motion: Motion::new(size.0, size.1, now), dirty: false, stream: None, next_frame: now }
    }
}

/// Encodes `region` as it is now and publishes it; `false` when the
/// encoder cannot work at all.
async fn encode_frame(screen: &Arc<Screen>, track: &mut Track, region: Rect, joinable: bool) -> bool {
    let mut stream = match track.stream.take() {
        Some(stream) => stream,
        None => match Stream::new(region) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "OpenH264 encoder setup failed");
                return false;
            }
        },
    };
    // A viewer waiting to join (the ring lost its key frame) gets one now.
    let key_frame = !joinable || stream.key_frame_at.elapsed() >= KEY_FRAME_INTERVAL;
    // Read, encode and publish on the blocking pool: the encode takes
    // milliseconds, the screen's locks may wait for a decoder.
    let encoded = on_screen(screen, move |screen| {
        let (_, rgba) = screen.read_rect_with(region, ColorMode::FullColor, crate::protocol::framebuffer::Wait::Yes)?;
        let data = match stream.encode(&rgba, key_frame) {
            Ok(data) => data,
            Err(error) => return Some((stream, Err(error))),
        };
        // Empty when the rate control skipped the frame.
        if data.is_empty() {
            return Some((stream, Ok(true)));
        }
        let key_frame = rap_wire::h264::is_key_frame(&data);
        if key_frame {
            stream.key_frame_at = Instant::now();
        }
        let unit = VideoUnit { picture: region, regions: vec![region], key_frame, data: data.into() };
        let published = screen.publish_encoded(unit);
        Some((stream, Ok(published)))
    })
    .await;
    let Some(Some((stream, outcome))) = encoded else { return true };
    match outcome {
        Ok(published) => {
            // Not published: the region moved on, or the screen changed
            // under it; a new stream starts with the next frame.
            track.stream = published.then_some(stream);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "OpenH264 could not encode a frame");
            false
        }
    }
}

/// One OpenH264 encoder for one region (public for the encoder benchmark).
pub struct Stream {
    encoder: Encoder,
    width: usize,
    height: usize,
    started: Instant,
    key_frame_at: Instant,
    /// The encoder sets itself up at its first frame, which is a key frame
    /// anyway; before that it cannot be asked for one.
    set_up: bool,
}

impl Stream {
    pub fn new(region: Rect) -> Result<Self, openh264::Error> {
        let full_hd = 1920 * 1080;
        let bitrate = (FULL_HD_BITRATE * region.area() / full_hd).clamp(MIN_BITRATE, FULL_HD_BITRATE);
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(u32::try_from(bitrate).unwrap_or(u32::MAX)))
            .max_frame_rate(FrameRate::from_hz(FRAME_RATE))
            .rate_control_mode(RateControlMode::Bitrate)
            // Moving regions are pictures, not text: the camera tools suit them.
            .usage_type(UsageType::CameraVideoRealTime)
            // One thread: the appliance runs many sessions on few cores.
            .num_threads(1)
            .complexity(Complexity::Low)
            .vui(VuiConfig::bt709_full());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        let now = Instant::now();
        Ok(Self {
            encoder,
            width: usize::from(region.width),
            height: usize::from(region.height),
            started: now,
            key_frame_at: now,
            set_up: false,
        })
    }

    /// One access unit, Annex B; empty when the rate control skips it.
    pub fn encode(&mut self, rgba: &[u8], key_frame: bool) -> Result<Vec<u8>, openh264::Error> {
        if rgba.len() != self.width * self.height * 4 {
            return Err(openh264::Error::msg("the region is no longer on the screen"));
        }
        let yuv = YUVBuffer::from_vec(i420_from_rgba(rgba, self.width, self.height), self.width, self.height);
        if key_frame && self.set_up {
            self.encoder.force_intra_frame();
        }
        self.set_up = true;
        let at = Timestamp::from_millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        Ok(self.encoder.encode_at(&yuv, at)?.to_vec())
    }
}

/// RGBA to I420 in full-range BT.709: the colours of the RDP graphics
/// pipeline (the inverse of MS-RDPEGFX 3.3.8.3.1's conversion), so a
/// viewer decodes the host's streams and the appliance's alike; the
/// stream says so in its VUI for decoders that read it. Chroma is the
/// average of each 2×2 block. `width` and `height` are even.
pub fn i420_from_rgba(rgba: &[u8], width: usize, height: usize) -> Vec<u8> {
    let (chroma_width, chroma_height) = (width / 2, height / 2);
    let mut yuv = vec![0u8; width * height + 2 * chroma_width * chroma_height];
    let (luma, chroma) = yuv.split_at_mut(width * height);
    let (u_plane, v_plane) = chroma.split_at_mut(chroma_width * chroma_height);
    for (out, pixel) in luma.iter_mut().zip(rgba.chunks_exact(4)) {
        let (r, g, b) = (u32::from(pixel[0]), u32::from(pixel[1]), u32::from(pixel[2]));
        // 0.2126, 0.7152, 0.0722 in 256ths, summing to 256: white stays 255.
        *out = ((54 * r + 183 * g + 19 * b + 128) >> 8) as u8;
    }
    let clamp = |value: i32| value.clamp(0, 255) as u8;
    for row in 0..chroma_height {
        for col in 0..chroma_width {
            let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let at = ((2 * row + dy) * width + 2 * col + dx) * 4;
                r += i32::from(rgba[at]);
                g += i32::from(rgba[at + 1]);
                b += i32::from(rgba[at + 2]);
            }
            // Sums of four pixels, so 1024ths; (B - Y) / 1.8556 and
            // (R - Y) / 1.5748 around 128.
            let at = row * chroma_width + col;
            u_plane[at] = clamp(((-29 * r - 99 * g + 128 * b + 512) >> 10) + 128);
            v_plane[at] = clamp(((128 * r - 116 * g - 12 * b + 512) >> 10) + 128);
        }
    }
    yuv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_range_bt709_keeps_black_white_and_grey_and_splits_colours_the_rdp_way() {
        let pixels = |rgba: [u8; 4]| rgba.repeat(4);
        let planes = |rgba: [u8; 4]| {
            let yuv = i420_from_rgba(&pixels(rgba), 2, 2);
            (yuv[0], yuv[4], yuv[5])
        };
        assert_eq!(planes([0, 0, 0, 255]), (0, 128, 128));
        assert_eq!(planes([255, 255, 255, 255]), (255, 128, 128));
        assert_eq!(planes([128, 128, 128, 255]), (128, 128, 128));
        // Red: Y 0.2126, V at the top of its range; blue: U there.
        let (y, u, v) = planes([255, 0, 0, 255]);
        assert_eq!((y, v), (54, 255));
        assert!(u < 128);
        let (_, u, _) = planes([0, 0, 255, 255]);
        assert_eq!(u, 255);
    }

    #[test]
    fn a_moving_picture_encodes_to_a_key_frame_then_small_deltas() {
        let mut stream = Stream::new(Rect::new(0, 0, 64, 48)).expect("OpenH264");
        let frame = |shift: usize| -> Vec<u8> {
            (0..64 * 48).flat_map(|at| [((at + shift) % 64 * 4) as u8, (at / 64 * 5) as u8, 90, 255]).collect()
        };
        let first = stream.encode(&frame(0), true).expect("encodes");
        assert!(rap_wire::h264::is_key_frame(&first), "a stream starts at a key frame");
        let second = stream.encode(&frame(2), false).expect("encodes");
        assert!(!second.is_empty() && !rap_wire::h264::is_key_frame(&second));
        let forced = stream.encode(&frame(4), true).expect("encodes");
        assert!(rap_wire::h264::is_key_frame(&forced), "a key frame when asked");
        assert!(stream.encode(&[0; 16], false).is_err(), "a picture of the wrong size is refused");
    }
}
