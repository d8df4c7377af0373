//! What clients send on the live plane (API.md "Live plane"): the envelope,
//! each message's payload, and refusals that say why in stable codes.

use serde::Deserialize;
use serde_json::{Value, json};

// The messages a native client writes too: one definition in `rap-wire`.
pub use rap_wire::envelope::{
    AttachPayload, ClientPayload, ClipboardPayload, ColorModePayload, KeyPayload, MousePayload, RenderAckPayload,
    RenderTransport, ResizePayload, UnicodePayload,
};

/// `transfer_id` stays text here so a malformed one is refused with the
/// transfer's own `*.blocked` message rather than a generic parse error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUploadStartPayload {
    pub transfer_id: String,
    pub file_name: String,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUploadChunkPayload {
    pub transfer_id: String,
    pub offset: u64,
    /// Base64 (standard alphabet, padded).
    pub data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDownloadStartPayload {
    pub transfer_id: String,
    pub file_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDownloadAckPayload {
    pub transfer_id: String,
    /// Bytes of the file the client holds so far.
    pub offset: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferIdPayload {
    pub transfer_id: String,
}

/// What a client may send.
#[derive(Debug)]
pub enum ClientMessage {
    Attach(AttachPayload),
    Mouse(MousePayload),
    Key(KeyPayload),
    Unicode(UnicodePayload),
    Resize(ResizePayload),
    Clipboard(ClipboardPayload),
    FileUploadStart(FileUploadStartPayload),
    FileUploadChunk(FileUploadChunkPayload),
    FileUploadCancel(TransferIdPayload),
    FileDownloadList,
    FileDownloadStart(FileDownloadStartPayload),
    FileDownloadAck(FileDownloadAckPayload),
    FileDownloadCancel(TransferIdPayload),
    ColorMode(ColorModePayload),
    RenderAck(RenderAckPayload),
    Ping,
}

/// Why a client message was refused: a stable reason code, the field at
/// fault, and words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    /// `invalid_json`, `invalid_envelope`, `unknown_message_type`,
    /// `field_missing`, `field_unknown` or `invalid_value`.
    pub reason: &'static str,
    /// `type`, `payload`, or `payload.<field>`.
    pub field: Option<String>,
    pub words: String,
    /// The message's type when it could be read (file messages are
    /// refused with their own `*.blocked`).
    pub message_type: Option<String>,
}

impl EnvelopeError {
    fn new(reason: &'static str, field: Option<&str>, words: &str) -> Self {
        Self { reason, field: field.map(str::to_owned), words: words.to_owned(), message_type: None }
    }

    /// A payload field with a value outside what it may hold.
    pub fn invalid_value(field: &str, words: &str) -> Self {
        Self::new("invalid_value", Some(&format!("payload.{field}")), words)
    }

    /// The `details` of the error envelope sent back.
    pub fn details(&self) -> Value {
        json!({"reason": self.reason, "field": self.field, "message": self.words, "message_type": self.message_type})
    }
}

/// The outer shape every client message has.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<Value>,
}

impl ClientMessage {
    /// Parses `{"type", "payload"}`. A type without fields takes `payload`
    /// omitted, `{}` or `null`; so does one whose fields are all optional.
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|_| EnvelopeError::new("invalid_json", None, "The message is not valid JSON."))?;
        if !value.is_object() {
            return Err(EnvelopeError::new("invalid_envelope", None, "A message is an object with type and payload."));
        }
        let raw: RawEnvelope = serde_path_to_error::deserialize(value).map_err(|error| {
            let problem = crate::http::FieldProblem::of(&error, "envelope");
            EnvelopeError {
                reason: "invalid_envelope",
                field: Some(problem.field.clone()),
                words: format!("{} {}.", problem.field, problem.words),
                message_type: None,
            }
        })?;
        let payload = raw.payload.unwrap_or(Value::Null);
        Self::typed(&raw.kind, payload).map_err(|mut error| {
            error.message_type = Some(raw.kind.clone());
            error
        })
    }

    fn typed(kind: &str, payload: Value) -> Result<Self, EnvelopeError> {
        Ok(match kind {
            AttachPayload::TYPE => Self::Attach(fields(payload)?),
            MousePayload::TYPE => Self::Mouse(fields(payload)?),
            KeyPayload::TYPE => Self::Key(fields(payload)?),
            UnicodePayload::TYPE => Self::Unicode(fields(payload)?),
            ResizePayload::TYPE => Self::Resize(fields(payload)?),
            ClipboardPayload::TYPE => Self::Clipboard(fields(payload)?),
            "file_upload.start" => Self::FileUploadStart(fields(payload)?),
            "file_upload.chunk" => Self::FileUploadChunk(fields(payload)?),
            "file_upload.cancel" => Self::FileUploadCancel(fields(payload)?),
            "file_download.list" => {
                no_fields(payload)?;
                Self::FileDownloadList
            }
            "file_download.start" => Self::FileDownloadStart(fields(payload)?),
            "file_download.ack" => Self::FileDownloadAck(fields(payload)?),
            "file_download.cancel" => Self::FileDownloadCancel(fields(payload)?),
            ColorModePayload::TYPE => Self::ColorMode(fields(payload)?),
            RenderAckPayload::TYPE => Self::RenderAck(fields(payload)?),
            "ping" => {
                no_fields(payload)?;
                Self::Ping
            }
            _ => {
                return Err(EnvelopeError::new(
                    "unknown_message_type",
                    Some("type"),
                    "This message type is not part of the live plane.",
                ));
            }
        })
    }
}

/// A payload's fields; `null` is read as `{}`.
fn fields<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, EnvelopeError> {
    let payload = if payload.is_null() { Value::Object(Default::default()) } else { payload };
    serde_path_to_error::deserialize(payload).map_err(|error| {
        let problem = crate::http::FieldProblem::of(&error, "payload");
        let field = if problem.field == "payload" { problem.field } else { format!("payload.{}", problem.field) };
        let words = format!("{field} {}.", problem.words);
        EnvelopeError { reason: problem.code, field: Some(field), words, message_type: None }
    })
}

/// A payload that must carry nothing: absent, `null` or `{}`.
fn no_fields(payload: Value) -> Result<(), EnvelopeError> {
    match payload {
        Value::Null => Ok(()),
        Value::Object(object) => match object.keys().next() {
            None => Ok(()),
            Some(key) => {
                let field = format!("payload.{key}");
                let words = format!("{field} is not a known field.");
                Err(EnvelopeError { reason: "field_unknown", field: Some(field), words, message_type: None })
            }
        },
        _ => Err(EnvelopeError::new("invalid_value", Some("payload"), "payload must be an object.")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::ClientMessage;

    fn refused(text: &str) -> serde_json::Value {
        ClientMessage::parse(text).expect_err("refused").details()
    }

    #[test]
    fn a_message_without_fields_takes_its_payload_omitted_empty_or_null() {
        for text in [
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","payload":{}}"#,
            r#"{"type":"ping","payload":null}"#,
            r#"{"type":"file_download.list","payload":{}}"#,
        ] {
            assert!(ClientMessage::parse(text).is_ok(), "{text}");
        }
        // Attach's fields are all optional: an empty payload parses (and
        // is then refused for its missing token, in words).
        assert!(matches!(ClientMessage::parse(r#"{"type":"attach"}"#), Ok(ClientMessage::Attach(_))));
    }

    #[test]
    fn refusals_carry_stable_reason_codes_and_the_field_never_parser_text() {
        assert_eq!(
            refused(r#"{"type":"ping","payload":{"x":1}}"#),
            json!({"reason": "field_unknown", "field": "payload.x", "message": "payload.x is not a known field.", "message_type": "ping"})
        );
        assert_eq!(
            refused(r#"{"type":"input.mouse","payload":{"x":1,"y":2}}"#),
            json!({"reason": "field_missing", "field": "payload.buttons", "message": "payload.buttons is required.", "message_type": "input.mouse"})
        );
        assert_eq!(
            refused(r#"{"type":"input.mouse","payload":{"x":-1,"y":2,"buttons":0}}"#)["message"],
            "payload.x must be a whole number from 0 to 65535."
        );
        assert_eq!(
            refused(r#"{"type":"color_mode","payload":{"color_mode":"sepia"}}"#)["message"],
            "payload.color_mode must be one of: full_color, grayscale."
        );
        assert_eq!(refused(r#"{"type":"input.key","payload":[]}"#)["message"], "payload must be an object.");
        assert_eq!(refused(r#"{"type":"teleport"}"#)["reason"], "unknown_message_type");
        assert_eq!(refused(r#"{"type":"ping","extra":1}"#)["field"], "extra");
        assert_eq!(refused(r#"{"payload":{}}"#)["field"], "type");
        assert_eq!(refused("not json")["reason"], "invalid_json");
        assert_eq!(refused("[1]")["reason"], "invalid_envelope");
        for text in [r#"{"type":"input.mouse","payload":{"x":"a","y":2,"buttons":0}}"#, r#"{"type":7}"#] {
            let words = refused(text).to_string();
            assert!(!words.contains("u16") && !words.contains("struct") && !words.contains("line"), "{words}");
        }
    }
}
