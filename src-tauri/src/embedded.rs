//! The appliance inside the desktop app: the same `rap_appliance::run` the
//! server binary calls, on the app's own data directory, stopped the same
//! graceful way (sockets told, sessions detached, WAL checkpointed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rap_appliance::Config;
use rap_appliance::config::{Settings, TlsMode};
use sha2::Digest;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A fixed loopback port, so the console keeps its origin (and with it the
/// browser storage that holds the sign-in and device id) across launches;
/// away from 8080, where a server install of the appliance listens.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:47080";

/// How long a stop may take before the app gives up waiting: the
/// appliance's own grace period plus checkpointing.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The app's settings: the process environment and `APP_CONFIG_FILE` as for
/// the server, over the desktop's defaults (data in the app's data
/// directory, loopback on [`DEFAULT_LISTEN_ADDR`]).
pub fn settings(app_data_dir: &Path) -> anyhow::Result<Settings> {
    let mut settings = Settings::from_env()?;
    settings.default_to("APP_DATA_DIR", &app_data_dir.join("data").to_string_lossy())?;
    settings.default_to("APP_LISTEN_ADDR", DEFAULT_LISTEN_ADDR)?;
    Ok(settings)
}

/// A running appliance.
pub struct Embedded {
    /// Where its console is, as the app's window opens it.
    pub console_url: String,
    pub listen_addr: SocketAddr,
    pub tls: bool,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Embedded {
    /// Validates `settings`, binds the listener (so a taken port is an
    /// error now, not later) and starts serving.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let config = Config::from_settings(settings)?;
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
        let listen_addr = listener.local_addr()?;
        let tls = config.tls.mode != TlsMode::Off;
        let data_dir = config.data_dir.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rap_appliance::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let console_url = console_url(listen_addr, tls);
        Ok(Self { console_url, listen_addr, tls, data_dir, stop: Some(stop), task })
    }

    /// Whether `run` ended by itself (a start-up failure).
    pub fn has_ended(&self) -> bool {
        self.task.is_finished()
    }

    /// The platform CA's SHA-256 (lowercase hex) when serving `APP_TLS=auto`:
    /// what a staff PC checks before trusting it.
    pub fn ca_fingerprint(&self) -> Option<String> {
        ca_fingerprint(&self.data_dir.join("tls").join("ca.pem"))
    }

    /// Where the window opens: the console, or on a first run its set-up
    /// page with the one-time code already filled in. The code proves
    /// access to the data directory, which the app has (it runs the
    /// appliance); it travels in the URL fragment, which never leaves the
    /// webview, and the page drops it from the address once read.
    pub fn window_url(&self) -> String {
        match std::fs::read_to_string(self.data_dir.join("setup-code")) {
            Ok(code) if is_setup_code(code.trim()) => format!("{}#/setup?code={}", self.console_url, code.trim()),
            _ => self.console_url.clone(),
        }
    }

    /// Stops serving and waits for the appliance to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(STOP_TIMEOUT, &mut self.task).await {
            Ok(joined) => joined.context("the appliance task panicked")?,
            Err(_) => {
                self.task.abort();
                anyhow::bail!("the appliance did not stop within {} s", STOP_TIMEOUT.as_secs())
            }
        }
    }
}

/// The console's address: loopback even when the appliance serves the LAN
/// on every interface.
fn console_url(listen_addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if listen_addr.ip().is_unspecified() || listen_addr.ip().is_loopback() {
        "127.0.0.1".to_owned()
    } else {
        listen_addr.ip().to_string()
    };
    format!("{scheme}://{host}:{}/", listen_addr.port())
}

fn ca_fingerprint(ca_pem: &Path) -> Option<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca_pem).ok()?;
    let der = CertificateDer::from_pem_slice(&pem).ok()?;
    Some(sha2::Sha256::digest(der.as_ref()).iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The code's own alphabet and hyphens only: nothing else from the file
/// reaches the URL.
fn is_setup_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 64 && code.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// `AB:CD:…`, as the web console shows fingerprints.
pub fn grouped(fingerprint: &str) -> String {
    fingerprint
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_opened_over_loopback() {
        let any: SocketAddr = "0.0.0.0:8443".parse().expect("addr");
        assert_eq!(console_url(any, true), "https://127.0.0.1:8443/");
        let local: SocketAddr = "127.0.0.1:47080".parse().expect("addr");
        assert_eq!(console_url(local, false), "http://127.0.0.1:47080/");
        let lan: SocketAddr = "192.168.1.20:8443".parse().expect("addr");
        assert_eq!(console_url(lan, true), "https://192.168.1.20:8443/");
    }

    #[test]
    fn only_a_well_formed_code_reaches_the_url() {
        assert!(is_setup_code("5C9A-VBHW-7R1C-CJDY-8R8H-GEH7-P34D"));
        assert!(!is_setup_code("x#/login"));
        assert!(!is_setup_code(""));
    }

    #[test]
    fn fingerprints_are_grouped_like_the_console_shows_them() {
        assert_eq!(grouped("c021eb"), "C0:21:EB");
    }
}
