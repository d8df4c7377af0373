//! The state every request handler shares.

use std::sync::Arc;

use rap_storage::Repositories;

use crate::config::Config;
use crate::metrics::Metrics;

/// Cheap to clone: one `Arc` around everything long-lived.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    repositories: Repositories,
    metrics: Metrics,
}

impl AppState {
    pub fn new(config: Config, repositories: Repositories, metrics: Metrics) -> Self {
        Self { inner: Arc::new(Inner { config, repositories, metrics }) }
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
}
