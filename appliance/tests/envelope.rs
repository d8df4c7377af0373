//! The error envelope, trace ids, health, readiness and metrics, through
//! real HTTP against servers on 127.0.0.1:0.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use rap_appliance::Config;
use rap_appliance::http::{ApiJson, with_common_layers};
use rap_appliance::metrics::Metrics;
use rap_appliance::state::AppState;
use rap_storage::sqlite::{DATABASE_FILE_NAME, SqliteStore};
use serde_json::json;

use crate::support::{TestApp, assert_envelope};

#[tokio::test]
async fn health_and_readiness_answer_once_started() {
    let app = TestApp::start().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-trace-id"));
    assert_eq!(health.json::<serde_json::Value>().await.expect("json"), json!({"status": "ok"}));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert!(app.data_dir.path().join(DATABASE_FILE_NAME).is_file(), "the database lives in the data directory");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn readiness_is_503_while_the_database_cannot_be_opened() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(data_dir.path().join(DATABASE_FILE_NAME)).expect("block the database path");
    let app = TestApp::start_in(data_dir, &[]).await;
    assert_eq!(app.get("/healthz").await.status(), 200, "the process is alive all the same");
    let error = assert_envelope(app.get("/readyz").await, 503, "internal_error").await;
    assert_eq!(error["details"], json!({}));
    assert_eq!(error["fallback_message"], "An internal error occurred.", "5xx bodies are all alike");

    std::fs::remove_dir(app.data_dir.path().join(DATABASE_FILE_NAME)).expect("unblock");
    assert_eq!(app.get("/readyz").await.status(), 200, "ready once the file can be opened, without a restart");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope() {
    let app = TestApp::start().await;
    assert_envelope(app.get("/api/v1/no-such-thing").await, 404, "not_found").await;
    let wrong_method = app.client.delete(app.url("/healthz")).send().await.expect("request");
    assert_eq!(wrong_method.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
    assert_envelope(wrong_method, 405, "method_not_allowed").await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn every_response_has_its_own_trace_id() {
    let app = TestApp::start().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let response = app.get("/healthz").await;
        let trace = response.headers().get("x-trace-id").and_then(|v| v.to_str().ok()).expect("header").to_owned();
        assert_eq!(trace.len(), 32, "{trace}");
        assert!(seen.insert(trace), "trace ids are unique");
    }
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = TestApp::start().await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/does/not/exist/12345").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains(r#"rap_http_requests_total{route="/healthz",method="GET",status="200"} 2"#), "{text}");
    assert!(text.contains(r#"rap_http_requests_total{route="unmatched",method="GET",status="404"} 1"#), "{text}");
    assert!(!text.contains("12345"), "raw paths never become labels");
    for family in [
        "rap_active_sessions",
        "rap_attached_viewers",
        "rap_frames_sent_total",
        "rap_frame_bytes_sent_total",
        "rap_workers",
    ] {
        assert!(text.contains(family), "{family} missing from {text}");
    }
    app.stop().await.expect("clean stop");
}

/// A server with the production middleware stack and a few probe routes.
struct ProbeServer {
    addr: SocketAddr,
    client: reqwest::Client,
    _data_dir: tempfile::TempDir,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Greeting {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[allow(clippy::panic)]
async fn panicking() -> &'static str {
    panic!("probe panic with /secret/path in it")
}

impl ProbeServer {
    async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::start(data_dir.path().join(DATABASE_FILE_NAME), 1).expect("store");
        store.migrate().await.expect("migrate");
        let data_path = data_dir.path().to_string_lossy().into_owned();
        let config = Config::from_pairs([("APP_DATA_DIR", data_path.as_str())]).expect("config");
        let state = AppState::build(config, store.repositories(), Metrics::new()).await.expect("state");
        let routes = Router::new()
            .route("/echo", post(|ApiJson(greeting): ApiJson<Greeting>| async move { ApiJson(greeting) }))
            .route("/panic", get(panicking));
        let app = with_common_layers(routes, state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, client: crate::support::client(), _data_dir: data_dir }
    }

    async fn post_json(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("http://{}/echo", self.addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }
}

#[tokio::test]
async fn json_bodies_are_checked_field_by_field() {
    let server = ProbeServer::start().await;
    let ok = server.post_json(r#"{"name":"Ada","tags":["x"]}"#).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<serde_json::Value>().await.expect("json"), json!({"name": "Ada", "tags": ["x"]}));

    let error = assert_envelope(server.post_json(r#"{"name":"Ada","admin":true}"#).await, 400, "invalid_request").await;
    assert_eq!(error["details"], json!({"fields": {"admin": "is not a known field"}}));

    let error = assert_envelope(server.post_json(r#"{"name":"Ada","#).await, 400, "invalid_request").await;
    assert_eq!(error["fallback_message"], "The request body is not valid JSON.");
    assert_eq!(error["details"], json!({"line": 1, "column": 14}));

    let error = assert_envelope(server.post_json(r#"{"tags":[1]}"#).await, 400, "invalid_request").await;
    assert_eq!(error["details"], json!({"fields": {"tags[0]": "must be a string"}}));

    let error = assert_envelope(server.post_json(r#"{"tags":[]}"#).await, 400, "invalid_request").await;
    assert_eq!(error["details"], json!({"fields": {"name": "is required"}}));

    let no_type = server.client.post(format!("http://{}/echo", server.addr)).body(r#"{"name":"Ada"}"#).send().await;
    assert_envelope(no_type.expect("request"), 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused_with_413() {
    let server = ProbeServer::start().await;
    let just_under = format!(r#"{{"name":"{}"}}"#, "a".repeat(1024 * 1024 - 11));
    assert_eq!(just_under.len(), 1024 * 1024);
    assert_eq!(server.post_json(just_under).await.status(), 200, "exactly 1 MiB is allowed");

    let over = format!(r#"{{"name":"{}"}}"#, "a".repeat(1024 * 1024));
    assert_envelope(server.post_json(over).await, 413, "payload_too_large").await;

    // Without Content-Length (chunked), the limit still holds.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 128 * 1024]))),
    );
    let chunked = server.post_json(reqwest::Body::wrap_stream(chunks)).await;
    assert_envelope(chunked, 413, "payload_too_large").await;
}

#[tokio::test]
async fn a_panicking_handler_is_a_generic_500() {
    let server = ProbeServer::start().await;
    let response = server.client.get(format!("http://{}/panic", server.addr)).send().await.expect("request");
    let error = assert_envelope(response, 500, "internal_error").await;
    assert_eq!(error["fallback_message"], "An internal error occurred.");
    assert_eq!(error["details"], json!({}));
    assert!(!error.to_string().contains("/secret/path"), "nothing internal leaks");
    // The server survives it.
    let ok = server.post_json(r#"{"name":"still here"}"#).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn the_web_ui_is_served_at_the_root_and_never_shadows_the_api() {
    let app = TestApp::start().await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers().get("content-type").and_then(|value| value.to_str().ok()), Some("text/html"));
    assert!(page.text().await.expect("text").contains("<title>RAP Appliance"));
    assert_envelope(app.get("/no-such-page.js").await, 404, "not_found").await;
    assert_envelope(app.get("/api/v1/nothing-here").await, 404, "not_found").await;
    app.stop().await.expect("clean stop");
}
