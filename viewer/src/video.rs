//! H.264 from the gateway (`binary_v1` encodings 4 and 5, PROTOCOL.md
//! "H.264 passthrough" and "Encoding on motion"), decoded with OpenH264 on
//! the socket's task: each access unit is decoded in order, and its
//! picture painted whole or by the regions that follow it.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use rap_wire::frame::{FrameHeader, Rect};

/// One socket's decoder and the last picture it decoded.
pub struct VideoDecoder {
    decoder: Decoder,
    /// RGBA of the last picture, `width` pixels a row, and where it goes.
    picture: Option<Picture>,
    /// Access units decoded so far.
    pub units: u64,
}

struct Picture {
    rect: Rect,
    width: usize,
    rgba: Vec<u8>,
}

/// What a frame asks the desktop to show: `rect` of `rgba` (rows
/// `rect.width` pixels wide).
pub struct Paint {
    pub rect: Rect,
    pub rgba: Vec<u8>,
}

/// The stream no longer decodes (a unit lost or corrupt): the socket has
/// to start again at a key frame.
#[derive(Debug)]
pub struct Lost;

impl VideoDecoder {
    pub fn new() -> Result<Self, Lost> {
        Ok(Self { decoder: Decoder::new().map_err(|_| Lost)?, picture: None, units: 0 })
    }

    /// An access unit (encoding 4): decoded, and its whole picture to paint
    /// when the header says so.
    pub fn unit(&mut self, header: &FrameHeader, payload: &[u8]) -> Result<Option<Paint>, Lost> {
        self.units += 1;
        let decoded = self.decoder.decode(payload).map_err(|_| Lost)?;
        let Some(yuv) = decoded else {
            // Headers only, or a picture still to come: nothing to paint.
            self.picture = None;
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let rect = header.rect;
        if width < usize::from(rect.width) || height < usize::from(rect.height) {
            return Err(Lost);
        }
        self.picture = Some(Picture { rect, width, rgba: rgba_from(&yuv, width, height) });
        Ok(if header.last { self.region(rect) } else { None })
    }

    /// A region of the last picture (encoding 5), in screen coordinates;
    /// `None` for the empty region that only advances the decoder.
    pub fn region(&self, region: Rect) -> Option<Paint> {
        let picture = self.picture.as_ref()?;
        let inside = picture.rect.union(&region) == picture.rect;
        if region.is_empty() || !inside {
            return None;
        }
        let (left, top) = (usize::from(region.x - picture.rect.x), usize::from(region.y - picture.rect.y));
        let row_bytes = usize::from(region.width) * 4;
        let mut rgba = Vec::with_capacity(row_bytes * usize::from(region.height));
        for row in top..top + usize::from(region.height) {
            let start = (row * picture.width + left) * 4;
            rgba.extend_from_slice(&picture.rgba[start..start + row_bytes]);
        }
        Some(Paint { rect: region, rgba })
    }
}

/// Full-range BT.709 to RGBA, as the RDP graphics pipeline defines its
/// colours (and the appliance encodes its own stream): the same integer
/// transform the appliance's decoder uses, so both viewers see one colour.
fn rgba_from(yuv: &impl YUVSource, width: usize, height: usize) -> Vec<u8> {
    let (y_stride, u_stride, v_stride) = yuv.strides();
    let (luma, u_plane, v_plane) = (yuv.y(), yuv.u(), yuv.v());
    let clamp = |value: i32| value.clamp(0, 255) as u8;
    let mut rgba = Vec::with_capacity(width * height * 4);
    for row in 0..height {
        for col in 0..width {
            let y = 256 * i32::from(luma[row * y_stride + col]);
            let u = i32::from(u_plane[row / 2 * u_stride + col / 2]) - 128;
            let v = i32::from(v_plane[row / 2 * v_stride + col / 2]) - 128;
            rgba.extend_from_slice(&[
                clamp((y + 403 * v) >> 8),
                clamp((y - 48 * u - 120 * v) >> 8),
                clamp((y + 475 * u) >> 8),
                255,
            ]);
        }
    }
    rgba
}

#[cfg(test)]
mod tests {
    use super::*;
    use rap_wire::frame::{ColorMode, Encoding};

    fn header(rect: Rect, last: bool) -> FrameHeader {
        FrameHeader {
            encoding: Encoding::H264,
            color_mode: ColorMode::FullColor,
            last,
            key_frame: false,
            seq: 1,
            rect,
            payload_len: 0,
        }
    }

    #[test]
    fn garbage_is_a_lost_stream_and_regions_need_a_picture() {
        let mut decoder = VideoDecoder::new().expect("OpenH264");
        let rect = Rect::new(0, 0, 16, 16);
        // A NAL unit of a type that cannot start a stream, then noise.
        let garbage = [0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13, 0x37, 0x42];
        let painted = decoder.unit(&header(rect, true), &garbage);
        assert!(!matches!(painted, Ok(Some(_))), "noise paints nothing");
        assert!(decoder.region(Rect::new(0, 0, 8, 8)).is_none(), "no picture, no region");
    }
}
