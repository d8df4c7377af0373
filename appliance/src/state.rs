//! The state every request handler shares, and how it is put together.

use std::sync::Arc;

use anyhow::Context as _;
use rap_storage::Repositories;
use rap_storage::live::memory::{MemoryCounters, MemoryHeartbeats, MemoryQueues, MemoryTopics, MemoryTtlMap};

use crate::auditlog::AuditService;
use crate::auth::service::AuthLiveState;
use crate::auth::{AuthService, Passwords};
use crate::config::Config;
use crate::installation::InstallationService;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::organization::{Gate, OrganizationService};
use crate::resource::ResourceService;
use crate::secrets::{SecretKeyRing, SecretService};
use crate::sessionbroker::{Broker, BrokerLive, BrokerSettings};
use crate::worker::pool::WorkerQueues;

/// Live-state capacities: far above what a small office produces, low
/// enough that a flood cannot exhaust memory.
const SESSION_STATES_CAPACITY: u64 = 100_000;
const USER_SNAPSHOTS_CAPACITY: u64 = 10_000;
const LOGIN_COUNTERS_CAPACITY: usize = 100_000;
const ATTACH_TOKENS_CAPACITY: u64 = 100_000;
const CONTROLLERS_CAPACITY: u64 = 100_000;
/// Messages a session's subscriber may fall behind before it lags.
const NOTICES_PER_SUBSCRIBER: usize = 64;
/// Per queue: assignments per worker, inputs per session, events overall.
const CONTROL_QUEUE_DEPTH: usize = 16;
const INPUT_QUEUE_DEPTH: usize = 1024;
const EVENT_QUEUE_DEPTH: usize = 65_536;
/// Leases whose heartbeats the board holds between two lease checks (the
/// worker slot count is at most 1024).
const HEARTBEAT_BOARD_CAPACITY: usize = 4096;

/// Cheap to clone: one `Arc` around everything long-lived.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    repositories: Repositories,
    metrics: Metrics,
    installation: InstallationService,
    auth: AuthService,
    organizations: OrganizationService,
    resources: ResourceService,
    secrets: SecretService,
    audit: AuditService,
    broker: Broker,
    /// Fired when shutdown begins: sockets close with a reason.
    sockets_shutdown: tokio_util::sync::CancellationToken,
    data_plane: Option<crate::dataplane::DataPlane>,
    tls: Option<crate::tls::Tls>,
    access_changes: crate::auth::AccessChanges,
    request_limiter: crate::http::ratelimit::RequestLimiter,
    sockets: crate::sessiongateway::SocketCounts,
    /// Set once the listener is bound (the real port is known then).
    origins: std::sync::OnceLock<crate::net::origin::OwnOrigins>,
}

impl AppState {
    /// Loads (or makes) the data directory's keys and builds the services.
    pub async fn build(mut config: Config, repositories: Repositories, metrics: Metrics) -> anyhow::Result<Self> {
        let tls = {
            let config = config.clone();
            let mode = config.tls.mode.as_str();
            tokio::task::spawn_blocking(move || crate::tls::Tls::prepare(&config))
                .await
                .context("preparing TLS")?
                .with_context(|| format!("APP_TLS={mode}"))?
        };
        if let Some(ca) = tls.as_ref().and_then(crate::tls::Tls::ca) {
            // The direct endpoint is this listener: its CA is the platform CA.
            config.data_plane.direct_worker_tls_ca_ref.get_or_insert_with(|| ca.fingerprint.clone());
        }
        let data_dir = config.data_dir.clone();
        let signing_key_file = config.installation.signing_key_file.clone();
        let configured_secret_key = config.secrets.encryption_key;
        let (keys, secret_key) = tokio::task::spawn_blocking(move || {
            let keys = KeyRing::load_or_generate(&data_dir, signing_key_file.as_deref())?;
            // Config validation already refused production without a key.
            let secret_key = match configured_secret_key {
                Some(key) => key,
                None => KeyRing::development_secret_key(&data_dir)?,
            };
            Ok::<_, crate::keys::KeyError>((keys, secret_key))
        })
        .await
        .context("loading keys")??;
        let ring = SecretKeyRing::new(
            (config.secrets.encryption_key_id.clone(), secret_key),
            config.secrets.retired_keys.clone(),
        )
        .context("SECRET_ENCRYPTION_RETIRED_KEYS")?;
        let secrets = SecretService::new(repositories.clone(), Arc::new(ring));
        let gate = Gate::new(repositories.clone());
        let access_changes = crate::auth::AccessChanges::new();
        let organizations =
            OrganizationService::new(repositories.clone(), gate.clone(), secrets.clone(), access_changes.clone());
        let resources = ResourceService::new(repositories.clone(), gate.clone(), secrets.clone(), config.app_env);
        let audit = AuditService::new(repositories.clone(), gate.clone());
        let transfers = crate::transfer::TransferDirs::new(config.data_dir.join("transfers"));
        let stale = transfers.clone();
        match tokio::task::spawn_blocking(move || stale.sweep()).await.context("sweeping transfers")? {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "Removed transfer folders of sessions from an earlier run"),
            Err(error) => tracing::warn!(%error, "Transfer folders of an earlier run not removed"),
        }
        let broker_live = BrokerLive {
            attach_tokens: Arc::new(MemoryTtlMap::new(ATTACH_TOKENS_CAPACITY)),
            controllers: Arc::new(MemoryTtlMap::new(CONTROLLERS_CAPACITY)),
            notices: Arc::new(MemoryTopics::new(NOTICES_PER_SUBSCRIBER)),
            queues: WorkerQueues {
                control: Arc::new(MemoryQueues::new(CONTROL_QUEUE_DEPTH)),
                inputs: Arc::new(MemoryQueues::new(INPUT_QUEUE_DEPTH)),
                events: Arc::new(MemoryQueues::new(EVENT_QUEUE_DEPTH)),
                heartbeats: Arc::new(MemoryHeartbeats::new(HEARTBEAT_BOARD_CAPACITY)),
                undelivered_events: Default::default(),
                screens: Default::default(),
                transfers,
            },
        };
        let worker_kind = match config.broker.runtime {
            crate::config::WorkerRuntimeKind::Scripted => "scripted",
            crate::config::WorkerRuntimeKind::Rdp => "rdp",
        };
        let settings = BrokerSettings {
            config: config.broker.clone(),
            app_env: config.app_env,
            worker_kind,
            gateway_url: config.data_plane.backend_gateway_url.clone(),
        };
        let broker = Broker::new(repositories.clone(), gate, secrets.clone(), broker_live, settings);
        let data_plane_config = config.data_plane.clone();
        let app_env = config.app_env;
        let data_plane =
            tokio::task::spawn_blocking(move || crate::dataplane::DataPlane::load(&data_plane_config, app_env))
                .await
                .context("loading the data-plane key")??;
        let passwords = Passwords::new();
        passwords.prepare_in_background();
        let installation = InstallationService::new(
            repositories.clone(),
            config.installation.clone(),
            crate::installation::InstallationSetting {
                app_env: config.app_env,
                data_dir: config.data_dir.clone(),
                session_protocols: config.broker.runtime.protocols(),
                tls: crate::tls::Tls::view(tls.as_ref()),
            },
            keys.clone(),
            passwords.clone(),
        );
        let live = AuthLiveState {
            sessions: Arc::new(MemoryTtlMap::new(SESSION_STATES_CAPACITY)),
            users: Arc::new(MemoryTtlMap::new(USER_SNAPSHOTS_CAPACITY)),
            counters: Arc::new(MemoryCounters::new(LOGIN_COUNTERS_CAPACITY)),
        };
        let auth = AuthService::new(
            repositories.clone(),
            Arc::new(installation.clone()),
            live,
            &keys.access_token,
            config.auth.clone(),
            passwords,
            access_changes.clone(),
        );
        let request_limiter =
            crate::http::ratelimit::RequestLimiter::new(config.edge.requests_per_second, config.edge.request_burst);
        let sockets = crate::sessiongateway::SocketCounts::new(
            config.edge.websockets_per_user,
            config.edge.websockets_per_address,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                repositories,
                metrics,
                installation,
                auth,
                organizations,
                resources,
                secrets,
                audit,
                broker,
                sockets_shutdown: tokio_util::sync::CancellationToken::new(),
                data_plane,
                tls,
                access_changes,
                request_limiter,
                sockets,
                origins: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn repositories(&self) -> &Repositories {
        &self.inner.repositories
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn installation(&self) -> &InstallationService {
        &self.inner.installation
    }

    pub fn auth(&self) -> &AuthService {
        &self.inner.auth
    }

    pub fn organizations(&self) -> &OrganizationService {
        &self.inner.organizations
    }

    pub fn resources(&self) -> &ResourceService {
        &self.inner.resources
    }

    pub fn secrets(&self) -> &SecretService {
        &self.inner.secrets
    }

    pub fn audit(&self) -> &AuditService {
        &self.inner.audit
    }

    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    pub fn sockets_shutdown(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.sockets_shutdown
    }

    /// The data-plane token issuer, when a signing key is configured.
    pub fn data_plane(&self) -> Option<&crate::dataplane::DataPlane> {
        self.inner.data_plane.as_ref()
    }

    /// TLS serving state; `None` when the appliance serves plain HTTP.
    pub fn tls(&self) -> Option<&crate::tls::Tls> {
        self.inner.tls.as_ref()
    }

    /// Fires when someone's rights may have shrunk (see
    /// [`crate::auth::AccessChanges`]).
    pub fn access_changes(&self) -> &crate::auth::AccessChanges {
        &self.inner.access_changes
    }

    pub fn request_limiter(&self) -> &crate::http::ratelimit::RequestLimiter {
        &self.inner.request_limiter
    }

    /// Live WebSockets per user and per address, against their limits.
    pub fn sockets(&self) -> &crate::sessiongateway::SocketCounts {
        &self.inner.sockets
    }

    pub fn set_origins(&self, origins: crate::net::origin::OwnOrigins) {
        let _ = self.inner.origins.set(origins);
    }

    /// Whether a WebSocket upgrade from this `Origin` is admitted. Before
    /// the listener is known only clients without one are.
    pub fn admits_origin(&self, origin: Option<&str>) -> bool {
        match self.inner.origins.get() {
            Some(origins) => origins.admits(origin),
            None => origin.is_none(),
        }
    }
}
