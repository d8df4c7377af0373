//! The host's H.264 stream, kept beside the screen for the viewers that
//! decode it themselves (`binary_v1` encoding 4).
//!
//! A viewer can only start decoding at a key frame, and from there needs
//! every access unit in order. The ring therefore holds the units since the
//! latest key frame: a viewer that attaches (or falls behind) joins at
//! that key frame and decodes its way to the present without painting,
//! since its canvas already has the present as pixels. The ring is bounded
//! in bytes and units; once it has dropped a unit it no longer starts at a
//! key frame, and new viewers get pixels until the host sends the next one.

use std::collections::VecDeque;
use std::sync::Arc;

use super::frame::Rect;

/// Bytes of access units one session keeps (about a minute of a busy
/// 1080p desktop at 2 Mbit/s).
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Access units one session keeps, whatever their size.
const MAX_UNITS: usize = 2048;

/// One access unit and where it paints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoUnit {
    /// Where the decoded picture's top-left goes on the screen, and its
    /// size.
    pub picture: Rect,
    /// The parts of the picture that changed, in screen coordinates; the
    /// rest of the picture is not what the screen shows.
    pub regions: Vec<Rect>,
    pub key_frame: bool,
    /// Annex B.
    pub data: Arc<[u8]>,
}

impl VideoUnit {
    /// Whether `rect` is painted by this unit alone.
    pub fn covers(&self, rect: &Rect) -> bool {
        self.regions.iter().any(|region| region.union(rect) == *region)
    }
}

/// What the worker tells the stream after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoEvent {
    Unit(VideoUnit),
    /// The host restarted its stream (new graphics output, surface gone):
    /// nothing before this decodes what follows.
    Reset,
}

/// A unit in the stream: its place, and the screen sequence whose pixels
/// first include it.
#[derive(Debug, Clone)]
pub struct Queued {
    pub index: u64,
    pub screen_seq: u64,
    pub unit: Arc<VideoUnit>,
}

/// The units a viewer missed are gone from the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap;

#[derive(Debug, Default)]
pub struct VideoRing {
    units: VecDeque<Queued>,
    bytes: usize,
    next_index: u64,
    /// The first unit is a key frame and nothing after it was dropped.
    starts_at_key: bool,
}

impl VideoRing {
    pub fn push(&mut self, screen_seq: u64, unit: VideoUnit) {
        if unit.key_frame {
            self.clear();
            self.starts_at_key = true;
        }
        self.bytes += unit.data.len();
        self.units.push_back(Queued { index: self.next_index, screen_seq, unit: Arc::new(unit) });
        self.next_index += 1;
        while self.bytes > MAX_BYTES || self.units.len() > MAX_UNITS {
            let Some(dropped) = self.units.pop_front() else { break };
            self.bytes -= dropped.unit.data.len();
            self.starts_at_key = false;
        }
    }

    /// Nothing before this decodes what follows: every viewer's position
    /// becomes a gap, so each waits for the next key frame.
    pub fn reset(&mut self) {
        self.clear();
        self.starts_at_key = false;
        self.next_index += 1;
    }

    /// The stream ended (the appliance's, when the motion stopped):
    /// viewers that hold all of it continue at the next key frame without
    /// a gap, and nothing is kept for new ones.
    pub fn finish(&mut self) {
        self.clear();
        self.starts_at_key = false;
    }

    /// Whether a new decoder could start from the ring now.
    pub fn joinable(&self) -> bool {
        self.starts_at_key && !self.units.is_empty()
    }

    fn clear(&mut self) {
        self.units.clear();
        self.bytes = 0;
    }

    /// The index the next unit will have: a viewer holding everything so
    /// far continues from here.
    pub fn end(&self) -> u64 {
        self.next_index
    }

    /// The units from `index` on, or [`Gap`] if some are gone.
    pub fn since(&self, index: u64) -> Result<Vec<Queued>, Gap> {
        if index == self.next_index {
            return Ok(Vec::new());
        }
        let first = self.units.front().map(|queued| queued.index).ok_or(Gap)?;
        if index < first || index > self.next_index {
            return Err(Gap);
        }
        Ok(self.units.iter().skip((index - first) as usize).cloned().collect())
    }

    /// Every unit from the key frame a new decoder starts at, or `None`
    /// while the ring holds no such start.
    pub fn from_key_frame(&self) -> Option<Vec<Queued>> {
        self.joinable().then(|| self.units.iter().cloned().collect())
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(key_frame: bool, bytes: usize) -> VideoUnit {
        VideoUnit {
            picture: Rect::new(0, 0, 64, 64),
            regions: vec![Rect::new(0, 0, 64, 32)],
            key_frame,
            data: vec![0; bytes].into(),
        }
    }

    #[test]
    fn a_new_decoder_starts_at_the_latest_key_frame() {
        let mut ring = VideoRing::default();
        ring.push(2, unit(false, 10));
        assert!(ring.from_key_frame().is_none(), "no key frame yet");
        ring.push(3, unit(true, 10));
        ring.push(4, unit(false, 10));
        let start = ring.from_key_frame().expect("a start");
        assert_eq!(start.iter().map(|queued| (queued.index, queued.screen_seq)).collect::<Vec<_>>(), [(1, 3), (2, 4)]);
        assert!(start[0].unit.key_frame);
        assert_eq!(ring.end(), 3);
        ring.push(5, unit(true, 10));
        assert_eq!(ring.from_key_frame().expect("the newer start").len(), 1, "older units are dropped");
        assert_eq!(ring.bytes(), 10);
    }

    #[test]
    fn a_viewer_continues_in_order_or_learns_it_missed_units() {
        let mut ring = VideoRing::default();
        ring.push(1, unit(true, 10));
        let cursor = ring.end();
        assert_eq!(ring.since(cursor).expect("nothing new").len(), 0);
        ring.push(2, unit(false, 10));
        ring.push(3, unit(false, 10));
        assert_eq!(ring.since(cursor).expect("two new").iter().map(|queued| queued.index).collect::<Vec<_>>(), [1, 2]);
        ring.push(4, unit(true, 10));
        assert_eq!(ring.since(cursor).err(), Some(Gap), "the key frame dropped what the viewer had not seen");
        assert_eq!(ring.since(99).err(), Some(Gap), "a cursor from the future");
        ring.reset();
        assert_eq!(ring.since(cursor + 3).err(), Some(Gap), "a reset is a gap for everyone");
        assert_eq!(ring.since(ring.end()).expect("at the end").len(), 0);
        assert!(ring.from_key_frame().is_none(), "a reset stream waits for its next key frame");
    }

    #[test]
    fn a_finished_stream_continues_at_its_next_key_frame_without_a_gap() {
        let mut ring = VideoRing::default();
        ring.push(1, unit(true, 10));
        ring.push(2, unit(false, 10));
        let (behind, caught_up) = (ring.end() - 1, ring.end());
        ring.finish();
        assert!(!ring.joinable(), "nothing for a new viewer to start from");
        assert_eq!(ring.since(caught_up).expect("in step").len(), 0);
        assert_eq!(ring.since(behind).err(), Some(Gap), "the unit it missed is gone");
        ring.push(3, unit(true, 10));
        assert_eq!(ring.since(caught_up).expect("the next stream").len(), 1);
    }

    #[test]
    fn the_ring_is_bounded_and_then_waits_for_a_key_frame() {
        let mut ring = VideoRing::default();
        ring.push(1, unit(true, MAX_BYTES / 2));
        ring.push(2, unit(false, MAX_BYTES / 2));
        assert!(ring.from_key_frame().is_some());
        ring.push(3, unit(false, 1));
        assert!(ring.bytes() <= MAX_BYTES);
        assert!(ring.from_key_frame().is_none(), "the key frame was dropped");
        for seq in 0..(MAX_UNITS as u64 + 10) {
            ring.push(seq, unit(false, 1));
        }
        assert!(ring.since(ring.end() - MAX_UNITS as u64).is_ok());
        assert_eq!(ring.since(ring.end() - MAX_UNITS as u64 - 1).err(), Some(Gap));
    }

    #[test]
    fn viewers_join_at_a_key_frame_stay_in_step_and_rejoin_after_a_gap() {
        let mut ring = VideoRing::default();
        let (step, pixels) = ring.catch_up(VideoPosition::Waiting, 5);
        assert!(matches!(step, VideoCatchUp::Waiting));
        assert!(!pixels.skip_video && !pixels.whole, "a waiting viewer gets every change as pixels");
        ring.push(7, unit(true, 10));
        ring.push(8, unit(false, 10));
        let (step, pixels) = ring.catch_up(VideoPosition::Waiting, 7);
        let VideoCatchUp::Joined { units, painted_up_to: 7, next: 2 } = &step else { panic!("{step:?}") };
        assert_eq!(units.len(), 2, "from the key frame its canvas shows, to the unit it paints");
        assert!(pixels.skip_video, "the unit past the canvas paints itself");
        assert_eq!(step.position(), VideoPosition::At(2));
        ring.push(9, unit(false, 10));
        let (step, pixels) = ring.catch_up(VideoPosition::At(2), 8);
        assert!(matches!(&step, VideoCatchUp::Live { units, next: 3 } if units[0].screen_seq == 9));
        assert!(pixels.skip_video);
        ring.reset();
        let (step, pixels) = ring.catch_up(VideoPosition::At(3), 9);
        assert!(matches!(step, VideoCatchUp::Waiting), "the host restarted its stream");
        assert!(pixels.whole, "what it skipped as video comes again as pixels");
        ring.push(10, unit(true, 10));
        let (step, pixels) = ring.catch_up(VideoPosition::At(3), 9);
        assert!(matches!(step, VideoCatchUp::Joined { painted_up_to: u64::MAX, next: 5, .. }), "{step:?}");
        assert!(pixels.whole && !pixels.skip_video, "a whole repaint, the units only decoded");
        assert!(matches!(ring.catch_up(VideoPosition::Off, 9).0, VideoCatchUp::Off));
    }

    #[test]
    fn a_rectangle_is_covered_only_inside_one_region() {
        let painted = unit(false, 1);
        assert!(painted.covers(&Rect::new(10, 10, 20, 10)));
        assert!(!painted.covers(&Rect::new(10, 30, 20, 10)), "crosses the region's edge");
    }
}

/// Where a viewer is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPosition {
    /// The viewer takes pixels only.
    Off,
    /// The viewer decodes H.264 but has no key frame to start from yet.
    Waiting,
    /// The viewer has decoded everything before this index.
    At(u64),
}

/// What a viewer does with the stream this time.
#[derive(Debug, Clone)]
pub enum VideoCatchUp {
    Off,
    /// Still no key frame: pixels only, and the host is asked for one.
    Waiting,
    /// Decode these from their key frame on; paint only those whose
    /// `screen_seq` is past `painted_up_to` (the canvas already shows the
    /// others' pixels), then continue from `next`.
    Joined {
        units: Vec<Queued>,
        painted_up_to: u64,
        next: u64,
    },
    /// Decode and paint these.
    Live {
        units: Vec<Queued>,
        next: u64,
    },
}

impl VideoCatchUp {
    /// Where the viewer is once it has taken this step.
    pub fn position(&self) -> VideoPosition {
        match self {
            Self::Off => VideoPosition::Off,
            Self::Waiting => VideoPosition::Waiting,
            Self::Joined { next, .. } | Self::Live { next, .. } => VideoPosition::At(*next),
        }
    }
}

/// How the pixel damage is read alongside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelsAlongside {
    /// Updates the stream carries are left out: the viewer paints them
    /// from the units.
    pub skip_video: bool,
    /// The viewer fell out of step: the whole screen comes as pixels.
    pub whole: bool,
}

impl VideoRing {
    /// The next step of a viewer at `position` whose canvas shows screen
    /// sequence `seen`.
    pub fn catch_up(&self, position: VideoPosition, seen: u64) -> (VideoCatchUp, PixelsAlongside) {
        let (pixels, video) =
            (PixelsAlongside { skip_video: false, whole: false }, PixelsAlongside { skip_video: true, whole: false });
        // After a gap the canvas is repainted whole, so no unit need paint.
        let join = |whole: bool| match self.from_key_frame() {
            Some(units) => {
                let painted_up_to = if whole { u64::MAX } else { seen };
                let step = VideoCatchUp::Joined { units, painted_up_to, next: self.end() };
                (step, PixelsAlongside { skip_video: !whole, whole })
            }
            None => (VideoCatchUp::Waiting, PixelsAlongside { whole, ..pixels }),
        };
        match position {
            VideoPosition::Off => (VideoCatchUp::Off, pixels),
            VideoPosition::Waiting => join(false),
            VideoPosition::At(cursor) => match self.since(cursor) {
                Ok(units) => (VideoCatchUp::Live { units, next: self.end() }, video),
                // Updates the viewer skipped as video it never decoded.
                Err(Gap) => join(true),
            },
        }
    }
}
