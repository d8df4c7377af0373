//! The appliance's own H.264 stream for a host that sends none (here the
//! scripted `video.scripted` desktop, whose key presses play two seconds
//! of a moving picture in `MOVIE`): a viewer that decodes H.264 gets the
//! moving region as access units encoded once by the appliance, a pixel
//! viewer of the same session gets every frame as pixels, and once the
//! picture is still both show exactly the same desktop.

use std::time::Duration;

use futures_util::SinkExt;
use rap_appliance::worker::scripted::{MOVIE, MOVIE_FRAMES, movie_frame};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::{Live, live};
use crate::picture::{Viewer, attach, luma_psnr, settle};

/// The moving picture as the H.264 viewer last saw it, against the frame
/// of the movie it shows, in luma PSNR (a 320×240 region at the bit rate its area gets).
/// Smooth but busy content: every pixel changes every frame.
const MIN_MOVING_PSNR_DB: f64 = 35.0;

async fn press_a_key(socket: &mut crate::acceptance::Socket) {
    for down in [true, false] {
        let key = json!({"type": "input.key", "payload": {"code": "KeyA", "down": down}});
        socket.send(Message::text(key.to_string())).await.expect("send");
    }
}

/// The pixels of `region` in an RGBA canvas `width` pixels wide.
fn cut(canvas: &[u8], width: usize, region: rap_appliance::protocol::frame::Rect) -> Vec<u8> {
    let (x, y) = (usize::from(region.x), usize::from(region.y));
    (y..y + usize::from(region.height))
        .flat_map(|row| {
            let start = (row * width + x) * 4;
            canvas[start..start + usize::from(region.width) * 4].iter().copied()
        })
        .collect()
}

async fn shadow_token(live: &Live, session: &str) -> String {
    live.command(session, "shadow").await["attach"]["attach_token"].as_str().expect("token").to_owned()
}

// Several threads: the test's own decoding must not starve the appliance
// it runs beside (a frame rate is a benchmark's business, not a test's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_region_is_encoded_once_for_h264_viewers_and_comes_back_lossless() {
    let live = live(&[]).await;
    let (session, token) = live.start("video.scripted", (640, 480)).await;
    let (mut decoding, attached) = attach(&live.app.addr, &token, json!({"codecs": ["h264"]})).await;
    assert_eq!(attached["codecs"], json!(["h264"]), "{attached}");
    let mut decoded = Viewer::new(&attached);
    live.wait_state(&session, "active").await;
    let (mut pixels, attached) = attach(&live.app.addr, &shadow_token(&live, &session).await, json!({})).await;
    let mut painted = Viewer::new(&attached);
    let quiet = Duration::from_millis(800);
    settle(&mut [(&mut decoding, &mut decoded), (&mut pixels, &mut painted)], 0, quiet, Duration::from_secs(10)).await;
    assert_eq!(decoded.units, 0, "a still desktop is never encoded");

    press_a_key(&mut decoding).await;
    // A second H.264 viewer joins while the picture moves.
    let mut sockets = [(&mut decoding, &mut decoded), (&mut pixels, &mut painted)];
    settle(&mut sockets, 10, Duration::ZERO, Duration::from_secs(20)).await;
    let (mut late, attached) =
        attach(&live.app.addr, &shadow_token(&live, &session).await, json!({"codecs": ["h264"]})).await;
    let mut joined = Viewer::new(&attached);
    let mut sockets = [(&mut decoding, &mut decoded), (&mut pixels, &mut painted), (&mut late, &mut joined)];
    settle(&mut sockets, 12, quiet, Duration::from_secs(30)).await;

    eprintln!(
        "h264 viewer: {} units ({} key), {} bytes of video, {} of pixels; late viewer: {} units; pixel viewer: {} bytes",
        decoded.units, decoded.key_frames, decoded.video_bytes, decoded.pixel_bytes, joined.units, painted.pixel_bytes
    );
    assert_eq!(decoded.first_unit_was_key, Some(true), "the stream starts at a key frame");
    assert!(decoded.units >= 12, "60 frames in 2 s came as {} units", decoded.units);
    assert_eq!(joined.first_unit_was_key, Some(true), "a viewer joining mid-stream starts at a key frame");
    assert_eq!(painted.units, 0, "the pixel viewer gets pixels only");
    assert!(
        decoded.video_bytes * 4 < painted.pixel_bytes,
        "the moving picture cost {} bytes as video, {} as pixels",
        decoded.video_bytes,
        painted.pixel_bytes
    );
    let moving = decoded.before_refinement.as_ref().expect("the still region came again as pixels");
    let moving = cut(moving, decoded.width, MOVIE);
    let similarity = (1..=MOVIE_FRAMES).map(|frame| luma_psnr(&moving, &movie_frame(frame))).fold(0.0, f64::max);
    eprintln!("luma PSNR of the last encoded frame: {similarity:.1} dB");
    assert!(similarity >= MIN_MOVING_PSNR_DB, "the moving picture was {similarity:.1} dB");
    assert!(painted.canvas != vec![0; painted.canvas.len()], "the desktop is drawn");
    assert!(decoded.canvas == painted.canvas, "once still, the H.264 viewer's picture is lossless");
    assert!(joined.canvas == painted.canvas, "and the late viewer's");

    // The metric counts the units sent to both H.264 viewers.
    let metrics = live.app.get("/metrics").await.text().await.expect("metrics");
    let count = |name: &str| -> f64 {
        let line = metrics.lines().find_map(|line| line.strip_prefix(name)).expect(name);
        line.trim().parse().expect("a count")
    };
    let encoded = count("rap_video_frames_encoded_total ");
    assert!(encoded >= decoded.units as f64, "{encoded} frames encoded for {} units", decoded.units);
    assert!(count("rap_video_units_sent_total ") >= (decoded.units + joined.units) as f64);
    // Encoded once for both viewers (twice would be about 120 frames).
    assert!(encoded <= 70.0, "{encoded} frames encoded for a 60-frame picture");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn nothing_is_encoded_while_no_viewer_decodes_h264() {
    let live = live(&[]).await;
    let (session, token) = live.start("video.scripted", (640, 480)).await;
    let (mut socket, attached) = attach(&live.app.addr, &token, json!({})).await;
    assert_eq!(attached.get("codecs").unwrap_or(&Value::Null), &Value::Null, "{attached}");
    let mut painted = Viewer::new(&attached);
    live.wait_state(&session, "active").await;
    press_a_key(&mut socket).await;
    let within = Duration::from_secs(20);
    settle(&mut [(&mut socket, &mut painted)], 0, Duration::from_millis(1500), within).await;
    assert_eq!(painted.units, 0);
    let metrics = live.app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.lines().any(|line| line == "rap_video_frames_encoded_total 0"), "{metrics}");
    assert!(metrics.lines().any(|line| line == "rap_video_units_sent_total 0"), "{metrics}");
    live.app.stop().await.expect("clean stop");
}
