//! One framebuffer per session, and the damage viewers catch up on.
//!
//! The worker paints into the [`Screen`] and records which rectangles
//! changed, bumping a sequence number once per update. Each viewer remembers
//! the last sequence it sent and, when its socket is ready, asks for the
//! damage since then: the rectangles are merged and the *current* pixels
//! are read. A slow viewer therefore skips intermediate states instead of
//! queueing them, never holds memory for them, and never delays the worker
//! or other viewers. A viewer too far behind for the damage log simply gets
//! the whole screen.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::frame::{ColorMode, Rect, luma};
use super::video::{VideoCatchUp, VideoEvent, VideoPosition, VideoRing, VideoUnit};

/// Damage entries kept; older viewers get a full frame.
const DAMAGE_LOG: usize = 512;
/// Past this many separate rectangles, send their bounding box instead.
const MAX_RECTS: usize = 16;

/// Where a screen's pixels live: RGBA8 rows, `width * 4` bytes apart.
/// Either the screen's own buffer or one a decoder paints into directly,
/// so a session holds its desktop once rather than a decoder's copy plus
/// the screen's.
pub trait PixelStore: Send + Sync + 'static {
    fn rgba(&self) -> &[u8];
    /// The pixels for [`Canvas`] painting; `None` for a decoder's store,
    /// which only its decoder writes (through [`Screen::decode_into`]).
    fn rgba_mut(&mut self) -> Option<&mut [u8]>;
    /// `false` when the alpha bytes are left unspecified (decoders): reads
    /// then return opaque pixels.
    fn alpha_is_set(&self) -> bool;
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// A store that can change size by itself (a decoder told so by the
    /// host) says its size; the screen follows it.
    fn size(&self) -> Option<(u16, u16)> {
        None
    }
}

impl PixelStore for Vec<u8> {
    fn rgba(&self) -> &[u8] {
        self
    }

    fn rgba_mut(&mut self) -> Option<&mut [u8]> {
        Some(self)
    }

    fn alpha_is_set(&self) -> bool {
        true
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

struct Pixels {
    width: u16,
    height: u16,
    rgba: Box<dyn PixelStore>,
    seq: u64,
    /// Recent updates, oldest first.
    log: VecDeque<Logged>,
    /// Updates at or before this sequence are not in the log (resize, trim).
    horizon: u64,
    /// The H.264 stream (the host's, or the appliance's own), under the
    /// same lock as the pixels it painted, so a viewer reads both at one
    /// state.
    video: VideoRing,
    /// The host sends H.264 itself: the appliance never encodes.
    host_video: bool,
    /// Where the appliance's own stream paints while the picture there
    /// moves: updates inside are left to its next access unit.
    video_owned: Option<Rect>,
}

#[derive(Debug, Clone, Copy)]
struct Logged {
    seq: u64,
    rect: Rect,
    /// An access unit of the video stream painted it all.
    by_video: bool,
    /// The lossless pixels of a region the video stream painted: only a
    /// viewer that took the video needs them again.
    refinement: bool,
}

/// What a viewer must send to catch up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The sequence the viewer will be at after sending these.
    pub seq: u64,
    pub width: u16,
    pub height: u16,
    pub rects: Vec<Rect>,
    /// The whole screen is included (first frame, resize, fell behind).
    pub full: bool,
}

/// Whether a read may wait while a decoder paints the screen. Viewers'
/// async tasks say [`Wait::No`] and retry on the blocking pool, so a long
/// decode never parks an async worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Yes,
    No,
}

/// Counts shared by every screen of an appliance, for its metrics.
#[derive(Debug, Default)]
pub struct ScreenCounts {
    /// Updates published (decoded remote desktop updates).
    pub published: std::sync::atomic::AtomicU64,
    /// Access units of the appliance's own H.264 streams, and their bytes.
    pub encoded_frames: std::sync::atomic::AtomicU64,
    pub encoded_bytes: std::sync::atomic::AtomicU64,
}

/// Encoded payloads kept for other viewers at the same screen state.
const PAYLOAD_CACHE: usize = 16;

/// Identifies an encoded payload: the screen state it was read at, the
/// rectangle, and how it was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadKey {
    pub seq: u64,
    pub rect: Rect,
    pub color_mode: ColorMode,
}

/// A session's framebuffer. Cheap to share; all methods take `&self`.
pub struct Screen {
    /// What every screen of this appliance did (metrics).
    counts: Arc<ScreenCounts>,
    pixels: RwLock<Pixels>,
    changed: watch::Sender<u64>,
    /// Recently compressed payloads, so ten viewers of one update compress
    /// it once.
    payloads: Mutex<VecDeque<(PayloadKey, Arc<Vec<u8>>)>>,
    /// A viewer waits for a key frame the host's video stream does not
    /// hold.
    key_frame_wanted: std::sync::atomic::AtomicBool,
    /// When a viewer that decodes H.264 last caught up, in milliseconds
    /// since `opened`: the appliance encodes only while one watches.
    video_viewer_at: std::sync::atomic::AtomicU64,
    opened: std::time::Instant,
}

/// A viewer's next step: the pixels, and the video units beside them.
#[derive(Debug)]
pub struct CatchUp {
    pub damage: Option<Damage>,
    pub video: VideoCatchUp,
}

/// Paints one update; every rectangle touched is recorded as damage.
pub struct Canvas<'a> {
    pixels: &'a mut Pixels,
    touched: Vec<Rect>,
}

impl Canvas<'_> {
    pub fn width(&self) -> u16 {
        self.pixels.width
    }

    pub fn height(&self) -> u16 {
        self.pixels.height
    }

    /// Fills `rect` (clipped to the screen) with one colour.
    pub fn fill(&mut self, rect: Rect, rgba: [u8; 4]) {
        let rect = rect.clipped(self.pixels.width, self.pixels.height);
        if rect.is_empty() {
            return;
        }
        let stride = usize::from(self.pixels.width) * 4;
        let Some(target) = self.pixels.rgba.rgba_mut() else { return };
        for row in usize::from(rect.y)..usize::from(rect.y) + usize::from(rect.height) {
            let start = row * stride + usize::from(rect.x) * 4;
            for pixel in target[start..start + usize::from(rect.width) * 4].chunks_exact_mut(4) {
                pixel.copy_from_slice(&rgba);
            }
        }
        self.touched.push(rect);
    }

    /// Copies `rgba` (rows of `rect.width` pixels) into `rect`; pixels
    /// outside the screen are dropped.
    pub fn put(&mut self, rect: Rect, rgba: &[u8]) {
        let clipped = rect.clipped(self.pixels.width, self.pixels.height);
        if clipped.is_empty() || rgba.len() < rect.area() as usize * 4 {
            return;
        }
        let stride = usize::from(self.pixels.width) * 4;
        let source_stride = usize::from(rect.width) * 4;
        let row_bytes = usize::from(clipped.width) * 4;
        let Some(pixels) = self.pixels.rgba.rgba_mut() else { return };
        for row in 0..usize::from(clipped.height) {
            let target = (usize::from(clipped.y) + row) * stride + usize::from(clipped.x) * 4;
            let source = (usize::from(clipped.y - rect.y) + row) * source_stride + usize::from(clipped.x - rect.x) * 4;
            pixels[target..target + row_bytes].copy_from_slice(&rgba[source..source + row_bytes]);
        }
        self.touched.push(clipped);
    }
}

impl Screen {
    pub fn new(width: u16, height: u16) -> Arc<Self> {
        Self::counted(width, height, Box::new(opaque_black(width, height)), Arc::default())
    }

    fn counted(width: u16, height: u16, store: Box<dyn PixelStore>, counts: Arc<ScreenCounts>) -> Arc<Self> {
        let log = VecDeque::with_capacity(DAMAGE_LOG);
        let video = VideoRing::default();
        let pixels =
            Pixels { width, height, rgba: store, seq: 1, log, horizon: 1, video, host_video: false, video_owned: None };
        Arc::new(Self {
            counts,
            pixels: RwLock::new(pixels),
            changed: watch::channel(1).0,
            payloads: Mutex::new(VecDeque::new()),
            key_frame_wanted: Default::default(),
            video_viewer_at: Default::default(),
            opened: std::time::Instant::now(),
        })
    }

    fn write(&self) -> RwLockWriteGuard<'_, Pixels> {
        self.pixels.write()
    }

    fn read(&self) -> RwLockReadGuard<'_, Pixels> {
        self.pixels.read()
    }

    pub fn size(&self) -> (u16, u16) {
        let pixels = self.read();
        (pixels.width, pixels.height)
    }

    /// Applies one update and tells the viewers once.
    pub fn update(&self, paint: impl FnOnce(&mut Canvas<'_>)) {
        let seq = {
            let mut pixels = self.write();
            let mut canvas = Canvas { pixels: &mut pixels, touched: Vec::new() };
            paint(&mut canvas);
            let touched = std::mem::take(&mut canvas.touched);
            match record(&mut pixels, touched, Vec::new()) {
                Some(seq) => seq,
                None => return,
            }
        };
        self.counts.published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.changed.send_replace(seq);
    }

    /// Lets a decoder paint straight into its own store `S` (installed with
    /// [`Self::replace_store`]); the rectangles it returns become one
    /// update. `None` if the screen holds another kind of store.
    pub fn decode_into<S: PixelStore, R>(&self, decode: impl FnOnce(&mut S) -> (R, Vec<Rect>)) -> Option<R> {
        self.decode_with_video(|store: &mut S| {
            let (result, damage) = decode(store);
            (result, damage, Vec::new())
        })
    }

    /// [`Self::decode_into`] for a decoder that also hands over the host's
    /// H.264 access units it decoded: they join the video stream at the
    /// same update as the pixels they painted.
    pub fn decode_with_video<S: PixelStore, R>(
        &self,
        decode: impl FnOnce(&mut S) -> (R, Vec<Rect>, Vec<VideoEvent>),
    ) -> Option<R> {
        let (result, seq) = {
            let mut pixels = self.write();
            let store = pixels.rgba.as_any_mut().downcast_mut::<S>()?;
            let (result, damage, video) = decode(store);
            let resized = pixels.rgba.size().filter(|size| *size != (pixels.width, pixels.height));
            if let Some(size) = resized {
                (pixels.width, pixels.height) = size;
                pixels.log.clear();
                pixels.horizon = pixels.seq + 1;
                pixels.video_owned = None;
            }
            let (width, height) = (pixels.width, pixels.height);
            let mut touched: Vec<Rect> =
                damage.into_iter().map(|rect| rect.clipped(width, height)).filter(|rect| !rect.is_empty()).collect();
            if resized.is_some() {
                // Every viewer gets the new screen whole.
                touched = vec![Rect::new(0, 0, width, height)];
            }
            let seq = record(&mut pixels, touched, video);
            // A decoder with the next update already buffered would take the
            // lock straight back and starve the viewers waiting to read:
            // hand it to them first.
            RwLockWriteGuard::unlock_fair(pixels);
            (result, seq)
        };
        if let Some(seq) = seq {
            self.counts.published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.changed.send_replace(seq);
        }
        Some(result)
    }

    /// A new size with new pixels (a decoder's store, or the screen's own):
    /// every viewer gets the screen whole.
    pub fn replace_store(&self, width: u16, height: u16, store: Box<dyn PixelStore>) {
        let seq = {
            let mut pixels = self.write();
            pixels.width = width;
            pixels.height = height;
            pixels.rgba = store;
            pixels.seq += 1;
            pixels.log.clear();
            pixels.horizon = pixels.seq;
            pixels.video.reset();
            pixels.video_owned = None;
            pixels.seq
        };
        self.changed.send_replace(seq);
    }

    /// A new size: the screen is cleared and every viewer gets it whole.
    pub fn resize(&self, width: u16, height: u16) {
        self.replace_store(width, height, Box::new(opaque_black(width, height)));
    }

    /// Completes when anything changed since it was last seen by `receiver`.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The damage since `seen` (0 = never sent anything).
    pub fn damage_since(&self, seen: u64) -> Option<Damage> {
        self.damage_since_with(seen, Wait::Yes).flatten()
    }

    /// [`Self::damage_since`], or `None` when `wait` is [`Wait::No`] and a
    /// decoder holds the screen.
    pub fn damage_since_with(&self, seen: u64, wait: Wait) -> Option<Option<Damage>> {
        let pixels = self.read_with(wait)?;
        Some(damage_in(&pixels, seen, false))
    }

    /// A viewer's next step from pixel sequence `seen` and `position` in
    /// the video stream, read at one state; `None` when `wait` is
    /// [`Wait::No`] and a decoder holds the screen.
    pub fn catch_up_with(&self, seen: u64, position: VideoPosition, wait: Wait) -> Option<CatchUp> {
        let pixels = self.read_with(wait)?;
        // A viewer behind the log gets the whole screen as pixels: no unit
        // need paint for it.
        let shown = if seen < pixels.horizon { u64::MAX } else { seen };
        let (video, alongside) = pixels.video.catch_up(position, shown);
        if position != VideoPosition::Off {
            self.note_video_viewer();
        }
        if matches!(video, VideoCatchUp::Waiting) && pixels.host_video {
            self.key_frame_wanted.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let seen = if alongside.whole { 0 } else { seen };
        Some(CatchUp { damage: damage_in(&pixels, seen, alongside.skip_video), video })
    }

    /// Whether a viewer has asked for a key frame since the last call: the
    /// worker then asks the host to repaint.
    pub fn take_key_frame_wish(&self) -> bool {
        self.key_frame_wanted.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// A read guard, or `None` rather than waiting when `wait` is [`Wait::No`].
    fn read_with(&self, wait: Wait) -> Option<RwLockReadGuard<'_, Pixels>> {
        match wait {
            Wait::Yes => Some(self.read()),
            Wait::No => self.pixels.try_read(),
        }
    }

    /// The screen's current update sequence, or `None` when `wait` is
    /// [`Wait::No`] and a decoder holds the screen.
    pub fn seq_with(&self, wait: Wait) -> Option<u64> {
        Some(self.read_with(wait)?.seq)
    }

    /// A payload encoded earlier for exactly this state, rectangle and mode.
    pub fn cached_payload(&self, key: PayloadKey) -> Option<Arc<Vec<u8>>> {
        let payloads = self.payloads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        payloads.iter().find(|(known, _)| *known == key).map(|(_, payload)| payload.clone())
    }

    pub fn remember_payload(&self, key: PayloadKey, payload: Arc<Vec<u8>>) {
        let mut payloads = self.payloads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if payloads.len() == PAYLOAD_CACHE {
            payloads.pop_front();
        }
        payloads.push_back((key, payload));
    }

    /// The current pixels of `rect` in `mode`: RGBA8 or gray8, rows top to
    /// bottom. A rectangle outside the screen (it shrank) reads as empty.
    pub fn read_rect(&self, rect: Rect, mode: ColorMode) -> Vec<u8> {
        self.read_rect_with(rect, mode, Wait::Yes).unwrap_or_default().1
    }

    /// [`Self::read_rect`] with the sequence the pixels are from, or `None`
    /// when `wait` is [`Wait::No`] and a decoder holds the screen.
    pub fn read_rect_with(&self, rect: Rect, mode: ColorMode, wait: Wait) -> Option<(u64, Vec<u8>)> {
        let pixels = self.read_with(wait)?;
        let seq = pixels.seq;
        let rect = rect.clipped(pixels.width, pixels.height);
        let stride = usize::from(pixels.width) * 4;
        let bytes_per_pixel = match mode {
            ColorMode::FullColor => 4,
            ColorMode::Grayscale => 1,
        };
        let mut out = Vec::with_capacity(rect.area() as usize * bytes_per_pixel);
        let rgba = pixels.rgba.rgba();
        for row in usize::from(rect.y)..usize::from(rect.y) + usize::from(rect.height) {
            let start = row * stride + usize::from(rect.x) * 4;
            let line = &rgba[start..start + usize::from(rect.width) * 4];
            match mode {
                ColorMode::FullColor => out.extend_from_slice(line),
                ColorMode::Grayscale => {
                    out.extend(line.chunks_exact(4).map(|pixel| luma(pixel[0], pixel[1], pixel[2])))
                }
            }
        }
        if mode == ColorMode::FullColor && !pixels.rgba.alpha_is_set() {
            for pixel in out.chunks_exact_mut(4) {
                pixel[3] = 255;
            }
        }
        Some((seq, out))
    }
}

/// What a viewer at `seen` must send to catch up with `pixels`; with
/// `skip_video`, not what the video stream painted (the viewer decodes it).
fn damage_in(pixels: &Pixels, seen: u64, skip_video: bool) -> Option<Damage> {
    if seen >= pixels.seq {
        return None;
    }
    let whole = Rect::new(0, 0, pixels.width, pixels.height);
    if seen < pixels.horizon {
        return Some(Damage {
            seq: pixels.seq,
            width: pixels.width,
            height: pixels.height,
            rects: vec![whole],
            full: true,
        });
    }
    let mut rects: Vec<Rect> = Vec::new();
    let wanted = |logged: &&Logged| logged.seq > seen && if skip_video { !logged.by_video } else { !logged.refinement };
    for logged in pixels.log.iter().filter(wanted) {
        merge_into(&mut rects, logged.rect);
    }
    if rects.is_empty() {
        // Only video changed: the sequence still moves on.
        return Some(Damage { seq: pixels.seq, width: pixels.width, height: pixels.height, rects, full: false });
    }
    if rects.len() > MAX_RECTS {
        let bounds = rects.iter().fold(Rect::new(0, 0, 0, 0), |bounds, rect| bounds.union(rect));
        rects = vec![bounds];
    }
    let full = rects.len() == 1 && rects[0] == whole;
    Some(Damage { seq: pixels.seq, width: pixels.width, height: pixels.height, rects, full })
}

/// Logs `touched` (and the video units that painted it) as one update;
/// its sequence, or `None` if nothing changed.
fn record(pixels: &mut Pixels, touched: Vec<Rect>, video: Vec<VideoEvent>) -> Option<u64> {
    if touched.is_empty() && video.is_empty() {
        return None;
    }
    pixels.seq += 1;
    let seq = pixels.seq;
    let units: Vec<&VideoUnit> = video
        .iter()
        .filter_map(|event| match event {
            VideoEvent::Unit(unit) => Some(unit),
            VideoEvent::Reset => None,
        })
        .collect();
    for rect in touched {
        let owned = pixels.video_owned.is_some_and(|owned| owned.union(&rect) == owned);
        let by_video = owned || units.iter().any(|unit| unit.covers(&rect));
        log(pixels, Logged { seq, rect, by_video, refinement: false });
    }
    if !units.is_empty() && !pixels.host_video {
        // The host streams after all: whatever the appliance encoded until
        // now is no reference for its units.
        pixels.host_video = true;
        pixels.video_owned = None;
        pixels.video.reset();
    }
    for event in video {
        match event {
            VideoEvent::Unit(unit) => pixels.video.push(seq, unit),
            VideoEvent::Reset => pixels.video.reset(),
        }
    }
    Some(seq)
}

/// Appends to the damage log, forgetting its oldest entry when full.
fn log(pixels: &mut Pixels, logged: Logged) {
    if pixels.log.len() == DAMAGE_LOG
        && let Some(dropped) = pixels.log.pop_front()
    {
        pixels.horizon = dropped.seq;
    }
    pixels.log.push_back(logged);
}

fn opaque_black(width: u16, height: u16) -> Vec<u8> {
    // `repeat` copies in doubling blocks: megabytes in a few copies, also
    // in unoptimised builds, where a per-pixel loop costs milliseconds.
    [0, 0, 0, 255].repeat(usize::from(width) * usize::from(height))
}

/// Adds `rect`, merging it with every rectangle it touches.
fn merge_into(rects: &mut Vec<Rect>, rect: Rect) {
    let mut merged = rect;
    loop {
        let before = rects.len();
        rects.retain(|existing| {
            if existing.touches(&merged) {
                merged = merged.union(existing);
                false
            } else {
                true
            }
        });
        if rects.len() == before {
            break;
        }
    }
    rects.push(merged);
}

/// Reads the screen without parking an async worker: at once when no
/// decoder holds it, otherwise on the blocking pool, where waiting is fine.
pub async fn read_screen<R: Send + 'static>(
    screen: &Arc<Screen>,
    read: impl Fn(&Screen, Wait) -> Option<R> + Send + 'static,
) -> R {
    if let Some(value) = read(screen, Wait::No) {
        return value;
    }
    let screen = screen.clone();
    let waited = tokio::task::spawn_blocking(move || read(&screen, Wait::Yes));
    // INVARIANT: a waiting read always reads; only a panic in `read` (a
    // bug) could lose it, and then the reading task ends with it.
    waited.await.ok().flatten().expect("a screen read that may wait returns a value")
}

#[path = "framebuffer_screens.rs"]
mod screens;
pub use screens::Screens;

#[path = "framebuffer_stream.rs"]
mod stream;

#[cfg(test)]
#[path = "framebuffer_tests.rs"]
mod tests;
