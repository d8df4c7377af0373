//! Which part of a screen keeps changing: where the appliance's own H.264
//! stream is worth its loss (video, animation, scrolling), and when it is
//! over, so the region can be sent again losslessly.
//!
//! Text and still regions change in small, rare updates; a moving picture
//! in large, frequent ones. An update is *large* when it touches at least
//! one hundredth of the screen; [`MOVING_UPDATES`] large updates within
//! [`WINDOW`] make the box around them a moving region, which then grows
//! to hold every later large update until nothing inside it has changed
//! for [`STILL`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::Rect;

/// How far back large updates are counted.
pub const WINDOW: Duration = Duration::from_millis(500);
/// Large updates within [`WINDOW`] that make a moving region: 12 a second,
/// more than anyone types or clicks, fewer than any video plays.
pub const MOVING_UPDATES: usize = 6;
/// Nothing in the region changed for this long: the motion is over.
pub const STILL: Duration = Duration::from_millis(300);
/// A region's edges snap to this grid (H.264 macroblocks), and its sides
/// are even, as 4:2:0 pictures need.
const GRID: u16 = 16;
/// An update smaller than this many pixels is never large, whatever the
/// screen size.
const MIN_LARGE_AREA: u64 = 64 * 64;

/// What an update did to the moving region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionChange {
    Unchanged,
    /// The region started or grew to this.
    Moving(Rect),
}

#[derive(Debug)]
pub struct Motion {
    width: u16,
    height: u16,
    /// Large updates within the window: when, and the box around each.
    recent: VecDeque<(Instant, Rect)>,
    region: Option<Rect>,
    last_moved: Instant,
}

impl Motion {
    pub fn new(width: u16, height: u16, now: Instant) -> Self {
        Self { width, height, recent: VecDeque::new(), region: None, last_moved: now }
    }

    pub fn region(&self) -> Option<Rect> {
        self.region
    }

    fn is_large(&self, area: u64) -> bool {
        area >= (u64::from(self.width) * u64::from(self.height) / 100).max(MIN_LARGE_AREA)
    }

    /// Takes one update's changed rectangles.
    pub fn observe(&mut self, now: Instant, rects: &[Rect]) -> MotionChange {
        if let Some(region) = self.region
            && rects.iter().any(|rect| rect.touches(&region) && !rect.is_empty())
        {
            self.last_moved = now;
        }
        let area: u64 = rects.iter().map(Rect::area).sum();
        if self.is_large(area) {
            let bounds = rects.iter().fold(Rect::new(0, 0, 0, 0), |bounds, rect| bounds.union(rect));
            self.recent.push_back((now, bounds));
        }
        while self.recent.front().is_some_and(|(at, _)| now.duration_since(*at) > WINDOW) {
            self.recent.pop_front();
        }
        if self.recent.len() < MOVING_UPDATES {
            return MotionChange::Unchanged;
        }
        let moving = self
            .recent
            .iter()
            .fold(self.region.unwrap_or(Rect::new(0, 0, 0, 0)), |bounds, (_, rect)| bounds.union(rect));
        let moving = snapped(moving, self.width, self.height);
        if moving.is_empty() || Some(moving) == self.region {
            return MotionChange::Unchanged;
        }
        self.region = Some(moving);
        self.last_moved = now;
        MotionChange::Moving(moving)
    }

    /// The region, once nothing in it has changed for [`STILL`]: the motion
    /// is over and the region is forgotten.
    pub fn stilled(&mut self, now: Instant) -> Option<Rect> {
        if self.region.is_none() || now.duration_since(self.last_moved) < STILL {
            return None;
        }
        self.recent.clear();
        self.region.take()
    }

    /// When [`Self::stilled`] will next be worth asking.
    pub fn still_at(&self) -> Option<Instant> {
        self.region.map(|_| self.last_moved + STILL)
    }
}

/// `rect` grown out to the grid, cut to the screen, with even sides.
fn snapped(rect: Rect, width: u16, height: u16) -> Rect {
    let down = |value: u16| value - value % GRID;
    let up = |value: u32| value.div_ceil(u32::from(GRID)) * u32::from(GRID);
    let (x, y) = (down(rect.x), down(rect.y));
    let right = up(u32::from(rect.x) + u32::from(rect.width)).min(u32::from(width));
    let bottom = up(u32::from(rect.y) + u32::from(rect.height)).min(u32::from(height));
    let even = |from: u16, to: u32| {
        let side = to.saturating_sub(u32::from(from));
        u16::try_from(side - side % 2).unwrap_or(u16::MAX - 1)
    };
    Rect::new(x, y, even(x, right), even(y, bottom))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(33);

    #[test]
    fn a_playing_video_becomes_a_moving_region_snapped_to_the_grid() {
        let start = Instant::now();
        let mut motion = Motion::new(1920, 1080, start);
        let video = Rect::new(101, 53, 640, 360);
        let mut changes = Vec::new();
        for frame in 0..10u32 {
            changes.push(motion.observe(start + FRAME * frame, &[video]));
        }
        let started = changes.iter().position(|change| *change != MotionChange::Unchanged);
        assert_eq!(started, Some(MOVING_UPDATES - 1), "{changes:?}");
        assert_eq!(changes[MOVING_UPDATES - 1], MotionChange::Moving(Rect::new(96, 48, 656, 368)));
        assert!(changes[MOVING_UPDATES..].iter().all(|change| *change == MotionChange::Unchanged), "it stays put");
        assert_eq!(motion.still_at(), Some(start + FRAME * 9 + STILL));
    }

    #[test]
    fn typing_and_occasional_repaints_never_move() {
        let start = Instant::now();
        let mut motion = Motion::new(1920, 1080, start);
        for key in 0..200u32 {
            let glyph = Rect::new((key % 150) as u16 * 10, 40, 10, 20);
            assert_eq!(motion.observe(start + Duration::from_millis(40) * key, &[glyph]), MotionChange::Unchanged);
        }
        // A whole-window repaint every half second (a clock, a menu).
        for repaint in 0..20u32 {
            let window = [Rect::new(0, 0, 800, 600)];
            assert_eq!(motion.observe(start + Duration::from_millis(500) * repaint, &window), MotionChange::Unchanged);
        }
        assert_eq!(motion.region(), None);
    }

    #[test]
    fn the_region_grows_with_the_motion_and_stills_when_it_stops() {
        let start = Instant::now();
        let mut motion = Motion::new(1280, 720, start);
        let mut now = start;
        for frame in 0..8u16 {
            now = start + FRAME * u32::from(frame);
            motion.observe(now, &[Rect::new(frame * 20, 0, 300, 300)]);
        }
        let region = motion.region().expect("moving");
        assert_eq!(region, Rect::new(0, 0, 448, 304));
        // Small changes inside keep it alive; outside they do not.
        motion.observe(now + STILL / 2, &[Rect::new(10, 10, 4, 4)]);
        assert_eq!(motion.stilled(now + STILL), None, "it moved {STILL:?} ago at most");
        motion.observe(now + STILL, &[Rect::new(1000, 600, 4, 4)]);
        assert_eq!(motion.stilled(now + STILL / 2 + STILL), Some(region));
        assert_eq!(motion.region(), None);
        assert_eq!(motion.still_at(), None);
    }

    #[test]
    fn a_region_at_the_screens_edge_keeps_even_sides_inside_the_screen() {
        assert_eq!(snapped(Rect::new(1000, 700, 23, 19), 1023, 767), Rect::new(992, 688, 30, 32));
        assert_eq!(snapped(Rect::new(0, 0, 1023, 767), 1023, 767), Rect::new(0, 0, 1022, 766));
    }
}
