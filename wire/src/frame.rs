//! Render frames: the `binary_v1` header (API.md), pixel formats and
//! colour modes. Pure code.

use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 4] = b"RAPF";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;
/// Flag bit 0: the last rectangle of this update.
pub const FLAG_LAST: u8 = 0b0000_0001;
/// Flag bit 1: an H.264 access unit that starts a decodable stream (IDR).
pub const FLAG_KEY_FRAME: u8 = 0b0000_0010;

/// A rectangle of the remote screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

impl Rect {
    pub fn new(x: u16, y: u16, width: u16, height: u16) -> Self {
        Self { x, y, width, height }
    }

    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    fn right(&self) -> u32 {
        u32::from(self.x) + u32::from(self.width)
    }

    fn bottom(&self) -> u32 {
        u32::from(self.y) + u32::from(self.height)
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = self.right().max(other.right());
        let bottom = self.bottom().max(other.bottom());
        Rect::new(x, y, clamp16(right - u32::from(x)), clamp16(bottom - u32::from(y)))
    }

    /// Whether the two overlap or touch.
    pub fn touches(&self, other: &Rect) -> bool {
        u32::from(self.x) <= other.right()
            && u32::from(other.x) <= self.right()
            && u32::from(self.y) <= other.bottom()
            && u32::from(other.y) <= self.bottom()
    }

    /// This rectangle cut to a `width` × `height` screen.
    pub fn clipped(&self, width: u16, height: u16) -> Rect {
        let x = self.x.min(width);
        let y = self.y.min(height);
        let right = self.right().min(u32::from(width));
        let bottom = self.bottom().min(u32::from(height));
        Rect::new(x, y, clamp16(right.saturating_sub(u32::from(x))), clamp16(bottom.saturating_sub(u32::from(y))))
    }
}

fn clamp16(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

/// How pixels are encoded in a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// 4 bytes per pixel: R, G, B, A (A = 255), rows top to bottom.
    RawRgba8,
    /// 1 byte per pixel: luma (BT.601 weights), rows top to bottom.
    RawGray8,
    /// `RawRgba8` compressed as a zlib stream (RFC 1950), which browsers
    /// inflate natively with `DecompressionStream("deflate")`.
    ZlibRgba8,
    /// `RawGray8` compressed the same way.
    ZlibGray8,
    /// One H.264 access unit (Annex B) of the host's own stream; the
    /// rectangle is where the decoded picture's top-left goes and its size.
    H264,
    /// No payload: paint this rectangle (screen coordinates, inside the
    /// preceding [`Self::H264`] picture) from that picture. An access unit
    /// marked last paints whole; one not marked last paints only the
    /// regions that follow it, and a single empty region paints nothing
    /// (the picture only advances the decoder).
    H264Region,
}

impl Encoding {
    pub fn code(self) -> u8 {
        match self {
            Self::RawRgba8 => 0,
            Self::RawGray8 => 1,
            Self::ZlibRgba8 => 2,
            Self::ZlibGray8 => 3,
            Self::H264 => 4,
            Self::H264Region => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::RawRgba8),
            1 => Some(Self::RawGray8),
            2 => Some(Self::ZlibRgba8),
            3 => Some(Self::ZlibGray8),
            4 => Some(Self::H264),
            5 => Some(Self::H264Region),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::RawRgba8 => "raw_rgba8",
            Self::RawGray8 => "raw_gray8",
            Self::ZlibRgba8 => "zlib_rgba8",
            Self::ZlibGray8 => "zlib_gray8",
            Self::H264 => "h264",
            Self::H264Region => "h264_region",
        }
    }

    pub fn is_compressed(self) -> bool {
        matches!(self, Self::ZlibRgba8 | Self::ZlibGray8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    #[default]
    FullColor,
    Grayscale,
}

impl ColorMode {
    pub fn code(self) -> u8 {
        match self {
            Self::FullColor => 0,
            Self::Grayscale => 1,
        }
    }

    pub fn encoding(self, compression: Compression) -> Encoding {
        match (self, compression) {
            (Self::FullColor, Compression::None) => Encoding::RawRgba8,
            (Self::Grayscale, Compression::None) => Encoding::RawGray8,
            (Self::FullColor, Compression::Zlib) => Encoding::ZlibRgba8,
            (Self::Grayscale, Compression::Zlib) => Encoding::ZlibGray8,
        }
    }
}

/// Whether frame payloads are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Zlib,
}

/// Compresses a payload for [`Compression::Zlib`]: the fastest level, since
/// screen content (flat areas, text) compresses well even so and latency
/// matters more than the last few percent.
pub fn zlib(payload: &[u8]) -> Vec<u8> {
    // miniz_oxide directly, not through flate2: another crate in the tree
    // (IronRDP's smart-card stack) turns on flate2's C zlib backend, whose
    // fastest level makes screen content several times larger and slower
    // (docs/BENCHMARKS.md, gateway frames).
    miniz_oxide::deflate::compress_to_vec_zlib(payload, 1)
}

/// A client's side of [`zlib`]: the pixels of a compressed payload, which
/// must inflate to exactly `expected` bytes (the rectangle's size in its
/// colour mode); `None` for a damaged stream or a wrong size, so a hostile
/// or broken stream cannot make a client allocate without bound.
pub fn inflate(payload: &[u8], expected: usize) -> Option<Vec<u8>> {
    let pixels = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(payload, expected).ok()?;
    (pixels.len() == expected).then_some(pixels)
}

/// The 24-byte `binary_v1` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub encoding: Encoding,
    pub color_mode: ColorMode,
    pub last: bool,
    /// Only on [`Encoding::H264`]: the access unit is a key frame.
    pub key_frame: bool,
    pub seq: u32,
    pub rect: Rect,
    pub payload_len: u32,
}

impl FrameHeader {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.encoding.code());
        out.push(self.color_mode.code());
        let mut flags = if self.last { FLAG_LAST } else { 0 };
        if self.key_frame {
            flags |= FLAG_KEY_FRAME;
        }
        out.push(flags);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.rect.x.to_le_bytes());
        out.extend_from_slice(&self.rect.y.to_le_bytes());
        out.extend_from_slice(&self.rect.width.to_le_bytes());
        out.extend_from_slice(&self.rect.height.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
    }

    /// Parses a header (as a client does); `None` if it is not one.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return None;
        }
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Some(Self {
            encoding: Encoding::from_code(bytes[5])?,
            color_mode: match bytes[6] {
                0 => ColorMode::FullColor,
                1 => ColorMode::Grayscale,
                _ => return None,
            },
            last: bytes[7] & FLAG_LAST != 0,
            key_frame: bytes[7] & FLAG_KEY_FRAME != 0,
            seq: u32_at(8),
            rect: Rect::new(u16_at(12), u16_at(14), u16_at(16), u16_at(18)),
            payload_len: u32_at(20),
        })
    }
}

/// BT.601 luma from RGB, in integer arithmetic (weights sum to 256).
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b)) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_contracts_byte_for_byte() {
        let header = FrameHeader {
            encoding: Encoding::RawGray8,
            color_mode: ColorMode::Grayscale,
            last: true,
            key_frame: false,
            seq: 0x0102_0304,
            rect: Rect::new(0x0a0b, 0x0c0d, 0x0e0f, 0x1011),
            payload_len: 0x1213_1415,
        };
        let mut bytes = Vec::new();
        header.write(&mut bytes);
        assert_eq!(
            bytes,
            [
                b'R', b'A', b'P', b'F', 1, 1, 1, 1, 0x04, 0x03, 0x02, 0x01, 0x0b, 0x0a, 0x0d, 0x0c, 0x0f, 0x0e, 0x11,
                0x10, 0x15, 0x14, 0x13, 0x12
            ]
        );
        assert_eq!(FrameHeader::read(&bytes), Some(header));
        assert_eq!(FrameHeader::read(&bytes[..23]), None);
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert_eq!(FrameHeader::read(&wrong), None);
        let key = FrameHeader { encoding: Encoding::H264, color_mode: ColorMode::FullColor, key_frame: true, ..header };
        let mut bytes = Vec::new();
        key.write(&mut bytes);
        assert_eq!((bytes[5], bytes[7]), (4, FLAG_LAST | FLAG_KEY_FRAME));
        assert_eq!(FrameHeader::read(&bytes), Some(key));
        bytes[5] = 6;
        assert_eq!(FrameHeader::read(&bytes), None, "an encoding this client does not know");
    }

    #[test]
    fn a_zlib_payload_inflates_to_its_rectangle_and_nothing_else() {
        let pixels: Vec<u8> = (0..64 * 32 * 4).map(|index| (index / 7 % 251) as u8).collect();
        let compressed = zlib(&pixels);
        assert!(compressed.len() < pixels.len());
        assert_eq!(inflate(&compressed, pixels.len()).as_deref(), Some(pixels.as_slice()));
        assert_eq!(inflate(&compressed, pixels.len() - 1), None, "more than the rectangle holds");
        assert_eq!(inflate(&compressed, pixels.len() + 1), None, "less than the rectangle holds");
        assert_eq!(inflate(&compressed[..compressed.len() / 2], pixels.len()), None, "a cut stream");
    }

    #[test]
    fn rectangles_merge_and_clip() {
        let a = Rect::new(10, 10, 10, 10);
        let b = Rect::new(30, 5, 5, 5);
        assert_eq!(a.union(&b), Rect::new(10, 5, 25, 15));
        assert!(!a.touches(&b));
        assert!(a.touches(&Rect::new(20, 20, 1, 1)), "corners touch");
        assert_eq!(Rect::new(90, 90, 20, 20).clipped(100, 100), Rect::new(90, 90, 10, 10));
        assert!(Rect::new(120, 0, 5, 5).clipped(100, 100).is_empty());
        assert_eq!(Rect::default_empty().union(&a), a);
    }

    #[test]
    fn luma_spans_black_to_white() {
        assert_eq!(luma(0, 0, 0), 0);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 149);
    }

    impl Rect {
        fn default_empty() -> Rect {
            Rect::new(0, 0, 0, 0)
        }
    }
}
