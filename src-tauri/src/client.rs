//! Client-only mode: the app on a staff PC, showing an appliance that runs
//! elsewhere on the office LAN instead of running its own. The person gives
//! the appliance's address and the CA fingerprint that appliance shows
//! (console, tray, `rap-appliance tls fingerprint`); the app trusts that CA
//! and nothing else for that address:
//!
//! 1. it downloads the CA (`GET /api/v1/installation/ca.pem`, public) over
//!    a connection it does not trust yet, and keeps it only if its SHA-256
//!    is the pinned fingerprint: a machine in the middle can serve another
//!    CA, never one with that fingerprint;
//! 2. it connects again, now verifying the server against that CA alone
//!    (name and validity included), and takes the server's certificate;
//! 3. it tells the webview to accept exactly that certificate for that
//!    host (WebKitGTK's per-host exception), then loads the console.
//!
//! The CA is kept beside the app's data (`client-ca.pem`) for the native
//! viewer, which verifies the gateway with it (`--ca`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tauri::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The appliance to show, as `desktop.toml` keeps it (`[connect]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// `https://host:port/` of the appliance.
    pub url: String,
    /// The CA's SHA-256 fingerprint as the appliance shows it (hex, with or
    /// without colons or spaces, either case).
    pub fingerprint: String,
}

/// A remote appliance whose CA was pinned and whose server was verified.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub url: Url,
    pub host: String,
    /// The pinned CA, PEM.
    pub ca_pem: String,
    /// The certificate the server presented (verified against the CA), PEM.
    pub server_pem: String,
}

/// Where the choice is kept, beside the app's data.
fn path(app_dir: &std::path::Path) -> std::path::PathBuf {
    app_dir.join("connect.toml")
}

/// The saved choice, if any; a damaged file is an error, not a silent
/// switch to running an appliance here.
pub fn load(app_dir: &std::path::Path) -> anyhow::Result<Option<Connect>> {
    let path = path(app_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save(app_dir: &std::path::Path, connect: &Connect) -> anyhow::Result<()> {
    std::fs::create_dir_all(app_dir)?;
    std::fs::write(path(app_dir), toml::to_string(connect)?).context("saving the appliance to connect to")
}

pub fn forget(app_dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path(app_dir)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// A page that says why the appliance is not shown, and what to do.
pub fn refusal_page(connect: &Connect, why: &str) -> String {
    let escape = |text: &str| {
        text.chars()
            .map(|c| match c {
                '<' => "&lt;".to_owned(),
                '>' => "&gt;".to_owned(),
                '&' => "&amp;".to_owned(),
                '"' => "&quot;".to_owned(),
                other => other.to_string(),
            })
            .collect::<String>()
    };
    format!(
        "<!doctype html><meta charset=utf-8><title>RAP Appliance</title>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>This appliance is not trusted</h1><p>{}</p><p>Appliance: <code>{}</code></p>\
         <p>Check the address and the CA fingerprint on the appliance itself (its console or tray), then start \
         the app again with <code>--connect https://address:port --fingerprint …</code>, or with \
         <code>--run-appliance</code> to run an appliance on this computer instead.</p>",
        escape(&sentence(why)),
        escape(&connect.url)
    )
}

/// An error's words as a sentence: capital first, full stop last.
fn sentence(words: &str) -> String {
    let mut chars = words.trim().chars();
    let Some(first) = chars.next() else { return String::new() };
    let text: String = first.to_uppercase().chain(chars).collect();
    if text.ends_with('.') { text } else { format!("{text}.") }
}

const TIMEOUT: Duration = Duration::from_secs(10);
/// A CA certificate is a few KiB.
const MAX_ANSWER: u64 = 256 * 1024;

impl Connect {
    /// The address, checked: `https`, a host, nothing after the authority.
    pub fn parsed_url(&self) -> anyhow::Result<Url> {
        let url = Url::parse(self.url.trim()).context("the appliance's address is not a URL")?;
        anyhow::ensure!(url.scheme() == "https", "the appliance's address must start with https://");
        anyhow::ensure!(url.host_str().is_some(), "the appliance's address has no host");
        anyhow::ensure!(
            url.username().is_empty() && url.password().is_none() && url.query().is_none() && url.fragment().is_none(),
            "the appliance's address is just https://host:port/"
        );
        Ok(url)
    }

    /// The fingerprint as 64 lowercase hex digits.
    pub fn normalized_fingerprint(&self) -> anyhow::Result<String> {
        let digits: String = self
            .fingerprint
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        anyhow::ensure!(
            digits.len() == 64 && digits.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "a CA fingerprint is 64 hexadecimal digits (SHA-256), as the appliance shows it"
        );
        Ok(digits)
    }
}

/// Pins the appliance's CA and verifies its server (steps 1 and 2 above).
pub async fn pin(connect: &Connect) -> anyhow::Result<Pinned> {
    let url = connect.parsed_url()?;
    let wanted = connect.normalized_fingerprint()?;
    let host = url.host_str().context("no host")?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().context("no port")?;

    let unverified = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
            .with_no_client_auth(),
    );
    let (answer, _) = get(unverified, &host, port, "/api/v1/installation/ca.pem").await?;
    let ca = CertificateDer::from_pem_slice(answer.as_bytes())
        .context("the appliance did not send a CA certificate (is it serving HTTPS with its own CA?)")?;
    let found = rap_appliance::tls::authority::fingerprint(ca.as_ref());
    anyhow::ensure!(
        found == wanted,
        "the appliance at {url} shows CA fingerprint {}, not the {} you gave: check both on the appliance before trusting it",
        crate::embedded::grouped(&found),
        crate::embedded::grouped(&wanted)
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).context("the appliance's CA is not a usable certificate")?;
    let verified = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let (_, server) = get(verified, &host, port, "/readyz")
        .await
        .with_context(|| format!("the appliance at {url} did not prove itself with its CA"))?;
    // The CA kept is the one certificate checked, written out again, not the
    // downloaded text: that came over an unverified connection and could
    // carry more certificates, which the native viewer would then trust too.
    Ok(Pinned { ca_pem: pem("CERTIFICATE", ca.as_ref()), server_pem: pem("CERTIFICATE", server.as_ref()), host, url })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `GET path` over TLS: the body (bounded) and the server's certificate.
async fn get(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    path: &str,
) -> anyhow::Result<(String, CertificateDer<'static>)> {
    let name = ServerName::try_from(host.to_owned()).context("the appliance's host is not a valid name")?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await.context("cannot reach the appliance")?;
        let mut tls =
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.context("TLS with the appliance")?;
        let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let server = tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).cloned();
        let mut answer = Vec::new();
        (&mut tls).take(MAX_ANSWER).read_to_end(&mut answer).await?;
        anyhow::Ok((String::from_utf8_lossy(&answer).into_owned(), server.context("no server certificate")?))
    };
    let (answer, server) =
        tokio::time::timeout(TIMEOUT, exchange).await.context("the appliance did not answer in time")??;
    let (head, body) = answer.split_once("\r\n\r\n").context("not an HTTP answer")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "the appliance answered {path} with {}",
        head.lines().next().unwrap_or("")
    );
    Ok((body.to_owned(), server))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> =
        text.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Accepts any server: only for downloading the CA, which is then checked
/// against the pinned fingerprint before anything trusts it.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(url: &str, fingerprint: &str) -> Connect {
        Connect { url: url.into(), fingerprint: fingerprint.into() }
    }

    #[test]
    fn fingerprints_are_read_as_the_appliance_shows_them() {
        let hex = "ab".repeat(32);
        let grouped = crate::embedded::grouped(&hex);
        assert_eq!(connect("https://a/", &grouped).normalized_fingerprint().expect("grouped"), hex);
        assert_eq!(connect("https://a/", &hex.to_uppercase()).normalized_fingerprint().expect("upper"), hex);
        assert!(connect("https://a/", "ab:cd").normalized_fingerprint().is_err(), "too short");
        assert!(connect("https://a/", &"zz".repeat(32)).normalized_fingerprint().is_err(), "not hex");
    }

    #[test]
    fn only_a_plain_https_address_is_taken() {
        assert!(connect("https://appliance.lan:8443/", "").parsed_url().is_ok());
        for bad in [
            "http://appliance.lan:8443/",
            "appliance.lan",
            "https://user@appliance.lan/",
            "https://a/?x=1",
            "file:///etc",
        ] {
            assert!(connect(bad, "").parsed_url().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_refusal_page_shows_the_reason_as_text() {
        let page = refusal_page(&connect("https://a/<b>", ""), "fingerprint <script>x</script> & more");
        assert!(page.contains("Fingerprint &lt;script&gt;x&lt;/script&gt; &amp; more."), "{page}");
        assert!(page.contains("https://a/&lt;b&gt;") && !page.contains("<script>"));
    }

    #[test]
    fn certificates_are_written_as_pem() {
        let der = vec![7u8; 100];
        let text = pem("CERTIFICATE", &der);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n") && text.ends_with("-----END CERTIFICATE-----\n"));
        assert_eq!(CertificateDer::from_pem_slice(text.as_bytes()).expect("parses").as_ref(), &der[..]);
    }
}
