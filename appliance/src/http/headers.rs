//! Security headers on every response: the UI under a Content-Security-Policy
//! that allows nothing inline, nothing evaluated and no framing; API answers
//! never cached; HSTS once the appliance serves TLS.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Everything from the appliance itself; images may also be data and blob
/// URLs (pasted and downloaded pictures); sockets go to the page's own host.
fn content_security_policy(socket_origin: Option<String>) -> String {
    let sockets = socket_origin.map(|origin| format!(" {origin}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'{sockets}; worker-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `ws://host` or `wss://host` for the `Host` the page was loaded from, if
/// it is a plain authority (anything else gets no socket source beyond
/// `'self'`).
fn socket_origin(headers: &HeaderMap, tls: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
    plain.then(|| format!("{}://{host}", if tls { "wss" } else { "ws" }))
}

pub(crate) async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Requests that did not come through our accept loop (in-process
    // callers) are taken to be served as configured.
    let tls =
        request.extensions().get::<crate::net::Transport>().map_or(state.tls().is_some(), |transport| transport.tls);
    let api = {
        let path = request.uri().path();
        path.starts_with("/api/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
    };
    let socket = if api { None } else { socket_origin(request.headers(), tls) };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if let Ok(policy) = HeaderValue::from_str(&content_security_policy(socket)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_appliance_itself() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("192.168.1.20:8443"));
        let policy = content_security_policy(socket_origin(&headers, true));
        assert!(policy.contains("connect-src 'self' wss://192.168.1.20:8443;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe"));
        headers.insert(header::HOST, HeaderValue::from_static("evil; script-src *"));
        assert_eq!(socket_origin(&headers, true), None);
    }
}
