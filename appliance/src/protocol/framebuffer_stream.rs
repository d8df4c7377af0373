//! The appliance's own H.264 stream on a screen, for hosts that send none:
//! the encoder claims the region that moves, publishes access units of
//! it, and gives it back once it is still, with its lossless pixels for
//! the viewers that took the video (PROTOCOL.md, "Encoding on motion").

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Damage, Logged, Rect, Screen, VideoUnit, Wait, damage_in, log};

/// What the encoder reads of a screen on each change, at one state.
#[derive(Debug)]
pub struct EncoderView {
    pub host_video: bool,
    pub size: (u16, u16),
    pub seq: u64,
    /// A decoder could start from the stream as it is.
    pub joinable: bool,
    /// The damage since the sequence asked about.
    pub damage: Option<Damage>,
}

impl Screen {
    /// The encoder's look at the screen since `seen`; `None` when `wait`
    /// is [`Wait::No`] and a decoder holds the screen.
    pub fn encoder_view(&self, seen: u64, wait: Wait) -> Option<EncoderView> {
        let pixels = self.read_with(wait)?;
        Some(EncoderView {
            host_video: pixels.host_video,
            size: (pixels.width, pixels.height),
            seq: pixels.seq,
            joinable: pixels.video.joinable(),
            damage: damage_in(&pixels, seen, false),
        })
    }

    pub(super) fn note_video_viewer(&self) {
        // Stored plus one, so zero means "never".
        let at = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.video_viewer_at.store(at.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether a viewer that decodes H.264 caught up within `within`.
    pub fn video_viewer_within(&self, within: Duration) -> bool {
        let at = self.video_viewer_at.load(Ordering::Relaxed);
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let within = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        at != 0 && now.saturating_add(1).saturating_sub(at) <= within
    }

    /// The appliance's stream paints `region` from now on: updates inside
    /// it are left to its next access unit for the viewers that take it.
    pub fn own_for_video(&self, region: Rect) {
        let mut pixels = self.write();
        if !pixels.host_video {
            pixels.video_owned = Some(region.clipped(pixels.width, pixels.height));
        }
    }

    /// Publishes one access unit of the appliance's stream; `false` when
    /// the screen no longer takes it (the host streams, or the screen
    /// changed size since the region was claimed).
    pub fn publish_encoded(&self, unit: VideoUnit) -> bool {
        let seq = {
            let mut pixels = self.write();
            if pixels.host_video || pixels.video_owned != Some(unit.picture) {
                return false;
            }
            pixels.seq += 1;
            let seq = pixels.seq;
            self.counts.encoded_frames.fetch_add(1, Ordering::Relaxed);
            self.counts.encoded_bytes.fetch_add(unit.data.len() as u64, Ordering::Relaxed);
            pixels.video.push(seq, unit);
            seq
        };
        self.changed.send_replace(seq);
        true
    }

    /// The motion in `region` is over: the stream stops, and the viewers
    /// that took it get the region's pixels again, losslessly.
    pub fn release_video(&self, region: Rect) {
        let seq = {
            let mut pixels = self.write();
            if pixels.video_owned != Some(region) {
                return;
            }
            pixels.video_owned = None;
            pixels.video.finish();
            pixels.seq += 1;
            let seq = pixels.seq;
            log(&mut pixels, Logged { seq, rect: region, by_video: false, refinement: true });
            seq
        };
        self.changed.send_replace(seq);
    }
}
