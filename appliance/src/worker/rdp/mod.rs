//! The RDP worker runtime: one remote desktop per session, in process,
//! with IronRDP.
//!
//! Connect (TCP, X.224 negotiation, TLS with the resource's certificate
//! policy, CredSSP/NLA when the server asks for it), then run the active
//! session: decode every update into the session's [`Screen`], turn
//! controller input into fast-path input, follow resolution changes, and
//! end with a precise reason. Heartbeats go out while the session lives.

mod clipboard;
mod connect;
mod drive;
mod keymap;
mod tiles;
mod video;

use std::time::Duration;

use async_trait::async_trait;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_input::{Database, MouseButton, MousePosition, Operation, Scancode, WheelRotations};
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput, GracefulDisconnectReason};
use ironrdp_tokio::FramedWrite as _;

use super::{Assignment, SessionEnd, SessionInput, SessionIo, SessionRuntime, WorkerEventKind};
use crate::protocol::DesktopSize;
use crate::protocol::frame::Rect;
use crate::protocol::framebuffer::{PixelStore, Screen};

/// Input events per second a controller may send before the excess is dropped.
const MAX_INPUT_PER_SECOND: u32 = 2000;
/// How often viewers waiting for a key frame may have the host repaint.
const KEY_FRAME_ASK_INTERVAL: Duration = Duration::from_secs(2);

pub struct RdpRuntime {
    trust: connect::TrustRoots,
}

impl RdpRuntime {
    /// `trusted_cas`: CAs trusted for `strict` checks besides the system's.
    pub fn new(trusted_cas: Vec<rustls::pki_types::CertificateDer<'static>>) -> Self {
        Self { trust: connect::TrustRoots::new(trusted_cas) }
    }
}

#[async_trait]
impl SessionRuntime for RdpRuntime {
    fn kind(&self) -> &'static str {
        "rdp"
    }

    async fn run(&self, assignment: Assignment, io: SessionIo) -> SessionEnd {
        let connecting = connect::connect(&assignment, io.transfer_dir.as_deref(), &self.trust);
        let connected = tokio::select! {
            () = io.cancelled() => return SessionEnd::Cancelled,
            connected = tokio::time::timeout(connect::CONNECT_TIMEOUT, connecting) => connected,
        };
        let connection = match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(reason)) => return SessionEnd::Failed(reason),
            Err(_) => return SessionEnd::Failed("connect_timeout".into()),
        };
        tracing::info!(session_id = %io.session_id, "RDP connected");
        match run_session(connection, &io, assignment.clipboard_mode).await {
            Ok(end) | Err(end) => end,
        }
    }
}

/// The decoder's image is the session screen's pixels: IronRDP paints
/// into it and viewers read from it, so a session holds its desktop once.
struct Desktop(DecodedImage, tiles::TileHashes);

impl PixelStore for Desktop {
    fn rgba(&self) -> &[u8] {
        self.0.data()
    }

    // The graphics pipeline resizes the image itself (`ResetGraphics`).
    fn size(&self) -> Option<(u16, u16)> {
        Some((self.0.width(), self.0.height()))
    }

    fn rgba_mut(&mut self) -> Option<&mut [u8]> {
        None
    }

    // The decoder leaves alpha unspecified; reads make it opaque.
    fn alpha_is_set(&self) -> bool {
        false
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

fn desktop(width: u16, height: u16) -> Box<Desktop> {
    Box::new(Desktop(DecodedImage::new(PixelFormat::RgbA32, width, height), tiles::TileHashes::new(width, height)))
}

/// The screen rectangles of the outputs' graphics updates.
fn damage(outputs: &[ActiveStageOutput]) -> Vec<Rect> {
    outputs
        .iter()
        .filter_map(|output| match output {
            ActiveStageOutput::GraphicsUpdate(region) if region.left <= region.right && region.top <= region.bottom => {
                // Inclusive edges: a region reaching 65535 is one wider than
                // u16 holds; the screen clips it anyway.
                let width = (u32::from(region.right) - u32::from(region.left) + 1).min(u32::from(u16::MAX));
                let height = (u32::from(region.bottom) - u32::from(region.top) + 1).min(u32::from(u16::MAX));
                Some(Rect::new(region.left, region.top, width as u16, height as u16))
            }
            _ => None,
        })
        .collect()
}

/// Runs `work` (decoding, milliseconds for a full 1080p frame) without
/// holding up the other tasks of a multi-threaded runtime's worker.
fn decoding<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// How heavy a step on the session's image is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Decoding server PDUs (graphics, channels): off the async worker.
    Decoding,
    Light,
}

/// Runs `step` on the screen's image; its outputs, with their damage
/// (and the H.264 units the graphics pipeline decoded) already shown to
/// viewers.
fn decode(
    screen: &Screen,
    work: Work,
    video: &video::Tap,
    step: impl FnOnce(&mut DecodedImage) -> ironrdp_session::SessionResult<Vec<ActiveStageOutput>>,
) -> Result<Vec<ActiveStageOutput>, ironrdp_session::SessionError> {
    let run = || {
        screen.decode_with_video(|desktop: &mut Desktop| {
            let outputs = step(&mut desktop.0);
            let rects = outputs.as_ref().map(|outputs| damage(outputs)).unwrap_or_default();
            let Desktop(image, tiles) = desktop;
            let rects = tiles.changed(image.data(), image.stride(), (image.width(), image.height()), &rects);
            (outputs, rects, video.take())
        })
    };
    let outputs = if work == Work::Decoding { decoding(run) } else { run() };
    outputs.unwrap_or_else(|| Err(ironrdp_session::general_err!("the session screen holds no decoder image")))
}

fn disconnect_reason(reason: &GracefulDisconnectReason) -> String {
    match reason {
        GracefulDisconnectReason::UserInitiated => "user_disconnect".into(),
        GracefulDisconnectReason::ServerInitiated => "server_disconnect".into(),
        GracefulDisconnectReason::Other(description) => {
            let lowered = description.to_ascii_lowercase();
            if lowered.contains("logoff") || lowered.contains("logged off") {
                "remote_logoff".into()
            } else if lowered.contains("idle") {
                "idle_timeout".into()
            } else {
                "server_disconnect".into()
            }
        }
    }
}

/// Turns controller input into fast-path events, keeping key and button
/// state so nothing stays stuck.
struct InputState {
    database: Database,
    buttons: u8,
    width: u16,
    height: u16,
    window_start: tokio::time::Instant,
    in_window: u32,
}

const BUTTONS: [(u8, MouseButton); 5] = [
    (0b0000_0001, MouseButton::Left),
    (0b0000_0010, MouseButton::Right),
    (0b0000_0100, MouseButton::Middle),
    (0b0000_1000, MouseButton::X1),
    (0b0001_0000, MouseButton::X2),
];

impl InputState {
    fn new(width: u16, height: u16) -> Self {
        Self {
            database: Database::new(),
            buttons: 0,
            width,
            height,
            window_start: tokio::time::Instant::now(),
            in_window: 0,
        }
    }

    /// Whether one more event fits in this second's budget.
    fn admit(&mut self) -> bool {
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = tokio::time::Instant::now();
            self.in_window = 0;
        }
        self.in_window += 1;
        self.in_window <= MAX_INPUT_PER_SECOND
    }

    fn operations(&mut self, input: &SessionInput) -> Vec<Operation> {
        match input {
            SessionInput::Mouse { x, y, buttons, wheel_delta } => {
                let position = MousePosition {
                    x: (*x).min(self.width.saturating_sub(1)),
                    y: (*y).min(self.height.saturating_sub(1)),
                };
                let mut operations = vec![Operation::MouseMove(position)];
                for (bit, button) in BUTTONS {
                    let was = self.buttons & bit != 0;
                    let is = buttons & bit != 0;
                    if is && !was {
                        operations.push(Operation::MouseButtonPressed(button));
                    } else if was && !is {
                        operations.push(Operation::MouseButtonReleased(button));
                    }
                }
                self.buttons = *buttons;
                if let Some(delta) = wheel_delta.filter(|delta| *delta != 0) {
                    // Browsers count down as positive; RDP counts away from the user.
                    operations
                        .push(Operation::WheelRotations(WheelRotations { is_vertical: true, rotation_units: -delta }));
                }
                operations
            }
            SessionInput::Key { code, scancode, down } => {
                let scancode = scancode.or_else(|| code.as_deref().and_then(keymap::scancode));
                let Some(scancode) = scancode else { return Vec::new() };
                let scancode = Scancode::from_u16(scancode);
                vec![if *down { Operation::KeyPressed(scancode) } else { Operation::KeyReleased(scancode) }]
            }
            SessionInput::Unicode { text } => text
                .chars()
                .flat_map(|character| {
                    [Operation::UnicodeKeyPressed(character), Operation::UnicodeKeyReleased(character)]
                })
                .collect(),
            SessionInput::Resize { .. } | SessionInput::Clipboard(_) => Vec::new(),
        }
    }
}

/// Runs the active session until it ends; `Err` carries the end too, so
/// `?` can be used on failures.
async fn run_session(
    connection: connect::Connection,
    io: &SessionIo,
    clipboard_mode: crate::resource::PolicyMode,
) -> Result<SessionEnd, SessionEnd> {
    let connect::Connection { mut framed, result, clipboard: clipboard_events, video } = connection;
    let mut clipboard = clipboard::Clipboard::new(clipboard_mode);
    let size = result.desktop_size;
    if !DesktopSize::acceptable_from_host(size.width, size.height) {
        return Err(SessionEnd::Failed("desktop_too_large".into()));
    }
    let (mut refresh_ok, mut suppress_ok) = (result.refresh_rect_support, result.suppress_output_support);
    let factory = result.activation_factory;
    let mut stage: ActiveStage = ActiveStageBuilder {
        static_channels: result.static_channels,
        user_channel_id: result.user_channel_id,
        io_channel_id: result.io_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        compression_type: result.compression_type,
        enable_server_pointer: false,
        pointer_software_rendering: false,
    }
    .build();
    let screen = io.open_screen_with(size.width, size.height, desktop(size.width, size.height));
    let mut input = InputState::new(size.width, size.height);
    if io.report(WorkerEventKind::Connected { width: size.width, height: size.height }).await.is_err() {
        return Err(SessionEnd::Failed("event_queue_full".into()));
    }
    let mut heartbeat = tokio::time::interval(io.heartbeat_interval());
    let mut key_frame_asked =
        tokio::time::Instant::now().checked_sub(KEY_FRAME_ASK_INTERVAL).unwrap_or_else(tokio::time::Instant::now);
    let write_failed = |_| SessionEnd::Failed("connection_lost".into());
    loop {
        let outputs = tokio::select! {
            () = io.cancelled() => {
                // Say goodbye properly; the socket closes either way.
                if let Ok(frames) = stage.graceful_shutdown() {
                    for output in frames {
                        if let ActiveStageOutput::ResponseFrame(frame) = output {
                            let _ = framed.write_all(&frame).await;
                        }
                    }
                }
                return Ok(SessionEnd::Cancelled);
            }
            _ = heartbeat.tick() => {
                io.heartbeat().await;
                continue;
            }
            read = framed.read_pdu() => {
                let (action, frame) = read.map_err(|error| {
                    tracing::info!(session_id = %io.session_id, %error, "RDP connection lost");
                    SessionEnd::Failed("connection_lost".into())
                })?;
                decode(&screen, Work::Decoding, &video, |image| stage.process(image, action, &frame, framed.last_read_at())).map_err(|error| {
                    tracing::warn!(session_id = %io.session_id, %error, "RDP protocol error");
                    SessionEnd::Failed("protocol_error".into())
                })?
            }
            next = io.next_input(Duration::from_secs(60)) => {
                let Some(next) = next else { continue };
                if let SessionInput::Clipboard(text) = next {
                    if let Some(channel) = stage.get_svc_processor_mut::<ironrdp_cliprdr::CliprdrClient>()
                        && let Some(messages) = clipboard.offer(channel, text)
                    {
                        let frame = stage.process_svc_processor_messages(messages).map_err(|_| SessionEnd::Failed("protocol_error".into()))?;
                        framed.write_all(&frame).await.map_err(write_failed)?;
                    }
                    continue;
                }
                if let SessionInput::Resize { width, height } = next {
                    let capped = DesktopSize::capped(width, height);
                    let (width, height) = (u32::from(capped.width), u32::from(capped.height));
                    if let Some(Ok(frame)) = stage.encode_resize(width, height, None, None) {
                        framed.write_all(&frame).await.map_err(write_failed)?;
                    }
                    continue;
                }
                if !input.admit() {
                    continue;
                }
                let operations = input.operations(&next);
                let events = input.database.apply(operations);
                // Input touches the image only for a software pointer (off),
                // so there is no decoding to move off the async worker.
                decode(&screen, Work::Light, &video, |image| stage.process_fastpath_input(image, &events)).map_err(|_| SessionEnd::Failed("protocol_error".into()))?
            }
        };
        for output in outputs {
            match output {
                ActiveStageOutput::ResponseFrame(frame) if !frame.is_empty() => {
                    framed.write_all(&frame).await.map_err(write_failed)?;
                }
                ActiveStageOutput::Terminate(reason) => {
                    return Ok(SessionEnd::Disconnected(disconnect_reason(&reason)));
                }
                ActiveStageOutput::DeactivateAll => {
                    let (width, height, refresh, suppress) =
                        connect::reactivate(&factory, &mut framed, &mut stage).await.map_err(SessionEnd::Failed)?;
                    if !DesktopSize::acceptable_from_host(width, height) {
                        return Err(SessionEnd::Failed("desktop_too_large".into()));
                    }
                    screen.replace_store(width, height, desktop(width, height));
                    input.width = width;
                    input.height = height;
                    (refresh_ok, suppress_ok) = (refresh, suppress);
                }
                ActiveStageOutput::ServerRedirection(_) => {
                    return Err(SessionEnd::Failed("redirect_unsupported".into()));
                }
                _ => {}
            }
        }
        // The graphics pipeline may have resized the desktop by itself.
        (input.width, input.height) = screen.size();
        while let Some(event) = clipboard_events.as_ref().and_then(|events| events.try_recv().ok()) {
            let Some(channel) = stage.get_svc_processor_mut::<ironrdp_cliprdr::CliprdrClient>() else { break };
            let (messages, remote) = clipboard.on_event(channel, event);
            if let Some(messages) = messages {
                let frame = stage
                    .process_svc_processor_messages(messages)
                    .map_err(|_| SessionEnd::Failed("protocol_error".into()))?;
                framed.write_all(&frame).await.map_err(write_failed)?;
            }
            if let Some(remote) = remote
                && io.report(WorkerEventKind::Clipboard(remote)).await.is_err()
            {
                tracing::warn!(session_id = %io.session_id, "Remote clipboard event dropped");
            }
        }
        // A viewer waiting for a key frame: a repaint of the whole screen
        // is as near as RDP comes to asking for one.
        let key_frame_wanted = screen.take_key_frame_wish() && key_frame_asked.elapsed() >= KEY_FRAME_ASK_INTERVAL;
        if key_frame_wanted {
            key_frame_asked = tokio::time::Instant::now();
        }
        if (stage.take_bitmap_recovery_request() || key_frame_wanted)
            && let Ok(frames) = stage.request_full_redraw(input.width, input.height, refresh_ok, suppress_ok)
        {
            for frame in frames {
                framed.write_all(&frame).await.map_err(write_failed)?;
            }
        }
    }
}
