//! Establishing an RDP connection: TCP, negotiation, TLS under the
//! resource's certificate policy, CredSSP, finalization. Every failure
//! becomes a stable reason code the UI can show.

use std::sync::Arc;
use std::time::Duration;

use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::{
    BitmapConfig, ClientConnector, ClientConnectorState, Config, ConnectionOutcome, ConnectionResult, ConnectorError,
    ConnectorErrorExt as _, ConnectorResult, Credentials, DesktopSize, ServerName,
};
use ironrdp_pdu::gcc::{ConnectionType, KeyboardType};
use ironrdp_pdu::rdp::capability_sets::{MajorPlatformType, client_codecs_capabilities};
use ironrdp_pdu::rdp::client_info::{PerformanceFlags, TimezoneInfo};
use ironrdp_session::ActiveStage;
use ironrdp_tls::{CertificateValidation, TlsStream};
use ironrdp_tokio::{FramedWrite as _, TokioFramed};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use crate::resource::CertificateMode;
use crate::worker::Assignment;

/// How long the whole connection sequence may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub type Framed = TokioFramed<TlsStream<TcpStream>>;

pub struct Connection {
    pub framed: Framed,
    pub result: ConnectionResult,
    /// Clipboard channel events, when the policy lets any text cross.
    pub clipboard: Option<std::sync::mpsc::Receiver<super::clipboard::Event>>,
    /// What the graphics pipeline decoded, if the host opens it.
    pub video: super::video::Tap,
}

/// Kerberos is not offered (no KDC on a small office LAN): CredSSP runs
/// NTLM, which never needs the network.
struct NoNetwork;

impl ironrdp_tokio::NetworkClient for NoNetwork {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(ConnectorError::general("Kerberos is not supported"))
    }
}

fn config(assignment: &Assignment) -> Result<Config, String> {
    let credentials = assignment.credentials.as_ref().ok_or_else(|| String::from("credentials_missing"))?;
    let codecs = client_codecs_capabilities(&[]).map_err(|_| String::from("codec_setup_failed"))?;
    Ok(Config {
        credentials: Credentials::UsernamePassword {
            username: credentials.username.clone(),
            password: credentials.password.clone(),
        },
        domain: credentials.domain.clone(),
        // TLS alone for servers without NLA (xrdp); CredSSP when offered.
        enable_tls: true,
        enable_credssp: true,
        enable_standard_rdp_security: false,
        desktop_size: DesktopSize {
            width: crate::protocol::DesktopSize::capped(assignment.width, assignment.height).width,
            height: crate::protocol::DesktopSize::capped(assignment.width, assignment.height).height,
        },
        bitmap: Some(BitmapConfig { lossy_compression: false, color_depth: 32, codecs }),
        autologon: true,
        performance_flags: PerformanceFlags::DISABLE_WALLPAPER
            | PerformanceFlags::DISABLE_FULLWINDOWDRAG
            | PerformanceFlags::DISABLE_MENUANIMATIONS
            | PerformanceFlags::ENABLE_FONT_SMOOTHING,
        keyboard_type: KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_functional_keys_count: 12,
        keyboard_layout: 0,
        connection_type: ConnectionType::Lan,
        compression_type: None,
        enable_server_pointer: false,
        pointer_software_rendering: false,
        client_name: CLIENT_NAME.into(),
        client_build: 0,
        client_dir: String::from("C:\\Windows\\System32\\mstscax.dll"),
        platform: MajorPlatformType::UNIX,
        dig_product_id: String::new(),
        ime_file_name: String::new(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
        hardware_id: None,
        request_data: None,
        license_cache: None,
        timezone_info: TimezoneInfo::default(),
        enable_audio_playback: false,
        enable_audio_capture: false,
        multitransport_flags: None,
        // The graphics pipeline (H.264 among its codecs), when the host has it.
        support_dyn_vc_gfx_protocol: true,
        relative_mouse_input: false,
        monitor_layout: None,
        monitor_extended_layout: None,
        desktop_scale_factor: 0,
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
    })
}

fn classify_connect(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection_refused",
        std::io::ErrorKind::TimedOut => "connect_timeout",
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => "host_unreachable",
        _ => "connection_failed",
    }
    .into()
}

fn classify_tls(error: &std::io::Error) -> String {
    let rustls_error = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
        )) => "certificate_name_mismatch".into(),
        Some(rustls::Error::InvalidCertificate(_)) => "certificate_untrusted".into(),
        _ if error.to_string().contains("no usable roots") => "certificate_untrusted".into(),
        _ => "tls_failed".into(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The canonical pin (`sha256:<hex>`, as stored on resources) of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(der))
}

/// The roots `strict` checks trust: the system's and the configured CAs,
/// read once, off the async workers, at the first strict connection.
pub struct TrustRoots {
    configured: Vec<rustls::pki_types::CertificateDer<'static>>,
    store: tokio::sync::OnceCell<Arc<rustls::RootCertStore>>,
}

impl TrustRoots {
    pub fn new(configured: Vec<rustls::pki_types::CertificateDer<'static>>) -> Self {
        Self { configured, store: tokio::sync::OnceCell::new() }
    }

    async fn store(&self) -> Arc<rustls::RootCertStore> {
        let load = || async {
            let configured = self.configured.clone();
            tokio::task::spawn_blocking(move || {
                let mut roots = rustls::RootCertStore::empty();
                let system = rustls_native_certs::load_native_certs();
                let (system_roots, _) = roots.add_parsable_certificates(system.certs);
                let (configured_roots, _) = roots.add_parsable_certificates(configured);
                tracing::info!(system_roots, configured_roots, "RDP certificate roots loaded");
                Arc::new(roots)
            })
            .await
            .unwrap_or_else(|_| Arc::new(rustls::RootCertStore::empty()))
        };
        self.store.get_or_init(load).await.clone()
    }
}

/// TLS with chain and name checked against `roots`.
async fn strict_upgrade(
    tcp: TcpStream,
    host: &str,
    roots: Arc<rustls::RootCertStore>,
) -> std::io::Result<(TlsStream<TcpStream>, x509_cert::Certificate)> {
    use tokio::io::AsyncWriteExt as _;
    use x509_cert::der::Decode as _;
    if roots.is_empty() {
        return Err(std::io::Error::other("no usable roots"));
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    // Each RDP connection stands alone; nothing to resume.
    config.resumption = rustls::client::Resumption::disabled();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    tls.flush().await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| std::io::Error::other("no server certificate"))?;
    let certificate = x509_cert::Certificate::from_der(leaf).map_err(std::io::Error::other)?;
    Ok((tls, certificate))
}

/// The TLS stream and the server's public key (which CredSSP binds to).
async fn upgrade(
    tcp: TcpStream,
    assignment: &Assignment,
    trust: &TrustRoots,
) -> Result<(TlsStream<TcpStream>, Vec<u8>), String> {
    let host = assignment.host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let upgraded = match (assignment.certificate_verification_mode, &assignment.certificate_fingerprint) {
        (CertificateMode::Ignore, _) => {
            ironrdp_tls::upgrade_with_certificate_validation(
                tcp,
                &host,
                CertificateValidation::DangerouslyAcceptInvalidCertificate,
            )
            .await
        }
        (_, Some(pin)) => {
            // A pinned certificate is accepted even if no public CA vouches
            // for it (the usual self-signed RDP host), and checked again
            // after the handshake, so a publicly valid other certificate
            // does not pass either.
            let expected = pin.clone();
            let accepts_pinned: ironrdp_tls::CertificateValidationCallback =
                Arc::new(move |leaf: &[u8], _endpoint: &str, _reason: &str| fingerprint(leaf) == expected);
            ironrdp_tls::upgrade_with_certificate_validation_callback(tcp, &host, accepts_pinned).await
        }
        _ => strict_upgrade(tcp, &host, trust.store().await).await,
    };
    let (tls, certificate) = upgraded.map_err(|error| {
        tracing::info!(host = %assignment.host, %error, "TLS handshake failed");
        classify_tls(&error)
    })?;
    if let Some(pin) = &assignment.certificate_fingerprint
        && assignment.certificate_verification_mode != CertificateMode::Ignore
    {
        let leaf =
            tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|leaf| fingerprint(leaf.as_ref()));
        if leaf.as_deref() != Some(pin.as_str()) {
            return Err("certificate_untrusted".into());
        }
    }
    let public_key =
        ironrdp_tls::extract_tls_server_public_key(&certificate).ok_or_else(|| String::from("tls_failed"))?.to_owned();
    Ok((tls, public_key))
}

/// How the appliance names itself to RDP servers (shown as `\\tsclient`'s host).
const CLIENT_NAME: &str = "rap-appliance";
/// The device id of the transfer drive (any nonzero id will do).
const TRANSFER_DRIVE_ID: u32 = 1;

/// Connects and logs in; `Err` is a failure reason code. `transfer_dir`,
/// when given, is redirected as the drive [`crate::transfer::DRIVE_NAME`].
pub async fn connect(
    assignment: &Assignment,
    transfer_dir: Option<&std::path::Path>,
    trust: &TrustRoots,
) -> Result<Connection, String> {
    let config = config(assignment)?;
    let tcp = TcpStream::connect((assignment.host.trim_start_matches('[').trim_end_matches(']'), assignment.port))
        .await
        .map_err(|error| classify_connect(&error))?;
    let _ = tcp.set_nodelay(true);
    let client_addr = tcp.local_addr().map_err(|error| classify_connect(&error))?;
    let video = super::video::Tap::default();
    let drdynvc = ironrdp_dvc::DrdynvcClient::new()
        .with_dynamic_channel(ironrdp_displaycontrol::client::DisplayControlClient::new(|_| Ok(Vec::new())))
        .with_dynamic_channel(super::video::graphics_pipeline(&video)?);
    let mut connector = ClientConnector::new(config, client_addr).with_static_channel(drdynvc);
    // No clipboard channel at all when the policy allows nothing: the
    // server then has nothing to talk to.
    let mut clipboard = None;
    if assignment.clipboard_mode != crate::resource::PolicyMode::Disabled {
        let (backend, events) = super::clipboard::Backend::new();
        connector = connector.with_static_channel(ironrdp_cliprdr::CliprdrClient::new(Box::new(backend)));
        clipboard = Some(events);
    }
    if let Some(dir) = transfer_dir.and_then(|dir| dir.to_str()) {
        // The server may read and write only inside the session's folder:
        // the backend resolves every path below it without following links.
        let backend = super::drive::TransferDrive::new(dir.to_owned());
        let rdpdr = ironrdp_rdpdr::Rdpdr::new(Box::new(backend), CLIENT_NAME.to_owned())
            .with_drives(Some(vec![(TRANSFER_DRIVE_ID, crate::transfer::DRIVE_NAME.to_owned())]));
        connector = connector.with_static_channel(rdpdr);
    }
    let mut framed = TokioFramed::new(tcp);
    let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector).await.map_err(|error| {
        tracing::info!(host = %assignment.host, %error, "RDP negotiation failed");
        String::from("security_negotiation_failed")
    })?;
    let (tcp, leftover) = framed.into_inner();
    let (tls, server_public_key) = upgrade(tcp, assignment, trust).await?;
    let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
    let mut framed = TokioFramed::new_with_leftover(tls, leftover);
    let server_name = ServerName::new(assignment.host.clone());

    if connector.should_perform_credssp() {
        // Run CredSSP as its own step: a failure here is a login failure.
        let ClientConnectorState::Credssp { selected_protocol } = connector.state else {
            return Err("protocol_error".into());
        };
        let (sequence, request) = CredsspSequence::init(
            connector.config.credentials.clone(),
            connector.config.domain.as_deref(),
            selected_protocol,
            server_name.clone(),
            server_public_key.clone(),
            None,
        )
        .map_err(|_| String::from("invalid_credentials"))?;
        let mut buffer = ironrdp_core::WriteBuf::new();
        ironrdp_tokio::perform_credssp(&mut framed, &mut NoNetwork, &mut buffer, sequence, request).await.map_err(
            |error| {
                tracing::info!(host = %assignment.host, %error, "NLA refused the credentials");
                String::from("invalid_credentials")
            },
        )?;
        connector.mark_credssp_as_done();
    }

    let outcome = ironrdp_tokio::connect_finalize(
        upgraded,
        connector,
        &mut framed,
        &mut NoNetwork,
        server_name,
        server_public_key,
        None,
    )
    .await
    .map_err(|error| {
        tracing::info!(host = %assignment.host, %error, "RDP connection finalization failed");
        let text = error.to_string();
        if text.contains("error info") { String::from("server_denied") } else { String::from("connection_failed") }
    })?;
    match outcome {
        ConnectionOutcome::Connected(result) => Ok(Connection { framed, result, clipboard, video }),
        _ => Err("redirect_unsupported".into()),
    }
}

/// Drives a Deactivation-Reactivation sequence (a server-side resize, for
/// one) and returns the new size and recovery flags.
pub async fn reactivate(
    factory: &ironrdp_connector::connection_activation::ConnectionActivationFactory,
    framed: &mut Framed,
    stage: &mut ActiveStage,
) -> Result<(u16, u16, bool, bool), String> {
    use ironrdp_connector::connection_activation::ConnectionActivationState;
    let mut sequence = factory.create();
    let mut buffer = ironrdp_core::WriteBuf::new();
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let step = tokio::time::timeout_at(
            deadline,
            ironrdp_tokio::single_sequence_step_read(framed, &mut sequence, &mut buffer),
        );
        let written = step
            .await
            .map_err(|_| String::from("reactivation_timeout"))?
            .map_err(|_| String::from("protocol_error"))?;
        if written.size().is_some() {
            framed.write_all(buffer.filled()).await.map_err(|_| String::from("connection_lost"))?;
        }
        match sequence.connection_activation_state() {
            ConnectionActivationState::Finalized {
                desktop_size,
                share_id,
                enable_server_pointer,
                pointer_software_rendering,
                static_channel_chunk_size,
                refresh_rect_support,
                suppress_output_support,
                ..
            } => {
                let reactivated = stage.reactivate(
                    sequence.io_channel_id(),
                    sequence.user_channel_id(),
                    share_id,
                    enable_server_pointer,
                    pointer_software_rendering,
                    static_channel_chunk_size,
                );
                if !reactivated {
                    return Err("protocol_error".into());
                }
                return Ok((desktop_size.width, desktop_size.height, refresh_rect_support, suppress_output_support));
            }
            ConnectionActivationState::Redirected { .. } => return Err("redirect_unsupported".into()),
            _ => continue,
        }
    }
}
