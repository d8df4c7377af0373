//! The error envelope every 4xx and 5xx response carries (API.md "Errors").

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::trace::current_trace_id;

/// Marks a response whose body is already an envelope, so the safety net in
/// [`super::trace`] leaves it alone.
#[derive(Clone, Copy)]
pub(crate) struct EnvelopeRendered;

/// A failure a client is told about. The `code` is the stable contract;
/// `message` is the English fallback; `details` may carry field errors.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub details: Value,
    /// A 5xx whose code and message are safe and useful to show (a busy
    /// appliance, not a broken one). Every other 5xx is normalised.
    pub public: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code: code.into(), message: message.into(), details: json!({}), public: false }
    }

    /// A 503 that tells the client exactly why it should come back later.
    pub fn busy(code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { public: true, ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A request whose named fields are wrong: `details.fields` maps each to why.
    pub fn invalid_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let fields: serde_json::Map<String, Value> =
            fields.into_iter().map(|(name, reason)| (name.to_owned(), Value::from(reason))).collect();
        Self::invalid_request("The request has invalid fields.").with_details(json!({ "fields": fields }))
    }

    /// 429 with why (`details.reason`) and when to come back, in the body
    /// and in `Retry-After`.
    pub fn rate_limited(message: impl Into<Cow<'static, str>>, reason: &str, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_details(json!({"reason": reason, "retry_after_seconds": retry_after_secs.max(1)}))
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed.")
    }

    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "The request body is too large.")
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Send the body as application/json.")
    }

    /// 503: every 5xx has the same code and message in the contract; the
    /// status alone tells a client to retry later.
    pub fn service_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "internal_error", INTERNAL_MESSAGE)
    }

    /// Any 5xx: the cause goes to the log here, never to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", INTERNAL_MESSAGE)
    }

    /// The envelope for a bare status code (framework rejections, panics).
    pub(crate) fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Self::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(),
            StatusCode::UNAUTHORIZED => Self::new(status, "unauthorized", "Authentication is required."),
            StatusCode::FORBIDDEN => Self::new(status, "forbidden", "You are not allowed to do this."),
            StatusCode::TOO_MANY_REQUESTS => Self::new(status, "rate_limited", "Too many requests; slow down."),
            StatusCode::REQUEST_TIMEOUT => Self::new(status, "request_timeout", "The request took too long."),
            StatusCode::SERVICE_UNAVAILABLE => Self::service_unavailable(),
            status if status.is_server_error() => Self::new(status, "internal_error", INTERNAL_MESSAGE),
            status => Self::invalid_request("The request could not be processed.").with_status(status),
        }
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

const INTERNAL_MESSAGE: &str = "An internal error occurred.";

impl From<rap_storage::StorageError> for ApiError {
    fn from(error: rap_storage::StorageError) -> Self {
        match error {
            rap_storage::StorageError::Unavailable(_) | rap_storage::StorageError::Closed => {
                tracing::warn!(%error, "Storage unavailable");
                Self::service_unavailable()
            }
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message, details) = if self.status.is_server_error() && !self.public {
            // INVARIANT: nothing internal leaks in a 5xx body.
            (Cow::Borrowed("internal_error"), Cow::Borrowed(INTERNAL_MESSAGE), json!({}))
        } else {
            (self.code, self.message, self.details)
        };
        let body = json!({
            "error": {
                "code": code,
                "message_key": format!("error.{code}"),
                "fallback_message": message,
                "details": details,
                "trace_id": current_trace_id(),
            }
        });
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| body["error"]["details"]["retry_after_seconds"].as_u64())
            .flatten();
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(EnvelopeRendered);
        response
    }
}
