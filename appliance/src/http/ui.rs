//! The web UI: the static files of `ui/`, embedded into the binary (read
//! from disk in debug builds, so editing a page needs no rebuild), served
//! at `/`. API paths never fall through to it.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::ApiError;

#[derive(RustEmbed)]
#[folder = "../ui/"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
#[exclude = "*.md"]
struct Assets;

/// Serves `ui/<path>`, `ui/index.html` for `/`, and the envelope 404 for
/// anything else (API paths included).
pub(super) async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return ApiError::not_found().into_response();
    }
    let path = if path.is_empty() { "index.html" } else { path };
    match Assets::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype();
            let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
            if let Ok(value) = HeaderValue::from_str(mime) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            // Pages change with the appliance; never serve a stale one.
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }
        None => ApiError::not_found().into_response(),
    }
}
