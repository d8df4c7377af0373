//! The remote desktop as the window presents it: one `0RGB` word per
//! pixel, softbuffer's own layout, so presenting is a copy.

use rap_wire::frame::{ColorMode, Encoding, FrameHeader, HEADER_LEN, Rect, inflate};

/// One `binary_v1` message's pixels, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub rect: Rect,
    /// RGBA, or one luma byte per pixel when `gray`.
    pub pixels: std::borrow::Cow<'a, [u8]>,
    pub gray: bool,
}

/// Reads one `binary_v1` message (header, then its payload inflated if it
/// is compressed); `None` for a frame that does not parse or whose pixels
/// do not match its rectangle, which a correct server never sends.
pub fn decode(bytes: &[u8]) -> Option<Decoded<'_>> {
    let header = FrameHeader::read(bytes)?;
    let payload = bytes.get(HEADER_LEN..HEADER_LEN + header.payload_len as usize)?;
    let gray = header.color_mode == ColorMode::Grayscale;
    let expected = usize::from(header.rect.width) * usize::from(header.rect.height) * if gray { 1 } else { 4 };
    let pixels = match header.encoding {
        Encoding::RawRgba8 | Encoding::RawGray8 => std::borrow::Cow::Borrowed(payload),
        Encoding::ZlibRgba8 | Encoding::ZlibGray8 => std::borrow::Cow::Owned(inflate(payload, expected)?),
        // Not pixels: the socket's video decoder takes these.
        Encoding::H264 | Encoding::H264Region => return None,
    };
    (pixels.len() == expected).then_some(Decoded { rect: header.rect, pixels, gray })
}

#[derive(Debug, Default, Clone)]
pub struct Desktop {
    pub width: u16,
    pub height: u16,
    pub pixels: Vec<u32>,
}

impl Desktop {
    /// A new size: black until the frames of the new screen arrive.
    pub fn resize(&mut self, width: u16, height: u16) {
        if (width, height) == (self.width, self.height) {
            return; // a reattach at the same size keeps the picture
        }
        self.width = width;
        self.height = height;
        self.pixels = vec![0; usize::from(width) * usize::from(height)];
    }

    /// The pixel at (`x`, `y`) as `[r, g, b]`.
    pub fn rgb(&self, x: u16, y: u16) -> Option<[u8; 3]> {
        let word = *self.pixels.get(usize::from(y) * usize::from(self.width) + usize::from(x))?;
        Some([(word >> 16) as u8, (word >> 8) as u8, word as u8])
    }

    /// Writes a decoded frame; `false` if it does not fit the desktop.
    pub fn apply(&mut self, frame: &Decoded<'_>) -> bool {
        self.put(frame.rect, &frame.pixels, frame.gray)
    }

    /// Writes `pixels` (RGBA, or one luma byte each when `gray`) at `rect`;
    /// `false` if the rectangle does not fit the desktop.
    pub fn put(&mut self, rect: Rect, pixels: &[u8], gray: bool) -> bool {
        let fits = u32::from(rect.x) + u32::from(rect.width) <= u32::from(self.width)
            && u32::from(rect.y) + u32::from(rect.height) <= u32::from(self.height);
        if !fits {
            return false;
        }
        let stride = if gray { 1 } else { 4 };
        let row_bytes = usize::from(rect.width) * stride;
        for (row, source) in pixels.chunks_exact(row_bytes).take(usize::from(rect.height)).enumerate() {
            let start = (usize::from(rect.y) + row) * usize::from(self.width) + usize::from(rect.x);
            let target = &mut self.pixels[start..start + usize::from(rect.width)];
            if gray {
                for (word, &luma) in target.iter_mut().zip(source) {
                    let luma = u32::from(luma);
                    *word = (luma << 16) | (luma << 8) | luma;
                }
            } else {
                for (word, rgba) in target.iter_mut().zip(source.chunks_exact(4)) {
                    *word = (u32::from(rgba[0]) << 16) | (u32::from(rgba[1]) << 8) | u32::from(rgba[2]);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_land_where_they_belong_and_overflow_is_refused() {
        let mut desktop = Desktop::default();
        desktop.resize(4, 3);
        let rgba = [10, 20, 30, 255, 40, 50, 60, 255];
        assert!(desktop.put(Rect::new(2, 1, 2, 1), &rgba, false));
        assert_eq!(desktop.rgb(2, 1), Some([10, 20, 30]));
        assert_eq!(desktop.rgb(3, 1), Some([40, 50, 60]));
        assert_eq!(desktop.rgb(1, 1), Some([0, 0, 0]));
        assert!(desktop.put(Rect::new(0, 2, 1, 1), &[200], true));
        assert_eq!(desktop.rgb(0, 2), Some([200, 200, 200]));
        assert!(!desktop.put(Rect::new(3, 0, 2, 1), &rgba, false), "past the right edge");
        assert!(!desktop.put(Rect::new(0, 3, 1, 1), &rgba[..4], false), "past the bottom");
    }
}
