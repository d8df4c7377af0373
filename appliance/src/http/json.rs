//! `ApiJson<T>`: the JSON body extractor every handler uses.
//!
//! It answers with the envelope instead of axum's plain-text rejections:
//! 413 over the body limit, 415 without a JSON content type, 400 for
//! malformed JSON (with line and column) and for fields that are unknown,
//! missing or of the wrong type (named in `details.fields`, using the path
//! into the document, e.g. `policy.clipboard_mode`).

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::ApiError;

/// Largest JSON body accepted (API.md: 1 MiB; file chunks use the WebSocket).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.to_ascii_lowercase().ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::invalid_request("The request body could not be read.")
            }
        })?;
        decode(&body).map(ApiJson)
    }
}

/// Decodes a JSON document into `T`, mapping every failure to a 400 that
/// says where and why.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        if error.inner().classify() == serde_json::error::Category::Data {
            let problem = FieldProblem::of(&error, "body");
            ApiError::invalid_request("The request has invalid fields.")
                .with_details(json!({ "fields": { problem.field: problem.words } }))
        } else {
            syntax_error(error.inner())
        }
    })?;
    deserializer.end().map_err(|error| syntax_error(&error))?;
    Ok(value)
}

fn syntax_error(error: &serde_json::Error) -> ApiError {
    ApiError::invalid_request("The request body is not valid JSON.")
        .with_details(json!({ "line": error.line(), "column": error.column() }))
}

/// What is wrong with one field of a document, in a stable code and in
/// words a client can show; never serde's wording or Rust type names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The path of the field (`policy.clipboard_mode`), or the document's
    /// own name when the document as a whole is wrong.
    pub field: String,
    /// `field_missing`, `field_unknown` or `invalid_value`.
    pub code: &'static str,
    pub words: String,
}

impl FieldProblem {
    /// The problem behind a data error (not a syntax error), `root` naming
    /// the document itself.
    pub fn of<E: std::fmt::Display>(error: &serde_path_to_error::Error<E>, root: &str) -> Self {
        let message = error.inner().to_string();
        let message = message.rfind(" at line ").map_or(message.as_str(), |index| &message[..index]);
        let path = error.path().to_string();
        let at = |name: &str| match path.as_str() {
            "." => name.to_owned(),
            parent => format!("{parent}.{name}"),
        };
        let field = if path == "." { root.to_owned() } else { path.clone() };
        if let Some(missing) = quoted_after(message, "missing field ") {
            return Self { field: at(missing), code: "field_missing", words: "is required".into() };
        }
        if quoted_after(message, "unknown field ").is_some() {
            // The path already ends in the unknown field's own name.
            return Self { field, code: "field_unknown", words: "is not a known field".into() };
        }
        let words = if let Some(expected) = message.strip_prefix("unknown variant ").and_then(|rest| expected_of(rest))
        {
            format!("must be one of: {}", backticked(expected).join(", "))
        } else if let Some(expected) = ["invalid type: ", "invalid value: "]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(expected_of)
        {
            format!("must be {}", describe(expected))
        } else if message.starts_with("invalid length") && message.contains("expected struct") {
            // A list where an object belongs: serde tried it as a tuple.
            "must be an object".into()
        } else if message.starts_with("invalid length") {
            "has the wrong number of items".into()
        } else if message.contains("UUID") {
            "must be a UUID".into()
        } else {
            "has an invalid value".into()
        };
        Self { field, code: "invalid_value", words }
    }
}

/// `name` in "<prefix>`name`...".
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

/// What follows ", expected " in serde's messages.
fn expected_of(rest: &str) -> Option<&str> {
    rest.split_once(", expected ").map(|(_, expected)| expected)
}

fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// serde's "expected" phrase in plain words.
fn describe(expected: &str) -> String {
    let expected = expected.trim();
    let bounded = |low: &str, high: &str| format!("a whole number from {low} to {high}");
    match expected {
        "u8" => bounded("0", "255"),
        "u16" => bounded("0", "65535"),
        "i16" => bounded("-32768", "32767"),
        "u32" | "u64" | "usize" => "a whole number of 0 or more".into(),
        "i8" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" | "map" => "an object".into(),
        "unit" => "empty".into(),
        _ if expected.starts_with("struct ") || expected.starts_with("tuple ") => "an object".into(),
        _ if expected.starts_with("enum ") || expected.starts_with("variant ") => "one of the allowed values".into(),
        _ if expected.contains("UUID") => "a UUID".into(),
        _ if expected.contains('`') => format!("one of: {}", backticked(expected).join(", ")),
        // serde's plain phrases ("a string", "a timestamp") read well.
        _ if expected.chars().all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-') => expected.to_owned(),
        _ => "a valid value".into(),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        device: Option<Device>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Device {
        name: String,
    }

    fn details_of(body: &str) -> serde_json::Value {
        decode::<Login>(body.as_bytes()).expect_err("must be refused").details
    }

    #[test]
    fn names_the_field_and_the_reason_in_words_a_client_can_show() {
        assert_eq!(
            details_of(r#"{"email":"a@b","device":{"name":"x","colour":1}}"#),
            json!({"fields": {"device.colour": "is not a known field"}})
        );
        assert_eq!(details_of(r#"{"device":null}"#), json!({"fields": {"email": "is required"}}));
        assert_eq!(details_of(r#"{"email":"a","device":{}}"#), json!({"fields": {"device.name": "is required"}}));
        assert_eq!(details_of("5"), json!({"fields": {"body": "must be an object"}}));
        assert_eq!(details_of(r#"{"email":5}"#), json!({"fields": {"email": "must be a string"}}));
        assert_eq!(details_of("{\"email\":\n"), json!({"line": 2, "column": 0}));
        assert_eq!(details_of(r#"{"email":"a"} trailing"#), json!({"line": 1, "column": 15}));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Typed {
        port: Option<u16>,
        id: Option<uuid::Uuid>,
        mode: Option<Mode>,
        tags: Option<Vec<String>>,
        enabled: Option<bool>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Strict,
        Ignore,
    }

    #[test]
    fn type_and_value_errors_never_show_rust_types_or_parser_text() {
        let words = |body: &str| decode::<Typed>(body.as_bytes()).expect_err("refused").details["fields"].clone();
        assert_eq!(words(r#"{"port":70000}"#), json!({"port": "must be a whole number from 0 to 65535"}));
        assert_eq!(words(r#"{"port":"x"}"#), json!({"port": "must be a whole number from 0 to 65535"}));
        assert_eq!(words(r#"{"id":"nope"}"#), json!({"id": "must be a UUID"}));
        assert_eq!(words(r#"{"id":5}"#), json!({"id": "must be a UUID"}));
        assert_eq!(words(r#"{"mode":"loose"}"#), json!({"mode": "must be one of: strict, ignore"}));
        assert_eq!(words(r#"{"tags":"a"}"#), json!({"tags": "must be a list"}));
        assert_eq!(words(r#"{"enabled":"yes"}"#), json!({"enabled": "must be true or false"}));
        assert_eq!(words("[]"), json!({"body": "must be an object"}));
    }
}
