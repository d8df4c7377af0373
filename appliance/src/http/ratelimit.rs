//! Requests per source address: a token bucket each (`APP_RATE_LIMIT_*`),
//! 429 `rate_limited` with `Retry-After` past it. Health probes are exempt,
//! so monitoring never sees a busy appliance as down.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::ApiError;
use crate::state::AppState;
use crate::throttle::{LogThrottle, TokenBucket};

/// Addresses tracked at once; an address idle this long starts afresh.
const ADDRESSES: u64 = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(600);

static LIMITED_LOGGED: LogThrottle = LogThrottle::new(Duration::from_secs(10));

pub struct RequestLimiter {
    per_second: u32,
    burst: u32,
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<TokenBucket>>>,
}

impl RequestLimiter {
    /// `per_second == 0` admits everything.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let buckets = moka::sync::Cache::builder().max_capacity(ADDRESSES).time_to_idle(FORGET_AFTER).build();
        Self { per_second, burst, buckets }
    }

    /// One request from `address`, or how long it should wait.
    pub fn take(&self, address: IpAddr) -> Result<(), Duration> {
        if self.per_second == 0 {
            return Ok(());
        }
        let bucket =
            self.buckets.get_with(address, || Arc::new(Mutex::new(TokenBucket::new(self.per_second, self.burst))));
        bucket.lock().take()
    }
}

pub(crate) async fn limit_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let exempt = matches!(request.uri().path(), "/healthz" | "/readyz");
    let source = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    if let (false, Some(source)) = (exempt, source)
        && let Err(wait) = state.request_limiter().take(source)
    {
        state.metrics().rate_limited("requests_per_address");
        if let Some(held_back) = LIMITED_LOGGED.admit() {
            tracing::warn!(%source, held_back, "Requests from this address are over the rate limit");
        }
        return ApiError::rate_limited(
            "Too many requests from this address; slow down.",
            "requests_per_address",
            wait.as_secs_f64().ceil() as u64,
        )
        .into_response();
    }
    next.run(request).await
}
