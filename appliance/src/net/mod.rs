//! The network edge: accepting connections, TLS, HTTP/1.1 with upgrades,
//! and the limits that keep one client (or a thousand idle sockets) from
//! taking the appliance offline for everyone else.
//!
//! Plain and TLS connections take the same path after the handshake, so
//! every limit applies to both: a TLS handshake must finish within
//! `APP_TLS_HANDSHAKE_TIMEOUT`, request headers within
//! `APP_HTTP_HEADER_TIMEOUT` (which also ends idle keep-alives), and the
//! [`connections::ConnectionBoard`] bounds open and idle connections.

pub mod connections;
pub mod origin;
pub mod redirect;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::throttle::LogThrottle;
use connections::{Busy, ConnectionBoard, Slot};

static ACCEPT_ERRORS_LOGGED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
/// After an accept error such as "too many open files", wait this long
/// before accepting again rather than spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Shared by every connection of every listener.
pub struct Edge {
    pub board: Arc<ConnectionBoard>,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub metrics: Metrics,
    /// Stop accepting; finish in-flight requests, then close.
    pub graceful: CancellationToken,
    /// Close whatever is still open (the grace period is over).
    pub force: CancellationToken,
    pub tasks: TaskTracker,
}

/// Accepts on `listener` until [`Edge::graceful`] fires, serving `app`
/// (over TLS when `tls` is given).
pub async fn serve(listener: TcpListener, app: Router, tls: Option<Arc<rustls::ServerConfig>>, edge: Arc<Edge>) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            () = edge.graceful.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if let Some(held_back) = ACCEPT_ERRORS_LOGGED.admit() {
                    tracing::warn!(%error, held_back, "Accepting a connection failed");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = edge.board.admit() else { continue };
        let (app, acceptor, connection_edge) = (app.clone(), acceptor.clone(), edge.clone());
        edge.tasks.spawn(connection(stream, remote, slot, app, acceptor, connection_edge));
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    app: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    edge: Arc<Edge>,
) {
    // Frames and input events are small and latency-bound.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        return serve_http(stream, remote, slot, app, &edge, Transport { tls: false }).await;
    };
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(edge.tls_handshake_timeout, acceptor.accept(stream)) => handshake,
        () = slot.close.cancelled() => return,
        () = edge.force.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => serve_http(stream, remote, slot, app, &edge, Transport { tls: true }).await,
        Ok(Err(error)) => {
            edge.metrics.connection_closed("tls_handshake");
            tracing::debug!(%remote, %error, "TLS handshake failed");
        }
        Err(_) => {
            edge.metrics.connection_closed("tls_handshake");
            tracing::debug!(%remote, "TLS handshake timed out");
        }
    }
}

async fn serve_http<I>(io: I, remote: SocketAddr, slot: Slot, app: Router, edge: &Edge, transport: Transport)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot = Arc::new(slot);
    let close = slot.close.clone();
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let busy = slot.busy();
            request.extensions_mut().insert(ConnectInfo(remote));
            request.extensions_mut().insert(ConnectionHold { _slot: slot.clone() });
            request.extensions_mut().insert(transport);
            let (app, slot) = (app.clone(), slot.clone());
            async move {
                let response = match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    slot.pin();
                }
                Ok::<_, Infallible>(response.map(|body| TrackedBody { body, _busy: busy }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(edge.header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = close.cancelled() => return,
        () = edge.graceful.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection => {}
        () = edge.force.cancelled() => {}
    }
}

/// How a request's connection arrived: one appliance can serve the LAN over
/// TLS and a loopback console in plain HTTP, and what a response says
/// (HSTS, the socket scheme its page may use) follows the connection.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
}

/// Keeps a connection on the board while held: a WebSocket's task holds it
/// after the upgrade, so sockets count against the same connection limit.
#[derive(Clone)]
pub struct ConnectionHold {
    _slot: Arc<Slot>,
}

/// A response body that keeps its connection marked busy until it has
/// been sent (or dropped).
struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The file descriptors left for connections once the appliance's own
/// needs (database, RDP sockets, transfers, logs) are reserved. Raises the
/// soft limit to the hard one first, as servers do, since the default soft
/// limit (often 1024) is far below what the hardware allows.
pub fn descriptor_budget(worker_slots: usize) -> Option<usize> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
        let reserved = 64 + 4 * worker_slots as u64;
        Some(usize::try_from(soft.saturating_sub(reserved)).unwrap_or(usize::MAX))
    }
    #[cfg(not(unix))]
    {
        let _ = worker_slots;
        None
    }
}
