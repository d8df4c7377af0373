//! The live plane through a real WebSocket client on 127.0.0.1.

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use rap_appliance::protocol::frame::{ColorMode, FrameHeader, HEADER_LEN, Rect, luma};
use rap_appliance::worker::scripted::pattern_pixel;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{OWNER_EMAIL, OWNER_PASSWORD, TestApp, assert_envelope, json_of, legacy_app_with_owner};
use crate::tenancy::id;

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Live {
    pub(crate) app: TestApp,
    pub(crate) admin: String,
    pub(crate) org: String,
}

pub(crate) async fn live(settings: &[(&str, &str)]) -> Live {
    live_on(legacy_app_with_owner(settings).await).await
}

/// The owner of `app` (bootstrapped already) signed in.
pub(crate) async fn live_on(app: TestApp) -> Live {
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    Live { app, admin, org }
}

impl Live {
    /// Starts a session on a scripted host and returns (session id, attach token).
    pub(crate) async fn start(&self, host: &str, size: (u16, u16)) -> (String, String) {
        let body = json!({"organization_id": self.org, "name": host, "protocol": "rdp", "host": host});
        let resource = id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await);
        let body = json!({"resource_id": resource, "width": size.0, "height": size.1});
        let started = json_of(self.app.post("/api/v1/sessions", Some(&self.admin), body).await, 201).await;
        (id(&started["session"]), started["attach"]["attach_token"].as_str().expect("token").to_owned())
    }

    pub(crate) async fn command(&self, session: &str, command: &str) -> Value {
        json_of(
            self.app
                .send(Method::POST, &format!("/api/v1/sessions/{session}/{command}"), Some(&self.admin), None)
                .await,
            200,
        )
        .await
    }

    pub(crate) async fn connect(&self) -> Socket {
        connect_ws(&self.app, "/api/v1/gateway/ws").await
    }

    pub(crate) async fn attach(&self, token: &str, transport: &str, color_mode: &str) -> (Socket, Value) {
        self.attach_with(token, json!({"render_transport": transport, "color_mode": color_mode})).await
    }

    pub(crate) async fn attach_with(&self, token: &str, options: Value) -> (Socket, Value) {
        let mut socket = self.connect().await;
        let mut payload = options;
        payload["attach_token"] = json!(token);
        let attach = json!({"type": "attach", "payload": payload});
        socket.send(Message::text(attach.to_string())).await.expect("send");
        let attached = next_json(&mut socket).await;
        assert_eq!(attached["type"], "session.attached", "{attached}");
        (socket, attached)
    }

    /// A socket attached through `command` (`attach`, `takeover`, `shadow`)
    /// with `binary_v1` frames in `color_mode`, and its `session.attached`.
    pub(crate) async fn attach_by(&self, session: &str, command: &str, color_mode: &str) -> (Socket, Value) {
        let offered = self.command(session, command).await;
        self.attach(offered["attach"]["attach_token"].as_str().expect("token"), "binary_v1", color_mode).await
    }

    pub(crate) async fn wait_state(&self, session: &str, state: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let current =
                json_of(self.app.get_as(&format!("/api/v1/sessions/{session}"), &self.admin).await, 200).await;
            if current["state"] == state {
                return;
            }
            assert!(Instant::now() < deadline, "never {state}: {current}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A WebSocket to `path`, over TLS trusting only the appliance's CA when
/// it serves TLS.
pub(crate) async fn connect_ws(app: &TestApp, path: &str) -> Socket {
    let url = app.ws_url(path);
    let connector = app.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector).await.expect("connect").0
}

/// The next message that is not a ping or pong, waiting at most [`WAIT`].
pub(crate) async fn next_message(socket: &mut Socket) -> Message {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("valid");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub(crate) async fn next_json(socket: &mut Socket) -> Value {
    match next_message(socket).await {
        Message::Text(text) => serde_json::from_str(&text).expect("json"),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until the server closes `socket`, and returns the close code.
pub(crate) async fn closed_with(socket: &mut Socket) -> u16 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) => panic!("a close frame with a code"),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("the socket failed instead of closing: {error}"),
            None => panic!("the socket ended without a close frame"),
        }
    }
}

/// Reads until a JSON message of `kind`, skipping frames and others.
pub(crate) async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {kind} message in time");
        if let Message::Text(text) = next_message(socket).await {
            let value: Value = serde_json::from_str(&text).expect("json");
            if value["type"] == kind {
                return value;
            }
        }
    }
}

/// One decoded rectangle of a render update.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) rect: Rect,
    pub(crate) color_mode: ColorMode,
    pub(crate) last: bool,
    pub(crate) pixels: Vec<u8>,
}

pub(crate) async fn next_frame(socket: &mut Socket) -> Frame {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no frame in time");
        match next_message(socket).await {
            Message::Binary(bytes) => {
                let header = FrameHeader::read(&bytes).expect("binary_v1 header");
                assert_eq!(bytes.len(), HEADER_LEN + header.payload_len as usize, "payload length matches the header");
                let payload = &bytes[HEADER_LEN..];
                let pixels = if header.encoding.is_compressed() { inflate(payload) } else { payload.to_vec() };
                return Frame { rect: header.rect, color_mode: header.color_mode, last: header.last, pixels };
            }
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value["type"] != "render.frame" {
                    continue;
                }
                let payload = &value["payload"];
                let number = |key: &str| payload[key].as_u64().expect("number") as u16;
                let color_mode =
                    if payload["color_mode"] == "grayscale" { ColorMode::Grayscale } else { ColorMode::FullColor };
                let encoding = payload["encoding"].as_str().expect("encoding");
                let pixel_format = if color_mode == ColorMode::Grayscale { "gray8" } else { "rgba8" };
                assert!(encoding.ends_with(pixel_format), "{encoding} for {color_mode:?}");
                let data = base64::engine::general_purpose::STANDARD
                    .decode(payload["data"].as_str().expect("data"))
                    .expect("base64");
                return Frame {
                    rect: Rect::new(number("x"), number("y"), number("width"), number("height")),
                    color_mode,
                    last: payload["last"] == true,
                    pixels: if encoding.starts_with("zlib_") { inflate(&data) } else { data },
                };
            }
            _ => {}
        }
    }
}

fn inflate(compressed: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut pixels = Vec::new();
    flate2::read::ZlibDecoder::new(compressed).read_to_end(&mut pixels).expect("a zlib stream");
    pixels
}

/// The scripted desktop's pixels for `rect`, as the viewer should see them.
fn expected(rect: Rect, color_mode: ColorMode) -> Vec<u8> {
    let mut out = Vec::new();
    for y in rect.y..rect.y + rect.height {
        for x in rect.x..rect.x + rect.width {
            let [r, g, b, a] = pattern_pixel(x, y);
            match color_mode {
                ColorMode::FullColor => out.extend_from_slice(&[r, g, b, a]),
                ColorMode::Grayscale => out.push(luma(r, g, b)),
            }
        }
    }
    out
}

#[tokio::test]
async fn the_first_frame_is_the_whole_screen_bit_exact_in_every_transport_and_mode() {
    let live = live(&[]).await;
    for (transport, color_mode, mode) in [
        ("json_base64", "full_color", ColorMode::FullColor),
        ("binary_v1", "full_color", ColorMode::FullColor),
        ("binary_v1", "grayscale", ColorMode::Grayscale),
        ("json_base64", "grayscale", ColorMode::Grayscale),
    ] {
        let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
        let (mut socket, attached) = live.attach(&token, transport, color_mode).await;
        assert_eq!(attached["payload"]["session_id"], session);
        assert_eq!(attached["payload"]["role"], "controller");
        assert_eq!(
            (attached["payload"]["width"].as_u64(), attached["payload"]["height"].as_u64()),
            (Some(320), Some(200))
        );
        let state = next_json(&mut socket).await;
        assert_eq!(state["type"], "session.state");
        let frame = next_frame(&mut socket).await;
        assert_eq!(frame.rect, Rect::new(0, 0, 320, 200), "{transport} {color_mode}");
        assert!(frame.last);
        assert_eq!(frame.color_mode, mode);
        assert!(frame.pixels == expected(frame.rect, mode), "{transport} {color_mode}: pixels differ");
        live.command(&session, "terminate").await;
    }
    for (transport, color_mode, mode) in
        [("binary_v1", "full_color", ColorMode::FullColor), ("json_base64", "grayscale", ColorMode::Grayscale)]
    {
        let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
        let options = json!({"render_transport": transport, "color_mode": color_mode, "compression": "zlib"});
        let (mut socket, attached) = live.attach_with(&token, options).await;
        assert_eq!(attached["payload"]["compression"], "zlib");
        let frame = next_frame(&mut socket).await;
        assert!(frame.pixels == expected(frame.rect, mode), "zlib {transport} {color_mode}: pixels differ");
        live.command(&session, "terminate").await;
    }
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn bad_and_reused_tokens_are_refused() {
    let live = live(&[]).await;
    let (_, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (first, _) = live.attach(&token, "binary_v1", "full_color").await;
    drop(first);
    for attempt in [token.as_str(), "not-a-token"] {
        let mut socket = live.connect().await;
        let attach = json!({"type": "attach", "payload": {"attach_token": attempt}});
        socket.send(Message::text(attach.to_string())).await.expect("send");
        let error = next_json(&mut socket).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["event"]["code"], "unauthorized");
        assert_eq!(error["event"]["message_key"], "error.unauthorized");
        assert_eq!(error["event"]["details"]["reason"], "attach_token_invalid");
        assert!(error["event"]["trace_id"].as_str().is_some_and(|trace| !trace.is_empty()));
        match next_message(&mut socket).await {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4401),
            other => panic!("expected close, got {other:?}"),
        }
    }
    // Something other than attach first.
    let mut socket = live.connect().await;
    socket.send(Message::text(json!({"type": "ping"}).to_string())).await.expect("send");
    assert_eq!(next_json(&mut socket).await["event"]["code"], "invalid_request");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn controller_input_reaches_the_desktop_and_comes_back_as_damage() {
    let live = live(&[]).await;
    let (_, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut socket, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut socket).await;
    let click = json!({"type": "input.mouse", "payload": {"x": 100, "y": 50, "buttons": 1}});
    socket.send(Message::text(click.to_string())).await.expect("send");
    let frame = next_frame(&mut socket).await;
    assert_eq!(frame.rect, Rect::new(100, 50, 8, 8), "only the damaged square is sent");
    assert!(frame.pixels.chunks_exact(4).all(|pixel| pixel == [255, 255, 255, 255]));

    // A message without fields, as the seed's clients send it: payload
    // omitted, empty or null.
    for ping in
        [json!({"type": "ping"}), json!({"type": "ping", "payload": {}}), json!({"type": "ping", "payload": null})]
    {
        socket.send(Message::text(ping.to_string())).await.expect("send");
        assert_eq!(next_of(&mut socket, "pong").await, json!({"type": "pong"}), "{ping}");
    }
    // Refusals name a stable reason and the field, in words, never serde's.
    let refusals = [
        (json!({"type": "input.mouse", "payload": {"x": "left", "y": 1, "buttons": 0}}), "invalid_value", "payload.x"),
        (json!({"type": "input.mouse", "payload": {"x": 1, "y": 1}}), "field_missing", "payload.buttons"),
        (json!({"type": "input.key", "payload": {"down": true, "shift": true}}), "field_unknown", "payload.shift"),
        (json!({"type": "ping", "payload": {"at": 1}}), "field_unknown", "payload.at"),
        (json!({"type": "teleport", "payload": {}}), "unknown_message_type", "type"),
    ];
    for (message, reason, field) in refusals {
        socket.send(Message::text(message.to_string())).await.expect("send");
        let error = next_of(&mut socket, "error").await;
        assert_eq!(error["event"]["code"], "invalid_request", "{message}");
        let details = &error["event"]["details"];
        assert_eq!((details["reason"].as_str(), details["field"].as_str()), (Some(reason), Some(field)), "{error}");
        let words = details["message"].as_str().expect("words");
        assert!(!words.contains("u16") && !words.contains("line ") && !words.contains('`'), "{words}");
    }
    socket.send(Message::text("not json")).await.expect("send");
    assert_eq!(next_of(&mut socket, "error").await["event"]["details"]["reason"], "invalid_json");
    // The socket survived every refusal.
    socket.send(Message::text(json!({"type": "ping"}).to_string())).await.expect("send");
    assert_eq!(next_of(&mut socket, "pong").await, json!({"type": "pong"}));
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn takeover_tells_the_old_controller_and_takes_its_input() {
    let live = live(&[]).await;
    let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut old, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut old).await;

    // The first frame can arrive before the broker records `active`.
    live.wait_state(&session, "active").await;
    let (mut new, attached) = live.attach_by(&session, "takeover", "full_color").await;
    assert_eq!(attached["payload"]["role"], "controller");
    let notice = next_of(&mut old, "session.taken_over").await;
    assert_eq!(notice["event"]["code"], "session_taken_over");
    assert_eq!(notice["event"]["message_key"], "event.session_taken_over");
    assert!(notice["event"]["fallback_message"].as_str().is_some_and(|text| !text.is_empty()));
    // The device that lost control does not keep watching: it is closed.
    assert_eq!(closed_with(&mut old).await, 4411);

    let click = json!({"type": "input.mouse", "payload": {"x": 10, "y": 10, "buttons": 0}});
    next_frame(&mut new).await;
    new.send(Message::text(click.to_string())).await.expect("send");
    assert_eq!(next_frame(&mut new).await.rect, Rect::new(10, 10, 8, 8), "the new controller's input arrives");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_dropped_socket_detaches_and_a_reattach_resumes_with_a_full_frame() {
    let live = live(&[]).await;
    let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut socket, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut socket).await;
    let click = json!({"type": "input.mouse", "payload": {"x": 30, "y": 40, "buttons": 1}});
    socket.send(Message::text(click.to_string())).await.expect("send");
    next_frame(&mut socket).await;
    socket.close(None).await.expect("close");
    drop(socket);
    live.wait_state(&session, "detached").await;

    let (mut again, _) = live.attach_by(&session, "attach", "full_color").await;
    let frame = next_frame(&mut again).await;
    assert_eq!(frame.rect, Rect::new(0, 0, 320, 200), "a reattached viewer starts from the whole screen");
    let mark = |x: usize, y: usize| &frame.pixels[(y * 320 + x) * 4..(y * 320 + x) * 4 + 4];
    assert_eq!(mark(30, 40), [255, 255, 255, 255], "the desktop kept its state while detached");
    assert_eq!(mark(0, 199), pattern_pixel(0, 199));
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_silent_transport_is_closed_and_its_session_detached() {
    let live = live(&[("RAP_GATEWAY_PING_INTERVAL", "150ms")]).await;
    let (session, token) = live.start("pc1.office.lan", (128, 128)).await;
    let (mut socket, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut socket).await;
    // Stop reading: no pongs go back, the server hears nothing.
    live.wait_state(&session, "detached").await;
    // The server closed it (code 4410). The client, reading the pings it
    // left unanswered, may fail to send its pongs before it reads the close
    // frame; either way the connection is over.
    let mut ended = false;
    while let Ok(next) = tokio::time::timeout(WAIT, socket.next()).await {
        match next {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.map(|frame| u16::from(frame.code)), Some(4410));
                ended = true;
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the silent socket was closed");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_terminated_session_ends_its_sockets_with_a_reason() {
    let live = live(&[]).await;
    let (session, token) = live.start("pc1.office.lan", (128, 128)).await;
    let (mut socket, _) = live.attach(&token, "json_base64", "full_color").await;
    next_frame(&mut socket).await;
    live.command(&session, "terminate").await;
    let state = loop {
        // An earlier `active` may still be on its way (the desktop came up
        // just as the socket attached).
        let state = next_of(&mut socket, "session.state").await;
        if state["payload"]["state"] != "active" {
            break state;
        }
    };
    assert_eq!(state["payload"]["state"], "terminated");
    assert_eq!(state["event"]["code"], "session_ended");
    let closed = next_of(&mut socket, "transport.closed").await;
    assert_eq!(closed["event"]["code"], "transport_closed");
    match next_message(&mut socket).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4409),
        other => panic!("expected close, got {other:?}"),
    }
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_slow_viewer_does_not_slow_a_fast_one() {
    let live = live(&[]).await;
    let (session, token) = live.start("animate.scripted", (640, 480)).await;
    // A shadow viewer that stops reading, and the controller.
    let (mut fast, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut fast).await;
    live.wait_state(&session, "active").await;
    let (mut slow, _) = live.attach_by(&session, "shadow", "full_color").await;
    next_frame(&mut slow).await;

    let started = Instant::now();
    let mut updates = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if next_frame(&mut fast).await.last {
            updates += 1;
        }
    }
    // The animation repaints every 10 ms; the fast viewer keeps up while
    // the slow one sits on unread frames.
    assert!(updates >= 30, "the fast viewer got only {updates} updates in a second");

    // The slow viewer is still attached and, reading again, gets frames.
    next_frame(&mut slow).await;
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_admin_can_watch_without_control_and_the_controller_sees_it() {
    let live = live(&[]).await;
    let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut controller, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut controller).await;

    live.wait_state(&session, "active").await;
    let shadow = live.command(&session, "shadow").await;
    assert_eq!(shadow["session"]["state"], "active", "watching changes nothing");
    let (mut viewer, attached) =
        live.attach(shadow["attach"]["attach_token"].as_str().expect("token"), "binary_v1", "grayscale").await;
    assert_eq!(attached["payload"]["role"], "viewer");
    let first = next_frame(&mut viewer).await;
    assert_eq!(first.rect, Rect::new(0, 0, 320, 200));
    assert!(first.pixels == expected(first.rect, ColorMode::Grayscale), "a viewer picks its own colour mode");
    let watched = next_of(&mut controller, "session.viewers").await;
    assert_eq!(watched["payload"]["count"], 1);

    // The viewer's input goes nowhere; the controller's shows on both.
    let click = json!({"type": "input.mouse", "payload": {"x": 5, "y": 5, "buttons": 1}});
    viewer.send(Message::text(click.to_string())).await.expect("send");
    assert_eq!(next_of(&mut viewer, "error").await["event"]["details"]["reason"], "not_controller");
    controller.send(Message::text(click.to_string())).await.expect("send");
    assert_eq!(next_frame(&mut controller).await.rect, Rect::new(5, 5, 8, 8));
    assert_eq!(next_frame(&mut viewer).await.rect, Rect::new(5, 5, 8, 8));

    viewer.close(None).await.expect("close");
    drop(viewer);
    let left = loop {
        let notice = next_of(&mut controller, "session.viewers").await;
        if notice["payload"]["count"] == 0 {
            break notice;
        }
    };
    assert_eq!(left["payload"]["viewers"], json!([]));
    // A plain member cannot shadow someone else's session.
    let staff_id = crate::support::create_user(&live.app, &live.admin, "staff@example.com", "staff password 1").await;
    let body = json!({"user_id": staff_id, "role": "org_member"});
    json_of(
        live.app.post(&format!("/api/v1/organizations/{}/memberships", live.org), Some(&live.admin), body).await,
        201,
    )
    .await;
    let staff = live.app.login("staff@example.com", "staff password 1").await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = live.app.send(Method::POST, &format!("/api/v1/sessions/{session}/shadow"), Some(&staff), None).await;
    crate::support::assert_envelope(response, 404, "session_not_found").await;
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn data_plane_tokens_open_the_direct_worker_endpoint_once() {
    let keys = tempfile::tempdir().expect("temp dir");
    let key_file = keys.path().join("data-plane.pem");
    let key_path = key_file.to_string_lossy().into_owned();
    let live = live(&[
        ("DATA_PLANE_TOKEN_PRIVATE_KEY_FILE", key_path.as_str()),
        ("DATA_PLANE_DIRECT_WORKER_WSS_URL_TEMPLATE", "wss://office.lan/api/v1/data-plane/workers/{worker_id}/ws"),
        ("DATA_PLANE_DIRECT_WORKER_JSON_RUNTIME", "true"),
        ("DATA_PLANE_DIRECT_WORKER_BINARY_RENDER", "true"),
        ("DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE", "platform_ca"),
    ])
    .await;
    assert!(key_file.is_file(), "development creates the configured key file");
    let body = json!({"organization_id": live.org, "name": "PC", "protocol": "rdp", "host": "pc1.office.lan"});
    let resource = id(&json_of(live.app.post("/api/v1/resources", Some(&live.admin), body).await, 201).await);
    let body = json!({"resource_id": resource, "width": 320, "height": 200});
    let started = json_of(live.app.post("/api/v1/sessions", Some(&live.admin), body).await, 201).await;
    let worker = started["session"]["worker_id"].as_str().expect("worker").to_owned();
    let offer = &started["data_plane"];
    assert!(offer["expires_at"].is_string());
    let candidates = offer["candidates"].as_array().expect("candidates");
    assert_eq!(candidates[0]["kind"], "backend_gateway");
    assert_eq!(candidates[0]["url"], "/api/v1/gateway/ws");
    assert_eq!(candidates[1]["kind"], "direct_worker_wss");
    assert_eq!(candidates[1]["url"], format!("wss://office.lan/api/v1/data-plane/workers/{worker}/ws"));
    assert_eq!(candidates[1]["render_transport"], "binary_v1");
    assert_eq!(candidates[1]["production_trusted"], true);
    let token = offer["token"].as_str().expect("token").to_owned();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "RS256");

    let direct = |worker: &str| format!("ws://{}/api/v1/data-plane/workers/{worker}/ws", live.app.addr);
    let attach =
        |token: &str| Message::text(json!({"type": "attach", "payload": {"data_plane_token": token}}).to_string());
    // Another worker's endpoint does not take it.
    let (mut wrong, _) =
        tokio_tungstenite::connect_async(direct(&uuid::Uuid::now_v7().to_string())).await.expect("connect");
    wrong.send(attach(&token)).await.expect("send");
    assert_eq!(next_json(&mut wrong).await["event"]["details"]["reason"], "data_plane_wrong_worker");

    let (mut socket, _) = tokio_tungstenite::connect_async(direct(&worker)).await.expect("connect");
    socket.send(attach(&token)).await.expect("send");
    let attached = next_json(&mut socket).await;
    assert_eq!(attached["type"], "session.attached");
    assert_eq!(attached["payload"]["role"], "controller");
    assert_eq!(attached["payload"]["render_transport"], "binary_v1", "binary by default at the direct endpoint");
    let frame = next_frame(&mut socket).await;
    assert!(frame.pixels == expected(frame.rect, ColorMode::FullColor));

    // Once only; and a forged token fails on its algorithm or signature.
    let (mut again, _) = tokio_tungstenite::connect_async(direct(&worker)).await.expect("connect");
    again.send(attach(&token)).await.expect("send");
    assert_eq!(next_json(&mut again).await["event"]["details"]["reason"], "data_plane_token_invalid");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    parts[2] = String::new();
    let (mut forged, _) = tokio_tungstenite::connect_async(direct(&worker)).await.expect("connect");
    forged.send(attach(&parts.join("."))).await.expect("send");
    assert_eq!(next_json(&mut forged).await["event"]["code"], "unauthorized");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn without_a_signing_key_there_is_no_data_plane_offer() {
    let live = live(&[]).await;
    let body = json!({"organization_id": live.org, "name": "PC", "protocol": "rdp", "host": "pc1.office.lan"});
    let resource = id(&json_of(live.app.post("/api/v1/resources", Some(&live.admin), body).await, 201).await);
    let started =
        json_of(live.app.post("/api/v1/sessions", Some(&live.admin), json!({"resource_id": resource})).await, 201)
            .await;
    assert!(started.get("data_plane").is_none(), "{started}");
    live.app.stop().await.expect("clean stop");
}

/// A session on a resource with `clipboard_mode`, its controller socket
/// past the first frame.
async fn clipboard_session(live: &Live, mode: &str) -> Socket {
    live.session_with_policy(json!({"clipboard_mode": mode})).await.0
}

impl Live {
    /// An active session on a resource with `policy`: its controller
    /// socket past the first frame, the session id, and `session.attached`.
    pub(crate) async fn session_with_policy(&self, policy: Value) -> (Socket, String, Value) {
        let body = json!({"organization_id": self.org, "name": format!("PC {policy}"), "protocol": "rdp",
            "host": "pc1.office.lan", "policy": policy});
        let resource = id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await);
        let body = json!({"resource_id": resource, "width": 128, "height": 128});
        let started = json_of(self.app.post("/api/v1/sessions", Some(&self.admin), body).await, 201).await;
        let session = id(&started["session"]);
        self.wait_state(&session, "active").await;
        let (mut socket, attached) =
            self.attach(started["attach"]["attach_token"].as_str().expect("token"), "binary_v1", "full_color").await;
        next_frame(&mut socket).await;
        (socket, session, attached)
    }
}

fn clipboard(text: &str, sequence_id: u64) -> Message {
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
    };
    Message::text(json!({"type": "clipboard.text", "payload": {"text": text, "sequence_id": sequence_id, "origin": "browser", "content_hash": hash}}).to_string())
}

/// Whether a `clipboard.text` arrives within a short wait.
async fn clipboard_arrives(socket: &mut Socket) -> Option<Value> {
    clipboard_or_error(socket, Duration::from_millis(400)).await
}

/// The next `clipboard.text` or `error` within `wait`, skipping frames.
pub(crate) async fn clipboard_or_error(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("json");
            if value["type"] == "clipboard.text" || value["type"] == "error" {
                return Some(value);
            }
        }
    }
    None
}

#[tokio::test]
async fn clipboard_text_crosses_only_where_the_policy_allows() {
    let live = live(&[]).await;

    let mut both = clipboard_session(&live, "bidirectional").await;
    both.send(clipboard("hello office", 1)).await.expect("send");
    let back = clipboard_arrives(&mut both).await.expect("the remote clipboard comes back");
    assert_eq!(back["type"], "clipboard.text");
    assert_eq!(back["payload"]["text"], "HELLO OFFICE");
    assert_eq!(back["payload"]["origin"], "server");
    assert_eq!(back["payload"]["sequence_id"], 1);
    assert_eq!(back["payload"]["content_hash"].as_str().map(str::len), Some(64));
    // Already upper case: the remote side echoes the same text, which is
    // this client's own and is not sent back to it.
    both.send(clipboard("SAME", 2)).await.expect("send");
    assert_eq!(clipboard_arrives(&mut both).await, None, "no feedback loop");
    let wrong_hash =
        json!({"type": "clipboard.text", "payload": {"text": "x", "sequence_id": 3, "content_hash": "00"}});
    both.send(Message::text(wrong_hash.to_string())).await.expect("send");
    assert_eq!(
        clipboard_arrives(&mut both).await.expect("error")["event"]["details"]["reason"],
        "content_hash_mismatch"
    );

    for mode in ["disabled", "server_to_client"] {
        let mut socket = clipboard_session(&live, mode).await;
        socket.send(clipboard("secret", 1)).await.expect("send");
        let refused = clipboard_arrives(&mut socket).await.expect("refusal");
        assert_eq!(refused["event"]["code"], "policy_denied", "{mode}");
        assert_eq!(refused["event"]["message_key"], "error.policy_denied");
    }

    // In, but nothing out.
    let mut inbound = clipboard_session(&live, "client_to_server").await;
    inbound.send(clipboard("to the server", 1)).await.expect("send");
    assert_eq!(clipboard_arrives(&mut inbound).await, None, "the remote clipboard stays in");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn every_viewer_is_told_when_the_desktop_changes_size() {
    let live = live(&[]).await;
    let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut controller, _) = live.attach(&token, "binary_v1", "full_color").await;
    next_frame(&mut controller).await;
    live.wait_state(&session, "active").await;
    let (mut viewer, _) = live.attach_by(&session, "shadow", "full_color").await;
    next_frame(&mut viewer).await;
    let resize = json!({"type": "display.resize", "payload": {"width": 200, "height": 100}});
    controller.send(Message::text(resize.to_string())).await.expect("send");
    for socket in [&mut controller, &mut viewer] {
        let size = next_of(socket, "display.size").await;
        assert_eq!((size["payload"]["width"].as_u64(), size["payload"]["height"].as_u64()), (Some(200), Some(100)));
        assert_eq!(next_frame(socket).await.rect, Rect::new(0, 0, 200, 100), "then the whole new screen");
    }
    live.app.stop().await.expect("clean stop");
}

/// Settings of an appliance that offers the direct worker endpoint, with
/// its key in `keys`.
pub(crate) fn direct_settings(
    keys: &tempfile::TempDir,
    json_runtime: &str,
    binary_render: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATA_PLANE_TOKEN_PRIVATE_KEY_FILE", keys.path().join("data-plane.pem").to_string_lossy().into_owned()),
        (
            "DATA_PLANE_DIRECT_WORKER_WSS_URL_TEMPLATE",
            "ws://office.lan/api/v1/data-plane/workers/{worker_id}/ws".into(),
        ),
        ("DATA_PLANE_DIRECT_WORKER_JSON_RUNTIME", json_runtime.into()),
        ("DATA_PLANE_DIRECT_WORKER_BINARY_RENDER", binary_render.into()),
    ]
}

impl Live {
    /// A session on `host` opened at the direct worker endpoint with the
    /// `data_plane` token of `answer` (a start, attach or takeover answer).
    async fn direct_attach(&self, answer: &Value, options: Value) -> (Socket, Value) {
        let worker = answer["session"]["worker_id"].as_str().expect("worker");
        let url = format!("ws://{}/api/v1/data-plane/workers/{worker}/ws", self.app.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        let mut payload = options;
        payload["data_plane_token"] = answer["data_plane"]["token"].clone();
        socket.send(Message::text(json!({"type": "attach", "payload": payload}).to_string())).await.expect("send");
        let attached = next_json(&mut socket).await;
        (socket, attached)
    }

    async fn start_answer(&self, host: &str) -> Value {
        let body = json!({"organization_id": self.org, "name": host, "protocol": "rdp", "host": host});
        let resource = id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await);
        let body = json!({"resource_id": resource, "width": 128, "height": 128});
        json_of(self.app.post("/api/v1/sessions", Some(&self.admin), body).await, 201).await
    }
}

#[tokio::test]
async fn the_direct_endpoint_obeys_its_flags() {
    // JSON runtime off: the candidate is shown but not data-capable, and
    // the endpoint does not serve.
    let keys = tempfile::tempdir().expect("temp dir");
    let settings = direct_settings(&keys, "false", "true");
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let first = live(&pairs).await;
    let answer = first.start_answer("pc1.office.lan").await;
    assert_eq!(answer["data_plane"]["candidates"][1]["data_capable"], false);
    let worker = answer["session"]["worker_id"].as_str().expect("worker");
    let url = format!("ws://{}/api/v1/data-plane/workers/{worker}/ws", first.app.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("the direct endpoint must refuse: {:?}", other.map(|_| ())),
    }
    first.app.stop().await.expect("clean stop");

    // Binary render off: JSON frames only, whatever the client asks.
    let settings = direct_settings(&keys, "true", "false");
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let live = live(&pairs).await;
    let answer = live.start_answer("pc1.office.lan").await;
    assert_eq!(answer["data_plane"]["candidates"][1]["render_transport"], "json_base64");
    let (mut socket, attached) = live.direct_attach(&answer, json!({"render_transport": "binary_v1"})).await;
    assert_eq!(attached["payload"]["render_transport"], "json_base64", "{attached}");
    let frame = next_of(&mut socket, "render.frame").await;
    assert_eq!(frame["payload"]["width"], 128);
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn in_production_smoke_insecure_direct_workers_are_neither_offered_nor_served() {
    // The key inline, as production takes it (no file is generated there).
    let pem = {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("key");
        key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem").to_string()
    };
    let secret = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let (app, admin) = crate::support::strict_app_with_owner(&[
        ("APP_ENV", "production"),
        ("SECRET_ENCRYPTION_KEY_B64", secret.as_str()),
        ("RAP_WORKER_RUNTIME", "rdp"),
        ("DATA_PLANE_TOKEN_PRIVATE_KEY_PEM", pem.as_str()),
        ("DATA_PLANE_DIRECT_WORKER_WSS_URL_TEMPLATE", "wss://office.lan/dp/{worker_id}/ws"),
        ("DATA_PLANE_DIRECT_WORKER_JSON_RUNTIME", "true"),
        ("DATA_PLANE_DIRECT_WORKER_BINARY_RENDER", "true"),
        ("DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE", "smoke_insecure"),
    ])
    .await;
    let me = json_of(app.get_as("/api/v1/auth/me", &admin).await, 200).await;
    let org = me["memberships"][0]["organization_id"].as_str().expect("org").to_owned();
    // An unreachable host: the answer (and its offer) comes before the connection fails.
    let body = json!({"organization_id": org, "name": "PC", "protocol": "rdp", "host": "127.0.0.1", "port": 9});
    let resource = id(&json_of(app.post("/api/v1/resources", Some(&admin), body).await, 201).await);
    let secret = json!({"username": "u", "password": "p"});
    json_of(
        app.send(Method::PUT, &format!("/api/v1/resources/{resource}/secret"), Some(&admin), Some(secret)).await,
        200,
    )
    .await;
    let answer = json_of(app.post("/api/v1/sessions", Some(&admin), json!({"resource_id": resource})).await, 201).await;
    let kinds: Vec<&str> = answer["data_plane"]["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|candidate| candidate["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["backend_gateway"], "{answer}");
    assert_eq!(answer["data_plane"]["token"].as_str().map(|token| token.split('.').count()), Some(3));
    let worker = answer["session"]["worker_id"].as_str().expect("worker");
    let refused = app.get(&format!("/api/v1/data-plane/workers/{worker}/ws")).await;
    let error = assert_envelope(refused, 404, "not_found").await;
    assert_eq!(error["details"]["reason"], "direct_worker_untrusted");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_direct_path_is_gated_by_the_session_lifecycle() {
    let keys = tempfile::tempdir().expect("temp dir");
    let settings = direct_settings(&keys, "true", "true");
    let mut pairs: Vec<(&str, &str)> = settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.push(("RAP_WORKER_LEASE_TTL", "1s"));
    let live = live(&pairs).await;

    // Detached: file requests on the direct socket are blocked.
    let answer = live.start_answer("pc1.office.lan").await;
    let session = id(&answer["session"]);
    let (mut socket, attached) = live.direct_attach(&answer, json!({})).await;
    assert_eq!(attached["payload"]["role"], "controller");
    next_frame(&mut socket).await;
    live.wait_state(&session, "active").await;
    live.command(&session, "detach").await;
    let start =
        json!({"type": "file_download.start", "payload": {"transfer_id": uuid::Uuid::new_v4(), "file_name": "a.txt"}});
    socket.send(Message::text(start.to_string())).await.expect("send");
    let blocked = next_of(&mut socket, "file_download.blocked").await;
    assert_eq!(blocked["payload"]["reason"], "not_controller", "{blocked}");

    // Taken over: the old direct controller is told, and closed.
    let resumed = live.command(&session, "attach").await;
    let (mut controller, attached) = live.direct_attach(&resumed, json!({})).await;
    assert_eq!(attached["payload"]["role"], "controller", "{attached}");
    next_frame(&mut controller).await;
    let taken = live.command(&session, "takeover").await;
    let (_new, _) = live.direct_attach(&taken, json!({})).await;
    let notice = next_of(&mut controller, "session.taken_over").await;
    assert_eq!(notice["event"]["code"], "session_taken_over");
    assert_eq!(closed_with(&mut controller).await, 4411);
    // A shadow answer carries an offer too, for a read-only viewer.
    let shadow = live.command(&session, "shadow").await;
    let (mut watching, attached) = live.direct_attach(&shadow, json!({})).await;
    assert_eq!(attached["payload"]["role"], "viewer", "{attached}");
    let click = json!({"type": "input.mouse", "payload": {"x": 1, "y": 1, "buttons": 0}});
    watching.send(Message::text(click.to_string())).await.expect("send");
    assert_eq!(next_of(&mut watching, "error").await["event"]["details"]["reason"], "not_controller");

    // A worker failure: the session is failed first, then the transport closes.
    let answer = live.start_answer("freeze.scripted").await;
    let session = id(&answer["session"]);
    let (mut frozen, _) = live.direct_attach(&answer, json!({})).await;
    let state = loop {
        // `starting` and `active` come first (the lease runs out a second later).
        let state = next_of(&mut frozen, "session.state").await;
        if !matches!(state["payload"]["state"].as_str(), Some("starting" | "active")) {
            break state;
        }
    };
    assert_eq!(state["payload"]["state"], "failed", "{state}");
    assert_eq!(state["event"]["details"]["reason"], "worker_lost");
    let stored = json_of(live.app.get_as(&format!("/api/v1/sessions/{session}"), &live.admin).await, 200).await;
    assert_eq!(stored["state"], "failed", "failed in the database before the transport closes");
    assert_eq!(next_of(&mut frozen, "transport.closed").await["payload"]["reason"], "session_failed");
    loop {
        match next_message(&mut frozen).await {
            Message::Close(Some(frame)) => break assert_eq!(u16::from(frame.code), 4409),
            Message::Close(None) => panic!("a close frame with a code"),
            _ => {}
        }
    }
    live.app.stop().await.expect("clean stop");
}

/// Clipboard text and files cross only while the session is `active`: a
/// controller that sees the desktop while it is still `starting` is refused
/// with `not_active`, and the same socket succeeds once it is active.
#[tokio::test]
async fn clipboard_and_files_are_refused_until_the_session_is_active() {
    let live = live(&[]).await;
    let body = json!({"organization_id": live.org, "name": "Stalling", "protocol": "rdp", "host": "stall.scripted",
        "policy": {"clipboard_mode": "bidirectional", "file_transfer_mode": "bidirectional"}});
    let resource = id(&json_of(live.app.post("/api/v1/resources", Some(&live.admin), body).await, 201).await);
    let started = json_of(
        live.app
            .post("/api/v1/sessions", Some(&live.admin), json!({"resource_id": resource, "width": 128, "height": 128}))
            .await,
        201,
    )
    .await;
    let session = id(&started["session"]);
    let (mut socket, attached) =
        live.attach(started["attach"]["attach_token"].as_str().expect("token"), "binary_v1", "full_color").await;
    assert_eq!(attached["payload"]["role"], "controller");
    let state = next_of(&mut socket, "session.state").await;
    assert_eq!(state["payload"]["state"], "starting", "the desktop shows before the session is active: {state}");

    let copy = json!({"type": "clipboard.text", "payload": {"text": "early", "sequence_id": 1}});
    socket.send(Message::text(copy.to_string())).await.expect("send");
    let refused = next_of(&mut socket, "error").await;
    assert_eq!(refused["event"]["code"], "invalid_session_state", "{refused}");
    assert_eq!(refused["event"]["details"]["reason"], "not_active");
    let upload = json!({"type": "file_upload.start", "payload": {"transfer_id": uuid::Uuid::new_v4(), "file_name": "a.txt", "size": 3}});
    socket.send(Message::text(upload.to_string())).await.expect("send");
    assert_eq!(next_of(&mut socket, "file_upload.blocked").await["payload"]["reason"], "not_active");
    let list = json!({"type": "file_download.list"});
    socket.send(Message::text(list.to_string())).await.expect("send");
    assert_eq!(next_of(&mut socket, "file_download.blocked").await["payload"]["reason"], "not_active");

    live.wait_state(&session, "active").await;
    socket.send(Message::text(copy.to_string())).await.expect("send");
    let echoed = next_of(&mut socket, "clipboard.text").await;
    assert_eq!(echoed["payload"]["text"], "EARLY", "the same request passes once the session is active");
    live.app.stop().await.expect("clean stop");
}

/// `codecs` is read strictly: a list a real client would send is honoured
/// only where H.264 can travel (`binary_v1`, full colour), and a host
/// without the graphics pipeline (the scripted desktop) still sends pixels.
#[tokio::test]
async fn h264_is_granted_only_where_it_can_travel_and_oversized_codec_lists_are_refused() {
    let live = live(&[]).await;
    let (session, token) = live.start("pc1.office.lan", (320, 200)).await;
    let binary = json!({"render_transport": "binary_v1", "codecs": ["vp9", "h264"]});
    let (mut socket, attached) = live.attach_with(&token, binary).await;
    assert_eq!(attached["payload"]["codecs"], json!(["h264"]));
    let frame = next_frame(&mut socket).await;
    assert_eq!(
        (frame.rect, frame.pixels.len()),
        (Rect::new(0, 0, 320, 200), 320 * 200 * 4),
        "pixels from a host without H.264"
    );
    // Sockets stay open until the end: a closed controller's session is
    // detached, then resumed by the next command, and not ready at once.
    let mut sockets = vec![socket];
    for options in [
        json!({"render_transport": "binary_v1", "color_mode": "grayscale", "codecs": ["h264"]}),
        json!({"render_transport": "json_base64", "codecs": ["h264"]}),
        json!({"render_transport": "binary_v1", "codecs": ["av1"]}),
    ] {
        live.wait_state(&session, "active").await;
        let offered = live.command(&session, "takeover").await;
        let (socket, attached) =
            live.attach_with(offered["attach"]["attach_token"].as_str().expect("token"), options.clone()).await;
        assert!(attached["payload"].get("codecs").is_none(), "{options}: {attached}");
        sockets.push(socket);
    }
    let too_many: Vec<String> = (0..9).map(|index| format!("codec{index}")).collect();
    let too_long = vec!["x".repeat(33)];
    for codecs in [json!(too_many), json!(too_long)] {
        live.wait_state(&session, "active").await;
        let offered = live.command(&session, "shadow").await;
        let mut socket = live.connect().await;
        let payload = json!({"attach_token": offered["attach"]["attach_token"], "codecs": codecs});
        socket.send(Message::text(json!({"type": "attach", "payload": payload}).to_string())).await.expect("send");
        let error = next_json(&mut socket).await;
        assert_eq!(error["event"]["code"], "invalid_request", "{error}");
        assert_eq!(error["event"]["details"]["reason"], "invalid_value");
        assert_eq!(error["event"]["details"]["field"], "payload.codecs");
        assert_eq!(closed_with(&mut socket).await, 4400);
    }
    live.app.stop().await.expect("clean stop");
}

/// The sequences of the updates that arrive on `socket` within `within`.
async fn update_seqs(socket: &mut Socket, within: Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seqs = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Message::Binary(bytes) = message {
            let header = FrameHeader::read(&bytes).expect("binary_v1 header");
            if header.last {
                seqs.push(header.seq);
            }
        }
    }
    seqs
}

/// A client that acknowledges what it painted gets at most four updates
/// beyond its last `render.ack`, however much changes: the rest waits and
/// then comes merged, as the latest pixels.
#[tokio::test]
async fn a_pacing_client_has_at_most_four_updates_in_flight() {
    let live = live(&[]).await;
    let (_, token) = live.start("pc1.office.lan", (320, 200)).await;
    let (mut socket, _) = live.attach_with(&token, json!({"render_transport": "binary_v1", "render_acks": true})).await;
    assert_eq!(update_seqs(&mut socket, Duration::from_millis(500)).await, [1], "the whole screen");
    let click = |x: u16| json!({"type": "input.mouse", "payload": {"x": x, "y": 20, "buttons": 1}}).to_string();
    // One click at a time, each given time to come back as its own update.
    let mut unacked = Vec::new();
    for step in 0..8u16 {
        socket.send(Message::text(click(step * 20))).await.expect("send");
        unacked.extend(update_seqs(&mut socket, Duration::from_millis(400)).await);
    }
    assert_eq!(unacked, [2, 3, 4], "four in flight, counting the unacknowledged first frame");
    socket.send(Message::text(json!({"type": "render.ack", "payload": {"seq": 4}}).to_string())).await.expect("send");
    let after_ack = update_seqs(&mut socket, Duration::from_secs(2)).await;
    assert_eq!(after_ack, [5], "what changed meanwhile comes as one update");

    for bad in [json!({"seq": 99}), json!({"seq": 2}), json!({"seq": -1}), json!({})] {
        let ack = json!({"type": "render.ack", "payload": bad});
        socket.send(Message::text(ack.to_string())).await.expect("send");
        let error = next_of(&mut socket, "error").await;
        assert_eq!(error["event"]["code"], "invalid_request", "{bad}: {error}");
        assert!(
            error["event"]["details"]["field"].as_str().is_some_and(|field| field.starts_with("payload")),
            "{error}"
        );
    }
    live.app.stop().await.expect("clean stop");
}
