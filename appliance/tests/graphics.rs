//! The graphics pipeline against a real host that speaks it: FreeRDP's
//! shadow server on a virtual display, encoding H.264 with libx264, set up
//! by `.ci/run` (`testing/shadow-setup.sh`), which sets
//! `RAP_ACCEPTANCE_SHADOW` to `host:port`. Without it the tests say so and
//! do nothing.
//!
//! A viewer that attaches with `"codecs": ["h264"]` gets the host's access
//! units and decodes them itself (OpenH264 here); a pixel viewer of the
//! same session gets the appliance's decode of the same stream. Once the
//! desktop is still, the two pictures must match: PSNR at least
//! [`MIN_PSNR_DB`] over the whole screen. Both decode one stream with one
//! decoder, so anything less is a passthrough bug (a unit lost, painted
//! out of order or outside its regions), not codec loss.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ironrdp_egfx::decode::{H264Decoder, OpenH264Decoder};
use rap_appliance::protocol::frame::{Encoding, FrameHeader, HEADER_LEN, Rect, inflate};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::acceptance::{Socket, started_session, type_text};
use crate::support::json_of;

const MIN_PSNR_DB: f64 = 40.0;

fn shadow_spec() -> Option<(String, u16)> {
    let Ok(spec) = std::env::var("RAP_ACCEPTANCE_SHADOW") else {
        eprintln!("RAP_ACCEPTANCE_SHADOW is not set: the graphics pipeline tests run in .ci/run");
        return None;
    };
    let (host, port) = spec.rsplit_once(':').expect("RAP_ACCEPTANCE_SHADOW is host:port");
    Some((host.to_owned(), port.parse().expect("port")))
}

/// Attaches over `binary_v1` with `extra` added to the attach payload;
/// the socket and its `session.attached` payload.
async fn attach(addr: &std::net::SocketAddr, token: &str, extra: Value) -> (Socket, Value) {
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
struct Viewer {
    width: usize,
    height: usize,
    canvas: Vec<u8>,
    decoder: OpenH264Decoder,
    /// The last decoded picture, RGBA, with its rectangle.
    picture: Option<(Rect, usize, Vec<u8>)>,
    units: usize,
    key_frames: usize,
    first_unit_was_key: Option<bool>,
    video_bytes: usize,
    pixel_bytes: usize,
    /// Pixel rectangles that came once the stream had started.
    pixels_after_video: usize,
}

impl Viewer {
    fn new(attached: &Value) -> Self {
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

    fn apply(&mut self, frame: &[u8]) {
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
                let expected = rect.area() as usize * 4;
                let pixels = if header.encoding == Encoding::ZlibRgba8 {
                    inflate(payload, expected).expect("a zlib payload of its rectangle")
                } else {
                    payload.to_vec()
                };
                self.blit(rect, (rect.x, rect.y), &pixels, usize::from(rect.width));
            }
            Encoding::H264 => {
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
fn psnr(a: &[u8], b: &[u8]) -> f64 {
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

/// Reads both sockets into their viewers until neither has had a frame
/// for `quiet` (after at least `min_units` access units reached the H.264
/// viewer), or `within` passes.
async fn settle(sockets: [(&mut Socket, &mut Viewer); 2], min_units: usize, quiet: Duration, within: Duration) {
    let deadline = Instant::now() + within;
    let [(a, viewer_a), (b, viewer_b)] = sockets;
    let mut last_frame = Instant::now();
    loop {
        let units = viewer_a.units.max(viewer_b.units);
        if units >= min_units && last_frame.elapsed() >= quiet {
            return;
        }
        assert!(Instant::now() < deadline, "the desktop never settled ({units} units so far)");
        let message = tokio::select! {
            message = a.next() => message.map(|message| (0, message)),
            message = b.next() => message.map(|message| (1, message)),
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Some((which, Ok(message))) = message else { panic!("a socket closed") };
        if let Message::Binary(frame) = message {
            last_frame = Instant::now();
            if which == 0 { viewer_a.apply(&frame) } else { viewer_b.apply(&frame) }
        }
    }
}

/// The shadow server's display has no window manager: the keyboard goes
/// to the window under the pointer, the terminal near the top left.
async fn point_at_terminal(socket: &mut Socket) {
    let mouse = json!({"type": "input.mouse", "payload": {"x": 100, "y": 100, "buttons": 0}});
    socket.send(Message::text(mouse.to_string())).await.expect("send");
}

#[tokio::test]
async fn the_hosts_h264_reaches_a_decoding_viewer_as_the_picture_the_pixel_viewer_gets() {
    let Some((host, port)) = shadow_spec() else { return };
    // The shadow server asks for no login (`-auth`); the appliance still
    // needs a credential to hold.
    let (app, admin, session, started) = started_session(&host, port, ("rap", "unused"), json!({}), (1024, 768)).await;
    let token = started["attach"]["attach_token"].as_str().expect("token");
    let (mut decoding, attached) = attach(&app.addr, token, json!({"codecs": ["h264", "av1"]})).await;
    assert_eq!(attached["codecs"], json!(["h264"]), "the appliance says what it will send");
    let shadow =
        json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/shadow"), Some(&admin), None).await, 200)
            .await;
    let shadow_token = shadow["attach"]["attach_token"].as_str().expect("token");
    let (mut pixels, pixel_attached) = attach(&app.addr, shadow_token, json!({"compression": "zlib"})).await;
    assert!(pixel_attached.get("codecs").is_none(), "a viewer that did not ask gets no H.264");
    let mut decoded = Viewer::new(&attached);
    let mut painted = Viewer::new(&pixel_attached);

    // The first pictures of the connection (the host may clear its
    // surface by other means than H.264 first), then nothing but typing.
    let sockets = [(&mut decoding, &mut decoded), (&mut pixels, &mut painted)];
    settle(sockets, 1, Duration::from_secs(2), Duration::from_secs(60)).await;
    decoded.pixels_after_video = 0;
    // Scroll the terminal (the pointer over it gives it the keyboard): a
    // burst of changing frames, then stillness.
    point_at_terminal(&mut decoding).await;
    for _ in 0..3 {
        type_text(&mut decoding, "ls -la /usr/bin\n").await;
    }
    let sockets = [(&mut decoding, &mut decoded), (&mut pixels, &mut painted)];
    settle(sockets, 4, Duration::from_secs(3), Duration::from_secs(60)).await;
    eprintln!(
        "h264 viewer: {} units ({} key), {} bytes of video, {} of pixels; pixel viewer: {} bytes",
        decoded.units, decoded.key_frames, decoded.video_bytes, decoded.pixel_bytes, painted.pixel_bytes
    );
    assert_eq!(decoded.first_unit_was_key, Some(true), "a decoder starts at a key frame");
    assert!(decoded.units >= 4, "the scrolling came as H.264");
    assert_eq!(painted.units, 0);
    // The shadow server sends every change as H.264: once in step, the
    // decoding viewer gets no pixels at all.
    assert_eq!(decoded.pixels_after_video, 0, "pixels were sent beside the video that painted them");
    assert!(painted.canvas.chunks_exact(4).any(|pixel| pixel[..3] != [0, 0, 0]), "the desktop is drawn");
    let similarity = psnr(&decoded.canvas, &painted.canvas);
    eprintln!("PSNR between the two viewers: {similarity:.1} dB");
    assert!(similarity >= MIN_PSNR_DB, "the H.264 viewer's picture differs: {similarity:.1} dB");

    // A takeover's new socket joins the stream at a key frame too.
    let taken =
        json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/takeover"), Some(&admin), None).await, 200)
            .await;
    let (mut again, attached_again) =
        attach(&app.addr, taken["attach"]["attach_token"].as_str().expect("token"), json!({"codecs": ["h264"]})).await;
    let mut rejoined = Viewer::new(&attached_again);
    point_at_terminal(&mut again).await;
    type_text(&mut again, "ls /\n").await;
    let sockets = [(&mut again, &mut rejoined), (&mut pixels, &mut painted)];
    settle(sockets, 1, Duration::from_secs(3), Duration::from_secs(60)).await;
    assert_eq!(rejoined.first_unit_was_key, Some(true), "after a takeover too");
    let similarity = psnr(&rejoined.canvas, &painted.canvas);
    eprintln!("PSNR after the takeover: {similarity:.1} dB");
    assert!(similarity >= MIN_PSNR_DB, "the new controller's picture differs: {similarity:.1} dB");

    json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/terminate"), Some(&admin), None).await, 200)
        .await;
    app.stop().await.expect("clean stop");
}
