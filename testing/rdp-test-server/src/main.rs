//! A small RDP server for the appliance's tests, on IronRDP's server crate
//! (ironrdp-server 0.13, which needs an older IronRDP set than the
//! appliance uses: hence its own workspace and Cargo.lock). The tests run
//! it as a subprocess on 127.0.0.1 and talk to it over real RDP.
//!
//! Usage: rdp-test-server [port=0] [security=tls|hybrid] [user=test] [password=secret]
//!                        [codecs=<comma list for server_codecs_capabilities, e.g. "remotefx:off">]
//!                        [size=1024x768] [cert_out=/path/cert.pem] [animate=full|office]
//!                        [ca_out=/path/ca.pem [names=host1,host2]]
//! With `ca_out`, the certificate is issued for `names` (default `localhost,127.0.0.1`) by a fresh
//! test CA whose certificate is written there (for strict-checking tests); otherwise it is self-signed.
//! Stdout protocol (one line each): `LISTENING 127.0.0.1:PORT`, `CERT_SHA256 <hex>`,
//! `INPUT KEY <KeyboardEvent:?>`, `INPUT MOUSE <MouseEvent:?>`, `CLIPBOARD_FROM_CLIENT <text>`,
//! `CONNECTION_ERROR <err>`, `DISCONNECTED`.
//! Stdin commands: `COPY <text>` (server clipboard -> client), `RESIZE <w> <h>`, `QUIT` (graceful end of
//! the current connection: next_update returns Ok(None), server closes TLS). Kill the process for "drop".
use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::{Arc, Mutex};

use ironrdp_cliprdr::backend::{ClipboardMessage, CliprdrBackend, CliprdrBackendFactory};
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest, FileContentsResponse,
    FormatDataRequest, FormatDataResponse, LockDataId, OwnedFormatDataResponse,
};
use ironrdp_displaycontrol::pdu::DisplayControlMonitorLayout;
use ironrdp_pdu::rdp::capability_sets::server_codecs_capabilities;
use ironrdp_server::tokio_rustls::{TlsAcceptor, rustls};
use ironrdp_server::{
    BitmapUpdate, CliprdrServerFactory, Credentials, DesktopSize, DisplayUpdate, KeyboardEvent, MouseEvent,
    PixelFormat, RdpServer, RdpServerDisplay, RdpServerDisplayUpdates, RdpServerInputHandler, ServerEvent,
    ServerEventSender,
};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

struct LogInput;
impl RdpServerInputHandler for LogInput {
    fn keyboard(&mut self, event: KeyboardEvent) {
        println!("INPUT KEY {event:?}"); // e.g. Pressed { code: 30, extended: false } / UnicodePressed(97)
    }
    fn mouse(&mut self, event: MouseEvent) {
        println!("INPUT MOUSE {event:?}"); // e.g. Move { x: 10, y: 20 } / LeftPressed / VerticalScroll { value: 120 }
    }
}

enum Cmd {
    Resize(u16, u16),
    Quit,
}
struct Shared {
    size: DesktopSize,
    tx: Option<UnboundedSender<Cmd>>,
    /// `full`: repaint the whole screen continuously; `office`: type a
    /// glyph every 100 ms and repaint a page every 2 s; empty: static.
    animate: String,
}

/// Same pattern as worker::scripted::pattern_pixel ([x%256, y%256, 128, 255] in RGBA), sent as BGRA:
/// BgrA32 is what the client assumes for CODEC_ID_NONE, and QOI/QOIZ are lossless, so frames compare
/// bit-exact (RemoteFX is lossy: switch it off with codecs=remotefx:off for exact tests).
fn full_frame(size: DesktopSize) -> DisplayUpdate {
    let (w, h) = (size.width, size.height);
    let mut data = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[128, (y % 256) as u8, (x % 256) as u8, 255]);
        }
    }
    DisplayUpdate::Bitmap(BitmapUpdate {
        x: 0,
        y: 0,
        width: NonZeroU16::new(w).expect("width > 0"),
        height: NonZeroU16::new(h).expect("height > 0"),
        format: PixelFormat::BgrA32,
        data: data.into(),
        stride: NonZeroUsize::new(usize::from(w) * 4).expect("stride > 0"),
    })
}

struct PatternDisplay(Arc<Mutex<Shared>>);

#[async_trait::async_trait]
impl RdpServerDisplay for PatternDisplay {
    async fn size(&mut self) -> DesktopSize {
        self.0.lock().expect("lock").size
    }
    async fn request_initial_size(&mut self, client_size: DesktopSize) -> DesktopSize {
        self.0.lock().expect("lock").size = client_size; // pairs with with_honor_client_desktop_size(true)
        client_size
    }
    async fn updates(&mut self) -> anyhow::Result<Box<dyn RdpServerDisplayUpdates>> {
        // Called again after every Deactivation-Reactivation (resize): start with a full frame each time.
        let (tx, rx) = mpsc::unbounded_channel();
        let size = {
            let mut shared = self.0.lock().expect("lock");
            shared.tx = Some(tx);
            shared.size
        };
        Ok(Box::new(PatternUpdates { first: Some(full_frame(size)), rx, shared: Arc::clone(&self.0), step: 0 }))
    }
    fn request_layout(&mut self, layout: DisplayControlMonitorLayout) {
        // Client display-control resize request (runs inside spawn_blocking).
        if let Some(m) = layout.monitors().iter().find(|m| m.is_primary()) {
            let (w, h) = m.dimensions();
            println!("LAYOUT_REQUEST {w}x{h}");
            if let Some(tx) = &self.0.lock().expect("lock").tx {
                let _ = tx.send(Cmd::Resize(w as u16, h as u16));
            }
        }
    }
}

struct PatternUpdates {
    first: Option<DisplayUpdate>,
    rx: UnboundedReceiver<Cmd>,
    shared: Arc<Mutex<Shared>>,
    step: u32,
}

/// A `width`×`height` block at (`x`, `y`) of one colour, as BGRA.
fn block(x: u16, y: u16, width: u16, height: u16, bgra: [u8; 4]) -> DisplayUpdate {
    let data: Vec<u8> = std::iter::repeat_n(bgra, usize::from(width) * usize::from(height)).flatten().collect();
    DisplayUpdate::Bitmap(BitmapUpdate {
        x,
        y,
        width: NonZeroU16::new(width).expect("width > 0"),
        height: NonZeroU16::new(height).expect("height > 0"),
        format: PixelFormat::BgrA32,
        data: data.into(),
        stride: NonZeroUsize::new(usize::from(width) * 4).expect("stride > 0"),
    })
}

/// Animation step `step`, after waiting for its time.
async fn animation(step: u32, mode: &str, size: DesktopSize) -> Option<DisplayUpdate> {
    let shade = (step % 200) as u8;
    match mode {
        "full" => {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Some(block(0, 0, size.width, size.height, [shade, 255 - shade, 64, 255]))
        }
        "office" => {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if step % 20 == 0 {
                Some(block(0, 0, size.width.min(1600), size.height.min(900), [250, 250, 250 - shade / 8, 255]))
            } else {
                let x = 20 + (step % 100) as u16 * 12 % size.width.saturating_sub(40).max(1);
                Some(block(x, 40, 12, 20, [30, 30, 30, 255]))
            }
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl RdpServerDisplayUpdates for PatternUpdates {
    async fn next_update(&mut self) -> anyhow::Result<Option<DisplayUpdate>> {
        if let Some(frame) = self.first.take() {
            return Ok(Some(frame));
        }
        let (mode, size) = {
            let shared = self.shared.lock().expect("lock");
            (shared.animate.clone(), shared.size)
        };
        let command = if mode.is_empty() {
            self.rx.recv().await
        } else {
            self.step = self.step.wrapping_add(1);
            let step = self.step;
            tokio::select! {
                command = self.rx.recv() => command,
                update = animation(step, &mode, size) => return Ok(update),
            }
        };
        match command {
            Some(Cmd::Resize(width, height)) => {
                let size = DesktopSize { width, height };
                self.shared.lock().expect("lock").size = size;
                Ok(Some(DisplayUpdate::Resize(size))) // server runs Deactivation-Reactivation
            }
            Some(Cmd::Quit) | None => Ok(None), // Ok(None) = end this connection
        }
    }
}

#[derive(Debug)]
struct ClipBackend {
    events: UnboundedSender<ServerEvent>,
    text: Arc<Mutex<String>>,
}
ironrdp_core::impl_as_any!(ClipBackend);

impl CliprdrBackend for ClipBackend {
    fn temporary_directory(&self) -> &str {
        ".cliprdr"
    }
    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }
    fn on_ready(&mut self) {}
    fn on_request_format_list(&mut self) {}
    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}
    fn on_remote_copy(&mut self, formats: &[ClipboardFormat]) {
        if formats.iter().any(|f| f.id() == ClipboardFormatId::CF_UNICODETEXT) {
            let msg = ClipboardMessage::SendInitiatePaste(ClipboardFormatId::CF_UNICODETEXT);
            let _ = self.events.send(ServerEvent::Clipboard(msg));
        }
    }
    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        let response = if request.format == ClipboardFormatId::CF_UNICODETEXT {
            OwnedFormatDataResponse::new_unicode_string(&self.text.lock().expect("lock"))
        } else {
            OwnedFormatDataResponse::new_error()
        };
        let _ = self.events.send(ServerEvent::Clipboard(ClipboardMessage::SendFormatData(response)));
    }
    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        match response.to_unicode_string() {
            Ok(text) if !response.is_error() => println!("CLIPBOARD_FROM_CLIENT {text}"),
            _ => println!("CLIPBOARD_ERROR"),
        }
    }
    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}
    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}
    fn on_lock(&mut self, _: LockDataId) {}
    fn on_unlock(&mut self, _: LockDataId) {}
}

struct ClipFactory {
    events: Option<UnboundedSender<ServerEvent>>,
    text: Arc<Mutex<String>>,
}
impl CliprdrBackendFactory for ClipFactory {
    fn build_cliprdr_backend(&self) -> Box<dyn CliprdrBackend> {
        let events = self.events.clone().expect("set_sender is called by RdpServer::new");
        Box::new(ClipBackend { events, text: Arc::clone(&self.text) })
    }
}
impl ServerEventSender for ClipFactory {
    fn set_sender(&mut self, sender: UnboundedSender<ServerEvent>) {
        self.events = Some(sender);
    }
}
impl CliprdrServerFactory for ClipFactory {}

// The connection future is !Send: a current-thread runtime (block_on) is enough, no spawn of it.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: HashMap<String, String> =
        std::env::args().skip(1).filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect();
    let arg = |k: &str, d: &str| args.get(k).cloned().unwrap_or_else(|| d.to_owned());
    let port: u16 = arg("port", "0").parse()?;
    let (w, h) = arg("size", "1024x768").split_once('x').map(|(w, h)| (w.to_owned(), h.to_owned())).unwrap_or_default();
    let size = DesktopSize { width: w.parse()?, height: h.parse()? };

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;

    let names: Vec<String> = arg("names", "localhost,127.0.0.1").split(',').map(str::to_owned).collect();
    let rcgen::CertifiedKey { cert, signing_key } = match args.get("ca_out") {
        None => rcgen::generate_simple_self_signed(names)?,
        Some(ca_out) => {
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params.distinguished_name.push(rcgen::DnType::CommonName, "RAP test CA");
            ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
            let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
            std::fs::write(ca_out, ca.as_ref().pem())?;
            let signing_key = rcgen::KeyPair::generate()?;
            let cert = rcgen::CertificateParams::new(names)?.signed_by(&signing_key, &ca)?;
            rcgen::CertifiedKey { cert, signing_key }
        }
    };
    if let Some(path) = args.get("cert_out") {
        std::fs::write(path, cert.pem())?; // e.g. for SSL_CERT_FILE=... strict-success tests
    }
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(signing_key.serialize_der());
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key.into())?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let codec_args = arg("codecs", "");
    let codec_list: Vec<&str> = codec_args.split(',').filter(|s| !s.is_empty()).collect();
    let codecs = server_codecs_capabilities(&codec_list).map_err(anyhow::Error::msg)?;

    let shared = Arc::new(Mutex::new(Shared { size, tx: None, animate: arg("animate", "") }));
    let clip_text = Arc::new(Mutex::new(String::new()));
    let builder = RdpServer::builder().with_addr(addr);
    let builder = if arg("security", "tls") == "hybrid" {
        // CredSSP needs the raw SubjectPublicKey bytes of the TLS certificate.
        builder.with_hybrid(acceptor, signing_key.public_key_raw().to_vec())
    } else {
        builder.with_tls(acceptor)
    };
    let mut server = builder
        .with_input_handler(LogInput)
        .with_display_handler(PatternDisplay(Arc::clone(&shared)))
        .with_bitmap_codecs(codecs)
        .with_cliprdr_factory(Some(Box::new(ClipFactory { events: None, text: Arc::clone(&clip_text) })))
        .with_honor_client_desktop_size(true)
        .build();
    // TLS mode: exact match against the Client Info PDU. Hybrid: NTLM identity (domain ignored).
    server.set_credentials(Some(Credentials {
        username: arg("user", "test"),
        password: arg("password", "secret"),
        domain: None,
    }));

    println!("LISTENING {addr}");
    println!("CERT_SHA256 {}", hex::encode(Sha256::digest(cert.der().as_ref())));

    let events = server.event_sender().clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let (cmd, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match cmd {
                "COPY" => {
                    *clip_text.lock().expect("lock") = rest.to_owned();
                    let formats = vec![ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)];
                    let _ = events.send(ServerEvent::Clipboard(ClipboardMessage::SendInitiateCopy(formats)));
                }
                "RESIZE" => {
                    let mut it = rest.split(' ').filter_map(|v| v.parse::<u16>().ok());
                    if let (Some(w), Some(h)) = (it.next(), it.next()) {
                        if let Some(tx) = &shared.lock().expect("lock").tx {
                            let _ = tx.send(Cmd::Resize(w, h));
                        }
                    }
                }
                "QUIT" => {
                    if let Some(tx) = &shared.lock().expect("lock").tx {
                        let _ = tx.send(Cmd::Quit);
                    }
                }
                _ => {}
            }
        }
    });

    loop {
        let (stream, peer) = listener.accept().await?;
        println!("ACCEPTED {peer}");
        if let Err(error) = server.run_connection(stream).await {
            println!("CONNECTION_ERROR {error:#}");
        }
        println!("DISCONNECTED");
    }
}
