//! `rap-viewer --url ws(s)://appliance/api/v1/gateway/ws (--token T | --token-stdin) [--ca CA.pem] [--grayscale] [--title NAME]`:
//! one remote desktop in a native window, painted with softbuffer from the
//! appliance's frames (no webview in the pixel path), mouse and physical
//! keys sent back. The socket and decoding run on a tokio thread; this
//! thread only paints the framebuffer, scaled to the window, when it changed.
//!
//! The window is the desktop's size at first; when the person resizes it
//! (or goes fullscreen with F11), the controller asks the remote desktop
//! for the new size once the resizing stops. `--token-stdin` reads the
//! single-use attach token from the first line of standard input, so it
//! never shows in the process list (the desktop app launches it so).
//!
//! `--renew-stdio` (the desktop app's): when the connection drops, or
//! another device takes the session over and the person presses Enter,
//! the window asks for a fresh token on standard output and reads the
//! answer on standard input ([`rap_wire::renewal`]), then attaches again.
//! Without it, those closes end the window's session and the console
//! resumes it.

use std::io::Write;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rap_viewer::closing::{AfterClose, after_close, backoff};
use rap_viewer::layout::{Fit, paint, paint_region};
use rap_viewer::{Desktop, Event, Input, Viewer};
use rap_wire::frame::ColorMode;
use rap_wire::renewal::{Renew, RenewAnswer, RenewRequest};
use rap_wire::size::DesktopSize;
use tokio::sync::mpsc;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{Fullscreen, Window, WindowId};

/// How long the window must keep one size before the remote desktop is
/// asked for it: a drag of the window's corner is one request, not fifty.
const RESIZE_SETTLE: Duration = Duration::from_millis(400);

/// Damage kept between presents at most; past it the next present is whole.
const MAX_DAMAGE_RECTS: usize = 64;

/// How long the desktop app has to answer a token request before the
/// window stops waiting (the console may be reloading, or signed out).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

struct Args {
    url: String,
    token: String,
    ca: Option<String>,
    color_mode: ColorMode,
    title: String,
    renew: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut url = None;
    let mut token = None;
    let mut ca = None;
    let mut color_mode = ColorMode::FullColor;
    let mut title = "RAP Appliance".to_owned();
    let mut renew = false;
    let mut given = std::env::args().skip(1);
    while let Some(name) = given.next() {
        match name.as_str() {
            "--token-stdin" => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).context("reading the attach token from standard input")?;
                token = Some(line.trim().to_owned()).filter(|line| !line.is_empty());
                continue;
            }
            "--grayscale" => {
                color_mode = ColorMode::Grayscale;
                continue;
            }
            "--renew-stdio" => {
                renew = true;
                continue;
            }
            _ => {}
        }
        let value = given.next().with_context(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--url" => url = Some(value),
            "--token" => token = Some(value),
            "--ca" => ca = Some(value),
            "--title" => title = value,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(Args {
        url: url.context("--url is required")?,
        token: token.context("--token or --token-stdin is required")?,
        ca,
        color_mode,
        title,
        renew,
    })
}

fn trusting(path: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.context("a PEM certificate")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Where the connection stands, as the title says it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Connecting,
    Live {
        controller: bool,
    },
    /// Between connections (reconnecting, asking for a token): the picture
    /// stays, dimmed, with what is happening; input stops.
    Waiting(String),
    /// The picture stays, dimmed, with the reason; input stops.
    Over(String),
}

/// What wakes the window's event loop besides the window itself.
enum Wake {
    /// From connection number `.0`; events of an older one are stale.
    Socket(u64, Event),
    /// Connection number `.0` is attached: its input goes here.
    Connected(u64, mpsc::Sender<Input>),
    /// A reconnect's wait after connection number `.0` is over.
    ReconnectDue(u64),
    /// Token request number `.0` went unanswered.
    AnswerOverdue(u64),
    /// The desktop app's answer (none: it closed our standard input).
    Answer(Option<RenewAnswer>),
}

/// How the window reaches the appliance, again after a drop.
struct Link {
    runtime: tokio::runtime::Handle,
    proxy: EventLoopProxy<Wake>,
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The current connection's number.
    connection: u64,
}

/// Fresh tokens from the desktop app (`--renew-stdio`).
#[derive(Default)]
struct Renewal {
    /// The session, once the gateway named it.
    session_id: Option<String>,
    /// Reconnects since the last attach.
    attempt: u32,
    /// The request waiting for an answer: its number and what it asked.
    asked: Option<(u64, Renew)>,
    requests: u64,
    /// What Enter asks for, when the window offers it.
    offer: Option<Renew>,
}

struct App {
    title: String,
    desktop: Arc<Mutex<Desktop>>,
    input: mpsc::Sender<Input>,
    link: Link,
    renewal: Option<Renewal>,
    window: Option<Rc<Window>>,
    surface: Option<softbuffer::Surface<Rc<Window>, Rc<Window>>>,
    status: Status,
    /// The last notice worth showing next to the status.
    notice: Option<String>,
    /// DOM-style mouse buttons held: 1 left, 2 right, 4 middle.
    buttons: u8,
    pointer: (u16, u16),
    /// A window size waiting to settle before it is asked for.
    pending_resize: Option<(PhysicalSize<u32>, Instant)>,
    /// This computer's clipboard (none where the desktop has none).
    clipboard: Option<arboard::Clipboard>,
    /// The resource's clipboard policy, as the gateway stated it.
    clipboard_mode: String,
    /// The text that crossed last, either way: not sent back where it came from.
    clipboard_last: Option<String>,
    clipboard_sequence: u64,
    /// Full colour or grayscale frames (Ctrl+Alt+Shift+G switches).
    color_mode: ColorMode,
    /// The gateway sends this socket H.264 where it has it.
    h264: bool,
    /// Modifier keys held, for the window's own shortcuts.
    modifiers: winit::keyboard::ModifiersState,
    /// Desktop rectangles changed since the last present.
    damage: Vec<rap_wire::frame::Rect>,
    /// The next present paints everything (size, state or layout changed).
    repaint_whole: bool,
}

impl App {
    fn send(&self, input: Input) {
        // A full queue means the socket is gone or far behind: drop, as a
        // mouse move superseded by the next one.
        let _ = self.input.try_send(input);
    }

    fn controls(&self) -> bool {
        self.status == Status::Live { controller: true }
    }

    fn desktop_size(&self) -> (u16, u16) {
        self.desktop.lock().map(|desktop| (desktop.width, desktop.height)).unwrap_or((0, 0))
    }

    fn show_status(&self) {
        let Some(window) = &self.window else { return };
        let status = match &self.status {
            Status::Connecting => "connecting…".to_owned(),
            Status::Live { controller: true } => "in control".to_owned(),
            Status::Live { controller: false } => "view only".to_owned(),
            Status::Waiting(what) | Status::Over(what) => what.clone(),
        };
        let status = if self.color_mode == ColorMode::Grayscale { format!("{status}, grayscale") } else { status };
        // How the picture comes, as the browser's status bar says it.
        let status =
            if self.h264 && matches!(self.status, Status::Live { .. }) && self.color_mode == ColorMode::FullColor {
                format!("{status}, H.264")
            } else {
                status
            };
        let title = match &self.notice {
            Some(notice) => format!("{} — {status} — {notice}", self.title),
            None => format!("{} — {status}", self.title),
        };
        window.set_title(&title);
    }

    /// Paints what changed since the last present and presents only that
    /// when the buffer still holds the last frame (its age is 1); paints
    /// and presents everything otherwise (a new size, a new state, a
    /// buffer the platform did not keep).
    fn present(&mut self) {
        let damage = std::mem::take(&mut self.damage);
        let whole = std::mem::replace(&mut self.repaint_whole, false);
        let (Some(window), Some(surface)) = (&self.window, &mut self.surface) else { return };
        let size = window.inner_size();
        let (Some(width), Some(height)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else { return };
        if surface.resize(width, height).is_err() {
            return;
        }
        let Ok(mut buffer) = surface.buffer_mut() else { return };
        let Ok(desktop) = self.desktop.lock() else { return };
        let dimmed = matches!(self.status, Status::Over(_) | Status::Waiting(_));
        let window_size = (size.width, size.height);
        if whole || buffer.age() != 1 || damage.is_empty() {
            paint(&desktop, &mut buffer, window_size, dimmed);
            drop(desktop);
            let _ = buffer.present();
            return;
        }
        let regions: Vec<softbuffer::Rect> = damage
            .into_iter()
            .filter_map(|rect| paint_region(&desktop, &mut buffer, window_size, dimmed, rect))
            .filter_map(|(x, y, width, height)| {
                Some(softbuffer::Rect { x, y, width: NonZeroU32::new(width)?, height: NonZeroU32::new(height)? })
            })
            .collect();
        drop(desktop);
        let _ = buffer.present_with_damage(&regions);
    }

    /// A changed rectangle of the desktop, to paint at the next present.
    fn damaged(&mut self, rect: rap_wire::frame::Rect) {
        // Many small changes are cheaper painted whole than listed.
        if self.damage.len() >= MAX_DAMAGE_RECTS {
            self.repaint_whole = true;
        } else {
            self.damage.push(rect);
        }
    }

    /// The desktop pixel under a window position.
    fn at(&self, x: f64, y: f64) -> Option<(u16, u16)> {
        let window = self.window.as_ref()?.inner_size();
        let desktop = self.desktop_size();
        Fit::of(desktop, (window.width, window.height)).map(|fit| fit.to_desktop(desktop, x, y))
    }

    fn window_resized(&mut self, size: PhysicalSize<u32>) {
        self.repaint_whole = true;
        if let Some(window) = &self.window {
            window.request_redraw();
        }
        let desktop = self.desktop_size();
        let same = (u32::from(desktop.0), u32::from(desktop.1)) == (size.width, size.height);
        self.pending_resize = (self.controls() && !same).then(|| (size, Instant::now() + RESIZE_SETTLE));
    }

    fn settle_resize(&mut self, event_loop: &ActiveEventLoop) {
        let Some((size, due)) = self.pending_resize else {
            event_loop.set_control_flow(ControlFlow::Wait);
            return;
        };
        if Instant::now() < due {
            event_loop.set_control_flow(ControlFlow::WaitUntil(due));
            return;
        }
        self.pending_resize = None;
        event_loop.set_control_flow(ControlFlow::Wait);
        let side = |pixels: u32, max: u16| pixels.clamp(u32::from(DesktopSize::MIN_SIDE), u32::from(max)) as u16;
        let (width, height) = (side(size.width, DesktopSize::MAX_WIDTH), side(size.height, DesktopSize::MAX_HEIGHT));
        if (width, height) != self.desktop_size() {
            self.send(Input::Resize { width, height });
        }
    }

    /// When the window gets the focus (the person comes back from another
    /// program, perhaps with something copied), this computer's clipboard
    /// goes to the remote desktop if the policy lets it and it is new.
    fn offer_clipboard(&mut self) {
        if !self.controls() || !matches!(self.clipboard_mode.as_str(), "client_to_server" | "bidirectional") {
            return;
        }
        let Some(text) = self.clipboard.as_mut().and_then(|clipboard| clipboard.get_text().ok()) else { return };
        if text.is_empty() || self.clipboard_last.as_deref() == Some(text.as_str()) {
            return;
        }
        self.clipboard_sequence += 1;
        self.send(Input::Clipboard { text: text.clone(), sequence_id: self.clipboard_sequence });
        self.clipboard_last = Some(text);
    }

    /// The remote desktop's clipboard, onto this computer's (the gateway
    /// sends it only where the policy lets it cross).
    fn take_clipboard(&mut self, text: String) {
        if self.clipboard_last.as_deref() == Some(text.as_str()) {
            return;
        }
        if let Some(clipboard) = self.clipboard.as_mut()
            && let Err(error) = clipboard.set_text(text.clone())
        {
            eprintln!("rap-viewer: the remote clipboard could not be copied here: {error}");
        }
        self.clipboard_last = Some(text);
    }

    fn toggle_fullscreen(&self) {
        let Some(window) = &self.window else { return };
        let next = if window.fullscreen().is_some() { None } else { Some(Fullscreen::Borderless(None)) };
        window.set_fullscreen(next);
    }

    /// A close decided: over, taken over (Enter takes it back), or a
    /// reconnect after the backoff, each only when the desktop app can
    /// give this window another token.
    fn closed(&mut self, decision: AfterClose) {
        let renewal = self.renewal.as_mut().filter(|renewal| renewal.session_id.is_some());
        self.status = match (decision, renewal) {
            (AfterClose::Over(why), _) => Status::Over(why),
            (AfterClose::TakenOver(why), Some(renewal)) => {
                renewal.offer = Some(Renew::Takeover);
                Status::Over(format!("{why} Press Enter to take back control."))
            }
            (AfterClose::TakenOver(why), None) => {
                Status::Over(format!("{why} Open it again from the console to take it back."))
            }
            (AfterClose::Reconnect { delay, why }, Some(renewal)) => {
                renewal.attempt += 1;
                let (proxy, connection) = (self.link.proxy.clone(), self.link.connection);
                self.link.runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = proxy.send_event(Wake::ReconnectDue(connection));
                });
                Status::Waiting(format!("{why} Reconnecting in {} s…", delay.as_secs()))
            }
            (AfterClose::Reconnect { why, .. }, None) => {
                Status::Over(format!("{why} The session stays open to resume from the console."))
            }
        };
    }

    /// Asks the desktop app for a token to `renew` this window's session.
    fn ask(&mut self, renew: Renew) {
        let Some(renewal) = &mut self.renewal else { return };
        let Some(session_id) = renewal.session_id.clone() else { return };
        let mut stdout = std::io::stdout().lock();
        let sent = writeln!(stdout, "{}", RenewRequest { renew, session_id }).and_then(|()| stdout.flush());
        if sent.is_err() {
            self.renewal = None;
            self.status = Status::Over("The desktop app that opened this window is gone.".to_owned());
            return;
        }
        renewal.requests += 1;
        renewal.asked = Some((renewal.requests, renew));
        renewal.offer = None;
        let (proxy, request) = (self.link.proxy.clone(), renewal.requests);
        self.link.runtime.spawn(async move {
            tokio::time::sleep(ANSWER_TIMEOUT).await;
            let _ = proxy.send_event(Wake::AnswerOverdue(request));
        });
        self.status = Status::Waiting(match renew {
            Renew::Attach => "reconnecting…".to_owned(),
            Renew::Takeover => "taking back control…".to_owned(),
        });
    }

    /// The desktop app's answer to the waiting request: a token to attach
    /// with; why not (Enter asks again); or not now, which a reconnect
    /// takes as one more failed attempt.
    fn answered(&mut self, answer: RenewAnswer) {
        let Some(renewal) = &mut self.renewal else { return };
        let Some((_, renew)) = renewal.asked.take() else { return };
        match (answer, renew) {
            (RenewAnswer::Token(token), _) => self.connect(token),
            (RenewAnswer::Later(why), Renew::Attach) => {
                let delay = backoff(renewal.attempt);
                self.closed(AfterClose::Reconnect { delay, why });
            }
            (RenewAnswer::Refused(why) | RenewAnswer::Later(why), _) => {
                renewal.offer = Some(renew);
                self.status = Status::Over(format!("{why} Press Enter to try again."));
            }
        }
    }

    /// A new connection with `token`, painting into the same framebuffer;
    /// the old connection's events are stale from here on.
    fn connect(&mut self, token: String) {
        self.link.connection += 1;
        let (connection, proxy, desktop) = (self.link.connection, self.link.proxy.clone(), self.desktop.clone());
        let (url, tls, color_mode) = (self.link.url.clone(), self.link.tls.clone(), self.color_mode);
        self.status = Status::Connecting;
        self.link.runtime.spawn(async move {
            match rap_viewer::attach_to(desktop, &url, tls, &token, color_mode).await {
                Ok(viewer) => {
                    let _ = proxy.send_event(Wake::Connected(connection, viewer.input.clone()));
                    forward(viewer, connection, proxy).await;
                }
                Err(error) => {
                    eprintln!("rap-viewer: reconnecting: {error:#}");
                    let _ = proxy.send_event(Wake::Socket(connection, Event::Closed { code: None }));
                }
            }
        });
    }

    fn on_wake(&mut self, wake: Wake) {
        let current = self.link.connection;
        let before = self.status.clone();
        match wake {
            Wake::Socket(connection, event) if connection == current => return self.on_event(event),
            Wake::Socket(..) => return,
            Wake::Connected(connection, input) if connection == current => self.input = input,
            Wake::ReconnectDue(connection) if connection == current => self.ask(Renew::Attach),
            Wake::AnswerOverdue(request) => {
                if let Some(renewal) = self
                    .renewal
                    .as_mut()
                    .filter(|renewal| matches!(renewal.asked, Some((asked, _)) if asked == request))
                {
                    renewal.offer = renewal.asked.take().map(|(_, renew)| renew);
                    self.status = Status::Over("The console did not answer. Press Enter to try again.".to_owned());
                }
            }
            Wake::Answer(Some(answer)) => self.answered(answer),
            Wake::Answer(None) => {
                let waiting =
                    self.renewal.take().is_some_and(|renewal| renewal.asked.is_some() || renewal.offer.is_some());
                if waiting || matches!(self.status, Status::Waiting(_)) {
                    self.status = Status::Over("The desktop app that opened this window is gone.".to_owned());
                }
            }
            Wake::Connected(..) | Wake::ReconnectDue(_) => {}
        }
        if self.status != before {
            self.repaint_whole = true;
            if let Some(window) = &self.window {
                window.request_redraw();
            }
        }
        self.show_status();
    }

    fn on_event(&mut self, event: Event) {
        let Some(window) = self.window.clone() else { return };
        let before = self.status.clone();
        match event {
            Event::Attached { session_id, role, width, height, clipboard_mode, h264 } => {
                self.status = Status::Live { controller: role == "controller" };
                self.h264 = h264;
                self.clipboard_mode = clipboard_mode;
                if let Some(renewal) = &mut self.renewal {
                    renewal.session_id = Some(session_id);
                    renewal.attempt = 0;
                    renewal.offer = None;
                }
                // One to one at first; from then on the person sizes the window.
                let _ = window.request_inner_size(PhysicalSize::new(u32::from(width), u32::from(height)));
                window.request_redraw();
            }
            Event::Resized { .. } => {
                self.repaint_whole = true;
                window.request_redraw();
            }
            Event::Damage(rect) => {
                self.damaged(rect);
                window.request_redraw();
            }
            Event::Clipboard { text } => self.take_clipboard(text),
            Event::Notice { kind, code, message } => {
                let words = if message.is_empty() { code.clone() } else { message };
                match (kind.as_str(), code.as_str()) {
                    ("session.state", "session_ended" | "session_failed") => {
                        self.status = Status::Over(words);
                    }
                    ("session.state", _) => {}
                    _ => self.notice = Some(words),
                }
                window.request_redraw();
            }
            Event::Closed { code } => {
                if !matches!(self.status, Status::Over(_)) {
                    let notice = self.notice.take();
                    self.closed(after_close(code, notice, self.renewal.as_ref().map_or(0, |renewal| renewal.attempt)));
                }
                self.notice = None;
                window.request_redraw();
            }
        }
        if self.status != before {
            // Live to dimmed (or back): every pixel changes.
            self.repaint_whole = true;
            window.request_redraw();
        }
        self.show_status();
    }
}

impl ApplicationHandler<Wake> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attributes = Window::default_attributes()
            .with_title(format!("{} — connecting…", self.title))
            .with_inner_size(PhysicalSize::new(1024, 768));
        let Ok(window) = event_loop.create_window(attributes) else { return event_loop.exit() };
        let window = Rc::new(window);
        let surface = softbuffer::Context::new(window.clone())
            .and_then(|context| softbuffer::Surface::new(&context, window.clone()));
        match surface {
            Ok(surface) => self.surface = Some(surface),
            Err(error) => {
                eprintln!("rap-viewer: no drawing surface: {error}");
                return event_loop.exit();
            }
        }
        self.window = Some(window);
        // Where there is no clipboard (no X server selection owner support,
        // a locked-down desktop), the desktop still works without it.
        self.clipboard = arboard::Clipboard::new()
            .map_err(|error| eprintln!("rap-viewer: no clipboard on this desktop: {error}"))
            .ok();
    }

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, wake: Wake) {
        self.on_wake(wake);
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        self.settle_resize(event_loop);
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::RedrawRequested => self.present(),
            WindowEvent::Resized(size) => self.window_resized(size),
            WindowEvent::Focused(true) => self.offer_clipboard(),
            WindowEvent::ModifiersChanged(modifiers) => self.modifiers = modifiers.state(),
            WindowEvent::CursorMoved { position, .. } => {
                let Some(pointer) = self.at(position.x, position.y) else { return };
                self.pointer = pointer;
                if self.controls() {
                    self.send(Input::Mouse { x: pointer.0, y: pointer.1, buttons: self.buttons, wheel_delta: 0 });
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let bit = match button {
                    MouseButton::Left => 1,
                    MouseButton::Right => 2,
                    MouseButton::Middle => 4,
                    _ => 0,
                };
                match state {
                    ElementState::Pressed => self.buttons |= bit,
                    ElementState::Released => self.buttons &= !bit,
                }
                if self.controls() {
                    self.send(Input::Mouse {
                        x: self.pointer.0,
                        y: self.pointer.1,
                        buttons: self.buttons,
                        wheel_delta: 0,
                    });
                }
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let lines = match delta {
                    MouseScrollDelta::LineDelta(_, y) => y,
                    MouseScrollDelta::PixelDelta(position) => (position.y / 40.0) as f32,
                };
                let wheel_delta = (lines * 120.0).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                if self.controls() {
                    self.send(Input::Mouse {
                        x: self.pointer.0,
                        y: self.pointer.1,
                        buttons: self.buttons,
                        wheel_delta,
                    });
                }
            }
            WindowEvent::KeyboardInput { event, .. } => {
                let PhysicalKey::Code(code) = event.physical_key else { return };
                // F11 is the window's own (fullscreen), as in a browser.
                // Ctrl+Alt+Shift+G: grayscale on or off (less bandwidth), as
                // the web viewer's toolbar offers; G does not reach the desktop.
                let chord = self.modifiers.control_key() && self.modifiers.alt_key() && self.modifiers.shift_key();
                if code == KeyCode::KeyG && chord {
                    if event.state == ElementState::Pressed && !event.repeat && self.controls() {
                        self.color_mode = match self.color_mode {
                            ColorMode::FullColor => ColorMode::Grayscale,
                            ColorMode::Grayscale => ColorMode::FullColor,
                        };
                        self.send(Input::ColorMode(self.color_mode));
                        self.show_status();
                    }
                    return;
                }
                let offer = self.renewal.as_ref().and_then(|renewal| renewal.offer);
                if let (Some(renew), KeyCode::Enter | KeyCode::NumpadEnter, ElementState::Pressed, Status::Over(_)) =
                    (offer, code, event.state, &self.status)
                {
                    self.ask(renew);
                    self.repaint_whole = true;
                    self.show_status();
                    return;
                }
                if code == KeyCode::F11 {
                    if event.state == ElementState::Pressed && !event.repeat {
                        self.toggle_fullscreen();
                    }
                    return;
                }
                // Physical keys, named as the W3C names them (winit's names
                // are those), so the remote layout decides the character.
                if self.controls() {
                    self.send(Input::Code { code: format!("{code:?}"), down: event.state == ElementState::Pressed });
                }
            }
            _ => {}
        }
    }
}

/// Passes connection number `connection`'s events to the window until
/// either side closes.
async fn forward(mut viewer: Viewer, connection: u64, proxy: EventLoopProxy<Wake>) {
    while let Some(event) = viewer.events.recv().await {
        if proxy.send_event(Wake::Socket(connection, event)).is_err() {
            break; // the window closed
        }
    }
}

/// The desktop app's answers, line by line, until it closes the pipe.
/// A line that is no answer is skipped: only the app writes here.
fn read_answers(proxy: EventLoopProxy<Wake>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            match RenewAnswer::parse(&line) {
                Some(answer) => {
                    if proxy.send_event(Wake::Answer(Some(answer))).is_err() {
                        return;
                    }
                }
                None => eprintln!("rap-viewer: a line on standard input that is no answer"),
            }
        }
        let _ = proxy.send_event(Wake::Answer(None));
    });
}

fn run() -> anyhow::Result<()> {
    let args = args()?;
    let tls = args.ca.as_deref().map(trusting).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let viewer = runtime.block_on(rap_viewer::attach(&args.url, tls.clone(), &args.token, args.color_mode))?;
    let event_loop = EventLoop::<Wake>::with_user_event().build()?;
    let proxy = event_loop.create_proxy();
    if args.renew {
        read_answers(proxy.clone());
    }
    let (desktop, input) = (viewer.desktop.clone(), viewer.input.clone());
    runtime.spawn(forward(viewer, 0, proxy.clone()));
    let mut app = App {
        title: args.title,
        desktop,
        input,
        link: Link { runtime: runtime.handle().clone(), proxy, url: args.url, tls, connection: 0 },
        renewal: args.renew.then(Renewal::default),
        window: None,
        surface: None,
        status: Status::Connecting,
        notice: None,
        buttons: 0,
        pointer: (0, 0),
        pending_resize: None,
        clipboard: None,
        clipboard_mode: "disabled".to_owned(),
        clipboard_last: None,
        clipboard_sequence: 0,
        damage: Vec::new(),
        repaint_whole: true,
        color_mode: args.color_mode,
        h264: false,
        modifiers: winit::keyboard::ModifiersState::empty(),
    };
    event_loop.run_app(&mut app)?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rap-viewer: {error:#}");
            ExitCode::FAILURE
        }
    }
}
