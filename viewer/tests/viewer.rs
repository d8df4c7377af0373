//! The native viewer's core against a real appliance on 127.0.0.1 (the
//! scripted desktop): the screen reproduced pixel for pixel from zlib
//! `binary_v1` frames, input reaching the desktop, and the session's end
//! and a takeover seen as the gateway says them.

use std::time::Duration;

use rap_appliance::worker::scripted::{MOVIE, MOVIE_FRAMES, movie_frame, pattern_pixel};
use rap_viewer::{Event, Input, Viewer};
use rap_wire::frame::ColorMode;
use serde_json::{Value, json};

struct Appliance {
    base: String,
    ws: String,
    http: reqwest::Client,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

impl Appliance {
    async fn start() -> Self {
        // Feature unification can give reqwest a TLS backend with no
        // provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = tempfile::tempdir().expect("temp dir");
        let dir = data.path().to_string_lossy().into_owned();
        let config = rap_appliance::Config::from_pairs([
            ("APP_DATA_DIR", dir.as_str()),
            ("RAP_WORKER_RUNTIME", "scripted"),
            ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"),
            ("APP_RATE_LIMIT_PER_SECOND", "0"),
        ])
        .expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(rap_appliance::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let owner = json!({"email": "o@example.com", "password": "owner password 1", "display_name": "O"});
        http.post(format!("{base}/api/v1/installation/bootstrap-owner")).json(&owner).send().await.expect("bootstrap");
        let login: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "o@example.com", "password": "owner password 1"}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        let token = login["access_token"].as_str().expect("token").to_owned();
        Self { ws: format!("ws://{addr}/api/v1/gateway/ws"), base, http, token, stop: Some(stop), _data: data }
    }

    async fn call(&self, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.expect("json")
    }

    /// A session on the scripted desktop: (session id, attach token).
    async fn session(&self) -> (String, String) {
        self.session_on("pc.scripted", (320, 200)).await
    }

    /// A session on the scripted host `host` (its behaviour) at `size`.
    async fn session_on(&self, host: &str, size: (u16, u16)) -> (String, String) {
        let me: Value = self
            .http
            .get(format!("{}/api/v1/auth/me", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("me")
            .json()
            .await
            .expect("json");
        let org = me["memberships"][0]["organization_id"].clone();
        let resource = self
            .call(
                "/api/v1/resources",
                Some(json!({"organization_id": org, "name": host, "protocol": "rdp", "host": host,
                    "policy": {"clipboard_mode": "bidirectional"}})),
            )
            .await;
        let started = self
            .call("/api/v1/sessions", Some(json!({"resource_id": resource["id"], "width": size.0, "height": size.1})))
            .await;
        let id = started["session"]["id"].as_str().expect("id").to_owned();
        (id, started["attach"]["attach_token"].as_str().expect("token").to_owned())
    }
}

impl Appliance {
    /// Waits until the session is `active`: its desktop is connected and
    /// takes input (the first frame can come while it is still starting).
    async fn wait_active(&self, session: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/api/v1/sessions/{session}", self.base);
            let current: Value =
                self.http.get(url).bearer_auth(&self.token).send().await.expect("get").json().await.expect("json");
            if current["state"] == "active" {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "never active: {current}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn next(viewer: &mut Viewer) -> Event {
    tokio::time::timeout(Duration::from_secs(10), viewer.events.recv()).await.expect("an event in time").expect("open")
}

/// Events until one matches, the others skipped.
async fn until(viewer: &mut Viewer, wanted: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = next(viewer).await;
        if wanted(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn the_viewer_reproduces_the_desktop_sends_input_and_sees_the_end() {
    let appliance = Appliance::start().await;
    let (session, token) = appliance.session().await;
    let mut viewer = rap_viewer::attach(&appliance.ws, None, &token, ColorMode::FullColor).await.expect("attached");
    let attached = until(&mut viewer, |event| matches!(event, Event::Attached { .. })).await;
    assert_eq!(
        attached,
        Event::Attached {
            session_id: session.clone(),
            role: "controller".into(),
            width: 320,
            height: 200,
            clipboard_mode: "bidirectional".into(),
            h264: true,
        }
    );
    // The first update is the whole screen.
    let whole = until(&mut viewer, |event| matches!(event, Event::Damage(_))).await;
    assert_eq!(whole, Event::Damage(rap_wire::frame::Rect::new(0, 0, 320, 200)));
    {
        let desktop = viewer.desktop.lock().expect("desktop");
        for (x, y) in [(0, 0), (319, 199), (123, 45), (255, 128)] {
            let [r, g, b, _] = pattern_pixel(x, y);
            assert_eq!(desktop.rgb(x, y), Some([r, g, b]), "pixel ({x}, {y})");
        }
    }

    viewer.input.send(Input::Mouse { x: 30, y: 40, buttons: 1, wheel_delta: 0 }).await.expect("input");
    let Event::Damage(rect) = until(&mut viewer, |event| matches!(event, Event::Damage(_))).await else {
        unreachable!()
    };
    assert!(rect.x <= 30 && rect.y <= 40, "the click's mark: {rect:?}");
    assert_eq!(
        viewer.desktop.lock().expect("desktop").rgb(30, 40),
        Some([255, 255, 255]),
        "the desktop drew the click"
    );

    // Another device takes over: told, then closed with 4411.
    let taken = appliance.call(&format!("/api/v1/sessions/{session}/takeover"), None).await;
    let notice =
        until(&mut viewer, |event| matches!(event, Event::Notice { kind, .. } if kind == "session.taken_over")).await;
    assert!(
        matches!(&notice, Event::Notice { code, message, .. } if code == "session_taken_over" && !message.is_empty())
    );
    assert_eq!(
        until(&mut viewer, |event| matches!(event, Event::Closed { .. })).await,
        Event::Closed { code: Some(4411) }
    );

    // The new controller sees the session end: state, then 4409.
    let token = taken["attach"]["attach_token"].as_str().expect("token");
    let mut second = rap_viewer::attach(&appliance.ws, None, token, ColorMode::FullColor).await.expect("attached");
    until(&mut second, |event| matches!(event, Event::Damage(_))).await;
    appliance.call(&format!("/api/v1/sessions/{session}/terminate"), None).await;
    until(&mut second, |event| matches!(event, Event::Notice { code, .. } if code == "session_ended")).await;
    assert_eq!(
        until(&mut second, |event| matches!(event, Event::Closed { .. })).await,
        Event::Closed { code: Some(4409) }
    );
}

#[tokio::test]
async fn a_bad_token_is_refused_with_the_gateways_reason() {
    let appliance = Appliance::start().await;
    let mut viewer =
        rap_viewer::attach(&appliance.ws, None, "not-a-token", ColorMode::FullColor).await.expect("connected");
    let refused = until(&mut viewer, |event| matches!(event, Event::Notice { .. })).await;
    assert!(
        matches!(&refused, Event::Notice { kind, code, .. } if kind == "error" && code == "unauthorized"),
        "{refused:?}"
    );
    assert_eq!(
        until(&mut viewer, |event| matches!(event, Event::Closed { .. })).await,
        Event::Closed { code: Some(4401) }
    );
}

#[tokio::test]
async fn a_grayscale_attach_gets_the_desktop_in_luma() {
    let appliance = Appliance::start().await;
    let (_, token) = appliance.session().await;
    let mut viewer = rap_viewer::attach(&appliance.ws, None, &token, ColorMode::Grayscale).await.expect("attached");
    until(&mut viewer, |event| matches!(event, Event::Damage(_))).await;
    let desktop = viewer.desktop.lock().expect("desktop");
    for (x, y) in [(0, 0), (319, 199), (123, 45)] {
        let [r, g, b, _] = pattern_pixel(x, y);
        let luma = rap_wire::frame::luma(r, g, b);
        assert_eq!(desktop.rgb(x, y), Some([luma, luma, luma]), "pixel ({x}, {y})");
    }
}

#[tokio::test]
async fn the_clipboard_crosses_both_ways_as_the_policy_allows() {
    let appliance = Appliance::start().await;
    let (session, token) = appliance.session().await;
    let mut viewer = rap_viewer::attach(&appliance.ws, None, &token, ColorMode::FullColor).await.expect("attached");
    until(&mut viewer, |event| matches!(event, Event::Damage(_))).await;
    appliance.wait_active(&session).await;
    viewer.input.send(Input::Clipboard { text: "hello from here".into(), sequence_id: 1 }).await.expect("input");
    // The scripted desktop copies it back in upper case, as an application there would.
    assert_eq!(
        until(&mut viewer, |event| matches!(event, Event::Clipboard { .. })).await,
        Event::Clipboard { text: "HELLO FROM HERE".into() }
    );
}

/// A moving picture on a host without H.264 comes as the appliance's own
/// H.264, which this viewer decodes (OpenH264); once the picture is still
/// the region comes again losslessly, so the desktop ends exactly as the
/// host drew it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_picture_is_decoded_as_h264_and_ends_lossless() {
    let appliance = Appliance::start().await;
    let (session, token) = appliance.session_on("video.scripted", (640, 480)).await;
    let mut viewer = rap_viewer::attach(&appliance.ws, None, &token, ColorMode::FullColor).await.expect("attached");
    let attached = until(&mut viewer, |event| matches!(event, Event::Attached { .. })).await;
    assert!(matches!(attached, Event::Attached { h264: true, .. }), "{attached:?}");
    until(&mut viewer, |event| matches!(event, Event::Damage(_))).await;
    appliance.wait_active(&session).await;
    for down in [true, false] {
        viewer.input.send(Input::Code { code: "KeyA".into(), down }).await.expect("input");
    }
    // Until the desktop has been still for a while.
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), viewer.events.recv()).await {
            Ok(Some(Event::Closed { code })) => panic!("closed: {code:?}"),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the socket task ended"),
            Err(_) => break,
        }
    }
    let units = viewer.video_units.load(std::sync::atomic::Ordering::Relaxed);
    assert!(units >= 10, "the moving picture came as {units} H.264 units");
    let last = movie_frame(MOVIE_FRAMES);
    let desktop = viewer.desktop.lock().expect("desktop");
    for (x, y) in [(0u16, 0u16), (319, 239), (100, 50), (37, 201)] {
        let at = (usize::from(y) * usize::from(MOVIE.width) + usize::from(x)) * 4;
        let expected = [last[at], last[at + 1], last[at + 2]];
        assert_eq!(desktop.rgb(MOVIE.x + x, MOVIE.y + y), Some(expected), "movie pixel ({x}, {y})");
    }
    let [r, g, b, _] = pattern_pixel(500, 400);
    assert_eq!(desktop.rgb(500, 400), Some([r, g, b]), "the desktop around it");
}

/// The viewer acknowledges what it painted (`render_acks`): a desktop
/// that repaints every 10 ms keeps coming, where a viewer that never
/// acknowledged would get four updates and then nothing.
#[tokio::test]
async fn acknowledged_updates_keep_coming() {
    let appliance = Appliance::start().await;
    let (_, token) = appliance.session_on("animate.scripted", (320, 200)).await;
    let mut viewer = rap_viewer::attach(&appliance.ws, None, &token, ColorMode::FullColor).await.expect("attached");
    until(&mut viewer, |event| matches!(event, Event::Damage(_))).await;
    let started = std::time::Instant::now();
    let mut updates = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if let Event::Damage(rect) = next(&mut viewer).await
            && rect == rap_wire::frame::Rect::new(0, 0, 64, 64)
        {
            updates += 1;
        }
    }
    assert!(updates >= 20, "{updates} animation updates in a second");
}
