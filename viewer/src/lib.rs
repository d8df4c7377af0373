//! The native viewer's core, without a window: one attached socket to the
//! appliance's gateway, `binary_v1` frames decoded (with `rap-wire`, the
//! appliance's own format crate) into a framebuffer of `0RGB` words, which
//! is what softbuffer presents, and input sent back. The window (winit +
//! softbuffer) paints [`Desktop`] where [`Event::Damage`] says.
//!
//! Decoding runs on the socket's task, never on the thread that paints;
//! H.264 (in full colour) with OpenH264 there too.

pub mod closing;
mod desktop;
pub mod layout;
mod video;

pub use desktop::{Decoded, Desktop, decode};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use rap_wire::envelope::{
    AttachPayload, ClipboardPayload, ColorModePayload, KeyPayload, MousePayload, RenderAckPayload, RenderTransport,
    ResizePayload, client_text,
};
use rap_wire::frame::{ColorMode, Compression, Encoding, FrameHeader, HEADER_LEN, Rect};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Events kept for the window at most; a window that stops reading makes
/// the socket wait, which the gateway handles like any slow viewer.
const EVENT_QUEUE: usize = 256;
const INPUT_QUEUE: usize = 1024;

/// What the window learns from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Attached {
        session_id: String,
        role: String,
        width: u16,
        height: u16,
        /// The resource's clipboard policy as the gateway states it
        /// (`disabled`, `client_to_server`, `server_to_client`,
        /// `bidirectional`); the gateway checks every crossing again.
        clipboard_mode: String,
        /// The picture comes as H.264 where it can (the gateway granted
        /// the `h264` codec), pixels otherwise.
        h264: bool,
    },
    /// The remote desktop's clipboard, when the policy lets it cross.
    Clipboard { text: String },
    /// Pixels of this rectangle changed in [`Desktop`].
    Damage(Rect),
    /// The desktop changed size; the whole framebuffer follows.
    Resized { width: u16, height: u16 },
    /// `session.state`, `session.taken_over`, `session.access_revoked`,
    /// `error`…: its type, its event code and words to show.
    Notice { kind: String, code: String, message: String },
    /// The socket closed: the close code, if the server gave one.
    Closed { code: Option<u16> },
}

/// Input for the remote desktop, as the gateway's envelopes carry it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Mouse {
        x: u16,
        y: u16,
        buttons: u8,
        wheel_delta: i16,
    },
    /// A physical key: its PS/2 set-1 scancode (extended keys with 0xE0 in
    /// the high byte), so every keyboard layout works.
    Key {
        scancode: u16,
        down: bool,
    },
    /// A physical key by its W3C `KeyboardEvent.code` name (`KeyA`,
    /// `ArrowLeft`), which the appliance maps to a scancode.
    Code {
        code: String,
        down: bool,
    },
    Resize {
        width: u16,
        height: u16,
    },
    /// Full colour or grayscale frames from now on.
    ColorMode(ColorMode),
    /// This computer's clipboard, for the remote desktop.
    Clipboard {
        text: String,
        sequence_id: u64,
    },
}

impl Input {
    /// The envelope, written with the same payload types the appliance
    /// parses (`rap-wire`), so the two cannot drift.
    fn envelope(&self) -> String {
        match self {
            Self::Mouse { x, y, buttons, wheel_delta } => {
                client_text(&MousePayload { x: *x, y: *y, buttons: *buttons, wheel_delta: Some(*wheel_delta) })
            }
            Self::Key { scancode, down } => {
                client_text(&KeyPayload { code: None, scancode: Some(*scancode), down: *down })
            }
            Self::Code { code, down } => {
                client_text(&KeyPayload { code: Some(code.clone()), scancode: None, down: *down })
            }
            Self::Resize { width, height } => client_text(&ResizePayload { width: *width, height: *height }),
            Self::ColorMode(color_mode) => client_text(&ColorModePayload { color_mode: *color_mode }),
            Self::Clipboard { text, sequence_id } => client_text(&ClipboardPayload {
                text: text.clone(),
                sequence_id: *sequence_id,
                origin: Some("native_viewer".to_owned()),
                content_hash: None,
            }),
        }
    }
}

/// An attached viewer.
pub struct Viewer {
    pub desktop: Arc<Mutex<Desktop>>,
    /// H.264 access units decoded so far.
    pub video_units: Arc<AtomicU64>,
    pub events: mpsc::Receiver<Event>,
    pub input: mpsc::Sender<Input>,
}

/// Connects to `url` (`ws://` or `wss://…/api/v1/gateway/ws`), trusting
/// `tls` when given, and attaches with `attach_token` asking for
/// `binary_v1` frames compressed with zlib, in `color_mode`.
pub async fn attach(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    attach_token: &str,
    color_mode: ColorMode,
) -> anyhow::Result<Viewer> {
    attach_to(Arc::new(Mutex::new(Desktop::default())), url, tls, attach_token, color_mode).await
}

/// [`attach`], painting into `desktop`: a reconnect keeps the picture it
/// had until the first new frame replaces it.
pub async fn attach_to(
    desktop: Arc<Mutex<Desktop>>,
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    attach_token: &str,
    color_mode: ColorMode,
) -> anyhow::Result<Viewer> {
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // H.264 in full colour only: the gateway sends grayscale as pixels.
    let mut video = (color_mode == ColorMode::FullColor).then(|| video::VideoDecoder::new().ok()).flatten();
    let attach = AttachPayload {
        attach_token: Some(attach_token.to_owned()),
        render_transport: Some(RenderTransport::BinaryV1),
        color_mode,
        compression: Compression::Zlib,
        data_plane_token: None,
        codecs: if video.is_some() { vec!["h264".to_owned()] } else { Vec::new() },
        // Each update is acknowledged once in the framebuffer: a slow
        // link or a window that stops taking events gets fewer, fresher
        // updates instead of a backlog.
        render_acks: true,
    };
    socket.send(Message::text(client_text(&attach))).await.context("sending attach")?;
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (input, mut input_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let shared = desktop.clone();
    let video_units = Arc::new(AtomicU64::new(0));
    let units = video_units.clone();
    tokio::spawn(async move {
        let (mut sink, mut stream) = socket.split();
        loop {
            tokio::select! {
                message = stream.next() => {
                    let event = match message {
                        Some(Ok(Message::Binary(bytes))) => match on_binary(&shared, video.as_mut(), &bytes) {
                            Ok(event) => {
                                units.store(video.as_ref().map_or(0, |video| video.units), Ordering::Relaxed);
                                if let Some(header) = FrameHeader::read(&bytes).filter(|header| header.last) {
                                    let ack = client_text(&RenderAckPayload { seq: header.seq });
                                    if sink.send(Message::text(ack)).await.is_err() {
                                        let _ = events_tx.send(Event::Closed { code: None }).await;
                                        return;
                                    }
                                }
                                event
                            }
                            // A stream that no longer decodes: a new socket
                            // starts at a key frame (the window reconnects).
                            Err(video::Lost) => {
                                let _ = events_tx.send(Event::Closed { code: None }).await;
                                return;
                            }
                        },
                        Some(Ok(Message::Text(text))) => on_text(&shared, &text),
                        Some(Ok(Message::Close(frame))) => {
                            let _ = events_tx.send(Event::Closed { code: frame.map(|frame| u16::from(frame.code)) }).await;
                            return;
                        }
                        Some(Ok(_)) => None,
                        Some(Err(_)) | None => {
                            let _ = events_tx.send(Event::Closed { code: None }).await;
                            return;
                        }
                    };
                    if let Some(event) = event
                        && events_tx.send(event).await.is_err()
                    {
                        return; // the window is gone
                    }
                }
                input = input_rx.recv() => {
                    let Some(input) = input else { return };
                    if sink.send(Message::text(input.envelope())).await.is_err() {
                        let _ = events_tx.send(Event::Closed { code: None }).await;
                        return;
                    }
                }
            }
        }
    });
    Ok(Viewer { desktop, video_units, events, input })
}

fn on_text(desktop: &Mutex<Desktop>, text: &str) -> Option<Event> {
    let message: Value = serde_json::from_str(text).ok()?;
    let kind = message["type"].as_str()?.to_owned();
    let payload = &message["payload"];
    let size = |value: &Value| value.as_u64().and_then(|number| u16::try_from(number).ok());
    match kind.as_str() {
        "session.attached" => {
            let (width, height) = (size(&payload["width"])?, size(&payload["height"])?);
            desktop.lock().ok()?.resize(width, height);
            Some(Event::Attached {
                session_id: payload["session_id"].as_str().unwrap_or_default().to_owned(),
                role: payload["role"].as_str().unwrap_or_default().to_owned(),
                width,
                height,
                clipboard_mode: payload["policy"]["clipboard_mode"].as_str().unwrap_or("disabled").to_owned(),
                h264: payload["codecs"].as_array().is_some_and(|codecs| codecs.iter().any(|codec| codec == "h264")),
            })
        }
        "display.size" => {
            let (width, height) = (size(&payload["width"])?, size(&payload["height"])?);
            desktop.lock().ok()?.resize(width, height);
            Some(Event::Resized { width, height })
        }
        "pong" | "session.viewers" => None,
        "clipboard.text" => Some(Event::Clipboard { text: payload["text"].as_str()?.to_owned() }),
        _ => {
            let event = &message["event"];
            let code = event["code"].as_str().or(payload["state"].as_str()).unwrap_or_default().to_owned();
            let message = event["fallback_message"].as_str().unwrap_or_default().to_owned();
            Some(Event::Notice { kind, code, message })
        }
    }
}

/// One `binary_v1` message: H.264 to `video`, pixels as they are.
fn on_binary(
    desktop: &Mutex<Desktop>,
    video: Option<&mut video::VideoDecoder>,
    bytes: &[u8],
) -> Result<Option<Event>, video::Lost> {
    let Some(header) = FrameHeader::read(bytes) else { return Ok(None) };
    let (Some(video), Encoding::H264 | Encoding::H264Region) = (video, header.encoding) else {
        return Ok(decode_frame(desktop, bytes));
    };
    let paint = if header.encoding == Encoding::H264 {
        let payload = bytes.get(HEADER_LEN..HEADER_LEN + header.payload_len as usize).ok_or(video::Lost)?;
        decoding(|| video.unit(&header, payload))?
    } else {
        video.region(header.rect)
    };
    let Some(paint) = paint else { return Ok(None) };
    let painted = desktop.lock().map_err(|_| video::Lost)?.put(paint.rect, &paint.rgba, false);
    Ok(painted.then_some(Event::Damage(paint.rect)))
}

/// Runs `work` (a picture's decode, milliseconds) without holding up the
/// other tasks of a multi-threaded runtime's worker.
fn decoding<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// One `binary_v1` message into the shared framebuffer: inflated first,
/// the lock (which the window takes to paint) held only for the copy.
fn decode_frame(desktop: &Mutex<Desktop>, bytes: &[u8]) -> Option<Event> {
    let frame = decode(bytes)?;
    desktop.lock().ok()?.apply(&frame).then_some(Event::Damage(frame.rect))
}
