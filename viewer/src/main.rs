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

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rap_viewer::layout::{Fit, paint, paint_region};
use rap_viewer::{Desktop, Event, Input};
use rap_wire::frame::ColorMode;
use rap_wire::size::DesktopSize;
use tokio::sync::mpsc;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{Fullscreen, Window, WindowId};

/// How long the window must keep one size before the remote desktop is
/// asked for it: a drag of the window's corner is one request, not fifty.
const RESIZE_SETTLE: Duration = Duration::from_millis(400);

/// Damage kept between presents at most; past it the next present is whole.
const MAX_DAMAGE_RECTS: usize = 64;

struct Args {
    url: String,
    token: String,
    ca: Option<String>,
    color_mode: ColorMode,
    title: String,
}

fn args() -> anyhow::Result<Args> {
    let mut url = None;
    let mut token = None;
    let mut ca = None;
    let mut color_mode = ColorMode::FullColor;
    let mut title = "RAP Appliance".to_owned();
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
    /// The picture stays, dimmed, with the reason; input stops.
    Over(String),
}

struct App {
    title: String,
    desktop: Arc<Mutex<Desktop>>,
    input: mpsc::Sender<Input>,
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
            Status::Over(why) => why.clone(),
        };
        let status = if self.color_mode == ColorMode::Grayscale { format!("{status}, grayscale") } else { status };
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
        let dimmed = matches!(self.status, Status::Over(_));
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

    fn on_event(&mut self, event: Event) {
        let Some(window) = self.window.clone() else { return };
        let before = self.status.clone();
        match event {
            Event::Attached { role, width, height, clipboard_mode } => {
                self.status = Status::Live { controller: role == "controller" };
                self.clipboard_mode = clipboard_mode;
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
                    // The server's own words when it said why; what to do next
                    // when there is something to do.
                    let why = match (code, self.notice.take()) {
                        (Some(4411), Some(notice)) => {
                            format!("{notice} Open it again from the console to take it back.")
                        }
                        (Some(4411), None) => {
                            "Another device took over. Open it again from the console to take it back.".to_owned()
                        }
                        (_, Some(notice)) => notice,
                        (Some(4409), None) => "The session ended.".to_owned(),
                        (Some(4403), None) => "Access to this desktop ended.".to_owned(),
                        (Some(4401), None) => "Signed out.".to_owned(),
                        (_, None) => "Disconnected: the session stays open to resume from the console.".to_owned(),
                    };
                    self.status = Status::Over(why);
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

impl ApplicationHandler<Event> for App {
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

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, event: Event) {
        self.on_event(event);
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

fn run() -> anyhow::Result<()> {
    let args = args()?;
    let tls = args.ca.as_deref().map(trusting).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let viewer = runtime.block_on(rap_viewer::attach(&args.url, tls, &args.token, args.color_mode))?;
    let event_loop = EventLoop::<Event>::with_user_event().build()?;
    let proxy = event_loop.create_proxy();
    let mut events = viewer.events;
    runtime.spawn(async move {
        while let Some(event) = events.recv().await {
            if proxy.send_event(event).is_err() {
                break; // the window closed
            }
        }
    });
    let mut app = App {
        title: args.title,
        desktop: viewer.desktop,
        input: viewer.input,
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
