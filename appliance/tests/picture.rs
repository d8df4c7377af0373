//! A client's picture rebuilt from its frames, pixels and H.264 alike,
//! for the tests that compare what two kinds of viewer see.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ironrdp_egfx::decode::{H264Decoder, OpenH264Decoder};
use rap_appliance::protocol::frame::{Encoding, FrameHeader, HEADER_LEN, Rect, inflate};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::acceptance::Socket;

/// Attaches over `binary_v1` with `extra` added to the attach payload;
/// the socket and its `session.attached` payload.
pub(crate) async fn attach(addr: &std::net::SocketAddr, token: &str, extra: Value) -> (Socket, Value) {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/gateway/ws")).await.expect("connect");
    let mut payload = json!({"attach_token": token, "render_transport": "binary_v1"});
    payload.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    socket.send(Message::text(json!({"type": "attach", "payload": payload}).to_string())).await.expect("send");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = message else { panic!("no session.attached: {message:?}") };
        let value: Value = serde_json::from_str(&text).expect("json");
        if value["type"] == "session.attached" {
            return (socket, value["payload"].clone());
        }
        assert_ne!(value["type"], "error", "attach refused: {value}");
    }
}

/// What a client rebuilds from its frames: the canvas, and what it saw.
pub(crate) struct Viewer {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) canvas: Vec<u8>,
    decoder: OpenH264Decoder,
    /// The last decoded picture, RGBA, with its rectangle.
    picture: Option<(Rect, usize, Vec<u8>)>,
    pub(crate) units: usize,
    pub(crate) key_frames: usize,
    pub(crate) first_unit_was_key: Option<bool>,
    pub(crate) video_bytes: usize,
    pub(crate) pixel_bytes: usize,
    /// Pixel rectangles that came once the stream had started.
    pub(crate) pixels_after_video: usize,
    /// The canvas as the last run of video left it, taken when pixels
    /// came next (the lossless refinement of a region that stopped moving).
    pub(crate) before_refinement: Option<Vec<u8>>,
    last_was_video: bool,
}

impl Viewer {
    pub(crate) fn new(attached: &Value) -> Self {
        let width = attached["width"].as_u64().expect("width") as usize;
        let height = attached["height"].as_u64().expect("height") as usize;
        Self {
            width,
            height,
            canvas: vec![0; width * height * 4],
            decoder: OpenH264Decoder::new().expect("OpenH264"),
            picture: None,
            units: 0,
            key_frames: 0,
            first_unit_was_key: None,
            video_bytes: 0,
            pixel_bytes: 0,
            pixels_after_video: 0,
            before_refinement: None,
            last_was_video: false,
        }
    }

    /// Copies `rect` of `source` (rows `stride` pixels wide, its top-left
    /// at `origin`) onto the canvas.
    fn blit(&mut self, rect: Rect, origin: (u16, u16), source: &[u8], stride: usize) {
        for row in 0..usize::from(rect.height) {
            let y = usize::from(rect.y) + row;
            let source_y = y - usize::from(origin.1);
            let source_x = usize::from(rect.x) - usize::from(origin.0);
            let from = (source_y * stride + source_x) * 4;
            let to = (y * self.width + usize::from(rect.x)) * 4;
            let bytes = usize::from(rect.width) * 4;
            self.canvas[to..to + bytes].copy_from_slice(&source[from..from + bytes]);
        }
    }

    pub(crate) fn apply(&mut self, frame: &[u8]) {
        let header = FrameHeader::read(frame).expect("a binary_v1 header");
        let payload = &frame[HEADER_LEN..HEADER_LEN + header.payload_len as usize];
        let rect = header.rect;
        let fits = usize::from(rect.x) + usize::from(rect.width) <= self.width
            && usize::from(rect.y) + usize::from(rect.height) <= self.height;
        assert!(fits, "{rect:?} is outside the {}x{} screen", self.width, self.height);
        match header.encoding {
            Encoding::RawRgba8 | Encoding::ZlibRgba8 => {
                self.pixel_bytes += frame.len();
                if self.units > 0 {
                    self.pixels_after_video += 1;
                }
                if std::mem::take(&mut self.last_was_video) {
                    self.before_refinement = Some(self.canvas.clone());
                }
                let expected = rect.area() as usize * 4;
                let pixels = if header.encoding == Encoding::ZlibRgba8 {
                    inflate(payload, expected).expect("a zlib payload of its rectangle")
                } else {
                    payload.to_vec()
                };
                self.blit(rect, (rect.x, rect.y), &pixels, usize::from(rect.width));
            }
            Encoding::H264 => {
                self.last_was_video = true;
                self.video_bytes += frame.len();
                self.units += 1;
                self.key_frames += usize::from(header.key_frame);
                self.first_unit_was_key.get_or_insert(header.key_frame);
                let picture = self.decoder.decode_yuv420(payload).expect("the access unit decodes").to_rgba();
                let stride = picture.width() as usize;
                assert!(stride >= usize::from(rect.width) && picture.height() as usize >= usize::from(rect.height));
                self.picture = Some((rect, stride, picture.into_data()));
                if header.last {
                    self.paint(rect);
                }
            }
            Encoding::H264Region => {
                assert!(payload.is_empty(), "a region has no payload");
                if !rect.is_empty() {
                    self.paint(rect);
                }
            }
            other => panic!("a full-colour viewer got {other:?}"),
        }
    }

    /// Paints `region` from the last decoded picture.
    fn paint(&mut self, region: Rect) {
        let (picture, stride, pixels) = self.picture.take().expect("a region after its access unit");
        assert_eq!(picture.union(&region), picture, "{region:?} is outside its picture {picture:?}");
        self.blit(region, (picture.x, picture.y), &pixels, stride);
        self.picture = Some((picture, stride, pixels));
    }
}

/// Peak signal-to-noise ratio of two RGBA pictures, over R, G and B.
pub(crate) fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut squares, mut samples) = (0f64, 0f64);
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for channel in 0..3 {
            let difference = f64::from(x[channel]) - f64::from(y[channel]);
            squares += difference * difference;
            samples += 1.0;
        }
    }
    if squares == 0.0 { f64::INFINITY } else { 10.0 * (255f64 * 255.0 / (squares / samples)).log10() }
}

/// Peak signal-to-noise ratio of the luma (BT.601) of two RGBA pictures:
/// the usual measure of a video codec's quality, blind to the colour
/// detail 4:2:0 sampling leaves out by design.
pub(crate) fn luma_psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let luma = |pixel: &[u8]| 0.299 * f64::from(pixel[0]) + 0.587 * f64::from(pixel[1]) + 0.114 * f64::from(pixel[2]);
    let squares: f64 = a.chunks_exact(4).zip(b.chunks_exact(4)).map(|(x, y)| (luma(x) - luma(y)).powi(2)).sum();
    let mean = squares / (a.len() / 4) as f64;
    if mean == 0.0 { f64::INFINITY } else { 10.0 * (255f64 * 255.0 / mean).log10() }
}

/// Reads every socket into its viewer until none has had a frame for
/// `quiet` (after at least `min_units` access units reached one viewer),
/// or `within` passes.
pub(crate) async fn settle(
    sockets: &mut [(&mut Socket, &mut Viewer)],
    min_units: usize,
    quiet: Duration,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let mut last_frame = Instant::now();
    loop {
        let units = sockets.iter().map(|(_, viewer)| viewer.units).max().unwrap_or(0);
        if units >= min_units && last_frame.elapsed() >= quiet {
            return;
        }
        let pixels: Vec<usize> = sockets.iter().map(|(_, viewer)| viewer.pixel_bytes).collect();
        assert!(Instant::now() < deadline, "the desktop never settled ({units} units, {pixels:?} pixel bytes so far)");
        let next = futures_util::future::select_all(sockets.iter_mut().map(|(socket, _)| socket.next()));
        let (message, which) = tokio::select! {
            (message, which, _) = next => (message, which),
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Some(Ok(message)) = message else { panic!("a socket closed") };
        if let Message::Binary(frame) = message {
            last_frame = Instant::now();
            sockets[which].1.apply(&frame);
        }
    }
}
