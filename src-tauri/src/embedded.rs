//! The appliance inside the desktop app: the same `rap_appliance::run` the
//! server binary calls, on the app's own data directory, stopped the same
//! graceful way (sockets told, sessions detached, WAL checkpointed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rap_appliance::Config;
use rap_appliance::config::{Settings, TlsMode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A fixed loopback port, so the console keeps its origin (and with it the
/// browser storage that holds the sign-in and device id) across launches;
/// away from 8080, where a server install of the appliance listens.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:47080";

/// Where the app's appliance serves the office when the LAN is turned on:
/// every interface, HTTPS with the appliance's own CA (`APP_TLS=auto`).
pub const LAN_LISTEN_ADDR: &str = "0.0.0.0:8443";

/// The app's own choices, kept beside its data (`desktop.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choices {
    /// Serve the office LAN, not only this computer.
    #[serde(default)]
    pub lan: bool,
}

impl Choices {
    pub fn path(app_data_dir: &Path) -> PathBuf {
        app_data_dir.join("desktop.toml")
    }

    /// The saved choices; a missing file is the defaults, a damaged one is
    /// an error rather than a silent reset.
    pub fn load(app_data_dir: &Path) -> anyhow::Result<Self> {
        let path = Self::path(app_data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not valid", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, app_data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(app_data_dir)?;
        let text = toml::to_string(self)?;
        std::fs::write(Self::path(app_data_dir), text).context("saving the desktop app's choices")
    }
}

/// How long a stop may take before the app gives up waiting: the
/// appliance's own grace period plus checkpointing.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The app's settings: the process environment and `APP_CONFIG_FILE` as for
/// the server, over the desktop's defaults (data in the app's data
/// directory, loopback on [`DEFAULT_LISTEN_ADDR`]).
pub fn settings(app_data_dir: &Path, choices: Choices) -> anyhow::Result<Settings> {
    let mut settings = Settings::from_env()?;
    settings.default_to("APP_DATA_DIR", &app_data_dir.join("data").to_string_lossy())?;
    settings.default_to("APP_LISTEN_ADDR", if choices.lan { LAN_LISTEN_ADDR } else { DEFAULT_LISTEN_ADDR })?;
    if choices.lan {
        // Serving the office means HTTPS, wherever the address points.
        settings.default_to("APP_TLS", "auto")?;
    }
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
    /// Validates `settings`, binds the listeners (so a taken port is an
    /// error now, not later) and starts serving. When the appliance serves
    /// TLS (the LAN), the window's console gets its own plain listener on
    /// `console_addr` (loopback): the webview does not trust the
    /// appliance's CA, and plain HTTP never leaves the machine.
    pub async fn start(settings: &Settings, console_addr: SocketAddr) -> anyhow::Result<Self> {
        let config = Config::from_settings(settings)?;
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
        };
        let listener = bind(config.listen_addr).await?;
        let listen_addr = listener.local_addr()?;
        let tls = config.tls.mode != TlsMode::Off;
        let console = if tls { Some(bind(console_addr).await?) } else { None };
        let console_url = match &console {
            Some(console) => console_url(console.local_addr()?),
            None => console_url(listen_addr),
        };
        let data_dir = config.data_dir.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rap_appliance::run_with_console(config, listener, console, async move {
            let _ = stopped.await;
        }));
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

/// The console's address: plain HTTP over loopback even when the
/// appliance listens on every interface (TLS comes with a console listener
/// of its own).
fn console_url(listen_addr: SocketAddr) -> String {
    let host = if listen_addr.ip().is_unspecified() || listen_addr.ip().is_loopback() {
        "127.0.0.1".to_owned()
    } else {
        listen_addr.ip().to_string()
    };
    format!("http://{host}:{}/", listen_addr.port())
}

fn ca_fingerprint(ca_pem: &Path) -> Option<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca_pem).ok()?;
    let der = CertificateDer::from_pem_slice(&pem).ok()?;
    // The appliance's own definition, so the tray and the console agree.
    Some(rap_appliance::tls::authority::fingerprint(der.as_ref()))
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
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(console_url(any), "http://127.0.0.1:8080/");
        let local: SocketAddr = "127.0.0.1:47080".parse().expect("addr");
        assert_eq!(console_url(local), "http://127.0.0.1:47080/");
    }

    #[test]
    fn only_a_well_formed_code_reaches_the_url() {
        assert!(is_setup_code("5C9A-VBHW-7R1C-CJDY-8R8H-GEH7-P34D"));
        assert!(!is_setup_code("x#/login"));
        assert!(!is_setup_code(""));
    }

    #[test]
    fn choices_survive_a_restart_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(Choices::load(dir.path()).expect("defaults"), Choices::default());
        Choices { lan: true }.save(dir.path()).expect("saved");
        assert_eq!(Choices::load(dir.path()).expect("loaded"), Choices { lan: true });
        std::fs::write(Choices::path(dir.path()), "lan = \"maybe\"").expect("write");
        assert!(Choices::load(dir.path()).is_err());
        std::fs::write(Choices::path(dir.path()), "lan = true\nextra = 1").expect("write");
        assert!(Choices::load(dir.path()).is_err(), "unknown keys are refused");
    }

    #[test]
    fn fingerprints_are_grouped_like_the_console_shows_them() {
        assert_eq!(grouped("c021eb"), "C0:21:EB");
    }
}
