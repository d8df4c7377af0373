//! One attached socket: frames out, input in, notices relayed, heartbeat,
//! until the session ends, the client leaves or the appliance stops.

mod frames;

use rap_storage::SessionId;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use futures_util::{SinkExt, StreamExt};
use rap_storage::live::{Delivery, Subscription};
use rap_storage::types::AttachmentRole;
use tokio_util::sync::CancellationToken;

use super::envelope::{
    self, AttachPayload, Attached, AttachedPolicy, ClientMessage, Event, RenderTransport, ServerMessage, details,
    failure_message,
};
use super::socket::{Sink, Stream, close, close_with, send};
use crate::protocol::DesktopSize;
use crate::protocol::frame::{ColorMode, Compression};
use crate::protocol::framebuffer::Screen;
use crate::resource::flow::{Crossing, Flow, Refusal, may};
use crate::sessionbroker::state::SessionState;
use crate::sessionbroker::{AttachGrant, SessionNotice};
use crate::state::AppState;
use crate::worker::{ClipboardText, SessionInput};

/// How long an attached socket waits for its session's desktop to come up.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest text a client may type in one `input.unicode`.
const MAX_UNICODE_CHARS: usize = 4096;
/// How often a controller's socket looks for new files to offer.
const DOWNLOAD_LIST_INTERVAL: Duration = Duration::from_secs(2);
/// Largest clipboard text accepted, in bytes.
const MAX_CLIPBOARD_BYTES: usize = 512 * 1024;

pub(super) struct Connection {
    pub(super) state: AppState,
    pub(super) grant: AttachGrant,
    pub(super) trace_id: String,
    transport: RenderTransport,
    color_mode: ColorMode,
    compression: Compression,
    /// The screen sequence this viewer has been sent (0: nothing yet).
    seen: u64,
    /// The client said it decodes H.264.
    decodes_h264: bool,
    /// Where this viewer is in the host's H.264 stream.
    video: crate::protocol::video::VideoPosition,
    /// The client acknowledges updates: at most
    /// `MAX_UNACKED_UPDATES` are sent beyond its last `render.ack`.
    paced: bool,
    acked: u32,
    /// The screen changed while the client had too many updates to ack.
    owed: bool,
    /// Render updates sent on this socket.
    seq: u32,
    last_heard: Instant,
    /// The hash of the clipboard text this client last sent, so the same
    /// text coming back from the remote side is not echoed to it.
    last_clipboard_hash: Option<String>,
    /// The screen size this client was last told.
    size: Option<(u16, u16)>,
    pub(super) files: super::files::FileTransfers,
    /// Wakes when some principal's rights may have shrunk.
    pub(super) access: tokio::sync::watch::Receiver<u64>,
    /// What this socket may still send before it is cut as a flood.
    messages: crate::throttle::TokenBucket,
}

/// Why the loop ended.
enum Ending {
    /// The client went away or its transport failed: detach if controlling.
    TransportLost,
    /// The session ended, or the appliance is stopping: nothing to detach.
    Closed,
    /// The principal lost its right to the socket: the controller's
    /// session is detached like a lost transport, with its own reason.
    Revoked,
}

impl Connection {
    pub(super) fn new(
        state: AppState,
        grant: AttachGrant,
        trace_id: String,
        transport: RenderTransport,
        attach: &AttachPayload,
    ) -> Self {
        let access = state.access_changes().watch();
        let messages = super::access::message_budget(&state);
        Self {
            state,
            grant,
            trace_id,
            transport,
            color_mode: attach.color_mode,
            compression: attach.compression,
            seen: 0,
            decodes_h264: attach.decodes_h264().unwrap_or(false),
            video: crate::protocol::video::VideoPosition::Off,
            paced: attach.render_acks,
            acked: 0,
            owed: false,
            seq: 0,
            last_heard: Instant::now(),
            last_clipboard_hash: None,
            size: None,
            files: Default::default(),
            access,
            messages,
        }
    }

    pub(super) fn session_id(&self) -> SessionId {
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

    /// An error envelope with this socket's trace id.
    pub(super) fn error(&self, code: &str, words: &str, details: serde_json::Value) -> ServerMessage {
        ServerMessage::error(code, words, details, &self.trace_id)
    }

    /// A notice with this socket's trace id.
    pub(super) fn notice(&self, code: &str, words: &str, details: serde_json::Value) -> Event {
        Event::notice(code, words, details, &self.trace_id)
    }

    /// Whether `flow` may cross for this socket now (the one rule, in
    /// [`crate::resource::flow`]), with the session as stored.
    pub(super) async fn crossing(&self, flow: Flow) -> Result<(), Refusal> {
        let broker = self.state.broker();
        let Some(session) = broker.session(self.session_id()).await else { return Err(Refusal::NotActive) };
        let policy = broker.policy(&session).await;
        let mode = match flow {
            Flow::ClipboardIn | Flow::ClipboardOut => policy.map(|policy| policy.clipboard_mode),
            Flow::Upload | Flow::Download => policy.map(|policy| policy.file_transfer_mode),
        };
        let crossing = Crossing {
            controller: self.is_controller().await,
            state: session.state,
            mode: mode.unwrap_or(crate::resource::PolicyMode::Disabled),
        };
        may(flow, crossing)
    }

    pub(super) async fn run(&mut self, sink: &mut Sink, stream: &mut Stream, shutdown: CancellationToken) {
        let broker = self.state.broker().clone();
        let mut notices = broker.subscribe(self.session_id()).await;
        let Some(session) = broker.session(self.session_id()).await else {
            send(sink, self.error("session_not_found", "Session not found.", details::none())).await;
            close_with(sink, close::ATTACH_REFUSED, "session_not_found").await;
            return;
        };
        let policy = broker.policy(&session).await.map(|policy| AttachedPolicy {
            clipboard_mode: policy.clipboard_mode,
            file_transfer_mode: policy.file_transfer_mode,
            transfer_drive: crate::transfer::DRIVE_NAME,
            download_folder: crate::transfer::TO_CLIENT_DIR,
        });
        let Some(screen) = self.wait_for_screen(sink, &mut notices, session).await else { return };
        let (width, height) = screen.size();
        let attached = Attached {
            session_id: self.session_id(),
            attachment_id: self.grant.attachment_id,
            role: self.grant.role,
            width,
            height,
            render_transport: self.transport,
            color_mode: self.color_mode,
            compression: self.compression,
            codecs: if self.video_start() == crate::protocol::video::VideoPosition::Off {
                Vec::new()
            } else {
                vec![rap_wire::envelope::CODEC_H264]
            },
            policy,
        };
        if !send(sink, ServerMessage::Attached(attached)).await {
            return;
        }
        let current = broker.session(self.session_id()).await.map(|session| session.state);
        let state = ServerMessage::State { session_id: self.session_id(), state: current, reason: None, event: None };
        send(sink, state).await;
        self.state.metrics().viewer_attached();
        tracing::info!(session_id = %self.session_id(), attachment_id = %self.grant.attachment_id, role = %self.grant.role, "Viewer attached");

        if self.grant.role == AttachmentRole::Viewer {
            broker.announce_viewers(self.session_id()).await;
        }
        let ending = self.pump(sink, stream, &mut notices, &screen, &shutdown).await;
        self.state.metrics().viewer_detached();
        if self.grant.role == AttachmentRole::Viewer {
            broker.viewer_left(self.session_id(), self.grant.attachment_id).await;
        } else if self.is_controller().await {
            let reason = match ending {
                Ending::TransportLost => Some("transport_closed"),
                Ending::Revoked => Some("access_revoked"),
                Ending::Closed => None,
            };
            if let Some(reason) = reason {
                broker.transport_lost(self.session_id(), self.grant.attachment_id, reason).await;
            }
        }
        tracing::info!(session_id = %self.session_id(), attachment_id = %self.grant.attachment_id, "Viewer left");
    }

    /// The session's screen once its desktop is up; `None` (after telling
    /// the client why) if the session ends or never comes up.
    async fn wait_for_screen(
        &self,
        sink: &mut Sink,
        notices: &mut Subscription<SessionNotice>,
        session: rap_storage::repo::SessionRecord,
    ) -> Option<Arc<Screen>> {
        let screens = self.state.broker().screens();
        let deadline = tokio::time::Instant::now() + SCREEN_TIMEOUT;
        let mut state = session.state;
        // The reason of a failure that happens while this socket waits
        // comes with the notice, not with the record read before.
        let mut reason = session.failure_reason.clone();
        loop {
            if state.is_terminal() {
                self.send_ended(sink, state, reason).await;
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
                    state = changed;
                    reason = why.or(reason);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let error =
                        self.error("invalid_session_state", "The remote desktop did not come up.", details::none());
                    send(sink, error).await;
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
        let event = self.notice(code, message, details::reason(&reason));
        send(
            sink,
            ServerMessage::State { session_id: self.session_id(), state: Some(state), reason, event: Some(event) },
        )
        .await;
        let closed =
            self.notice("transport_closed", "The connection was closed because the session ended.", details::none());
        send(sink, ServerMessage::TransportClosed { reason: code, event: closed }).await;
        close_with(sink, close::SESSION_ENDED, "session_ended").await;
    }

    /// Tells the client why the server closes the socket, then closes it.
    async fn close_because(&self, sink: &mut Sink, reason: &'static str, words: &str, close_code: u16) {
        let event = self.notice("transport_closed", words, details::none());
        send(sink, ServerMessage::TransportClosed { reason, event }).await;
        close_with(sink, close_code, reason).await;
    }

    async fn pump(
        &mut self,
        sink: &mut Sink,
        stream: &mut Stream,
        notices: &mut Subscription<SessionNotice>,
        screen: &Arc<Screen>,
        shutdown: &CancellationToken,
    ) -> Ending {
        let ping_interval = self.state.broker().config().ping_interval;
        let mut ping = tokio::time::interval(ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changed = screen.watch();
        self.video = self.video_start();
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
                    self.close_because(sink, "server_shutdown", "The appliance is restarting.", close::GOING_AWAY).await;
                    return Ending::Closed;
                }
                message = stream.next() => {
                    self.last_heard = Instant::now();
                    if matches!(message, Some(Ok(Message::Text(_) | Message::Binary(_)))) {
                        if self.messages.take().is_err() {
                            self.cut_flood(sink).await;
                            return Ending::TransportLost;
                        }
                        if let Err(reason) = self.still_entitled().await {
                            self.revoke(sink, reason).await;
                            return Ending::Revoked;
                        }
                    }
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            if !self.on_text(sink, &text).await {
                                return Ending::TransportLost;
                            }
                            let caught_up = self.seen != 0 && !(self.owed && self.may_send());
                            if !caught_up && !self.send_damage(sink, screen).await {
                                return Ending::TransportLost;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            send(sink, self.error("invalid_request", "Binary messages are not accepted from clients.", details::none())).await;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ending::TransportLost,
                    }
                }
                changed = self.access.changed() => {
                    self.access.mark_unchanged();
                    let verdict = if changed.is_ok() { self.entitlement().await } else { Ok(()) };
                    if let Err(reason) = verdict {
                        self.revoke(sink, reason).await;
                        return Ending::Revoked;
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
                        self.close_because(sink, "heartbeat_timeout", "The connection went silent.", close::HEARTBEAT).await;
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
                    if !self.may_send() {
                        self.owed = true;
                        continue;
                    }
                    if !self.send_damage(sink, screen).await {
                        return Ending::TransportLost;
                    }
                }
            }
        }
    }

    /// Whether another update may go out now: always, unless the client
    /// paces and has too many unacknowledged.
    fn may_send(&self) -> bool {
        !self.paced || self.seq.wrapping_sub(self.acked) < rap_wire::envelope::MAX_UNACKED_UPDATES
    }

    /// `render.ack`: only for an update this socket has sent.
    async fn on_ack(&mut self, sink: &mut Sink, seq: u32) -> bool {
        let outstanding = self.seq.wrapping_sub(self.acked);
        if seq.wrapping_sub(self.acked) > outstanding {
            let words = "payload.seq must be an update this socket was sent.";
            let error = envelope::EnvelopeError::invalid_value("seq", words);
            return send(sink, self.error("invalid_request", words, error.details())).await;
        }
        self.acked = seq;
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
                return send(
                    sink,
                    self.error("invalid_request", "The message is not a valid envelope.", error.details()),
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
            ClientMessage::Ping => return send(sink, ServerMessage::Pong).await,
            ClientMessage::Attach(_) => {
                return send(sink, self.error("invalid_request", "This socket is already attached.", details::none()))
                    .await;
            }
            ClientMessage::RenderAck(envelope::RenderAckPayload { seq }) => return self.on_ack(sink, seq).await,
            ClientMessage::ColorMode(envelope::ColorModePayload { color_mode }) => {
                self.color_mode = color_mode;
                // The next frame is whole, in the new mode; H.264 only in
                // full colour, from its next key frame.
                self.seen = 0;
                self.video = self.video_start();
                return true;
            }
            ClientMessage::Mouse(mouse) => {
                SessionInput::Mouse { x: mouse.x, y: mouse.y, buttons: mouse.buttons, wheel_delta: mouse.wheel_delta }
            }
            ClientMessage::Key(key) => SessionInput::Key { code: key.code, scancode: key.scancode, down: key.down },
            ClientMessage::Unicode(unicode) if unicode.text.chars().count() > MAX_UNICODE_CHARS => {
                let too_long = self.error(
                    "invalid_request",
                    "The text is too long.",
                    details::one("max_chars", MAX_UNICODE_CHARS),
                );
                return send(sink, too_long).await;
            }
            ClientMessage::Unicode(unicode) => SessionInput::Unicode { text: unicode.text },
            ClientMessage::Resize(size) if DesktopSize::requested(size.width, size.height).is_err() => {
                return send(sink, self.error("invalid_request", "The size is out of bounds.", details::none())).await;
            }
            ClientMessage::Resize(size) => SessionInput::Resize { width: size.width, height: size.height },
            ClientMessage::Clipboard(clipboard) => match self.clipboard_in(clipboard).await {
                Ok(input) => input,
                Err((code, words, reason)) => {
                    return send(sink, self.error(code, words, details::reason(reason))).await;
                }
            },
        };
        if !self.is_controller().await {
            let refused = self.error(
                "forbidden",
                "Only the controller's input reaches the session.",
                details::reason("not_controller"),
            );
            return send(sink, refused).await;
        }
        if let Err(error) = self.state.broker().route_input(self.session_id(), input).await {
            static DROPS_LOGGED: crate::throttle::LogThrottle =
                crate::throttle::LogThrottle::new(Duration::from_secs(10));
            if let Some(held_back) = DROPS_LOGGED.admit() {
                tracing::warn!(session_id = %self.session_id(), %error, held_back, "Input dropped");
            }
            let busy = self.error(
                "rate_limited",
                "Input is arriving faster than the session takes it.",
                details::reason("input_queue_full"),
            );
            return send(sink, busy).await;
        }
        true
    }

    /// Checks clipboard text from the client against the rule (controller,
    /// active, policy) and its own limits, and labels it for the worker.
    async fn clipboard_in(
        &mut self,
        clipboard: envelope::ClipboardPayload,
    ) -> Result<SessionInput, (&'static str, &'static str, &'static str)> {
        match self.crossing(Flow::ClipboardIn).await {
            Ok(()) => {}
            Err(Refusal::NotController) => {
                return Err(("forbidden", "Only the controller's input reaches the session.", "not_controller"));
            }
            Err(Refusal::NotActive) => {
                return Err((
                    "invalid_session_state",
                    "Clipboard text is accepted only while the session is active.",
                    "not_active",
                ));
            }
            Err(Refusal::PolicyDenied) => {
                return Err((
                    "policy_denied",
                    "This resource's policy does not let clipboard text in.",
                    "clipboard_client_to_server",
                ));
            }
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
                let changed =
                    ServerMessage::State { session_id: self.session_id(), state: Some(state), reason, event: None };
                send(sink, changed).await
            }
            SessionNotice::TakenOver { attachment_id, by_user_id, .. } if attachment_id == self.grant.attachment_id => {
                if !self.end_transfers(sink).await {
                    return false;
                }
                let event = self.notice(
                    "session_taken_over",
                    "Another device took over this session, so this one was disconnected.",
                    details::one("by_user_id", by_user_id),
                );
                send(sink, ServerMessage::TakenOver { session_id: self.session_id(), by_user_id, event }).await;
                // The new controller's device holds the session now; this
                // socket is closed rather than left watching, so a lost
                // laptop cannot keep seeing the desktop after its owner
                // moved away from it.
                close_with(sink, close::TAKEN_OVER, "taken_over").await;
                false
            }
            SessionNotice::TakenOver { .. } => true,
            SessionNotice::Clipboard { clipboard, .. } => {
                // The controller alone gets the remote clipboard, and never
                // its own text back.
                if self.crossing(Flow::ClipboardOut).await.is_err()
                    || self.last_clipboard_hash.as_deref() == Some(clipboard.content_hash.as_str())
                {
                    return true;
                }
                send(sink, ServerMessage::Clipboard(clipboard)).await
            }
            SessionNotice::Viewers { viewers, .. } => {
                send(sink, ServerMessage::Viewers { session_id: self.session_id(), viewers }).await
            }
        }
    }
}
