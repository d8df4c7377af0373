//! What a client sends on the live plane (API.md "Live plane"): each
//! message's type name and payload, as the appliance parses them and as
//! the native viewer writes them. Optional fields a client leaves out are
//! left out of the JSON too, so what a client writes is exactly what the
//! appliance's strict parser (unknown fields refused) reads back.

use serde::{Deserialize, Serialize};

use crate::frame::{ColorMode, Compression};

/// A payload and the `type` it travels under.
pub trait ClientPayload: Serialize {
    const TYPE: &'static str;
}

/// The text frame for one client message: `{"type": …, "payload": …}`.
pub fn client_text<P: ClientPayload>(payload: &P) -> String {
    #[derive(Serialize)]
    struct Envelope<'a, P> {
        #[serde(rename = "type")]
        kind: &'static str,
        payload: &'a P,
    }
    // INVARIANT: these payloads are plain structs of numbers, strings and
    // enums; serializing them to JSON cannot fail.
    serde_json::to_string(&Envelope { kind: P::TYPE, payload }).expect("client payloads serialize")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderTransport {
    /// Text `render.frame` envelopes with base64 pixels.
    #[default]
    JsonBase64,
    /// Binary messages with the 24-byte header.
    BinaryV1,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachPayload {
    /// At the backend gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_token: Option<String>,
    /// At the direct worker endpoint (Data Plane v1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_plane_token: Option<String>,
    /// Default: `json_base64` at the gateway, `binary_v1` at a direct endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub render_transport: Option<RenderTransport>,
    #[serde(default)]
    pub color_mode: ColorMode,
    /// `zlib` compresses every frame payload (an addition to the contract).
    #[serde(default)]
    pub compression: Compression,
    /// What the client decodes besides pixels (API.md: `"h264"`). Names
    /// this appliance does not know are ignored, so a newer client still
    /// attaches; [`AttachPayload::decodes_h264`] reads the list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
    /// The client acknowledges the updates it has painted (`render.ack`):
    /// the server then keeps at most [`MAX_UNACKED_UPDATES`] of them in
    /// flight, so a slow link gets fewer, fresher updates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub render_acks: bool,
}

/// Updates a pacing server sends beyond the client's last `render.ack`.
pub const MAX_UNACKED_UPDATES: u32 = 4;

/// Every update up to `seq` (the frame header's sequence) is painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderAckPayload {
    pub seq: u32,
}

impl ClientPayload for RenderAckPayload {
    const TYPE: &'static str = "render.ack";
}

/// The codec name of `binary_v1` encoding 4.
pub const CODEC_H264: &str = "h264";
/// Longest `codecs` list accepted, and longest name in it.
pub const MAX_CODECS: usize = 8;
pub const MAX_CODEC_NAME: usize = 32;

impl AttachPayload {
    /// Whether the client said it decodes H.264; `Err` for a list too long
    /// to be a real client's.
    pub fn decodes_h264(&self) -> Result<bool, &'static str> {
        if self.codecs.len() > MAX_CODECS || self.codecs.iter().any(|name| name.len() > MAX_CODEC_NAME) {
            return Err("codecs");
        }
        Ok(self.codecs.iter().any(|name| name == CODEC_H264))
    }
}

impl ClientPayload for AttachPayload {
    const TYPE: &'static str = "attach";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MousePayload {
    pub x: u16,
    pub y: u16,
    /// DOM-style buttons held: 1 left, 2 right, 4 middle.
    pub buttons: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wheel_delta: Option<i16>,
}

impl ClientPayload for MousePayload {
    const TYPE: &'static str = "input.mouse";
}

/// A physical key, by its W3C `KeyboardEvent.code` name or its PS/2 set-1
/// scancode (extended keys with 0xE0 in the high byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPayload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scancode: Option<u16>,
    pub down: bool,
}

impl ClientPayload for KeyPayload {
    const TYPE: &'static str = "input.key";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnicodePayload {
    pub text: String,
}

impl ClientPayload for UnicodePayload {
    const TYPE: &'static str = "input.unicode";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizePayload {
    pub width: u16,
    pub height: u16,
}

impl ClientPayload for ResizePayload {
    const TYPE: &'static str = "display.resize";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipboardPayload {
    pub text: String,
    pub sequence_id: u64,
    /// The client's own label; the gateway records where text came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// SHA-256 of `text`, hex; checked when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

impl ClientPayload for ClipboardPayload {
    const TYPE: &'static str = "clipboard.text";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorModePayload {
    pub color_mode: ColorMode,
}

impl ClientPayload for ColorModePayload {
    const TYPE: &'static str = "color_mode";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_written_as_the_contract_spells_them() {
        let attach = AttachPayload {
            attach_token: Some("t".into()),
            render_transport: Some(RenderTransport::BinaryV1),
            compression: Compression::Zlib,
            ..AttachPayload::default()
        };
        assert_eq!(
            client_text(&attach),
            r#"{"type":"attach","payload":{"attach_token":"t","render_transport":"binary_v1","color_mode":"full_color","compression":"zlib"}}"#
        );
        let mouse = MousePayload { x: 1, y: 2, buttons: 1, wheel_delta: None };
        assert_eq!(client_text(&mouse), r#"{"type":"input.mouse","payload":{"x":1,"y":2,"buttons":1}}"#);
        let key = KeyPayload { code: Some("KeyA".into()), scancode: None, down: true };
        assert_eq!(client_text(&key), r#"{"type":"input.key","payload":{"code":"KeyA","down":true}}"#);
        let resize = ResizePayload { width: 1280, height: 720 };
        assert_eq!(client_text(&resize), r#"{"type":"display.resize","payload":{"width":1280,"height":720}}"#);
        let gray = ColorModePayload { color_mode: ColorMode::Grayscale };
        assert_eq!(client_text(&gray), r#"{"type":"color_mode","payload":{"color_mode":"grayscale"}}"#);
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    fn attach(json: &str) -> AttachPayload {
        serde_json::from_str(json).expect("an attach payload")
    }

    #[test]
    fn h264_is_read_from_the_codecs_list_and_unknown_names_are_ignored() {
        assert_eq!(attach(r#"{"attach_token":"t"}"#).decodes_h264(), Ok(false));
        assert_eq!(attach(r#"{"attach_token":"t","codecs":["h264"]}"#).decodes_h264(), Ok(true));
        assert_eq!(attach(r#"{"attach_token":"t","codecs":["av1","h264"]}"#).decodes_h264(), Ok(true));
        assert_eq!(attach(r#"{"attach_token":"t","codecs":["H264"]}"#).decodes_h264(), Ok(false), "names are exact");
        let many = format!(r#"{{"attach_token":"t","codecs":[{}]}}"#, [r#""x""#; MAX_CODECS + 1].join(","));
        assert_eq!(attach(&many).decodes_h264(), Err("codecs"));
        let long = format!(r#"{{"attach_token":"t","codecs":["{}"]}}"#, "x".repeat(MAX_CODEC_NAME + 1));
        assert_eq!(attach(&long).decodes_h264(), Err("codecs"));
        assert!(serde_json::from_str::<AttachPayload>(r#"{"attach_token":"t","codecs":"h264"}"#).is_err());
        let with = AttachPayload { codecs: vec![CODEC_H264.into()], ..AttachPayload::default() };
        assert_eq!(
            client_text(&with),
            r#"{"type":"attach","payload":{"color_mode":"full_color","compression":"none","codecs":["h264"]}}"#
        );
    }
}
