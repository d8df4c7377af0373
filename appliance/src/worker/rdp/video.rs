//! The graphics pipeline (MS-RDPEGFX): IronRDP decodes it into the
//! session's image for the pixel viewers, and its H.264 access units pass
//! through, unchanged, to the viewers that decode H.264 themselves.
//!
//! A [`Tap`] watches the pipeline from two sides: as its H.264 decoder it
//! sees every access unit, and as its event handler the regions each one
//! paints and where frames end. After each PDU the worker takes the
//! finished units into the screen's video stream, in the same update as
//! the pixels they painted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ironrdp_egfx::client::{BitmapUpdate, GraphicsPipelineClient, GraphicsPipelineHandler, Surface};
use ironrdp_egfx::decode::{DecodedFrame, DecoderResult, H264Decoder, OpenH264Decoder, Yuv420Frame};
use ironrdp_egfx::pdu::{CapabilitiesV8Flags, CapabilitiesV81Flags, CapabilitySet, Codec1Type};

use crate::protocol::frame::Rect;
use crate::protocol::video::{VideoEvent, VideoUnit};

/// What the pipeline decoded since the worker last looked.
#[derive(Clone, Default)]
pub struct Tap(Arc<Mutex<TapState>>);

#[derive(Default)]
struct TapState {
    /// Size and output origin of each surface.
    surfaces: HashMap<u16, (Rect, bool)>,
    /// The one surface whose stream is passed through; the others' are
    /// decoded to pixels only (hosts use one surface per monitor, and a
    /// viewer shows one).
    primary: Option<u16>,
    /// The access unit just given to the decoder, until its regions come.
    decoding: Option<Arc<[u8]>>,
    /// The unit whose regions are being collected: surface, data, regions.
    collecting: Option<(u16, Arc<[u8]>, Vec<Rect>)>,
    /// Units of the frame in progress.
    frame: Vec<VideoEvent>,
    /// Finished frames' units, for the worker.
    done: Vec<VideoEvent>,
}

impl Tap {
    fn lock(&self) -> MutexGuard<'_, TapState> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The units of the frames finished since the last call.
    pub fn take(&self) -> Vec<VideoEvent> {
        std::mem::take(&mut self.lock().done)
    }
}

impl TapState {
    /// Closes the unit being collected into the frame.
    fn finish_unit(&mut self) {
        let Some((surface, data, regions)) = self.collecting.take() else { return };
        let Some(&(picture, _)) = self.surfaces.get(&surface) else { return };
        if *self.primary.get_or_insert(surface) != surface || regions.is_empty() {
            return;
        }
        let key_frame = rap_wire::h264::is_key_frame(&data);
        self.frame.push(VideoEvent::Unit(VideoUnit { picture, regions, key_frame, data }));
    }

    fn restart(&mut self) {
        self.decoding = None;
        self.collecting = None;
        self.frame.clear();
        self.done.push(VideoEvent::Reset);
    }
}

/// The pipeline for one session, decoding H.264 with OpenH264.
pub fn graphics_pipeline(tap: &Tap) -> Result<GraphicsPipelineClient, String> {
    let decoder = OpenH264Decoder::new().map_err(|_| String::from("codec_setup_failed"))?;
    let decoder = TapDecoder { inner: decoder, tap: tap.clone() };
    Ok(GraphicsPipelineClient::new(Box::new(Events(tap.clone())), Some(Box::new(decoder))))
}

struct Events(Tap);

impl GraphicsPipelineHandler for Events {
    /// AVC420 and the lossless codecs, not AVC444: a 4:4:4 picture is two
    /// 4:2:0 streams combined, which a browser's `VideoDecoder` cannot be
    /// given as one stream, so it could not pass through.
    fn capabilities(&self) -> Vec<CapabilitySet> {
        vec![
            CapabilitySet::V8_1 { flags: CapabilitiesV81Flags::AVC420_ENABLED | CapabilitiesV81Flags::SMALL_CACHE },
            CapabilitySet::V8 { flags: CapabilitiesV8Flags::SMALL_CACHE },
        ]
    }

    fn on_reset_graphics(&mut self, _width: u32, _height: u32) {
        self.0.lock().restart();
    }

    fn on_surface_created(&mut self, surface: &Surface) {
        let size = Rect::new(0, 0, surface.width, surface.height);
        self.0.lock().surfaces.insert(surface.id, (size, false));
    }

    fn on_surface_deleted(&mut self, surface_id: u16) {
        let mut tap = self.0.lock();
        tap.surfaces.remove(&surface_id);
        if tap.primary == Some(surface_id) {
            tap.primary = None;
            tap.restart();
        }
    }

    fn on_surface_mapped(&mut self, surface_id: u16, origin_x: u32, origin_y: u32) {
        let mut tap = self.0.lock();
        if let Some((picture, mapped)) = tap.surfaces.get_mut(&surface_id) {
            picture.x = u16::try_from(origin_x).unwrap_or(u16::MAX);
            picture.y = u16::try_from(origin_y).unwrap_or(u16::MAX);
            *mapped = true;
        }
    }

    fn on_bitmap_updated(&mut self, update: &BitmapUpdate) {
        if update.codec_id != Codec1Type::Avc420 {
            return;
        }
        let mut tap = self.0.lock();
        if let Some(data) = tap.decoding.take() {
            tap.finish_unit();
            tap.collecting = Some((update.surface_id, data, Vec::new()));
        }
        let Some(&(picture, true)) = tap.surfaces.get(&update.surface_id) else { return };
        let Some((surface, _, regions)) = tap.collecting.as_mut() else { return };
        if *surface != update.surface_id {
            return;
        }
        let area = &update.destination_rectangle;
        let region = Rect::new(
            picture.x.saturating_add(area.left),
            picture.y.saturating_add(area.top),
            area.right.saturating_sub(area.left),
            area.bottom.saturating_sub(area.top),
        );
        let clipped = region.clipped(picture.x.saturating_add(picture.width), picture.y.saturating_add(picture.height));
        if !clipped.is_empty() {
            regions.push(clipped);
        }
    }

    fn on_frame_complete(&mut self, _frame_id: u32) {
        let mut tap = self.0.lock();
        tap.finish_unit();
        let frame = std::mem::take(&mut tap.frame);
        tap.done.extend(frame);
    }
}

/// OpenH264, with every access unit noted on the way in.
struct TapDecoder {
    inner: OpenH264Decoder,
    tap: Tap,
}

impl TapDecoder {
    fn note(&self, data: &[u8]) {
        let mut tap = self.tap.lock();
        tap.finish_unit();
        tap.decoding = rap_wire::h264::annex_b(data).map(|annex_b| Arc::from(annex_b.as_ref()));
    }
}

impl H264Decoder for TapDecoder {
    fn decode(&mut self, data: &[u8]) -> DecoderResult<DecodedFrame> {
        self.note(data);
        self.inner.decode(data)
    }

    fn decode_yuv420(&mut self, data: &[u8]) -> DecoderResult<Yuv420Frame> {
        self.note(data);
        self.inner.decode_yuv420(data)
    }

    /// No: only AVC420 is negotiated, which needs no planes, and the
    /// planes' conversion to RGBA is a per-pixel loop, where `decode`
    /// converts with SIMD (a third of the appliance's CPU per 1080p stream).
    fn supports_yuv420(&self) -> bool {
        false
    }

    fn reset(&mut self) {
        self.inner.reset();
    }
}
