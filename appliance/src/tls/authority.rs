//! The platform CA of `APP_TLS=auto`, and the server certificate it signs.
//!
//! Both live in `APP_DATA_DIR/tls/` (keys 0600): `ca.pem` and `ca.key`
//! (P-256, ten years), `server.pem` (the server certificate, then the CA)
//! and `server.key`. The CA is made once and kept, so office PCs that
//! trusted it keep trusting the appliance; the server certificate is
//! re-issued whenever its names no longer match the machine or it comes
//! within [`RENEW_BEFORE`] of expiry.
//!
//! The CA carries name constraints: it can only ever vouch for local
//! names (the machine's, `localhost`, the private-use DNS suffixes and
//! those configured when it was made) and private addresses. Installing it
//! on a PC therefore cannot let whoever steals the appliance's key
//! impersonate a public web site to that PC.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PublicKeyData, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::TlsError;
use super::names::ServedNames;

pub const TLS_DIR: &str = "tls";
const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const SERVER_CERT_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server.key";

const CA_VALIDITY: time::Duration = time::Duration::days(3653);
/// Within Apple's 825-day ceiling for certificates from private CAs.
const SERVER_VALIDITY: time::Duration = time::Duration::days(397);
/// A server certificate this close to expiry is replaced.
pub const RENEW_BEFORE: time::Duration = time::Duration::days(60);
/// Issued slightly in the past, so a client whose clock lags accepts it.
const CLOCK_SKEW: time::Duration = time::Duration::hours(1);

/// DNS suffixes reserved or customary for private networks: any name under
/// them may appear in a later `APP_TLS_NAMES`.
const LOCAL_SUFFIXES: &[&str] =
    &["local", "lan", "home.arpa", "internal", "localdomain", "intranet", "corp", "home", "private"];

/// Private, shared, link-local and loopback ranges.
const PRIVATE_NETWORKS: &[(&str, u8)] = &[
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("100.64.0.0", 10),
    ("169.254.0.0", 16),
    ("127.0.0.0", 8),
    ("::1", 128),
    ("fc00::", 7),
    ("fe80::", 10),
];

/// The platform CA: its certificate and the key that signs server
/// certificates.
pub struct PlatformCa {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    /// SHA-256 of the certificate (DER), lowercase hex: what clients compare.
    pub fingerprint: String,
    key: KeyPair,
    constraints: Constraints,
}

/// A server certificate ready to serve: chain (leaf, then CA) and key.
pub struct ServerCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub names: ServedNames,
    pub not_after: OffsetDateTime,
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::new(format!("{}: {reason}", path.display()))
}

fn read_text(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(file_error(path, error)),
    }
}

/// Replaces `path` with `contents` in one step (write beside, then
/// rename), readable by the owner only when `private`.
fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    written.and_then(|()| std::fs::rename(&temporary, path)).map_err(|error| file_error(path, error))
}

pub fn tls_dir(data_dir: &Path) -> Result<PathBuf, TlsError> {
    let dir = data_dir.join(TLS_DIR);
    std::fs::create_dir_all(&dir).map_err(|error| file_error(&dir, error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|error| file_error(&dir, error))?;
    }
    Ok(dir)
}

fn random_serial() -> SerialNumber {
    let mut bytes = crate::keys::random_bytes()[..16].to_vec();
    // Positive, and never with a leading zero byte to strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

impl PlatformCa {
    /// The CA in `dir`, made (with constraints fitting `names`) if there is
    /// none. Half a CA (a certificate without its key, or the reverse) is
    /// an error rather than a reason to make a new one silently: clients
    /// trust the old one.
    pub fn load_or_create(dir: &Path, names: &ServedNames) -> Result<Self, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (read_text(&cert_path)?, read_text(&key_path)?) {
            (Some(cert_pem), Some(key_pem)) => Self::load(&cert_pem, &key_pem, &cert_path, &key_path),
            (None, None) => {
                let ca = Self::create(names)?;
                write_atomically(&key_path, ca.key.serialize_pem().as_bytes(), true)?;
                write_atomically(&cert_path, ca.cert_pem.as_bytes(), false)?;
                tracing::info!(path = %cert_path.display(), fingerprint = %ca.fingerprint, "Created the platform CA");
                Ok(ca)
            }
            (Some(_), None) => Err(file_error(
                &key_path,
                "missing while ca.pem exists; restore it, or remove the tls directory to make a new CA (every client must then trust the new one)",
            )),
            (None, Some(_)) => Err(file_error(
                &cert_path,
                "missing while ca.key exists; restore it, or remove the tls directory to make a new CA",
            )),
        }
    }

    fn load(cert_pem: &str, key_pem: &str, cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|error| file_error(key_path, error))?;
        let cert_der = pem_certificates(cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| file_error(cert_path, "holds no certificate"))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|error| file_error(cert_path, error))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(file_error(key_path, "does not belong to ca.pem"));
        }
        let constraints = Constraints::of(&parsed);
        Ok(Self { cert_pem: cert_pem.to_owned(), fingerprint: fingerprint(&cert_der), cert_der, key, constraints })
    }

    fn create(names: &ServedNames) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(TlsError::from_rcgen)?;
        let now = OffsetDateTime::now_utc();
        let constraints = Constraints::fitting(names);
        let mut params = CertificateParams::default();
        params.distinguished_name = ca_name(names);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        params.name_constraints = Some(constraints.to_rcgen());
        let cert = params.self_signed(&key).map_err(TlsError::from_rcgen)?;
        let cert_der = cert.der().clone();
        Ok(Self { cert_pem: cert.pem(), fingerprint: fingerprint(&cert_der), cert_der, key, constraints })
    }

    /// Whether this CA may vouch for `name` (its constraints permit it).
    pub fn permits(&self, name: &str) -> bool {
        self.constraints.permits(name)
    }

    /// Issues a server certificate for the names of `names` this CA may
    /// vouch for (the others are left out, with a warning: a certificate
    /// naming one of them would be refused whole by clients).
    pub fn issue(&self, names: &ServedNames) -> Result<(ServerCertificate, String, String), TlsError> {
        let mut covered = ServedNames::default();
        for name in names.all() {
            if self.permits(&name) {
                covered.add(&name);
            } else {
                tracing::warn!(
                    %name,
                    "The platform CA may not vouch for this name (it is not a local name or private address); it is left out of the server certificate. Serve it with APP_TLS=files and a certificate from another CA."
                );
            }
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(TlsError::from_rcgen)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "RAP Appliance");
        if let Some(first) = covered.dns.iter().find(|name| !name.starts_with("*.")) {
            subject.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = subject;
        params.subject_alt_names = san_list(&covered)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + SERVER_VALIDITY;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key).map_err(TlsError::from_rcgen)?;
        let cert = params.signed_by(&key, &issuer).map_err(TlsError::from_rcgen)?;
        let server = ServerCertificate {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            names: covered,
            not_after: params.not_after,
        };
        Ok((server, format!("{}{}", cert.pem(), self.cert_pem), key.serialize_pem()))
    }

    /// The server certificate in `dir` if it is this CA's, names exactly
    /// what `names` permits and is not due for renewal; otherwise a new one,
    /// written there. The flag says whether it is new.
    pub fn server_certificate(&self, dir: &Path, names: &ServedNames) -> Result<(ServerCertificate, bool), TlsError> {
        let wanted = self.permitted_subset(names);
        if let Some(current) = self.load_server(dir)? {
            let due = current.not_after - OffsetDateTime::now_utc() < RENEW_BEFORE;
            if current.names == wanted && !due {
                return Ok((current, false));
            }
        }
        let (server, chain_pem, key_pem) = self.issue(names)?;
        write_atomically(&dir.join(SERVER_KEY_FILE), key_pem.as_bytes(), true)?;
        write_atomically(&dir.join(SERVER_CERT_FILE), chain_pem.as_bytes(), false)?;
        tracing::info!(names = ?server.names.all(), not_after = %server.not_after, "Issued the server certificate");
        Ok((server, true))
    }

    fn permitted_subset(&self, names: &ServedNames) -> ServedNames {
        let mut subset = ServedNames::default();
        names.all().iter().filter(|name| self.permits(name)).for_each(|name| subset.add(name));
        subset
    }

    /// The server certificate on disk, if present, readable and signed by
    /// this CA (anything else is replaced, not trusted).
    fn load_server(&self, dir: &Path) -> Result<Option<ServerCertificate>, TlsError> {
        let (Some(chain_pem), Some(key_pem)) =
            (read_text(&dir.join(SERVER_CERT_FILE))?, read_text(&dir.join(SERVER_KEY_FILE))?)
        else {
            return Ok(None);
        };
        let Some(leaf) = pem_certificates(&chain_pem).into_iter().next() else { return Ok(None) };
        let Ok(key) = KeyPair::from_pem(&key_pem) else { return Ok(None) };
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&leaf) else { return Ok(None) };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&self.cert_der) else { return Ok(None) };
        if parsed.verify_signature(Some(ca.public_key())).is_err()
            || parsed.public_key().raw != key.subject_public_key_info().as_slice()
        {
            return Ok(None);
        }
        let Ok(not_after) = OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp()) else {
            return Ok(None);
        };
        Ok(Some(ServerCertificate {
            chain: vec![leaf.clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            names: subject_names(&parsed),
            not_after,
        }))
    }
}

fn ca_name(names: &ServedNames) -> DistinguishedName {
    let host =
        names.dns.iter().find(|name| *name != "localhost" && !name.ends_with(".local") && !name.starts_with("*."));
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "RAP Appliance");
    name.push(
        DnType::CommonName,
        match host {
            Some(host) => format!("RAP Appliance CA on {host}"),
            None => "RAP Appliance CA".to_owned(),
        },
    );
    name
}

fn san_list(names: &ServedNames) -> Result<Vec<SanType>, TlsError> {
    let mut list = Vec::new();
    for dns in &names.dns {
        list.push(SanType::DnsName(dns.clone().try_into().map_err(TlsError::from_rcgen)?));
    }
    list.extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(list)
}

/// The DNS names and IP addresses a certificate names.
pub fn subject_names(certificate: &x509_parser::certificate::X509Certificate<'_>) -> ServedNames {
    use x509_parser::extensions::GeneralName;
    let mut names = ServedNames::default();
    if let Ok(Some(san)) = certificate.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.add(&dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        names.ips.insert(ip);
                    }
                }
                _ => {}
            }
        }
    }
    names
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

pub(super) fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).collect()
}

/// The names a CA may vouch for: DNS subtrees and IP networks.
#[derive(Debug, Clone, Default)]
struct Constraints {
    dns: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl Constraints {
    fn fitting(names: &ServedNames) -> Self {
        let mut constraints = Self {
            dns: LOCAL_SUFFIXES.iter().map(|suffix| (*suffix).to_owned()).collect(),
            networks: PRIVATE_NETWORKS
                .iter()
                .filter_map(|(network, prefix)| Some((network.parse().ok()?, *prefix)))
                .collect(),
        };
        constraints.dns.push("localhost".into());
        for dns in &names.dns {
            let base = dns.strip_prefix("*.").unwrap_or(dns);
            if !constraints.permits(base) {
                constraints.dns.push(base.to_owned());
            }
        }
        for ip in &names.ips {
            if !constraints.permits(&ip.to_string()) {
                constraints.networks.push((*ip, if ip.is_ipv4() { 32 } else { 128 }));
            }
        }
        constraints
    }

    /// Read back from a CA certificate; a CA without constraints (made
    /// elsewhere) permits everything.
    fn of(certificate: &x509_parser::certificate::X509Certificate<'_>) -> Self {
        use x509_parser::extensions::GeneralName;
        let Ok(Some(extension)) = certificate.name_constraints() else {
            return Self {
                dns: vec![String::new()],
                networks: vec![("0.0.0.0".parse().expect("address"), 0), ("::".parse().expect("address"), 0)],
            };
        };
        let mut constraints = Self::default();
        for subtree in extension.value.permitted_subtrees.iter().flatten() {
            match &subtree.base {
                GeneralName::DNSName(dns) => constraints.dns.push(dns.trim_start_matches('.').to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) if bytes.len() == 8 || bytes.len() == 32 => {
                    let (address, mask) = bytes.split_at(bytes.len() / 2);
                    if let Some(ip) = ip_from_bytes(address) {
                        let prefix = mask.iter().map(|byte| byte.count_ones() as u8).sum();
                        constraints.networks.push((ip, prefix));
                    }
                }
                _ => {}
            }
        }
        constraints
    }

    fn permits(&self, name: &str) -> bool {
        let name = name.strip_prefix("*.").unwrap_or(name);
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.networks.iter().any(|(network, prefix)| in_network(ip, *network, *prefix));
        }
        self.dns.iter().any(|subtree| {
            subtree.is_empty()
                || name == subtree
                || name.strip_suffix(subtree.as_str()).is_some_and(|rest| rest.ends_with('.'))
        })
    }

    fn to_rcgen(&self) -> NameConstraints {
        let mut permitted: Vec<GeneralSubtree> =
            self.dns.iter().map(|dns| GeneralSubtree::DnsName(dns.clone())).collect();
        permitted.extend(
            self.networks
                .iter()
                .map(|(network, prefix)| GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*network, *prefix))),
        );
        NameConstraints { permitted_subtrees: permitted, excluded_subtrees: Vec::new() }
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> ServedNames {
        let mut names = ServedNames::default();
        list.iter().for_each(|name| names.add(name));
        names
    }

    #[test]
    fn the_ca_is_made_once_kept_private_and_reloaded_with_its_constraints() {
        let dir = tempfile::tempdir().expect("dir");
        let served = names(&["localhost", "rapbox", "127.0.0.1", "192.168.1.20", "203.0.113.7"]);
        let made = PlatformCa::load_or_create(dir.path(), &served).expect("made");
        let again = PlatformCa::load_or_create(dir.path(), &served).expect("loaded");
        assert_eq!(made.fingerprint, again.fingerprint);
        assert_eq!(made.fingerprint.len(), 64);
        for permitted in
            ["rapbox", "x.rapbox", "nas.lan", "printer.home.arpa", "10.1.2.3", "192.168.1.99", "203.0.113.7", "fd00::1"]
        {
            assert!(again.permits(permitted), "{permitted}");
        }
        for refused in ["example.com", "bank.example", "8.8.8.8", "203.0.113.8", "2001:db8::1", "lan.example.com"] {
            assert!(!again.permits(refused), "{refused}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |name: &str| std::fs::metadata(dir.path().join(name)).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(CA_KEY_FILE), 0o600);
        }
    }

    #[test]
    fn half_a_ca_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().expect("dir");
        PlatformCa::load_or_create(dir.path(), &names(&["localhost"])).expect("made");
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).expect("remove");
        let error = PlatformCa::load_or_create(dir.path(), &names(&["localhost"])).err().expect("refused").to_string();
        assert!(error.contains("ca.key: missing while ca.pem exists"), "{error}");
    }

    #[test]
    fn the_server_certificate_is_kept_until_names_change_and_leaves_out_what_the_ca_may_not_sign() {
        let dir = tempfile::tempdir().expect("dir");
        let served = names(&["localhost", "127.0.0.1", "192.168.1.20"]);
        let ca = PlatformCa::load_or_create(dir.path(), &served).expect("ca");
        let (first, new) = ca.server_certificate(dir.path(), &served).expect("issued");
        assert!(new);
        assert_eq!(first.names, served);
        let (kept, new) = ca.server_certificate(dir.path(), &served).expect("kept");
        assert!(!new);
        assert_eq!(kept.chain[0], first.chain[0]);
        let moved = names(&["localhost", "127.0.0.1", "192.168.1.30", "public.example.com"]);
        let (renewed, new) = ca.server_certificate(dir.path(), &moved).expect("renewed");
        assert!(new);
        assert_eq!(renewed.names, names(&["localhost", "127.0.0.1", "192.168.1.30"]));
        assert!(renewed.not_after - OffsetDateTime::now_utc() > RENEW_BEFORE);
    }

    #[test]
    fn network_membership() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert!(in_network(ip("172.31.255.1"), ip("172.16.0.0"), 12));
        assert!(!in_network(ip("172.32.0.1"), ip("172.16.0.0"), 12));
        assert!(in_network(ip("fe80::1"), ip("fe80::"), 10));
        assert!(!in_network(ip("10.0.0.1"), ip("fe80::"), 10));
        assert!(in_network(ip("8.8.8.8"), ip("0.0.0.0"), 0));
    }
}
