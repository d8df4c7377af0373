//! The state every request handler shares, and how it is put together.

use std::sync::Arc;

use anyhow::Context as _;
use rap_storage::Repositories;
use rap_storage::live::memory::{MemoryCounters, MemoryTtlMap};

use crate::auth::service::AuthLiveState;
use crate::auth::{AuthService, Passwords};
use crate::config::Config;
use crate::installation::InstallationService;
use crate::keys::KeyRing;
use crate::metrics::Metrics;

/// Live-state capacities: far above what a small office produces, low
/// enough that a flood cannot exhaust memory.
const SESSION_STATES_CAPACITY: u64 = 100_000;
const USER_SNAPSHOTS_CAPACITY: u64 = 10_000;
const LOGIN_COUNTERS_CAPACITY: usize = 100_000;

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
}

impl AppState {
    /// Loads (or makes) the data directory's keys and builds the services.
    pub async fn build(config: Config, repositories: Repositories, metrics: Metrics) -> anyhow::Result<Self> {
        let data_dir = config.data_dir.clone();
        let signing_key_file = config.installation.signing_key_file.clone();
        let keys =
            tokio::task::spawn_blocking(move || KeyRing::load_or_generate(&data_dir, signing_key_file.as_deref()))
                .await
                .context("loading keys")??;
        let passwords = Passwords::new();
        passwords.prepare_in_background();
        let installation = InstallationService::new(
            repositories.clone(),
            config.installation.clone(),
            config.app_env,
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
            installation.clone(),
            live,
            &keys.access_token,
            config.auth.clone(),
            passwords,
        );
        Ok(Self { inner: Arc::new(Inner { config, repositories, metrics, installation, auth }) })
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
}
