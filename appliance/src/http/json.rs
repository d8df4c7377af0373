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
        let inner = error.inner();
        if inner.classify() == serde_json::error::Category::Data {
            let reason = data_error_reason(&inner.to_string());
            let path = error.path().to_string();
            // A missing field is reported at its own path, not its parent's.
            let field = match (path.as_str(), missing_field(&reason)) {
                (".", Some(missing)) => missing.to_owned(),
                (parent, Some(missing)) => format!("{parent}.{missing}"),
                (".", None) => String::from("body"),
                (parent, None) => parent.to_owned(),
            };
            ApiError::invalid_request("The request has invalid fields.")
                .with_details(json!({ "fields": { field: reason } }))
        } else {
            syntax_error(inner)
        }
    })?;
    deserializer.end().map_err(|error| syntax_error(&error))?;
    Ok(value)
}

fn syntax_error(error: &serde_json::Error) -> ApiError {
    ApiError::invalid_request("The request body is not valid JSON.")
        .with_details(json!({ "line": error.line(), "column": error.column() }))
}

/// The field name in serde's "missing field `name`".
fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.strip_suffix('`')
}

/// serde's message without the trailing " at line L column C".
fn data_error_reason(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
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
    fn names_the_field_and_the_reason() {
        assert_eq!(
            details_of(r#"{"email":"a@b","device":{"name":"x","colour":1}}"#),
            json!({"fields": {"device.colour": "unknown field `colour`, expected `name`"}})
        );
        assert_eq!(details_of(r#"{"device":null}"#), json!({"fields": {"email": "missing field `email`"}}));
        assert_eq!(
            details_of(r#"{"email":"a","device":{}}"#),
            json!({"fields": {"device.name": "missing field `name`"}})
        );
        assert_eq!(details_of("5"), json!({"fields": {"body": "invalid type: integer `5`, expected struct Login"}}));
        assert_eq!(
            details_of(r#"{"email":5}"#),
            json!({"fields": {"email": "invalid type: integer `5`, expected a string"}})
        );
        assert_eq!(details_of("{\"email\":\n"), json!({"line": 2, "column": 0}));
        assert_eq!(details_of(r#"{"email":"a"} trailing"#), json!({"line": 1, "column": 15}));
    }
}
