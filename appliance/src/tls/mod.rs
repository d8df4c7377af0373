//! HTTPS and WSS: which certificate the appliance presents, how it is kept
//! current, and what clients need to trust it.
//!
//! - `auto`: the appliance's own platform CA ([`authority`]) signs a server
//!   certificate for the names the machine answers to ([`names`]); a
//!   maintenance task re-issues it when the names change or expiry nears,
//!   swapping it in without dropping a connection.
//! - `files`: the operator's chain and key, re-read on SIGHUP (a reload that
//!   fails keeps the certificate being served and says why in the log).

pub mod authority;
pub mod names;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TlsMode};
use crate::metrics::Metrics;
use authority::PlatformCa;
use names::ServedNames;

/// How often `auto` looks at the machine's names and the certificate's
/// expiry (addresses change with DHCP).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    fn from_rcgen(error: rcgen::Error) -> Self {
        Self(format!("certificate generation: {error}"))
    }
}

/// What `GET /api/v1/installation` says about TLS.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TlsView {
    pub mode: &'static str,
    pub ca_fingerprint_sha256: Option<String>,
}

/// The certificate being served; swapped whole on renewal or reload.
#[derive(Debug)]
struct Current {
    key: RwLock<Arc<CertifiedKey>>,
    names: RwLock<ServedNames>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().clone())
    }
}

/// TLS serving state: cheap to clone.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    mode: TlsMode,
    current: Arc<Current>,
    server_config: Arc<rustls::ServerConfig>,
    ca: Option<PlatformCa>,
    /// Where `auto` keeps its files, and the inputs of its names.
    auto: Option<AutoInputs>,
}

struct AutoInputs {
    dir: std::path::PathBuf,
    listen: std::net::SocketAddr,
    extra_names: Vec<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<CertifiedKey, TlsError> {
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|error| TlsError::new(format!("the key cannot be used: {error}")))?;
    certified.keys_match().map_err(|_| TlsError::new("the private key does not belong to the certificate"))?;
    Ok(certified)
}

impl Tls {
    /// Prepares TLS for `config` (blocking file and key work): `None` when
    /// TLS is off. In `auto`, makes the CA and certificate on first start.
    pub fn prepare(config: &Config) -> Result<Option<Self>, TlsError> {
        let tls = &config.tls;
        let (certified, names, ca, auto) = match &tls.mode {
            TlsMode::Off => return Ok(None),
            TlsMode::Auto => {
                let dir = authority::tls_dir(&config.data_dir)?;
                let served = names::served_names(config.listen_addr, &tls.extra_names);
                let ca = PlatformCa::load_or_create(&dir, &served)?;
                let (server, _) = ca.server_certificate(&dir, &served)?;
                let names = server.names.clone();
                let certified = certified(server.chain, server.key)?;
                let auto = AutoInputs { dir, listen: config.listen_addr, extra_names: tls.extra_names.clone() };
                (certified, names, Some(ca), Some(auto))
            }
            TlsMode::Files { cert, key } => {
                let (certified, names) = load_files(cert, key)?;
                (certified, names, None, None)
            }
        };
        let current = Arc::new(Current { key: RwLock::new(Arc::new(certified)), names: RwLock::new(names) });
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::new(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // HTTP/1.1 only: WebSockets upgrade over it, and one protocol is
        // one set of limits to get right.
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            inner: Arc::new(Inner {
                mode: tls.mode.clone(),
                current,
                server_config: Arc::new(server_config),
                ca,
                auto,
            }),
        }))
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.inner.server_config.clone()
    }

    pub fn mode(&self) -> &TlsMode {
        &self.inner.mode
    }

    pub fn ca(&self) -> Option<&PlatformCa> {
        self.inner.ca.as_ref()
    }

    /// The names the served certificate covers.
    pub fn names(&self) -> ServedNames {
        self.inner.current.names.read().clone()
    }

    /// What a view of an installation says, with or without TLS.
    pub fn view(tls: Option<&Self>) -> TlsView {
        match tls {
            None => TlsView { mode: "off", ca_fingerprint_sha256: None },
            Some(tls) => TlsView {
                mode: tls.inner.mode.as_str(),
                ca_fingerprint_sha256: tls.ca().map(|ca| ca.fingerprint.clone()),
            },
        }
    }

    fn install(&self, certified: CertifiedKey, names: ServedNames) {
        *self.inner.current.key.write() = Arc::new(certified);
        *self.inner.current.names.write() = names;
    }

    /// Keeps the certificate current until `shutdown`: `auto` re-issues it
    /// when due, `files` re-reads the files on SIGHUP.
    pub fn spawn_maintenance(&self, metrics: Metrics, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            match tls.inner.mode.clone() {
                TlsMode::Off => {}
                TlsMode::Auto => tls.renew_while_running(metrics, shutdown).await,
                TlsMode::Files { cert, key } => tls.reload_on_hangup(cert, key, metrics, shutdown).await,
            }
        })
    }

    async fn renew_while_running(&self, metrics: Metrics, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let tls = self.clone();
            let renewed = tokio::task::spawn_blocking(move || tls.renew_if_due()).await;
            match renewed {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => metrics.tls_certificate_changed("renewed"),
                Ok(Err(error)) => {
                    metrics.tls_certificate_changed("failed");
                    tracing::error!(%error, "Renewing the server certificate failed; the current one is still served");
                }
                Err(error) => tracing::error!(%error, "The certificate renewal task failed"),
            }
        }
    }

    /// Re-issues the `auto` certificate if the machine's names changed or
    /// it nears expiry; `true` if a new one is now served.
    pub fn renew_if_due(&self) -> Result<bool, TlsError> {
        let (Some(ca), Some(auto)) = (self.ca(), self.inner.auto.as_ref()) else { return Ok(false) };
        let served = names::served_names(auto.listen, &auto.extra_names);
        let (server, new) = ca.server_certificate(&auto.dir, &served)?;
        if new {
            let names = server.names.clone();
            self.install(certified(server.chain, server.key)?, names);
        }
        Ok(new)
    }

    async fn reload_on_hangup(
        &self,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(error) => {
                    tracing::error!(%error, "Cannot listen for SIGHUP; certificate files are not reloaded");
                    return;
                }
            };
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = hangups.recv() => if received.is_none() { return },
                }
                let (cert, key) = (cert.clone(), key.clone());
                let loaded = tokio::task::spawn_blocking(move || load_files(&cert, &key)).await;
                match loaded {
                    Ok(Ok((certified, names))) => {
                        self.install(certified, names);
                        metrics.tls_certificate_changed("reloaded");
                        tracing::info!("Reloaded the TLS certificate files (SIGHUP)");
                    }
                    Ok(Err(error)) => {
                        metrics.tls_certificate_changed("failed");
                        tracing::error!(%error, "Reloading the TLS certificate files failed; the previous certificate is still served");
                    }
                    Err(error) => tracing::error!(%error, "The certificate reload task failed"),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (cert, key, metrics);
            shutdown.cancelled().await;
        }
    }
}

/// The operator's chain (leaf first) and key, checked to belong together.
fn load_files(cert: &std::path::Path, key: &std::path::Path) -> Result<(CertifiedKey, ServedNames), TlsError> {
    use rustls::pki_types::pem::PemObject;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|error| TlsError::new(format!("{}: {error}", path.display())))
    };
    let chain = authority::pem_certificates(&read(cert)?);
    let Some(leaf) = chain.first() else {
        return Err(TlsError::new(format!("APP_TLS_CERT_FILE {}: holds no PEM certificate", cert.display())));
    };
    let names = x509_parser::parse_x509_certificate(leaf)
        .map(|(_, parsed)| authority::subject_names(&parsed))
        .map_err(|error| TlsError::new(format!("APP_TLS_CERT_FILE {}: {error}", cert.display())))?;
    let private = PrivateKeyDer::from_pem_slice(read(key)?.as_bytes())
        .map_err(|error| TlsError::new(format!("APP_TLS_KEY_FILE {}: {error}", key.display())))?;
    let certified = certified(chain, private)
        .map_err(|error| TlsError::new(format!("APP_TLS_KEY_FILE {}: {error}", key.display())))?;
    Ok((certified, names))
}
