//! RAP Appliance: remote access for small offices, in one program.
//!
//! A tour, from the outside in:
//!
//! - [`run`] is the whole appliance: given a validated [`Config`], a bound
//!   listener and a shutdown future, it opens the data directory and the
//!   SQLite store, serves HTTP until shutdown, then drains and closes. It
//!   keeps no process-global state, so tests and the desktop app can run
//!   several in one process.
//! - [`config`] turns environment variables and an optional file into a
//!   [`Config`], once, naming the setting in every error.
//! - [`net`] accepts connections (TLS from [`tls`] when configured) and
//!   bounds what each client may hold; [`http`] owns the error envelope,
//!   trace ids, the JSON extractor and the middleware stack; domain modules
//!   add their `routes.rs` behind it.
//! - [`metrics`] is the Prometheus registry.
//! - Durable and live state come from the `rap-storage` crate, behind traits.

pub mod app;
pub mod audit;
pub mod auditlog;
pub mod auth;
pub mod config;
pub mod dataplane;
pub mod http;
pub mod installation;
pub mod keys;
pub mod metrics;
pub mod net;
pub mod organization;
pub mod protocol;
pub mod resource;
pub mod secrets;
pub mod sessionbroker;
pub mod sessiongateway;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod transfer;
pub mod worker;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use rap_storage::sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use metrics::Metrics;
use state::AppState;

/// Reader connections beside the single writer; reads are short, and a
/// small office has few concurrent users.
const SQLITE_READERS: usize = 2;

/// Runs the appliance on `listener` until `shutdown` completes, then stops
/// accepting, gives in-flight requests `config.shutdown_grace` to finish,
/// checkpoints the database and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_console(config, listener, None, shutdown).await
}

/// [`run`], plus `console`: a loopback listener that serves the same
/// appliance in plain HTTP for a console on this machine (the desktop
/// app's window), while `listener` serves the LAN with TLS. Loopback only:
/// plain HTTP never leaves the machine.
pub async fn run_with_console(
    config: Config,
    listener: TcpListener,
    console: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let console_addr = match &console {
        Some(console) => {
            let addr = console.local_addr().context("reading the console address")?;
            anyhow::ensure!(addr.ip().is_loopback(), "the plain console listener must be loopback, not {addr}");
            Some(addr)
        }
        None => None,
    };
    prepare_data_dir(&config.data_dir).await?;

    let store = SqliteStore::start(config.database_path(), SQLITE_READERS).context("starting storage")?;
    if let Err(error) = store.migrate().await {
        // Keep serving: /healthz stays up, /readyz says 503 until the
        // database can be opened, and the store retries on every call.
        tracing::error!(%error, path = %config.database_path().display(), "Database unavailable at start-up");
    }

    let metrics = Metrics::new();
    let grace = config.shutdown_grace;
    let redirect_addr = config.tls.redirect_addr;
    let (max_connections, max_idle) = connection_limits(&config);
    let state = AppState::build(config, store.repositories(), metrics.clone()).await?;
    if let Err(error) = state.installation().prepare_first_run().await {
        tracing::error!(%error, "Preparing the first-run set-up code failed");
    }
    let local_addr = listener.local_addr().context("reading the listen address")?;
    let mut allowed_origins = state.config().edge.allowed_origins.clone();
    if let Some(addr) = console_addr {
        // The console's pages open their sockets from its own origin.
        allowed_origins
            .extend([format!("http://127.0.0.1:{}", addr.port()), format!("http://localhost:{}", addr.port())]);
    }
    state.set_origins(net::origin::OwnOrigins::new(local_addr, state.tls(), allowed_origins));
    let background = CancellationToken::new();
    let workers = start_workers(&state, background.clone()).await;
    let broker_tasks = sessionbroker::background::spawn(state.broker().clone(), background.clone());
    let tls_maintenance = state.tls().map(|tls| tls.spawn_maintenance(metrics.clone(), background.clone()));
    let sockets = state.sockets_shutdown().clone();
    let edge = Arc::new(net::Edge {
        board: net::connections::ConnectionBoard::new(max_connections, max_idle, metrics.clone()),
        header_read_timeout: state.config().edge.header_read_timeout,
        tls_handshake_timeout: state.config().edge.tls_handshake_timeout,
        metrics,
        graceful: CancellationToken::new(),
        force: CancellationToken::new(),
        tasks: tokio_util::task::TaskTracker::new(),
    });
    let tls_config = state.tls().map(tls::Tls::server_config);
    let scheme = if tls_config.is_some() { "https" } else { "http" };
    let app = app::router(state);

    let mut listeners = tokio::task::JoinSet::new();
    if let Some(addr) = redirect_addr {
        let redirect = TcpListener::bind(addr)
            .await
            .with_context(|| format!("APP_HTTP_REDIRECT_ADDR: cannot listen on {addr}"))?;
        tracing::info!(%addr, "Redirecting plain HTTP to HTTPS");
        listeners.spawn(net::serve(redirect, net::redirect::router(local_addr.port()), None, edge.clone()));
    }
    if let Some(console) = console {
        tracing::info!(addr = %console_addr.map(|addr| addr.to_string()).unwrap_or_default(), "Console listening (loopback, plain HTTP)");
        listeners.spawn(net::serve(console, app.clone(), None, edge.clone()));
    }
    tracing::info!(%local_addr, scheme, "Appliance listening");
    listeners.spawn(net::serve(listener, app, tls_config, edge.clone()));

    shutdown.await;
    tracing::info!("Shutting down: no new connections, finishing in-flight requests");
    sockets.cancel();
    edge.graceful.cancel();
    listeners.join_all().await;
    edge.tasks.close();
    if tokio::time::timeout(grace, edge.tasks.wait()).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs_f64(), "In-flight requests did not finish in time; closing them");
        edge.force.cancel();
        edge.tasks.wait().await;
    }

    background.cancel();
    if let Some(workers) = workers {
        workers.join().await;
    }
    broker_tasks.join_all().await;
    if let Some(maintenance) = tls_maintenance {
        let _ = maintenance.await;
    }
    store.close().await;
    tracing::info!("Appliance stopped");
    Ok(())
}

/// The configured connection limits, lowered to fit the file descriptors
/// the process may open.
fn connection_limits(config: &Config) -> (usize, usize) {
    let edge = &config.edge;
    let budget = net::descriptor_budget(config.worker_slots).unwrap_or(edge.max_connections).max(16);
    let max_connections = edge.max_connections.min(budget);
    if max_connections < edge.max_connections {
        tracing::info!(
            max_connections,
            configured = edge.max_connections,
            "Connection limit lowered to fit the open-file limit (raise LimitNOFILE to allow more)"
        );
    }
    (max_connections, edge.max_idle_connections.min(max_connections))
}

/// Creates the data directory if needed, private to the appliance's user
/// (0700) whatever the umask; a directory given wider permissions is
/// tightened.
pub async fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let owned = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&owned)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(&owned)?.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .context("preparing the data directory")?
    .with_context(|| format!("APP_DATA_DIR: cannot create {}", dir.display()))
}

/// Fails what the previous run left open, then registers and starts this
/// run's worker slots. Without a usable database there are no workers; the
/// appliance still serves `/healthz` and says why on `/readyz`.
async fn start_workers(state: &AppState, shutdown: CancellationToken) -> Option<worker::pool::WorkerPool> {
    let config = state.config();
    let runtime: std::sync::Arc<dyn worker::SessionRuntime> = match config.broker.runtime {
        config::WorkerRuntimeKind::Scripted => std::sync::Arc::new(worker::scripted::ScriptedRuntime),
        config::WorkerRuntimeKind::Rdp => {
            std::sync::Arc::new(worker::rdp::RdpRuntime::new(config.broker.trusted_cas.clone()))
        }
    };
    let repositories = state.repositories();
    let prepared = async {
        let recovered = state.broker().recover_after_restart().await.map_err(|error| error.to_string())?;
        if recovered.detached > 0 {
            tracing::info!(
                sessions = recovered.detached,
                "Sessions of the previous run are detached (appliance_restarted); they resume on their next attach"
            );
        }
        if recovered.failed > 0 {
            tracing::warn!(
                sessions = recovered.failed,
                "Sessions still starting in the previous run were failed (appliance_restarted)"
            );
        }
        repositories.workers.mark_workers_offline().await.map_err(|error| error.to_string())
    };
    if let Err(error) = prepared.await {
        tracing::error!(%error, "Worker slots not started");
        return None;
    }
    let heartbeat = config.broker.lease_ttl / 3;
    let queues = state.broker().live().queues.clone();
    match worker::pool::WorkerPool::start(runtime, config.worker_slots, repositories, queues, heartbeat, shutdown).await
    {
        Ok(pool) => Some(pool),
        Err(error) => {
            tracing::error!(%error, "Worker slots not started");
            None
        }
    }
}
