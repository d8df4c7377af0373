//! Frames out: a viewer's catch-up on the screen, as pixels and, for a
//! viewer that decodes H.264, as the host's own access units (PROTOCOL.md,
//! "H.264 passthrough"). Units go before the pixels read at the same
//! state: pixels are read now, so they are never older than a unit.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::SinkExt;

use super::Connection;
use crate::protocol::frame::{ColorMode, Encoding, FrameHeader, HEADER_LEN, Rect};
use crate::protocol::framebuffer::{CatchUp, Damage, Screen, read_screen};
use crate::protocol::video::{Queued, VideoCatchUp, VideoPosition};
use crate::sessiongateway::envelope::{RenderTransport, ServerMessage, encode_binary_frame, encode_json_frame};
use crate::sessiongateway::socket::{Sink, compressed, send};

/// How a unit is painted once decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Paint {
    /// Its regions: the viewer is in step.
    Regions,
    /// Nothing: a joining viewer's decoder catches up on a canvas that
    /// already shows the present.
    DecodeOnly,
}

impl Connection {
    /// Where this viewer starts in the video stream: H.264 only over
    /// `binary_v1`, in full colour, for a client that said it decodes it.
    pub(super) fn video_start(&self) -> VideoPosition {
        let eligible =
            self.decodes_h264 && self.transport == RenderTransport::BinaryV1 && self.color_mode == ColorMode::FullColor;
        if eligible { VideoPosition::Waiting } else { VideoPosition::Off }
    }

    /// Sends everything that changed since this viewer's last frame, read
    /// now: the latest pixels, however many updates happened meanwhile,
    /// after the access units this viewer has not decoded yet.
    pub(super) async fn send_damage(&mut self, sink: &mut Sink, screen: &Arc<Screen>) -> bool {
        self.owed = false;
        let (seen, position) = (self.seen, self.video);
        let CatchUp { damage, video } =
            read_screen(screen, move |screen, wait| screen.catch_up_with(seen, position, wait)).await;
        self.video = video.position();
        let Some(damage) = damage else { return true };
        let size = (damage.width, damage.height);
        if self.size.is_some_and(|known| known != size) {
            // The remote desktop changed size: say so before its frames.
            let resized = ServerMessage::DisplaySize { session_id: self.session_id(), width: size.0, height: size.1 };
            if !send(sink, resized).await {
                return false;
            }
        }
        self.size = Some(size);
        let sent_video = match video {
            VideoCatchUp::Joined { units, painted_up_to, .. } => {
                let (shown, fresh) = units.split_at(units.partition_point(|unit| unit.screen_seq <= painted_up_to));
                self.send_units(sink, shown, Paint::DecodeOnly).await
                    && self.send_units(sink, fresh, Paint::Regions).await
            }
            VideoCatchUp::Live { units, .. } => self.send_units(sink, &units, Paint::Regions).await,
            VideoCatchUp::Off | VideoCatchUp::Waiting => true,
        };
        if !sent_video || !self.send_pixels(sink, screen, &damage).await {
            return false;
        }
        self.seen = damage.seq;
        true
    }

    /// Each unit as one update: the access unit, then the regions to paint
    /// from it (none when it paints its whole picture).
    async fn send_units(&mut self, sink: &mut Sink, units: &[Queued], paint: Paint) -> bool {
        for queued in units {
            let unit = &queued.unit;
            self.seq = self.seq.wrapping_add(1);
            let whole = paint == Paint::Regions && unit.regions == [unit.picture];
            let header = FrameHeader {
                encoding: Encoding::H264,
                color_mode: ColorMode::FullColor,
                last: whole,
                key_frame: unit.key_frame,
                seq: self.seq,
                rect: unit.picture,
                payload_len: u32::try_from(unit.data.len()).unwrap_or(u32::MAX),
            };
            let mut message = Vec::with_capacity(HEADER_LEN + unit.data.len());
            header.write(&mut message);
            message.extend_from_slice(&unit.data);
            if !self.send_message(sink, Message::Binary(message.into())).await {
                return false;
            }
            self.state.metrics().video_unit_sent();
            if whole {
                continue;
            }
            let nothing = [Rect::new(0, 0, 0, 0)];
            let regions = if paint == Paint::DecodeOnly { &nothing[..] } else { &unit.regions[..] };
            for (index, region) in regions.iter().enumerate() {
                let last = index + 1 == regions.len();
                let frame =
                    encode_binary_frame(self.seq, *region, ColorMode::FullColor, Encoding::H264Region, last, &[]);
                if !self.send_message(sink, Message::Binary(frame.into())).await {
                    return false;
                }
            }
        }
        true
    }

    /// The damaged rectangles' current pixels, as one update.
    async fn send_pixels(&mut self, sink: &mut Sink, screen: &Arc<Screen>, damage: &Damage) -> bool {
        if damage.rects.is_empty() {
            return true;
        }
        self.seq = self.seq.wrapping_add(1);
        let count = damage.rects.len();
        let encoding = self.color_mode.encoding(self.compression);
        for (index, &rect) in damage.rects.iter().enumerate() {
            let payload = if encoding.is_compressed() {
                compressed(screen, rect, self.color_mode).await
            } else {
                let color_mode = self.color_mode;
                let (_, pixels) =
                    read_screen(screen, move |screen, wait| screen.read_rect_with(rect, color_mode, wait)).await;
                Arc::new(pixels)
            };
            let last = index + 1 == count;
            let message = match self.transport {
                RenderTransport::BinaryV1 => {
                    let frame = encode_binary_frame(self.seq, rect, self.color_mode, encoding, last, &payload);
                    Message::Binary(frame.into())
                }
                RenderTransport::JsonBase64 => {
                    let frame = encode_json_frame(self.seq, rect, self.color_mode, encoding, last, &payload);
                    Message::Text(Utf8Bytes::from(frame))
                }
            };
            if !self.send_message(sink, message).await {
                return false;
            }
        }
        true
    }

    async fn send_message(&self, sink: &mut Sink, message: Message) -> bool {
        let bytes = match &message {
            Message::Binary(bytes) => bytes.len(),
            Message::Text(text) => text.len(),
            _ => 0,
        };
        if sink.send(message).await.is_err() {
            return false;
        }
        self.state.metrics().frame_sent(bytes as u64);
        true
    }
}
