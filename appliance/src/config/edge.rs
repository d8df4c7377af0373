//! The network edge's settings: TLS, the origins allowed to open sockets,
//! and the per-client limits that keep one client from exhausting the
//! appliance for everyone else.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Settings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    /// The appliance's own platform CA and certificate in the data directory.
    Auto,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

impl TlsMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Auto => "auto",
            Self::Files { .. } => "files",
        }
    }
}

/// How the appliance serves TLS and under which names.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// Extra names and addresses for the `auto` certificate
    /// (`APP_TLS_NAMES`), lowercased and checked.
    pub extra_names: Vec<String>,
    /// Where plain HTTP is answered with a redirect to HTTPS.
    pub redirect_addr: Option<SocketAddr>,
}

/// Per-client limits at the edge (HTTP and WebSocket).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// A client must send a request's headers within this time (also the
    /// idle time after which a keep-alive connection is closed).
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// Open HTTP connections at most (lowered to fit the process's file
    /// descriptor limit at start).
    pub max_connections: usize,
    /// Connections with no request in progress at most; past it the one
    /// idle longest is closed to make room.
    pub max_idle_connections: usize,
    /// Requests per second per source address (token bucket); 0 turns the
    /// limit off.
    pub requests_per_second: u32,
    pub request_burst: u32,
    pub websockets_per_user: usize,
    pub websockets_per_address: usize,
    /// Messages per second a live-plane socket may send (token bucket).
    pub socket_messages_per_second: u32,
    pub socket_message_burst: u32,
    /// Origins besides the appliance's own that may open WebSockets (the
    /// desktop app's), normalised `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
}

pub(super) fn tls(
    settings: &Settings,
    listen_addr: SocketAddr,
    allow_plaintext_lan: bool,
) -> Result<TlsConfig, ConfigError> {
    let mode = match settings.get("APP_TLS") {
        None if listen_addr.ip().is_loopback() || allow_plaintext_lan => TlsMode::Off,
        None => TlsMode::Auto,
        Some("off") => TlsMode::Off,
        Some("auto") => TlsMode::Auto,
        Some("files") => TlsMode::Files {
            cert: PathBuf::from(settings.require("APP_TLS_CERT_FILE")?),
            key: PathBuf::from(settings.require("APP_TLS_KEY_FILE")?),
        },
        Some(other) => return Err(ConfigError::new("APP_TLS", format!("unknown mode {other:?} (off, auto, files)"))),
    };
    if mode == TlsMode::Off && !listen_addr.ip().is_loopback() && !allow_plaintext_lan {
        return Err(ConfigError::new(
            "APP_LISTEN_ADDR",
            format!("{listen_addr} is not loopback; serving it without TLS needs APP_ALLOW_PLAINTEXT_LAN=true"),
        ));
    }
    let extra_names = match settings.get("APP_TLS_NAMES") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                tls_name(name).ok_or_else(|| {
                    ConfigError::new("APP_TLS_NAMES", format!("{name:?} is not a host name or IP address"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let redirect_addr = match settings.get("APP_HTTP_REDIRECT_ADDR") {
        None => None,
        Some(text) => {
            let addr: SocketAddr = text
                .parse()
                .map_err(|_| ConfigError::new("APP_HTTP_REDIRECT_ADDR", "expected an address like 0.0.0.0:80"))?;
            if mode == TlsMode::Off {
                return Err(ConfigError::new(
                    "APP_HTTP_REDIRECT_ADDR",
                    "redirects to HTTPS, so it needs APP_TLS auto or files",
                ));
            }
            Some(addr)
        }
    };
    Ok(TlsConfig { mode, extra_names, redirect_addr })
}

pub(super) fn edge(settings: &Settings) -> Result<EdgeConfig, ConfigError> {
    let seconds = |name, default| settings.duration(name, Duration::from_secs(default));
    let config = EdgeConfig {
        header_read_timeout: seconds("APP_HTTP_HEADER_TIMEOUT", 10)?,
        tls_handshake_timeout: seconds("APP_TLS_HANDSHAKE_TIMEOUT", 10)?,
        max_connections: settings.number("APP_MAX_CONNECTIONS", 4096, 16..=1_000_000)?,
        max_idle_connections: settings.number("APP_MAX_IDLE_CONNECTIONS", 512, 4..=1_000_000)?,
        requests_per_second: settings.number("APP_RATE_LIMIT_PER_SECOND", 50, 0..=1_000_000)? as u32,
        request_burst: settings.number("APP_RATE_LIMIT_BURST", 300, 1..=1_000_000)? as u32,
        websockets_per_user: settings.number("RAP_WEBSOCKETS_PER_USER", 20, 1..=10_000)?,
        websockets_per_address: settings.number("RAP_WEBSOCKETS_PER_ADDRESS", 50, 1..=10_000)?,
        socket_messages_per_second: settings.number("RAP_SOCKET_MESSAGES_PER_SECOND", 1000, 1..=1_000_000)? as u32,
        socket_message_burst: settings.number("RAP_SOCKET_MESSAGE_BURST", 2000, 1..=1_000_000)? as u32,
        allowed_origins: match settings.get("APP_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(|origin| {
                    normalize_origin(origin).ok_or_else(|| {
                        ConfigError::new(
                            "APP_ALLOWED_ORIGINS",
                            format!("{origin:?} is not an origin like tauri://localhost"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        },
    };
    for (name, value) in [
        ("APP_HTTP_HEADER_TIMEOUT", config.header_read_timeout),
        ("APP_TLS_HANDSHAKE_TIMEOUT", config.tls_handshake_timeout),
    ] {
        if value < Duration::from_millis(100) || value > Duration::from_secs(600) {
            return Err(ConfigError::new(name, "must be between 100ms and 10m"));
        }
    }
    if config.max_idle_connections > config.max_connections {
        return Err(ConfigError::new("APP_MAX_IDLE_CONNECTIONS", "must not exceed APP_MAX_CONNECTIONS"));
    }
    Ok(config)
}

/// A DNS name (optionally `*.`-prefixed) or an IP address, lowercased.
pub fn tls_name(raw: &str) -> Option<String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() {
        return Some(name);
    }
    let host = name.strip_prefix("*.").unwrap_or(&name);
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
    });
    (labels_ok && !host.is_empty() && name.len() <= 253).then_some(name)
}

/// `scheme://host[:port]`, lowercased, without a trailing slash; `None`
/// for anything with a path, credentials, query or wildcard.
pub fn normalize_origin(raw: &str) -> Option<String> {
    let origin = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let scheme_ok = scheme.chars().next().is_some_and(|first| first.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = !authority.is_empty()
        && authority.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
    (scheme_ok && authority_ok).then_some(origin)
}
