//! The names a client may use to reach this appliance: what the `auto`
//! certificate covers, and the hosts of the appliance's own origins.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

/// Host names and addresses, sorted and without repeats, so that two
/// computations of the same machine compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedNames {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

impl ServedNames {
    /// Every name as a certificate subject alternative name would spell it.
    pub fn all(&self) -> Vec<String> {
        self.dns.iter().cloned().chain(self.ips.iter().map(IpAddr::to_string)).collect()
    }

    /// Whether `host` (as in a `Host` or `Origin` header, without port;
    /// IPv6 in brackets or not) is one of these names.
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        self.dns.iter().any(|name| match name.strip_prefix("*.") {
            Some(parent) => host.strip_suffix(parent).is_some_and(|label| {
                label.ends_with('.') && label.len() > 1 && !label[..label.len() - 1].contains('.')
            }),
            None => *name == host,
        })
    }

    pub fn add(&mut self, name: &str) {
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                self.ips.insert(ip);
            }
            Err(_) => {
                self.dns.insert(name.to_ascii_lowercase());
            }
        }
    }
}

/// What the appliance answers to when listening on `listen`: `localhost`
/// and the loopback addresses, the machine's host name (and its `.local`
/// mDNS name), the listen address (or, listening on every address, each of
/// the machine's usable addresses), and the configured extra names.
pub fn served_names(listen: SocketAddr, extra: &[String]) -> ServedNames {
    let mut names = ServedNames::default();
    names.add("localhost");
    names.ips.insert(IpAddr::from([127, 0, 0, 1]));
    names.ips.insert(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    if let Some(host) = host_name() {
        if !host.contains('.') {
            names.add(&format!("{host}.local"));
        }
        names.add(&host);
    }
    if listen.ip().is_unspecified() {
        names.ips.extend(interface_addresses());
    } else {
        names.ips.insert(listen.ip());
    }
    for name in extra {
        names.add(name);
    }
    names
}

/// The machine's host name, if it is a usable DNS name.
fn host_name() -> Option<String> {
    let raw = nix::unistd::gethostname().ok()?;
    let name = raw.to_str()?.trim().trim_end_matches('.').to_ascii_lowercase();
    crate::config::tls_name(&name).filter(|name| !name.starts_with("*.") && name != "localhost")
}

/// Addresses of the machine's interfaces that a LAN client could use:
/// not loopback (listed apart), not link-local (they need a scope), not
/// unspecified.
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    interfaces
        .filter_map(|interface| {
            let address = interface.address?;
            let ip = if let Some(v4) = address.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(address.as_sockaddr_in6()?.ip())
            };
            usable_lan_address(ip).then_some(ip)
        })
        .collect()
}

fn usable_lan_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_listen_address_is_served_with_loopback_names_and_extras() {
        let names =
            served_names("192.168.1.20:8443".parse().expect("addr"), &["rap.office.lan".into(), "10.0.0.5".into()]);
        for host in ["localhost", "127.0.0.1", "[::1]", "192.168.1.20", "rap.office.lan", "RAP.Office.Lan.", "10.0.0.5"]
        {
            assert!(names.covers(host), "{host}");
        }
        for host in ["192.168.1.21", "office.lan", "evil.example", "x.rap.office.lan"] {
            assert!(!names.covers(host), "{host}");
        }
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        let names = served_names("127.0.0.1:1".parse().expect("addr"), &["*.office.lan".into()]);
        assert!(names.covers("rap.office.lan"));
        assert!(!names.covers("office.lan"));
        assert!(!names.covers("a.b.office.lan"));
        assert!(!names.covers("evilofffice.lan"));
    }

    #[test]
    fn every_address_listening_lists_no_loopback_or_link_local_twice() {
        let names = served_names("0.0.0.0:1".parse().expect("addr"), &[]);
        assert!(names.ips.iter().all(|ip| ip.is_loopback() || usable_lan_address(*ip)));
        assert!(!names.ips.iter().any(IpAddr::is_unspecified));
    }
}
