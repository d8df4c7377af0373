//! Authenticated request overhead: the same trivial handler behind the full
//! middleware stack, once without and once with the `CurrentUser` extractor
//! (bearer parsing, MAC check, revocation and user snapshot from live
//! state). The difference is what authentication adds to each request.
//!
//! Run: `cargo bench -p rap-appliance --bench auth_overhead`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use rap_appliance::Config;
use rap_appliance::audit::RequestContext;
use rap_appliance::auth::{DeviceRequestInput, LoginRequest};
use rap_appliance::http::extract::CurrentUser;
use rap_appliance::installation::BootstrapOwner;
use rap_appliance::metrics::Metrics;
use rap_appliance::state::AppState;
use rap_storage::sqlite::{DATABASE_FILE_NAME, SqliteStore};
use tower::ServiceExt;

const BATCH: u32 = 20_000;
const BATCHES: usize = 7;

async fn plain() -> &'static str {
    "ok"
}

async fn authed(CurrentUser(principal): CurrentUser) -> &'static str {
    std::hint::black_box(principal);
    "ok"
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_string_lossy().into_owned();
        let config = Config::from_pairs([
            ("APP_DATA_DIR", data_dir.as_str()),
            ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"),
        ])
        .unwrap();
        let store = SqliteStore::start(dir.path().join(DATABASE_FILE_NAME), 2).unwrap();
        store.migrate().await.unwrap();
        let state = AppState::build(config, store.repositories(), Metrics::new()).await.unwrap();
        let context = RequestContext::default();
        let owner = BootstrapOwner {
            email: "owner@example.com".into(),
            password: "owner password 1".into(),
            display_name: "Owner".into(),
            activation: None,
            setup_code: None,
        };
        state.installation().bootstrap_owner(owner, &context).await.unwrap();
        let login = LoginRequest {
            email: "owner@example.com".into(),
            password: "owner password 1".into(),
            device: DeviceRequestInput::default(),
        };
        let token = state.auth().login(login, &context).await.unwrap().access_token;
        let routes = Router::new().route("/plain", get(plain)).route("/authed", get(authed));
        let app = rap_appliance::http::with_common_layers(routes, state);

        let plain_request = || Request::get("/plain").body(Body::empty()).unwrap();
        let authed_request =
            || Request::get("/authed").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
        let baseline = measure(&app, plain_request).await;
        let with_auth = measure(&app, authed_request).await;
        let overhead = with_auth.saturating_sub(baseline);
        println!("authenticated request overhead, {BATCHES} batches of {BATCH} requests, median per request");
        println!("| route | per request | vs. baseline |");
        println!("| --- | --- | --- |");
        println!("| baseline: unauthenticated route, full middleware | {:.2} µs | 1.00× |", micros(baseline));
        println!(
            "| same route with `CurrentUser` | {:.2} µs | {:.2}× |",
            micros(with_auth),
            with_auth.as_secs_f64() / baseline.as_secs_f64()
        );
        println!("| token check overhead | {:.2} µs | target < 20 µs |", micros(overhead));
        store.close().await;
    });
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

async fn measure(app: &Router, request: impl Fn() -> Request<Body>) -> Duration {
    for _ in 0..2_000 {
        let response = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut per_request: Vec<Duration> = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let started = Instant::now();
        for _ in 0..BATCH {
            let response = app.clone().oneshot(request()).await.unwrap();
            std::hint::black_box(response);
        }
        per_request.push(started.elapsed() / BATCH);
    }
    per_request.sort();
    per_request[BATCHES / 2]
}
