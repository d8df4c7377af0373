//! One gateway socket, from attach to close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rap_storage::live::Delivery;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::envelope::{
    self, AttachPayload, ClientMessage, RenderTransport, encode_binary_frame, encode_json_frame, envelope_with_event,
    event,
};
use crate::protocol::frame::{ColorMode, Compression, Rect, zlib};
use crate::protocol::framebuffer::{PayloadKey, Screen, Wait};
use crate::sessionbroker::state::SessionState;
use crate::sessionbroker::{AttachGrant, SessionNotice};
use crate::state::AppState;
use crate::worker::{ClipboardText, SessionInput};
use rap_storage::types::AttachmentRole;

/// A client must attach this soon after connecting.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an attached socket waits for its session's desktop to come up.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest text a client may type in one `input.unicode`.
const MAX_UNICODE_CHARS: usize = 4096;
/// How often a controller's socket looks for new files to offer.
const DOWNLOAD_LIST_INTERVAL: Duration = Duration::from_secs(2);
/// Largest clipboard text accepted, in bytes.
const MAX_CLIPBOARD_BYTES: usize = 512 * 1024;

/// Close codes (4000–4999 are the application's; documented in PROTOCOL.md).
mod close {
    pub const ATTACH_REFUSED: u16 = 4401;
    pub const ATTACH_TIMEOUT: u16 = 4408;
    pub const PROTOCOL: u16 = 4400;
    pub const SESSION_ENDED: u16 = 4409;
    pub const HEARTBEAT: u16 = 4410;
    pub const GOING_AWAY: u16 = 1001;
}

pub(super) type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

pub(super) async fn send_text(sink: &mut Sink, text: String) -> bool {
    sink.send(Message::Text(Utf8Bytes::from(text))).await.is_ok()
}

async fn close_with(sink: &mut Sink, code: u16, reason: &'static str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
}

/// Payloads past this size are compressed on the blocking pool, so a
/// full-screen frame never holds up the async workers.
const INLINE_COMPRESSION_LIMIT: usize = 64 * 1024;

async fn compress(payload: Vec<u8>) -> Vec<u8> {
    if payload.len() <= INLINE_COMPRESSION_LIMIT {
        return zlib(&payload);
    }
    tokio::task::spawn_blocking(move || zlib(&payload)).await.unwrap_or_default()
}

/// Reads the screen without parking an async worker: at once when no
/// decoder holds it, otherwise on the blocking pool, where waiting is fine.
async fn read_screen<R: Send + 'static>(
    screen: &Arc<Screen>,
    read: impl Fn(&Screen, Wait) -> Option<R> + Send + 'static,
) -> R {
    if let Some(value) = read(screen, Wait::No) {
        return value;
    }
    let screen = screen.clone();
    let waited = tokio::task::spawn_blocking(move || read(&screen, Wait::Yes));
    // INVARIANT: a waiting read always reads; only a panic in `read` (a
    // bug) could lose it, and then this socket's task ends with it.
    waited.await.ok().flatten().expect("a screen read that may wait returns a value")
}

/// The compressed current pixels of `rect`, shared with every other viewer
/// asking for the same state of the same rectangle.
async fn compressed(screen: &Arc<Screen>, rect: Rect, color_mode: ColorMode) -> Arc<Vec<u8>> {
    let key = PayloadKey { seq: read_screen(screen, |screen, wait| screen.seq_with(wait)).await, rect, color_mode };
    if let Some(payload) = screen.cached_payload(key) {
        return payload;
    }
    let (seq, pixels) = read_screen(screen, move |screen, wait| screen.read_rect_with(rect, color_mode, wait)).await;
    let payload = Arc::new(compress(pixels).await);
    screen.remember_payload(PayloadKey { seq, rect, color_mode }, payload.clone());
    payload
}

/// Waits for the first text message and parses it as `attach`; a refusal
/// carries its code, words, details and close code.
async fn read_attach(stream: &mut Stream) -> Result<AttachPayload, (&'static str, &'static str, Value, u16)> {
    let first = tokio::time::timeout(ATTACH_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let text = match first {
        Err(_) => return Err(("attach_timeout", "Send an attach message first.", json!({}), close::ATTACH_TIMEOUT)),
        Ok(None) => return Err(("invalid_request", "Send an attach message first.", json!({}), close::PROTOCOL)),
        Ok(Some(text)) => text,
    };
    let first = "The first message must be a valid attach.";
    match ClientMessage::parse(&text) {
        Ok(ClientMessage::Attach(payload)) => Ok(payload),
        Ok(_) => Err(("invalid_request", first, json!({"reason": "attach_required"}), close::PROTOCOL)),
        Err(error) => Err(("invalid_request", first, error.details(), close::PROTOCOL)),
    }
}

/// What a failed session's reason code means to the person in front of the
/// viewer (the code stays in `details.reason` for localisation).
fn failure_message(reason: Option<&str>) -> &'static str {
    match reason.unwrap_or_default() {
        "invalid_credentials" => {
            "The remote computer refused the sign-in stored for this resource. Ask an administrator to update its credentials."
        }
        "secret_unavailable" => {
            "The credentials for this resource could not be read. Ask an administrator to set them again."
        }
        "certificate_untrusted" => {
            "The remote computer's certificate is not trusted. An administrator can pin it or trust its CA."
        }
        "certificate_name_mismatch" => {
            "The remote computer's certificate is for another name than this resource's host."
        }
        "tls_failed" | "security_negotiation_failed" => {
            "A secure connection to the remote computer could not be set up."
        }
        "credentials_missing" => "This resource has no credentials to sign in with. Ask an administrator to set them.",
        "server_denied" => "The remote computer refused the session.",
        "reactivation_timeout" => "The remote computer stopped answering while changing the display.",
        "codec_setup_failed" => "The remote computer's graphics could not be set up.",
        "connection_refused" => "The remote computer refused the connection. Is remote desktop enabled on it?",
        "host_unreachable" | "connection_failed" => "The remote computer could not be reached from the appliance.",
        "connect_timeout" => "The remote computer did not answer in time.",
        "connection_lost" => "The connection to the remote computer was lost.",
        "desktop_too_large" => "The remote desktop is larger than the appliance accepts.",
        "protocol_error" | "redirect_unsupported" => "The remote computer sent something the appliance cannot handle.",
        "worker_lost" | "worker_panicked" | "worker_busy" | "worker_unavailable" | "event_queue_full" => {
            "The appliance lost this session's connection worker. Start the session again."
        }
        "appliance_restarted" => "The appliance restarted, which ended this session.",
        _ => "The remote session failed.",
    }
}

/// Where a socket came in, which decides how it must attach.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// `GET /api/v1/gateway/ws`: an attach token from the broker.
    Gateway,
    /// The direct worker endpoint: a Data Plane v1 token for this worker;
    /// `binary_v1` render only if the configuration allows it.
    Direct { worker_id: Uuid, binary_render: bool },
}

fn refused(reason: &'static str) -> (&'static str, &'static str, &'static str) {
    ("unauthorized", "The token is invalid, expired or already used.", reason)
}

/// Turns the attach message's credential into a grant.
async fn admit(
    state: &AppState,
    entry: Entry,
    attach: &AttachPayload,
) -> Result<AttachGrant, (&'static str, &'static str, &'static str)> {
    match entry {
        Entry::Gateway => {
            let token = attach.attach_token.as_deref().ok_or((
                "invalid_request",
                "attach_token is required here.",
                "attach_token_missing",
            ))?;
            state.broker().redeem(token).await.ok_or(refused("attach_token_invalid"))
        }
        Entry::Direct { worker_id, .. } => {
            let token = attach.data_plane_token.as_deref().ok_or((
                "invalid_request",
                "data_plane_token is required here.",
                "data_plane_token_missing",
            ))?;
            let data_plane = state.data_plane().ok_or(refused("data_plane_disabled"))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let claims = crate::dataplane::verify(token, data_plane.verifying_key(), now).map_err(|error| {
                tracing::info!(%error, "Data-plane token refused");
                refused("data_plane_token_invalid")
            })?;
            if claims.wid != worker_id {
                return Err(refused("data_plane_wrong_worker"));
            }
            let lifetime = std::time::Duration::from_secs(u64::try_from(claims.exp - now).unwrap_or(0).max(1));
            if !state.use_data_plane_token(claims.jti, lifetime).await {
                return Err(refused("data_plane_token_invalid"));
            }
            let session = state.broker().session(claims.sid).await.ok_or(refused("data_plane_token_invalid"))?;
            if session.worker_id != Some(worker_id) {
                return Err(refused("data_plane_wrong_worker"));
            }
            let controls =
                state.broker().controller(claims.sid).await.is_some_and(|binding| binding.attachment_id == claims.aid);
            Ok(AttachGrant {
                session_id: claims.sid,
                attachment_id: claims.aid,
                user_id: claims.sub,
                device_id: None,
                role: if controls { AttachmentRole::Controller } else { AttachmentRole::Viewer },
            })
        }
    }
}

pub(crate) async fn serve(
    socket: WebSocket,
    state: AppState,
    entry: Entry,
    trace_id: String,
    shutdown: CancellationToken,
) {
    let (mut sink, mut stream) = socket.split();
    attach_and_run(&mut sink, &mut stream, state, entry, trace_id, shutdown).await;
    linger(&mut stream).await;
}

/// How long a closed socket waits for the client's answering close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Completes the close handshake: reads (and drops) what the client still
/// sends until its close frame, so the TCP connection ends with FIN, not
/// with a reset that could destroy the close frame and its reason before
/// the client reads them.
async fn linger(stream: &mut Stream) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn attach_and_run(
    sink: &mut Sink,
    stream: &mut Stream,
    state: AppState,
    entry: Entry,
    trace_id: String,
    shutdown: CancellationToken,
) {
    let attach = match read_attach(stream).await {
        Ok(attach) => attach,
        Err((code, message, details, close_code)) => {
            send_text(sink, envelope::error(code, message, details, &trace_id)).await;
            close_with(sink, close_code, "attach_required").await;
            return;
        }
    };
    let grant = match admit(&state, entry, &attach).await {
        Ok(grant) => grant,
        Err((code, message, reason)) => {
            send_text(sink, envelope::error(code, message, json!({"reason": reason}), &trace_id)).await;
            close_with(sink, close::ATTACH_REFUSED, reason).await;
            return;
        }
    };
    let transport = match entry {
        Entry::Gateway => attach.render_transport.unwrap_or(RenderTransport::JsonBase64),
        Entry::Direct { binary_render: true, .. } => attach.render_transport.unwrap_or(RenderTransport::BinaryV1),
        // The seed: without binary render the direct endpoint stays JSON;
        // `session.attached` says which transport the socket got.
        Entry::Direct { binary_render: false, .. } => RenderTransport::JsonBase64,
    };
    let mut connection = Connection {
        state,
        grant,
        trace_id,
        transport,
        color_mode: attach.color_mode,
        compression: attach.compression,
        seen: 0,
        seq: 0,
        last_heard: Instant::now(),
        last_clipboard_hash: None,
        size: None,
        files: Default::default(),
    };
    connection.run(sink, stream, shutdown).await;
}

pub(super) struct Connection {
    pub(super) state: AppState,
    pub(super) grant: AttachGrant,
    pub(super) trace_id: String,
    transport: RenderTransport,
    color_mode: ColorMode,
    compression: Compression,
    /// The screen sequence this viewer has been sent (0: nothing yet).
    seen: u64,
    /// Render updates sent on this socket.
    seq: u32,
    last_heard: Instant,
    /// The hash of the clipboard text this client last sent, so the same
    /// text coming back from the remote side is not echoed to it.
    last_clipboard_hash: Option<String>,
    /// The screen size this client was last told.
    size: Option<(u16, u16)>,
    pub(super) files: super::files::FileTransfers,
}

/// Why the loop ended.
enum Ending {
    /// The client went away or its transport failed: detach if controlling.
    TransportLost,
    /// The session ended, or the appliance is stopping: nothing to detach.
    Closed,
}

impl Connection {
    pub(super) fn session_id(&self) -> Uuid {
        self.grant.session_id
    }

    pub(super) async fn is_controller(&self) -> bool {
        self.grant.role == AttachmentRole::Controller
            && self
                .state
                .broker()
                .controller(self.session_id())
                .await
                .is_some_and(|binding| binding.attachment_id == self.grant.attachment_id)
    }

    async fn run(&mut self, sink: &mut Sink, stream: &mut Stream, shutdown: CancellationToken) {
        let broker = self.state.broker().clone();
        let mut notices = broker.subscribe(self.session_id()).await;
        let Some(session) = broker.session(self.session_id()).await else {
            send_text(sink, envelope::error("session_not_found", "Session not found.", json!({}), &self.trace_id))
                .await;
            close_with(sink, close::ATTACH_REFUSED, "session_not_found").await;
            return;
        };
        // What the viewer may offer its user (enforced again on each use).
        let policy = broker.policy(&session).await.map(|policy| {
            json!({
                "clipboard_mode": policy.clipboard_mode,
                "file_transfer_mode": policy.file_transfer_mode,
                // Where files are on the remote desktop, for the viewer to say.
                "transfer_drive": crate::transfer::DRIVE_NAME,
                "download_folder": crate::transfer::TO_CLIENT_DIR,
            })
        });
        let Some(screen) = self.wait_for_screen(sink, &mut notices, session).await else { return };
        let (width, height) = screen.size();
        let attached = json!({
            "session_id": self.session_id(),
            "attachment_id": self.grant.attachment_id,
            "role": self.grant.role,
            "width": width,
            "height": height,
            "render_transport": self.transport,
            "color_mode": self.color_mode,
            "compression": self.compression,
            "policy": policy,
        });
        if !send_text(sink, envelope::envelope("session.attached", attached)).await {
            return;
        }
        let current = broker.session(self.session_id()).await.map(|session| session.state);
        send_text(
            sink,
            envelope::envelope("session.state", json!({"session_id": self.session_id(), "state": current})),
        )
        .await;
        self.state.metrics().viewer_attached();
        tracing::info!(session_id = %self.session_id(), attachment_id = %self.grant.attachment_id, role = %self.grant.role, "Viewer attached");

        if self.grant.role == AttachmentRole::Viewer {
            broker.announce_viewers(self.session_id()).await;
        }
        let ending = self.pump(sink, stream, &mut notices, &screen, &shutdown).await;
        self.state.metrics().viewer_detached();
        if self.grant.role == AttachmentRole::Viewer {
            broker.viewer_left(self.session_id(), self.grant.attachment_id).await;
        } else if matches!(ending, Ending::TransportLost) && self.is_controller().await {
            broker.transport_lost(self.session_id(), self.grant.attachment_id).await;
        }
        tracing::info!(session_id = %self.session_id(), attachment_id = %self.grant.attachment_id, "Viewer left");
    }

    /// The session's screen once its desktop is up; `None` (after telling
    /// the client why) if the session ends or never comes up.
    async fn wait_for_screen(
        &self,
        sink: &mut Sink,
        notices: &mut rap_storage::live::Subscription<SessionNotice>,
        session: rap_storage::repo::SessionRecord,
    ) -> Option<Arc<Screen>> {
        let screens = &self.state.broker().live().queues.screens;
        let deadline = tokio::time::Instant::now() + SCREEN_TIMEOUT;
        let mut state = Some(session.state);
        // The reason of a failure that happens while this socket waits
        // comes with the notice, not with the record read before.
        let mut reason = session.failure_reason.clone();
        loop {
            if state.is_some_and(SessionState::is_terminal) {
                self.send_ended(sink, state.unwrap_or(SessionState::Terminated), reason).await;
                return None;
            }
            // A desktop can be up before the session is `active` (still
            // starting, or resuming): its opening wakes this socket too.
            let opened = screens.opened();
            if let Some(screen) = screens.get(self.session_id()) {
                return Some(screen);
            }
            let notice = tokio::select! {
                notice = tokio::time::timeout_at(deadline, notices.next()) => notice,
                () = opened => continue,
            };
            match notice {
                Ok(Some(Delivery::Message(SessionNotice::StateChanged { state: changed, reason: why, .. }))) => {
                    state = Some(changed);
                    reason = why.or(reason);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    send_text(
                        sink,
                        envelope::error(
                            "invalid_session_state",
                            "The remote desktop did not come up.",
                            json!({}),
                            &self.trace_id,
                        ),
                    )
                    .await;
                    close_with(sink, close::SESSION_ENDED, "session_not_ready").await;
                    return None;
                }
            }
        }
    }

    async fn send_ended(&self, sink: &mut Sink, state: SessionState, reason: Option<String>) {
        let (code, message) = match state {
            SessionState::Failed => ("session_failed", failure_message(reason.as_deref())),
            _ => ("session_ended", "The remote session has ended."),
        };
        let notice = event(code, message, json!({"reason": reason}), &self.trace_id);
        let payload = json!({"session_id": self.session_id(), "state": state, "reason": reason});
        send_text(sink, envelope_with_event("session.state", payload, notice)).await;
        let closed = event(
            "transport_closed",
            "The connection was closed because the session ended.",
            json!({}),
            &self.trace_id,
        );
        send_text(sink, envelope_with_event("transport.closed", json!({"reason": code}), closed)).await;
        close_with(sink, close::SESSION_ENDED, "session_ended").await;
    }

    async fn pump(
        &mut self,
        sink: &mut Sink,
        stream: &mut Stream,
        notices: &mut rap_storage::live::Subscription<SessionNotice>,
        screen: &Arc<Screen>,
        shutdown: &CancellationToken,
    ) -> Ending {
        let ping_interval = self.state.broker().config().ping_interval;
        let mut ping = tokio::time::interval(ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changed = screen.watch();
        let mut offer_check = tokio::time::interval(DOWNLOAD_LIST_INTERVAL);
        offer_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first frame is the whole screen.
        if !self.send_damage(sink, screen).await {
            return Ending::TransportLost;
        }
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    let closed = event("transport_closed", "The appliance is restarting.", json!({}), &self.trace_id);
                    send_text(sink, envelope_with_event("transport.closed", json!({"reason": "server_shutdown"}), closed)).await;
                    close_with(sink, close::GOING_AWAY, "server_shutdown").await;
                    return Ending::Closed;
                }
                message = stream.next() => {
                    self.last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            if !self.on_text(sink, &text).await {
                                return Ending::TransportLost;
                            }
                            if self.seen == 0 && !self.send_damage(sink, screen).await {
                                return Ending::TransportLost;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            send_text(sink, envelope::error("invalid_request", "Binary messages are not accepted from clients.", json!({}), &self.trace_id)).await;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ending::TransportLost,
                    }
                }
                notice = notices.next() => match notice {
                    Some(Delivery::Message(notice)) => {
                        if !self.on_notice(sink, notice).await {
                            return Ending::Closed;
                        }
                    }
                    Some(Delivery::Lagged(_)) => {}
                    None => return Ending::Closed,
                },
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > ping_interval * 2 {
                        let closed = event("transport_closed", "The connection went silent.", json!({}), &self.trace_id);
                        send_text(sink, envelope_with_event("transport.closed", json!({"reason": "heartbeat_timeout"}), closed)).await;
                        close_with(sink, close::HEARTBEAT, "heartbeat_timeout").await;
                        return Ending::TransportLost;
                    }
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return Ending::TransportLost;
                    }
                }
                _ = offer_check.tick(), if self.grant.role == AttachmentRole::Controller => {
                    if !self.offer_downloads(sink, false).await {
                        return Ending::TransportLost;
                    }
                }
                result = changed.changed() => {
                    if result.is_err() {
                        return Ending::Closed;
                    }
                    if !self.send_damage(sink, screen).await {
                        return Ending::TransportLost;
                    }
                }
            }
        }
    }

    /// Sends everything that changed since this viewer's last frame, read
    /// now: the latest pixels, however many updates happened meanwhile.
    async fn send_damage(&mut self, sink: &mut Sink, screen: &Arc<Screen>) -> bool {
        let seen = self.seen;
        let Some(damage) = read_screen(screen, move |screen, wait| screen.damage_since_with(seen, wait)).await else {
            return true;
        };
        let size = (damage.width, damage.height);
        if self.size.is_some_and(|known| known != size) {
            // The remote desktop changed size: say so before its frames.
            let payload = json!({"session_id": self.session_id(), "width": size.0, "height": size.1});
            if !send_text(sink, envelope::envelope("display.size", payload)).await {
                return false;
            }
        }
        self.size = Some(size);
        self.seq = self.seq.wrapping_add(1);
        let count = damage.rects.len();
        let encoding = self.color_mode.encoding(self.compression);
        for (index, rect) in damage.rects.into_iter().enumerate() {
            let payload = if encoding.is_compressed() {
                compressed(screen, rect, self.color_mode).await
            } else {
                let color_mode = self.color_mode;
                let (_, pixels) =
                    read_screen(screen, move |screen, wait| screen.read_rect_with(rect, color_mode, wait)).await;
                Arc::new(pixels)
            };
            let last = index + 1 == count;
            let (message, bytes) = match self.transport {
                RenderTransport::BinaryV1 => {
                    let frame = encode_binary_frame(self.seq, rect, self.color_mode, encoding, last, &payload);
                    let bytes = frame.len();
                    (Message::Binary(frame.into()), bytes)
                }
                RenderTransport::JsonBase64 => {
                    let frame = encode_json_frame(self.seq, rect, self.color_mode, encoding, last, &payload);
                    let bytes = frame.len();
                    (Message::Text(Utf8Bytes::from(frame)), bytes)
                }
            };
            if sink.send(message).await.is_err() {
                return false;
            }
            self.state.metrics().frame_sent(bytes as u64);
        }
        self.seen = damage.seq;
        true
    }

    /// Handles one client message; `false` if the socket should close.
    async fn on_text(&mut self, sink: &mut Sink, text: &str) -> bool {
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(error) => {
                if let Some(sent) = self.on_malformed_file_message(sink, text, &error).await {
                    return sent;
                }
                return send_text(
                    sink,
                    envelope::error(
                        "invalid_request",
                        "The message is not a valid envelope.",
                        error.details(),
                        &self.trace_id,
                    ),
                )
                .await;
            }
        };
        let input = match message {
            ClientMessage::FileUploadStart(_)
            | ClientMessage::FileUploadChunk(_)
            | ClientMessage::FileUploadCancel(_)
            | ClientMessage::FileDownloadList
            | ClientMessage::FileDownloadStart(_)
            | ClientMessage::FileDownloadAck(_)
            | ClientMessage::FileDownloadCancel(_) => return self.on_file_message(sink, message).await,
            ClientMessage::Ping => return send_text(sink, json!({"type": "pong"}).to_string()).await,
            ClientMessage::Attach(_) => {
                return send_text(
                    sink,
                    envelope::error("invalid_request", "This socket is already attached.", json!({}), &self.trace_id),
                )
                .await;
            }
            ClientMessage::ColorMode(envelope::ColorModePayload { color_mode }) => {
                self.color_mode = color_mode;
                // The next frame is whole, in the new mode.
                self.seen = 0;
                return true;
            }
            ClientMessage::Mouse(mouse) => {
                SessionInput::Mouse { x: mouse.x, y: mouse.y, buttons: mouse.buttons, wheel_delta: mouse.wheel_delta }
            }
            ClientMessage::Key(key) => SessionInput::Key { code: key.code, scancode: key.scancode, down: key.down },
            ClientMessage::Unicode(unicode) if unicode.text.chars().count() > MAX_UNICODE_CHARS => {
                return send_text(
                    sink,
                    envelope::error(
                        "invalid_request",
                        "The text is too long.",
                        json!({"max_chars": MAX_UNICODE_CHARS}),
                        &self.trace_id,
                    ),
                )
                .await;
            }
            ClientMessage::Unicode(unicode) => SessionInput::Unicode { text: unicode.text },
            ClientMessage::Resize(size)
                if !(64..=7680).contains(&size.width) || !(64..=4320).contains(&size.height) =>
            {
                return send_text(
                    sink,
                    envelope::error("invalid_request", "The size is out of bounds.", json!({}), &self.trace_id),
                )
                .await;
            }
            ClientMessage::Resize(size) => SessionInput::Resize { width: size.width, height: size.height },
            ClientMessage::Clipboard(clipboard) => match self.clipboard_in(clipboard).await {
                Ok(input) => input,
                Err((code, message, reason)) => {
                    return send_text(sink, envelope::error(code, message, json!({"reason": reason}), &self.trace_id))
                        .await;
                }
            },
        };
        if !self.is_controller().await {
            let details = json!({"reason": "not_controller"});
            return send_text(
                sink,
                envelope::error(
                    "forbidden",
                    "Only the controller's input reaches the session.",
                    details,
                    &self.trace_id,
                ),
            )
            .await;
        }
        if let Err(error) = self.state.broker().route_input(self.session_id(), input).await {
            tracing::warn!(session_id = %self.session_id(), %error, "Input dropped");
            let details = json!({"reason": "input_queue_full"});
            return send_text(
                sink,
                envelope::error(
                    "rate_limited",
                    "Input is arriving faster than the session takes it.",
                    details,
                    &self.trace_id,
                ),
            )
            .await;
        }
        true
    }

    /// Checks clipboard text from the client against the resource's policy
    /// and the session's state, and labels it for the worker.
    async fn clipboard_in(
        &mut self,
        clipboard: envelope::ClipboardPayload,
    ) -> Result<SessionInput, (&'static str, &'static str, &'static str)> {
        let broker = self.state.broker();
        let session = broker.session(self.session_id()).await.ok_or((
            "invalid_session_state",
            "The session is gone.",
            "session_gone",
        ))?;
        let allowed = broker.clipboard_mode(&session).await.is_some_and(|mode| mode.allows_client_to_server());
        if !allowed {
            return Err((
                "policy_denied",
                "This resource's policy does not let clipboard text in.",
                "clipboard_client_to_server",
            ));
        }
        if session.state != SessionState::Active {
            return Err((
                "invalid_session_state",
                "Clipboard text is accepted only while the session is active.",
                "not_active",
            ));
        }
        if clipboard.text.len() > MAX_CLIPBOARD_BYTES {
            return Err(("payload_too_large", "The clipboard text is too large.", "clipboard_too_large"));
        }
        let content_hash = ClipboardText::hash_of(&clipboard.text);
        if clipboard.content_hash.as_ref().is_some_and(|given| !given.eq_ignore_ascii_case(&content_hash)) {
            return Err(("invalid_request", "content_hash does not match the text.", "content_hash_mismatch"));
        }
        self.last_clipboard_hash = Some(content_hash.clone());
        // The gateway names the attachment; the client's own label follows.
        let origin =
            match clipboard.origin.as_deref().map(str::trim).filter(|label| !label.is_empty() && label.len() <= 64) {
                Some(label) => format!("client:{}:{label}", self.grant.attachment_id),
                None => format!("client:{}", self.grant.attachment_id),
            };
        Ok(SessionInput::Clipboard(ClipboardText {
            text: clipboard.text,
            sequence_id: clipboard.sequence_id,
            origin,
            content_hash,
        }))
    }

    /// Relays a session notice; `false` once the session has ended.
    async fn on_notice(&mut self, sink: &mut Sink, notice: SessionNotice) -> bool {
        match notice {
            SessionNotice::StateChanged { state, reason, .. } if state.is_terminal() => {
                self.send_ended(sink, state, reason).await;
                false
            }
            SessionNotice::StateChanged { state, reason, .. } => {
                let payload: Value = json!({"session_id": self.session_id(), "state": state, "reason": reason});
                send_text(sink, envelope::envelope("session.state", payload)).await
            }
            SessionNotice::TakenOver { attachment_id, by_user_id, .. } if attachment_id == self.grant.attachment_id => {
                if !self.end_transfers(sink).await {
                    return false;
                }
                let notice = event(
                    "session_taken_over",
                    "Another device took over this session; you can still watch it.",
                    json!({"by_user_id": by_user_id}),
                    &self.trace_id,
                );
                let payload = json!({"session_id": self.session_id(), "by_user_id": by_user_id});
                send_text(sink, envelope_with_event("session.taken_over", payload, notice)).await
            }
            SessionNotice::TakenOver { .. } => true,
            SessionNotice::Clipboard { clipboard, .. } => {
                // The controller alone gets the remote clipboard, and never
                // its own text back.
                if !self.is_controller().await
                    || self.last_clipboard_hash.as_deref() == Some(clipboard.content_hash.as_str())
                {
                    return true;
                }
                let payload = json!({
                    "text": clipboard.text,
                    "sequence_id": clipboard.sequence_id,
                    "origin": clipboard.origin,
                    "content_hash": clipboard.content_hash,
                });
                send_text(sink, envelope::envelope("clipboard.text", payload)).await
            }
            SessionNotice::Viewers { viewers, .. } => {
                let payload = json!({"session_id": self.session_id(), "viewers": viewers, "count": viewers.len()});
                send_text(sink, envelope::envelope("session.viewers", payload)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::failure_message;

    /// Every failure reason PROTOCOL.md documents gets words of its own.
    #[test]
    fn each_documented_failure_reason_is_explained() {
        let protocol = include_str!("../../../docs/PROTOCOL.md");
        let section = protocol.split("- Failure reasons").nth(1).expect("the failure reasons list");
        let section = section.split("- `GET /api/v1/workers`").next().expect("its end");
        let reasons: Vec<&str> = section
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_') && code.contains('_'))
            .filter(|code| !["failure_reason", "remote_logoff"].contains(code))
            .collect();
        assert!(reasons.len() >= 18, "{reasons:?}");
        let generic = failure_message(None);
        for reason in reasons {
            assert_ne!(failure_message(Some(reason)), generic, "{reason} has no message of its own");
        }
    }
}
