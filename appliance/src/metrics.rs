//! Prometheus metrics (`GET /metrics`), in the OpenMetrics text format.
//!
//! Route labels use the matched route template (`/api/v1/sessions/{id}`), so
//! the number of series stays bounded whatever paths clients send.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One label whose values are a fixed set chosen in code (never client text).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

/// Every metric the appliance exports; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    active_sessions: Gauge,
    attached_viewers: Gauge,
    frames_sent: Counter,
    bytes_sent: Counter,
    video_units_sent: Counter,
    video_frames_encoded: Counter,
    video_bytes_encoded: Counter,
    workers: Gauge,
    screen_updates: Counter,
    undelivered_worker_events: Counter,
    connections: Family<StateLabel, Gauge>,
    connections_closed: Family<ReasonLabel, Counter>,
    rate_limited: Family<ReasonLabel, Counter>,
    sockets_revoked: Family<ReasonLabel, Counter>,
    tls_certificate_changes: Family<ReasonLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rap");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", http_requests.clone());
        let active_sessions = Gauge::default();
        registry.register(
            "active_sessions",
            "Remote sessions that are not terminated or failed",
            active_sessions.clone(),
        );
        let attached_viewers = Gauge::default();
        registry.register("attached_viewers", "WebSocket viewers attached to sessions", attached_viewers.clone());
        let frames_sent = Counter::default();
        registry.register("frames_sent", "Render frames sent to viewers", frames_sent.clone());
        let bytes_sent = Counter::default();
        registry.register("frame_bytes_sent", "Render frame bytes sent to viewers", bytes_sent.clone());
        let video_units_sent = Counter::default();
        registry.register(
            "video_units_sent",
            "H.264 access units passed through to viewers that decode them",
            video_units_sent.clone(),
        );
        let video_frames_encoded = Counter::default();
        registry.register(
            "video_frames_encoded",
            "H.264 access units the appliance encoded from moving regions, once per session for all its viewers",
            video_frames_encoded.clone(),
        );
        let video_bytes_encoded = Counter::default();
        registry.register(
            "video_bytes_encoded",
            "Bytes of the H.264 access units the appliance encoded",
            video_bytes_encoded.clone(),
        );
        let workers = Gauge::default();
        registry.register("workers", "Registered worker slots", workers.clone());
        let screen_updates = Counter::default();
        registry.register(
            "screen_updates",
            "Remote desktop updates decoded into session screens",
            screen_updates.clone(),
        );
        let undelivered_worker_events = Counter::default();
        registry.register(
            "worker_events_undelivered",
            "Worker events (connected, failed, clipboard...) that could not be queued for the broker",
            undelivered_worker_events.clone(),
        );
        let connections = Family::<StateLabel, Gauge>::default();
        registry.register(
            "http_connections",
            "Open HTTP connections, idle (no request in progress) or busy",
            connections.clone(),
        );
        let connections_closed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_connections_closed",
            "Connections the appliance closed or refused to protect itself (evicted_idle, over_limit, tls_handshake, foreign_origin)",
            connections_closed.clone(),
        );
        let rate_limited = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests, sockets and socket messages refused by a per-client limit",
            rate_limited.clone(),
        );
        let sockets_revoked = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "sockets_revoked",
            "Attached sockets closed because their principal lost the right to them",
            sockets_revoked.clone(),
        );
        let tls_certificate_changes = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tls_certificate_changes",
            "Server certificate renewals and reloads, and failed attempts",
            tls_certificate_changes.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                active_sessions,
                attached_viewers,
                frames_sent,
                bytes_sent,
                video_units_sent,
                video_frames_encoded,
                video_bytes_encoded,
                workers,
                screen_updates,
                undelivered_worker_events,
                connections,
                connections_closed,
                rate_limited,
                sockets_revoked,
                tls_certificate_changes,
            }),
        }
    }

    pub(crate) fn record_http_request(&self, route: &str, method: &str, status: u16) {
        // A client can send any method name; each new one must not become
        // a new series.
        let method = match method {
            known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
            _ => "other",
        };
        self.inner
            .http_requests
            .get_or_create(&HttpLabels { route: route.to_owned(), method: method.to_owned(), status })
            .inc();
    }

    /// Moves one connection between `idle`, `busy` and closed (`None`).
    pub fn connection_state(&self, from: Option<&'static str>, to: Option<&'static str>) {
        if let Some(state) = from {
            self.inner.connections.get_or_create(&StateLabel { state }).dec();
        }
        if let Some(state) = to {
            self.inner.connections.get_or_create(&StateLabel { state }).inc();
        }
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.inner.connections_closed.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn rate_limited(&self, reason: &'static str) {
        self.inner.rate_limited.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn socket_revoked(&self, reason: &'static str) {
        self.inner.sockets_revoked.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn tls_certificate_changed(&self, reason: &'static str) {
        self.inner.tls_certificate_changes.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn set_workers(&self, count: i64) {
        self.inner.workers.set(count);
    }

    pub fn set_active_sessions(&self, count: i64) {
        self.inner.active_sessions.set(count);
    }

    /// Brings the screen-updates counter up to `total` (read at scrape time).
    pub fn set_video_encoded(&self, (frames, bytes): (u64, u64)) {
        catch_up(&self.inner.video_frames_encoded, frames);
        catch_up(&self.inner.video_bytes_encoded, bytes);
    }

    pub fn set_screen_updates(&self, total: u64) {
        catch_up(&self.inner.screen_updates, total);
    }

    /// Brings the undelivered-worker-events counter up to `total`.
    pub fn set_undelivered_worker_events(&self, total: u64) {
        catch_up(&self.inner.undelivered_worker_events, total);
    }

    pub fn viewer_attached(&self) {
        self.inner.attached_viewers.inc();
    }

    pub fn viewer_detached(&self) {
        self.inner.attached_viewers.dec();
    }

    pub fn frame_sent(&self, bytes: u64) {
        self.inner.frames_sent.inc();
        self.inner.bytes_sent.inc_by(bytes);
    }

    pub fn video_unit_sent(&self) {
        self.inner.video_units_sent.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry) {
            // Writing into a String cannot fail; keep what was written.
            tracing::warn!(%error, "Encoding metrics failed");
        }
        text
    }
}

/// Counters kept elsewhere are copied in at scrape time; never backwards.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
