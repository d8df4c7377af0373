//! Configuration: raw settings from environment variables and an optional
//! file ([`Settings`]), validated once at start-up into [`Config`].
//!
//! A setting has one name everywhere: the environment variable name
//! (`APP_LISTEN_ADDR`). The optional TOML file (`APP_CONFIG_FILE`) uses the
//! same names as keys; the environment wins over the file. Every validation
//! error names the setting, so start-up fails with one clear line.

mod edge;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
pub use edge::{EdgeConfig, TlsConfig, TlsMode, normalize_origin, tls_name};
pub use settings::{Settings, parse_duration};

/// A setting that is missing, malformed or contradicts another one.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(name: &str, reason: impl Into<String>) -> Self {
        Self { name: name.to_owned(), reason: reason.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Smoke,
    Production,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Smoke => "smoke",
            Self::Production => "production",
        }
    }

    pub fn is_production(self) -> bool {
        self == Self::Production
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityMode {
    Strict,
    Legacy,
}

impl AuthorityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Legacy => "legacy",
        }
    }
}

#[derive(Clone)]
pub struct InstallationConfig {
    pub authority_mode: AuthorityMode,
    /// Ed25519 public key of the Product Root that signs activations.
    pub product_root_public_key: Option<[u8; 32]>,
    pub insecure_bootstrap_enabled: bool,
    /// Where the installation's grant-signing key lives; by default in the
    /// data directory. Keeping it elsewhere (readable only by the service)
    /// means that someone who can edit the database cannot also sign.
    pub signing_key_file: Option<PathBuf>,
}

#[derive(Clone)]
pub struct SecretsConfig {
    /// AES-256-GCM master key; `None` in development means "generate one in
    /// the data directory".
    pub encryption_key: Option<[u8; 32]>,
    pub encryption_key_id: String,
    /// Older keys, by id: records under them still decrypt until
    /// `rap-appliance secrets rotate` re-encrypts them under the active key.
    pub retired_keys: Vec<(String, [u8; 32])>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectWorkerTrust {
    SmokeInsecure,
    PublicCa,
    PlatformCa,
}

#[derive(Clone)]
pub struct DataPlaneConfig {
    pub token_ttl: Duration,
    /// Inline PEM (`DATA_PLANE_TOKEN_PRIVATE_KEY_PEM`).
    pub private_key_pem: Option<String>,
    /// PEM file (`DATA_PLANE_TOKEN_PRIVATE_KEY_FILE`); outside production a
    /// missing file is created with a new key.
    pub private_key_file: Option<PathBuf>,
    pub backend_gateway_url: String,
    pub direct_worker_wss_url_template: Option<String>,
    pub direct_worker_json_runtime: bool,
    pub direct_worker_binary_render: bool,
    pub direct_worker_tls_trust_mode: DirectWorkerTrust,
    pub direct_worker_tls_ca_ref: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Failed logins per account within the window before 429.
    pub max_failures_per_account: u64,
    /// Failed logins per source address within the window before 429.
    pub max_failures_per_ip: u64,
    pub failure_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerRuntimeKind {
    /// A stand-in desktop for development and tests (never in production).
    Scripted,
    /// Real RDP sessions through IronRDP.
    Rdp,
}

impl WorkerRuntimeKind {
    /// The resource protocols this runtime starts sessions for. The
    /// scripted desktop stands in for RDP only: a `vnc` or `ssh` resource
    /// is refused (`protocol_unsupported`) rather than reached over RDP.
    pub fn protocols(self) -> &'static [&'static str] {
        match self {
            Self::Scripted | Self::Rdp => &["rdp"],
        }
    }
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub runtime: WorkerRuntimeKind,
    /// A worker that has not heartbeat for this long loses its lease, and
    /// its session fails (`worker_lost`).
    pub lease_ttl: Duration,
    /// Attach tokens are single use and live this long.
    pub attach_token_ttl: Duration,
    /// A session detached this long is terminated.
    pub detached_timeout: Duration,
    /// The gateway pings every socket this often; two missed intervals
    /// close it and detach its session.
    pub ping_interval: Duration,
    /// Certificate authorities trusted for `strict` RDP certificate checks
    /// besides the system's (an office's internal CA), from
    /// `RAP_RDP_TRUSTED_CA_FILE`.
    pub trusted_cas: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// The validated configuration the appliance runs with.
#[derive(Clone)]
pub struct Config {
    pub app_env: AppEnv,
    pub listen_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub tls: TlsConfig,
    pub allow_plaintext_lan: bool,
    pub edge: EdgeConfig,
    pub worker_slots: usize,
    pub broker: BrokerConfig,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    pub auth: AuthConfig,
    pub installation: InstallationConfig,
    pub secrets: SecretsConfig,
    pub data_plane: DataPlaneConfig,
}

impl std::fmt::Debug for Config {
    // Key material never reaches a log line, even at debug level.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("app_env", &self.app_env)
            .field("listen_addr", &self.listen_addr)
            .field("data_dir", &self.data_dir)
            .field("tls", &self.tls.mode)
            .field("worker_slots", &self.worker_slots)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads the process environment (and `APP_CONFIG_FILE` if set).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::from_env()?)
    }

    /// Embedded defaults for everything, `overrides` on top: what tests use.
    pub fn from_pairs<'a>(overrides: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::from_pairs(overrides)?)
    }

    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let app_env = match settings.get("APP_ENV").unwrap_or("development") {
            "development" | "dev" => AppEnv::Development,
            "smoke" => AppEnv::Smoke,
            "production" | "prod" => AppEnv::Production,
            other => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("unknown environment {other:?} (development, smoke, production)"),
                ));
            }
        };
        let listen_addr: SocketAddr = settings
            .get("APP_LISTEN_ADDR")
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| ConfigError::new("APP_LISTEN_ADDR", "expected an address like 127.0.0.1:8080"))?;
        let data_dir = PathBuf::from(settings.get("APP_DATA_DIR").unwrap_or("./data"));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("APP_DATA_DIR", "must not be empty"));
        }
        let log_format = match settings.get("APP_LOG_FORMAT").unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new("APP_LOG_FORMAT", format!("unknown format {other:?} (pretty, json)")));
            }
        };
        let allow_plaintext_lan = settings.flag("APP_ALLOW_PLAINTEXT_LAN")?;
        let tls = edge::tls(settings, listen_addr, allow_plaintext_lan)?;
        let edge = edge::edge(settings)?;
        let worker_slots = settings.number("RAP_WORKER_SLOTS", 8, 1..=1024)?;
        let shutdown_grace = settings.duration("APP_SHUTDOWN_GRACE", Duration::from_secs(4))?;
        let runtime = match settings.get("RAP_WORKER_RUNTIME") {
            None | Some("rdp") => WorkerRuntimeKind::Rdp,
            Some("scripted") => WorkerRuntimeKind::Scripted,
            Some(other) => {
                return Err(ConfigError::new(
                    "RAP_WORKER_RUNTIME",
                    format!("unknown runtime {other:?} (rdp, scripted)"),
                ));
            }
        };
        if runtime == WorkerRuntimeKind::Scripted && app_env.is_production() {
            return Err(ConfigError::new(
                "RAP_WORKER_RUNTIME",
                "the scripted runtime is for development and tests, not production",
            ));
        }
        let broker = BrokerConfig {
            runtime,
            lease_ttl: settings.duration("RAP_WORKER_LEASE_TTL", Duration::from_secs(30))?,
            attach_token_ttl: settings.duration("RAP_ATTACH_TOKEN_TTL", Duration::from_secs(60))?,
            detached_timeout: settings.duration("RAP_DETACHED_SESSION_TIMEOUT", Duration::from_secs(3600))?,
            ping_interval: settings.duration("RAP_GATEWAY_PING_INTERVAL", Duration::from_secs(15))?,
            trusted_cas: trusted_cas(settings)?,
        };
        if broker.ping_interval < Duration::from_millis(100) {
            return Err(ConfigError::new("RAP_GATEWAY_PING_INTERVAL", "must be at least 100ms"));
        }
        if broker.lease_ttl < Duration::from_millis(300) {
            return Err(ConfigError::new("RAP_WORKER_LEASE_TTL", "must be at least 300ms"));
        }

        let auth = AuthConfig {
            access_token_ttl: settings.duration("AUTH_ACCESS_TOKEN_TTL", Duration::from_secs(15 * 60))?,
            refresh_token_ttl: settings.duration("AUTH_REFRESH_TOKEN_TTL", Duration::from_secs(30 * 86_400))?,
            max_failures_per_account: settings.number("AUTH_LOGIN_MAX_FAILURES", 5, 1..=1000)? as u64,
            max_failures_per_ip: settings.number("AUTH_LOGIN_MAX_FAILURES_PER_IP", 20, 1..=100_000)? as u64,
            failure_window: settings.duration("AUTH_LOGIN_FAILURE_WINDOW", Duration::from_secs(15 * 60))?,
        };
        if auth.access_token_ttl.is_zero() || auth.access_token_ttl >= auth.refresh_token_ttl {
            return Err(ConfigError::new(
                "AUTH_ACCESS_TOKEN_TTL",
                "must be above zero and shorter than AUTH_REFRESH_TOKEN_TTL",
            ));
        }

        let installation = InstallationConfig {
            authority_mode: match settings.get("INSTALLATION_AUTHORITY_MODE") {
                None if app_env.is_production() => AuthorityMode::Strict,
                None => AuthorityMode::Legacy,
                Some("strict") => AuthorityMode::Strict,
                Some("legacy") => AuthorityMode::Legacy,
                Some(other) => {
                    return Err(ConfigError::new(
                        "INSTALLATION_AUTHORITY_MODE",
                        format!("unknown mode {other:?} (strict, legacy)"),
                    ));
                }
            },
            product_root_public_key: settings
                .key_material("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY")?
                .map(|bytes| exact_key("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64", bytes))
                .transpose()?,
            insecure_bootstrap_enabled: settings.flag("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED")?,
            signing_key_file: settings.get("INSTALLATION_SIGNING_KEY_FILE").map(PathBuf::from),
        };
        if app_env.is_production() {
            if installation.authority_mode != AuthorityMode::Strict {
                return Err(ConfigError::new("INSTALLATION_AUTHORITY_MODE", "production requires strict"));
            }
            if installation.product_root_public_key.is_none() {
                return Err(ConfigError::new(
                    "INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64",
                    "production requires the Product Root public key (_B64 or _FILE)",
                ));
            }
            if installation.insecure_bootstrap_enabled {
                return Err(ConfigError::new("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "not allowed in production"));
            }
        }

        let secrets = SecretsConfig {
            encryption_key: settings
                .key_material("SECRET_ENCRYPTION_KEY")?
                .map(|bytes| exact_key("SECRET_ENCRYPTION_KEY_B64", bytes))
                .transpose()?,
            encryption_key_id: settings.get("SECRET_ENCRYPTION_KEY_ID").unwrap_or("k1").to_owned(),
            retired_keys: retired_keys(settings)?,
        };
        if secrets.retired_keys.iter().any(|(id, _)| *id == secrets.encryption_key_id) {
            return Err(ConfigError::new(
                "SECRET_ENCRYPTION_RETIRED_KEYS",
                "must not reuse the active SECRET_ENCRYPTION_KEY_ID",
            ));
        }
        if app_env.is_production() && secrets.encryption_key.is_none() {
            return Err(ConfigError::new(
                "SECRET_ENCRYPTION_KEY_B64",
                "production requires the secret encryption key (_B64 or _FILE)",
            ));
        }

        let direct_worker_tls_trust_mode = match settings.get("DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE") {
            // The direct endpoint is this appliance's own listener: it
            // is trusted the way the appliance's certificate is.
            None => match tls.mode {
                TlsMode::Auto => DirectWorkerTrust::PlatformCa,
                TlsMode::Files { .. } => DirectWorkerTrust::PublicCa,
                TlsMode::Off => DirectWorkerTrust::SmokeInsecure,
            },
            Some("smoke_insecure") => DirectWorkerTrust::SmokeInsecure,
            Some("public_ca") => DirectWorkerTrust::PublicCa,
            Some("platform_ca") => DirectWorkerTrust::PlatformCa,
            Some(other) => {
                return Err(ConfigError::new(
                    "DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE",
                    format!("unknown mode {other:?} (smoke_insecure, public_ca, platform_ca)"),
                ));
            }
        };
        let data_plane = DataPlaneConfig {
            token_ttl: settings.duration("DATA_PLANE_TOKEN_TTL", Duration::from_secs(60))?,
            private_key_pem: settings.get("DATA_PLANE_TOKEN_PRIVATE_KEY_PEM").map(str::to_owned),
            private_key_file: settings.get("DATA_PLANE_TOKEN_PRIVATE_KEY_FILE").map(PathBuf::from),
            backend_gateway_url: settings
                .get("DATA_PLANE_BACKEND_GATEWAY_URL")
                .unwrap_or("/api/v1/gateway/ws")
                .to_owned(),
            direct_worker_wss_url_template: settings
                .get("DATA_PLANE_DIRECT_WORKER_WSS_URL_TEMPLATE")
                .map(str::to_owned),
            direct_worker_json_runtime: settings.flag("DATA_PLANE_DIRECT_WORKER_JSON_RUNTIME")?,
            direct_worker_binary_render: settings.flag("DATA_PLANE_DIRECT_WORKER_BINARY_RENDER")?,
            direct_worker_tls_trust_mode,
            direct_worker_tls_ca_ref: settings.get("DATA_PLANE_DIRECT_WORKER_TLS_CA_REF").map(str::to_owned),
        };

        Ok(Self {
            app_env,
            listen_addr,
            data_dir,
            log_format,
            tls,
            allow_plaintext_lan,
            edge,
            worker_slots,
            broker,
            shutdown_grace,
            auth,
            installation,
            secrets,
            data_plane,
        })
    }

    /// Path of the SQLite database inside the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(rap_storage::sqlite::DATABASE_FILE_NAME)
    }
}

/// The PEM certificates in `RAP_RDP_TRUSTED_CA_FILE`: at least one, each
/// a CA webpki accepts as a trust anchor, or the appliance does not start.
fn trusted_cas(settings: &Settings) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    const NAME: &str = "RAP_RDP_TRUSTED_CA_FILE";
    let Some(path) = settings.get(NAME) else { return Ok(Vec::new()) };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| ConfigError::new(NAME, format!("cannot read PEM certificates from {path}: {error}")))?;
    if certificates.is_empty() {
        return Err(ConfigError::new(NAME, format!("{path} holds no PEM certificate")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in &certificates {
        roots.add(certificate.clone()).map_err(|error| {
            ConfigError::new(NAME, format!("a certificate in {path} is not usable as a CA: {error}"))
        })?;
    }
    Ok(certificates)
}

/// `id:base64` entries, comma-separated in `SECRET_ENCRYPTION_RETIRED_KEYS`
/// or one per line in `SECRET_ENCRYPTION_RETIRED_KEYS_FILE` (`#` comments).
fn retired_keys(settings: &Settings) -> Result<Vec<(String, [u8; 32])>, ConfigError> {
    let mut entries: Vec<(&str, String)> = Vec::new();
    if let Some(inline) = settings.get("SECRET_ENCRYPTION_RETIRED_KEYS") {
        entries.extend(inline.split(',').map(|entry| ("SECRET_ENCRYPTION_RETIRED_KEYS", entry.trim().to_owned())));
    }
    if let Some(path) = settings.get("SECRET_ENCRYPTION_RETIRED_KEYS_FILE") {
        let name = "SECRET_ENCRYPTION_RETIRED_KEYS_FILE";
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new(name, format!("cannot read {path}: {error}")))?;
        entries.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(|line| (name, line.to_owned())),
        );
    }
    let mut keys = Vec::new();
    for (name, entry) in entries.into_iter().filter(|(_, entry)| !entry.is_empty()) {
        let (id, key) = entry.split_once(':').ok_or_else(|| ConfigError::new(name, "entries are key_id:base64"))?;
        if id.is_empty() || keys.iter().any(|(known, _): &(String, [u8; 32])| known == id) {
            return Err(ConfigError::new(name, format!("key id {id:?} is empty or repeated")));
        }
        keys.push((id.to_owned(), exact_key(name, decode_base64(name, key)?)?));
    }
    Ok(keys)
}

fn exact_key(name: &str, bytes: Vec<u8>) -> Result<[u8; 32], ConfigError> {
    let length = bytes.len();
    bytes.try_into().map_err(|_| ConfigError::new(name, format!("expected 32 bytes, got {length}")))
}

pub(crate) fn decode_base64(name: &str, text: &str) -> Result<Vec<u8>, ConfigError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ConfigError::new(name, "not valid base64"))
}

#[cfg(test)]
mod tests;
