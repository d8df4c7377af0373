//! `rap-viewer --url ws(s)://appliance/api/v1/gateway/ws --token ATTACH_TOKEN [--ca CA.pem]`:
//! one remote desktop in a native window, painted with softbuffer from the
//! appliance's frames (no webview in the pixel path), mouse and physical
//! keys sent back. The socket and decoding run on a tokio thread; this
//! thread only copies the framebuffer to the window when it changed.

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rap_viewer::{Desktop, Event, Input};
use tokio::sync::mpsc;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::PhysicalKey;
use winit::window::{Window, WindowId};

struct Args {
    url: String,
    token: String,
    ca: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut url = None;
    let mut token = None;
    let mut ca = None;
    let mut given = std::env::args().skip(1);
    while let Some(name) = given.next() {
        let value = given.next().with_context(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--url" => url = Some(value),
            "--token" => token = Some(value),
            "--ca" => ca = Some(value),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(Args { url: url.context("--url is required")?, token: token.context("--token is required")?, ca })
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

struct App {
    desktop: Arc<Mutex<Desktop>>,
    input: mpsc::Sender<Input>,
    window: Option<Rc<Window>>,
    surface: Option<softbuffer::Surface<Rc<Window>, Rc<Window>>>,
    /// DOM-style mouse buttons held: 1 left, 2 right, 4 middle.
    buttons: u8,
    pointer: (u16, u16),
}

impl App {
    fn send(&self, input: Input) {
        // A full queue means the socket is gone or far behind: drop, as a
        // mouse move superseded by the next one.
        let _ = self.input.try_send(input);
    }

    fn set_title(&self, text: &str) {
        if let Some(window) = &self.window {
            window.set_title(&format!("RAP Appliance — {text}"));
        }
    }

    fn present(&mut self) {
        let (Some(window), Some(surface)) = (&self.window, &mut self.surface) else { return };
        let size = window.inner_size();
        let (Some(width), Some(height)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else { return };
        if surface.resize(width, height).is_err() {
            return;
        }
        let Ok(mut buffer) = surface.buffer_mut() else { return };
        buffer.fill(0);
        if let Ok(desktop) = self.desktop.lock() {
            let columns = usize::from(desktop.width).min(size.width as usize);
            for row in 0..usize::from(desktop.height).min(size.height as usize) {
                let source = &desktop.pixels[row * usize::from(desktop.width)..][..columns];
                buffer[row * size.width as usize..][..columns].copy_from_slice(source);
            }
        }
        let _ = buffer.present();
    }
}

impl ApplicationHandler<Event> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attributes = Window::default_attributes()
            .with_title("RAP Appliance — connecting")
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
    }

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, event: Event) {
        let Some(window) = self.window.clone() else { return };
        match event {
            Event::Attached { role, width, height } => {
                let _ = window.request_inner_size(PhysicalSize::new(u32::from(width), u32::from(height)));
                self.set_title(&role);
                window.request_redraw();
            }
            Event::Resized { width, height } => {
                let _ = window.request_inner_size(PhysicalSize::new(u32::from(width), u32::from(height)));
                window.request_redraw();
            }
            Event::Damage(_) => window.request_redraw(),
            Event::Notice { message, code, .. } => {
                self.set_title(if message.is_empty() { &code } else { &message });
            }
            Event::Closed { code } => {
                let why = match code {
                    Some(4409) => "the session ended",
                    Some(4411) => "another device took over",
                    Some(4403) => "access ended",
                    _ => "disconnected",
                };
                self.set_title(why);
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::RedrawRequested => self.present(),
            WindowEvent::Resized(_) => {
                if let Some(window) = &self.window {
                    window.request_redraw();
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                let clamp = |value: f64| value.max(0.0).min(f64::from(u16::MAX)) as u16;
                self.pointer = (clamp(position.x), clamp(position.y));
                self.send(Input::Mouse { x: self.pointer.0, y: self.pointer.1, buttons: self.buttons, wheel_delta: 0 });
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
                self.send(Input::Mouse { x: self.pointer.0, y: self.pointer.1, buttons: self.buttons, wheel_delta: 0 });
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let lines = match delta {
                    MouseScrollDelta::LineDelta(_, y) => y,
                    MouseScrollDelta::PixelDelta(position) => (position.y / 40.0) as f32,
                };
                let wheel_delta = (lines * 120.0).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                self.send(Input::Mouse { x: self.pointer.0, y: self.pointer.1, buttons: self.buttons, wheel_delta });
            }
            WindowEvent::KeyboardInput { event, .. } => {
                // Physical keys, named as the W3C names them (winit's names
                // are those), so the remote layout decides the character.
                if let PhysicalKey::Code(code) = event.physical_key {
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
    let viewer = runtime.block_on(rap_viewer::attach(&args.url, tls, &args.token))?;
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
    let mut app =
        App { desktop: viewer.desktop, input: viewer.input, window: None, surface: None, buttons: 0, pointer: (0, 0) };
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
