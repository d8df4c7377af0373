//! `APP_HTTP_REDIRECT_ADDR`: plain HTTP answered only with a permanent
//! redirect to the same path over HTTPS, so `http://appliance/` typed into
//! a browser lands on the real thing. Nothing else is served in clear.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// Redirects every request to `https://<host><path>` on `https_port`.
pub fn router(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move { redirect(&headers, &uri, https_port) })
}

fn redirect(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()).and_then(host_of) else {
        return (StatusCode::BAD_REQUEST, "A Host header is required.").into_response();
    };
    let authority = if https_port == 443 { host } else { format!("{host}:{https_port}") };
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let location = format!("https://{authority}{path}");
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => (StatusCode::BAD_REQUEST, "The request cannot be redirected.").into_response(),
    }
}

/// The host part of a `Host` header, if it is a plain name or address
/// (nothing that could bend the redirect elsewhere).
fn host_of(value: &str) -> Option<String> {
    let host = match value.strip_prefix('[') {
        Some(rest) => format!("[{}]", rest.split_once(']')?.0),
        None => value.rsplit_once(':').map_or(value, |(host, _)| host).to_owned(),
    };
    let plain = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
    (plain && !host.is_empty() && host.len() <= 255).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_keep_their_name_and_lose_their_port() {
        assert_eq!(host_of("rap.office.lan:80").as_deref(), Some("rap.office.lan"));
        assert_eq!(host_of("192.168.1.20").as_deref(), Some("192.168.1.20"));
        assert_eq!(host_of("[fd00::1]:80").as_deref(), Some("[fd00::1]"));
        assert_eq!(host_of("evil.example/x"), None);
        assert_eq!(host_of("a@b"), None);
        assert_eq!(host_of(""), None);
    }
}
