//! The state every request handler shares, and how it is put together.

use std::sync::Arc;

use anyhow::Context as _;
use rap_storage::Repositories;
use rap_storage::live::memory::{MemoryCounters, MemoryTtlMap};

use crate::audit::AuditService;
use crate::auth::service::AuthLiveState;
use crate::auth::{AuthService, Passwords};
use crate::config::Config;
use crate::installation::InstallationService;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::organization::{Gate, OrganizationService};
use crate::resource::ResourceService;
use crate::secrets::{SecretKeyRing, SecretService};

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
    organizations: OrganizationService,
    resources: ResourceService,
    secrets: SecretService,
    audit: AuditService,
}

impl AppState {
    /// Loads (or makes) the data directory's keys and builds the services.
    pub async fn build(config: Config, repositories: Repositories, metrics: Metrics) -> anyhow::Result<Self> {
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
        let organizations = OrganizationService::new(repositories.clone(), gate.clone());
        let resources = ResourceService::new(repositories.clone(), gate.clone(), secrets.clone(), config.app_env);
        let audit = AuditService::new(repositories.clone(), gate);
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
}
