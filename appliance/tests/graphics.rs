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

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::acceptance::{Socket, started_session, type_text};
use crate::picture::{Viewer, attach, psnr, settle};
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
    let mut sockets = [(&mut decoding, &mut decoded), (&mut pixels, &mut painted)];
    settle(&mut sockets, 1, Duration::from_secs(2), Duration::from_secs(60)).await;
    decoded.pixels_after_video = 0;
    // Scroll the terminal (the pointer over it gives it the keyboard): a
    // burst of changing frames, then stillness.
    point_at_terminal(&mut decoding).await;
    for _ in 0..3 {
        type_text(&mut decoding, "ls -la /usr/bin\n").await;
    }
    let mut sockets = [(&mut decoding, &mut decoded), (&mut pixels, &mut painted)];
    settle(&mut sockets, 4, Duration::from_secs(3), Duration::from_secs(60)).await;
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
    let mut sockets = [(&mut again, &mut rejoined), (&mut pixels, &mut painted)];
    settle(&mut sockets, 1, Duration::from_secs(3), Duration::from_secs(60)).await;
    assert_eq!(rejoined.first_unit_was_key, Some(true), "after a takeover too");
    let similarity = psnr(&rejoined.canvas, &painted.canvas);
    eprintln!("PSNR after the takeover: {similarity:.1} dB");
    assert!(similarity >= MIN_PSNR_DB, "the new controller's picture differs: {similarity:.1} dB");

    json_of(app.send(Method::POST, &format!("/api/v1/sessions/{session}/terminate"), Some(&admin), None).await, 200)
        .await;
    app.stop().await.expect("clean stop");
}
